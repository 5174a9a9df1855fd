"""The console's second outside-in review: destructive actions ask first, addresses the console
has no route for get its error page, every audit action reads in words, the trail records only
what happened, times name their zone, and pages say the same thing the same way.

The real server against the simulator (tests/conftest.py); the console's client keeps cookies
and sends the form token (tests/admin_helpers.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from websockets.sync.client import connect

import signage
from signage.actions.audit import AuditFilter
from signage.web.admin.audit import ACTIONS
from tests.admin_helpers import PASSWORD, Console, make_admin
from tests.helpers import wait_until


@pytest.fixture
def floor(server) -> str:
    return server.svc.directory.floors()[0].id


SERVER_MS = 20_000  # a shared, loaded machine: a bound, not a wait


def _menu(html: str) -> bool:
    """Whether a page is a console page with its menu (not Werkzeug's bare error page)."""
    return 'href="/admin/displays"' in html and "Audit trail" in html


def _asks(answer, title: str, subject: str, action: str, button: str) -> None:
    """The answer is the console's page asking first: Cancel first and focused, then the red
    button, which sends confirm=yes to the same address."""
    assert answer.status_code == 200, answer.status_code
    html = answer.get_data(as_text=True)
    assert _menu(html) and title in html and subject in html, html[:400]
    assert f'action="{action}"' in html and 'name="confirm" value="yes"' in html
    cancel = html.index("autofocus>Cancel</a>")
    assert cancel < html.index(f'class="danger">{button}</button>')


# -- 1. destructive actions ask first ----------------------------------------------------------
def test_removing_an_account_asks_first(server, console):
    olive = make_admin(server.svc, "olive", role="owner")
    action = f"/admin/admins/{olive.id}/delete"
    _asks(console.post(action), "Remove this account?", "olive", action, "Remove account")
    assert server.svc.store.get_admin(olive.id) is not None  # one click removed nobody
    assert console.post(action, {"confirm": "yes"}).status_code == 302
    assert server.svc.store.get_admin(olive.id) is None


def test_revoking_a_credential_or_a_phone_link_asks_first(server, console, floor):
    display = server.svc.store.add_display("Lobby east", floor)
    token, phone = display.key_generation, display.phone_key_generation
    action = f"/admin/displays/{display.id}/revoke"
    asked = console.post(action)
    _asks(asked, "Revoke this display&#39;s credential?", "Lobby east", action, "Revoke credential")
    assert server.svc.store.get_display(display.id).key_generation == token
    assert console.post(action, {"confirm": "yes"}).status_code == 302
    assert server.svc.store.get_display(display.id).key_generation != token

    action = f"/admin/displays/{display.id}/revoke-phone"
    asked = console.post(action)
    _asks(asked, "Revoke this display&#39;s phone link?", "Lobby east", action, "Revoke phone link")
    assert server.svc.store.get_display(display.id).phone_key_generation == phone
    assert console.post(action, {"confirm": "yes"}).status_code == 302
    assert server.svc.store.get_display(display.id).phone_key_generation != phone


def test_removing_a_logo_asks_first(server, console, floor):
    display = server.svc.store.add_display("Lobby east", floor)
    server.svc.store.update_display_settings(display.id, {"logo_url": "https://x.example/l.png"})
    action = f"/admin/displays/{display.id}/branding/logo/remove"
    _asks(
        console.post(action), "Remove this display&#39;s logo?", "Lobby east", action, "Remove logo"
    )
    assert server.svc.store.get_display(display.id).settings.get("logo_url")
    assert console.post(action, {"confirm": "yes"}).status_code == 302
    assert not server.svc.store.get_display(display.id).settings.get("logo_url")


def test_removing_a_room_calendar_asks_first(server, console, floor):
    room = server.svc.directory.rooms_of(floor)[0]
    server.svc.calendars.put(room.id, "https://cal.example/room.ics")
    action = f"/admin/calendars/{room.id}/remove"
    asked = console.post(action)
    _asks(asked, "Remove this room&#39;s calendar?", room.name, action, "Remove calendar")
    assert server.svc.calendars.has(room.id)
    assert console.post(action, {"confirm": "yes"}).status_code == 302
    assert not server.svc.calendars.has(room.id)


@pytest.mark.browser
def test_the_confirmation_page_works_with_the_keyboard(server, console, floor, contexts):
    """In Chromium: Enter on the asking page cancels (Cancel is focused), Tab then Enter acts."""
    display = server.svc.store.add_display("Lobby east", floor)
    page = contexts(800, 900).new_page()
    page.set_default_timeout(SERVER_MS)
    page.goto(f"{server.url}/admin/displays/{display.id}")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(f"**/admin/displays/{display.id}")
    page.get_by_text("Revoke or delete").click()
    page.get_by_role("button", name="Revoke credential").click()
    page.wait_for_selector("text=Revoke this display's credential?")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Cancel"
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/admin/displays/{display.id}")
    assert server.svc.store.get_display(display.id).key_generation == display.key_generation
    page.get_by_text("Revoke or delete").click()
    page.get_by_role("button", name="Revoke credential").click()
    page.wait_for_selector("text=Revoke this display's credential?")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Credential revoked")
    assert server.svc.store.get_display(display.id).key_generation != display.key_generation


# -- 2. addresses the console has no route for -------------------------------------------------
def test_unrouted_console_addresses_get_the_console_error_page(server, console, floor):
    for path in ("/admin/nope", "/admin/displays/abc", "/admin/displays/1/x/y"):
        missing = console.get(path)
        assert missing.status_code == 404, path
        html = missing.get_data(as_text=True)
        assert _menu(html) and "There is nothing at this address" in html, path
        assert "The requested URL was not found" not in html
    display = server.svc.store.add_display("Lobby east", floor)
    wrong = console.get(f"/admin/displays/{display.id}/delete")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]
    html = wrong.get_data(as_text=True)
    assert _menu(html) and "Not possible here" in html and "Method Not Allowed" not in html
    assert server.svc.store.get_display(display.id) is not None
    # Signed out: the same page, no menu of a session it does not have.
    stranger = Console(server.app).get("/admin/nope")
    assert stranger.status_code == 404 and "There is nothing at this address" in stranger.text
    # The JSON API keeps JSON, and other addresses Werkzeug's page.
    api = console.api("GET", "/api/admin/nope")
    assert api.status_code == 404 and api.is_json and api.json["error"] == "not_found"
    api = console.api("GET", f"/api/admin/displays/{display.id}/revoke")
    assert api.status_code == 405 and api.is_json
    other = console.get("/nope")
    assert other.status_code == 404 and "Audit trail" not in other.text


# -- 3. every action the trail records reads in words ------------------------------------------
def _recorded_actions() -> set[str]:
    """Every action string passed to the audit's recorders anywhere in signage/ (audit.change,
    audit.tally, backup's _record): a constant, or display.{reload,identify} from send_commands."""
    root = Path(signage.__file__).parent
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in ("change", "tally", "_record") or len(node.args) < 2:
                continue
            arg = node.args[1]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            elif ast.unparse(arg) == "f'display.{action}'":
                found.update({"display.reload", "display.identify"})
            elif ast.unparse(arg) != "action":  # backup._record passes its own argument on
                raise AssertionError(f"{path}:{node.lineno}: an action this test cannot read")
    return found


def test_every_recorded_action_has_words_on_the_audit_page() -> None:
    found = _recorded_actions()
    assert {"layout.draft_started", "display.create", "calendar.remove"} <= found
    assert "backup.restore" in found and "session.sign_in_failed" in found
    missing = sorted(found - set(ACTIONS))
    assert not missing, f"actions the audit page would show as raw keys: {missing}"


# -- 4. the trail records only what happened; a backwards date range says so ---------------------
def test_a_bulk_reload_that_reached_no_screen_records_nothing(server, console, floor):
    a = server.svc.store.add_display("Lobby east", floor)
    b = server.svc.store.add_display("Lobby west", floor)
    before = server.svc.store.count_audit(AuditFilter(action="display."))
    for action in ("reload", "identify"):
        sent = console.post(
            "/admin/displays/bulk", {"action": action, "ids": [str(a.id), str(b.id)]}
        )
        assert sent.status_code in (302, 303)
    page = console.get("/admin/displays").get_data(as_text=True)
    assert "None of them has a screen connected." in page
    assert server.svc.store.count_audit(AuditFilter(action="display.")) == before
    # One screen connected: the reload is recorded with the screens it reached.
    display, credential = server.add_display(floor)
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        ws.recv(timeout=5)  # the snapshot: the screen is connected
        ids = [str(a.id), str(display.id)]
        assert console.post("/admin/displays/bulk", {"action": "reload", "ids": ids}).status_code
    entries = server.svc.store.audit_entries(AuditFilter(action="display.reload"))
    assert len(entries) == 1 and entries[0].after["screens"] == 1


def test_an_audit_range_the_wrong_way_round_says_so(server, console):
    answer = console.get("/admin/audit?from=2026-05-03&to=2026-05-01")
    assert answer.status_code == 400
    html = answer.get_data(as_text=True)
    assert "No change matches" not in html
    message = re.search(r'id="from-error">([^<]*)<', html)
    assert message and "wrong way round" in message.group(1) and "From" in message.group(1)
    assert console.get("/admin/audit?from=2026-05-01&to=2026-05-01").status_code == 200
    api = console.api(
        "GET", "/api/admin/audit?since=2026-05-03T00:00:00Z&until=2026-05-01T00:00:00Z"
    )
    assert api.status_code == 400 and "since" in api.json["fields"]


# -- 5. times name their zone; the display's page says what the list says -----------------------
def test_a_down_display_reads_the_same_everywhere_with_its_zone(server, console, floor):
    display, credential = server.add_display(floor, name="Lobby north")
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        ws.recv(timeout=5)  # the snapshot: it has had a screen, so it is installed

    def row() -> dict:
        report = console.api("GET", "/api/admin/fleet").get_json()
        return next(d for d in report["displays"] if d["id"] == display.id)

    def seen_down() -> bool:
        server.svc.alerts.check()  # the watcher's look (each minute in service)
        return row()["down_since_local"] is not None

    wait_until(seen_down, timeout=20, message="the screen counted down, with since when")
    down = row()
    zone = server.svc.directory.time_zone(floor) or "UTC"
    fleet = console.get("/admin/fleet").get_data(as_text=True)
    start = fleet.index(f'data-display-id="{display.id}"')
    shown = fleet[start : fleet.index("</tr>", start)]
    assert f"· since {down['down_since_local']} {zone}</span>" in shown
    listed = console.get("/admin/displays").get_data(as_text=True)
    assert 'class="state state-down">Down</span>' in listed
    page = console.get(f"/admin/displays/{display.id}").get_data(as_text=True)
    heading = page[page.index('id="display-state"') : page.index("</div>", page.index("<h1>"))]
    assert 'class="state state-down">Down</span>' in heading and "for " in heading
    assert "no screen connected" in heading
    # One never paired is "Not installed" on its page, as in the list.
    fresh = server.svc.store.add_display("Side door", floor)
    page = console.get(f"/admin/displays/{fresh.id}").get_data(as_text=True)
    assert ">Not installed</span>" in page and "No screen connected" not in page


# -- 6. the same order and the same limits everywhere -------------------------------------------
def test_bulk_revoke_puts_cancel_first_and_the_name_says_its_limit(server, console, floor):
    display = server.svc.store.add_display("Lobby east", floor)
    asked = console.post("/admin/displays/bulk", {"action": "revoke", "ids": [str(display.id)]})
    html = asked.get_data(as_text=True)
    cancel = html.index(">Cancel</a>")
    assert html.index('class="danger">Revoke 1 credential</button>') > cancel
    assert "autofocus>Cancel</a>" in html
    for path in ("/admin/displays/new", f"/admin/displays/{display.id}"):
        html = console.get(path).get_data(as_text=True)
        assert re.search(
            r'<label for="name">Name <span class="hint">\(at most 80 characters\)', html
        )
        assert 'id="name" name="name" maxlength="80"' in html
