"""The console when something goes wrong: a signed-out tab, a stale form token, a missing page,
a refusal, a too-large upload, a destructive button, and messages that say what a field takes.

The real server against the simulator (tests/conftest.py); the console's client keeps cookies
and sends the form token (tests/admin_helpers.py); the kept form text is checked in Chromium.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from io import BytesIO

import pytest
from playwright.sync_api import expect
from werkzeug.datastructures import MultiDict

from signage.actions.announcements import MAX_ACTIVE, MAX_DURATION_MIN
from signage.store.branding import MAX_LOGO_BYTES
from tests.admin_helpers import PASSWORD, Console, make_admin

SERVER_MS = 20_000  # a shared, loaded machine: a bound, not a wait


@pytest.fixture
def floor(server) -> str:
    return server.svc.directory.floors()[0].id


def _menu(html: str) -> bool:
    """Whether a page is a console page with its menu (not Werkzeug's bare error page)."""
    return 'href="/admin/displays"' in html and "Audit trail" in html


# -- 1. a signed-out tab, a stale form token ---------------------------------------------------
def test_a_form_sent_from_a_signed_out_tab_goes_to_sign_in_and_back(server, console):
    page = "/admin/announcements"
    other_tab = Console(server.app)
    other_tab.client = console.client  # the same browser: one cookie jar
    other_tab.token = console.token
    assert other_tab.post("/admin/logout").status_code == 302
    sent = console.post(
        page,
        {"audience": "all", "title": "Lift out", "duration_minutes": "30"},
    )
    assert sent.status_code == 303
    assert sent.headers["Location"] == "/admin/login?next=/admin/announcements"
    login = console.get(sent.headers["Location"]).get_data(as_text=True)
    assert "You were signed out; sign in again and your page comes back" in login
    assert "data-keep-forms" in login  # forms.js keeps the text typed on the page
    assert server.svc.store.list_announcements() == []
    # A form posting elsewhere (a bulk action) comes back to the page forms.js names.
    listed = "/admin/displays?q=lobby"
    bulk = console.post("/admin/displays/bulk", {"action": "reload", "_page": listed})
    assert bulk.status_code == 303
    assert bulk.headers["Location"] == "/admin/login?next=/admin/displays?q%3Dlobby"
    assert console.login(next_=page).headers["Location"] == page


def test_a_signed_out_tab_s_background_requests_get_401_and_stack_no_messages(
    server, console, floor
):
    """The editor polls states.json every 5 s: after a sign-out elsewhere each poll is a 401 it
    can read, not a sign-in page, and adds no "signed out" line; navigations say it once."""
    assert console.post("/admin/logout").status_code == 302
    poll = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
    for _ in range(5):
        answer = console.get(f"/admin/floors/{floor}/states.json", headers=poll)
        assert answer.status_code == 401
    nav = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"}
    for _ in range(3):
        moved = console.get("/admin/displays", headers=nav)
        assert moved.status_code == 302 and "/admin/login" in moved.headers["Location"]
    login = console.get("/admin/login").get_data(as_text=True)
    assert login.count("You were signed out; sign in again") == 1


def test_a_stale_form_token_gets_a_console_page_saying_what_happened(server, console, floor):
    display = server.svc.store.add_display("Lobby", floor)
    where = f"/admin/displays/{display.id}"
    stale = console.post(
        where,
        {"name": "Renamed", "csrf_token": "stale"},
    )
    assert stale.status_code == 403
    html = stale.get_data(as_text=True)
    assert _menu(html) and "This form had expired" in html and "Nothing was changed" in html
    assert "What you typed is kept in this tab" in html and "data-keep-forms" in html
    assert f'href="{where}"' in html  # back to the form
    assert server.svc.store.get_display(display.id).name == "Lobby"


# -- 2. error pages inside the console --
def test_errors_are_console_pages_and_the_api_keeps_json(server, console, floor):
    for path in ("/admin/displays/999", "/admin/floors/nope/layout"):
        missing = console.get(path)
        assert missing.status_code == 404, path
        html = missing.get_data(as_text=True)
        assert _menu(html) and "Not found" in html and "There is nothing at this address" in html
        assert "The requested URL was not found" not in html  # Werkzeug's words
    bad = console.get("/admin/login?next=/admin/%01")
    assert bad.status_code == 400 and "control characters" in bad.get_data(as_text=True)
    assert "<title>400 Bad Request</title>" not in bad.get_data(as_text=True)
    api = console.api("GET", "/api/admin/displays/999")
    assert api.status_code == 404 and api.is_json and api.json["error"] == "not_found"

    make_admin(server.svc, "vic", role="viewer")
    viewer = Console(server.app)
    assert viewer.login("vic").status_code == 302
    refused = viewer.post("/admin/displays/new", {"name": "X", "floor_id": floor})
    assert refused.status_code == 403
    html = refused.get_data(as_text=True)
    assert _menu(html) and "Not allowed" in html and "read-only access" in html
    assert "data-keep-forms" in html


# -- 3. a too-large upload names what was uploaded and its limit --
def test_a_too_large_upload_names_the_logo_or_the_plan_and_its_own_limit(server, console, floor):
    display = server.svc.store.add_display("Lobby", floor)
    huge_logo = b"\x89PNG" + b"0" * (MAX_LOGO_BYTES + 100_000)  # past the logo's limit only
    assert len(huge_logo) < int(server.svc.config["SIGNAGE_PLAN_MAX_BYTES"])
    refused = console.post(
        f"/admin/displays/{display.id}/branding/logo",
        {"logo": (BytesIO(huge_logo), "logo.png")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 413
    html = refused.get_data(as_text=True)
    assert _menu(html) and f"larger than the {MAX_LOGO_BYTES // 1000} kB a logo may have" in html
    assert "plan" not in html.split("<main>")[1]
    server.svc.config["SIGNAGE_PLAN_MAX_BYTES"] = 10_000
    plan = console.post(
        f"/admin/plans/{floor}",
        {"plan": (BytesIO(b"<svg>" + b" " * 200_000 + b"</svg>"), "plan.svg")},
        content_type="multipart/form-data",
    )
    assert plan.status_code == 413
    assert "The floor plan was not stored" in plan.get_data(as_text=True)
    assert "larger than the 10 kB a plan may have" in plan.get_data(as_text=True)


# -- 4. destructive buttons ask first -------------------------------------------------------------
def test_delete_display_and_remove_plan_ask_before_acting(server, console, floor):
    from signage.store import plans

    display = server.svc.store.add_display("Lobby east", floor)
    asked = console.post(f"/admin/displays/{display.id}/delete")
    assert asked.status_code == 200
    html = asked.get_data(as_text=True)
    assert "Delete this display?" in html and "Lobby east" in html and _menu(html)
    assert 'name="confirm" value="yes"' in html and "autofocus>Cancel</a>" in html
    assert server.svc.store.get_display(display.id) is not None  # one Enter deleted nothing
    done = console.post(f"/admin/displays/{display.id}/delete", {"confirm": "yes"})
    assert done.status_code == 302 and server.svc.store.get_display(display.id) is None

    plans.store_plan(
        server.svc.store,
        server.svc.config,
        floor,
        b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        "test",
    )
    asked = console.post(f"/admin/plans/{floor}/delete")
    assert asked.status_code == 200 and "Remove this floor&#39;s plan?" in asked.get_data(
        as_text=True
    )
    assert server.svc.store.get_plan(floor) is not None
    assert console.post(f"/admin/plans/{floor}/delete", {"confirm": "yes"}).status_code == 302
    assert server.svc.store.get_plan(floor) is None
    assert console.post(f"/admin/plans/{floor}/delete").status_code == 404  # none to remove


# -- 5. messages that say what a field takes --
def _last_sunday_of_march_ahead() -> date:
    today = date.today()
    for year in (today.year, today.year + 1):
        day = date(year, 3, 31)
        day -= timedelta(days=(day.weekday() + 1) % 7)
        if day > today + timedelta(days=1):
            return day
    raise AssertionError("unreachable")


def _announce(console, **fields):
    data = {"audience": "all", "kind": "message", "title": "Drill", **fields}
    return console.post("/admin/announcements", data)


def _field_error(html: str, field: str) -> str:
    match = re.search(rf'id="{field}-error">([^<]*)<', html)
    return match.group(1) if match else ""


def test_time_and_number_messages_say_what_the_form_takes(server, console, floor):
    zone = server.svc.directory.time_zone(floor)
    assert zone == "Europe/Berlin"
    gap_day = _last_sunday_of_march_ahead()  # clocks go from 02:00 to 03:00 in Berlin
    gap = _announce(console, starts_at=f"{gap_day}T02:30", ends_at=f"{gap_day}T03:30")
    assert gap.status_code == 400
    said = _field_error(gap.get_data(as_text=True), "starts_at")
    assert f"02:30 does not exist on {gap_day} in Europe/Berlin" in said, said
    assert "after the start" not in gap.get_data(as_text=True)

    garbage = _announce(console, starts_at="next tuesday", duration_minutes="30")
    said = _field_error(garbage.get_data(as_text=True), "starts_at")
    assert "YYYY-MM-DD HH:MM (Europe/Berlin time)" in said and "offset" not in said, said

    huge = _announce(console, duration_minutes="9" * 40)
    said = _field_error(huge.get_data(as_text=True), "duration_minutes")
    assert f"at most {MAX_DURATION_MIN} minutes" in said, said
    assert server.svc.store.list_announcements() == []

    display = server.svc.store.add_display("Lobby", floor)
    form = {"name": "Lobby", "floor_id": floor, "min_capacity": "9" * 30}
    saved = console.post(f"/admin/displays/{display.id}", form)
    said = _field_error(saved.get_data(as_text=True), "min_capacity")
    assert saved.status_code == 400 and "between 0 and 10000" in said, said
    form["min_capacity"] = "lots"
    said = _field_error(
        console.post(f"/admin/displays/{display.id}", form).get_data(True), "min_capacity"
    )
    assert "whole number from 0 to 10000" in said, said


# -- 6. a selection past the cap is refused whole --
def test_an_announcement_to_a_selection_is_sent_to_all_of_it_or_none(server, console, floor):
    store = server.svc.store
    ids = [store.add_display(f"Screen {i}", floor).id for i in range(MAX_ACTIVE + 5)]
    form = {"kind": "message", "title": "Lift out", "duration_minutes": "30"}
    picked = [("audience", f"display:{i}") for i in ids]
    too_many = console.client.post(
        "/admin/announcements",
        data=MultiDict([*form.items(), *picked, ("csrf_token", console.token)]),
    )
    assert too_many.status_code == 400
    said = _field_error(too_many.get_data(as_text=True), "audience")
    assert f"{MAX_ACTIVE + 5} displays selected, but at most {MAX_ACTIVE}" in said, said
    assert store.list_announcements() == []
    # 30 already showing, then a selection of 30: the whole selection is checked first.
    for i in ids[:30]:
        assert _announce(console, audience=f"display:{i}", duration_minutes="30").status_code == 302
    picked = [("audience", f"display:{i}") for i in ids[30:]][:30]
    partial = console.client.post(
        "/admin/announcements",
        data=MultiDict([*form.items(), *picked, ("csrf_token", console.token)]),
    )
    assert partial.status_code == 400
    said = _field_error(partial.get_data(as_text=True), "audience")
    assert "not sent to any of the" in said and f"at most {MAX_ACTIVE}" in said, said
    assert len(store.list_announcements()) == 30  # none of the selection


# -- 7, 8: the audit filter and the account form ---------------------------------------------------
def test_audit_date_past_the_calendar_and_every_account_error_at_once(server, console):
    answer = console.get("/admin/audit?to=9999-12-31")
    assert answer.status_code in (200, 400)
    assert "a date as YYYY-MM-DD" in answer.get_data(as_text=True)
    assert console.get("/admin/audit?from=0001-01-01").status_code in (200, 400)

    sent = console.post("/admin/admins", {"username": "bad name!", "role": "king", "password": "x"})
    html = sent.get_data(as_text=True)
    for field in ("username", "role", "password"):
        assert _field_error(html, field), field


# -- 9, 10: hidden rooms checked, the night's zone named --
def test_hidden_rooms_must_be_rooms_of_the_floor_and_night_names_its_zone(server, console, floor):
    display = server.svc.store.add_display("Lobby", floor)
    room = server.svc.directory.rooms_of(floor)[0].id
    form = {"name": "Lobby", "floor_id": floor, "hidden_rooms": "nope", "settings_form": "1"}
    refused = console.post(f"/admin/displays/{display.id}", form)
    assert refused.status_code == 400
    assert "not a room of this floor: nope" in _field_error(refused.get_data(True), "hidden_rooms")
    assert server.svc.store.get_display(display.id).settings.get("hidden_rooms", []) == []
    form["hidden_rooms"] = room
    assert console.post(f"/admin/displays/{display.id}", form).status_code == 302
    assert server.svc.store.get_display(display.id).settings["hidden_rooms"] == [room]

    page = console.get(f"/admin/displays/{display.id}").get_data(as_text=True)
    assert re.search(r'From <span class="muted">\(Europe/Berlin\)</span>', page)
    assert re.search(r'Until <span class="muted">\(Europe/Berlin\)</span>', page)


# -- the browser keeps what was typed --
@pytest.mark.browser
def test_text_typed_in_a_tab_signed_out_elsewhere_comes_back_after_sign_in(server, contexts):
    make_admin(server.svc, "nadia")
    ctx = contexts(1200, 900)
    page = ctx.new_page()
    page.set_default_timeout(SERVER_MS)
    page.goto(f"{server.url}/admin/announcements")
    page.get_by_label("Username").fill("nadia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url("**/admin/announcements")
    page.get_by_label("Title").fill("Lift 2 out of service")
    page.get_by_label("Text").fill("Use lift 1 until Friday.")

    other = ctx.new_page()  # another tab of the same browser signs out
    other.goto(f"{server.url}/admin/displays")
    other.get_by_role("button", name="Sign out").click()
    other.wait_for_url("**/admin/login")
    other.close()

    page.get_by_role("button", name=re.compile("^Send")).click()
    page.wait_for_url("**/admin/login?next=/admin/announcements")
    expect(page.locator("main")).to_contain_text("You were signed out; sign in again")
    page.screenshot(path="/tmp/uxa-signin.png")
    page.get_by_label("Username").fill("nadia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url("**/admin/announcements")
    expect(page.get_by_label("Title")).to_have_value("Lift 2 out of service")
    expect(page.get_by_label("Text")).to_have_value("Use lift 1 until Friday.")
    expect(page.locator(".restored-note")).to_contain_text("What you typed here before is back")
    assert server.svc.store.list_announcements() == []
    # Stored nowhere but the tab, and never the form token or a password.
    kept = page.evaluate("JSON.stringify(Object.assign({}, sessionStorage))")
    assert "Lift 2 out of service" in kept and "csrf" not in kept and PASSWORD not in kept

    page.get_by_role("button", name=re.compile("^Send")).click()
    page.wait_for_url("**/admin/announcements")
    expect(page.locator(".flash-ok")).to_contain_text("Lift 2 out of service")
    assert len(server.svc.store.list_announcements()) == 1
    page.reload()
    expect(page.get_by_label("Title")).to_have_value("")  # sent: nothing kept to restore
    assert page.locator(".restored-note").count() == 0

    # The error page of a stale token keeps the text too; going back brings it with a new token.
    page.get_by_label("Title").fill("Second notice")
    page.evaluate("document.querySelector('#announce-form [name=csrf_token]').value = 'stale'")
    page.get_by_role("button", name=re.compile("^Send")).click()
    expect(page.locator("h1")).to_have_text("This form had expired")
    page.screenshot(path="/tmp/uxa-stale.png")
    page.get_by_role("link", name="Back to the form").click()
    page.wait_for_url("**/admin/announcements")
    expect(page.get_by_label("Title")).to_have_value("Second notice")
    page.get_by_role("button", name=re.compile("^Send")).click()
    expect(page.locator(".flash-ok")).to_contain_text("Second notice")
