"""Load an SVG in headless Chromium and record whatever it manages to do: script, dialogs, fetches.

The SVG is served from a made-up origin (http://plans.test) with no Content-Security-Policy, so
that only the sanitiser stands between a vector and the browser; every request to any other
origin is recorded and aborted, and so is any other request to the made-up origin (py-svg-hush
rewrites external URLs to same-origin paths: a stored plan should fetch those neither). Two ways
in: as a document of its own, and inlined into an HTML page (as a kiosk page might show it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

ORIGIN = "http://plans.test"
OBSERVE_MS = 250  # after load, pointer moved and clicked: time for animations and handlers


@dataclass
class Observation:
    """What a loaded SVG did."""

    foreign_requests: list[str] = field(default_factory=list)
    # Requests to the SVG's own origin other than the page itself (and the browser's favicon).
    own_origin_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    pwned: str | None = None
    console: list[str] = field(default_factory=list)

    @property
    def harmful(self) -> bool:
        return bool(self.foreign_requests or self.own_origin_requests or self.dialogs or self.pwned)


def _inline_page(svg: bytes) -> bytes:
    text = svg.decode("utf-8", "replace")
    if text.lstrip().startswith("<?xml"):
        text = text.split("?>", 1)[1]
    return f"<!doctype html><html><body style='margin:0'>{text}</body></html>".encode()


def observe(browser, svg: bytes, mode: str = "document") -> Observation:
    """Load `svg` ("document" or "inline"), point at it, click it, and report."""
    seen = Observation()
    context = browser.new_context(viewport={"width": 400, "height": 300})
    try:
        page = context.new_page()

        def route(r) -> None:
            url = r.request.url
            parts = urlsplit(url)
            if f"{parts.scheme}://{parts.netloc}" != ORIGIN:
                seen.foreign_requests.append(url)
                r.abort()
            elif parts.path == "/plan.svg":
                r.fulfill(status=200, content_type="image/svg+xml", body=svg)
            elif parts.path == "/inline.html":
                r.fulfill(status=200, content_type="text/html", body=_inline_page(svg))
            else:
                if parts.path != "/favicon.ico":
                    seen.own_origin_requests.append(url)
                r.fulfill(status=404, body=b"")

        def on_dialog(dialog) -> None:
            seen.dialogs.append(dialog.message)
            dialog.dismiss()

        page.route("**/*", route)
        page.on("dialog", on_dialog)
        page.on("console", lambda m: seen.console.append(m.text))
        target = "/plan.svg" if mode == "document" else "/inline.html"
        try:
            page.goto(ORIGIN + target, wait_until="load", timeout=5000)
            page.mouse.move(50, 50)
            page.mouse.move(100, 100)
            page.mouse.click(100, 100)
            page.wait_for_timeout(OBSERVE_MS)
            seen.pwned = page.evaluate("() => window.__pwned || null")
        except Exception as exc:  # a navigation away (aborted) or a crashed page counts too
            if "__pwned" not in str(exc):
                seen.console.append(f"harness: {exc}")
            try:
                seen.pwned = page.evaluate("() => window.__pwned || null")
            except Exception:
                pass
    finally:
        context.close()
    return seen


def screenshot(browser, svg: bytes) -> bytes:
    """The SVG rendered as a document, as PNG bytes."""
    context = browser.new_context(viewport={"width": 400, "height": 300})
    try:
        page = context.new_page()
        page.route(
            "**/*",
            lambda r: (
                r.fulfill(status=200, content_type="image/svg+xml", body=svg)
                if r.request.url == ORIGIN + "/plan.svg"
                else r.abort()
            ),
        )
        page.goto(ORIGIN + "/plan.svg", wait_until="load")
        return page.screenshot()
    finally:
        context.close()
