"""The room card a tap opens on the kiosk's drawn plan, in headless Chromium: a room in use or of
unknown state shows the nearest free alternative and the way to it (never a way to itself), the
QR caption says what its code opens, walking times in half minutes, "free since", and a touch
that wakes the night screen."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.test_kiosk_wayfinding import (
    HERE,
    NO_IDLE,
    PUSH_MS,
    WayFloor,
    open_page,
    shape,
    walking_minutes,
)

SHOTS = Path(os.environ.get("SIGNAGE_CARD_SHOTS", Path(__file__).parent / "screenshots"))


def capacities(way: WayFloor) -> dict[str, int]:
    return {s.id: s.capacity or 0 for s in way.server.svc.directory.rooms_of(way.id)}


def expected_alternative(way: WayFloor, tapped: str, free: set[str], min_capacity: int = 0):
    """The rule, written out apart from the page: the nearest free room on foot that the display
    lists, preferring one with at least the tapped room's seats."""
    routes, caps = way.wayfinding()["routes"], capacities(way)
    listed = [r for r in free if r != tapped and r in routes and caps[r] >= min_capacity]
    if not listed:
        return None
    roomy = [r for r in listed if caps[r] >= caps[tapped]]
    return min(roomy or listed, key=lambda r: routes[r]["units"])


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


@pytest.mark.browser
def test_a_tap_on_an_occupied_room_shows_the_nearest_free_alternative_and_its_route(
    server, sim, contexts
):
    way = WayFloor(server, sim)
    north_mid, south_a = way.sid["north_mid"], way.sid["south_a"]
    for rid in (north_mid, south_a):
        way.sim.world.set_space(rid, presence=True)
    free = set(way.sid.values()) - {north_mid, south_a}
    alt = expected_alternative(way, north_mid, free)
    assert alt is not None
    wf = way.wayfinding()
    for width, height in ((1920, 1080), (390, 844)):
        url = way.url if width > 1000 else f"{way.phone_url}?room={north_mid}"
        page = open_page(contexts, url, width, height, init=NO_IDLE)
        if width > 1000:
            expect(shape(page, north_mid)).to_have_attribute(
                "data-state", "occupied", timeout=PUSH_MS
            )
            shape(page, north_mid).click()
        card = page.locator("#map-card")
        expect(card).to_have_attribute("data-state", "occupied", timeout=PUSH_MS)
        expect(card.locator(".map-card-name")).to_have_text(way.names[north_mid])
        expect(card.locator(".map-card-state")).to_have_text("In use")
        seats = capacities(way)[north_mid]
        expect(card.locator(".map-card-info")).to_contain_text(
            "1 seat" if seats == 1 else f"{seats} seats"
        )
        # The nearest free room instead, named, with its way, and the line drawn to it.
        alt_line = card.locator(".map-card-alt")
        expect(alt_line).to_be_visible()
        expect(alt_line).to_have_attribute("data-space-id", alt)
        expect(alt_line.locator(".map-card-alt-label")).to_have_text("Nearest free instead:")
        minutes = walking_minutes(wf["routes"][alt]["s"])
        expect(alt_line.locator(".map-card-alt-name")).to_have_text(
            re.compile(rf"^{re.escape(way.names[alt])} · .* · \d+ m · {minutes} min$")
        )
        route = page.locator("#route")
        expect(route).to_have_attribute("data-space-id", alt)
        expect(route).to_have_attribute("data-selected", "alternative")
        expect(route).to_have_attribute("data-instead-of", north_mid)
        drawn = [[float(v) for v in p.split(",")] for p in route.get_attribute("points").split()]
        assert drawn == wf["routes"][alt]["points"]
        expect(shape(page, alt)).to_have_attribute("data-alternative", "true")
        expect(shape(page, north_mid)).to_have_attribute("data-selected", "true")
        # Nothing cut: the card's text wraps rather than ellipsises or spills.
        spilled = card.evaluate(
            "c => c.scrollWidth > c.clientWidth + 1 || [...c.querySelectorAll('span, p')]"
            ".some(e => e.scrollWidth > e.clientWidth + 1 || "
            "e.getBoundingClientRect().right > c.getBoundingClientRect().right + 1)"
        )
        assert not spilled
        shoot(page, f"card-occupied-{width}x{height}")
        if width > 1000:
            # The code carries the way to the alternative, and the caption says so.
            qr = page.locator("#qr img.qr-room")
            expect(qr).to_have_attribute("src", f"/kiosk/{way.cred}/qr.svg?room={alt}")
            expect(page.locator("#qr-title")).to_have_text(
                f"Take the way to {way.names[alt]} with you"
            )
            # The alternative taken meanwhile: the next one, never a way to a room in use.
            way.sim.world.set_space(alt, presence=True)
            nxt = expected_alternative(way, north_mid, free - {alt})
            expect(route).to_have_attribute("data-space-id", nxt, timeout=PUSH_MS)
            expect(alt_line).to_have_attribute("data-space-id", nxt)
            expect(qr).to_have_attribute("src", f"/kiosk/{way.cred}/qr.svg?room={nxt}")
            way.sim.world.set_space(alt, presence=False)
            expect(route).to_have_attribute("data-space-id", alt, timeout=PUSH_MS)
        assert not page.errors


@pytest.mark.browser
def test_the_alternative_matches_the_display_filter(server, sim, contexts):
    way = WayFloor(server, sim)
    north_mid = way.sid["north_mid"]
    way.sim.world.set_space(north_mid, presence=True)
    free = set(way.sid.values()) - {north_mid}
    caps = capacities(way)
    unfiltered = expected_alternative(way, north_mid, free)
    # A floor that lists only rooms larger than the one the page would otherwise suggest.
    need = caps[unfiltered] + 1
    filtered = expected_alternative(way, north_mid, free, min_capacity=need)
    assert filtered not in (None, unfiltered), "the demo floor has a larger free room"
    settings = {"here": HERE, "min_capacity": need}
    server.svc.store.update_display_settings(way.display.id, settings)
    page = open_page(contexts, way.url, init=NO_IDLE)
    expect(shape(page, north_mid)).to_have_attribute("data-state", "occupied", timeout=PUSH_MS)
    shape(page, north_mid).click()
    expect(page.locator("#route")).to_have_attribute("data-space-id", filtered)
    expect(page.locator("#map-card .map-card-alt")).to_have_attribute("data-space-id", filtered)
    assert not page.errors


@pytest.mark.browser
def test_a_tap_on_an_unknown_room_says_why_and_a_full_floor_suggests_nothing(server, sim, contexts):
    way = WayFloor(server, sim)
    north_east = way.sid["north_east"]
    way.sim.world.set_space(north_east, health="offline")
    page = open_page(contexts, way.url, init=NO_IDLE)
    expect(shape(page, north_east)).to_have_attribute("data-state", "unknown", timeout=PUSH_MS)
    shape(page, north_east).click()
    card = page.locator("#map-card")
    expect(card).to_have_attribute("data-state", "unknown")
    expect(card.locator(".map-card-state")).to_have_text("Unknown: Sensor offline")
    alt = expected_alternative(way, north_east, set(way.sid.values()) - {north_east})
    expect(page.locator("#route")).to_have_attribute("data-space-id", alt)
    expect(page.locator("#qr-title")).to_have_text(f"Take the way to {way.names[alt]} with you")
    shoot(page, "card-unknown-1920x1080")
    # Nothing free anywhere: no line at all, and the card says there is nothing to suggest.
    for rid in way.all:
        if rid != north_east:
            way.sim.world.set_space(rid, presence=True)
    expect(page.locator("#route")).to_have_count(0, timeout=PUSH_MS)
    expect(card.locator(".map-card-alt-label")).to_have_text("No free room to suggest right now")
    expect(card.locator(".map-card-alt")).to_have_attribute("data-state", "none")
    # The code then opens the room itself to follow, and the caption says that, not "the way".
    expect(page.locator("#qr img.qr-room")).to_have_attribute(
        "src", f"/kiosk/{way.cred}/qr.svg?room={north_east}"
    )
    expect(page.locator("#qr-title")).to_have_text(f"Follow {way.names[north_east]} on your phone")
    assert not page.errors


@pytest.mark.browser
def test_a_tapped_free_room_shows_seats_way_and_walking_time_in_half_minutes(server, sim, contexts):
    way = WayFloor(server, sim)
    south_b = way.sid["south_b"]
    page = open_page(contexts, way.url, init=NO_IDLE)
    # At rest the key shows beside the nearest free room; a tapped room's card takes its place.
    expect(page.locator("#map-card")).to_be_visible()
    expect(page.locator(".map-foot .legend")).to_be_visible()
    shape(page, south_b).click()
    expect(page.locator(".map-foot .legend")).to_be_hidden()
    card = page.locator("#map-card")
    expect(card).to_have_attribute("data-state", "free")
    expect(card.locator(".map-card-state")).to_have_text("Free")
    route = way.wayfinding()["routes"][south_b]
    minutes = walking_minutes(route["s"])
    expect(card.locator(".map-card-info")).to_have_text(
        re.compile(rf" · \d+ seats? · \d+ m · {re.escape(minutes)} min$")
    )
    expect(card.locator(".map-card-alt")).to_be_hidden()
    expect(page.locator("#route")).to_have_attribute("data-space-id", south_b)
    # "Free since 10:42", not "free for": that is left for how long a room will stay free.
    since = page.locator(f'#free-list li[data-space-id="{south_b}"] .free-since')
    expect(since).to_have_text(re.compile(r"^(free just now|free since \d{1,2}:\d{2}( [AP]M)?)$"))
    shoot(page, "card-free-1920x1080")
    assert not page.errors


def test_walking_minutes_rule():
    """The written-out rule the browser tests hold the page to: halves under five minutes."""
    seconds = (5, 16, 44, 46, 75, 134, 136, 270, 285, 400)
    said = ["½", "½", "½", "1", "1½", "2", "2½", "4½", "5", "7"]
    assert [walking_minutes(s) for s in seconds] == said


@pytest.mark.browser
def test_a_touch_wakes_the_night_screen_for_the_idle_period(server, sim, contexts):
    way = WayFloor(server, sim)
    settings = {"here": HERE, "night": {"start": "20:00", "end": "07:00"}}
    server.svc.store.update_display_settings(way.display.id, settings)
    init = (
        'window.__SIGNAGE_TEST_CLOCK__ = {now: "2025-01-15T22:30:00Z", timeZone: "UTC"};'
        "window.__SIGNAGE_TEST__ = {idleS: 3};"
    )
    page = open_page(contexts, way.url, init=init)
    html = page.locator("html")
    expect(html).to_have_attribute("data-night", "on")
    page.mouse.click(400, 400)
    expect(html).to_have_attribute("data-night", "off")
    expect(page.locator("#plan-map")).to_be_visible()
    # Asleep again once the idle period has passed with no touch (a deadline, not a sleep).
    expect(html).to_have_attribute("data-night", "on", timeout=8_000)
    assert not page.errors


LABELS = """() => {
  const box = (e, kind) => { const r = e.getBoundingClientRect();
    return {kind, x: r.x, y: r.y, w: r.width, h: r.height}; };
  const out = [];
  document.querySelectorAll('#you-are-here .here-pill').forEach(e => out.push(box(e, 'here')));
  document.querySelectorAll('#you-are-here .here-dot').forEach(e => out.push(box(e, 'dot')));
  document.querySelectorAll('.landmark').forEach((g, i) => {
    g.querySelectorAll('.landmark-badge').forEach(e => out.push(box(e, 'sign' + i)));
    g.querySelectorAll('.landmark-pill').forEach(e => out.push(box(e, 'label' + i)));
  });
  document.querySelectorAll('.room-shape .shape-name').forEach((e, i) => {
    if (e.textContent) out.push(box(e, 'name' + i));
  });
  return out;
}"""


def meet(a: dict, b: dict) -> float:
    w = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
    return max(0.0, w) * max(0.0, h)


@pytest.mark.browser
@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920), (1280, 720), (390, 844)])
@pytest.mark.parametrize("here", [HERE, [120, 400]], ids=["apart", "beside-the-lift"])
def test_you_are_here_never_covers_a_sign_a_label_or_a_name(server, sim, contexts, size, here):
    # "beside-the-lift": the screen stands 20 units (0.8 m) from the lift, as the demo floor's
    # does from its stairs; the marker once sat on the sign.
    way = WayFloor(server, sim, here=here)
    width, height = size
    url = way.url if width > 400 else way.phone_url
    page = open_page(contexts, url, width, height)
    expect(page.locator("#you-are-here .here-pill")).to_have_count(1)
    boxes = page.evaluate(LABELS)
    here = [b for b in boxes if b["kind"] == "here"][0]
    assert len(boxes) > 4
    # "You are here" against every sign, sign label and room name: not a pixel shared.
    dot = [b for b in boxes if b["kind"] == "dot"][0]
    hits = [b["kind"] for b in boxes if b["kind"] not in ("here", "dot") and meet(here, b) > 1]
    hits += [b["kind"] for b in boxes if b["kind"].startswith("sign") and meet(dot, b) > 1]
    assert not hits, hits
    # Nor do the signs' labels sit on one another or on another sign.
    marks = [b for b in boxes if b["kind"].startswith(("sign", "label"))]
    for i, a in enumerate(marks):
        for b in marks[i + 1 :]:
            if re.sub(r"\D", "", a["kind"]) != re.sub(r"\D", "", b["kind"]):  # own label may touch
                assert meet(a, b) <= 1, (a, b)
    assert not page.errors
