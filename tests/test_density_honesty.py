"""What a floor may claim when Density's answers are partial, old or shaped unusually.

Against the real simulator over loopback: a floor made only of doorway-counted rooms, an entry
room whose sensor health stops being read, a sensor naming several spaces, and rooms a whole
answer (a presence-health poll, a socket `refresh`) leaves out. Where time matters the feed
runs on a `FakeClock` and the test drives its channel by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from signage.actions.displays import directory_note
from signage.core.clock import FakeClock
from signage.core.directory import SpaceDirectory
from signage.core.feeds import Doorways, FeedSettings, FloorFeed, read_sensor_health
from signage.core.rooms import sensors_by_space
from signage.density.client import DensityClient
from signage.density.models import SensorHealth, Space
from signage.sim import SimServer, SimSettings
from tests.helpers import wait_until

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).


@pytest.fixture
def client(sim: SimServer) -> Iterator[DensityClient]:
    creds = SimSettings()
    c = DensityClient(sim.url, client_id=creds.client_id, client_secret=creds.client_secret)
    try:
        yield c
    finally:
        c.close()


def _floor(sim: SimServer, client: DensityClient, mode: str) -> tuple[Space, list[Space]]:
    """A floor with rooms of `mode` ("entry" or "oa"), and those rooms only, all free."""
    spaces = sim.world.state()["spaces"]
    floor_id = sorted(
        info["floor_id"] for info in spaces.values() if info["counting_mode"] == mode
    )[0]
    listed = client.spaces()
    floor = next(s for s in listed if s.id == floor_id)
    rooms = [
        s
        for s in listed
        if s.id in spaces
        and spaces[s.id]["floor_id"] == floor_id
        and spaces[s.id]["counting_mode"] == mode
    ]
    for room in rooms:
        sim.world.set_space(room.id, occupancy=0, presence=False, health="healthy")
    return floor, rooms


def _feed(
    floor: Space, rooms: list[Space], client: DensityClient, settings: FeedSettings
) -> tuple[FloorFeed, list[dict[str, Any]]]:
    published: list[dict[str, Any]] = []
    feed = FloorFeed(
        floor.id,
        client,
        floor,
        rooms,
        settings,
        lambda _f, _s, text: published.append(json.loads(text)),
        lambda: None,
        "e1",
    )
    return feed, published


def test_a_floor_of_entry_rooms_on_its_fallback_is_not_stale(
    sim: SimServer, client: DensityClient
) -> None:
    # Only doorway counters: Density has no presence socket for such a floor, and here no socket
    # at all, yet every count poll answers. The floor is polling and its rooms free.
    floor, rooms = _floor(sim, client, "entry")
    sim.world.set_socket_mode("refuse")
    settings = FeedSettings(
        poll_interval=0.2, stale_after=1.0, backoff_base=0.2, backoff_max=0.5, snapshot_wait=0.1
    )
    feed, _ = _feed(floor, rooms, client, settings)
    feed.start()
    try:
        occupancy = next(c for c in feed.channels if c.kind == "occupancy")
        # Well past stale_after since the feed started, with polls answered meanwhile.
        wait_until(lambda: occupancy.polls >= 8, 15, 0.05, "count polls answered")
        wait_until(
            lambda: feed.clock.monotonic() - feed.started_at > 2 * settings.stale_after,
            5,
            0.05,
            "past stale_after",
        )
        snap = feed.snapshot()
        assert snap["feed"] == "polling", (snap["feed"], snap["feed_reason"], feed.status())
        assert {r["state"] for r in snap["rooms"].values()} == {"free"}, snap["rooms"]
        assert [c.kind for c in feed.channels] == ["occupancy"]
    finally:
        feed.stop()


def test_an_entry_rooms_health_read_long_ago_vouches_for_nothing(
    sim: SimServer, client: DensityClient
) -> None:
    clock = FakeClock()
    settings = FeedSettings(clock=clock)  # production intervals: 120 s stale, 300 s health
    floor, rooms = _floor(sim, client, "entry")
    feed, published = _feed(floor, rooms, client, settings)
    occupancy = next(c for c in feed.channels if c.kind == "occupancy")
    room = rooms[0].id
    assert occupancy._poll()  # counts and the sensors' health, from the simulator
    assert feed.snapshot()["rooms"][room]["state"] == "free"
    # Counts keep answering every poll; the sensor-health read does not (it fails, or the
    # sensor left its answer). Two health intervals on, the room is no longer vouched for.
    limit = max(settings.stale_after, 2 * settings.sensor_health_interval)
    ids = [r.id for r in rooms]
    elapsed = 0.0
    while elapsed <= limit:
        clock.advance(settings.poll_interval)
        elapsed += settings.poll_interval
        occupancy.take_counts(client.current_occupancy(ids))
        feed.tick()
        state = feed.snapshot()["rooms"][room]
        if elapsed <= limit - settings.poll_interval:
            assert state["state"] == "free", (elapsed, state)
    state = feed.snapshot()["rooms"][room]
    assert (state["state"], state["reason"]) == ("unknown", "not_verified"), state
    # Kiosks were told, not only those who join now.
    told = [m["rooms"][room] for m in published if room in m.get("rooms", {})]
    assert told and told[-1]["reason"] == "not_verified", told[-1:]
    # A fresh health read vouches again.
    assert feed.read_entry_health(ids)
    assert feed.snapshot()["rooms"][room]["state"] == "free"


def test_an_entry_room_whose_sensor_left_the_answer_is_not_verified(
    sim: SimServer, client: DensityClient
) -> None:
    clock = FakeClock()
    floor, rooms = _floor(sim, client, "entry")
    feed, _ = _feed(floor, rooms, client, FeedSettings(clock=clock))
    occupancy = feed.channels[0]
    room, ids = rooms[0].id, [r.id for r in rooms]
    assert occupancy._poll()
    assert feed.snapshot()["rooms"][room]["state"] == "free"
    # The sensor-health answer, as the simulator gives it, with the room's doorway sensor gone
    # (unmapped in Density): the room no longer has a health, whatever it was.
    doorways = Doorways(client, clock)
    feed.set_sensor_health(read_sensor_health(_WithoutSensorOf(client, room), ids, doorways) or {})
    state = feed.snapshot()["rooms"][room]
    assert (state["state"], state["reason"]) == ("unknown", "not_verified"), state
    assert all(feed.snapshot()["rooms"][i]["state"] == "free" for i in ids if i != room)


class _WithoutSensorOf:
    """The real client, its sensor-health answer leaving out one room's sensors."""

    def __init__(self, client: DensityClient, room: str) -> None:
        self.client, self.room = client, room

    def sensor_health(self, space_ids: list[str], retries: int | None = None) -> Any:
        found = self.client.sensor_health(space_ids=space_ids, retries=retries)
        return [s for s in found if self.room not in (s.space_ids or (s.space_id,))]


def test_a_sensor_naming_its_floor_and_room_counts_for_both() -> None:
    sensor = SensorHealth.from_json(
        {"serial_number": "DOOR2", "health_status": "offline", "space_ids": ["spc_f", "spc_r"]}
    )
    assert sensor is not None
    assert sensor.space_id == "spc_f"
    assert sensors_by_space([sensor]) == {
        "spc_f": [("DOOR2", "offline")],
        "spc_r": [("DOOR2", "offline")],
    }


def test_a_room_left_out_of_a_presence_health_answer_is_not_confident(
    sim: SimServer, client: DensityClient
) -> None:
    clock = FakeClock()
    floor, rooms = _floor(sim, client, "oa")
    feed, _ = _feed(floor, rooms, client, FeedSettings(clock=clock))
    presence = feed.channels[0]
    ids = [r.id for r in rooms]
    gone, kept = ids[0], ids[1]
    presence.take_presence(client.presence_health(ids))
    assert feed.snapshot()["rooms"][gone]["state"] == "free"
    # Density's answer for the floor's rooms no longer lists one (its sensor was unmapped).
    answer = client.presence_health(ids)
    del answer[gone]
    clock.advance(15)
    presence.take_presence(answer)
    rooms_now = feed.snapshot()["rooms"]
    assert (rooms_now[gone]["state"], rooms_now[gone]["reason"]) == ("unknown", "not_verified")
    assert rooms_now[kept]["state"] == "free"
    # Listed again: confident again.
    presence.take_presence(client.presence_health(ids))
    assert feed.snapshot()["rooms"][gone]["state"] == "free"


def test_a_room_left_out_of_a_refresh_frame_is_not_confident(
    sim: SimServer, client: DensityClient
) -> None:
    floor, rooms = _floor(sim, client, "oa")
    settings = FeedSettings(
        ping_interval=1.0,
        ping_timeout=1.0,
        silence_timeout=60.0,
        snapshot_wait=0.5,
        poll_interval=0.5,
        stale_after=30.0,
        backoff_base=0.2,
        backoff_max=1.0,
    )
    sim.world.update_settings(refresh_interval=30.0)  # no simulator refresh in between
    feed, _ = _feed(floor, rooms, client, settings)
    feed.start()
    try:
        ids = [r.id for r in rooms]
        gone, other = ids[0], ids[1]
        wait_until(lambda: feed.snapshot()["feed"] == "live", 10, 0.05, "socket live")

        def state(sid: str) -> tuple[str, str | None]:
            room = feed.snapshot()["rooms"][sid]
            return room["state"], room["reason"]

        wait_until(lambda: state(gone) == ("free", None), 10, 0.05, "free first")
        entries = {sid: {"presence": False, "counting_mode": "oa"} for sid in ids}
        # A `live` frame carries only what changed: a room it leaves out stays as it was.
        live = {k: v for k, v in entries.items() if k != other}
        assert sim.world.send_raw(json.dumps({"update_type": "live", "data": live}), floor.id)
        refresh = {k: v for k, v in entries.items() if k != gone}
        assert sim.world.send_raw(json.dumps({"update_type": "refresh", "data": refresh}), floor.id)
        wait_until(
            lambda: state(gone) == ("unknown", "not_verified"), 10, 0.05, "left out of a refresh"
        )
        assert state(other) == ("free", None)
    finally:
        feed.stop()


# -- the space directory and its client ---------------------------------------------------------
class CountingSpaces:
    """The real client, each `spaces()` call counted (sent once, as the directory asks)."""

    def __init__(self, client: DensityClient) -> None:
        self.client = client
        self.calls = 0

    def spaces(self, *, retries: int | None = None) -> list[Space]:
        self.calls += 1
        return self.client.spaces(retries=retries)


def test_the_admin_says_why_no_floors_were_ever_fetched(sim: SimServer) -> None:
    secret = "wrong-secret-" + "x" * 12
    wrong = DensityClient(sim.url, client_id=SimSettings().client_id, client_secret=secret)
    try:
        directory = SpaceDirectory(wrong, ttl=600)
        assert directory.refresh()
        status = directory.status()
        assert status["state"] == "failing", status
        note = directory_note(status) or ""
        assert note.startswith("Density refused the credentials"), note
        assert "Reload in a moment" not in note and secret not in note
    finally:
        wrong.close()
    creds = SimSettings()
    down = DensityClient(sim.url, client_id=creds.client_id, client_secret=creds.client_secret)
    try:
        sim.world.force_outage(600, status=503)
        directory = SpaceDirectory(CountingSpaces(down), ttl=600)  # type: ignore[arg-type]
        assert directory.refresh()
        note = directory_note(directory.status()) or ""
        assert note.startswith("Density unreachable"), note
    finally:
        sim.world.force_outage(0)
        down.close()


def _outage_calls(sim: SimServer, reads_per_second: int) -> int:
    """spaces() calls in 600 s of a 503 outage (FakeClock), with unknown-floor reads."""
    creds = SimSettings()
    client = DensityClient(sim.url, client_id=creds.client_id, client_secret=creds.client_secret)
    counting = CountingSpaces(client)
    clock = FakeClock()
    directory = SpaceDirectory(counting, ttl=600, clock=clock)  # type: ignore[arg-type]

    def settled() -> bool:
        # Nothing due and nothing in flight: the worker can only wait for the clock now.
        return not directory._refreshing and directory._due_in() > 0

    try:
        directory.start()
        wait_until(lambda: counting.calls >= 1 and settled(), 10, 0.005, "the first fetch")
        for _ in range(600):
            for _ in range(reads_per_second):
                assert directory.get("spc_not_a_floor") is None
            clock.advance(1.0)
            wait_until(settled, 10, 0.002, "worker settled")
        return counting.calls
    finally:
        directory.stop()
        client.close()


def test_unknown_floor_reads_do_not_shorten_the_outage_backoff(sim: SimServer) -> None:
    sim.world.force_outage(3600, status=503)
    quiet = _outage_calls(sim, 0)
    asked = _outage_calls(sim, 1)
    print(f"600 s of outage: {quiet} spaces() calls alone, {asked} with a read a second")
    # 5, 10, 20, 40, then every 60 s: 13 calls in 600 s, whoever asks meanwhile.
    assert quiet == 13
    assert asked == quiet


def test_a_relative_next_is_relative_to_the_page_it_came_in() -> None:
    from tests.test_density_mock import BASE, make_client

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("cursor") == "2":
            return httpx.Response(200, json={"results": [{"id": "spc_2"}], "next": None})
        return httpx.Response(200, json={"results": [{"id": "spc_1"}], "next": "?cursor=2"})

    client, rec, _ = make_client(handler)
    assert [s.id for s in client.spaces()] == ["spc_1", "spc_2"]
    assert [str(r.url) for r in rec.requests] == [f"{BASE}/v3/spaces", f"{BASE}/v3/spaces?cursor=2"]


def test_a_plain_http_next_on_the_same_host_is_asked_over_tls() -> None:
    from tests.test_density_mock import BASE, make_client

    host = httpx.URL(BASE).host

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"results": [{"id": "spc_2"}], "next": None})
        nxt = f"http://{host}/v3/spaces?page=2"
        return httpx.Response(200, json={"results": [{"id": "spc_1"}], "next": nxt})

    client, rec, _ = make_client(handler)
    assert [s.id for s in client.spaces()] == ["spc_1", "spc_2"]
    assert {r.url.scheme for r in rec.requests} == {"https"}
