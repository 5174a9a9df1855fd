"""The hub: fan-out never blocks, overflow evicts only the slow kiosk, stuck sends are cut."""

from __future__ import annotations

import threading

from signage.hub import CLOSE_STALLED, CLOSE_TOO_SLOW, Hub
from tests.helpers import wait_until


def test_publish_reaches_only_that_floor():
    hub = Hub(queue_size=4)
    a = hub.subscribe("f1", 1, threading.Event())
    b = hub.subscribe("f2", 2, threading.Event())
    assert hub.publish("f1", 1, "m1") == 1
    assert a.take() == (1, "m1") and a.wakeup.is_set()
    assert b.take() is None
    assert hub.counts_by_floor() == {"f1": 1, "f2": 1}
    hub.unsubscribe(a)
    hub.unsubscribe(a)  # idempotent
    assert hub.count("f1") == 0
    hub.stop()


def test_overflow_evicts_the_slow_kiosk_and_keeps_the_others():
    hub = Hub(queue_size=3)
    slow = hub.subscribe("f", 1, threading.Event())
    fast = hub.subscribe("f", 2, threading.Event())
    for seq in range(1, 6):
        hub.publish("f", seq, f"m{seq}")
        assert fast.take() == (seq, f"m{seq}")  # the fast one keeps up
    assert slow.close_code == CLOSE_TOO_SLOW
    assert fast.close_code is None
    assert hub.evictions == 1
    hub.stop()


def test_watchdog_cuts_a_stuck_send():
    hub = Hub(queue_size=3, send_timeout=0.3)
    sub = hub.subscribe("f", 1, threading.Event())
    cut = threading.Event()
    sub.cut = cut.set
    import time

    sub.sending_since = time.monotonic()
    wait_until(cut.is_set, timeout=3, message="stuck send cut")
    assert sub.close_code == CLOSE_STALLED
    assert hub.stalled_cuts == 1
    hub.stop()


def test_close_display_reaches_all_its_sockets():
    hub = Hub()
    subs = [hub.subscribe("f", 7, threading.Event()) for _ in range(3)]
    other = hub.subscribe("f", 8, threading.Event())
    assert hub.close_display(7, 4401, "revoked") == 3
    assert all(s.close_code == 4401 and s.wakeup.is_set() for s in subs)
    assert other.close_code is None
    hub.stop()
