"""The clock core reads: the real one in production, a fake one that tests move by hand.

Feeds, the hub and the space directory take a `Clock` rather than calling `time.monotonic()`
themselves, so an outage test can jump past `stale_after` (or a five-minute outage) in a
moment instead of waiting for it. Only waits that stand for the passing of time go through the
clock; socket and HTTP timeouts are real I/O and stay on the real clock.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Protocol

from signage.density.models import parse_timestamp

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock", "parse_iso_time"]


class Clock(Protocol):
    """What core needs of a clock."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (ages, deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (wall clock: shown to people, never compared for ages)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until `event` is set or `timeout` seconds have passed; whether it is set."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that moves only when a test calls `advance`, waking every waiter it passes.

    A waiter also wakes when its event is set: the fake clock cannot hook `Event.set`, so it
    looks at the event every `poll` seconds of real time (a few milliseconds).
    """

    def __init__(self, start: float = 1000.0, wall: float = 1_767_225_600.0, poll: float = 0.005):
        self._now = float(start)
        self._wall_offset = float(wall) - float(start)
        self._poll = poll
        self._cond = threading.Condition()
        self.waiters = 0  # threads waiting on this clock now (tests wait for them to settle)

    def monotonic(self) -> float:
        with self._cond:
            return self._now

    def time(self) -> float:
        with self._cond:
            return self._now + self._wall_offset

    def advance(self, seconds: float) -> float:
        """Move the clock on and wake the waiters whose deadline has come; the new time."""
        if seconds < 0:
            raise ValueError("a clock never goes back")
        with self._cond:
            self._now += seconds
            self._cond.notify_all()
            return self._now

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self._cond:
            deadline = self._now + max(0.0, timeout)
            self.waiters += 1
            try:
                while not event.is_set() and self._now < deadline:
                    self._cond.wait(self._poll)
            finally:
                self.waiters -= 1
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        self.wait(threading.Event(), seconds)


def parse_iso_time(text: str) -> datetime | None:
    """An aware datetime from ISO 8601 text (a trailing Z allowed; naive read as UTC), else None.

    Density's own reading of a timestamp, so a time a test passes in a URL means what it would
    mean in Density's data.
    """
    return parse_timestamp(text) if isinstance(text, str) else None
