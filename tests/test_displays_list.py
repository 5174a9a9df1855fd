"""The displays list at fleet scale: search, filters, pages, bulk actions, lazy live previews.

Real server against the simulator; the console through Flask's client (cookies and the form
token as a browser keeps them), screens as real socket clients, and real Chromium for the
previews (tests/conftest.py).
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from signage.web.admin.displays import ListQuery, _list_state, filter_rows
from tests.admin_helpers import PASSWORD, Console, make_admin
from tests.helpers import wait_until

ROW = re.compile(r'<tr data-display-id="(\d+)"')
SERVER_MS = 20_000


def _ids(html: str) -> list[int]:
    return [int(i) for i in ROW.findall(html)]


def _fleet(server, n: int = 230) -> dict[str, list]:
    """`n` displays over the simulator's floors, in three languages; names say where they are."""
    svc = server.svc
    floors = [f.id for f in svc.directory.floors()]
    made: dict[str, list] = {"all": []}
    for i in range(n):
        floor = floors[i % len(floors)]
        language = ("en", "de", "fr")[i % 3]
        name = f"{'Lobby' if i % 10 == 0 else 'Room'} {i:03d}"
        display = svc.store.add_display(name, floor, None, settings={"language": language})
        made["all"].append(display)
    return made


def _open(url: str, stack: ExitStack) -> ClientConnection:
    ws = stack.enter_context(connect(url, open_timeout=10))
    assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    return ws


def _next_command(ws: ClientConnection) -> str:
    """The type of the next message outside the floor's feed (a command)."""
    while True:
        kind = json.loads(ws.recv(timeout=10))["type"]
        if kind in ("reload", "identify"):
            return kind


def _close_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def test_search_filters_and_pages_over_230_displays(server, console):
    svc = server.svc
    made = _fleet(server)["all"]
    floors = [f.id for f in svc.directory.floors()]
    # Two screens live, three displays had a screen once (down), the rest never (not installed).
    for display in made[3:6]:
        svc.store.mark_first_screen(display.id, 1.0)
    with ExitStack() as stack:
        for display in made[:2]:
            ws = _open(server.socket_url(svc.store.credential(display)), stack)
            ws.send(json.dumps({"type": "heartbeat", "uptime_s": 1}))  # as a kiosk page does
        wait_until(lambda: sum(1 for s in svc.hub.screens() if s.info) == 2, message="two screens")

        page = console.get("/admin/displays").get_data(as_text=True)
        names = sorted(made, key=lambda d: (d.name.casefold(), d.id))
        assert _ids(page) == [d.id for d in names[:50]]
        assert "Displays 1–50 of 230." in page
        assert page.count('rel="next"') == 1 and "Page 5" in page and "Page 6" not in page

        page = console.get("/admin/displays?per_page=100&page=3").get_data(as_text=True)
        assert _ids(page) == [d.id for d in names[200:]] and "Displays 201–230 of 230." in page
        # A page past the end shows the last one; a size the list does not offer, the default.
        assert _ids(console.get("/admin/displays?page=99").get_data(as_text=True)) == [
            d.id for d in names[200:]
        ]
        assert len(_ids(console.get("/admin/displays?per_page=7").get_data(as_text=True))) == 50

        # Search in names, and in floors' names.
        page = console.get("/admin/displays?q=LOBBY").get_data(as_text=True)
        assert sorted(_ids(page)) == sorted(d.id for d in made if d.name.startswith("Lobby"))
        assert "Displays 1–23 of 23 matching (of 230)." in page
        floor_name = svc.directory.floors()[1].name
        page = console.get(f"/admin/displays?q={floor_name}&per_page=100").get_data(as_text=True)
        on_floor = [d.id for d in made if d.floor_id == floors[1]]
        assert sorted(_ids(page)) == sorted(on_floor)

        # Filters, alone and together.
        by_floor = console.get(f"/admin/displays?floor={floors[0]}&per_page=100").get_data(
            as_text=True
        )
        assert sorted(_ids(by_floor)) == sorted(d.id for d in made if d.floor_id == floors[0])
        german = [d.id for d in made if d.settings["language"] == "de"]
        page = console.get("/admin/displays?language=de&per_page=100").get_data(as_text=True)
        assert sorted(_ids(page)) == sorted(german)
        page = console.get("/admin/displays?state=live").get_data(as_text=True)
        assert sorted(_ids(page)) == sorted(d.id for d in made[:2])
        page = console.get("/admin/displays?state=down").get_data(as_text=True)
        assert sorted(_ids(page)) == sorted(d.id for d in made[3:6])
        page = console.get("/admin/displays?state=not_installed&per_page=100").get_data(
            as_text=True
        )
        assert "of 225 matching" in page
        both = console.get(f"/admin/displays?state=down&language=de&floor={made[4].floor_id}")
        assert _ids(both.get_data(as_text=True)) == [
            d.id
            for d in made[3:6]
            if d.settings["language"] == "de" and d.floor_id == made[4].floor_id
        ]
        # Every filter control has a visible label, and the page links keep the filters.
        page = console.get("/admin/displays?language=fr&per_page=50").get_data(as_text=True)
        for control in ("q", "floor", "state", "language", "per_page"):
            assert f'<label for="{control}">' in page
        assert "language=fr" in re.search(r'<a href="([^"]+)" rel="next"', page).group(1)


def test_the_list_states_follow_fleet_health():
    feeds = {"f1": "live", "f2": "stale"}
    row = {"floor_id": "f1", "state": "up"}
    assert _list_state(row, feeds) == "live"
    assert _list_state({**row, "floor_id": "f2"}, feeds) == "stale"
    assert _list_state({**row, "state": "silent"}, feeds) == "down"
    assert _list_state({**row, "state": "down"}, feeds) == "down"
    assert _list_state({**row, "state": "not_installed"}, feeds) == "not_installed"
    rows = [
        {
            "display": type("D", (), {"name": "Café Nord", "floor_id": "f1"})(),
            "floor": "HQ / 2nd",
            "state": "live",
            "language": "de",
        }
    ]
    assert filter_rows(rows, ListQuery(q="café hq")) == rows
    assert filter_rows(rows, ListQuery(q="café süd")) == []


def test_bulk_reload_identify_announce_and_revoke_a_selection(server, console):
    svc = server.svc
    made = _fleet(server, 12)["all"]
    chosen, other = made[:3], made[3]
    credentials = {d.id: svc.store.credential(d) for d in made}
    back = "q=Room&per_page=100"
    with ExitStack() as stack:
        screens = {d.id: _open(server.socket_url(credentials[d.id]), stack) for d in made[:4]}
        ids = [str(d.id) for d in chosen]

        answer = console.post(
            "/admin/displays/bulk", {"action": "identify", "ids": ids, "back": back}
        )
        assert answer.status_code == 302
        assert parse_qs(urlsplit(answer.headers["Location"]).query) == {
            "q": ["Room"],
            "per_page": ["100"],
        }
        for display in chosen:
            assert _next_command(screens[display.id]) == "identify"
        answer = console.post("/admin/displays/bulk", {"action": "reload", "ids": ids})
        for display in chosen:
            assert _next_command(screens[display.id]) == "reload"
        # The display left out got neither: its first command is the one sent to it alone.
        console.post("/admin/displays/bulk", {"action": "reload", "ids": [str(other.id)]})
        assert _next_command(screens[other.id]) == "reload"
        flashed = console.get("/admin/displays").get_data(as_text=True)
        assert "Sent “reload” to 1 screen of 1 display." in flashed

        # Nothing selected: nothing sent, a message saying what to do.
        answer = console.post("/admin/displays/bulk", {"action": "reload"})
        assert answer.status_code == 302
        assert "Select at least one display" in console.get("/admin/displays").get_data(
            as_text=True
        )

        # Announce: the announcement form, with the selection chosen.
        answer = console.post("/admin/displays/bulk", {"action": "announce", "ids": ids})
        assert answer.status_code == 302
        location = answer.headers["Location"]
        assert parse_qs(urlsplit(location).query)["audience"] == [f"display:{i}" for i in ids]
        form = console.get(location).get_data(as_text=True)
        assert re.search(r'<select name="audience" id="audience" multiple', form)
        selected = re.findall(r'<option value="(display:\d+)" selected>', form)
        assert selected == [f"display:{i}" for i in ids]
        sent = console.post(
            "/admin/announcements",
            {
                "audience": [f"display:{i}" for i in ids],
                "kind": "message",
                "title": "Fire drill at 3",
                "duration_minutes": "30",
            },
        )
        assert sent.status_code == 302
        made_now = [a for a in svc.store.list_announcements() if a.title == "Fire drill at 3"]
        assert sorted((a.scope, a.target) for a in made_now) == sorted(("display", i) for i in ids)

        # Revoke: a confirmation page listing them first, nothing revoked until confirmed.
        page = console.post("/admin/displays/bulk", {"action": "revoke", "ids": ids, "back": back})
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert [int(i) for i in re.findall(r'<tr data-display-id="(\d+)"', html)] == [
            d.id for d in chosen
        ]
        for display in chosen:
            assert display.name in html
            assert svc.store.display_for_credential(credentials[display.id]) is not None
        assert "Revoke 3 credentials" in html
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        done = console.post(
            "/admin/displays/bulk/revoke",
            {"csrf_token": token, "confirm": "yes", "ids": ids, "back": back},
        )
        assert done.status_code == 302 and "q=Room" in done.headers["Location"]
        for display in chosen:
            assert svc.store.display_for_credential(credentials[display.id]) is None
            assert _close_code(screens[display.id]) == 4401
        assert svc.store.display_for_credential(credentials[other.id]) is not None
        # Without the confirmation nothing is revoked.
        console.post("/admin/displays/bulk/revoke", {"ids": [str(other.id)]})
        assert svc.store.display_for_credential(credentials[other.id]) is not None


def test_previews_in_the_list_open_only_when_asked(server, browser, contexts, monkeypatch):
    svc = server.svc
    # Every kiosk socket the server accepts, counted where it subscribes (Playwright does not
    # report a frame's sockets).
    opened: list = []
    subscribe = svc.hub.subscribe

    def counted(*args, **kwargs):
        opened.append(subscribe(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(svc.hub, "subscribe", counted)
    make_admin(svc)
    made = _fleet(server, 100)["all"]
    target = sorted(made, key=lambda d: (d.name.casefold(), d.id))[2]
    page = contexts(1400, 1000).new_page()
    page.goto(f"{server.url}/admin/login?next=/admin/displays?per_page=100")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/displays?per_page=100")
    expect(page.locator("tr[data-display-id]")).to_have_count(100)
    page.wait_for_load_state("networkidle")
    assert opened == [] and page.locator("iframe").count() == 0
    row = page.locator(f'tr[data-display-id="{target.id}"]')
    expect(row.get_by_role("link", name=f"Open kiosk of {target.name}")).to_have_attribute(
        "href", f"/admin/displays/{target.id}/preview"
    )

    # With the keyboard: focus the row's Preview button, press Enter.
    toggle = page.locator(f'tr[data-display-id="{target.id}"] button.preview-toggle')
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    frame = page.frame_locator(f"#preview-{target.id} iframe")
    expect(frame.locator("body")).to_contain_text(target.name, timeout=SERVER_MS)
    wait_until(lambda: len(svc.hub.subscribers()) == 1, timeout=20, message="one preview socket")
    assert len(opened) == 1
    sub = svc.hub.subscribers()[0]
    assert sub is opened[0] and sub.preview and sub.display_id == target.id
    assert svc.hub.screens() == []

    # Hiding it unloads the page and closes its socket.
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    wait_until(lambda: svc.hub.subscribers() == [], timeout=20, message="preview socket closed")
    assert len(opened) == 1

    # "All on this page" ticks the page's hundred boxes.
    page.check("#select-all")
    assert page.locator("input[name=ids]:checked").count() == 100
    expect(page.locator("#selected-count")).to_have_text("(100 selected)")


def test_a_display_page_shows_what_its_screens_show(server, browser, contexts):
    svc = server.svc
    make_admin(svc)
    floor = svc.directory.floors()[0].id
    display = svc.store.add_display(
        "Lobby north", floor, None, settings={"orientation": "portrait"}
    )
    page = contexts(1400, 1000).new_page()
    page.goto(f"{server.url}/admin/login?next=/admin/displays/{display.id}")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/admin/displays/{display.id}")
    box = page.locator("#preview-box")
    expect(box).to_have_class(re.compile("portrait"))
    size = box.bounding_box()
    assert size and abs(size["width"] / size["height"] - 9 / 16) < 0.02
    frame = page.frame_locator("#preview-box iframe")
    expect(frame.locator("body")).to_contain_text("Lobby north", timeout=SERVER_MS)
    wait_until(lambda: len(svc.hub.subscribers()) == 1, timeout=20, message="the preview socket")
    assert svc.hub.screens() == []
    expect(page.locator("#open-kiosk")).to_have_attribute(
        "href", f"/admin/displays/{display.id}/preview"
    )
    phone = page.locator("#open-phone").get_attribute("href")
    assert phone and f"/phone/{svc.store.phone_credential(display)}" in phone
    # The preview is no screen: the page still counts none.
    expect(page.locator(".heading")).to_contain_text("Not installed · no screen connected")


def test_a_viewer_previews_but_acts_on_no_selection(server):
    svc = server.svc
    make_admin(svc, "vera", role="viewer")
    viewer = Console(server.app)
    assert viewer.login("vera").status_code == 302
    made = _fleet(server, 3)["all"]
    credential = svc.store.credential(made[0])
    page = viewer.get("/admin/displays").get_data(as_text=True)
    assert page.count('class="secondary small preview-toggle"') == 3
    assert 'id="bulk"' not in page and 'name="ids"' not in page
    assert viewer.get(f"/admin/displays/{made[0].id}/preview").status_code == 302
    for action in ("reload", "identify", "announce", "revoke"):
        answer = viewer.post("/admin/displays/bulk", {"action": action, "ids": [str(made[0].id)]})
        assert answer.status_code == 403, action
    answer = viewer.post(
        "/admin/displays/bulk/revoke", {"confirm": "yes", "ids": [str(made[0].id)]}
    )
    assert answer.status_code == 403
    assert svc.store.display_for_credential(credential) is not None


def test_an_announcement_to_a_selection_is_sent_to_all_or_none(server, console):
    # One bad audience among several (a display deleted since the list was shown, a forged
    # value) must refuse the whole form: sending to the others first left the form saying
    # "not sent" with some sent, and sending it again sent those twice.
    svc = server.svc
    made = _fleet(server, 3)["all"]
    gone = made[2]
    svc.store.remove_display(gone.id)
    for bad in (f"display:{gone.id}", "display:x"):
        answer = console.post(
            "/admin/announcements",
            {
                "audience": [f"display:{made[0].id}", f"display:{made[1].id}", bad],
                "kind": "message",
                "title": "Lift out of order",
                "duration_minutes": "30",
            },
        )
        assert answer.status_code == 400, bad
        assert "audience" in answer.get_data(as_text=True)
        assert [a for a in svc.store.list_announcements() if a.title == "Lift out of order"] == []


def test_a_viewers_display_page_carries_no_credential_of_the_display(server):
    # The phone link is a credential of its own (revocable apart from the kiosk's): the API
    # and the page's "Direct URLs" give it to accounts that may write only, so the preview's
    # "Open phone view" must not hand it to a viewer either.
    svc = server.svc
    make_admin(svc, "vera", role="viewer")
    viewer = Console(server.app)
    assert viewer.login("vera").status_code == 302
    display = _fleet(server, 1)["all"][0]
    page = viewer.get(f"/admin/displays/{display.id}").get_data(as_text=True)
    assert 'id="preview-box"' in page  # the preview itself is a viewer's too
    assert svc.store.phone_credential(display) not in page
    assert svc.store.credential(display) not in page


def test_a_screen_showing_a_stale_floor_is_listed_as_stale(server, console, sim):
    svc = server.svc
    made = _fleet(server, 6)["all"]
    heartbeat = json.dumps({"type": "heartbeat", "uptime_s": 1})

    def listed(state: str) -> list[int]:
        return _ids(console.get(f"/admin/displays?state={state}").get_data(as_text=True))

    with ExitStack() as stack:
        ws = _open(server.socket_url(svc.store.credential(made[0])), stack)
        ws.send(heartbeat)
        wait_until(lambda: any(s.info for s in svc.hub.screens()), message="a heartbeat")
        wait_until(lambda: listed("live") == [made[0].id], timeout=20, message="live")
        # Density goes quiet and then refuses: the floor's feed turns stale while the screen
        # stays connected (and keeps its heartbeats coming, as a page does).
        sim.world.set_socket_mode("silent")
        sim.world.force_outage(3600)

        def stale() -> bool:
            ws.send(heartbeat)
            try:
                while True:  # read what the server sent, so its queue never fills
                    ws.recv(timeout=0)
            except TimeoutError:
                pass
            return listed("stale") == [made[0].id]

        wait_until(stale, timeout=40, interval=0.5, message="listed as stale")
        assert listed("live") == [] and listed("down") == []
