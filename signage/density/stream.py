"""The live presence/occupancy socket: connect, parse refresh/live frames, detect a dead socket.

Density documents neither pings nor close codes, and TCP can say a link is up long after the
far end stopped sending, so the stream watches three things itself: keepalive pings (an
unanswered ping closes the socket), silence (Density sends a refresh once a minute, so no
valid message for ``silence_timeout`` means the socket is stuck) and the close itself. Each
ends iteration with StreamClosed and a reason; the reconnect loop belongs to the caller (the
floor feed), which can pace it with :class:`signage.density.backoff.Backoff`.

Whether Density sends a refresh right after connecting is not documented. After connect(),
``needs_snapshot`` stays True until a refresh arrives: the caller waits a little with
``wait_first(timeout)`` and, if ``needs_snapshot`` is still True, takes a REST snapshot with
``client.presence_health(...)`` and applies live messages on top of it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from .errors import MalformedFrame, StreamClosed
from .models import MAX_FRAME_BYTES, StreamMessage, parse_frame

if TYPE_CHECKING:
    from .client import DensityClient

__all__ = ["PresenceStream"]

logger = logging.getLogger(__name__)

KINDS = ("presence", "occupancy")


class _SocketLog(logging.LoggerAdapter):
    """The library's log for our Density sockets: its own logger, with one change.

    When Density stops answering, websockets' keepalive thread logs "keepalive ping failed" at
    ERROR with a traceback (five of them for one frozen upstream in a review). The loss is
    ours to report, once, as a warning with its reason (`lost: …` above); the library's line
    stays, one line, at WARNING, so a log watcher does not page anyone for an outage the
    server rides out by itself.
    """

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        if level >= logging.ERROR and msg == "keepalive ping failed":
            error = sys.exc_info()[1]
            level, msg, args = logging.WARNING, "keepalive ping failed: %r", (error,)
            kwargs.pop("exc_info", None)
        super().log(level, msg, *args, **kwargs)


_SOCKET_LOG = _SocketLog(logging.getLogger("websockets.client"), {})


class _Stopped(Exception):
    """close() was called locally: iteration ends quietly."""


class PresenceStream:
    """One live socket to Density for a floor (presence) or a space (occupancy counts)."""

    def __init__(
        self,
        client: DensityClient,
        target_id: str,
        *,
        kind: str = "presence",
        display_id: str | None = None,
        ping_interval: float | None = 10.0,
        ping_timeout: float | None = 5.0,
        silence_timeout: float = 90.0,
        open_timeout: float = 10.0,
        close_timeout: float = 1.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        max_message_bytes: int | None = None,
        on_malformed: Callable[[MalformedFrame], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        connect_fn: Callable[..., ClientConnection] = ws_connect,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.client = client
        self.target_id = target_id
        self.kind = kind
        self.display_id = display_id
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.silence_timeout = float(silence_timeout)
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.max_frame_bytes = int(max_frame_bytes)
        # The socket layer's hard limit sits above the parser's, so a frame a little too big is
        # skipped and counted while only an absurd one costs the connection (websockets closes
        # it with 1009 rather than buffer it).
        self.max_message_bytes = (
            int(max_message_bytes) if max_message_bytes is not None else 4 * self.max_frame_bytes
        )
        self.on_malformed = on_malformed
        self._clock = clock
        self._connect_fn = connect_fn
        self._lock = threading.Lock()
        self._conn: ClientConnection | None = None
        self._stopped = False
        self._last_valid_at = 0.0
        self.needs_snapshot = True
        self.connects = 0
        self.messages_received = 0
        self.refreshes = 0
        self.malformed_frames = 0
        self.skipped_entries = 0
        self.connected_at: float | None = None
        self.last_message_at: float | None = None

    # ------------------------------------------------------------------ connection

    def _fresh_url(self) -> str:
        # A ws_url is single use (and may expire): ask for a new one on every connect.
        if self.kind == "presence":
            return self.client.presence_ws_url(self.target_id, display_id=self.display_id)
        return self.client.occupancy_ws_url(self.target_id, display_id=self.display_id)

    def connect(self) -> PresenceStream:
        """Open the socket with a fresh ws_url; raise StreamClosed(reason="refused") on failure."""
        if self._stopped:
            raise StreamClosed("stream was closed", reason="closed")
        self._drop_connection()
        url = self._fresh_url()  # DensityError subclasses propagate as they are
        try:
            opened = self._connect_fn(
                url,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=self.close_timeout,
                max_size=self.max_message_bytes,
                compression=None,
                logger=_SOCKET_LOG,
            )
            # websockets 17 wants connect() used as a context manager; entering it here and
            # closing it in close()/_fail() is the same, spread over the stream's life.
            conn = opened.__enter__()
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise StreamClosed(
                f"{self.kind} socket refused: HTTP {status}", reason="refused", status=status
            ) from exc
        except InvalidURI as exc:
            # The URI may carry a credential: name the problem, not the URL.
            raise StreamClosed(f"{self.kind} socket: invalid ws_url", reason="refused") from exc
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise StreamClosed(
                f"{self.kind} socket could not open ({type(exc).__name__})", reason="refused"
            ) from exc
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self._conn = conn
        if stopped:  # close() raced with the handshake
            conn.close()
            raise StreamClosed("stream was closed", reason="closed")
        now = self._clock()
        self.connects += 1
        self.connected_at = now
        self._last_valid_at = now
        self.needs_snapshot = True
        logger.info("%s socket for %s connected", self.kind, self.target_id)
        return self

    def _drop_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close the socket; safe from any thread, and a blocked reader returns promptly."""
        with self._lock:
            self._stopped = True
            conn, self._conn = self._conn, None
        if conn is not None:
            # close() completes the close handshake or gives up after close_timeout; either way
            # the reader's recv() wakes up with ConnectionClosed.
            conn.close()
            logger.info("%s socket for %s closed", self.kind, self.target_id)

    @property
    def connected(self) -> bool:
        """True between a successful connect() and the end of the socket."""
        return self._conn is not None

    # ------------------------------------------------------------------ reading

    def _closed_error(self, exc: ConnectionClosed) -> StreamClosed:
        sent, rcvd = exc.sent, exc.rcvd
        if sent is not None and sent.code == 1011 and "ping timeout" in sent.reason:
            return StreamClosed(
                f"{self.kind} socket: keepalive ping timeout", reason="ping timeout"
            )
        if sent is not None and sent.code == 1009:
            return StreamClosed(f"{self.kind} socket: message over the size limit", reason="closed")
        if rcvd is not None:
            return StreamClosed(
                f"{self.kind} socket closed by Density (code {rcvd.code})", reason="closed"
            )
        return StreamClosed(f"{self.kind} socket dropped without a close frame", reason="closed")

    def _fail(self, error: StreamClosed) -> StreamClosed:
        """Tear the connection down and log the state change; returns the error to raise."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            # A stuck socket may not answer a close frame: close_socket() does not wait for it.
            getattr(conn, "close_socket", conn.close)()
        logger.warning("%s socket for %s lost: %s", self.kind, self.target_id, error.reason)
        return error

    def _next(self, wait: float | None) -> StreamMessage | None:
        """The next valid message; None if ``wait`` seconds pass first (silence still applies)."""
        deadline = None if wait is None else self._clock() + wait
        while True:
            conn = self._conn
            if conn is None:
                if self._stopped:
                    raise _Stopped
                raise StreamClosed(f"{self.kind} socket is not connected", reason="closed")
            now = self._clock()
            silent_for = self.silence_timeout - (now - self._last_valid_at)
            if silent_for <= 0:
                raise self._fail(
                    StreamClosed(
                        f"{self.kind} socket: no message for {self.silence_timeout:g} s",
                        reason="silent",
                    )
                )
            timeout = silent_for if deadline is None else min(silent_for, deadline - now)
            if timeout <= 0:
                return None
            try:
                raw: Any = conn.recv(timeout=timeout)
            except TimeoutError:
                continue  # either the caller's wait or the silence limit: re-checked above
            except ConnectionClosed as exc:
                if self._stopped:
                    raise _Stopped from None
                raise self._fail(self._closed_error(exc)) from exc
            received_at = self._clock()
            try:
                message = parse_frame(raw, self.max_frame_bytes, received_at=received_at)
            except MalformedFrame as exc:
                # Never fatal: count it, tell whoever asked, and keep reading. It does not reset
                # the silence clock, so a socket that only sends garbage is still replaced.
                self.malformed_frames += 1
                logger.debug("malformed %s frame skipped: %s", self.kind, exc)
                if self.on_malformed is not None:
                    try:
                        self.on_malformed(exc)
                    except Exception:
                        logger.exception("on_malformed callback failed")
                continue
            self._last_valid_at = received_at
            self.last_message_at = received_at
            self.messages_received += 1
            self.skipped_entries += message.skipped
            if message.is_refresh:
                self.refreshes += 1
                self.needs_snapshot = False
            return message

    def messages(self) -> Iterator[StreamMessage]:
        """Yield messages until the socket ends (StreamClosed) or close() is called (returns)."""
        try:
            while True:
                message = self._next(None)
                if message is not None:
                    yield message
        except _Stopped:
            return

    __iter__ = messages

    def wait_first(self, timeout: float) -> StreamMessage | None:
        """The next message if one arrives within ``timeout`` s, else None (not an error)."""
        try:
            return self._next(timeout)
        except _Stopped:
            return None

    def snapshot(self) -> dict[str, Any]:
        """Counters for metrics and the admin page."""
        return {
            "kind": self.kind,
            "target_id": self.target_id,
            "connected": self.connected,
            "connects": self.connects,
            "messages": self.messages_received,
            "refreshes": self.refreshes,
            "malformed_frames": self.malformed_frames,
            "skipped_entries": self.skipped_entries,
            "needs_snapshot": self.needs_snapshot,
        }

    def __enter__(self) -> PresenceStream:
        if self._conn is None:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
