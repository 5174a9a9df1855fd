"""The kiosk socket (flask-sock): snapshot on join, then changes, heartbeats, eviction.

One handler thread per kiosk is the only thread that sends on its socket. It sleeps on one
event that wakes it for three reasons: the hub queued a message, the kiosk sent something
(simple-websocket's reader thread sets the same event), or the hub asked it to close. It never
blocks without a timeout, so it notices a departed kiosk within a heartbeat interval at worst.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from wsproto.events import Pong

from signage import config as settings
from signage import i18n
from signage.actions import names as display_names
from signage.actions import pairing, preview
from signage.config import __version__
from signage.core.feeds import Feed
from signage.core.hub import Subscriber
from signage.core.protocol import CLOSE_EXPIRED, CLOSE_POLICY, CLOSE_UNAUTHORIZED, dumps
from signage.services import Services
from signage.store import Display, StoreUnavailable
from signage.web import auth
from signage.web.current import services

logger = logging.getLogger(__name__)

sock = Sock()

CLOSE_TRY_LATER = 1013  # the database is unreachable: come back later (kiosk.js retries)
CLOSE_TOO_MANY = 4429  # this display or this address holds its share of sockets already

# Where the WSGI servers flask-sock supports hand over the raw socket.
SOCKET_ENVIRON_KEYS = ("werkzeug.socket", "gunicorn.socket", "eventlet.input")


def init_app(app: Flask) -> None:
    """Register the socket routes and the handshake guard."""
    sock.init_app(app)
    app.before_request(_guard_handshake)


def _is_upgrade() -> bool:
    return request.environ.get("HTTP_UPGRADE", "").lower() == "websocket"


def _origin_allowed(origin: str | None) -> bool:
    """No Origin (players, scripts) or our own address or one allowed in settings."""
    if not origin:
        return True
    origin = origin.rstrip("/")
    if urlsplit(origin).netloc == request.host:
        return True
    return origin in settings.allowed_origins(services().config)


def _guard_handshake() -> None:
    """Before any WebSocket handshake: refuse foreign origins, turn compression off."""
    if not _is_upgrade():
        return
    environ = request.environ
    gevent = environ.get("SERVER_SOFTWARE", "").startswith("gevent")
    if not gevent and not any(key in environ for key in SOCKET_ENVIRON_KEYS):
        # waitress (and other servers) cannot hand over the socket: say so instead of a 500;
        # the kiosk page then uses the HTTP fallback.
        abort(501, "this server cannot upgrade to WebSocket; use the HTTP fallback")
    if not _origin_allowed(request.headers.get("Origin")):
        logger.warning("socket handshake refused: foreign origin %s", request.headers.get("Origin"))
        abort(403)
    # Messages are tiny; permessage-deflate would cost ~95 KiB of memory per open connection
    # (measured).
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def display_public(display: Display) -> dict[str, Any]:
    """What a kiosk may know of its display (never its credential or Density ids)."""
    return {"id": display.id, "name": display.name, "settings": display.settings}


def kiosk_snapshot(feed: Feed, display: Display) -> dict[str, Any]:
    """The floor's snapshot as one display gets it (socket, JSON fallback and first paint)."""
    snapshot = feed.snapshot()
    snapshot["display"] = display_public(display)
    snapshot["version"] = __version__
    building = services().building
    # Free now on other floors of the building (None: a one-floor building, no panel).
    snapshot["other_floors"] = building.panel(display.floor_id) if building else None
    announcer = services().announcer
    # Banners and emergencies showing now: a kiosk that reconnects or reloads shows them at once.
    if announcer is not None:
        snapshot.update(announcer.snapshot_part(display))
    # Floors and rooms by their display names in the screen's language (core/names.py).
    return display_names.localise(services(), snapshot, i18n.language(display.settings))


class _InboundBudget:
    """A kiosk may send `rate` messages a second on average, `burst` at once."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class SocketCaps:
    """Kiosk sockets held per display and per client address, each under its own cap.

    Without them one leaked kiosk URL (or one address) could open every socket the process is
    sized for and leave real screens hanging in the handshake.
    """

    def __init__(self, per_display: int, per_address: int) -> None:
        self.per_display, self.per_address = per_display, per_address
        self._lock = threading.Lock()
        self._displays: dict[int, int] = {}
        self._addresses: dict[str, int] = {}
        self._warned: set[tuple[str, Any]] = set()  # logged once while at the cap

    def take(self, display_id: int, address: str) -> tuple[str | None, bool]:
        """Hold a slot: (None, _) when taken, else (why not, whether to log it)."""
        with self._lock:
            if self._displays.get(display_id, 0) >= self.per_display:
                key: tuple[str, Any] = ("display", display_id)
                reason = "too many screens on this display"
            elif self._addresses.get(address, 0) >= self.per_address:
                key, reason = ("address", address), "too many screens from this address"
            else:
                self._displays[display_id] = self._displays.get(display_id, 0) + 1
                self._addresses[address] = self._addresses.get(address, 0) + 1
                return None, False
            first = key not in self._warned
            self._warned.add(key)
            return reason, first

    def give_back(self, display_id: int, address: str) -> None:
        with self._lock:
            for counts, key in ((self._displays, display_id), (self._addresses, address)):
                left = counts.get(key, 0) - 1
                if left > 0:
                    counts[key] = left
                else:
                    counts.pop(key, None)  # the maps hold only what is connected now
            self._warned.discard(("display", display_id))
            self._warned.discard(("address", address))


def _caps(svc: Services, previews: bool = False) -> SocketCaps:
    """This app's socket caps (kept with its services, made on first use).

    Console previews have caps of their own: a display's share for screens stays whole, and
    no address cap (an office's admins share one NAT address with its screens).
    """
    key = "preview_caps" if previews else "socket_caps"
    caps = svc.state.get(key)
    if caps is None:
        with svc.lock:
            caps = svc.state.get(key)
            if caps is None:
                caps = SocketCaps(
                    svc.config["SIGNAGE_KIOSK_MAX_PER_DISPLAY"],
                    1 << 62 if previews else svc.config["SIGNAGE_KIOSK_MAX_PER_ADDRESS"],
                )
                svc.state[key] = caps
    return caps


def _lookup(svc: Services, credential: str) -> tuple[Display | None, float | None]:
    """A socket's display and, for a preview, when it ends; PreviewExpired once it has."""
    display = preview.display_for_kiosk(
        svc.store, svc.config["SIGNAGE_SECRET_KEY"], credential, svc.feeds.clock.time()
    )
    return display, preview.expires_at(credential) if preview.is_preview(credential) else None


def _handle_inbound(sub: Subscriber, raw: str | bytes) -> str | None:
    """Read a kiosk's message; returns "resync" when it asks for a fresh snapshot."""
    try:
        message = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    if kind in ("hello", "heartbeat") and not sub.preview:  # a preview's changes nothing
        # Keep only small scalar fields the fleet page shows; a page cannot grow our memory.
        # Assigned once, complete: the fleet report reads it from another thread.
        sub.info = {
            **{
                k: v
                for k, v in message.items()
                if isinstance(v, str | int | float | bool) and len(k) < 32 and len(str(v)) < 128
            },
            "received_at": time.monotonic(),
        }
    elif kind == "resync":
        return "resync"
    return None


@sock.route("/ws/kiosk/<credential>")
def kiosk_socket(ws: Any, credential: str) -> None:
    """A display's live feed: snapshot, then updates and heartbeats.

    The hub's sender thread writes everything this kiosk receives; this thread reads what the
    kiosk sends, keeps its heartbeat timer and, at the end, writes the close frame.
    """
    prompt_pongs(ws)
    try:
        _serve_kiosk(ws, credential)
    finally:
        finish(ws)


class _PromptPongs:
    """simple-websocket's protocol object, with each pong written as soon as it is built.

    simple-websocket collects the replies to a batch of frames and writes them after it has
    already handed a completed message to the handler, so a handler's reply could overtake a
    pong that was due first (Autobahn case 5.20). Written here, from the same reader thread,
    the pong goes out in order.
    """

    def __init__(self, connection: Any, sock: Any) -> None:
        self._connection = connection
        self._sock = sock

    def send(self, event: Any) -> bytes:
        data = self._connection.send(event)
        if isinstance(event, Pong):
            self._sock.sendall(data)
            return b""
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def prompt_pongs(ws: Any) -> None:
    """Make a socket answer pings in order with what the handler sends."""
    if not isinstance(ws.ws, _PromptPongs):
        ws.ws = _PromptPongs(ws.ws, ws.sock)


def finish(ws: Any) -> None:
    """Let the close handshake complete before the server closes the connection.

    simple-websocket marks the socket closed before its reader thread writes the reply to a
    kiosk's close frame; returning at once lets the server close the TCP connection first, and
    the kiosk sees an unclean close. The reader thread ends right after writing it.
    """
    reader = getattr(ws, "thread", None)
    if reader is not None and reader is not threading.current_thread():
        reader.join(timeout=1.0)
    if getattr(ws, "mode", None) == "werkzeug":
        # werkzeug's server writes an HTTP response once the handler returns; ending our
        # side after the close frame keeps it out of the WebSocket stream.
        try:
            ws.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_kiosk(ws: Any, credential: str) -> None:
    svc = services()
    try:
        display, ends = _lookup(svc, credential)
    except StoreUnavailable:
        ws.close(CLOSE_TRY_LATER, "database unavailable")
        return
    except preview.PreviewExpired:
        ws.close(CLOSE_EXPIRED, "preview expired")
        return
    if display is None:
        ws.close(CLOSE_UNAUTHORIZED, "unknown or revoked display")
        return
    caps = _caps(svc, previews=ends is not None)
    address = auth.address_key(request.remote_addr or "unknown")
    refused, log = caps.take(display.id, address)
    if refused is not None:
        if log:  # once per display or address while it stays at its cap: no log flood
            logger.warning("kiosk socket of display %s refused: %s", display.id, refused)
        ws.close(CLOSE_TOO_MANY, refused)
        return
    try:
        _serve_display(ws, svc, credential, display, ends)
    finally:
        caps.give_back(display.id, address)


def _serve_display(
    ws: Any, svc: Services, credential: str, display: Display, ends: float | None = None
) -> None:
    """Serve one socket; `ends` (a preview's end, on the services' wall clock) closes it then."""
    config = svc.config
    heartbeat_every = config["SIGNAGE_HEARTBEAT_INTERVAL"]
    budget = _InboundBudget(config["SIGNAGE_KIOSK_MAX_RATE"], config["SIGNAGE_KIOSK_MAX_RATE"] * 4)
    feed = svc.feeds.acquire(display.floor_id)
    # The other floors' feeds, for the "free now on other floors" panel: shared and
    # reference-counted like the kiosk's own, so a floor never has two upstream sockets.
    siblings = svc.building.hold(display.floor_id) if svc.building else []
    sub = svc.hub.subscribe(
        display.floor_id,
        display.id,
        ws.event,
        ws.sock,
        ends is not None,
        language=i18n.language(display.settings),  # the names in its frames (core/names.py)
    )
    clock = svc.feeds.clock
    if ends is None:  # a screen (not a preview): its display is installed from now on
        pairing.note_screen(svc.store, display.id, clock.time())
    # A preview's own event name: a log reader counting screens must not count it.
    kind = "kiosk" if ends is None else "preview"
    event = {
        "event": "display" if ends is None else "preview",
        "display_id": display.id,
        "floor_id": display.floor_id,
    }
    logger.info(
        "%s of display %s connected", kind, display.id, extra={**event, "state": "connected"}
    )
    close: tuple[int, str] | None = None
    try:
        snapshot = kiosk_snapshot(feed, display)
        svc.hub.snapshot(sub, dumps(snapshot), snapshot["seq"])
        if svc.building:
            svc.building.catch_up(display.floor_id, sub, snapshot["other_floors"])
        checked_at = time.monotonic()
        while ws.connected:
            ws.event.clear()
            # input_buffer is simple-websocket's inbound list: checking it spares a receive()
            # call on wake-ups that brought nothing in.
            while ws.input_buffer and (raw := ws.receive(timeout=0)) is not None:
                if not budget.take():
                    logger.warning("kiosk of display %s closed: too many messages", display.id)
                    close = (CLOSE_POLICY, "too many messages")
                    return
                if _handle_inbound(sub, raw) == "resync":
                    snapshot = kiosk_snapshot(feed, display)
                    svc.hub.snapshot(sub, dumps(snapshot), snapshot["seq"])
            if sub.close_code is not None:
                close = (sub.close_code, sub.close_reason)
                return
            left = None if ends is None else ends - clock.time()
            if left is not None and left <= 0:
                close = (CLOSE_EXPIRED, "preview expired")
                return
            now = time.monotonic()
            if now - checked_at >= heartbeat_every:
                # A revoke or delete from another process (the CLI) reaches open sockets here.
                checked_at = now
                try:
                    current = _lookup(svc, credential)[0]
                except preview.PreviewExpired:
                    close = (CLOSE_EXPIRED, "preview expired")
                    return
                except StoreUnavailable:
                    # The database is down (the store logs that once): the feed needs none,
                    # so the kiosk keeps its socket and what it shows, and is checked again.
                    current = display
                if current is None:
                    close = (CLOSE_UNAUTHORIZED, "display revoked")
                    return
            idle = now - sub.last_sent
            if idle >= heartbeat_every:
                heartbeat = feed.heartbeat()
                heartbeat["version"] = __version__
                svc.hub.send(sub, dumps(heartbeat))
                idle = 0.0
            wait = heartbeat_every - idle if left is None else min(left, heartbeat_every - idle)
            ws.event.wait(timeout=max(0.05, wait))
    except (ConnectionClosed, OSError):
        pass
    except StoreUnavailable:
        # A snapshot (announcements) needs the database: come back when it is there again.
        close = (CLOSE_TRY_LATER, "database unavailable")
    finally:
        svc.hub.detach(sub)
        svc.feeds.release(display.floor_id)
        if svc.building:
            svc.building.release(siblings)
        if close is not None and ws.connected:
            try:
                ws.close(*close)
            except (ConnectionClosed, OSError):
                pass
        logger.info(
            "%s of display %s disconnected",
            kind,
            display.id,
            extra={**event, "state": "disconnected", "close_code": close[0] if close else None},
        )
