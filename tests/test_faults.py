"""Upstream faults on loopback: kiosks keep their last state, say so, and recover.

Each test drives the simulator into a fault while real kiosks watch, then checks the kiosks'
view, the recovery, and that no thread raised (unhandled thread exceptions fail the run, see
pyproject.toml) and nothing was logged at ERROR.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import time
from collections.abc import Callable

import httpx
import pytest

from signage.config import defaults as config_defaults
from tests.helpers import wait_until
from tests.kiosks import Fleet

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).
pytestmark = pytest.mark.both_shapes


@pytest.fixture
def fleet():
    f = Fleet()
    yield f
    f.stop()


@pytest.fixture
def no_errors(caplog):
    caplog.set_level(logging.INFO)
    yield
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("signage")
    ]
    assert errors == [], [r.getMessage() for r in errors]


def setup_floor(sim, server, fleet, kiosks=3, with_display_id=False):
    floor = server.svc.directory.floors()[0].id
    density_id = None
    if with_display_id:
        density_id = next(d for d, f in sorted(sim.world.displays.items()) if f == floor)
    _, cred = server.add_display(floor, density_id)
    watchers = fleet.add(server.socket_url(cred), kiosks)
    fleet.wait(lambda k: k.feed == "live", timeout=10, message="live")
    rooms = [s.id for s in server.svc.directory.rooms_of(floor) if s.counting_mode != "entry"]
    return floor, rooms, watchers


def flip(sim, fleet, room, occupied, timeout=5.0):
    sim.world.set_space(room, presence=occupied, health="healthy")
    want = "occupied" if occupied else "free"
    fleet.wait(lambda k: k.state(room) == want, timeout=timeout, message=f"{room} {want}")


def test_malformed_and_oversized_frames_are_counted_and_skipped(sim, server, fleet, no_errors):
    floor, rooms, kiosks = setup_floor(sim, server, fleet)
    flip(sim, fleet, rooms[0], True)
    bad_frames = [
        "not json",
        "[1, 2, 3]",
        json.dumps({"update_type": "teleport", "data": {}}),
        json.dumps({"update_type": "live", "data": "nope"}),
        json.dumps({"update_type": "live", "data": {rooms[0]: {"presence": "maybe"}}}),
        json.dumps({"update_type": "live"}),
        json.dumps({"update_type": "refresh", "data": {"x": 1}, "padding": "y" * 1_500_000}),
    ]
    for text in bad_frames:
        sim.world.send_raw(text, floor)
    feed = server.svc.feeds.get(floor)
    wait_until(lambda: feed.malformed_frames >= 5, timeout=5, message="malformed counted")
    # Nothing changed on the kiosks because of it, and real changes still arrive.
    assert all(k.state(rooms[0]) == "occupied" for k in kiosks)
    flip(sim, fleet, rooms[0], False)
    flip(sim, fleet, rooms[1], True)
    assert all(k.feed == "live" and k.seqs_monotonic() for k in kiosks)
    text = httpx.get(f"{server.url}/metrics").text
    assert "signage_upstream_malformed_frames_total 0.0" not in text


def test_token_expiry_mid_stream(sim, make_server, fleet, no_errors):
    sim.world.update_settings(token_lifetime=3)
    server = make_server()
    floor, rooms, kiosks = setup_floor(sim, server, fleet, with_display_id=True)
    display_id = server.svc.token_display_for_floor(floor)
    before = sim.calls()["calls"].get("POST /v3/wayfinding/token", 0)
    for round_ in range(4):  # across four token lifetimes, with reconnects in between
        flip(sim, fleet, rooms[round_ % 3], bool(round_ % 2 == 0), timeout=8)
        # Let the token the socket was opened with run out, then cut the socket.
        wait_until(
            lambda: (server.svc.client.token_expiry(display_id) or 0) < 0.5,
            timeout=8,
            message="token near expiry",
        )
        opened = sim.calls()["sockets_opened"].get(floor, 0)
        assert sim.world.drop_sockets(floor) >= 1
        # drop_sockets only asks the sessions to end: until the feed has opened a new socket
        # the old one may still count as open and the feed still read "live", so wait for the
        # reconnect itself, made with a token renewed after the old one ran down.
        wait_until(
            lambda opened=opened: (
                sim.calls()["sockets_opened"].get(floor, 0) > opened
                and (server.svc.client.token_expiry(display_id) or 0) > 1.0
            ),
            timeout=10,
            message="reconnected with a renewed token",
        )
        fleet.wait(lambda k: k.feed in ("live", "polling"), timeout=8)
        wait_until(lambda: sim.sockets_open(floor, kind="presence") == 1, timeout=10)
        wait_until(lambda: server.svc.feeds.get(floor).mode == "live", timeout=10)
    calls = sim.calls()
    assert calls["expired_token_uses"] == 0
    assert calls["status"].get("401", 0) == 0
    renewed = calls["calls"]["POST /v3/wayfinding/token"] - before
    assert renewed >= 4  # the token really ran down and was renewed in each round
    assert all(k.seqs_monotonic() for k in kiosks)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_refused_sockets_and_a_429_storm_then_recovery(sim, server, fleet, no_errors):
    """Sockets refused for a long spell (30 stale-intervals' worth), a 429 storm inside it."""
    floor, rooms, kiosks = setup_floor(sim, server, fleet)
    flip(sim, fleet, rooms[0], False)
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets(floor)
    fleet.wait(lambda k: k.feed == "polling", timeout=8, message="polling")
    flip(sim, fleet, rooms[1], True, timeout=8)  # changes still arrive by polling

    sim.world.force_429(12, retry_after=2)  # the storm: polling fails too
    fleet.wait(lambda k: k.feed == "stale", timeout=15, message="stale in the storm")
    for kiosk in kiosks:
        assert all(r["state"] == "unknown" for r in kiosk.rooms.values())
        assert kiosk.rooms[rooms[0]]["last_known"] == "free"  # the last known state is kept
    fleet.wait(lambda k: k.feed == "polling", timeout=30, message="polling after the storm")

    calls_before = sum(sim.calls()["calls"].values())
    sim.world.set_socket_mode("normal")
    fleet.wait(lambda k: k.feed == "live", timeout=15, message="live again")
    flip(sim, fleet, rooms[0], True)
    assert all(k.seqs_monotonic() for k in kiosks)
    # Polling stayed inside the budget: no 429 from our own pace once the storm ended.
    assert sum(sim.calls()["calls"].values()) - calls_before < 100


# -- the literal five-minute refusal ------------------------------------------------------------
def reconnect_bound(base: float, cap: float, seconds: float, p: float = 1e-6) -> int:
    """Socket attempts a channel cannot reach in `seconds` except with probability below `p`.

    Attempt k waits uniform(0, min(cap, base * 2**k)) (full jitter, signage/density/backoff.py).
    n attempts fit in T seconds only if the n delays sum to at most T, and the chance of that
    is at most the simplex's share of the box: T**n / (n! * product of the ceilings).
    """
    log_p, log_share, n = math.log(p), 0.0, 0
    while log_share >= log_p:
        ceiling = min(cap, base * 2**n)
        n += 1
        log_share += math.log(seconds) - math.log(n) - math.log(ceiling)
    return n


def test_reconnect_bound_is_what_the_backoff_allows():
    from signage.density.backoff import Backoff

    bound = reconnect_bound(1.0, 60.0, 300.0)
    assert 20 < bound < 40  # loose enough never to flake, tight enough to catch a hot loop
    # Simulated: 2000 refusals of 300 s each with the real Backoff never come near the bound.
    rng = random.Random(8)
    worst = 0
    for _ in range(2000):
        backoff, elapsed, attempts = Backoff(1.0, 60.0, rng=rng), 0.0, 0
        while (elapsed := elapsed + backoff.next()) <= 300.0:
            attempts += 1
        worst = max(worst, attempts)
    assert worst < bound
    assert 300 / 5 > bound  # while a plain retry every 5 s would break it: it has teeth


def kiosks_honest(kiosks, occupied) -> None:
    """No kiosk shows a room free that the simulator has occupied, nor any room free when stale."""
    for kiosk in kiosks:
        assert kiosk.connected, "a kiosk lost its socket"
        for sid, room in kiosk.rooms.items():
            if room["state"] == "free":
                assert kiosk.feed != "stale"
                assert not occupied(sid), f"{sid} shown free while occupied"


@pytest.mark.slow
@pytest.mark.one_shape  # five real minutes; its subject is timing, not the data's shape
@pytest.mark.timeout(900)
def test_five_minutes_of_refused_sockets_with_production_backoff(
    sim, make_server, fleet, no_errors
):
    """Sockets refused for five real minutes, a 429 storm inside: state kept, said, recovered.

    Production timings for everything the refusal exercises: reconnect backoff (1 s doubling to
    60 s, full jitter), presence-health polling every 15 s, stale after 120 s, the 12 req/s
    limiter. Only the simulator's refresh (1 s) and the kiosk heartbeat stay fast.
    """
    prod = config_defaults()
    timings = {
        name: prod[name]
        for name in (
            "SIGNAGE_BACKOFF_BASE",
            "SIGNAGE_BACKOFF_MAX",
            "SIGNAGE_POLL_INTERVAL",
            "SIGNAGE_STALE_AFTER",
            "SIGNAGE_UPSTREAM_RATE",
            "SIGNAGE_UPSTREAM_BURST",
        )
    }
    server = make_server(**timings)
    poll, stale_after = timings["SIGNAGE_POLL_INTERVAL"], timings["SIGNAGE_STALE_AFTER"]
    refusal, storm, retry_after = 300.0, 150.0, 10
    floor, rooms, kiosks = setup_floor(sim, server, fleet, kiosks=5)
    channels = len(server.svc.feeds.get(floor).channels)

    entry = {s.id for s in server.svc.directory.rooms_of(floor) if s.counting_mode == "entry"}

    def occupied(sid: str) -> bool:
        state = sim.world.space_state(sid)
        return state.occupancy > 0 if sid in entry else state.presence

    flip(sim, fleet, rooms[0], False)
    flip(sim, fleet, rooms[1], False)

    def hold(until: float, also: Callable[[], bool] | None = None) -> None:
        """Let the fault run until `until`, checking the kiosks stay honest all along."""
        while time.monotonic() < until and not (also and also()):
            kiosks_honest(kiosks, occupied)
            time.sleep(0.25)

    before = sim.calls()
    started = time.monotonic()
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets(floor)
    fleet.wait(lambda k: k.feed == "polling", timeout=10, message="polling")
    kiosks_honest(kiosks, occupied)

    # 1. Polling: changes still arrive, at the poll's pace.
    flip(sim, fleet, rooms[0], True, timeout=poll + 10)

    # 2. A 429 storm: polling fails too; after stale_after the kiosks say so (every room
    #    unknown, the last known state kept in small print).
    storm_at = time.monotonic()
    calls_at_storm = sim.calls()
    sim.world.force_429(storm, retry_after=retry_after)
    hold(storm_at + stale_after + poll + 30, lambda: all(k.feed == "stale" for k in kiosks))
    stale_s = time.monotonic() - storm_at
    for kiosk in kiosks:
        assert kiosk.feed == "stale"
        assert all(r["state"] == "unknown" for r in kiosk.rooms.values())
        assert kiosk.rooms[rooms[0]]["last_known"] == "occupied"
        assert kiosk.rooms[rooms[1]]["last_known"] == "free"
    hold(storm_at + storm)
    calls_after_storm = sim.calls()

    # 3. The storm over, polling brings the rooms back while the sockets are still refused.
    fleet.wait(lambda k: k.feed == "polling", timeout=retry_after + poll + 15, message="polling")
    back_s = time.monotonic() - (storm_at + storm)
    fleet.wait(lambda k: k.state(rooms[1]) == "free", timeout=5, message="rooms back")

    # 4. The rest of the five minutes, then the sockets come back.
    hold(started + refusal)
    assert sim.world.space_state(rooms[0]).presence is True
    during = sim.calls()
    sim.world.set_socket_mode("normal")
    ended = time.monotonic()
    fleet.wait(
        lambda k: k.feed == "live",
        timeout=timings["SIGNAGE_BACKOFF_MAX"] + 15,
        message="live within the longest backoff",
    )
    recovered_s = time.monotonic() - ended
    flip(sim, fleet, rooms[1], True)

    # Kiosks never dropped, never saw a sequence go backwards, never needed a resync.
    for kiosk in kiosks:
        assert kiosk.connected and kiosk.snapshots == 1 and kiosk.seqs_monotonic()

    def delta(a, b, key):
        return b["calls"].get(key, 0) - a["calls"].get(key, 0)

    handshakes = delta(before, during, "GET /ws/{ticket}")
    bound = reconnect_bound(
        timings["SIGNAGE_BACKOFF_BASE"], timings["SIGNAGE_BACKOFF_MAX"], refusal
    )
    assert 3 * channels <= handshakes < bound * channels  # kept trying, never in a hot loop
    storm_429 = int(calls_after_storm["status"].get("429", 0)) - int(
        calls_at_storm["status"].get("429", 0)
    )
    # No amplification: each 429 pauses every caller for Retry-After, so the storm draws about
    # one request per pause, not one per caller and retry.
    assert 0 < storm_429 <= 2 * (storm / retry_after + 1)
    assert during["rate_limited"] == before["rate_limited"]  # none drawn by our own pace
    total = sum(during["calls"].values()) - sum(before["calls"].values())
    budget = channels * (refusal / poll + 1 + 2 * bound) + storm_429 + 10
    by_call = {k: delta(before, during, k) for k in during["calls"] if delta(before, during, k)}
    assert total <= budget, by_call
    metrics = httpx.get(f"{server.url}/metrics").text
    assert re.search(r"^signage_upstream_429_total [1-9]", metrics, re.M)
    print(
        f"refusal {refusal:.0f} s, {channels} channel(s): {handshakes} socket handshakes "
        f"(bound {bound} each), {total} calls to Density in all (budget {budget:.0f}), "
        f"{storm_429} answers of 429 in a {storm:.0f} s storm with Retry-After {retry_after} s, "
        f"stale {stale_s:.0f} s into the storm, polling {back_s:.0f} s after it, "
        f"live again {recovered_s:.1f} s after the refusal ended; calls by kind: {by_call}"
    )


def test_a_client_closed_mid_call_raises_its_own_error_not_httpx_runtime_error(sim):
    """Shutdown closes the client while a feed thread is between its check and its request."""
    from signage.density.client import DensityClient
    from signage.density.errors import DensityError
    from signage.density.ratelimit import RateLimiter

    class ClosingLimiter(RateLimiter):
        """Lets the call past the client's own closed check, then closes it (another thread)."""

        client: DensityClient

        def acquire(self, timeout: float | None = None) -> None:
            super().acquire(timeout)
            self.client.close()

    limiter = ClosingLimiter()
    client = DensityClient(sim.url, api_token=sim.world.settings.static_token, limiter=limiter)
    limiter.client = client
    with pytest.raises(DensityError, match="client is closed"):
        client.spaces()
