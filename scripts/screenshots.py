"""Write the kiosk's pictures in docs/screenshots/ (`make screenshots`).

The floor is the layout lint's test floor (tests/test_kiosk_lint.py: twelve rooms, names of 3 to
35 characters) served by the real app against the built-in simulator, in headless Chromium.
Each picture must stay under 200 KB: these are the repository's only committed screenshots.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signage import create_app  # noqa: E402 (after the path: run from a checkout)
from signage.sim import SimServer, SimSettings  # noqa: E402
from tests.conftest import CHROMIUM_ARGS, chromium_path, server_config  # noqa: E402
from tests.helpers import ServerThread  # noqa: E402
from tests.test_kiosk_lint import BANNER, EMERGENCY, settle, snapshot  # noqa: E402

# The development server's access log would print every kiosk URL, credential and all.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

OUT = ROOT / "docs" / "screenshots"
LIMIT = 200 * 1024
# name, language, viewport, state, phone
# 720p-sized views keep each picture under the limit.
SHOTS = [
    ("landscape", "en", (1280, 720), "live", False),
    ("portrait", "en", (720, 1280), "live", False),
    ("stale", "en", (1280, 720), "stale", False),
    ("phone", "en", (390, 844), "live", True),
    ("de", "de", (1280, 720), "banner", False),
    ("fr", "fr", (720, 1280), "live", False),
    ("emergency", "en", (1280, 720), "emergency", False),
]
# The page's socket is a stand-in that the script speaks through, so the badge says "Live"
# while the floor is the test floor and nothing from the simulator replaces it.
SOCKET = """
window.__SIGNAGE_TEST__ = {noContactS: 1e9};
window.__SIGNAGE_TEST_CLOCK__ = {now: "2026-03-02T10:00:00Z", timeZone: "Europe/Berlin"};
window.WebSocket = function () {
  var sock = this;
  sock.readyState = 1; sock.send = function () {}; sock.close = function () {};
  window.__socket = sock;
  setTimeout(function () { if (sock.onopen) sock.onopen(); }, 0);
};
"""
SAY = "m => window.__socket.onmessage({data: JSON.stringify(m)})"


def main() -> int:
    """Start a server on the simulator, open each view and save its picture."""
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ["SIGNAGE_CONFIG"] = os.devnull
    with (
        tempfile.TemporaryDirectory() as tmp,
        SimServer(SimSettings(refresh_interval=1.0), seed=1) as sim,
    ):
        # A slow heartbeat: the stand-in socket sends none while the pictures are taken.
        config = server_config(sim, Path(tmp), SIGNAGE_HEARTBEAT_INTERVAL=60.0)
        server = ServerThread(create_app(config)).start()
        try:
            store = server.svc.store
            floor = server.svc.directory.floors()[0].id
            urls = {}
            for lang in ("en", "de", "fr"):
                display, cred = server.add_display(floor, name="Lobby east")
                store.update_display_settings(display.id, {"language": lang})
                phone = store.phone_credential(display)
                urls[lang] = (f"{server.url}/kiosk/{cred}", f"{server.url}/phone/{phone}")
            too_big = shoot(urls)
        finally:
            server.stop()
    for name in too_big:
        print(f"{name} is over 200 KB", file=sys.stderr)
    return 1 if too_big else 0


def answer(body: str):
    """A route handler that answers every request with `body` (JSON)."""

    def handler(route) -> None:
        route.fulfill(body=body, content_type="application/json")

    return handler


def shoot(urls: dict[str, tuple[str, str]]) -> list[str]:
    """Take every picture; the names of those over the limit."""
    too_big = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        for name, lang, (width, height), state, phone in SHOTS:
            ctx = browser.new_context(viewport={"width": width, "height": height})
            ctx.add_init_script(SOCKET)
            message = snapshot("stale" if state == "stale" else "live", 5000)
            body = json.dumps(message)
            # The phone polls: its state route answers with the test floor.
            ctx.route("**/api/*/*/state*", answer(body))
            page = ctx.new_page()
            page.goto(urls[lang][1 if phone else 0])
            if phone:
                page.wait_for_function("() => window.signageKiosk")
                page.evaluate("m => signageKiosk.apply(m)", message)
            else:
                page.wait_for_function("() => window.signageKiosk && window.__socket")
                page.evaluate(SAY, message)
            if state == "banner":
                page.evaluate(SAY, BANNER)
            if state == "emergency":
                page.evaluate(SAY, EMERGENCY)
                page.wait_for_function("() => document.documentElement.dataset.emergency === 'on'")
            settle(page)
            # Unknown rooms' dots, drawn at a fractional pixel pitch, defeat PNG's compression
            # (360 KB at 720p): that one picture is a JPEG.
            path = OUT / (f"{name}.jpg" if state == "stale" else f"{name}.png")
            if path.suffix == ".jpg":
                page.screenshot(path=str(path), type="jpeg", quality=80)
            else:
                page.screenshot(path=str(path), full_page=phone)
            size = path.stat().st_size
            print(f"{path.relative_to(ROOT)}: {width}x{height}, {size // 1024} KB")
            if size > LIMIT:
                too_big.append(name)
            ctx.close()
        browser.close()
    return too_big


if __name__ == "__main__":
    sys.exit(main())
