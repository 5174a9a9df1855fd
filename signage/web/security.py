"""Security headers on every response: no inline script, the socket origin named, no referrer.

Kiosk URLs carry the display's credential, so no page may send a Referer. Responses that set
their own Content-Security-Policy (uploaded plans: stricter still) keep it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request


def content_security_policy(host: str, image_origins: tuple[str, ...] = ()) -> str:
    """The policy for our HTML pages: scripts only from our files, sockets only to us.

    `image_origins`: other sites a page may show images from (a display's logo, chosen by an
    admin); nothing else is ever fetched from elsewhere.
    """
    images = " ".join(("'self'", "data:", *image_origins))
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            # Style attributes carry per-display colours; styles cannot run code.
            "style-src 'self' 'unsafe-inline'",
            f"img-src {images}",
            f"connect-src 'self' ws://{host} wss://{host}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def image_origin(url: str) -> str | None:
    """The origin (scheme://host[:port]) of an http(s) URL, for img-src; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if not all(c.isalnum() or c in ".-:[]" for c in parts.netloc) or "@" in parts.netloc:
        return None  # credentials, spaces or quotes have no place in a policy
    return f"{parts.scheme}://{parts.netloc}"


def _add_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", content_security_policy(request.host))
        headers.setdefault("X-Frame-Options", "DENY")
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every response of the app."""
    app.after_request(_add_headers)
