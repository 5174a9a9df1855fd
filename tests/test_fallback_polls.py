"""Floors on their fallback share one presence-health poll per interval, sent once.

Real feeds (FeedManager, FloorFeed, SharedPolls) against the real simulator over loopback, on a
`FakeClock`: the test moves time one poll interval at a time and counts the calls the
simulator received, so production intervals (15 s polls) run in a moment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from signage.core.clock import FakeClock
from signage.core.directory import SpaceDirectory
from signage.core.feeds import FeedManager, FeedSettings
from signage.density.client import DensityClient
from signage.sim import SimServer, SimSettings
from tests.helpers import wait_until

PRESENCE_HEALTH = "POST /v3/analytics/presence-health"


def presence_calls(sim: SimServer) -> int:
    return sim.world.calls()["calls"].get(PRESENCE_HEALTH, 0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(sim: SimServer, clock: FakeClock) -> Iterator[FeedManager]:
    # Production intervals, except a backoff so long that the floors stay on their fallback
    # for the whole test (the socket is refused anyway).
    settings = FeedSettings(backoff_base=1e9, backoff_max=1e9, clock=clock)
    creds = SimSettings()
    client = DensityClient(sim.url, client_id=creds.client_id, client_secret=creds.client_secret)
    directory = SpaceDirectory(client, clock=clock)
    assert directory.refresh()
    feeds = FeedManager(client, directory, settings, lambda *_: 0, lambda _f: None, "e1")
    try:
        yield feeds
    finally:
        feeds.stop()
        client.close()


def test_two_floors_on_fallback_make_one_presence_health_call_per_interval(
    sim: SimServer, manager: FeedManager, clock: FakeClock
) -> None:
    sim.world.set_socket_mode("refuse")
    floors = [f.id for f in manager.directory.floors()][:2]
    assert len(floors) == 2
    feeds = [manager.acquire(f) for f in floors]
    shared = manager.shared_polls
    # Each floor's first REST snapshot is its own; then both sockets are refused and both
    # floors join the shared poll (its first round is at once).
    wait_until(
        lambda: (
            all(f.channels[0].mode == "polling" for f in feeds)
            and all(c in shared._channels for f in feeds for c in f.channels[:1])
        ),
        15,
        0.02,
        "both floors on their fallback",
    )
    # The round that ran when the first floor joined may have missed the second: one more.
    rounds_before = shared.rounds
    clock.advance(manager.settings.poll_interval)
    wait_until(lambda: shared.rounds > rounds_before, 10, 0.02, "a shared round")
    before, rounds = presence_calls(sim), shared.rounds

    for n in range(1, 6):
        clock.advance(manager.settings.poll_interval)
        wait_until(lambda n=n: shared.rounds >= rounds + n, 10, 0.02, f"round {n}")
    calls = presence_calls(sim) - before
    print(f"2 floors on fallback, 5 poll intervals: {calls} presence-health calls")
    assert calls == 5
    # Both floors heard from Density in every round: fresh, not stale.
    assert all(f.snapshot()["feed"] == "polling" for f in feeds)

    # Density refuses (429): each round's call is sent once, not retried; the loop is the retry.
    sim.world.force_429(3600, retry_after=1)
    before, rounds = presence_calls(sim), shared.rounds
    for n in range(1, 4):
        clock.advance(manager.settings.poll_interval)
        wait_until(lambda n=n: shared.rounds >= rounds + n, 15, 0.02, f"refused round {n}")
    assert presence_calls(sim) - before == 3
    # Past stale_after without an answer: both floors say so.
    clock.advance(manager.settings.stale_after)
    wait_until(lambda: all(f.snapshot()["feed"] == "stale" for f in feeds), 10, 0.02, "both stale")
    for floor in floors:
        manager.release(floor)


def test_entry_rooms_get_their_health_from_sensors_in_the_shared_poll(
    sim: SimServer, manager: FeedManager, clock: FakeClock
) -> None:
    spaces = sim.world.state()["spaces"]
    entry = sorted(s for s, info in spaces.items() if info["counting_mode"] == "entry")
    room = entry[0]
    floor = spaces[room]["floor_id"]
    sim.world.set_space(room, occupancy=0, health="healthy")
    sim.world.set_socket_mode("refuse")
    feed = manager.acquire(floor)
    shared = manager.shared_polls

    def state() -> tuple[Any, ...]:
        r = feed.snapshot()["rooms"][room]
        return r["state"], r["reason"], r["count"]

    def a_round_that_started_after_now() -> None:
        # A round may be under way as the clock moves (it read the simulator before the change)
        # and then wait out the rest of its interval: two more rounds, the second of which
        # started after this call.
        start = shared.rounds
        for n in (1, 2):
            clock.advance(manager.settings.poll_interval)
            wait_until(lambda n=n: shared.rounds >= start + n, 10, 0.02, f"shared round {n}")

    wait_until(lambda: len(shared._channels) == len(feed.channels), 15, 0.02, "on fallback")
    # occupancy/current carries no health: the shared round reads the entry rooms' sensors.
    sim.world.set_space(room, occupancy=2, health="offline")
    a_round_that_started_after_now()
    wait_until(lambda: state() == ("unknown", "sensor_offline", 2), 10, 0.02, "offline")
    sim.world.set_space(room, occupancy=0, health="healthy")
    a_round_that_started_after_now()
    wait_until(lambda: state() == ("free", None, 0), 10, 0.02, "healthy and free again")
    manager.release(floor)
