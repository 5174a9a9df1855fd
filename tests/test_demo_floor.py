"""The drawn floor `signage demo` gives its first display: valid, routable, shown as a plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from signage.cli.serve import _demo_drawn_floor
from signage.core.demo import HERE, demo_floor
from signage.core.wayfinding import kiosk_wayfinding
from signage.store import plans

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).

SCREENSHOTS = Path(__file__).parent / "screenshots"


def test_every_room_is_outlined_and_reachable_and_the_plan_passes_the_sanitiser(server):
    floor = server.svc.directory.floors()[0].id
    rooms = server.svc.directory.rooms_of(floor)
    svg, layout = demo_floor(rooms)
    clean = plans.check_upload(svg, 5_000_000)
    assert plans.plan_dimensions(clean.data, clean.content_type) == (1600.0, 900.0)
    assert set(layout["rooms"]) == {r.id for r in rooms}
    assert all(room["door"] for room in layout["rooms"].values())
    routes = kiosk_wayfinding(layout, HERE)
    assert routes["unreachable"] == [] and set(routes["routes"]) == set(layout["rooms"])
    assert {e["kind"] for e in routes["exits"]} == {"stairs", "lift"}
    assert all(0 < r["m"] < 80 for r in routes["routes"].values())  # a 64 m wide floor


def test_an_admins_own_drawing_is_never_replaced(server):
    floor = server.svc.directory.floors()[0].id
    display, _ = server.add_display(floor)
    mine = server.svc.store.put_layout(floor, {"width": 10, "height": 10}, "alice")
    _demo_drawn_floor(server.svc)
    assert server.svc.store.get_layout(floor).version == mine.version
    assert server.svc.store.get_plan(floor) is None


@pytest.mark.browser
def test_the_demo_kiosk_opens_on_the_plan_with_a_route(server, sim, contexts):
    floor = server.svc.directory.floors()[0].id
    for room in server.svc.directory.rooms_of(floor):
        sim.world.set_space(room.id, presence=False, health="healthy")
    display, cred = server.add_display(floor, name="Lobby – demo")
    _demo_drawn_floor(server.svc)
    page = contexts(1920, 1080).new_page()
    page.goto(f"{server.url}/kiosk/{cred}")
    expect(page.locator("#map-box svg.plan-map")).to_have_count(1)
    rooms = len(server.svc.directory.rooms_of(floor))
    expect(page.locator("#map-box g.room-shape")).to_have_count(rooms)
    expect(page.locator("#route")).to_have_count(1, timeout=10_000)
    expect(page.locator("#you-are-here")).to_have_count(1)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "demo-floor-1920x1080.png"))
