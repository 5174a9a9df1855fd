"""Security headers on every response: no inline script, the socket origin named, no referrer.

Kiosk URLs carry the display's credential, so no page may send a Referer. Responses that set
their own Content-Security-Policy (uploaded plans: stricter still) keep it.
"""

from __future__ import annotations

from flask import Flask, Response, request


def content_security_policy(host: str) -> str:
    """The policy for our HTML pages: scripts only from our files, sockets only to us."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            # Style attributes carry per-display colours; styles cannot run code.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            f"connect-src 'self' ws://{host} wss://{host}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


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
