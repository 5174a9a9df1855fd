"""The console's tables as admins read them: no page wider than the window, even with long
names; durations in one wording; floors in the building's order; counts that follow the floor
filter; plain words for failures; and a screen that came and went is remembered as installed.

Real server against the simulator, the console through Flask's client, screens as real socket
clients and real Chromium for the layout (tests/conftest.py).
"""

from __future__ import annotations

import re

import pytest
from websockets.sync.client import connect

from signage.actions import floor_order, names
from signage.actions.wording import calendar_problem, counted, feed_problem
from signage.store import plans
from tests.admin_helpers import PASSWORD, Console, admin_rules, example_url, make_admin
from tests.helpers import wait_until

LONG = "Reception" + "X" * 71  # 80 characters, no space to break at
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 80">'
    b'<rect width="100" height="80"/></svg>'
)


# The words of at most 12 letters in the console's table cells that the layout split over two
# lines (a Range over a word has one box per line it is on).
BROKEN_WORDS = """() => {
  const broken = [];
  for (const cell of document.querySelectorAll("table.list td, table.list th")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/(?<!\\p{L})\\p{L}{2,12}(?!\\p{L})/gu)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) broken.push(match[0]);
      }
    }
  }
  return broken;
}"""


def _long_names(server, console: Console) -> tuple[int, str]:
    """A display, an announcement, a room and a floor with 80-character names (and so an audit
    trail of them): what every table of the console must wrap."""
    svc = server.svc
    floor = svc.directory.floors()[0].id
    display = svc.store.add_display(LONG, floor)
    svc.store.add_display("Lobby", floor)
    plans.store_plan(svc.store, svc.config, floor, SVG, "test")
    room = svc.directory.rooms_of(floor)[0].id
    names.set_names(svc, room, {"default": "Room" + "Y" * 76})
    names.set_names(svc, floor, {"default": "Floor" + "Z" * 75})
    made = console.api(
        "POST",
        "/api/admin/announcements",
        json={"scope": "all", "title": "Notice" + "W" * 74, "duration_minutes": 60},
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    return display.id, floor


def _console_pages(server, console: Console, display_id: int, floor: str) -> list[str]:
    """Every console page a GET renders as HTML (as tests/test_console_labels.py walks them)."""
    pages = []
    for rule in admin_rules(server.app):
        if not rule.rule.startswith("/admin") or "GET" not in rule.methods:
            continue
        if rule.endpoint in ("admin.login",):
            continue
        url = example_url(rule, display_id, floor)
        response = console.get(url)
        if response.status_code == 200 and response.mimetype == "text/html":
            pages.append(url)
    return sorted(set(pages))


@pytest.mark.one_shape  # a layout: the simulator's answer shape does not change it
def test_no_console_page_is_wider_than_the_window_with_long_names(server, contexts):
    svc = server.svc
    make_admin(svc, "alice", "owner")
    console = Console(server.app)
    assert console.login().status_code == 302
    display_id, floor = _long_names(server, console)
    pages = _console_pages(server, console, display_id, floor)
    assert len(pages) >= 15, pages
    for must in ("/admin/displays", "/admin/fleet", "/admin/calendars", "/admin/audit"):
        assert must in pages
    page = contexts(800, 900).new_page()
    page.goto(f"{server.url}/admin/login")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/**")
    too_wide: dict[str, int] = {}
    split_words: dict[str, list[str]] = {}
    for width, height in ((800, 900), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        for url in pages:
            page.goto(f"{server.url}{url}")
            page.wait_for_load_state("load")
            wide = page.evaluate("document.documentElement.scrollWidth")
            if wide > width:
                too_wide[f"{url} @{width}"] = wide
            if broken := page.evaluate(BROKEN_WORDS):
                split_words[f"{url} @{width}"] = broken
    # The long names are on the pages measured.
    page.goto(f"{server.url}/admin/displays")
    assert LONG in page.content()
    assert not too_wide, too_wide
    # ...and wrapping the long names did not break short words ("Organisati-on", "Renam-ed").
    assert not split_words, split_words


def test_one_wording_for_durations(server):
    template = server.app.jinja_env.get_template("admin/_durations.html").module
    said = {s: str(template.duration(s)).strip() for s in (0, 59, 60, 720, 11100, 7200, 187200)}
    assert said == {
        0: "under 1 min",
        59: "under 1 min",
        60: "1 min",
        720: "12 min",
        11100: "3 h 5 min",
        7200: "2 h",
        187200: "2 days 4 h",
    }
    assert str(template.duration(172800)).strip() == "2 days"
    assert str(template.duration(86400 + 3600)).strip() == "1 day 1 h"


def test_down_times_read_alike_on_the_list_and_fleet_health(server, console, monkeypatch):
    svc = server.svc
    floor = svc.directory.floors()[0].id
    display = svc.store.add_display("Entrance", floor)
    svc.store.mark_first_screen(display.id, 0.0)
    # Down for two days and four hours, as the alert watcher counts it.
    monkeypatch.setattr(svc.alerts, "down_for", lambda kind, id: 187_230.0)
    listing = console.get("/admin/displays").get_data(as_text=True)
    fleet = console.get("/admin/fleet").get_data(as_text=True)
    assert "for 2 days 4 h" in listing, re.findall(r"for [^<]*", listing)
    assert "for 2 days 4 h" in fleet


def _floor_order_reversed(svc) -> list[str]:
    """Set the first building's floors in reverse of Density's order; the new order."""
    building = floor_order.buildings(svc)[0]
    wanted = [f for f, _ in building.floors][::-1]
    floor_order.set_floor_order(svc, building.id, wanted)
    assert [f for f, _ in floor_order.building(svc, building.id).floors] == wanted
    return wanted


def test_floors_follow_the_building_order(server, console):
    svc = server.svc
    wanted = _floor_order_reversed(svc)
    assert len(wanted) >= 2
    for floor in wanted:
        svc.store.add_display(f"Screen {floor}", floor)
        svc.feeds.acquire(floor)  # a floor feed each, for fleet health's feeds table
    try:
        listing = console.get("/admin/displays").get_data(as_text=True)
        select = listing.split('id="floor"', 1)[1].split("</select>", 1)[0]
        options = re.findall(r'<option value="([^"]+)"', select)
        assert [o for o in options if o in wanted] == wanted, options

        def feed_rows() -> list[str]:
            page = console.get("/admin/fleet").get_data(as_text=True)
            table = page.split('id="fleet-feeds"', 1)[1].split("</table>", 1)[0]
            return re.findall(r'data-floor-id="([^"]+)"', table)

        # Once every feed is live (none with a problem to put first): the building's order.
        wait_until(
            lambda: [f for f in feed_rows() if f in wanted] == wanted,
            timeout=30,
            message="floor feeds in the building's order",
        )
    finally:
        for floor in wanted:
            svc.feeds.release(floor)


def test_fleet_counts_follow_the_floor_filter(server, console):
    svc = server.svc
    floors = [f.id for f in svc.directory.floors()]
    for i in range(3):
        svc.store.add_display(f"First {i}", floors[0])
    svc.store.add_display("Second", floors[1])
    everything = console.get("/admin/fleet").get_data(as_text=True)
    assert re.search(r"<strong>4</strong> displays", everything)
    one = console.get(f"/admin/fleet?floor={floors[1]}").get_data(as_text=True)
    tiles = re.findall(r"<strong>\d+</strong>[^<]*", one)
    assert re.search(r"<strong>1</strong> display\b", one), tiles
    assert not re.search(r"<strong>4</strong> displays", one)
    # The page says the counts are of the chosen floor.
    assert 'id="fleet-counts-floor"' in one and 'id="fleet-counts-floor"' not in everything


@pytest.mark.parametrize(
    ("technical", "plain"),
    [
        (
            "Unavailable: POST ws_floor_presence: timed out (ReadTimeout)",
            "Density did not answer in time",
        ),
        (
            "Unavailable: GET spaces: transport error (ConnectError: [Errno 111] refused)",
            "Could not connect to Density",
        ),
        ("AuthError: token refused", "Density refused our credentials"),
        ("RateLimited: too many requests", "Density asked us to slow down"),
        ("unreachable", "No answer from Density"),
        ("starting", "Starting"),
    ],
)
def test_feed_failures_in_plain_words(technical, plain):
    assert feed_problem(technical) == plain


def test_calendar_failures_and_revocations_in_plain_words():
    assert calendar_problem("unreachable: connection failed (ConnectError)") == (
        "Could not connect to the calendar server"
    )
    assert calendar_problem("timeout: no answer") == "The calendar server did not answer in time"
    assert calendar_problem("unauthorized: HTTP 401") == (
        "The calendar server refused the user name or password"
    )
    assert counted(1, "credential") == "1 credential"
    assert counted(2, "credential") == "2 credentials"


def test_fleet_health_shows_plain_words_and_keeps_the_detail(server, console, monkeypatch):
    svc = server.svc
    floor = svc.directory.floors()[0].id
    feed = svc.feeds.acquire(floor)
    try:
        technical = "Unavailable: POST ws_floor_presence: timed out (ReadTimeout)"
        real = feed.status

        def status():
            return {**real(), "mode": "polling", "reason": technical}

        monkeypatch.setattr(feed, "status", status)
        page = console.get("/admin/fleet").get_data(as_text=True)
        assert "Density did not answer in time" in page
        assert f'title="{technical}"' in page
        assert "· Unavailable:" not in page
    finally:
        svc.feeds.release(floor)


def test_a_screen_that_connects_and_leaves_at_once_is_installed(server, console):
    svc = server.svc
    floor = svc.directory.floors()[0].id
    display = svc.store.add_display("Quick visit", floor)
    # The watcher must not be what notes it: this screen leaves before its next look.
    svc.alerts.stop()
    with connect(server.socket_url(svc.store.credential(display)), open_timeout=20) as ws:
        ws.recv(timeout=20)  # the snapshot: it is being served
    wait_until(lambda: svc.hub.screens() == [], timeout=20, message="the screen left")
    assert display.id in svc.store.first_screens()
    page = console.get("/admin/fleet").get_data(as_text=True)
    row = page.split(f'data-display-id="{display.id}"', 1)[1].split("</tr>", 1)[0]
    assert "Not installed" not in row and "Down" in row


def test_revoking_one_display_says_one_credential(server, console):
    svc = server.svc
    floor = svc.directory.floors()[0].id
    display = svc.store.add_display("Side door", floor)
    done = console.post("/admin/displays/bulk/revoke", {"ids": [str(display.id)], "confirm": "yes"})
    assert done.status_code == 302
    page = console.get("/admin/displays").get_data(as_text=True)
    assert "Revoked 1 credential: “Side door”." in page, re.findall(r"Revoked[^<]*", page)


@pytest.mark.one_shape  # calendars and the floor order: the simulator's shape plays no part
def test_room_calendars_failing_read_in_plain_words_in_the_building_order(server, console):
    svc = server.svc
    wanted = _floor_order_reversed(svc)
    rooms = [svc.directory.rooms_of(floor)[0].id for floor in wanted]
    for room in reversed(rooms):  # saved in the other order: the table must not follow it
        saved = console.post(
            f"/admin/calendars/{room}",
            data={"kind": "ics", "url": "https://calendar.invalid/room.ics"},
        )
        assert saved.status_code == 302, saved.get_data(as_text=True)[:400]
    svc.bookings.poke()

    def failing() -> list[dict]:
        rows = console.get("/api/admin/fleet").json["calendars"]
        return [c for c in rows if c["error"]] if len(rows) == 3 else []

    wait_until(lambda: len(failing()) == 3, timeout=30, message="three calendars failing")
    page = console.get("/admin/fleet").get_data(as_text=True)
    table = page.split('id="fleet-calendars"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-space-id="([^"]+)"', table) == rooms
    # Plain words first, the fetcher's own words kept in the title.
    error = failing()[0]["error"]
    plain = calendar_problem(error)
    assert plain and plain != "The calendar could not be read", error
    for html in (table, console.get("/admin/calendars").get_data(as_text=True)):
        assert f'title="{error}">· {plain}</span>' in html
