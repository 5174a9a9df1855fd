"""The kiosk page in headless Chromium: states, live changes, outages, night, self-healing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from signage import create_app
from tests.conftest import server_config
from tests.helpers import ServerThread, wait_until

# Both: the simulator answers in its own shapes and in the reference's (tests/conftest.py).
pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parent / "screenshots"
FEED = "document.documentElement.dataset.feed"
# Predicates are functions: a bare expression would be eval()ed, which the page's CSP forbids.


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture
def quick_sim(sim):
    """The simulator (conftest's refreshes each second, so the floor feed stays live)."""
    return sim


@pytest.fixture
def kserver(quick_sim, make_server):
    return make_server()


class Floor:
    """A floor with some rooms set free, occupied and offline in the simulator."""

    def __init__(self, server, sim, index: int = 0):
        self.server, self.sim = server, sim
        self.id = server.svc.directory.floors()[index].id
        self.rooms = [s.id for s in server.svc.directory.rooms_of(self.id)]
        self.occupied = self.rooms[1::3]
        self.offline = self.rooms[2::3][:2]
        self.free = [r for r in self.rooms if r not in self.occupied and r not in self.offline]
        for rid in self.rooms:
            sim.world.set_space(rid, presence=rid in self.occupied, health="healthy")
        for rid in self.offline:
            sim.world.set_space(rid, presence=False, health="offline")
        self.display, self.cred = server.add_display(self.id, name="Lobby east")
        wait_until(self._server_agrees, timeout=10, message="server has the states")

    def _server_agrees(self) -> bool:
        feed = self.server.svc.feeds.touch(self.id)
        rooms = feed.snapshot()["rooms"]
        return all(rooms[r]["state"] == self.expected(r) for r in self.rooms)

    def expected(self, rid: str) -> str:
        if rid in self.offline:
            return "unknown"
        return "occupied" if rid in self.occupied else "free"

    @property
    def url(self) -> str:
        return f"{self.server.url}/kiosk/{self.cred}"

    def settings(self, **values) -> None:
        self.server.svc.store.update_display_settings(self.display.id, values)


@pytest.fixture
def floor(kserver, quick_sim) -> Floor:
    return Floor(kserver, quick_sim)


def open_kiosk(contexts, url, width=1920, height=1080, init=None, wait="live", query=""):
    ctx = contexts(width, height, init)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(url + query)
    if wait:
        page.wait_for_function(f"() => {FEED} === {json.dumps(wait)}", timeout=10_000)
    return page


def tile(page, rid):
    return page.locator(f'#map [data-space-id="{rid}"]')


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


# -- rendering -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (3840, 2160)])
def test_rooms_render_with_their_states_at_each_size(floor, contexts, size):
    page = open_kiosk(contexts, floor.url, *size)
    for rid in floor.rooms:
        expect(tile(page, rid)).to_have_attribute("data-state", floor.expected(rid))
    listed = page.locator("#free-list [data-space-id]:visible").evaluate_all(
        "els => els.map(e => e.dataset.spaceId)"
    )
    assert listed and set(listed) <= set(floor.free)
    assert page.locator("#free-list [data-state]").evaluate_all(
        "els => els.every(e => e.dataset.state === 'free')"
    )
    # Colour is never alone: each state has its own icon and word.
    offline = tile(page, floor.offline[0])
    expect(offline.locator(".tile-state")).to_have_text("Sensor offline")
    expect(offline.locator(".tile-icon")).to_have_attribute("href", "#i-unknown")
    expect(tile(page, floor.occupied[0]).locator(".tile-state")).to_have_text("In use")
    # Every tile lies inside the map and the page does not scroll.
    assert page.evaluate(
        "() => document.documentElement.scrollHeight <= innerHeight + 1"
        " && document.documentElement.scrollWidth <= innerWidth + 1"
    )
    expected_orientation = "portrait" if size[1] > size[0] else "landscape"
    expect(page.locator("html")).to_have_attribute("data-orientation", expected_orientation)
    shot(page, f"kiosk-{size[0]}x{size[1]}")
    assert not page.errors


def test_a_room_flipped_in_the_simulator_changes_within_a_second(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    rid = floor.free[0]
    expect(tile(page, rid)).to_have_attribute("data-state", "free")
    floor.sim.world.set_space(rid, presence=True)
    expect(tile(page, rid)).to_have_attribute("data-state", "occupied", timeout=1000)
    expect(page.locator(f'#free-list [data-space-id="{rid}"]')).to_have_count(0, timeout=1000)
    floor.sim.world.set_space(rid, presence=False)
    expect(tile(page, rid)).to_have_attribute("data-state", "free", timeout=1000)
    expect(page.locator(f'#free-list [data-space-id="{rid}"]')).to_have_count(1, timeout=1000)


def test_a_sensor_going_offline_shows_unknown_with_a_reason(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    rid = floor.free[1]
    floor.sim.world.set_space(rid, health="offline")
    expect(tile(page, rid)).to_have_attribute("data-state", "unknown", timeout=2000)
    expect(tile(page, rid).locator(".tile-state")).to_have_text("Sensor offline")
    floor.sim.world.set_space(rid, presence=False, health="degraded")
    expect(tile(page, rid).locator(".tile-state")).to_have_text("Sensor fault", timeout=2000)


# -- outages ---------------------------------------------------------------------------------
def _serve_on(port: int, app) -> ServerThread:
    """A server on a given port (the kiosk's URL must stay the same across a restart)."""
    return ServerThread(app, port=port).start()


def _kill(server: ServerThread) -> None:
    server.stop()  # stops listening too: a dead server refuses, it does not hang


def test_server_killed_then_back_page_keeps_map_and_goes_live(floor, contexts, tmp_path):
    page = open_kiosk(contexts, floor.url)
    statuses: list[int] = []
    page.on(
        "response",
        lambda r: statuses.append(r.status) if r.request.is_navigation_request() else None,
    )
    _kill(floor.server)
    page.wait_for_function(f"() => {FEED} === 'stale'", timeout=5000)
    expect(page.locator("#freshness-text")).to_contain_text("reconnecting")
    for rid in floor.rooms:  # the map stays, with the last known states
        expect(tile(page, rid)).to_have_attribute("data-state", floor.expected(rid))

    app = create_app(server_config(floor.sim, tmp_path, SIGNAGE_PUBLIC_URL=floor.server.url))
    back = _serve_on(floor.server.port, app)
    try:
        page.wait_for_function(f"() => {FEED} === 'live'", timeout=10_000)
        expect(page.locator("#freshness-text")).to_have_text("Live")
        rid = floor.free[0]
        floor.sim.world.set_space(rid, presence=True)
        expect(tile(page, rid)).to_have_attribute("data-state", "occupied", timeout=2000)
    finally:
        back.stop()
    assert page.url == floor.url and not statuses  # never navigated (no error page)
    assert not page.errors


def test_upstream_socket_dropped_shows_polling_then_live(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    floor.sim.world.set_socket_mode("refuse")
    floor.sim.world.drop_sockets(floor.id)
    page.wait_for_function(f"() => {FEED} === 'polling'", timeout=8000)
    expect(page.locator("#freshness-text")).to_contain_text("Updated")
    rid = floor.occupied[0]
    floor.sim.world.set_space(rid, presence=False)
    expect(tile(page, rid)).to_have_attribute("data-state", "free", timeout=5000)
    floor.sim.world.set_socket_mode("normal")
    page.wait_for_function(f"() => {FEED} === 'live'", timeout=10_000)


def test_no_contact_for_the_threshold_shows_every_room_unknown(floor, contexts):
    page = open_kiosk(contexts, floor.url, query="?no_contact_s=2")
    _kill(floor.server)
    page.wait_for_function(f"() => {FEED} === 'stale'", timeout=5000)
    free = tile(page, floor.free[0])
    expect(free).to_have_attribute("data-state", "unknown", timeout=5000)
    expect(free.locator(".tile-state")).to_have_text("No connection")
    expect(free.locator(".tile-note")).to_contain_text("Last known: Free")
    assert page.locator('#map [data-state="free"]').count() == 0
    expect(page.locator("#free-list [data-space-id]")).to_have_count(0)
    expect(page.locator("#freshness-text")).to_contain_text("No connection since")


def test_reload_with_the_server_down_restores_the_last_state(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=10_000)
    rid = floor.free[0]
    floor.sim.world.set_space(rid, presence=True)  # newer than the page's embedded state
    expect(tile(page, rid)).to_have_attribute("data-state", "occupied", timeout=2000)
    key = f"signage:kiosk:{floor.display.id}"
    page.wait_for_function(
        f"() => (JSON.parse(localStorage.getItem({json.dumps(key)}) || '{{}}').rooms || {{}})"
        f"[{json.dumps(rid)}]?.state === 'occupied'",
        timeout=8000,
    )
    _kill(floor.server)
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-shell", "cache")
    expect(page.locator("html")).to_have_attribute("data-feed", "stale")
    expect(tile(page, rid)).to_have_attribute("data-state", "occupied")
    expect(tile(page, floor.free[1])).to_have_attribute("data-state", "free")
    expect(page.locator("#freshness-text")).to_contain_text("reconnecting")
    shot(page, "kiosk-restored-offline")


# -- night, clock, self-healing --------------------------------------------------------------
CLOCK = "window.__SIGNAGE_TEST_CLOCK__ = {now: %s, timeZone: 'Europe/Berlin'};"


def test_night_mode_at_an_injected_hour(floor, contexts):
    floor.settings(night={"start": "20:00", "end": "07:00"})
    night = open_kiosk(contexts, floor.url, init=CLOCK % '"2025-01-15T22:30:00Z"')
    expect(night.locator("html")).to_have_attribute("data-night", "on")
    expect(night.locator("#night-clock")).to_have_text(
        re.compile(r"^(23:30|11:30\sPM)$")
    )  # Berlin, UTC+1
    expect(night.locator("#map")).to_be_hidden()
    shot(night, "kiosk-night")
    night.evaluate("signageKiosk.setClock('2025-01-15T07:05:00Z')")
    expect(night.locator("html")).to_have_attribute("data-night", "off")
    day = open_kiosk(contexts, floor.url, init=CLOCK % '"2025-07-15T10:00:00Z"')
    expect(day.locator("html")).to_have_attribute("data-night", "off")
    expect(day.locator("#clock-time")).to_have_text(re.compile(r"^12:00"))  # Berlin, UTC+2 in July


def test_nightly_reload_happens_once_in_the_quiet_hour(floor, contexts):
    init = CLOCK % '"2025-01-15T02:30:00Z"' + (
        "window.__SIGNAGE_TEST__ = {reloadHour: 3, reloadMinute: 0, reloadMinUptimeS: 1};"
        "sessionStorage.setItem('loads', String(+(sessionStorage.getItem('loads') || 0) + 1));"
    )
    page = open_kiosk(contexts, floor.url, init=init)
    page.wait_for_function("() => sessionStorage.getItem('loads') === '2'", timeout=10_000)
    page.wait_for_function(f"() => {FEED} === 'live'", timeout=10_000)
    key = f"signage:kiosk:{floor.display.id}:nightly"
    assert page.evaluate(f"localStorage.getItem({json.dumps(key)})") == "2025-1-15"
    page.wait_for_timeout(2500)  # past the minimum uptime again: no second reload that night
    assert page.evaluate("sessionStorage.getItem('loads')") == "2"


def test_reload_and_identify_commands(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    hub = floor.server.svc.hub
    wait_until(lambda: hub.command(floor.display.id, '{"type":"identify"}') == 1, timeout=5)
    expect(page.locator("#identify")).to_be_visible()
    expect(page.locator("#identify .identify-name")).to_have_text("Lobby east")
    page.evaluate("window.__marker = 1")
    hub.command(floor.display.id, '{"type":"reload"}')
    page.wait_for_function("() => window.__marker === undefined", timeout=5000)
    page.wait_for_function(f"() => {FEED} === 'live'", timeout=10_000)


def test_page_reloads_when_the_server_version_changes(floor, contexts, monkeypatch):
    page = open_kiosk(contexts, floor.url)
    page.evaluate("window.__marker = 1")
    import signage.web.kiosk as kiosk_module
    import signage.web.sockets as sockets_module

    monkeypatch.setattr(sockets_module, "__version__", "9.9.9")
    monkeypatch.setattr(kiosk_module, "__version__", "9.9.9")
    page.wait_for_function("() => window.__marker === undefined", timeout=8000)
    page.wait_for_function(f"() => {FEED} === 'live'", timeout=10_000)
    version = page.evaluate(
        "JSON.parse(document.getElementById('kiosk-config').textContent).version"
    )
    assert version == "9.9.9"


def test_page_sends_heartbeats_the_server_keeps(floor, contexts):
    open_kiosk(contexts, floor.url)
    hub = floor.server.svc.hub

    def info():
        subs = hub.subscribers(floor.id)
        return subs and subs[0].info

    got = wait_until(lambda: info() and "screen" in info() and info(), timeout=5)
    assert got["type"] == "heartbeat" and got["version"] and got["uptime_s"] >= 0
    assert re.match(r"^\d+x\d+$", got["screen"])


def test_revoked_display_shows_it_is_no_longer_paired(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    floor.server.svc.store.revoke_display(floor.display.id)
    floor.server.svc.hub.close_display(floor.display.id, 4003, "reconfigured")
    expect(page.locator("#unpaired")).to_be_visible(timeout=5000)
    expect(page.locator("html")).to_have_attribute("data-feed", "stale")


# -- settings, phone, QR ---------------------------------------------------------------------
def test_display_settings_theme_language_filters_and_rotation(floor, contexts):
    meeting = [
        s.id
        for s in floor.server.svc.directory.rooms_of(floor.id)
        if s.function == "meeting_room" and s.id in floor.free
    ]
    hidden = floor.rooms[-1]
    floor.settings(
        theme="dark",
        language="de",
        functions=["meeting_room"],
        hidden_rooms=[hidden],
        orientation="portrait",
        rotation=90,
        brand_color="#e0457b",
    )
    page = open_kiosk(contexts, floor.url, 1920, 1080)
    root = page.locator("html")
    expect(root).to_have_attribute("data-theme", "dark")
    expect(root).to_have_attribute("lang", "de")
    expect(root).to_have_attribute("data-rotation", "90")
    expect(page.locator(".free-title")).to_have_text("Jetzt frei")
    expect(tile(page, hidden)).to_have_count(0)
    listed = page.locator("#free-list [data-space-id]").evaluate_all(
        "els => els.map(e => e.dataset.spaceId)"
    )
    assert set(listed) == set(meeting) - {hidden}
    assert (
        page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--brand')")
        == "#e0457b"
    )
    # Rotated a quarter turn: the app's box is the screen turned on its side.
    box = page.locator("#app").bounding_box()
    assert abs(box["width"] - 1920) < 2 and abs(box["height"] - 1080) < 2
    shot(page, "kiosk-dark-de-rotated")
    floor.settings(theme="contrast")
    floor.server.svc.hub.close_display(floor.display.id, 4003, "reconfigured")
    expect(root).to_have_attribute("data-theme", "contrast", timeout=8000)
    page.wait_for_function(f"() => {FEED} === 'live'", timeout=10_000)
    shot(page, "kiosk-contrast")


def test_phone_view_is_live_and_refused_once_revoked(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    qr = page.locator("#qr svg")
    expect(qr).to_be_visible()
    store = floor.server.svc.store
    phone_url = f"{floor.server.url}/phone/{store.phone_credential(floor.display)}"
    phone = open_kiosk(contexts, phone_url, 390, 844)
    rid = floor.free[0]
    expect(tile(phone, rid)).to_have_attribute("data-state", "free")
    floor.sim.world.set_space(rid, presence=True)
    expect(tile(phone, rid)).to_have_attribute("data-state", "occupied", timeout=8000)
    shot(phone, "phone")
    assert phone.request.get(phone_url.replace("/phone/", "/api/phone/") + "/state").ok
    store.revoke_phone_link(floor.display.id)
    expect(phone.locator("#unpaired")).to_be_visible(timeout=8000)
    assert phone.request.get(phone_url).status == 404
    # The kiosk's credential never opens the phone view, nor the other way round.
    assert phone.request.get(f"{floor.server.url}/phone/{floor.cred}").status == 404


def test_qr_false_hides_the_qr_and_closes_the_phone_view(floor, contexts):
    floor.settings(qr=False)
    page = open_kiosk(contexts, floor.url)
    expect(page.locator("#qr")).to_have_count(0)
    phone_url = f"{floor.server.url}/phone/{floor.server.svc.store.phone_credential(floor.display)}"
    assert page.request.get(phone_url).status == 404


# -- security --------------------------------------------------------------------------------
def test_no_inline_script_and_room_names_are_text(floor, contexts):
    page = open_kiosk(contexts, floor.url)
    scripts = page.locator("script:not([src])").evaluate_all("els => els.map(e => e.type)")
    assert scripts and all(t == "application/json" for t in scripts)
    assert page.locator("[onload],[onerror],[onclick]").count() == 0
    evil = '<img src=x onerror="window.__pwned=1">'
    page.evaluate(
        """([id, name]) => signageKiosk.apply({type: 'snapshot', epoch: 'x', seq: 999999,
            feed: 'live', server_time: new Date().toISOString(),
            rooms: {[id]: {id, name, function: 'meeting_room', capacity: 4, state: 'free',
                           since_s: 5}}})""",
        [floor.rooms[0], evil],
    )
    expect(tile(page, floor.rooms[0]).locator(".tile-name")).to_have_text(evil)
    expect(page.locator(f'#free-list [data-space-id="{floor.rooms[0]}"] .free-name')).to_have_text(
        evil
    )
    assert page.locator("img[src=x]").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_a_logo_on_another_site_is_shown_and_only_its_origin_is_allowed(floor, contexts):
    """The CSP names the logo's origin for that page alone: the logo loads, nothing else may."""
    import http.server
    import threading

    png = (  # a 1x1 PNG
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
        b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
        b"5\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    referers: list[str | None] = []

    class Logo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            referers.append(self.headers.get("Referer"))
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Logo)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{other.server_address[1]}"
        floor.settings(logo_url=f"{origin}/brand/logo.png")
        answer = floor.server.app.test_client().get(f"/kiosk/{floor.cred}")
        policy = answer.headers["Content-Security-Policy"]
        assert f"img-src 'self' data: {origin};" in policy
        assert "script-src 'self';" in policy  # nothing else widened
        page = open_kiosk(contexts, floor.url)
        page.wait_for_function(
            "() => { const i = document.querySelector('img.logo');"
            " return i && i.complete && i.naturalWidth === 1; }",
            timeout=10_000,
        )
        assert referers and all(r is None for r in referers)  # the credential never leaves
        assert page.errors == []
        # Another display's page names no other site.
        _, cred = floor.server.add_display(floor.id, name="Plain")
        plain = floor.server.app.test_client().get(f"/kiosk/{cred}")
        assert origin not in plain.headers["Content-Security-Policy"]
    finally:
        other.shutdown()
        other.server_close()
        thread.join(timeout=5)
