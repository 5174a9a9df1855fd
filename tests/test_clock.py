"""The fake clock tests move by hand: waiters wake when time passes them or their event is set."""

from __future__ import annotations

import threading

from signage.core.clock import SYSTEM_CLOCK, FakeClock
from tests.helpers import wait_until


def test_a_waiter_wakes_when_the_clock_passes_its_deadline_and_not_before() -> None:
    clock = FakeClock(start=100.0)
    event, woke = threading.Event(), threading.Event()
    results: list[bool] = []

    def waiter() -> None:
        results.append(clock.wait(event, 30.0))
        woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(lambda: clock.waiters == 1, 5, 0.005, "waiting")
    clock.advance(29.0)
    assert not woke.wait(0.1)
    assert clock.advance(1.0) == 130.0
    assert woke.wait(5)
    thread.join(5)
    assert results == [False]


def test_a_waiter_wakes_when_its_event_is_set_without_time_passing() -> None:
    clock = FakeClock()
    event = threading.Event()
    timer = threading.Timer(0.05, event.set)
    timer.start()
    assert clock.wait(event, 3600.0) is True
    assert clock.monotonic() == 1000.0


def test_wall_time_moves_with_the_clock_and_the_system_clock_is_real() -> None:
    clock = FakeClock(start=0.0, wall=1_767_225_600.0)
    clock.advance(60.0)
    assert clock.time() == 1_767_225_660.0
    assert abs(SYSTEM_CLOCK.time() - __import__("time").time()) < 5
    assert SYSTEM_CLOCK.wait(threading.Event(), 0.01) is False
