"""Kiosk subscribers and the fan-out: one sender thread writes every kiosk socket, never blocking.

A floor's update is encoded once as a WebSocket frame (server frames are unmasked, so the bytes
are the same for every kiosk) and appended to each kiosk's bounded outbox. One sender thread
writes outboxes with non-blocking sends; a kiosk whose socket buffer is full waits in a selector
until it drains. So a thousand kiosks cost a thousand cheap `send` calls, not a thousand thread
wake-ups, and a stalled kiosk delays nobody: its outbox overflows (evicted) or its data stays
unsent past the send timeout (cut).

Each socket has one writer at a time: the sender, until the kiosk's handler `detach`es it to
write the close frame itself. (simple-websocket's reader thread also answers pings; that is the
library's own design.)
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from signage.core.clock import SYSTEM_CLOCK, Clock
from signage.core.protocol import CLOSE_STALLED, CLOSE_TOO_SLOW

logger = logging.getLogger(__name__)


def text_frame(text: str) -> bytes:
    """One WebSocket text frame, server to client (unmasked, unfragmented; RFC 6455 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


@dataclass(eq=False)
class Subscriber:
    """One kiosk connection: its outbox, its handler's wake-up event, and why it must go."""

    floor_id: str
    display_id: int
    wakeup: threading.Event
    sock: socket.socket | None
    maxlen: int
    id: int = field(default_factory=itertools.count(1).__next__)
    outbox: deque[bytes] = field(default_factory=deque)
    last_seq: int = -1  # updates up to here are in the snapshot this kiosk got
    ready: bool = False  # snapshot queued; before that, updates wait in `early`
    early: list[tuple[int, bytes]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    detached: bool = False
    blocked_since: float | None = None  # when a write first found the socket buffer full
    # Monotonic times on the hub's clock (the hub sets both when it subscribes a kiosk).
    last_sent: float = field(default_factory=time.monotonic)
    info: dict = field(default_factory=dict)  # last heartbeat from the page
    # A console preview (signage/actions/preview.py): fed like a screen, never counted as one.
    preview: bool = False
    # The display's language: frames that name spaces are localised for it (see Hub.localise).
    language: str = ""
    connected_at: float = field(default_factory=time.monotonic)
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    _pending: memoryview | None = None  # the unsent rest of a frame (sender thread only)

    def close(self, code: int, reason: str) -> None:
        """Ask this kiosk's handler to close its socket with `code`."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.wakeup.set()


class Hub:
    """Every kiosk subscriber, by floor; fan-out, eviction and the sender thread."""

    def __init__(
        self, queue_size: int = 64, send_timeout: float = 5.0, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self.clock = clock  # send-timeout cuts and fan-out times (a FakeClock in tests)
        self._lock = threading.Lock()
        self._by_floor: dict[str, set[Subscriber]] = {}
        self._dirty: set[Subscriber] = set()
        self._blocked: set[Subscriber] = set()
        self.evictions = 0
        self.stalled_cuts = 0
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # Handlers unregister their socket on detach, before it can be closed and its fd reused.
        self._selector_lock = threading.Lock()
        self._sender: threading.Thread | None = None
        self._fanout_listeners: list[Callable[[float], None]] = []  # add_fanout_listener
        self._published_at: float | None = None
        # Display names (core/names.py, set by actions/names.py): rewrites a message's text for
        # one language. A floor's frame is then encoded once per language of its kiosks.
        self.localise: Callable[[str, str], str] | None = None

    def _framer(self, text: str) -> Callable[[Subscriber], bytes]:
        """The frame of `text` for each kiosk, encoded once per language it is needed in."""
        frames: dict[str, bytes] = {}
        localise = self.localise

        def frame(sub: Subscriber) -> bytes:
            lang = sub.language if localise is not None else ""
            found = frames.get(lang)
            if found is None:
                shown = localise(text, lang) if localise is not None and lang else text
                found = frames[lang] = text_frame(shown)
            return found

        return frame

    def add_fanout_listener(self, listener: Callable[[float], None]) -> None:
        """Call `listener` (in the sender thread) with the seconds from each publication to its
        write to the last kiosk (the web layer's metrics); add listeners before kiosks come."""
        self._fanout_listeners.append(listener)

    # -- membership --------------------------------------------------------------------------
    def subscribe(
        self,
        floor_id: str,
        display_id: int,
        wakeup: threading.Event,
        sock: socket.socket | None = None,
        preview: bool = False,
        language: str = "",
    ) -> Subscriber:
        """Register a kiosk; updates wait until `snapshot` queues its snapshot."""
        sub = Subscriber(floor_id, display_id, wakeup, sock, self.queue_size, preview=preview)
        sub.language = language
        sub.last_sent = sub.connected_at = self.clock.monotonic()
        with self._lock:
            self._by_floor.setdefault(floor_id, set()).add(sub)
        self._ensure_sender()
        return sub

    def snapshot(self, sub: Subscriber, text: str, seq: int) -> None:
        """Queue a kiosk's snapshot of its floor at `seq`: on joining, or when it asks again.

        On joining, the updates published meanwhile that are newer than the snapshot follow
        it. On a resync, updates still queued are harmless and newer ones follow as usual.
        """
        with self._lock:
            if self._append(sub, text_frame(text)) or not sub.ready:
                sub.last_seq = max(sub.last_seq, seq)
            for early_seq, frame in sub.early:
                if early_seq > seq:
                    self._append(sub, frame)
                    sub.last_seq = early_seq
            sub.early.clear()
            sub.ready = True
        self._wake()

    def detach(self, sub: Subscriber) -> None:
        """Stop writing to a kiosk (idempotent); its handler may then write the close frame."""
        with self._lock:
            subs = self._by_floor.get(sub.floor_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_floor[sub.floor_id]
            self._dirty.discard(sub)
        with sub.write_lock:  # waits out a send in progress (non-blocking: microseconds)
            sub.detached = True
        self._unblock(sub)

    def subscribers(self, floor_id: str | None = None) -> list[Subscriber]:
        """A copy of the current subscribers (of one floor, or all)."""
        with self._lock:
            if floor_id is not None:
                return list(self._by_floor.get(floor_id, ()))
            return [s for subs in self._by_floor.values() for s in subs]

    def screens(self, floor_id: str | None = None) -> list[Subscriber]:
        """The subscribers that are screens: every one but the console's previews (what fleet
        health, alerts and "screens connected" count)."""
        return [s for s in self.subscribers(floor_id) if not s.preview]

    def count(self, floor_id: str | None = None) -> int:
        """How many kiosks are connected (to one floor, or in all)."""
        with self._lock:
            if floor_id is not None:
                return len(self._by_floor.get(floor_id, ()))
            return sum(len(s) for s in self._by_floor.values())

    def counts_by_floor(self) -> dict[str, int]:
        """Connected kiosks per floor."""
        with self._lock:
            return {floor: len(subs) for floor, subs in self._by_floor.items()}

    # -- queueing ----------------------------------------------------------------------------
    def _append(self, sub: Subscriber, frame: bytes) -> bool:
        """Add a frame to a kiosk's outbox (hub lock held); evict it when the outbox is full."""
        if sub.close_code is not None or sub.detached:
            return False
        if len(sub.outbox) >= sub.maxlen:
            self.evictions += 1
            logger.warning("kiosk of display %s evicted: outbox full", sub.display_id)
            sub.close(CLOSE_TOO_SLOW, "too slow")
            return False
        sub.outbox.append(frame)
        self._dirty.add(sub)
        return True

    def publish(self, floor_id: str, seq: int, text: str) -> int:
        """Queue an update for every kiosk of a floor; never blocks on a socket."""
        frame_for = self._framer(text)
        delivered = 0
        with self._lock:
            if self._published_at is None:
                self._published_at = self.clock.monotonic()
            for sub in self._by_floor.get(floor_id, ()):
                if not sub.ready:
                    sub.early.append((seq, frame_for(sub)))
                elif seq > sub.last_seq and self._append(sub, frame_for(sub)):
                    sub.last_seq = seq
                    delivered += 1
        self._wake()
        return delivered

    def send(self, sub: Subscriber, text: str) -> bool:
        """Queue one message outside the floor's sequence (a heartbeat) for one kiosk."""
        frame = self._framer(text)(sub)
        with self._lock:
            queued = self._append(sub, frame)
        self._wake()
        return queued

    def command(self, display_id: int, text: str) -> int:
        """Queue a command (outside the floor's sequence) for every socket of a display."""
        frame = text_frame(text)
        with self._lock:
            subs = [
                s for subs in self._by_floor.values() for s in subs if s.display_id == display_id
            ]
            # Previews get it too (they show what the screens show) but are not counted.
            queued = sum(1 for sub in subs if self._append(sub, frame) and not sub.preview)
        self._wake()
        return queued

    def notify(self, floor_id: str, text: str) -> int:
        """Queue a message outside the floor's sequence for every kiosk of a floor.

        Only kiosks whose snapshot is queued: one that is still joining gets the same news in
        its snapshot, and nothing may overtake that.
        """
        frame_for = self._framer(text)
        with self._lock:
            subs = [s for s in self._by_floor.get(floor_id, ()) if s.ready]
            queued = sum(1 for sub in subs if self._append(sub, frame_for(sub)))
        self._wake()
        return queued

    def close_display(self, display_id: int, code: int, reason: str) -> int:
        """Close every socket of one display (revoked, reconfigured); returns how many."""
        subs = [s for s in self.subscribers() if s.display_id == display_id]
        for sub in subs:
            sub.close(code, reason)
        return len(subs)

    def close_all(self, code: int, reason: str) -> None:
        """Close every kiosk socket (server shutting down)."""
        for sub in self.subscribers():
            sub.close(code, reason)

    # -- the sender thread -------------------------------------------------------------------
    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the sender is awake already

    def _ensure_sender(self) -> None:
        with self._lock:
            if self._sender is not None and self._sender.is_alive():
                return
            self._stop.clear()
            self._sender = threading.Thread(target=self._run, name="hub-sender", daemon=True)
            self._sender.start()

    def _run(self) -> None:
        # At least once a second, so a send timeout on a test's fake clock is seen too.
        check_every = min(1.0, max(0.05, self.send_timeout / 4))
        while not self._stop.is_set():
            try:
                for key, _ in self._selector.select(timeout=check_every):
                    if key.data is None:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                    else:
                        self._flush(key.data)
                with self._lock:
                    dirty, self._dirty = self._dirty, set()
                    published_at, self._published_at = self._published_at, None
                for sub in dirty:
                    self._flush(sub)
                if published_at is not None and self._fanout_listeners:
                    took = self.clock.monotonic() - published_at
                    for listener in self._fanout_listeners:
                        listener(took)
                self._cut_stuck()
            except Exception:  # the sender must outlive any one kiosk's misfortune
                logger.exception("hub sender error")

    def _flush(self, sub: Subscriber) -> None:
        """Write as much of the kiosk's outbox as its socket takes now."""
        with sub.write_lock:
            if sub.detached or sub.sock is None:
                return
            while True:
                if sub._pending is None:
                    try:
                        sub._pending = memoryview(sub.outbox.popleft())
                    except IndexError:
                        break
                try:
                    sent = sub.sock.send(sub._pending, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sub.close(CLOSE_STALLED, "send failed")
                    sub._pending = None
                    break
                if sent:
                    sub.last_sent = self.clock.monotonic()
                if sent < len(sub._pending):
                    sub._pending = sub._pending[sent:]
                    if sub.blocked_since is None:
                        sub.blocked_since = self.clock.monotonic()
                    self._block(sub)
                    return
                sub._pending = None
        if sub.blocked_since is not None:
            self._unblock(sub)

    def _block(self, sub: Subscriber) -> None:
        with self._selector_lock:
            if sub not in self._blocked and not sub.detached:
                self._blocked.add(sub)
                try:
                    self._selector.register(sub.sock, selectors.EVENT_WRITE, sub)
                except (KeyError, ValueError, OSError):
                    pass

    def _unblock(self, sub: Subscriber) -> None:
        with self._selector_lock:
            sub.blocked_since = None
            if sub in self._blocked:
                self._blocked.discard(sub)
                try:
                    self._selector.unregister(sub.sock)
                except (KeyError, ValueError, OSError):
                    pass

    def _cut_stuck(self) -> None:
        """A kiosk whose data stayed unsent past the send timeout is cut."""
        now = self.clock.monotonic()
        for sub in list(self._blocked):
            if sub.blocked_since is not None and now - sub.blocked_since > self.send_timeout:
                self.stalled_cuts += 1
                logger.warning(
                    "kiosk of display %s cut: nothing sent for %.1fs",
                    sub.display_id,
                    now - sub.blocked_since,
                )
                self._unblock(sub)
                sub.close(CLOSE_STALLED, "send stuck")
                try:  # the close frame could not get through either: end the connection
                    sub.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        """Stop the sender thread."""
        self._stop.set()
        self._wake()
        if self._sender is not None:
            self._sender.join(timeout=2)
