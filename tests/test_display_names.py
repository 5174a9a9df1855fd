"""Display names of floors and rooms: set in the console and the API, shown on every screen.

The server resolves every name (core/names.py): the page, the socket's snapshot and its updates,
the HTTP fallback and the other floors' panel all carry the name for the screen's language.
Browser tests run the real server against the simulator's building (Ground floor, 1st floor,
2nd floor) in Chromium.
"""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from signage.core.hub import Hub, Subscriber
from signage.core.names import NameBook, ordinal_floor_name
from signage.store.names import DisplayNames
from tests import pg_server as pgs
from tests.admin_helpers import PASSWORD, Console, make_admin
from tests.helpers import wait_until

any_store, pg_server, pg_url = pgs.any_store, pgs.pg_server, pgs.pg_url
SHY = "\u00ad"  # soft hyphens the server puts in names: not part of the name read


# -- the rules, without a server ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "lang", "expected"),
    [
        ("Ground floor", "de", "Erdgeschoss"),
        ("Ground floor", "fr", "Rez-de-chaussée"),
        ("1st floor", "de", "1. OG"),
        ("1st floor", "fr", "1er étage"),
        ("2nd floor", "fr", "2e étage"),
        ("3rd floor", "de", "3. OG"),
        ("11th floor", "fr", "11e étage"),
        ("21st floor", "de", "21. OG"),
        ("Ground floor", "en", None),
        ("Ground floor east", "de", None),  # not the exact pattern: a proper name
        ("Floor 1", "de", None),
        ("2th floor", "de", None),
        ("11st floor", "fr", None),
        ("0th floor", "de", None),
        ("Atrium", "fr", None),
    ],
)
def test_ordinal_floor_names_get_a_translation_only_when_they_match_exactly(name, lang, expected):
    assert ordinal_floor_name(name, lang) == expected


def test_a_name_falls_back_from_the_language_to_the_default_to_density():
    book = NameBook()
    assert book.resolve("f1", "de", "Ground floor") == "Erdgeschoss"
    book.replace({"f1": {"": "Lobby level"}, "r1": {"de": "Kaminzimmer"}})
    assert book.resolve("f1", "de", "Ground floor") == "Lobby level"  # default beats the ordinal
    assert book.resolve("f1", "en", "Ground floor") == "Lobby level"
    assert book.resolve("r1", "de", "Grove") == "Kaminzimmer"
    assert book.resolve("r1", "fr", "Grove") == "Grove"  # no default: Density's
    version = book.version
    assert book.replace({"f1": {"": "Lobby level"}, "r1": {"de": "Kaminzimmer"}}) is False
    assert book.version == version


def test_a_message_is_localised_as_a_copy_and_a_heartbeat_is_left_alone():
    book = NameBook()
    book.replace({"r1": {"de": "Kaminzimmer"}})
    room = {"id": "r1", "name": "Grove", "state": "free"}
    panel = [{"id": "f1", "name": "Ground floor"}]
    message = {"type": "update", "rooms": {"r1": room}, "other_floors": panel}
    out = book.localise_message(message, "de")
    assert out["rooms"]["r1"]["name"] == "Kaminzimmer"
    assert out["other_floors"][0]["name"] == "Erdgeschoss"
    assert room["name"] == "Grove" and panel[0]["name"] == "Ground floor"  # shared dicts kept
    assert book.localise_message(message, "en") is None
    # A room Density calls "1st floor" keeps its name: only floors' ordinal names translate.
    odd = {"type": "update", "rooms": {"r2": {"id": "r2", "name": "1st floor"}}}
    assert book.localise_message(odd, "de") is None
    assert NameBook().localise_text(json.dumps(odd), "fr") == json.dumps(odd)
    heartbeat = '{"type":"heartbeat","seq":3}'
    assert book.localise_text(heartbeat, "de") is heartbeat


def test_the_hub_encodes_a_floor_s_frame_once_per_language_of_its_kiosks():
    import threading

    hub = Hub()
    book = NameBook()
    book.replace({"r1": {"de": "Kaminzimmer", "fr": "Salon"}})
    hub.localise = book.localise_text
    subs: dict[str, Subscriber] = {}
    for lang in ("de", "fr", "en", "de"):
        sub = hub.subscribe("f", 1, threading.Event(), None, language=lang)
        hub.snapshot(sub, "{}", 0)
        subs.setdefault(lang, sub)
    text = json.dumps({"type": "update", "seq": 1, "rooms": {"r1": {"id": "r1", "name": "Grove"}}})
    try:
        assert hub.publish("f", 1, text) == 4
        names = {}
        for lang, sub in subs.items():
            frame = sub.outbox[-1]
            names[lang] = json.loads(frame[2:].decode())["rooms"]["r1"]["name"]
        assert names == {"de": "Kaminzimmer", "fr": "Salon", "en": "Grove"}
    finally:
        hub.stop()


# -- the store, on both backends ---------------------------------------------------------------
def test_names_are_stored_replaced_and_removed(any_store):
    names = DisplayNames(any_store)
    assert names.all() == {}
    assert names.put("spc_1", {"": "Lobby", "de": "Empfang"}) == {}
    assert names.put("spc_2", {"fr": "Salon"}) == {}
    assert names.of("spc_1") == {"": "Lobby", "de": "Empfang"}
    before = names.put("spc_1", {"de": "Eingang"})  # exactly these: the default goes
    assert before == {"": "Lobby", "de": "Empfang"}
    assert names.all() == {"spc_1": {"de": "Eingang"}, "spc_2": {"fr": "Salon"}}
    names.put("spc_1", {})
    assert names.of("spc_1") == {}


# -- the API and the console -------------------------------------------------------------------
def test_the_names_generation_moves_with_each_write_and_never_repeats_after_a_restore(any_store):
    names = DisplayNames(any_store)
    first = names.generation()
    names.put("spc_1", {"": "Lobby"}, now=1000.0)
    restored_to = names.generation()
    assert restored_to != first
    names.put("spc_1", {"": "Lobby"}, now=1001.0)  # the same names: nothing written
    assert names.generation() == restored_to
    names.put("spc_1", {"": "Hall"}, now=1002.0)
    held = names.generation()  # what a process holds, with "Hall"
    # A restore brings the table and its generation back as they were after the first write;
    # the next write must not land on the number held for "Hall".
    with any_store.transaction() as conn:
        conn.execute(
            "UPDATE generations SET generation = ? WHERE name = ?", (restored_to, "display_names")
        )
        conn.execute("UPDATE display_names SET name = ? WHERE space_id = ?", ("Lobby", "spc_1"))
    names.put("spc_1", {"": "Foyer"}, now=1003.0)
    assert names.generation() not in (held, restored_to)
    assert names.read() == (names.generation(), {"spc_1": {"": "Foyer"}})


def floors_of(sim) -> list[str]:
    return list(sim.world.portfolio.floor_ids)


def rooms_of(sim, floor_id: str) -> list[str]:
    return list(sim.world.portfolio.rooms_under(floor_id))


@pytest.fixture
def admin(server) -> Console:
    make_admin(server.svc)
    console = Console(server.app)
    assert console.login().status_code == 302
    server.svc.directory.start()
    wait_until(lambda: server.svc.directory.floors(), timeout=10, message="Density's floors")
    return console


def test_api_round_trip_of_a_room_s_and_a_floor_s_names(sim, server, admin):
    ground = floors_of(sim)[0]
    room = rooms_of(sim, ground)[1]
    density_room = sim.world.portfolio.spaces[room].name
    got = admin.api("GET", f"/api/admin/spaces/{ground}/names").get_json()
    assert got["kind"] == "floor" and got["names"] == {}
    assert got["shown"] == {"en": "Ground floor", "de": "Erdgeschoss", "fr": "Rez-de-chaussée"}

    put = admin.api("PUT", f"/api/admin/spaces/{room}/names", json={"default": " Fireside  room "})
    assert put.status_code == 200, put.get_data(as_text=True)
    assert put.get_json()["names"] == {"default": "Fireside room"}
    put = admin.api(
        "PUT", f"/api/admin/spaces/{room}/names", json={"default": "Fireside", "de": "Kaminzimmer"}
    )
    body = put.get_json()
    assert body["kind"] == "room" and body["density_name"] == density_room
    assert body["shown"] == {"en": "Fireside", "de": "Kaminzimmer", "fr": "Fireside"}
    assert admin.api("GET", f"/api/admin/spaces/{room}/names").get_json() == body
    listed = admin.api("GET", "/api/admin/names").get_json()["floors"]
    entry = next(r for f in listed if f["id"] == ground for r in f["rooms"] if r["id"] == room)
    assert entry["names"] == {"default": "Fireside", "de": "Kaminzimmer"}

    bad = admin.api("PUT", f"/api/admin/spaces/{room}/names", json={"de": "x" * 81, "it": "y"})
    assert bad.status_code == 400
    assert set(bad.get_json()["fields"]) == {"de", "it"}
    assert "81" in bad.get_json()["fields"]["de"]
    assert admin.api("PUT", f"/api/admin/spaces/{room}/names", json=["x"]).status_code == 400
    assert admin.api("PUT", "/api/admin/spaces/spc_nope/names", json={}).status_code == 404
    assert admin.api("GET", "/api/admin/spaces/bad%20id/names").status_code == 404

    assert admin.api("DELETE", f"/api/admin/spaces/{room}/names").status_code == 204
    assert admin.api("GET", f"/api/admin/spaces/{room}/names").get_json()["names"] == {}
    paths = admin.api("GET", "/api/admin/openapi.json").get_json()["paths"]
    assert {"get", "put", "delete"} <= set(paths["/spaces/{space_id}/names"])
    assert "/names" in paths


def test_the_api_s_floor_and_room_lists_carry_display_names_beside_density_s(sim, server, admin):
    ground = floors_of(sim)[0]
    room = rooms_of(sim, ground)[1]
    density_room = sim.world.portfolio.spaces[room].name
    names = {"default": "Fireside", "de": "Kaminzimmer"}
    assert admin.api("PUT", f"/api/admin/spaces/{room}/names", json=names).status_code == 200
    lobby = {"en": "Lobby level"}
    assert admin.api("PUT", f"/api/admin/spaces/{ground}/names", json=lobby).status_code == 200

    floors = admin.api("GET", "/api/admin/floors").get_json()["floors"]
    floor = next(f for f in floors if f["id"] == ground)
    assert floor["name"] == "Ground floor"  # Density's, as before
    assert floor["display_names"] == {
        "en": "Lobby level",
        "de": "Erdgeschoss",
        "fr": "Rez-de-chaussée",
    }
    rooms = admin.api("GET", f"/api/admin/floors/{ground}/rooms").get_json()["rooms"]
    entry = next(r for r in rooms if r["id"] == room)
    assert entry["name"] == density_room
    assert entry["display_names"] == {"en": "Fireside", "de": "Kaminzimmer", "fr": "Fireside"}
    other = next(r for r in rooms if r["id"] != room)
    assert set(other["display_names"].values()) == {other["name"]}  # no names: Density's

    paths = admin.api("GET", "/api/admin/openapi.json").get_json()["paths"]
    for path, key in (("/floors", "floors"), ("/floors/{floor_id}/rooms", "rooms")):
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        item = schema["properties"][key]["items"]
        assert {"name", "display_names"} <= set(item["required"])
        assert set(item["properties"]["display_names"]["properties"]) == {"en", "de", "fr"}


def test_console_names_pages_rename_and_name_the_field_in_errors(sim, server, admin):
    ground = floors_of(sim)[0]
    room = rooms_of(sim, ground)[2]
    page = admin.get("/admin/names")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Erdgeschoss" in html and "Rez-de-chaussée" in html
    assert 'href="/admin/names"' in html  # the nav link
    form = admin.get(f"/admin/names/{ground}").get_data(as_text=True)
    assert f'name="{room}.de"' in form and f'name="{ground}.default"' in form
    bad = admin.post(f"/admin/names/{ground}", {f"{room}.fr": "é" * 90})
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    density_name = sim.world.portfolio.spaces[room].name
    assert f"Français name of “{density_name}”: at most 80 characters (this has 90)" in text
    assert DisplayNames(server.svc.store).of(room) == {}
    ok = admin.post(f"/admin/names/{ground}", {f"{room}.fr": "Salon", f"{ground}.de": "EG Nord"})
    assert ok.status_code == 302
    assert DisplayNames(server.svc.store).of(room) == {"fr": "Salon"}
    assert DisplayNames(server.svc.store).of(ground) == {"de": "EG Nord"}
    assert admin.get("/admin/names/spc_unknown").status_code == 404


# -- on the screens ----------------------------------------------------------------------------
def open_kiosk(contexts, url: str, width=1920, height=1080):
    page = contexts(width, height).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(url)
    page.wait_for_function("() => document.documentElement.dataset.feed === 'live'", timeout=15_000)
    return page


def shown_text(page, selector: str) -> str:
    """The text of the first element matching, soft hyphens and line breaks aside."""
    return page.eval_on_selector(
        selector, "e => e.textContent.replace(/\\u00ad/g, '').replace(/\\s+/g, ' ').trim()"
    )


def tile_name(page, room: str) -> str:
    """A map tile's name as read: its lines joined (a line broken at a soft hyphen ends in a
    visible one), or its legend entry when the tile shows a number instead."""
    return page.evaluate(
        """id => {
          const tile = document.querySelector(`#map [data-space-id="${id}"] .tile-name`);
          const legend = document.querySelector(`[data-legend-for="${id}"]`);
          if (legend && (!tile || !tile.textContent.trim())) return legend.textContent;
          const lines = Array.from(tile.querySelectorAll('tspan')).map(t => t.textContent);
          if (!lines.length) return tile.textContent.replace(/\u00ad/g, '');
          return lines.map((l, i) => i < lines.length - 1 ? l.replace(/-$/, '') : l).join('');
        }""",
        room,
    )


def set_all(sim, floor_id: str, busy: bool) -> None:
    for room in rooms_of(sim, floor_id):
        space = sim.world.portfolio.spaces[room]
        if space.counting_mode == "entry":
            sim.world.set_space(room, occupancy=3 if busy else 0, health="healthy")
        else:
            sim.world.set_space(room, presence=busy, health="healthy")


@pytest.mark.browser
def test_a_german_screen_says_erdgeschoss_in_the_other_floors_panel(sim, server, contexts):
    ground, first, second = floors_of(sim)
    for floor in (ground, first, second):
        set_all(sim, floor, busy=True)
    display = server.svc.store.add_display("Foyer", first, settings={"language": "de"})
    cred = server.svc.store.credential(display)
    page = open_kiosk(contexts, f"{server.url}/kiosk/{cred}")
    line = page.locator(f'#other-floors li.of-floor[data-floor-id="{ground}"]')
    expect(line.locator(".of-name")).to_have_text("Erdgeschoss", timeout=10_000)
    expect(
        page.locator(f'#other-floors li.of-floor[data-floor-id="{second}"] .of-name')
    ).to_have_text("2. OG")
    expect(page.locator("#floor-name")).to_have_text("1. OG")
    # A pushed panel (the building's worker, one frame per language) keeps the German name.
    expect(line).to_have_attribute("data-state", "known", timeout=10_000)
    oa = next(
        r for r in rooms_of(sim, ground) if sim.world.portfolio.spaces[r].counting_mode != "entry"
    )
    sim.world.set_space(oa, presence=False)
    expect(line.locator(".of-total")).to_have_text("1 frei", timeout=10_000)
    expect(line.locator(".of-name")).to_have_text("Erdgeschoss")
    # The HTTP fallback says the same.
    state = httpx.get(f"{server.url}/api/kiosk/{cred}/state").json()
    assert state["floor"]["name"] == "1. OG"
    assert {f["name"] for f in state["other_floors"]} == {"Erdgeschoss", "2. OG"}
    # So does the phone view its QR code opens, page and state.
    phone = server.svc.store.phone_credential(display)
    assert httpx.get(f"{server.url}/api/phone/{phone}/state").json()["floor"]["name"] == "1. OG"
    assert ">1. OG<" in httpx.get(f"{server.url}/phone/{phone}").text
    assert page.errors == []


@pytest.mark.browser
def test_a_renamed_room_shows_its_new_name_on_the_map_and_in_the_free_list(
    sim, server, contexts, admin, tmp_path
):
    ground = floors_of(sim)[0]
    set_all(sim, ground, busy=True)
    room = next(
        r for r in rooms_of(sim, ground) if sim.world.portfolio.spaces[r].counting_mode != "entry"
    )
    density_name = sim.world.portfolio.spaces[room].name
    display = server.svc.store.add_display("Foyer", ground, settings={"language": "de"})
    cred = server.svc.store.credential(display)
    page = open_kiosk(contexts, f"{server.url}/kiosk/{cred}")
    wait_until(lambda: tile_name(page, room) == density_name, timeout=10, message="Density's name")

    # Renamed while the screen is up: it reloads and shows the name for its language.
    put = admin.api(
        "PUT", f"/api/admin/spaces/{room}/names", json={"default": "Fireside", "de": "Kaminzimmer"}
    )
    assert put.status_code == 200
    wait_until(lambda: tile_name(page, room) == "Kaminzimmer", timeout=15, message="map renamed")

    # The room frees up: the update that says so (one frame per language) names it too.
    sim.world.set_space(room, presence=False)
    item = f'#free-list .free-item[data-space-id="{room}"] .free-name'
    page.wait_for_selector(item, timeout=10_000)
    assert shown_text(page, item) == "Kaminzimmer"
    assert tile_name(page, room) == "Kaminzimmer"
    assert density_name not in page.locator("#free-list").inner_text()
    page.screenshot(path=str(tmp_path / "kiosk-de-renamed.png"))
    assert page.errors == []


def test_a_rename_in_one_process_reaches_pages_opened_on_another(sim, make_server):
    first, second = make_server(), make_server()  # two processes' apps on one database
    make_admin(first.svc)
    console = Console(first.app)
    assert console.login().status_code == 302
    for server in (first, second):
        server.svc.directory.start()
        wait_until(lambda s=server: s.svc.directory.floors(), timeout=10, message="floors")
    ground = floors_of(sim)[0]
    display = second.svc.store.add_display("Foyer", ground, settings={"language": "fr"})
    cred = second.svc.store.credential(display)
    assert ">Rez-de-chaussée<" in httpx.get(f"{second.url}/kiosk/{cred}").text
    put = console.api("PUT", f"/api/admin/spaces/{ground}/names", json={"fr": "Hall d'accueil"})
    assert put.status_code == 200
    page = httpx.get(f"{second.url}/kiosk/{cred}").text
    assert ">Hall d&#39;accueil<" in page or ">Hall d'accueil<" in page


def test_screens_opening_read_every_name_once_per_change_in_any_process(
    sim, make_server, monkeypatch
):
    """1,000 screens reopening must not mean 1,000 reads of every name: a process looks at the
    names' generation (one row) and re-reads them only when another process moved it."""
    first, second = make_server(), make_server()  # two processes' apps on one database
    make_admin(second.svc)
    console = Console(second.app)
    assert console.login().status_code == 302
    for server in (first, second):
        server.svc.directory.start()
        wait_until(lambda s=server: s.svc.directory.floors(), timeout=10, message="floors")
    ground = floors_of(sim)[0]
    display = first.svc.store.add_display("Foyer", ground, settings={"language": "fr"})
    cred = first.svc.store.credential(display)
    reads: list[object] = []
    read_all = DisplayNames.all

    def counted(self: DisplayNames) -> dict[str, dict[str, str]]:
        reads.append(self.store)
        return read_all(self)

    monkeypatch.setattr(DisplayNames, "all", counted)

    def open_screens(name: str, times: int = 5) -> None:
        for _ in range(times):
            page = httpx.get(f"{first.url}/kiosk/{cred}", timeout=10).text
            assert f">{name}<" in page.replace("&#39;", "'")
            with connect(first.socket_url(cred), open_timeout=10) as ws:
                snapshot = json.loads(ws.recv(timeout=10))
                assert snapshot["type"] == "snapshot" and snapshot["floor"]["name"] == name

    open_screens("Rez-de-chaussée")
    assert reads.count(first.svc.store) == 0  # nothing changed since the process started
    put = console.api("PUT", f"/api/admin/spaces/{ground}/names", json={"fr": "Hall d'accueil"})
    assert put.status_code == 200
    open_screens("Hall d'accueil")  # the other process's rename, seen by the first opening
    assert reads.count(first.svc.store) == 1
    # The same names saved again change nothing: no new generation, no read anywhere.
    again = console.api("PUT", f"/api/admin/spaces/{ground}/names", json={"fr": "Hall d'accueil"})
    assert again.status_code == 200
    open_screens("Hall d'accueil", times=2)
    assert reads.count(first.svc.store) == 1


def test_the_console_names_floors_and_rooms_as_the_screens_do_with_density_s_beside(
    sim, server, admin
):
    """Displays list, display page, fleet health (floors and sensors), plans, the editor's
    rooms, the announcement form and the calendars page: the display name in the admin's
    language (the browser's, else English), Density's name kept in a title or in brackets."""
    ground = floors_of(sim)[0]
    room = rooms_of(sim, ground)[1]
    density_room = sim.world.portfolio.spaces[room].name
    for space, names in ((ground, {"en": "Lobby level"}), (room, {"default": "Fireside"})):
        assert admin.api("PUT", f"/api/admin/spaces/{space}/names", json=names).status_code == 200
    display, cred = server.add_display(ground, name="Foyer")

    def page(path: str, lang: str = "en-GB,en;q=0.8") -> str:
        answer = admin.get(path, headers={"Accept-Language": lang})
        assert answer.status_code == 200, path
        return answer.get_data(as_text=True).replace("&#39;", "'")

    listed = page("/admin/displays")
    row = listed[listed.index(f'id="name-{display.id}"') :]
    row = row[: row.index("</tr>")]
    assert "Lobby level</td>" in row and 'title="Density: ' in row and "Ground floor" in row
    assert f'name-{display.id}"' in page("/admin/displays?q=lobby+level")  # searched by it
    assert f'name-{display.id}"' in page("/admin/displays?q=ground")  # and by Density's
    assert "Erdgeschoss</td>" in page("/admin/displays", "de-DE,de;q=0.9")  # no German name

    edit = page(f"/admin/displays/{display.id}")
    assert "Lobby level (Ground floor)</option>" in edit
    assert f"Fireside ({density_room})</label>" in edit
    assert "1. OG (1st floor)</option>" in page(f"/admin/displays/{display.id}", "de")

    with connect(server.socket_url(cred), open_timeout=10) as ws:  # a screen: the feed runs
        ws.recv(timeout=10)
        wait_until(
            lambda: any(
                s["space_id"] == room
                for s in admin.api("GET", "/api/admin/fleet").get_json()["spaces"]
            ),
            timeout=15,
            message="the floor's sensors in fleet health",
        )
        fleet = page("/admin/fleet")
    shown = fleet[fleet.index(f'data-display-id="{display.id}"') :]
    assert "Lobby level</td>" in shown[: shown.index("</tr>")]
    sensors = fleet[fleet.index(f'<tr class="" data-space-id="{room}"') :]
    sensors = sensors[: sensors.index("</tr>")]
    assert f'title="Density: {density_room}">Fireside</td>' in sensors
    assert "Lobby level</td>" in sensors

    plans = page("/admin/plans")
    card = plans[plans.index(f'data-floor-id="{ground}"') :]
    assert "Lobby level</h2>" in card[: card.index("</section>")]
    assert 'title="Density: Ground floor"' in card[: card.index("</section>")]
    assert "Lobby level</option>" in page("/admin/announcements")
    calendars = page("/admin/calendars")
    assert "Lobby level <span" in calendars and f"Fireside ({density_room})</strong>" in calendars
    one = page(f"/admin/calendars/{room}")
    assert f"<h1>Calendar of Fireside ({density_room})</h1>" in one and "/ Lobby level<" in one
    layout = admin.get(f"/admin/floors/{ground}/layout.json").get_json()
    space = next(s for s in layout["spaces"] if s["id"] == room)
    assert space["name"] == density_room  # Density's, as the API gives it
    assert space["display_names"] == {"en": "Fireside", "de": "Fireside", "fr": "Fireside"}


def test_the_floor_editor_lists_rooms_by_their_display_names_in_the_browser_s_language(
    sim, server, admin, contexts
):
    ground = floors_of(sim)[0]
    room = rooms_of(sim, ground)[1]
    density_room = sim.world.portfolio.spaces[room].name
    names = {"default": "Fireside", "de": "Kaminzimmer"}
    assert admin.api("PUT", f"/api/admin/spaces/{room}/names", json=names).status_code == 200
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300">'
        b'<rect width="400" height="300" fill="#eee"/></svg>'
    )
    plan = admin.api(
        "PUT", f"/api/admin/floors/{ground}/plan", data=svg, content_type="image/svg+xml"
    )
    assert plan.status_code == 200, plan.get_data(as_text=True)
    for locale, shown in (("de-DE", "Kaminzimmer"), ("en-GB", "Fireside")):
        page = contexts(1400, 900, locale=locale).new_page()
        page.goto(f"{server.url}/admin/login")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/admin/displays")
        page.goto(f"{server.url}/admin/floors/{ground}/layout")
        expect(page.locator("#editor")).to_have_attribute("data-loading", "false", timeout=15_000)
        item = page.locator(f'#room-list li[data-space-id="{room}"] span').first
        expect(item).to_have_text(shown)
        assert item.get_attribute("title") == f"Density: {density_room}"


def test_with_the_database_away_screen_openings_log_one_line_a_minute(
    sim, server, monkeypatch, caplog
):
    """Every kiosk page looks at the names' generation, even one with a wrong credential (before
    it is checked): with the database away that is one warning a minute, not one per request."""
    from signage.store import StoreUnavailable

    def away(self: DisplayNames) -> int:
        raise StoreUnavailable("the database is not answering")

    monkeypatch.setattr(DisplayNames, "generation", away)
    with httpx.Client(timeout=10) as client:
        for n in range(30):
            client.get(f"{server.url}/kiosk/{n}.{'0' * 32}")
    lines = [r for r in caplog.records if "display names not refreshed" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "held as they are" in lines[0].getMessage()
