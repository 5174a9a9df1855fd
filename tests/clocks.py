"""Outage tests on core's fake clock: a clock that knows its waiters, and the real server on it.

A `SteppedClock` knows each waiter's deadline, so a test can move time a second at a time and
wait, after each step, until every worker is parked on the clock again: five minutes of
production timings run in seconds, and every call they make to Density is made and counted.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

from flask import Flask

from signage import config as settings
from signage import services, web
from signage.core.clock import FakeClock
from signage.sim import SimServer
from tests.conftest import server_config
from tests.helpers import ServerThread, wait_until


class SteppedClock(FakeClock):
    """A FakeClock that knows each waiter's deadline, so a test can tell when a step is done:
    every worker waits again, and none of them for a moment that has already come."""

    def __init__(self) -> None:
        super().__init__()
        self._deadlines: dict[object, float] = {}  # guarded by the clock's own condition

    def wait(self, event: threading.Event, timeout: float) -> bool:
        # FakeClock.wait, with the deadline kept where `parked` sees it: one reading of the
        # time for both, or a step landing between two readings would never look settled.
        key = object()
        with self._cond:
            deadline = self._now + max(0.0, timeout)
            self._deadlines[key] = deadline
            self.waiters += 1
            try:
                while not event.is_set() and self._now < deadline:
                    self._cond.wait(self._poll)
            finally:
                self.waiters -= 1
                del self._deadlines[key]
        return event.is_set()

    def parked(self) -> int:
        """How many workers wait for a later moment; 0 while any is due to run now."""
        with self._cond:
            now, deadlines = self._now, list(self._deadlines.values())
        return 0 if not deadlines or min(deadlines) <= now else len(deadlines)

    def step(self, most: float = 1.0) -> float:
        """Move on to the next waiter's deadline, at most `most` seconds; the seconds moved.

        Each waiter then wakes at its own moment, as on the real clock: fixed steps would wake
        every deadline inside a step at once (a socket attempt and a poll round together).
        """
        with self._cond:
            now = self._now
            target = min([now + most, *(d for d in self._deadlines.values() if d > now)])
            seconds = target - now
            while now + seconds < target:  # float rounding must not stop short of the deadline
                seconds = math.nextafter(seconds, math.inf)
        self.advance(seconds)
        return seconds


def settle(clock: SteppedClock, workers: int, timeout: float = 15.0, quiet: int = 100) -> None:
    """Wait until every worker has done what this moment asked and waits again.

    Usually all `workers` are parked again. One may instead be blocked behind another that
    sleeps on the clock (callers queued for a token whose fetch is backing off), or be busy
    with real I/O (a socket being opened): then the step is done once nobody is due and the
    count has held for `quiet` looks, 0.2 ms apart (20 ms: far longer than a step's work).
    """
    seen: list[int] = []

    def done() -> bool:
        parked = clock.parked()
        if parked >= workers:
            return True
        seen.append(parked)
        tail = seen[-quiet:]
        return len(tail) == quiet and tail[0] > 0 and len(set(tail)) == 1

    try:
        wait_until(done, timeout, 0.0002, f"{workers} workers parked")
    except AssertionError as exc:
        looks = sorted(set(seen[-5 * quiet :]))
        raise AssertionError(f"{exc}; at {clock.monotonic():.1f}, parked counts {looks}") from None


def steady_workers(clock: SteppedClock, timeout: float = 15.0, samples: int = 40) -> int:
    """How many workers park on the clock once all of them have noticed the outage.

    The count must hold for `samples` looks in a row (5 ms apart) with the clock standing
    still: a worker still talking to Density (a socket being refused) breaks the run.
    """
    seen: list[int] = []

    def steady() -> bool:
        seen.append(clock.parked())
        tail = seen[-samples:]
        return len(tail) == samples and tail[0] > 0 and len(set(tail)) == 1

    wait_until(steady, timeout, 0.005, "workers parked on the clock")
    return seen[-1]


def clocked_server(
    sim: SimServer, tmp_path: Path, clock: FakeClock, **overrides: Any
) -> ServerThread:
    """The real server against `sim` with core and its Density client on `clock`, started.

    `create_app` less its one line that builds the services on the real clock. The caller
    keeps `SIGNAGE_CONFIG` out of the repository (monkeypatch it) and stops the server.
    """
    test_config = server_config(sim, tmp_path, **overrides)
    instance = settings.instance_dir(overrides=test_config)
    app = Flask("signage", instance_path=str(instance), instance_relative_config=True)
    loaded = settings.load(app.instance_path, overrides=test_config)
    web.init_app(app, services.build(loaded, instance, clock=clock))
    return ServerThread(app).start()
