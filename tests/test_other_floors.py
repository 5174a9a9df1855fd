"""Free now on other floors: sibling feeds held with the kiosk's own, counts, pushes, the panel.

Everything runs for real: the simulator's seeded building (three floors), the server on
loopback, kiosk sockets, and Chromium for the panel. Counts are checked against the
simulator's own state, and upstream sockets against the simulator's own counters.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signage.core import floormap
from signage.core.building import OtherFloors, summarise, tag
from signage.core.clock import FakeClock
from signage.core.directory import SpaceDirectory
from signage.core.feeds import FeedManager, FeedSettings, FloorFeed
from signage.density.client import DensityClient
from signage.sim import SimSettings
from tests.helpers import wait_until
from tests.kiosks import Fleet

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).

SCREENSHOTS = Path(__file__).parent / "screenshots"
GROUPS = floormap.GROUP_ORDER


# -- the simulator's truth -------------------------------------------------------------------
def building(sim) -> list[str]:
    """The seeded building's floors, in the building's order (ground floor first)."""
    return list(sim.world.portfolio.floor_ids)


def rooms_of(sim, floor_id: str) -> list[Any]:
    return [sim.world.portfolio.spaces[r] for r in sim.world.portfolio.rooms_under(floor_id)]


def set_floor(sim, floor_id: str) -> None:
    """Every room healthy; every third one occupied, the others free."""
    for i, room in enumerate(rooms_of(sim, floor_id)):
        busy = i % 3 == 1
        if room.counting_mode == "entry":
            sim.world.set_space(room.id, occupancy=3 if busy else 0, health="healthy")
        else:
            sim.world.set_space(room.id, presence=busy, health="healthy")


def free_by_group(sim, floor_id: str) -> dict[str, int]:
    """What the panel must say for a floor, from the simulator's own state."""
    counts = dict.fromkeys(GROUPS, 0)
    for room in rooms_of(sim, floor_id):
        state = sim.world.space_state(room.id)
        busy = state.occupancy > 0 if room.counting_mode == "entry" else state.presence
        if state.health == "healthy" and not busy:
            counts[floormap.group_of(room.function)] += 1
    return counts


def oa_room(sim, floor_id: str, occupied: bool) -> str:
    """An open-area room of the floor that the simulator has occupied (or free) now."""
    for room in rooms_of(sim, floor_id):
        if room.counting_mode != "entry" and sim.world.space_state(room.id).presence is occupied:
            return room.id
    raise AssertionError(f"no open-area room with presence={occupied} on {floor_id}")


# -- a kiosk socket that keeps every message -------------------------------------------------
class Listener:
    """One kiosk socket read in a thread; keeps every message and the latest panel."""

    def __init__(self, url: str) -> None:
        self.ws = connect(url, open_timeout=10, compression=None).__enter__()  # closed in close()
        self.messages: list[dict[str, Any]] = []
        self.panel: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                message = json.loads(raw)
                with self._lock:
                    self.messages.append(message)
                    if message["type"] in ("snapshot", "floors"):
                        self.panel = message["other_floors"]
        except ConnectionClosed:
            pass

    def floor(self, floor_id: str) -> dict[str, Any] | None:
        with self._lock:
            return next((f for f in self.panel or () if f["id"] == floor_id), None)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m["type"] == kind]

    def close(self) -> None:
        self.ws.close()
        self._thread.join(timeout=5)


@pytest.fixture
def listeners():
    made: list[Listener] = []

    def new(url: str) -> Listener:
        made.append(Listener(url))
        return made[-1]

    yield new
    for listener in made:
        listener.close()


def shows(listener: Listener, sim, floor_id: str) -> bool:
    """The kiosk's panel has the floor known, with the simulator's counts."""
    entry = listener.floor(floor_id)
    return bool(
        entry and entry["state"] == "known" and entry["free"] == free_by_group(sim, floor_id)
    )


# -- the server side ---------------------------------------------------------------------------
def test_snapshot_lists_the_other_floors_of_the_building_with_counts_by_group(
    sim, server, listeners
):
    ground, first, second = building(sim)
    for floor_id in (first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground)
    kiosk = listeners(server.socket_url(cred))
    wait_until(lambda: kiosk.panel is not None, timeout=10, message="snapshot")
    snapshot = kiosk.of_type("snapshot")[0]
    assert [f["id"] for f in snapshot["other_floors"]] == [first, second]  # never itself
    names = {f["id"]: f["name"] for f in snapshot["other_floors"]}
    assert names == {first: "1st floor", second: "2nd floor"}
    wait_until(
        lambda: shows(kiosk, sim, first) and shows(kiosk, sim, second),
        timeout=10,
        message="both floors known with the simulator's counts",
    )
    entry = kiosk.floor(first)
    assert entry["feed"] in ("live", "polling")
    assert entry["free_total"] == sum(entry["free"].values()) > 0
    assert set(entry["free"]) == set(GROUPS)
    # A floors message is an envelope of the kiosk's own floor: its seq reads like a heartbeat.
    floors_messages = kiosk.of_type("floors")
    assert floors_messages, "the floors turned known after the snapshot: pushed"
    for message in floors_messages:
        assert message["floor_id"] == ground and message["epoch"] == snapshot["epoch"]
        assert message["feed"] in ("live", "polling", "stale")
    seqs = [m["seq"] for m in kiosk.messages]
    assert seqs == sorted(seqs)


def test_a_room_flipping_on_another_floor_is_pushed_to_kiosks_listing_it(sim, server, listeners):
    ground, first, second = building(sim)
    for floor_id in (ground, first, second):
        set_floor(sim, floor_id)
    _, on_ground = server.add_display(ground)
    _, on_second = server.add_display(second)
    _, on_first = server.add_display(first)
    ground_kiosk = listeners(server.socket_url(on_ground))
    second_kiosk = listeners(server.socket_url(on_second))
    first_kiosk = listeners(server.socket_url(on_first))
    wait_until(lambda: shows(ground_kiosk, sim, first) and shows(second_kiosk, sim, first), 10)

    room = oa_room(sim, first, occupied=True)
    group = floormap.group_of(sim.world.portfolio.spaces[room].function)
    before = ground_kiosk.floor(first)["free"][group]
    sim.world.set_space(room, presence=False)
    for kiosk in (ground_kiosk, second_kiosk):
        wait_until(
            lambda k=kiosk: k.floor(first)["free"][group] == before + 1,
            timeout=5,
            message="the freed room counted on the kiosks that list its floor",
        )
    sim.world.set_space(room, presence=True)
    wait_until(lambda: ground_kiosk.floor(first)["free"][group] == before, timeout=5)
    # The kiosk of the floor itself does not list it among the other floors.
    assert first_kiosk.floor(first) is None
    assert [f["id"] for f in first_kiosk.panel] == [ground, second]


def test_pushes_are_debounced_to_about_one_a_second_per_floor(sim, server, listeners):
    ground, first, _second = building(sim)
    set_floor(sim, first)
    _, cred = server.add_display(ground)
    kiosk = listeners(server.socket_url(cred))
    wait_until(lambda: shows(kiosk, sim, first), timeout=10)
    room = oa_room(sim, first, occupied=True)
    pushed_before = len(kiosk.of_type("floors"))
    started = time.monotonic()
    for i in range(30):  # a room flickering 30 times in well under a second
        sim.world.set_space(room, presence=i % 2 == 1)
    sim.world.set_space(room, presence=False)
    wait_until(lambda: shows(kiosk, sim, first), timeout=5, message="final state shown")
    elapsed = time.monotonic() - started
    pushed = len(kiosk.of_type("floors")) - pushed_before
    assert 1 <= pushed <= elapsed / server.svc.building.debounce + 2, (pushed, elapsed)


class RecordingHub:
    """The hub as the panel uses it, one kiosk on each of `floors`: keeps what it was sent."""

    def __init__(self, floors: list[str]) -> None:
        self.floors = floors
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def count(self, floor_id: str | None = None) -> int:
        return len(self.floors) if floor_id is None else int(floor_id in self.floors)

    def counts_by_floor(self) -> dict[str, int]:
        return dict.fromkeys(self.floors, 1)

    def notify(self, floor_id: str, text: str) -> None:
        with self._lock:
            self.sent.append((floor_id, json.loads(text)))

    def panel(self, floor_id: str, of: str) -> dict[str, Any] | None:
        """The line for floor `of` in the last panel pushed to `floor_id`'s kiosks."""
        with self._lock:
            panels = [m["other_floors"] for f, m in self.sent if f == floor_id]
        return next((e for e in panels[-1] if e["id"] == of), None) if panels else None


def test_the_panel_waits_out_its_debounce_on_the_feeds_clock(sim):
    """The panel worker reads the feeds' clock: a change held by the debounce goes out when
    that clock (the server's; a fake one here) has moved past it, not on the real clock."""
    ground, first, second = building(sim)
    for floor_id in (ground, first, second):
        set_floor(sim, floor_id)
    creds = SimSettings()
    clock = FakeClock()
    client = DensityClient(
        sim.url,
        client_id=creds.client_id,
        client_secret=creds.client_secret,
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    directory = SpaceDirectory(client, clock=clock)
    assert directory.refresh()
    # The sockets stay live on the real clock: however far the test moves this one, no feed
    # turns stale (the panel's counts are what is looked at).
    feeds = FeedManager(
        client,
        directory,
        FeedSettings(stale_after=1e6, clock=clock),
        lambda *_: 0,
        lambda _floor: None,
        "e1",
    )
    hub = RecordingHub([ground])
    debounce = 300.0  # five minutes: the real clock would hold the change past the deadline
    panel = OtherFloors(directory, feeds, hub, debounce=debounce)  # type: ignore[arg-type]
    assert panel.clock is clock
    feeds.listeners.append(panel.on_publish)
    held: list[str] = []
    try:
        feeds.acquire(ground)
        held = panel.hold(ground)
        assert panel.panel(ground) is not None
        wait_until(
            lambda: all(feeds.get(f).snapshot()["feed"] == "live" for f in (ground, first, second)),
            timeout=15,
            message="every floor live",
        )
        # The floors' first words may come in several publishes: whatever the debounce held,
        # it goes out once the clock passes it. Then the panel is what the feeds say.
        clock.advance(debounce)

        def current(floor_id: str) -> bool:
            line = hub.panel(ground, floor_id) or {}
            return (line.get("feed"), line.get("state"), line.get("free")) == (
                "live",
                "known",
                free_by_group(sim, floor_id),
            )

        wait_until(lambda: current(first) and current(second), 10, message="the counts pushed")
        counts = free_by_group(sim, first)
        # A whole debounce since the last push: a room freed now goes out at once.
        clock.advance(debounce)
        sim.world.set_space(oa_room(sim, first, occupied=True), presence=False)
        freed = free_by_group(sim, first)
        assert freed != counts
        wait_until(
            lambda: hub.panel(ground, first)["free"] == freed,
            timeout=10,
            message="a freed room pushed at once",
        )
        # Another one right after: the feed has it at once, the panel only once the debounce
        # has passed on the feeds' clock.
        room = oa_room(sim, first, occupied=True)
        sim.world.set_space(room, presence=False)
        wait_until(
            lambda: feeds.get(first).snapshot()["rooms"][room]["state"] == "free",
            timeout=10,
            message="the 1st floor's feed has the room free",
        )
        assert hub.panel(ground, first)["free"] == freed  # held by the debounce
        clock.advance(debounce)
        both = free_by_group(sim, first)
        assert both != freed
        wait_until(
            lambda: hub.panel(ground, first)["free"] == both,
            timeout=10,
            message="the second room pushed once the clock passed the debounce",
        )
    finally:
        panel.release(held)
        panel.stop()
        feeds.stop()
        directory.stop()
        client.close()


def test_a_floor_whose_feed_goes_stale_shows_unknown_never_a_count(sim, server, listeners):
    ground, first, second = building(sim)
    for floor_id in (first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground)
    kiosk = listeners(server.socket_url(cred))
    wait_until(lambda: shows(kiosk, sim, first) and shows(kiosk, sim, second), timeout=10)

    # The 1st floor's feed loses Density: a display there is set up with the Density display
    # of another floor, so its token may not read the 1st floor (403) once its socket drops.
    wrong = next(d for d, f in sim.world.portfolio.displays.items() if f == ground)
    misfit = server.svc.store.add_display("Misconfigured", first, wrong)
    sim.world.drop_sockets(first)
    # A generous bound, not a speed: the feed goes stale STALE_AFTER (4 s) after its last data,
    # through reconnects refused with 403, and the panel may see it only at its next sweep (10 s).
    wait_until(
        lambda: kiosk.floor(first)["state"] == "unknown",
        timeout=40,
        message="stale floor unknown",
    )
    entry = kiosk.floor(first)
    assert entry["feed"] == "stale" and entry["free"] is None and entry["free_total"] is None
    assert shows(kiosk, sim, second), "the other floor keeps its counts"
    # Recovery: the display is removed, the feed comes back, the counts with it.
    server.svc.store.remove_display(misfit.id)
    wait_until(lambda: shows(kiosk, sim, first), timeout=40, message="known again")


def test_every_unknown_room_or_no_feed_is_unknown_not_zero(sim, server):
    ground, first, _second = building(sim)
    space = server.svc.directory.get(first)
    # A floor nobody started a feed for yet.
    unknown = summarise(space, None, GROUPS, floormap.group_of)
    assert unknown["state"] == "unknown" and unknown["free"] is None
    # A live feed whose every sensor is offline vouches for nothing: unknown, not "0 free".
    for room in rooms_of(sim, first):
        sim.world.set_space(room.id, presence=False, occupancy=0, health="offline")
    _, cred = server.add_display(first)
    feed = server.svc.feeds.touch(first, wait=5)
    wait_until(lambda: feed.snapshot()["feed"] == "live", timeout=10)
    summary = summarise(space, feed, GROUPS, floormap.group_of)
    assert summary["feed"] == "live" and summary["state"] == "unknown"
    assert summary["free"] is None
    # A feed that never heard from Density is stale: unknown.
    cold = FloorFeed(
        first, server.svc.client, space, [], FeedSettings(), lambda *a: None, lambda: None, "e"
    )
    assert summarise(space, cold, GROUPS, floormap.group_of)["state"] == "unknown"
    assert tag(None) != tag([unknown])


def test_one_upstream_socket_per_floor_with_many_displays_on_every_floor(sim, server):
    floors = building(sim)
    fleet = Fleet()
    try:
        kiosks = []
        for index, floor_id in enumerate(floors):
            for n in range(2 if index < 2 else 1):  # five displays over three floors
                _, cred = server.add_display(floor_id, name=f"D{index}{n}")
                kiosks += fleet.add(server.socket_url(cred), 4)
        fleet.wait(lambda k: k.feed == "live", timeout=20, message="every kiosk live")
        assert server.svc.hub.count() == 20
        for floor_id in floors:
            assert sim.sockets_open(floor_id, kind="presence") == 1, floor_id
        channels = {f: len(server.svc.feeds.get(f).channels) for f in floors}
        reconnects = {
            f: sum(c.reconnects for c in server.svc.feeds.get(f).channels) for f in floors
        }
        opened = sim.world.calls()["sockets_opened"]
        for floor_id in floors:  # each floor's sockets opened once (unless one had to reconnect)
            assert channels[floor_id] <= opened[floor_id], floor_id
            assert opened[floor_id] <= channels[floor_id] + reconnects[floor_id], floor_id
        assert server.svc.feeds.feeds_started == len(floors)
        assert all(k.seqs_monotonic() for k in kiosks)
    finally:
        fleet.stop()
    wait_until(lambda: server.svc.hub.count() == 0, timeout=10)


def test_the_last_kiosk_leaving_releases_the_sibling_feeds_after_the_linger(sim, server, listeners):
    ground, first, second = building(sim)
    _, on_ground = server.add_display(ground)
    _, on_first = server.add_display(first)
    ground_kiosk = listeners(server.socket_url(on_ground))
    first_kiosk = listeners(server.socket_url(on_first))
    wait_until(
        lambda: all(sim.sockets_open(f, kind="presence") == 1 for f in (ground, first, second)),
        timeout=10,
        message="all three floors held",
    )
    ground_kiosk.close()
    wait_until(lambda: server.svc.hub.count(ground) == 0, timeout=5)
    # The 1st floor's kiosk still lists the ground and 2nd floors: they stay open past the
    # linger (watched for three lingers, checked continuously).
    deadline = time.monotonic() + 3 * server.svc.feeds.settings.linger
    while time.monotonic() < deadline:
        for floor_id in (ground, first, second):
            assert sim.sockets_open(floor_id, kind="presence") == 1, floor_id
        time.sleep(0.05)
    first_kiosk.close()
    wait_until(
        lambda: all(sim.sockets_open(f) == 0 for f in (ground, first, second)),
        timeout=10,
        message="every floor's sockets closed after the linger",
    )
    assert all(server.svc.feeds.get(f) is None for f in (ground, first, second))


def test_http_fallback_carries_the_panel_and_its_etag_follows_it(sim, server):
    import httpx

    ground, first, _second = building(sim)
    set_floor(sim, first)
    _, cred = server.add_display(ground)
    url = f"{server.url}/api/kiosk/{cred}/state"

    def known() -> Any:
        response = httpx.get(url, timeout=10)
        entry = next(f for f in response.json()["other_floors"] if f["id"] == first)
        return response if entry["free"] == free_by_group(sim, first) else None

    first_answer = wait_until(known, timeout=15, message="the fallback shows the 1st floor")
    etag = first_answer.headers["ETag"]
    room = oa_room(sim, first, occupied=True)
    sim.world.set_space(room, presence=False)
    changed = wait_until(
        lambda: (r := httpx.get(url, headers={"If-None-Match": etag})).status_code == 200 and r,
        timeout=10,
        message="a change on another floor changes the ETag",
    )
    assert changed.headers["ETag"] != etag
    wait_until(known, timeout=5)


# -- the panel in Chromium ---------------------------------------------------------------------
def open_kiosk(contexts, url: str, width=1920, height=1080, init=None):
    page = contexts(width, height, init).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(url)
    page.wait_for_function("() => document.documentElement.dataset.feed === 'live'", timeout=10_000)
    return page


def floor_line(page, floor_id: str):
    return page.locator(f'#other-floors li.of-floor[data-floor-id="{floor_id}"]')


def total_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{total} free" if total else "Nothing free"


def box(page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920)])
def test_panel_updates_live_when_a_room_flips_on_another_floor(sim, server, contexts, size):
    ground, first, second = building(sim)
    for floor_id in (ground, first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground, name="Lobby")
    width, height = size
    page = open_kiosk(contexts, f"{server.url}/kiosk/{cred}", width, height)
    panel = page.locator("#other-floors")
    expect(panel).to_be_visible()
    expect(panel.locator(".of-title")).to_have_text("Free now on other floors")
    expect(panel.locator("li.of-floor")).to_have_count(2)
    for floor_id in (first, second):
        expect(floor_line(page, floor_id)).to_have_attribute("data-state", "known", timeout=10_000)
        expect(floor_line(page, floor_id).locator(".of-total")).to_have_text(
            total_text(free_by_group(sim, floor_id))
        )
    expect(floor_line(page, first).locator(".of-name")).to_have_text("1st floor")

    room = oa_room(sim, second, occupied=True)
    group = floormap.group_of(sim.world.portfolio.spaces[room].function)
    sim.world.set_space(room, presence=False)
    counts = free_by_group(sim, second)
    line = floor_line(page, second)
    expect(line.locator(".of-total")).to_have_text(total_text(counts), timeout=5000)
    expect(line.locator(f'.of-group[data-group="{group}"]')).to_have_attribute(
        "data-count", str(counts[group])
    )

    # It fits: the QR code stays whole on screen and the panel does not cover it.
    qr, other = box(page, "#qr"), box(page, "#other-floors")
    viewport = page.viewport_size
    assert qr["y"] >= 0 and qr["y"] + qr["height"] <= viewport["height"] + 0.5, qr
    assert qr["x"] + qr["width"] <= viewport["width"] + 0.5, qr
    assert other["y"] + other["height"] <= viewport["height"] + 0.5, other
    overlap_x = min(qr["x"] + qr["width"], other["x"] + other["width"]) - max(qr["x"], other["x"])
    overlap_y = min(qr["y"] + qr["height"], other["y"] + other["height"]) - max(qr["y"], other["y"])
    assert overlap_x <= 0.5 or overlap_y <= 0.5, (qr, other)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"other-floors-{width}x{height}.png"))
    assert page.errors == []


@pytest.mark.browser
def test_panel_shows_a_stale_floor_as_unknown(sim, server, contexts):
    ground, first, second = building(sim)
    for floor_id in (first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground)
    page = open_kiosk(contexts, f"{server.url}/kiosk/{cred}")
    expect(floor_line(page, first)).to_have_attribute("data-state", "known", timeout=10_000)
    wrong = next(d for d, f in sim.world.portfolio.displays.items() if f == ground)
    server.svc.store.add_display("Misconfigured", first, wrong)
    sim.world.drop_sockets(first)
    line = floor_line(page, first)
    expect(line).to_have_attribute("data-state", "unknown", timeout=15_000)
    expect(line.locator(".of-total")).to_have_text("Unknown")
    expect(line.locator(".of-group")).to_have_count(0)
    expect(floor_line(page, second)).to_have_attribute("data-state", "known")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "other-floors-unknown.png"))


@pytest.mark.browser
def test_panel_points_to_the_nearest_stairs_and_lift_and_hides_without_other_floors(
    sim, server, contexts
):
    ground, first, _second = building(sim)
    layout = {
        "width": 1000,
        "height": 700,
        "metres_across": 50.0,
        "rooms": {},
        "nodes": [
            {"id": "n1", "x": 100, "y": 100, "kind": "corridor"},
            {"id": "s1", "x": 400, "y": 100, "kind": "stairs"},
            {"id": "l1", "x": 100, "y": 500, "kind": "lift"},
        ],
        "edges": [["n1", "s1"], ["n1", "l1"]],
    }
    server.svc.store.put_layout(ground, layout)
    display, cred = server.add_display(ground)
    server.svc.store.update_display_settings(display.id, {"here": [100, 100]})
    page = open_kiosk(contexts, f"{server.url}/kiosk/{cred}")
    way = page.locator("#other-floors .of-way")
    expect(way.locator('[data-kind="stairs"]')).to_have_text("Stairs · 15 m")
    expect(way.locator('[data-kind="lift"]')).to_have_text("Lift · 20 m")
    expect(floor_line(page, first)).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "other-floors-exits.png"))
    # A building with one floor sends no list: the panel goes away.
    page.evaluate(
        "() => window.signageKiosk.apply({type: 'floors', epoch: 'x', seq: 0, feed: 'live',"
        " other_floors: null})"
    )
    expect(page.locator("#other-floors")).to_be_hidden()
    assert page.errors == []


@pytest.mark.browser
def test_panel_turns_unknown_when_the_kiosk_loses_the_server(sim, server, contexts):
    ground, first, _second = building(sim)
    set_floor(sim, first)
    _, cred = server.add_display(ground)
    page = open_kiosk(contexts, f"{server.url}/kiosk/{cred}?no_contact_s=2")
    expect(floor_line(page, first)).to_have_attribute("data-state", "known", timeout=10_000)
    server.stop()  # stops listening too: a dead server refuses, it does not hang
    expect(floor_line(page, first)).to_have_attribute("data-state", "unknown", timeout=8000)
    expect(page.locator("#other-floors .of-total").first).to_have_text("Unknown")


# -- honest through outages and emergencies --------------------------------------------------
def test_other_floors_turn_unknown_when_the_kiosks_own_floor_is_stale(sim, server, listeners):
    ground, first, second = building(sim)
    for floor_id in (ground, first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground)
    kiosk = listeners(server.socket_url(cred))
    wait_until(lambda: shows(kiosk, sim, first) and shows(kiosk, sim, second), timeout=10)
    # Only the kiosk's own floor stops hearing Density; the other floors' feeds stay fresh.
    server.svc.feeds.get(ground).stop()
    wait_until(
        lambda: all(kiosk.floor(f)["state"] == "unknown" for f in (first, second)),
        timeout=20,
        message="every other floor unknown once the kiosk's own floor is stale",
    )
    assert {kiosk.floor(f)["reason"] for f in (first, second)} == {"own_floor_stale"}
    assert {kiosk.floor(f)["free"] for f in (first, second)} == {None}
    assert server.svc.feeds.get(first).snapshot()["feed"] in ("live", "polling")


def test_a_total_outage_turns_every_floor_unknown_even_as_the_space_tree_expires(
    sim, make_server, listeners
):
    server = make_server(SIGNAGE_SPACES_TTL=2.0)
    ground, first, second = building(sim)
    for floor_id in (ground, first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground)
    kiosk = listeners(server.socket_url(cred))
    wait_until(lambda: shows(kiosk, sim, first) and shows(kiosk, sim, second), timeout=10)
    names = {f["id"]: f["name"] for f in kiosk.panel}

    # Every call answered 429 (Retry-After: 30), sockets cut and refused.
    sim.world.force_429(3600, 30)
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets()
    started = time.monotonic()
    wait_until(
        lambda: all(kiosk.floor(f)["state"] == "unknown" for f in (first, second)),
        timeout=30,
        message="every floor unknown in a total outage",
    )
    took = time.monotonic() - started
    # stale_after (4 s here) and a debounce, with room for a busy machine: before the 30 s
    # Retry-After, which a panel worker that waited on Density could not beat.
    assert took < 25.0, took
    # The space tree's lifetime passes inside the outage: its refresh fails in the background,
    # and the panel still lists every floor by name, unknown.
    wait_until(lambda: server.svc.directory.status()["state"] == "unreachable", timeout=30)
    # The panel arrives on the kiosk's socket: read the latest one, within a deadline.
    wait_until(
        lambda: (
            {f["id"]: f["name"] for f in kiosk.panel} == names
            and {f["state"] for f in kiosk.panel} == {"unknown"}
        ),
        timeout=10,
        message="the panel lists every floor by name, unknown",
    )
    state = httpx.get(f"{server.url}/api/kiosk/{cred}/state", timeout=5).json()
    assert {f["state"] for f in state["other_floors"]} == {"unknown"}

    sim.world.force_429(0)
    sim.world.set_socket_mode("normal")
    wait_until(lambda: shows(kiosk, sim, first), timeout=30, message="counts again after")


def test_a_floor_under_an_emergency_is_not_available_on_other_floors(sim, server, listeners):
    ground, first, second = building(sim)
    for floor_id in (ground, first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground)
    kiosk = listeners(server.socket_url(cred))
    wait_until(lambda: shows(kiosk, sim, first) and shows(kiosk, sim, second), timeout=10)
    now = time.time()
    emergency = server.svc.announcer.create(
        created_by="test",
        scope="floor",
        target=first,
        kind="emergency",
        title="Evacuate",
        body="",
        starts_at=now,
        ends_at=now + 600,
    )
    wait_until(
        lambda: kiosk.floor(first)["state"] == "not_available",
        timeout=10,
        message="the evacuated floor is not offered",
    )
    assert kiosk.floor(first)["free"] is None and kiosk.floor(first)["reason"] == "emergency"
    assert shows(kiosk, sim, second)
    server.svc.announcer.cancel(emergency.id, "test")
    wait_until(lambda: shows(kiosk, sim, first), timeout=10, message="offered again after")


@pytest.mark.browser
def test_panel_in_a_total_outage_and_an_emergency(sim, make_server, contexts):
    """In Chromium: every floor unknown once stale_after has passed in a total outage (the space
    tree expiring meanwhile), and an evacuated floor "Not available" once Density is back."""
    server = make_server(SIGNAGE_SPACES_TTL=2.0)
    ground, first, second = building(sim)
    for floor_id in (ground, first, second):
        set_floor(sim, floor_id)
    _, cred = server.add_display(ground)
    page = open_kiosk(contexts, f"{server.url}/kiosk/{cred}")
    for floor_id in (first, second):
        expect(floor_line(page, floor_id)).to_have_attribute("data-state", "known", timeout=10_000)

    sim.world.force_429(3600, 30)
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets()
    for floor_id in (first, second):
        expect(floor_line(page, floor_id)).to_have_attribute(
            "data-state", "unknown", timeout=15_000
        )
    wait_until(lambda: server.svc.directory.status()["state"] == "unreachable", timeout=30)
    for floor_id in (first, second):
        expect(floor_line(page, floor_id)).to_have_attribute("data-state", "unknown")
        expect(floor_line(page, floor_id).locator(".of-total")).to_have_text("Unknown")
    expect(floor_line(page, first).locator(".of-name")).to_have_text("1st floor")

    sim.world.force_429(0)
    sim.world.set_socket_mode("normal")
    expect(floor_line(page, first)).to_have_attribute("data-state", "known", timeout=30_000)
    now = time.time()
    server.svc.announcer.create(
        created_by="test",
        scope="floor",
        target=first,
        kind="emergency",
        title="Evacuate",
        body="",
        starts_at=now,
        ends_at=now + 600,
    )
    line = floor_line(page, first)
    expect(line).to_have_attribute("data-state", "not-available", timeout=10_000)
    expect(line.locator(".of-total")).to_have_text("Not available")
    expect(floor_line(page, second)).to_have_attribute("data-state", "known")
    assert page.errors == []
