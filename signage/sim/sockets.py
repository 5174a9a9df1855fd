"""One simulated Density socket: its outbound queue and the loop that serves it."""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simple_websocket import ConnectionClosed

if TYPE_CHECKING:
    from signage.sim.world import Simulator

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.1  # longest a handler waits before it looks at the socket and the server again
OUTBOX_SIZE = 1000  # messages queued for a client that does not read before it is cut off
CLOSE_WAIT_SECONDS = 1.0  # how long a closing handler waits for the client's close reply
INBOUND_BUDGET = 100  # client messages discarded per loop, so a chatty client cannot grow memory


@dataclass(frozen=True)
class Ticket:
    """What a `ws_url` grants: one connection to one floor's or space's updates."""

    id: str
    kind: str  # presence or occupancy
    node_id: str  # the floor (presence) or space (occupancy) asked for
    key: str  # the floor the socket counts against (a building for a building-wide socket)
    space_ids: tuple[str, ...]  # the rooms whose updates it carries
    expires_at: float
    # Floors and buildings whose summed counts it carries too (the reference's occupancy
    # socket: "counts for that space and all its children").
    groups: tuple[str, ...] = ()


class SocketSession:
    """An open socket: messages for it wait in its own queue, sent by its handler thread only."""

    def __init__(self, session_id: int, ticket: Ticket) -> None:
        self.id = session_id
        self.ticket = ticket
        self.outbox: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=OUTBOX_SIZE)
        # How the handler should end the socket: "close" (close frame) or "drop" (TCP cut).
        self.end: str | None = None
        self.done = threading.Event()  # set once the handler has finished with the socket
        self.raw_socket: socket.socket | None = None

    def offer(self, kind: str, text: str) -> bool:
        """Queue a message ("msg" or "raw"); a client that stopped reading is cut off instead."""
        try:
            self.outbox.put_nowait((kind, text))
            return True
        except queue.Full:
            logger.warning("socket %s: client is not reading; dropping it", self.id)
            self.request_end("drop")
            return False

    def request_end(self, how: str) -> None:
        """Ask the handler to end the socket; a drop overrides a pending close."""
        if self.end is None or how == "drop":
            self.end = how
        with contextlib.suppress(queue.Full):
            self.outbox.put_nowait(("wake", ""))

    def force_shutdown(self) -> None:
        """Watchdog: cut the TCP connection under a handler stuck in a send."""
        if self.raw_socket is not None:
            with contextlib.suppress(OSError):
                self.raw_socket.shutdown(socket.SHUT_RDWR)


def graceful_close(ws: Any) -> None:
    """Send a close frame, wait briefly for the reply, then close TCP (the server goes first)."""
    with contextlib.suppress(ConnectionClosed, OSError):
        ws.close(reason=1001, message="simulator stopping")
    # Until simple-websocket's reader has taken the client's reply, werkzeug's drain after
    # the request could take it instead and then wait for an EOF the client never sends.
    reader = getattr(ws, "thread", None)
    if reader is not None:
        reader.join(CLOSE_WAIT_SECONDS)
    with contextlib.suppress(OSError):
        ws.sock.shutdown(socket.SHUT_RDWR)


def abrupt_close(ws: Any) -> None:
    """Cut the TCP connection without a close frame, as a dying network does."""
    sock = ws.sock
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
    # flask-sock closes the socket after the handler returns; with this it sends nothing.
    ws.connected = False


def serve(ws: Any, session: SocketSession, sim: Simulator) -> None:
    """Send a session's messages and periodic refreshes until it closes or the server stops."""
    session.raw_socket = ws.sock
    last_refresh = sim.clock()
    try:
        while True:
            if session.end == "drop":
                abrupt_close(ws)
                return
            if session.end == "close":
                graceful_close(ws)
                return
            if not ws.connected:
                return
            _discard_inbound(ws)
            due = last_refresh + sim.settings.refresh_interval
            now = sim.clock()
            if now >= due:
                sim.enqueue_refresh(session)
                last_refresh = now
                continue
            try:
                kind, text = session.outbox.get(timeout=min(POLL_SECONDS, due - now))
            except queue.Empty:
                continue
            if kind == "raw" or (kind == "msg" and sim.socket_mode != "silent"):
                ws.send(text)
    except (ConnectionClosed, OSError) as exc:
        logger.debug("socket %s ended: %r", session.id, exc)
    finally:
        sim.close_session(session)
        session.done.set()


def _discard_inbound(ws: Any) -> None:
    # Density's sockets ignore what clients send; reading it keeps simple-websocket's
    # unbounded inbound list from growing.
    for _ in range(INBOUND_BUDGET):
        if ws.receive(timeout=0) is None:
            return
