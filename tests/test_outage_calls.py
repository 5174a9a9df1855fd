"""What a total outage costs Density: every call answered 503, every socket refused.

A 185 s outage on 3 floors once drew 345 calls, 154 of them in its first 40 s: each logical
call was retried four times, each floor polled on its own, and each socket attempt retried its
ws_url. The budget now is 108 calls for a 5-minute outage on 3 floors, whatever they are
(tokens, spaces, polls, ws_url requests for socket attempts). Here the tokens and the space
tree run out inside the outage, so their renewals are in the count.

Real feeds, directory and client against the real simulator over loopback, with production
intervals (15 s polls, 1-60 s socket backoff, 120 s stale) on a `FakeClock`: the test moves
time a second at a time and waits, after each step, until every worker is parked on the clock
again, so five minutes run in seconds and every call the production timings make is counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from signage.core.directory import SpaceDirectory
from signage.core.feeds import FeedManager, FeedSettings
from signage.density.client import DensityClient
from signage.sim import SimServer, SimSettings
from tests.clocks import SteppedClock, settle, steady_workers
from tests.helpers import wait_until

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).

OUTAGE_S = 300.0
FLOORS = 3
BUDGET = 108
TOKEN_LIFETIME_S = 240.0
SPACES_TTL_S = 120.0


def total_calls(sim: SimServer) -> Counter[str]:
    return Counter(sim.world.calls()["calls"])


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture(params=["organisation token", "display tokens"])
def world(
    request: pytest.FixtureRequest, sim: SimServer, clock: SteppedClock
) -> Iterator[tuple[FeedManager, SpaceDirectory]]:
    """Production settings on the fake clock: client, directory (its thread running), feeds.

    Floors read with the organisation token, or each with its display's token (as `serve`
    does for displays that name a Density display id).
    """
    creds = SimSettings()
    # Tokens and the space tree run out inside the outage, so their renewals are counted too:
    # tokens live 240 s (renewed from 192 s on), the tree is kept 120 s.
    sim.world.update_settings(token_lifetime=TOKEN_LIFETIME_S)
    client = DensityClient(
        sim.url,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        clock=clock.monotonic,
        sleep=clock.sleep,  # retry backoff passes on the fake clock too
    )
    directory = SpaceDirectory(client, clock=clock, ttl=SPACES_TTL_S)
    assert directory.refresh()
    directory.start()
    displays: dict[str, str] = {}
    if request.param == "display tokens":
        for display_id, floor_id in sorted(sim.world.displays.items()):
            displays.setdefault(floor_id, display_id)
    feeds = FeedManager(
        client, directory, FeedSettings(clock=clock), lambda *_: 0, displays.get, "e1"
    )
    try:
        yield feeds, directory
    finally:
        feeds.stop()
        directory.stop()
        client.close()


@pytest.mark.timeout(120)
def test_a_five_minute_total_outage_on_three_floors_costs_at_most_108_calls(
    sim: SimServer, clock: SteppedClock, world: tuple[FeedManager, SpaceDirectory]
) -> None:
    feeds, directory = world
    floors = [f.id for f in directory.floors()][:FLOORS]
    assert len(floors) == FLOORS
    started = [feeds.acquire(f) for f in floors]
    wait_until(
        lambda: all(f.snapshot()["feed"] == "live" for f in started), 30, 0.02, "floors live"
    )

    # The outage: every API call 503 (token endpoints too), sockets cut and refused.
    sim.world.force_outage(3600)
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets()
    before = total_calls(sim)
    real_start = time.monotonic()
    # Every worker notices the cut and parks on the clock (its backoff or poll interval).
    workers = steady_workers(clock)

    elapsed = 0.0
    while elapsed < OUTAGE_S:
        clock.advance(1.0)
        elapsed += 1.0
        settle(clock, workers)
    spent = total_calls(sim) - before
    real = time.monotonic() - real_start
    by_kind = dict(sorted(spent.items()))
    print(f"{FLOORS} floors, {OUTAGE_S:.0f} s outage: {sum(spent.values())} calls {by_kind}")
    print(f"(ran in {real:.1f} s of real time)")
    assert all(f.snapshot()["feed"] == "stale" for f in started)
    assert sum(spent.values()) <= BUDGET, by_kind
    for floor in floors:
        feeds.release(floor)
