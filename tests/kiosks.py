"""Test kiosks: many real WebSocket clients on one asyncio loop in a background thread.

Each `Kiosk` applies what the server sends the way a player should (docs/protocol.md) and
records every sequence number, so tests can check ordering and delivery.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import wait_until


class Kiosk:
    """One subscriber's view: rooms, feed mode, epoch and every (epoch, seq) received."""

    def __init__(self, url: str, reconnect: bool = False) -> None:
        self.url = url
        self.reconnect = reconnect
        self.rooms: dict[str, dict[str, Any]] = {}
        self.feed: str | None = None
        self.epoch: str | None = None
        self.seq: int | None = None
        self.seqs: list[tuple[str, str, int]] = []  # (epoch, type, seq)
        self.snapshots = 0
        self.updates = 0
        self.heartbeats = 0
        self.close_codes: list[int | None] = []
        self.connected = False
        self.received_at: dict[tuple[str, str], float] = {}  # (room, state) -> first seen
        self._stop = False

    def apply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        self.seqs.append((message["epoch"], kind, message["seq"]))
        if message["epoch"] != self.epoch:
            self.rooms = {}
        self.epoch, self.seq, self.feed = message["epoch"], message["seq"], message["feed"]
        if kind == "snapshot":
            self.snapshots += 1
        elif kind == "update":
            self.updates += 1
        else:
            self.heartbeats += 1
        now = time.monotonic()
        for sid, room in message.get("rooms", {}).items():
            self.rooms[sid] = room
            self.received_at.setdefault((sid, room["state"]), now)

    def state(self, space_id: str) -> str | None:
        room = self.rooms.get(space_id)
        return room["state"] if room else None

    def seqs_monotonic(self) -> bool:
        """Within an epoch, updates strictly increase and nothing goes backwards."""
        last: dict[str, int] = {}
        for epoch, kind, seq in self.seqs:
            previous = last.get(epoch)
            if previous is not None:
                if seq < previous or (kind == "update" and seq != previous + 1 and seq <= previous):
                    return False
            last[epoch] = seq
        return True

    async def run(self, **connect_kwargs: Any) -> None:
        delay = 0.1
        while not self._stop:
            try:
                async with connect(
                    self.url,
                    compression=None,
                    open_timeout=20,
                    ping_interval=None,
                    **connect_kwargs,
                ) as ws:
                    self.connected = True
                    delay = 0.1
                    try:
                        async for raw in ws:
                            self.apply(json.loads(raw))
                    except ConnectionClosed:
                        pass
                    self.close_codes.append(ws.close_code)
            except (TimeoutError, OSError, ConnectionClosed) as exc:
                self.close_codes.append(getattr(exc, "code", None))
            finally:
                self.connected = False
            if not self.reconnect or self._stop:
                return
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)


class Fleet:
    """Kiosks on one event loop in a thread; all methods are called from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.kiosks: list[Kiosk] = []
        self._tasks: list[Any] = []

    def add(self, url: str, n: int = 1, reconnect: bool = False) -> list[Kiosk]:
        new = [Kiosk(url, reconnect) for _ in range(n)]
        for kiosk in new:
            self._tasks.append(asyncio.run_coroutine_threadsafe(kiosk.run(), self.loop))
        self.kiosks.extend(new)
        return new

    def wait(self, condition: Callable[[Kiosk], bool], kiosks=None, timeout=10.0, message=""):
        group = self.kiosks if kiosks is None else kiosks
        wait_until(lambda: all(condition(k) for k in group), timeout, message=message)

    def stop(self) -> None:
        for kiosk in self.kiosks:
            kiosk._stop = True

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:  # let them finish cancelling: a loop stopped under them warns at exit
                await asyncio.wait(tasks, timeout=3)

        asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def stalled_kiosk(port: int, path: str) -> socket.socket:
    """A kiosk that completes the handshake and then never reads (nor answers pings)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock
