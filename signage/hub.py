"""Kiosk subscribers: a bounded queue each, fan-out that never blocks, a watchdog for stuck sends.

The feed thread publishes one serialised message per change; `publish` only appends it to each
subscriber's queue and wakes that subscriber's handler thread, which alone sends on its socket.
A kiosk whose queue overflows is evicted; a send stuck longer than the send timeout is cut by
the watchdog, so one stalled screen never delays the others.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# Close codes a kiosk can act on (docs/protocol.md).
CLOSE_RESTART = 1012  # server restarting: come back (after a jittered delay)
CLOSE_POLICY = 1008  # sent too much, too fast
CLOSE_TOO_SLOW = 4001  # queue overflowed: reconnect and take a fresh snapshot
CLOSE_STALLED = 4002  # a send was stuck longer than the send timeout
CLOSE_UNAUTHORIZED = 4401  # unknown or revoked credential: back to pairing
CLOSE_RELOAD = 4003  # the display's configuration changed: reconnect for a new snapshot


@dataclass(eq=False)
class Subscriber:
    """One kiosk connection: its queue, its wake-up event and why it must go, if it must."""

    floor_id: str
    display_id: int
    wakeup: threading.Event
    maxlen: int
    id: int = field(default_factory=itertools.count(1).__next__)
    # (seq, text); seq None marks a command for this display (reload, identify), sent as is.
    queue: deque[tuple[int | None, str]] = field(default_factory=deque)
    close_code: int | None = None
    close_reason: str = ""
    sending_since: float | None = None
    cut: Callable[[], None] | None = None  # aborts the socket under a stuck send
    info: dict = field(default_factory=dict)  # last heartbeat from the page
    connected_at: float = field(default_factory=time.monotonic)

    def offer(self, seq: int | None, text: str) -> bool:
        """Queue a message; False (and marked for eviction) when the queue is full."""
        if self.close_code is not None:
            return False
        if len(self.queue) >= self.maxlen:
            self.close_code, self.close_reason = CLOSE_TOO_SLOW, "too slow"
            self.wakeup.set()
            return False
        self.queue.append((seq, text))
        self.wakeup.set()
        return True

    def take(self) -> tuple[int | None, str] | None:
        """The next queued message, or None."""
        try:
            return self.queue.popleft()
        except IndexError:
            return None

    def close(self, code: int, reason: str) -> None:
        """Ask this kiosk's handler to close its socket with `code`."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.wakeup.set()


class Hub:
    """Every kiosk subscriber, by floor; fan-out and eviction."""

    def __init__(self, queue_size: int = 64, send_timeout: float = 5.0) -> None:
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self._lock = threading.Lock()
        self._by_floor: dict[str, set[Subscriber]] = {}
        self.evictions = 0
        self.stalled_cuts = 0
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    # -- membership --------------------------------------------------------------------------
    def subscribe(self, floor_id: str, display_id: int, wakeup: threading.Event) -> Subscriber:
        """Register a kiosk; it receives everything published for its floor from now on."""
        sub = Subscriber(floor_id, display_id, wakeup, self.queue_size)
        with self._lock:
            self._by_floor.setdefault(floor_id, set()).add(sub)
        self._ensure_watchdog()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a kiosk (idempotent)."""
        with self._lock:
            subs = self._by_floor.get(sub.floor_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_floor[sub.floor_id]

    def subscribers(self, floor_id: str | None = None) -> list[Subscriber]:
        """A copy of the current subscribers (of one floor, or all)."""
        with self._lock:
            if floor_id is not None:
                return list(self._by_floor.get(floor_id, ()))
            return [s for subs in self._by_floor.values() for s in subs]

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

    # -- fan-out -----------------------------------------------------------------------------
    def publish(self, floor_id: str, seq: int, text: str) -> int:
        """Queue a message for every kiosk of a floor; never blocks on a socket."""
        delivered = 0
        for sub in self.subscribers(floor_id):
            if sub.offer(seq, text):
                delivered += 1
            elif sub.close_code == CLOSE_TOO_SLOW and sub.close_reason == "too slow":
                sub.close_reason = "too slow (evicted)"
                self.evictions += 1
                logger.warning("kiosk of display %s evicted: queue full", sub.display_id)
        return delivered

    def command(self, display_id: int, text: str) -> int:
        """Queue a command (not part of the floor's sequence) for every socket of a display."""
        subs = [s for s in self.subscribers() if s.display_id == display_id]
        return sum(1 for sub in subs if sub.offer(None, text))

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

    # -- stuck sends -------------------------------------------------------------------------
    def _ensure_watchdog(self) -> None:
        with self._lock:
            if self._watchdog is not None and self._watchdog.is_alive():
                return
            self._stop.clear()
            self._watchdog = threading.Thread(
                target=self._watch, name="hub-watchdog", daemon=True
            )
            self._watchdog.start()

    def _watch(self) -> None:
        """Cut any socket whose send has been stuck longer than the send timeout."""
        interval = max(0.2, self.send_timeout / 4)
        while not self._stop.wait(interval):
            now = time.monotonic()
            for sub in self.subscribers():
                since = sub.sending_since
                if since is not None and now - since > self.send_timeout and sub.cut:
                    self.stalled_cuts += 1
                    logger.warning(
                        "kiosk of display %s cut: send stuck %.1fs", sub.display_id, now - since
                    )
                    sub.close(CLOSE_STALLED, "send stuck")
                    cut, sub.cut = sub.cut, None
                    try:
                        cut()
                    except OSError:
                        pass

    def stop(self) -> None:
        """Stop the watchdog thread."""
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=2)
