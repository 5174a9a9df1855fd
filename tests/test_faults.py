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
from collections.abc import Callable

import httpx
import pytest

from signage.config import defaults as config_defaults
from tests.clocks import SteppedClock, clocked_server, settle, steady_workers
from tests.helpers import wait_until
from tests.kiosks import Fleet

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).


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


# -- five minutes of refusal, on the fake clock ----------------------------------------------
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


@pytest.fixture
def on_clock(sim, tmp_path, monkeypatch):
    """A `SteppedClock`, and a factory of real servers whose core and client run on it."""
    # The instance folder would otherwise be the repository's: keep tests out of it.
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    clock = SteppedClock()
    started = []

    def factory(**overrides):
        server = clocked_server(sim, tmp_path, clock, **overrides)
        server.svc.config["SIGNAGE_PUBLIC_URL"] = server.url
        started.append(server)
        return server

    yield clock, factory
    for server in started:
        server.stop()


@pytest.mark.timeout(120)
def test_five_minutes_of_refused_sockets_with_production_backoff(sim, on_clock, fleet, no_errors):
    """Sockets refused for five minutes, a 429 storm inside: state kept, said, recovered.

    Production timings for everything the refusal exercises: reconnect backoff (1 s doubling to
    60 s, full jitter), presence-health polling every 15 s, stale after 120 s, the 12 req/s
    limiter and the storm's Retry-After. They run on core's fake clock, moved from one waiter's
    deadline to the next and settled after each step (every worker parked on the clock again),
    so the five minutes take seconds and every call the production timings make reaches the
    simulator and is counted. Real kiosks watch over real sockets all along; the simulator's
    refresh (1 s), the kiosk heartbeat and socket timeouts stay on the real clock.
    """
    clock, make_clocked = on_clock
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
    server = make_clocked(**timings)
    poll, stale_after = timings["SIGNAGE_POLL_INTERVAL"], timings["SIGNAGE_STALE_AFTER"]
    refusal, storm, retry_after = 300.0, 150.0, 10
    floor, rooms, kiosks = setup_floor(sim, server, fleet, kiosks=5)
    feed = server.svc.feeds.get(floor)
    # The kiosks' floor and the sibling floors their panel holds: every socket is refused.
    held = [f for f in (server.svc.feeds.get(s.id) for s in server.svc.directory.floors()) if f]
    channels = sum(len(f.channels) for f in held)

    entry = {s.id for s in server.svc.directory.rooms_of(floor) if s.counting_mode == "entry"}

    def occupied(sid: str) -> bool:
        state = sim.world.space_state(sid)
        return state.occupancy > 0 if sid in entry else state.presence

    def room_state(sid: str) -> str:
        return feed.snapshot()["rooms"][sid]["state"]

    flip(sim, fleet, rooms[0], False)
    flip(sim, fleet, rooms[1], False)

    workers = 0

    def run_until(
        limit: float, until: Callable[[], bool], what: str, honest=True, at: float | None = None
    ) -> float:
        """Move the clock from one waiter's deadline to the next (never past `at`), each step
        settled, until `until()` holds (fail after `limit` seconds), the kiosks honest at
        every step (`honest`); the clock time it took."""
        began = clock.monotonic()
        while not until():
            assert clock.monotonic() - began < limit, f"not within {limit:.0f} s: {what}"
            clock.step(1.0 if at is None else min(1.0, at - clock.monotonic()))
            settle(clock, workers)
            if honest:
                kiosks_honest(kiosks, occupied)
        return clock.monotonic() - began

    def run_to(moment: float) -> None:
        run_until(moment, lambda: clock.monotonic() >= moment, "", at=moment)

    before = sim.calls()
    started = clock.monotonic()
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets()
    fleet.wait(lambda k: k.feed == "polling", timeout=10, message="polling")
    kiosks_honest(kiosks, occupied)
    # Every worker notices the cut and parks on the clock (its backoff or poll interval); one
    # second on, the socket threads' start-up waits are over and the count holds.
    clock.advance(1.0)
    workers = steady_workers(clock)

    # 1. Polling: changes still arrive, at the poll's pace.
    sim.world.set_space(rooms[0], presence=True, health="healthy")
    run_until(poll + 10, lambda: room_state(rooms[0]) == "occupied", "polled", honest=False)
    fleet.wait(lambda k: k.state(rooms[0]) == "occupied", timeout=5, message="occupied")

    # 2. A 429 storm: polling fails too; after stale_after the kiosks say so (every room
    #    unknown, the last known state kept in small print).
    storm_at = clock.monotonic()
    calls_at_storm = sim.calls()
    sim.world.force_429(3600, retry_after=retry_after)  # ended on this clock, below
    stale_s = run_until(
        stale_after + poll + 30, lambda: feed.snapshot()["feed"] == "stale", "stale in the storm"
    )
    fleet.wait(lambda k: k.feed == "stale", timeout=5, message="kiosks stale")
    for kiosk in kiosks:
        assert all(r["state"] == "unknown" for r in kiosk.rooms.values())
        assert kiosk.rooms[rooms[0]]["last_known"] == "occupied"
        assert kiosk.rooms[rooms[1]]["last_known"] == "free"
    run_to(storm_at + storm)
    sim.world.force_429(0)
    calls_after_storm = sim.calls()

    # 3. The storm over, polling brings the rooms back while the sockets are still refused.
    back_s = run_until(
        retry_after + poll + 15, lambda: feed.snapshot()["feed"] == "polling", "polling again"
    )
    fleet.wait(lambda k: k.feed == "polling", timeout=5, message="kiosks polling")
    fleet.wait(lambda k: k.state(rooms[1]) == "free", timeout=5, message="rooms back")

    # 4. The rest of the five minutes, then the sockets come back.
    run_to(started + refusal)
    assert sim.world.space_state(rooms[0]).presence is True
    during = sim.calls()
    sim.world.set_socket_mode("normal")
    recovered_s = run_until(
        timings["SIGNAGE_BACKOFF_MAX"] + 15,
        lambda: all(f.snapshot()["feed"] == "live" for f in held),
        "live within the longest backoff",
    )
    fleet.wait(lambda k: k.feed == "live", timeout=5, message="kiosks live")
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
        f"refusal {refusal:.0f} s, {channels} channel(s) on {len(held)} floor(s): {handshakes} "
        f"socket handshakes (bound {bound} each), {total} calls to Density in all (budget "
        f"{budget:.0f}), {storm_429} answers of 429 in a {storm:.0f} s storm with Retry-After "
        f"{retry_after} s, stale {stale_s:.0f} s into the storm, polling {back_s:.0f} s after "
        f"it, live again {recovered_s:.0f} s after the refusal ended; calls by kind: {by_call}"
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
