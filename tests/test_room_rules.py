"""The room rules (core/rooms.py) through both feeds: the same honesty cases, one definition.

Each case runs once through a `FloorFeed` and once through a `ClusterFeed` (Redis mode, with a
real redis-server: this process takes the floor's lease, runs the FloorFeed and mirrors it from
Redis). Rooms are read the way a joining kiosk gets them, from `snapshot()`. The simulator is
real and spoken to over loopback; raw frames go through its control API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import signage.core.rooms
from signage.core.feeds import Feed, FeedSettings, FloorFeed
from signage.density.client import DensityClient
from signage.density.models import Space
from signage.fleet import Cluster
from signage.sim import SimServer, SimSettings
from tests.helpers import wait_until
from tests.redis_server import RedisServer, redis_server  # noqa: F401 (fixture)

# Short intervals; the simulator's own refresh is slow (30 s) so that a raw frame sent through
# the control API is not overwritten by the next refresh while a case looks at it.
SETTINGS = FeedSettings(
    ping_interval=1.0,
    ping_timeout=1.0,
    silence_timeout=60.0,
    snapshot_wait=0.5,
    poll_interval=0.5,
    stale_after=2.5,
    backoff_base=0.2,
    backoff_max=1.0,
    sensor_health_interval=300.0,
    linger=1.0,
)


@pytest.fixture
def quiet_sim(sim_shape: str) -> Iterator[SimServer]:
    with SimServer(SimSettings(refresh_interval=30.0, shape=sim_shape), seed=1) as server:
        yield server


@dataclass
class Floor:
    """One floor's feed (either kind) against the simulator, read as a kiosk would."""

    sim: SimServer
    feed: Feed
    floor_id: str
    oa: list[str]
    entry: list[str]
    stops: list[Callable[[], Any]] = field(default_factory=list)

    def room(self, sid: str) -> dict[str, Any]:
        return self.feed.snapshot()["rooms"][sid]

    def wait(self, sid: str, message: str, timeout: float = 10.0, **expected: Any) -> None:
        def matches() -> bool:
            room = self.room(sid)
            return all(room.get(k) == v for k, v in expected.items())

        wait_until(matches, timeout, 0.05, f"{message}: wanted {expected}, last {self.room(sid)}")

    def send(self, entries: dict[str, dict[str, Any]]) -> None:
        """A raw `live` frame to the floor's open sockets (presence and occupancy).

        Only once both sockets are live: a REST snapshot taken while one is still connecting
        would put the simulator's own state back over the frame.
        """
        text = json.dumps({"update_type": "live", "data": entries})
        wait_until(lambda: self.feed.snapshot()["feed"] == "live", 10, 0.05, "both sockets live")
        assert self.sim.world.send_raw(text, self.floor_id) == 2


def _floor_with_entry_rooms(sim: SimServer, client: DensityClient) -> tuple[str, list[Space]]:
    spaces = sim.world.state()["spaces"]
    floors: dict[str, list[str]] = {}
    for sid, info in spaces.items():
        floors.setdefault(info["floor_id"], []).append(sid)
    floor_id = next(
        fid
        for fid, sids in sorted(floors.items())
        if any(spaces[s]["counting_mode"] == "entry" for s in sids)
        and any(spaces[s]["counting_mode"] == "oa" for s in sids)
    )
    rooms = [s for s in client.spaces() if s.id in floors[floor_id]]
    return floor_id, rooms


@pytest.fixture(params=["floor_feed", "cluster_feed"])
def floor(request, quiet_sim: SimServer, tmp_path) -> Iterator[Floor]:
    """The same floor behind a FloorFeed, or behind a ClusterFeed holding it through Redis."""
    sim = quiet_sim
    creds = SimSettings()
    client = DensityClient(sim.url, client_id=creds.client_id, client_secret=creds.client_secret)
    floor_id, rooms = _floor_with_entry_rooms(sim, client)
    space = next((s for s in client.spaces() if s.id == floor_id), None)
    # Every room starts free and healthy, so each case begins from a confident "free".
    for r in rooms:
        sim.world.set_space(r.id, occupancy=0, presence=False, health="healthy")
    published: list[str] = []
    stops: list[Callable[[], Any]] = [client.close]
    if request.param == "floor_feed":
        feed = FloorFeed(
            floor_id,
            client,
            space,
            rooms,
            SETTINGS,
            lambda _f, _s, text: published.append(text),
            lambda: None,
            "e1",
        ).start()
        stops.insert(0, feed.stop)
    else:
        redis = RedisServer(tmp_path / "redis").start()
        cluster = Cluster(redis.url, lease_ttl=3.0, lease_renew=0.3, stale_after=2.5)
        feed = cluster.feed_factory(
            floor_id,
            client,
            space,
            rooms,
            SETTINGS,
            lambda _f, _s, text: published.append(text),
            lambda: None,
            "e1",
        ).start()
        stops[:0] = [feed.stop, cluster.close, redis.stop]
        wait_until(lambda: feed.holding, 10, 0.05, "this process holds the floor")
    oa = [r.id for r in rooms if r.counting_mode != "entry"]
    entry = [r.id for r in rooms if r.counting_mode == "entry"]
    f = Floor(sim, feed, floor_id, oa, entry, stops)
    try:
        f.wait(oa[0], "first answer", state="free")
        yield f
    finally:
        for stop in stops:
            stop()


# -- the cases ------------------------------------------------------------------------------
def test_both_feeds_keep_the_feed_contract(floor: Floor) -> None:
    # What the views, the building and the feed manager use of a feed (core/feeds.py `Feed`).
    assert isinstance(floor.feed, Feed)
    assert floor.feed.floor_id == floor.floor_id and set(floor.feed.rooms) >= set(floor.oa)
    snapshot = floor.feed.snapshot()
    assert snapshot["seq"] <= floor.feed.seq and floor.feed.heartbeat()["type"] == "heartbeat"


def test_free_only_when_unoccupied_healthy_and_fresh(floor: Floor) -> None:
    room, world = floor.oa[0], floor.sim.world
    floor.wait(room, "free and healthy", state="free", reason=None, health="healthy")
    world.set_space(room, health="degraded")
    floor.wait(room, "degraded", state="unknown", reason="sensor_degraded", last_known="free")
    world.set_space(room, presence=True, health="offline")
    floor.wait(room, "offline", state="unknown", reason="sensor_offline", last_known="occupied")
    world.set_space(room, health="unknown")
    floor.wait(room, "not verified", state="unknown", reason="not_verified")
    world.set_space(room, health="healthy")
    floor.wait(room, "occupied and healthy", state="occupied", reason=None)


def test_a_rule_changed_once_changes_both_feeds(floor: Floor, monkeypatch) -> None:
    monkeypatch.setitem(signage.core.rooms.UNHEALTHY_REASONS, "degraded", "rule_changed_once")
    floor.sim.world.set_space(floor.oa[0], health="degraded")
    floor.wait(floor.oa[0], "the changed rule", state="unknown", reason="rule_changed_once")


def test_a_frame_without_health_keeps_the_rooms_health(floor: Floor) -> None:
    quiet, marker = floor.oa[0], floor.oa[1]
    floor.wait(quiet, "free and healthy", state="free", health="healthy")
    # A floor-wide frame with presence only: it says nothing of health, so `quiet` stays free.
    floor.send(
        {
            quiet: {"presence": False, "counting_mode": "oa"},
            marker: {"presence": True, "counting_mode": "oa"},
        }
    )
    floor.wait(marker, "the frame applied", state="occupied", health="healthy")
    assert floor.room(quiet)["state"] == "free", floor.room(quiet)
    assert floor.room(quiet)["health"] == "healthy"
    # A frame that does carry a health sets it.
    floor.send({quiet: {"presence": False, "space_health_status": "offline"}})
    floor.wait(quiet, "health given", state="unknown", reason="sensor_offline")


@pytest.mark.parametrize(
    ("wire", "count", "capped"), [("3", 3, False), (3.0, 3, False), ("3+", 3, True)]
)
def test_counts_on_the_socket_in_every_shape(floor: Floor, wire: Any, count: int, capped: bool):
    room = floor.entry[0]
    floor.wait(room, "entry room free", state="free", count=0)
    floor.send({room: {"occupancy": wire, "counting_mode": "entry"}})
    floor.wait(room, f"count {wire!r}", state="occupied", count=count, capped=capped)
    assert floor.feed.malformed_frames == 0


def test_stale_when_density_is_unreachable(floor: Floor) -> None:
    world = floor.sim.world
    world.set_socket_mode("refuse")
    world.force_429(60, retry_after=1)
    world.drop_sockets(floor.floor_id)
    for room in (floor.oa[0], floor.entry[0]):
        floor.wait(room, "unreachable", timeout=15, state="unknown", reason="stale")
    assert floor.room(floor.oa[0])["last_known"] == "free"
    assert floor.feed.snapshot()["feed"] == "stale"


def test_entry_rooms_get_their_health_while_polling(floor: Floor) -> None:
    world = floor.sim.world
    room = floor.entry[0]
    world.set_socket_mode("refuse")
    world.drop_sockets(floor.floor_id)
    wait_until(lambda: floor.feed.snapshot()["feed"] == "polling", 10, 0.05, "polling")
    # Counts come from occupancy/current (no health there); health from the room's sensors.
    world.set_space(room, occupancy=2, health="offline")
    floor.wait(room, "sensor health while polling", state="unknown", reason="sensor_offline")
    world.set_space(room, occupancy=0, health="healthy")
    floor.wait(room, "healthy again while polling", state="free", reason=None, count=0)
