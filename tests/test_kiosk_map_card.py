"""A tap on the automatic map (a floor without a drawn layout), in headless Chromium: the room's
card gives its name, state and seats; a room in use offers a free room instead, by the free
list's own order (that map has no corridors, so no "nearest" and no way drawn), preferring one
with at least as many seats; a free room's card claims no way either."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.test_kiosk_colours import LIVE, SAY
from tests.test_kiosk_lint import IDS, ROOMS, snapshot

# Layout and words only: which of the simulator's shapes answers does not matter.
pytestmark = pytest.mark.one_shape

SEATS = {rid: capacity for rid, (_, _, capacity) in zip(IDS, ROOMS, strict=True)}
NAMES = {rid: name for rid, (name, _, _) in zip(IDS, ROOMS, strict=True)}


def tile(page, rid: str):
    return page.locator(f'#map .tile[data-space-id="{rid}"]')


@pytest.mark.browser
def test_a_tap_on_the_automatic_map_opens_the_card_with_a_free_room_instead(make_server, contexts):
    # Heartbeats a minute apart: the stand-in socket sends none, and the page stays live.
    server = make_server(SIGNAGE_HEARTBEAT_INTERVAL=60.0)
    floor = server.svc.directory.floors()[0].id
    _, cred = server.add_display(floor, name="Lobby")
    ctx = contexts(1920, 1080, init=LIVE + "window.__SIGNAGE_TEST__.idleS = 600;")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/kiosk/{cred}")
    page.wait_for_function("() => window.signageKiosk && window.__socket")
    message = snapshot("live", 70)
    busy = IDS[6]  # "Salle de réunion Panorama 4.12", in use (every third room is)
    # More seats than the free list's first room has (20), fewer than a later one's (30): with
    # its own 8 the first room had enough, and "the first" passed for "the first big enough".
    seats = {**SEATS, busy: 25}
    message["rooms"][busy]["capacity"] = seats[busy]
    page.evaluate(SAY, message)
    page.wait_for_function("() => document.documentElement.dataset.feed === 'live'")
    assert message["rooms"][busy]["state"] == "occupied"
    expect(tile(page, busy)).to_have_attribute("data-state", "occupied")
    card = page.locator("#map-card")
    expect(card).to_be_hidden()  # nothing tapped, no corridors: no card at rest
    tile(page, busy).click()
    expect(card).to_be_visible()
    expect(card).to_have_attribute("data-state", "occupied")
    expect(card.locator(".map-card-name")).to_have_text(NAMES[busy])
    expect(card.locator(".map-card-state")).to_have_text("In use")
    expect(card.locator(".map-card-info")).to_have_text(f"Meeting room · {seats[busy]} seats")
    expect(tile(page, busy)).to_have_attribute("data-selected", "")
    # The rule written out: the free list's order as the page shows it, first with enough seats.
    order = page.locator("#free-list li.free-item").evaluate_all(
        "els => els.map(e => e.dataset.spaceId)"
    )
    free = [rid for rid in order if message["rooms"][rid]["state"] == "free"]
    assert free, "the lint floor has free rooms"
    want = next((rid for rid in free if seats[rid] >= seats[busy]), free[0])
    assert want != free[0], "the list's first free room must be too small for this to tell"
    alt_line = card.locator(".map-card-alt")
    expect(alt_line).to_be_visible()
    expect(alt_line).to_have_attribute("data-space-id", want)
    expect(alt_line.locator(".map-card-alt-label")).to_have_text("Free instead:")
    expect(alt_line.locator(".map-card-alt-name")).to_have_text(
        re.compile(rf"^{re.escape(NAMES[want])} · .* · {SEATS[want]} seats?$")
    )
    expect(tile(page, want)).to_have_attribute("data-alternative", "")
    assert page.locator("#route").count() == 0  # no way drawn on a map without corridors
    # A free room: its state and seats, and no claim about a way.
    free_room = free[-1]
    tile(page, free_room).click()
    expect(card).to_have_attribute("data-state", "free")
    expect(card.locator(".map-card-name")).to_have_text(NAMES[free_room])
    expect(card.locator(".map-card-state")).to_have_text("Free")
    expect(card.locator(".map-card-info")).to_contain_text(f"{SEATS[free_room]} seat")
    expect(card.locator(".map-card-info")).not_to_contain_text("No way")
    expect(card.locator(".map-card-alt")).to_be_hidden()
    expect(tile(page, busy)).not_to_have_attribute("data-selected", "")
    assert not errors
