"""What a kiosk says through a Density outage, in Chromium: "availability unknown", never
"nothing free", and a page opened during the outage says what the server knows, not
"Connecting…"."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect

from tests.helpers import wait_until

pytestmark = pytest.mark.browser

FEED = "document.documentElement.dataset.feed"
ZONE = ZoneInfo("Europe/Berlin")  # the simulated building's zone, so the displays' zone
# The free list's words for a stale floor, {time} being when Density was last heard.
UNKNOWN_SINCE = {
    "en": "Availability unknown: sensors unreachable since {time}",
    "de": "Verfügbarkeit unbekannt: Sensoren seit {time} nicht erreichbar",
    "fr": "Disponibilité inconnue : capteurs injoignables depuis {time}",
}
DENSITY_SINCE = {
    "en": "Density unreachable since {time}",
    "de": "Density seit {time} nicht erreichbar",
    "fr": "Density injoignable depuis {time}",
}
NOTHING_FREE = {
    "en": "Nothing free right now",
    "de": "Gerade ist nichts frei",
    "fr": "Rien de libre pour le moment",
}


def wait_for_rooms(server, floor_id: str) -> list[str]:
    """The floor's rooms, once the server's directory has them."""
    wait_until(lambda: server.svc.directory.rooms_of(floor_id), 15, message="rooms known")
    return [s.id for s in server.svc.directory.rooms_of(floor_id)]


def open_page(contexts, url: str):
    page = contexts().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(url)
    return page


# How the page writes a time of day: the display's language's own way (Intl), in its zone.
TIME_FORMAT = {"en": "%I:%M %p", "de": "%H:%M", "fr": "%H:%M"}


def times_around(moment: datetime, before: float, lang: str = "en") -> set[str]:
    """Display times in the building's zone from `before` seconds earlier to `moment`."""
    start = moment - timedelta(seconds=before)
    return {m.astimezone(ZONE).strftime(TIME_FORMAT[lang]) for m in (start, moment)}


def matches_any(template: str, times: set[str]) -> re.Pattern[str]:
    """A pattern for `template` with any of `times` in place of {time}."""
    pieces = template.split("{time}")
    # Intl may put a (narrow) no-break space before AM/PM.
    alternatives = "|".join(re.escape(t).replace(r"\ ", r"[\s\u202f]") for t in sorted(times))
    return re.compile("^" + f"(?:{alternatives})".join(re.escape(p) for p in pieces) + "$")


def total_outage(sim) -> datetime:
    """Density down: every call 503, sockets refused and the open ones cut. When it began."""
    began = datetime.now(UTC)
    sim.world.force_outage(600)
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets()
    return began


def test_a_stale_floor_says_availability_unknown_since_when_in_each_language(sim, server, contexts):
    floor = sim.world.portfolio.floor_ids[0]
    rooms = wait_for_rooms(server, floor)
    for rid in rooms:  # everything in use: the list is empty for a reason it knows
        sim.world.set_space(rid, occupancy=1, health="healthy")
    pages = {}
    for lang in UNKNOWN_SINCE:
        display, cred = server.add_display(floor, name=f"Lobby {lang}")
        server.svc.store.update_display_settings(display.id, {"language": lang})
        pages[lang] = open_page(contexts, f"{server.url}/kiosk/{cred}")
    for lang, page in pages.items():
        page.wait_for_function(f"() => {FEED} === 'live'", timeout=15_000)
        expect(page.locator("#free-empty strong")).to_have_text(NOTHING_FREE[lang])

    began = total_outage(sim)
    # The feed last heard Density at the latest as the outage began, at the earliest one
    # socket refresh (1 s) and some scheduling before it.
    for lang, page in pages.items():
        heard = times_around(began, 3, lang)
        page.wait_for_function(f"() => {FEED} === 'stale'", timeout=20_000)
        empty = page.locator("#free-empty")
        expect(empty).to_be_visible()
        expect(empty).to_have_class(re.compile(r"\bunknown\b"))
        expect(empty.locator("strong")).to_have_text(matches_any(UNKNOWN_SINCE[lang], heard))
        expect(empty.locator("span")).to_be_hidden()
        expect(page.locator("#free-count")).to_have_text("")
        expect(page.locator("#freshness-text")).to_have_text(
            matches_any(DENSITY_SINCE[lang], heard)
        )
        assert NOTHING_FREE[lang] not in page.locator("#free-box").inner_text()
        assert not page.errors, page.errors

    # Density back: the list speaks of free rooms again.
    sim.world.force_outage(0)
    sim.world.set_socket_mode("normal")
    sim.world.set_space(rooms[0], occupancy=0)
    for page in pages.values():
        page.wait_for_function(f"() => {FEED} === 'live'", timeout=20_000)
        expect(page.locator("#free-empty")).to_be_hidden()
        expect(page.locator(f'#free-list [data-space-id="{rooms[0]}"]')).to_be_visible()


def test_a_page_opened_during_an_outage_says_what_the_server_knows(sim, server, contexts):
    floor = sim.world.portfolio.floor_ids[0]
    wait_for_rooms(server, floor)
    _, first = server.add_display(floor, name="Lobby east")
    _, second = server.add_display(floor, name="Lobby west")
    watcher = open_page(contexts, f"{server.url}/kiosk/{first}")  # keeps the feed running
    watcher.wait_for_function(f"() => {FEED} === 'live'", timeout=15_000)
    began = total_outage(sim)
    watcher.wait_for_function(f"() => {FEED} === 'stale'", timeout=20_000)
    heard = times_around(began, 3)

    # The page as served already tells the outage, before any script runs.
    html = httpx.get(f"{server.url}/kiosk/{second}", timeout=5).text
    assert re.search(r'id="freshness-text">Density unreachable<', html), html
    empty = re.search(r'<p class="free-empty unknown" id="free-empty">(.*?)</p>', html, re.S)
    assert empty and "<strong>Availability unknown: sensors unreachable</strong>" in empty[1]

    page = open_page(contexts, f"{server.url}/kiosk/{second}")
    page.wait_for_function("() => window.signageKiosk.state().socketLive", timeout=15_000)
    # Its socket's first snapshot was rendered in the same task that marked the socket live.
    text = page.locator("#freshness-text").inner_text()
    assert matches_any(DENSITY_SINCE["en"], heard).match(text), text
    expect(page.locator("#free-empty strong")).to_have_text(matches_any(UNKNOWN_SINCE["en"], heard))
    assert not page.errors, page.errors


def test_a_floor_whose_feed_starts_inside_the_outage_never_says_connecting(sim, server, contexts):
    floor = sim.world.portfolio.floor_ids[1]  # no kiosk yet, so no feed has heard Density
    wait_for_rooms(server, floor)
    _, cred = server.add_display(floor)
    total_outage(sim)
    seen: list[str] = []
    page = open_page(contexts, f"{server.url}/kiosk/{cred}")
    page.wait_for_function("() => window.signageKiosk.state().socketLive", timeout=15_000)

    def says(expected: str) -> bool:
        text = page.locator("#freshness-text").inner_text()
        if not seen or seen[-1] != text:
            seen.append(text)
        return text == expected

    # While the feed waits for its first answer it says so; once stale_after has passed
    # (4 s in the tests) without one, that Density is unreachable (no "since": never heard).
    try:
        wait_until(lambda: says("Density unreachable"), 12)
    finally:
        print("freshness texts seen:", seen)
    assert set(seen) <= {"Waiting for Density…", "Density unreachable"}, seen
    expect(page.locator("#free-empty strong")).to_have_text(
        "Availability unknown: sensors unreachable"
    )
    assert not page.errors, page.errors
