"""The kiosk's plan map and wayfinding in headless Chromium: nearest free room by the corridors,
routes that follow the simulator, taps, the idle view, the QR handoff and the phone view."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from pathlib import Path

import pytest
import segno
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from signage.core.wayfinding import kiosk_wayfinding
from signage.store import plans
from tests.helpers import wait_until

SCREENSHOTS = Path(__file__).parent / "screenshots"
FEED = "document.documentElement.dataset.feed"
IDLE = "window.__SIGNAGE_TEST__ = {idleS: 1.5};"
# No return to the resting view while a test looks at a tapped room, however slow the machine.
NO_IDLE = "window.__SIGNAGE_TEST__ = {idleS: 600};"
# A change made in the simulator reaches the page through the upstream socket, the feed, the
# hub and the kiosk's socket: seconds on a loaded 2-core machine. Deadlines, not speed goals.
PUSH_MS = 10_000
# A walking time: half minutes under five ("½", "1½", "4½"), whole minutes from five on.
MINUTES = r"(?:[1-4]?½|[1-4]|[5-9]|\d\d+)"


def walking_minutes(seconds: float) -> str:
    """What the page should say for a walk of `seconds`: the rule, written out independently."""
    halves = max(1, int(seconds / 30 + 0.5))
    if halves >= 10:
        return str(int(seconds / 60 + 0.5))
    return (str(halves // 2) if halves >= 2 else "") + ("½" if halves % 2 else "")


# A 1200 x 800 floor, 48 m across. The lobby screen stands at the west end of the main corridor
# (y = 400). North of it runs a second corridor (y = 320) that joins the main one only at the
# far east end (x = 1100), so room "north_west", right above the screen, is the nearest in a
# straight line but a long walk; "south_a", across the main corridor, is the nearest on foot.
HERE = [150, 400]
ROOMS = {
    "north_west": (100, 100, 300, 300, (200, 300)),
    "north_mid": (500, 100, 700, 300, (600, 300)),
    "north_east": (800, 100, 1000, 300, (900, 300)),
    "south_a": (400, 480, 600, 700, (500, 480)),
    "south_b": (700, 480, 900, 700, (800, 480)),
    "south_c": (950, 480, 1150, 700, (1050, 480)),
}
NODES = [
    ("m0", 100, 400, "lift"),
    ("m1", 500, 400, "corridor"),
    ("m2", 800, 400, "corridor"),
    ("m3", 1100, 400, "stairs"),
    ("t3", 1100, 320, "corridor"),
    ("t2", 900, 320, "corridor"),
    ("t1", 600, 320, "corridor"),
    ("t0", 100, 320, "corridor"),
]
EDGES = [("m0", "m1"), ("m1", "m2"), ("m2", "m3"), ("m3", "t3"), ("t3", "t2"), ("t2", "t1")]
EDGES += [("t1", "t0")]


def plan_svg() -> bytes:
    """The floor as an architect's export might draw it: walls and corridors, no states."""
    walls = "".join(
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="#fbfaf7" '
        f'stroke="#55504a" stroke-width="6"/>'
        for x0, y0, x1, y1, _ in ROOMS.values()
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1200 800" width="1200" height="800">'
        '<rect width="1200" height="800" fill="#f4f1ea"/>'
        '<rect x="60" y="380" width="1080" height="40" fill="#e2ddd2"/>'
        '<rect x="60" y="305" width="1080" height="30" fill="#e2ddd2"/>'
        '<rect x="1080" y="305" width="40" height="115" fill="#e2ddd2"/>'
        '<line x1="60" y1="340" x2="1080" y2="340" stroke="#55504a" stroke-width="8"/>'
        f"{walls}"
        '<rect x="40" y="40" width="1120" height="720" fill="none" stroke="#2e2a26" '
        'stroke-width="10"/></svg>'
    ).encode()


class WayFloor:
    """A floor of the simulator with a plan, a drawn layout and a placed display."""

    def __init__(self, server, sim, outlines: bool = True, here: list | None = HERE):
        self.server, self.sim = server, sim
        svc = server.svc
        floor = svc.directory.floors()[0]
        self.id = floor.id
        spaces = [s for s in svc.directory.rooms_of(self.id) if s.counting_mode == "oa"]
        assert len(spaces) >= len(ROOMS) + 1, "the demo floor has enough open-area rooms"
        self.names = {s.id: s.name for s in spaces}
        # Our layout's room names map onto the floor's real Density space ids.
        self.sid = {key: spaces[i].id for i, key in enumerate(ROOMS)}
        self.unmapped = spaces[len(ROOMS)].id  # a room the layout does not outline
        self.all = [s.id for s in spaces]
        for rid in self.all:
            sim.world.set_space(rid, presence=False, health="healthy")
        plans.store_plan(svc.store, svc.config, self.id, plan_svg(), "test")
        self.layout = svc.store.put_layout(self.id, self.document(outlines))
        self.display, self.cred = server.add_display(self.id, name="Lobby west")
        settings = {"here": here} if here is not None else {}
        svc.store.update_display_settings(self.display.id, settings)
        wait_until(lambda: self.server_says("free", *self.all), timeout=10, message="all free")

    def document(self, outlines: bool) -> dict:
        rooms = {}
        if outlines:
            for key, (x0, y0, x1, y1, door) in ROOMS.items():
                outline = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
                rooms[self.sid[key]] = {"outline": outline, "door": list(door)}
        return {
            "width": 1200,
            "height": 800,
            "metres_across": 48,
            "rooms": rooms,
            "nodes": [{"id": n, "x": x, "y": y, "kind": k} for n, x, y, k in NODES],
            "edges": [list(e) for e in EDGES],
        }

    def server_says(self, state: str, *rids: str) -> bool:
        rooms = self.server.svc.feeds.touch(self.id).snapshot()["rooms"]
        return all(rooms[r]["state"] == state for r in rids)

    def wayfinding(self) -> dict:
        return kiosk_wayfinding(self.layout.data, HERE, self.layout.version)

    @property
    def url(self) -> str:
        return f"{self.server.url}/kiosk/{self.cred}"

    @property
    def phone_url(self) -> str:
        return f"{self.server.url}/phone/{self.server.svc.store.phone_credential(self.display)}"


@pytest.fixture
def way(server, sim) -> WayFloor:
    return WayFloor(server, sim)


def open_page(contexts, url, width=1920, height=1080, init=None, wait="live", clock=False, **kw):
    """A kiosk page, live; `clock` puts its timers on Playwright's clock, `kw` go to the context."""
    page = contexts(width, height, init, **kw).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    if clock:
        page.clock.install()  # time flows as usual until the test pauses it
    page.goto(url)
    if wait:
        page.wait_for_function(f"() => {FEED} === {json.dumps(wait)}", timeout=10_000)
    return page


def pause_clock(page) -> None:
    """Stop the page's clock (open_page(clock=True)) a moment from now; timers wait for run_for.

    A moment ahead, as the clock cannot go back; not far ahead, as the timers due on the way
    fire (the kiosk drops a socket silent for 4 s). Python's clock takes seconds.
    """
    for _ in range(5):
        try:
            page.clock.pause_at((page.evaluate("Date.now()") + 500) / 1000)
            return
        except PlaywrightError as exc:  # this machine took longer than the moment
            if "past" not in str(exc):
                raise
    pytest.fail("the page's clock could not be paused")


def shape(page, rid):
    return page.locator(f'#map-box g.room-shape[data-space-id="{rid}"]')


def free_order(page) -> list[str]:
    return page.locator("#free-list li.free-item").evaluate_all(
        "els => els.map(e => e.dataset.spaceId)"
    )


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def straight(a, b) -> float:
    return math.dist(a, b)


# -- server side: config, plan, QR (no browser) ----------------------------------------------
def page_config(client, url: str) -> dict:
    html = client.get(url).get_data(as_text=True)
    found = re.search(r'<script id="kiosk-config" type="application/json">(.*?)</script>', html)
    assert found, "the page carries its config"
    return json.loads(found.group(1))


def test_page_config_carries_the_plan_and_the_routes(way):
    client = way.server.app.test_client()
    config = page_config(client, f"/kiosk/{way.cred}")
    sha = way.server.svc.store.get_plan(way.id).sha256
    assert config["plan"] == {
        "url": f"/kiosk/{way.cred}/plan?v={sha[:16]}",  # versioned: cached by the worker
        "width": 1200.0,
        "height": 800.0,
    }
    wf = config["wayfinding"]
    assert wf == way.wayfinding()
    assert wf["here"] == HERE and wf["approximate"] is False
    assert set(wf["rooms"]) == set(way.sid.values())
    assert set(wf["routes"]) == set(way.sid.values())
    phone = page_config(client, way.phone_url.replace(way.server.url, ""))
    assert phone["plan"]["url"].startswith("/phone/") and phone["wayfinding"] == wf
    # No layout on a floor: no wayfinding, and the page keeps its treemap.
    way.server.svc.store.remove_layout(way.id)
    config = page_config(client, f"/kiosk/{way.cred}")
    assert config["wayfinding"] is None and config["plan"]["width"] == 1200.0
    assert 'class="tile"' in client.get(f"/kiosk/{way.cred}").get_data(as_text=True)


def test_a_here_outside_the_layout_gives_no_routes_and_no_error(way):
    way.server.svc.store.update_display_settings(way.display.id, {"here": [5000, 5]})
    config = page_config(way.server.app.test_client(), f"/kiosk/{way.cred}")
    assert config["wayfinding"]["here"] is None and config["wayfinding"]["routes"] == {}


def test_plan_is_served_to_kiosks_and_phones_with_its_strict_policy(way):
    client = way.server.app.test_client()
    record = way.server.svc.store.get_plan(way.id)
    phone_cred = way.server.svc.store.phone_credential(way.display)
    for url in (f"/kiosk/{way.cred}/plan", f"/phone/{phone_cred}/plan"):
        got = client.get(url)
        assert got.status_code == 200 and got.mimetype == "image/svg+xml"
        assert got.headers["Content-Security-Policy"] == plans.PLAN_CSP
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.headers["ETag"] == f'"{record.sha256}"'
        assert hashlib.sha256(got.data).hexdigest() == record.sha256
        again = client.get(url, headers={"If-None-Match": got.headers["ETag"]})
        assert again.status_code == 304
    assert client.get("/kiosk/1.deadbeef/plan").status_code == 404
    assert client.get("/phone/1.deadbeef/plan").status_code == 404
    assert client.get(f"/phone/{way.cred}/plan").status_code == 404  # kiosk key, phone door
    way.server.svc.store.revoke_phone_link(way.display.id)
    assert client.get(f"/phone/{phone_cred}/plan").status_code == 404
    way.server.svc.store.revoke_display(way.display.id)
    assert client.get(f"/kiosk/{way.cred}/plan").status_code == 404


def _qr_for(text: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(text, error="m").save(
        buffer, kind="svg", scale=1, border=2, dark="#000", light="#fff", xmldecl=False
    )
    return buffer.getvalue()


def test_qr_endpoint_carries_the_chosen_room(way):
    client = way.server.app.test_client()
    rid = way.sid["north_mid"]
    got = client.get(f"/kiosk/{way.cred}/qr.svg?room={rid}")
    assert got.status_code == 200 and got.mimetype == "image/svg+xml"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == plans.PLAN_CSP
    # The same phone link as the page's own QR code, with the room: the code encodes exactly it.
    assert got.data == _qr_for(f"{way.phone_url}?room={rid}")
    plain = client.get(f"/kiosk/{way.cred}/qr.svg")
    assert plain.data == _qr_for(way.phone_url) and plain.data != got.data
    bad = client.get(f"/kiosk/{way.cred}/qr.svg?room=%3Cscript%3E")
    assert bad.status_code == 400 and b"room must be a space id" in bad.data
    assert b"<script>" not in bad.data
    assert client.get("/kiosk/1.deadbeef/qr.svg?room=x").status_code == 404
    way.server.svc.store.update_display_settings(way.display.id, {"here": HERE, "qr": False})
    assert client.get(f"/kiosk/{way.cred}/qr.svg").status_code == 404


# -- the kiosk in Chromium -------------------------------------------------------------------
@pytest.mark.browser
def test_nearest_free_room_is_the_nearest_on_foot_and_the_route_follows_the_rooms(way, contexts):
    wf = way.wayfinding()
    north_west, south_a, south_b = (way.sid[k] for k in ("north_west", "south_a", "south_b"))
    # The set-up makes the two measures disagree, or this test would prove nothing.
    centre = wf["rooms"]
    assert straight(HERE, centre[north_west]["center"]) < straight(HERE, centre[south_a]["center"])
    by_route = sorted(wf["routes"], key=lambda sid: wf["routes"][sid]["units"])
    assert by_route[:2] == [south_a, south_b]

    page = open_page(contexts, way.url)
    sha = way.server.svc.store.get_plan(way.id).sha256
    expect(page.locator("svg.plan-map image")).to_have_attribute(
        "href", f"/kiosk/{way.cred}/plan?v={sha[:16]}"
    )
    expect(page.locator("#route")).to_have_attribute("data-space-id", south_a)
    expect(shape(page, south_a)).to_have_attribute("data-selected", "true")
    expect(page.locator("#you-are-here")).to_contain_text("You are here")
    order = free_order(page)
    # Rooms with a route first, nearest first; a room the layout does not outline after them.
    assert order[: len(by_route)] == by_route and way.unmapped in order[len(by_route) :]
    route = wf["routes"][south_a]
    expect(page.locator(f'li[data-space-id="{south_a}"] .free-distance')).to_have_text(
        re.compile(rf"^\d+ m · {re.escape(walking_minutes(route['s']))} min$")
    )
    expect(page.locator("#free-note")).to_be_hidden()  # real corridors: no straight-line note
    # The route is the server's, point for point, from here to the door.
    points = page.locator("#route").get_attribute("points").split()
    assert [[float(v) for v in p.split(",")] for p in points] == route["points"]

    way.sim.world.set_space(south_a, presence=True)
    expect(shape(page, south_a)).to_have_attribute("data-state", "occupied", timeout=PUSH_MS)
    expect(page.locator("#route")).to_have_attribute("data-space-id", south_b, timeout=PUSH_MS)
    assert free_order(page)[0] == south_b
    way.sim.world.set_space(south_b, health="offline")
    expect(page.locator("#route")).to_have_attribute("data-space-id", by_route[2], timeout=PUSH_MS)
    for rid in way.sid.values():
        way.sim.world.set_space(rid, presence=True)
    expect(page.locator("#route")).to_have_count(0, timeout=PUSH_MS)
    expect(page.locator("#map-box g.room-shape[data-selected]")).to_have_count(0)
    way.sim.world.set_space(north_west, presence=False)
    expect(page.locator("#route")).to_have_attribute("data-space-id", north_west, timeout=PUSH_MS)
    assert not page.errors


@pytest.mark.browser
def test_the_route_respects_the_display_filter(server, sim, contexts):
    way = WayFloor(server, sim)
    south_a = way.sid["south_a"]
    settings = {"here": HERE, "hidden_rooms": [south_a]}
    server.svc.store.update_display_settings(way.display.id, settings)
    page = open_page(contexts, way.url)
    expect(page.locator("#route")).to_have_attribute("data-space-id", way.sid["south_b"])
    expect(shape(page, south_a)).to_have_count(0)
    assert south_a not in free_order(page)


@pytest.mark.browser
def test_a_tap_draws_the_way_to_that_room_and_the_idle_view_returns(way, contexts):
    page = open_page(contexts, way.url, init=IDLE, clock=True)
    south_a, north_mid = way.sid["south_a"], way.sid["north_mid"]
    expect(page.locator("#route")).to_have_attribute("data-space-id", south_a)
    expect(page.locator("#qr img.qr-room")).to_have_count(0)
    # The page's clock stands still while the tapped view is checked: on a slow machine the
    # 1.5 s idle time would otherwise run out under the test's feet.
    pause_clock(page)
    shape(page, north_mid).click()
    expect(page.locator("#route")).to_have_attribute("data-space-id", north_mid)
    expect(page.locator("#route")).to_have_attribute("data-selected", "tap")
    expect(page.locator("#map-card .map-card-name")).to_have_text(way.names[north_mid])
    qr = page.locator("#qr img.qr-room")
    expect(qr).to_have_attribute("src", f"/kiosk/{way.cred}/qr.svg?room={north_mid}")
    expect(page.locator("#qr svg")).to_be_hidden()
    page.wait_for_function(
        "() => { const i = document.querySelector('#qr img.qr-room'); "
        "return i && i.complete && i.naturalWidth > 0; }",
        polling=100,
    )
    expect(page.locator("#qr-title")).to_contain_text(way.names[north_mid])
    # Back to the resting view after the (injected) idle time, and not before.
    page.clock.run_for(1200)
    expect(page.locator("#route")).to_have_attribute("data-space-id", north_mid)
    page.clock.run_for(400)
    expect(page.locator("#route")).to_have_attribute("data-space-id", south_a)
    expect(page.locator("#route")).to_have_attribute("data-selected", "idle")
    expect(page.locator("#qr img.qr-room")).to_have_count(0)
    expect(page.locator("#qr svg")).to_be_visible()
    # The free list is a way in too.
    page.locator(f'#free-list li[data-space-id="{way.sid["south_b"]}"]').click()
    expect(page.locator("#route")).to_have_attribute("data-space-id", way.sid["south_b"])
    assert not page.errors


@pytest.mark.browser
def test_tapping_a_room_that_is_not_free_shows_its_state_and_never_a_route_to_it(way, contexts):
    north_mid, north_east = way.sid["north_mid"], way.sid["north_east"]
    way.sim.world.set_space(north_mid, presence=True)
    way.sim.world.set_space(north_east, health="offline")
    wait_until(lambda: way.server_says("occupied", north_mid), timeout=10)
    page = open_page(contexts, way.url, init=NO_IDLE)
    expect(page.locator("#route")).to_have_attribute("data-space-id", way.sid["south_a"])
    shape(page, north_mid).click()
    expect(shape(page, north_mid)).to_have_attribute("data-selected", "true")
    # The line goes to the nearest free room instead (tests/test_kiosk_card.py says more).
    expect(page.locator("#route")).to_have_attribute("data-selected", "alternative")
    expect(page.locator("#route")).not_to_have_attribute("data-space-id", north_mid)
    expect(page.locator("#map-card")).to_have_attribute("data-state", "occupied")
    expect(page.locator("#map-card .map-card-state")).to_have_text("In use")
    shape(page, north_east).click()
    expect(page.locator("#map-card .map-card-state")).to_have_text(
        "Unknown: Sensor offline", timeout=PUSH_MS
    )
    expect(page.locator("#route")).not_to_have_attribute("data-space-id", north_east)
    # A room that stops being free while it is chosen loses its route at once.
    north_west = way.sid["north_west"]
    shape(page, north_west).click()
    expect(page.locator("#route")).to_have_attribute("data-space-id", north_west)
    way.sim.world.set_space(north_west, presence=True)
    expect(page.locator("#route")).not_to_have_attribute(
        "data-space-id", north_west, timeout=PUSH_MS
    )
    expect(page.locator("#route")).to_have_attribute("data-selected", "alternative")
    expect(page.locator("#map-card .map-card-state")).to_have_text("In use")
    assert not page.errors


@pytest.mark.browser
def test_no_contact_with_the_server_means_no_route(way, contexts):
    page = open_page(contexts, way.url + "?no_contact_s=2")
    expect(page.locator("#route")).to_have_count(1)
    way.server.stop()
    page.wait_for_function(f"() => {FEED} === 'stale'", timeout=PUSH_MS)
    expect(page.locator("#route")).to_have_count(0, timeout=PUSH_MS)
    # The list keeps its last known rooms (the banner says so) but suggests no walk to them.
    texts = page.locator("#free-list .free-distance").all_text_contents()
    assert all(t == "" for t in texts)
    expect(page.locator('#map-box g.room-shape[data-state="free"]')).to_have_count(
        0, timeout=PUSH_MS
    )
    assert not page.errors


@pytest.mark.browser
def test_a_reload_with_the_server_down_still_shows_the_plan(way, contexts):
    """The service worker keeps the plan with the page: an offline reload is not a blank map."""
    page = open_page(contexts, way.url)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=10_000)
    plan_url = page_config(way.server.app.test_client(), f"/kiosk/{way.cred}")["plan"]["url"]
    cached = (
        "u => caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k)"
        ".then(c => c.match(u))))).then(hits => hits.some(Boolean))"
    )
    page.wait_for_function(cached, arg=plan_url, timeout=10_000)
    # The worker keeps the shell's scripts and stylesheets alongside, in parallel with the plan:
    # the reload below is offline only once all of them are kept, as on a screen that has run
    # for more than a moment (a server gone within a second of the first load is another test).
    shell = page.evaluate(
        "() => [location.origin + location.pathname].concat(Array.from(document.querySelectorAll("
        '\'script[src*="/static/kiosk/"], link[rel=stylesheet][href*="/static/kiosk/"]\'))'
        ".map(e => e.src || e.href))"
    )
    kept_all = (
        "us => caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k))))"
        ".then(cs => Promise.all(us.map(u => Promise.all(cs.map(c => c.match(u)))"
        ".then(hits => hits.some(Boolean))))).then(all => all.every(Boolean))"
    )
    page.wait_for_function(kept_all, arg=shell, timeout=10_000)
    way.server.stop()
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-shell", "cache", timeout=PUSH_MS)
    expect(shape(page, way.sid["south_a"])).to_have_count(1, timeout=PUSH_MS)
    # The plan image is answered from the kept copy, not an error. Asked until it is (within a
    # deadline): one full-suite run in three saw a single fetch fail right after the reload
    # (status 0), while the plan drawn under the rooms came from the same kept copy.
    page.wait_for_function(
        "u => fetch(u).then(r => r.status === 200, () => false)", arg=plan_url, timeout=PUSH_MS
    )


@pytest.mark.browser
def test_phone_opened_on_a_room_shows_its_way_and_keeps_it_live(way, contexts):
    north_mid = way.sid["north_mid"]
    phone = open_page(contexts, f"{way.phone_url}?room={north_mid}", 390, 844)
    expect(phone.locator("#route")).to_have_attribute("data-space-id", north_mid)
    expect(phone.locator("#map-card .map-card-name")).to_have_text(way.names[north_mid])
    expect(phone.locator("svg.plan-map image")).to_have_attribute("href", re.compile("^/phone/"))
    shot(phone, "wayfinding-phone-390x844")
    # Opened on a room, the phone scrolls to the map; its list above is ranked from the kiosk.
    assert phone.evaluate("scrollY") > 0
    phone.evaluate("scrollTo(0, 0)")
    shot(phone, "wayfinding-phone-390x844-top")
    way.sim.world.set_space(north_mid, presence=True)
    # Never a way to a room in use: the nearest free one instead.
    expect(phone.locator("#route")).to_have_attribute(
        "data-space-id", way.sid["south_a"], timeout=10_000
    )
    expect(phone.locator("#map-card .map-card-state")).to_have_text("In use")
    way.sim.world.set_space(north_mid, presence=False)
    expect(phone.locator("#route")).to_have_attribute("data-space-id", north_mid, timeout=10_000)
    # An unknown room in the address is ignored: the phone shows its nearest free room.
    other = open_page(contexts, f"{way.phone_url}?room=spc_nope", 390, 844)
    expect(other.locator("#route")).to_have_attribute("data-space-id", way.sid["south_a"])
    assert not phone.errors and not other.errors


@pytest.mark.browser
def test_without_outlines_the_treemap_stays(server, sim, contexts):
    way = WayFloor(server, sim, outlines=False)
    page = open_page(contexts, way.url)
    rooms = len(server.svc.directory.rooms_of(way.id))
    expect(page.locator("#map g.tile")).to_have_count(rooms, timeout=5000)
    expect(page.locator("svg.plan-map")).to_have_count(0)
    expect(page.locator("#route")).to_have_count(0)
    assert not page.errors


@pytest.mark.browser
def test_straight_line_distances_are_said_to_be_so(server, sim, contexts):
    way = WayFloor(server, sim)
    document = way.document(True)
    document["nodes"], document["edges"] = [], []
    server.svc.store.put_layout(way.id, document)
    page = open_page(contexts, way.url, init=None)
    expect(page.locator("#free-note")).to_be_visible()
    expect(page.locator("#free-note")).to_have_text("Straight-line distances")
    # In a straight line the room just above the screen is the nearest.
    expect(page.locator("#route")).to_have_attribute("data-space-id", way.sid["north_west"])
    assert free_order(page)[0] == way.sid["north_west"]
    expect(page.locator(".free-distance").first).to_have_text(
        re.compile(rf"^\d+ m · {MINUTES} min$")
    )
    assert not page.errors


@pytest.mark.browser
def test_without_a_scale_the_list_is_ranked_without_metres(server, sim, contexts):
    way = WayFloor(server, sim)
    document = way.document(True)
    document["metres_across"] = None
    server.svc.store.put_layout(way.id, document)
    page = open_page(contexts, way.url)
    expect(page.locator("#route")).to_have_attribute("data-space-id", way.sid["south_a"])
    assert free_order(page)[:2] == [way.sid["south_a"], way.sid["south_b"]]
    texts = page.locator("#free-list .free-distance").all_text_contents()
    assert texts and all(t == "" for t in texts)
    expect(page.locator("#free-note")).to_be_hidden()
    assert not page.errors


@pytest.mark.browser
@pytest.mark.parametrize(
    "size,theme", [((1920, 1080), "light"), ((1080, 1920), "light"), ((1920, 1080), "dark")]
)
def test_screenshots_of_the_plan_map(way, contexts, size, theme):
    way.sim.world.set_space(way.sid["north_mid"], presence=True)
    way.sim.world.set_space(way.sid["south_c"], health="offline")
    settings = {"here": HERE, "theme": theme, "language": "de" if theme == "dark" else "en"}
    way.server.svc.store.update_display_settings(way.display.id, settings)
    page = open_page(contexts, way.url, *size)
    expect(page.locator("#route")).to_have_attribute("data-space-id", way.sid["south_a"])
    expect(shape(page, way.sid["north_mid"])).to_have_attribute("data-state", "occupied")
    # Nothing spills out of the screen, and every outlined room lies inside the map box.
    assert page.evaluate(
        "() => document.documentElement.scrollHeight <= innerHeight + 1"
        " && document.documentElement.scrollWidth <= innerWidth + 1"
    )
    box = page.locator("#map-box").bounding_box()
    for rid in way.sid.values():
        b = shape(page, rid).bounding_box()
        assert b["x"] >= box["x"] - 1 and b["x"] + b["width"] <= box["x"] + box["width"] + 1
        assert b["y"] >= box["y"] - 1 and b["y"] + b["height"] <= box["y"] + box["height"] + 1
    # Room names are large enough to read across a lobby (at least 24 px at 1080p).
    sizes = page.locator("#map-box .shape-name").evaluate_all(
        "els => els.filter(e => e.getAttribute('display') !== 'none')"
        ".map(e => e.getBoundingClientRect().height)"
    )
    assert sizes and min(sizes) >= 24
    shot(page, f"wayfinding-{size[0]}x{size[1]}-{theme}")
    assert not page.errors


@pytest.mark.browser
def test_room_names_on_the_plan_and_the_card_are_text(way, contexts):
    page = open_page(contexts, way.url)
    rid = way.sid["south_a"]
    evil = '<img src=x onerror="window.__pwned=1">'
    page.evaluate(
        """([id, name]) => signageKiosk.apply({type: 'snapshot', epoch: 'x', seq: 999999,
            feed: 'live', server_time: new Date().toISOString(),
            rooms: {[id]: {id, name, function: 'meeting_room', capacity: 4, state: 'free',
                           since_s: 5}}})""",
        [rid, evil],
    )
    # On the room, or (too long for it at the smallest size) in the numbers' legend under the
    # map: as text either way.
    page.wait_for_function(
        """([id, name]) => {
          const g = document.querySelector(`#map-box g.room-shape[data-space-id="${id}"]`);
          const legend = document.querySelector(`[data-legend-for="${id}"] .map-number-name`);
          const spans = g ? [...g.querySelectorAll(".shape-name tspan")] : [];
          const lines = spans.map((t) => t.textContent);
          const onMap = lines.map((l, i) => (i < lines.length - 1 ? l.replace(/-$/, "") : l))
            .join("");
          return onMap === name || (legend && legend.textContent === name);
        }""",
        arg=[rid, evil],
    )
    expect(page.locator("#map-card .map-card-name")).to_have_text(evil)
    page.evaluate("id => signageKiosk.select(id)", rid)
    expect(page.locator("#qr-title")).to_contain_text(evil)
    assert page.locator("img[src=x]").count() == 0
    assert page.evaluate("window.__pwned") is None


@pytest.mark.browser
def test_rooms_the_plan_does_not_outline_are_not_said_to_be_on_the_map(way, contexts):
    """A free room the layout does not outline is counted as "more free", not "on the map"."""
    page = open_page(contexts, way.url, 1280, 720)
    more = page.locator("#free-more")
    expect(more).to_be_visible()
    hidden = page.locator("#free-list li.free-item[hidden]").evaluate_all(
        "els => els.map(e => e.dataset.spaceId)"
    )
    assert any(rid not in way.sid.values() for rid in hidden)  # the ranking puts them last
    expect(more).to_have_text(f"+{len(hidden)} more free")


# -- stairs and lifts on the plan ------------------------------------------------------------
# The fixture's floor has the lift at the west end of the main corridor (m0, 50 units from the
# screen) and stairs at its east end (m3). The tests make the west end of the north corridor
# (t0) a second staircase: reachable, but far further than m3, so it is drawn without emphasis.
SHOTS = Path(os.environ.get("SIGNAGE_SHOTS") or SCREENSHOTS)
NODE_XY = {n: (x, y) for n, x, y, _ in NODES}


def with_second_stairs(way: WayFloor) -> dict:
    """The fixture's layout with t0 turned into stairs; returns the kiosk's wayfinding for it."""
    document = way.document(True)
    for node in document["nodes"]:
        if node["id"] == "t0":
            node["kind"] = "stairs"
    way.layout = way.server.svc.store.put_layout(way.id, document)
    return way.wayfinding()


def metres_label(m: float) -> str:
    """How the kiosk rounds a distance: to the metre below 20 m, else to 5 m."""
    return str(max(1, round(m))) if m < 20 else str(round(m / 5) * 5)


def landmark(page, node_id: str):
    return page.locator(f'#map-box g.landmark[data-node-id="{node_id}"]')


CENTRE_IN_PLAN = """el => {
    const r = el.getBoundingClientRect();
    const p = new DOMPoint(r.x + r.width / 2, r.y + r.height / 2)
        .matrixTransform(el.ownerSVGElement.getScreenCTM().inverse());
    return [p.x, p.y, r.width, r.height];
}"""


def boxes_meet(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def shot_b(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920)])
def test_stairs_and_lifts_are_drawn_where_they_are_labelled_and_the_nearest_marked(
    way, contexts, size
):
    wf = with_second_stairs(way)
    assert [(m["kind"], m["id"]) for m in wf["landmarks"]] == [
        ("lift", "m0"),
        ("stairs", "m3"),
        ("stairs", "t0"),
    ]
    exits = {e["kind"]: e for e in wf["exits"]}
    assert exits["lift"]["id"] == "m0" and exits["stairs"]["id"] == "m3"
    # With reduced motion the halo of "you are here" stands still (kiosk.css): it otherwise
    # pulses to 1.35 times its size, and these measures would depend on when they were taken.
    page = open_page(contexts, way.url, *size, reduced_motion="reduce")
    assert (
        page.locator("#you-are-here .here-halo").evaluate("e => getComputedStyle(e).animationName")
        == "none"
    )
    expect(page.locator("#map-box g.landmark")).to_have_count(3)
    here = page.locator("#you-are-here")
    here_box = here.bounding_box()
    here_dot = page.locator("#you-are-here .here-halo").bounding_box()
    map_box = page.locator("#map-box").bounding_box()
    for node_id, kind, word in (
        ("m0", "lift", "Lift"),
        ("m3", "stairs", "Stairs"),
        ("t0", "stairs", "Stairs"),
    ):
        mark = landmark(page, node_id)
        expect(mark).to_have_attribute("data-kind", kind)
        # The sign sits on the node: its centre, read back from the screen into plan units.
        x, y, w, h = mark.locator(".landmark-badge").evaluate(CENTRE_IN_PLAN)
        assert x == pytest.approx(NODE_XY[node_id][0], abs=1.0)
        assert y == pytest.approx(NODE_XY[node_id][1], abs=1.0)
        # Sized like the "you are here" marker (whose halo is about 52 px at 1080p): readable
        # across a lobby, not a speck and not a block.
        assert 0.6 * here_dot["height"] <= h <= 1.3 * here_dot["height"], (node_id, h)
        # An icon drawn in shapes (no glyph, no emoji) and a word, not colour alone.
        assert mark.locator(".landmark-sign path, .landmark-sign rect").count() >= 2
        assert mark.locator(".landmark-sign text").count() == 0
        nearest = exits[kind]["id"] == node_id
        label = f"{word} · {metres_label(exits[kind]['m'])} m" if nearest else word
        expect(mark.locator(".landmark-label")).to_have_text(label)
        if nearest:
            expect(mark).to_have_attribute("data-nearest", "true")
        else:
            expect(mark).not_to_have_attribute("data-nearest", "true")
        # The label is large enough to read, inside the map and clear of "you are here".
        pill = mark.locator(".landmark-pill").bounding_box()
        text = mark.locator(".landmark-label").bounding_box()
        assert text["height"] >= 18 * min(size) / 1080
        assert (
            pill["x"] >= map_box["x"] - 1
            and pill["x"] + pill["width"] <= map_box["x"] + map_box["width"] + 1
        )
        assert not boxes_meet(pill, here_box), node_id
    # The nearest signs stand out: larger than the other one.
    big = landmark(page, "m3").locator(".landmark-badge").bounding_box()["height"]
    small = landmark(page, "t0").locator(".landmark-badge").bounding_box()["height"]
    assert big > small * 1.15
    # Signs lie under the route and the marker: neither can be hidden by them.
    order = page.evaluate(
        "() => ['plan-rooms', 'plan-landmarks', 'plan-route', 'plan-here']"
        ".map(id => document.getElementById(id)).map(e => [...e.parentNode.children].indexOf(e))"
    )
    assert order == sorted(order) and -1 not in order
    # With free rooms on this floor, the route goes to a room, not to the stairs.
    expect(page.locator("#route")).to_have_attribute("data-space-id", way.sid["south_a"])
    expect(page.locator("#exit-route")).to_have_count(0)
    # No route label sits on the drawn route.
    route = page.locator("#route").get_attribute("points").split()
    route_pts = [[float(v) for v in p.split(",")] for p in route]
    labels = page.locator("#map-box .landmark-pill").evaluate_all(
        "els => els.map(e => { const b = e.getBBox(); return [b.x, b.y, b.width, b.height]; })"
    )
    for bx, by, bw, bh in labels:
        for (ax, ay), (cx, cy) in zip(route_pts, route_pts[1:], strict=False):
            for k in range(51):
                px_, py_ = ax + (cx - ax) * k / 50, ay + (cy - ay) * k / 50
                assert not (bx < px_ < bx + bw and by < py_ < by + bh), "a label covers the route"
    shot_b(page, f"landmarks-{size[0]}x{size[1]}")
    page.locator("#map-box").screenshot(path=str(SHOTS / f"landmarks-{size[0]}x{size[1]}-map.png"))
    assert not page.errors


@pytest.mark.browser
def test_landmark_words_follow_the_display_language(way, contexts):
    with_second_stairs(way)
    settings = {"here": HERE, "language": "de", "theme": "dark"}
    way.server.svc.store.update_display_settings(way.display.id, settings)
    page = open_page(contexts, way.url)
    expect(landmark(page, "m0").locator(".landmark-label")).to_have_text("Aufzug · 2 m")
    expect(landmark(page, "t0").locator(".landmark-label")).to_have_text("Treppe")
    shot_b(page, "landmarks-1920x1080-dark-de")
    assert not page.errors


def rooms_of_floor(sim, floor_id: str) -> list:
    return [sim.world.portfolio.spaces[r] for r in sim.world.portfolio.rooms_under(floor_id)]


def fill_floor(sim, floor_id: str, free: set[str] = frozenset()) -> None:
    """Every room of a floor in use, healthy, except those named free."""
    for room in rooms_of_floor(sim, floor_id):
        busy = room.id not in free
        if room.counting_mode == "entry":
            sim.world.set_space(room.id, occupancy=3 if busy else 0, health="healthy")
        else:
            sim.world.set_space(room.id, presence=busy, health="healthy")


@pytest.mark.browser
def test_nothing_free_here_but_free_elsewhere_draws_the_way_to_the_nearest_stairs_or_lift(
    way, contexts
):
    with_second_stairs(way)
    # This screen stands mid-corridor: the stairs (m3) 400 units east, the lift (m0) 600 west.
    here = [700, 400]
    way.server.svc.store.update_display_settings(way.display.id, {"here": here})
    wf = kiosk_wayfinding(way.layout.data, here, way.layout.version)
    nearest = min(wf["exits"], key=lambda e: e["units"])
    assert nearest["id"] == "m3" and nearest["m"] == 16.0
    others = [f for f in way.sim.world.portfolio.floor_ids if f != way.id]
    elsewhere = next(r for r in rooms_of_floor(way.sim, others[0]) if r.counting_mode == "oa")
    fill_floor(way.sim, way.id)
    fill_floor(way.sim, others[0], free={elsewhere.id})
    for floor_id in others[1:]:
        fill_floor(way.sim, floor_id)
    # Silent for 5 s is "lost" (the server's heartbeat comes every second): the end of the test
    # waits for it, and a loaded machine does not reach it by accident.
    page = open_page(contexts, way.url + "?no_contact_s=5")
    expect(page.locator(f'#other-floors li[data-floor-id="{others[0]}"]')).to_have_attribute(
        "data-state", "known", timeout=10_000
    )
    expect(page.locator("#free-list li.free-item")).to_have_count(0, timeout=PUSH_MS)
    exit_route = page.locator("#exit-route")
    expect(exit_route).to_have_attribute("data-node-id", "m3", timeout=PUSH_MS)
    expect(exit_route).to_have_attribute("data-kind", "stairs")
    expect(page.locator("#route")).to_have_count(0)  # no way to a room that is not free
    expect(landmark(page, "m3")).to_have_attribute("data-route", "true")
    expect(landmark(page, "m0")).not_to_have_attribute("data-route", "true")
    # From "you are here" towards the stairs, stopping at the edge of their sign.
    points = [[float(v) for v in p.split(",")] for p in exit_route.get_attribute("points").split()]
    assert points[0] == nearest["points"][0] == wf["here"] == here
    end = points[-1]
    assert end[1] == pytest.approx(400, abs=0.2) and here[0] + 300 < end[0] < NODE_XY["m3"][0]
    expect(page.locator("#map-card")).to_be_visible()
    expect(page.locator("#map-card .map-card-name")).to_have_text("To other floors")
    expect(page.locator("#map-card .map-card-state")).to_have_text("Stairs · 16 m")
    shot_b(page, "exit-route-1920x1080")

    # A room frees up on this floor: the way to it replaces the way off the floor.
    way.sim.world.set_space(way.sid["south_b"], presence=False)
    expect(page.locator("#route")).to_have_attribute(
        "data-space-id", way.sid["south_b"], timeout=PUSH_MS
    )
    expect(exit_route).to_have_count(0)
    way.sim.world.set_space(way.sid["south_b"], presence=True)
    expect(exit_route).to_have_attribute("data-node-id", "m3", timeout=PUSH_MS)
    # Nothing free anywhere: no way to walk, only the signs.
    way.sim.world.set_space(elsewhere.id, presence=True)
    expect(page.locator(f'#other-floors li[data-floor-id="{others[0]}"] .of-total')).to_have_text(
        "Nothing free", timeout=10_000
    )
    expect(exit_route).to_have_count(0)
    expect(page.locator("#map-card")).to_be_hidden()
    expect(page.locator("#map-box g.landmark")).to_have_count(3)
    # Free elsewhere again, then the server goes away: a page that cannot vouch draws nothing.
    way.sim.world.set_space(elsewhere.id, presence=False)
    expect(exit_route).to_have_attribute("data-node-id", "m3", timeout=10_000)
    way.server.stop()
    page.wait_for_function(f"() => {FEED} === 'stale'", timeout=PUSH_MS)
    expect(exit_route).to_have_count(0, timeout=PUSH_MS)
    expect(page.locator("#map-box g.landmark")).to_have_count(3)
    assert not page.errors


@pytest.mark.browser
def test_a_display_listing_meeting_rooms_points_off_the_floor_only_to_free_meeting_rooms(
    way, contexts
):
    """Other floors come as counts by group: only the groups the display lists send people."""
    here = [700, 400]  # mid-corridor: the stairs (m3) are the nearest way off the floor
    settings = {"here": here, "functions": ["meeting_room"]}
    way.server.svc.store.update_display_settings(way.display.id, settings)
    others = [f for f in way.sim.world.portfolio.floor_ids if f != way.id]
    upstairs = rooms_of_floor(way.sim, others[0])
    booth = next(r for r in upstairs if r.function == "phone_booth")
    meeting = next(r for r in upstairs if r.function == "meeting_room" and r.counting_mode == "oa")
    # Here only rooms the display does not list are free; upstairs only a phone booth.
    unlisted = {r.id for r in rooms_of_floor(way.sim, way.id) if r.function != "meeting_room"}
    fill_floor(way.sim, way.id, free=unlisted)
    fill_floor(way.sim, others[0], free={booth.id})
    for floor_id in others[1:]:
        fill_floor(way.sim, floor_id)
    page = open_page(contexts, way.url)
    line = page.locator(f'#other-floors li[data-floor-id="{others[0]}"]')
    # The panel and the map read the same message: once the panel shows the booth, the map
    # has decided about the way off the floor.
    expect(line.locator('.of-group[data-group="focus"]')).to_have_attribute(
        "data-count", "1", timeout=PUSH_MS
    )
    expect(line.locator(".of-total")).to_have_text("1 free")
    expect(page.locator("#free-list li.free-item")).to_have_count(0, timeout=PUSH_MS)
    expect(page.locator("#exit-route")).to_have_count(0)
    expect(page.locator("#map-card")).to_be_hidden()
    expect(page.locator("#map-box g.landmark")).to_have_count(2)

    # A meeting room frees up there: now the way to the stairs is worth walking.
    way.sim.world.set_space(meeting.id, presence=False)
    expect(line.locator('.of-group[data-group="meet"]')).to_have_attribute(
        "data-count", "1", timeout=PUSH_MS
    )
    expect(page.locator("#exit-route")).to_have_attribute("data-node-id", "m3", timeout=PUSH_MS)
    expect(page.locator("#map-card .map-card-name")).to_have_text("To other floors")

    # A floor whose counts are not all numbers is unknown, as the panel reads it: no way to it.
    garbled = {"id": others[0], "name": "1st floor", "feed": "live", "state": "known"}
    garbled["free"] = {"meet": 1, "focus": "2"}
    page.evaluate(
        "f => signageKiosk.apply({type: 'floors', epoch: 'x', seq: 0, feed: 'live',"
        " other_floors: [f]})",
        garbled,
    )
    expect(line).to_have_attribute("data-state", "unknown")
    expect(page.locator("#exit-route")).to_have_count(0)
    assert not page.errors


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "de"])
def test_portrait_keeps_the_walking_distance_and_free_for(way, contexts, language):
    settings = {"here": HERE, "language": language}
    way.server.svc.store.update_display_settings(way.display.id, settings)
    page = open_page(contexts, way.url, 1080, 1920)
    expect(page.locator("html")).to_have_attribute("data-orientation", "portrait")
    expect(page.locator("#free-list")).to_have_class(re.compile(r"\branked\b"))
    south_a = way.sid["south_a"]
    assert free_order(page)[0] == south_a
    item = page.locator(f'#free-list li[data-space-id="{south_a}"]')
    dist, since = item.locator(".free-distance"), item.locator(".free-since")
    unit = "min" if language == "en" else "Min."
    expect(dist).to_have_text(re.compile(rf"^\d+ m · {MINUTES} {re.escape(unit)}$"))
    expect(since).to_have_text(re.compile("free|frei"))
    for part in (dist, since):
        expect(part).to_be_visible()
    box_item, box_dist, box_since = (x.bounding_box() for x in (item, dist, since))
    for part in (box_dist, box_since):
        assert part["x"] >= box_item["x"] - 1
        assert part["x"] + part["width"] <= box_item["x"] + box_item["width"] + 1
        assert part["y"] + part["height"] <= box_item["y"] + box_item["height"] + 1
    assert not boxes_meet(box_dist, box_since)
    # Neither is cut short, and "free for" still reads at a distance.
    clipped = item.evaluate(
        "li => [...li.querySelectorAll('.free-distance, .free-since')]"
        ".some(e => e.scrollWidth > e.clientWidth + 1)"
    )
    assert not clipped
    assert box_since["height"] >= 20
    # Every ranked item shown on the screen carries both: read in one go, since the list may
    # re-fit between counting its items and reading the nth one.
    every_shown_has_both = """() => {
      const shown = [...document.querySelectorAll('#free-list li.free-item:not([hidden])')];
      const visible = e => !!e && e.getClientRects().length > 0;
      return shown.length >= 4 && shown.every(li => {
        const dist = li.querySelector('.free-distance');
        return !(dist && dist.textContent) || visible(li.querySelector('.free-since'));
      });
    }"""
    wait_until(lambda: page.evaluate(every_shown_has_both), timeout=10, message="4+ with both")
    shot_b(page, f"portrait-free-list-{language}")
    assert not page.errors
