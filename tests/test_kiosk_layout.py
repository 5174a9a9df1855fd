"""The floor schematic and the kiosk's HTTP routes (no browser), and the JS layout's parity."""

from __future__ import annotations

import httpx
import pytest

from signage.core import floormap
from tests.helpers import wait_until


def rooms(n: int) -> list[dict]:
    functions = ["meeting_room", "phone_booth", "desk_neighborhood", "lounge", "kitchen", "x"]
    return [
        {
            "id": f"spc_{i}",
            "name": f"Room {i}",
            "function": functions[i % len(functions)],
            "capacity": [1, 4, 6, 12, None][i % 5],
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [1, 7, 40])
def test_tiles_fill_the_map_without_overlapping(n):
    plan = floormap.layout(rooms(n), 1500.0, 1000.0)
    tiles = plan["tiles"]
    assert {t["id"] for t in tiles} == {r["id"] for r in rooms(n)}
    for t in tiles:
        assert t["w"] > 0 and t["h"] > 0
        assert -0.1 <= t["x"] and t["x"] + t["w"] <= 1500.1
        assert -0.1 <= t["y"] and t["y"] + t["h"] <= 1000.1
    for i, a in enumerate(tiles):
        for b in tiles[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"] + 0.2
                or b["x"] + b["w"] <= a["x"] + 0.2
                or a["y"] + a["h"] <= b["y"] + 0.2
                or b["y"] + b["h"] <= a["y"] + 0.2
            )
            assert apart, (a, b)


def test_bigger_rooms_get_more_floor():
    plan = floormap.layout(rooms(30), 1500.0, 1000.0)
    area = {t["id"]: t["w"] * t["h"] for t in plan["tiles"]}
    by_id = {r["id"]: r for r in rooms(30)}
    desks = [i for i, r in by_id.items() if r["function"] == "desk_neighborhood"]
    big = max(desks, key=lambda i: by_id[i]["capacity"] or 0)
    small = min(desks, key=lambda i: by_id[i]["capacity"] or 0)
    assert area[big] > area[small]


@pytest.mark.browser
def test_js_layout_matches_the_server_layout(sim, make_server, page):
    server = make_server()
    floor = server.svc.directory.floors()[0].id
    _, cred = server.add_display(floor)
    page.goto(f"{server.url}/kiosk/{cred}")
    for n, (w, h) in [(1, (1000.0, 860.0)), (13, (1500.0, 1000.0)), (40, (1733.0, 1000.0))]:
        js = page.evaluate("([r, w, h]) => signageKiosk.layout(r, w, h)", [rooms(n), w, h])
        py = floormap.layout(rooms(n), w, h)
        assert js["tiles"] == py["tiles"] and js["zones"] == py["zones"]


def test_routes_service_worker_phone_state_and_revocation(sim, make_server):
    server = make_server()
    floor = server.svc.directory.floors()[0].id
    display, cred = server.add_display(floor)
    store = server.svc.store
    with httpx.Client(base_url=server.url) as http:
        sw = http.get("/kiosk/sw.js")
        assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
        assert sw.headers["service-worker-allowed"] == "/kiosk/"
        assert "__SIGNAGE_VERSION__" not in sw.text
        page = http.get(f"/kiosk/{cred}")
        assert page.status_code == 200 and 'data-feed="' in page.text
        phone = f"/api/phone/{store.phone_credential(display)}/state"
        first = wait_until(lambda: http.get(phone) if http.get(phone).status_code == 200 else None)
        body = first.json()
        assert body["rooms"] and cred not in first.text
        assert set(body["display"]) == {"name", "settings"}
        again = http.get(phone, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code in (200, 304)
        assert http.get(f"/api/phone/{cred}/state").status_code == 404
        store.revoke_phone_link(display.id)
        assert http.get(phone).status_code == 404
        assert http.get(f"/kiosk/{cred}").status_code == 200


def test_phone_link_base_url_comes_from_settings(sim, make_server):
    import re

    import segno

    server = make_server()
    server.svc.config["SIGNAGE_PHONE_URL"] = "https://guest.example.org/"
    floor = server.svc.directory.floors()[0].id
    display, cred = server.add_display(floor)
    html = httpx.get(f"{server.url}/kiosk/{cred}").text
    expected = f"https://guest.example.org/phone/{server.svc.store.phone_credential(display)}"
    drawn = segno.make(expected, error="m").svg_inline(border=2, dark="#000", light="#fff")
    path = re.search(r'class="qrline"[^>]* d="([^"]+)"', drawn).group(1)
    assert path in html


def test_messages_exist_in_every_language():
    from signage import i18n

    for lang in i18n.LANGUAGES:
        assert set(i18n.MESSAGES[lang]) == set(i18n.MESSAGES["en"]), lang


def test_a_long_name_gets_the_floor_it_needs_before_capacity_shares_the_rest():
    long_name = "Besprechungsraum Großer Saal Nord"
    floor = [
        {"id": "a", "name": long_name, "function": "phone_booth", "capacity": 1},
        {"id": "b", "name": "Box", "function": "phone_booth", "capacity": 1},
        {"id": "c", "name": "Hall", "function": "event_space", "capacity": 40},
        {"id": "d", "name": "Desks", "function": "desk_neighborhood", "capacity": 30},
    ]
    area = {t["id"]: t["w"] * t["h"] for t in floormap.layout(floor, 1500.0, 1000.0)["tiles"]}
    for room in floor:
        assert area[room["id"]] >= floormap.need(room), room
    assert floormap.need(floor[0]) > 3 * floormap.need(floor[1])
    assert area["a"] > area["b"]
    assert area["c"] > area["a"]  # capacity still shares out what is left


def test_names_get_soft_hyphens_in_their_language_and_codes_stay_as_they_are():
    soft = "\u00ad"
    de = floormap.hyphenate("Besprechungsraum Nord", "de")
    assert de.replace(soft, "") == "Besprechungsraum Nord" and soft in de
    # A German word on an English screen is broken by the German rules.
    assert soft in floormap.hyphenate("Geschäftsführungsbesprechungszimmer", "en")
    assert floormap.hyphenate("Telefonkabine Süd-West", "de").endswith("Süd-West")
    # A name is German as a whole when any of its words says so, on an English screen too.
    whole = floormap.hyphenate("Besprechungsraum Großer Saal Nord", "en")
    assert whole.split(" ")[0] == f"Bespre{soft}chungs{soft}raum", whole
    assert floormap.hyphenate('<img src=x onerror="a">', "en") == '<img src=x onerror="a">'
    assert floormap.hyphenate("Box 4.12", "fr") == "Box 4.12"
