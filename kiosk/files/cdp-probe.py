#!/usr/bin/env python3
"""Ask the kiosk's Chromium, through its remote-debugging port on 127.0.0.1, whether its page lives.

Prints one line and exits 0 when the page is healthy, 1 when it is not (the watchdog counts a
strike), 2 on a usage error. Unhealthy means: the debugging endpoint does not answer (browser
hung or gone), no page is open, the page is Chromium's error page (chrome-error://) or crash
page ("Aw, Snap!"), a proxy's 5xx page, or the page does not evaluate `1 + 1` in time
(renderer hung or crashed). Standard library only: Raspberry Pi OS always has python3.
The page's URL is never printed in full: a display URL carries the display's credential.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import socket
import struct
import sys
import time
import urllib.request
from urllib.parse import urlsplit

CRASH_TITLES = ("aw, snap", "he's dead, jim", "page unresponsive")
PROXY_ERROR_TITLE = re.compile(r"^\s*(502|503|504)\b")


def masked(url: str) -> str:
    """Scheme, host and the first path segment: enough to tell pages apart, no credential."""
    parts = urlsplit(url)
    first = parts.path.strip("/").split("/")[0] if parts.path.strip("/") else ""
    return f"{parts.scheme}://{parts.netloc}/{first}{'/…' if parts.path.count('/') > 1 else ''}"


def list_pages(port: int, timeout: float) -> list[dict]:
    """The browser's page targets, from its /json/list endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as r:
        targets = json.load(r)
    return [t for t in targets if t.get("type") == "page"]


def evaluate(ws_url: str, expression: str, timeout: float) -> dict:
    """Runtime.evaluate over the page's DevTools WebSocket: a minimal RFC 6455 client."""
    parts = urlsplit(ws_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise OSError("refusing a debugging socket that is not on this machine")
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        # No Origin header: Chromium accepts local DevTools clients that send none.
        sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise OSError("debugging socket closed during the handshake")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise OSError("debugging socket refused the handshake")
        message = json.dumps(
            {
                "id": 1,
                "method": "Runtime.evaluate",
                "params": {"expression": expression, "returnByValue": True, "timeout": 2000},
            }
        ).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(message) < 126:
            header += bytes([0x80 | len(message)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(message))
        sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(message)))

        def read(n: int) -> bytes:
            nonlocal buf
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no answer from the page")
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    raise OSError("debugging socket closed")
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out

        pieces: list[bytes] = []
        while True:
            b0, b1 = read(2)
            length = b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", read(8))
            payload = read(length)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise OSError("debugging socket closed by the browser")
            if opcode in (0x1, 0x0):
                pieces.append(payload)
                if b0 & 0x80:
                    reply = json.loads(b"".join(pieces))
                    pieces = []
                    if reply.get("id") == 1:
                        return reply
    finally:
        sock.close()


def check(port: int, timeout: float) -> tuple[bool, str]:
    """(healthy, one line for the journal)."""
    try:
        pages = list_pages(port, timeout)
    except (OSError, ValueError) as e:
        reason = type(e).__name__
        return False, f"debugging endpoint on 127.0.0.1:{port} does not answer ({reason})"
    if not pages:
        return False, "no page is open"
    page = pages[0]
    url, title = page.get("url", ""), page.get("title", "")
    if url.startswith("chrome-error://"):
        return False, "Chromium shows its error page"
    if url.startswith("chrome://crash") or any(t in title.lower() for t in CRASH_TITLES):
        return False, "Chromium shows its crash page"
    if PROXY_ERROR_TITLE.match(title):
        return False, f"the page is a proxy error ({title.strip()[:40]})"
    ws_url = page.get("webSocketDebuggerUrl")
    if not ws_url:
        return False, "the page has no debugging socket (another DevTools client holds it?)"
    try:
        # The page's own location: /json/list keeps the URL that was asked for, while a failed
        # navigation's document is chrome-error://chromewebdata/.
        reply = evaluate(ws_url, "location.href", timeout)
    except TimeoutError:
        return False, f"the page did not answer within {timeout:g}s (renderer hung)"
    except (OSError, ValueError) as e:
        return False, f"could not reach the page ({e})"
    value = reply.get("result", {}).get("result", {}).get("value")
    if reply.get("error") or not isinstance(value, str):
        return False, "the page did not evaluate (renderer crashed?)"
    if value.startswith("chrome-error://"):
        return False, "Chromium shows its error page"
    return True, f"ok: {masked(url)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9222)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    healthy, line = check(args.port, args.timeout)
    print(line)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
