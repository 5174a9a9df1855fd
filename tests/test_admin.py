"""The admin console: accounts, sessions, CSRF, attempt limits, displays and their validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signage.core.protocol import CLOSE_RELOAD, CLOSE_UNAUTHORIZED
from signage.store import plans
from tests.admin_helpers import (
    PASSWORD,
    Console,
    admin_rules,
    csrf_from,
    example_url,
    make_admin,
)
from tests.helpers import wait_until

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    b'<rect width="5" height="5"/></svg>'
)


@pytest.fixture
def floor(server):
    """A real floor id of the simulated portfolio."""
    return server.svc.directory.floors()[0].id


def _seed_objects(server, floor_id):
    """A display (id 1) and a plan, so that a 404 cannot hide a missing login check."""
    display = server.svc.store.add_display("Lobby", floor_id)
    plans.store_plan(server.svc.store, server.svc.config, floor_id, SVG, "test")
    return display


# -- nothing without a login -------------------------------------------------------------------
def test_every_admin_route_refuses_an_anonymous_caller(server, floor):
    display = _seed_objects(server, floor)
    client = server.app.test_client()
    rules = admin_rules(server.app)
    assert len(rules) > 20  # the enumeration found the console and the API
    checked = 0
    for rule in rules:
        if rule.endpoint == "admin.login":
            continue
        url = example_url(rule, display.id, floor)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method, data={"name": "x"})
            checked += 1
            if rule.rule.startswith("/api/"):
                assert response.status_code == 401, (method, url)
                assert response.is_json and response.json["error"] == "unauthorized"
            elif method == "GET":
                assert response.status_code == 302, (method, url)
                assert response.headers["Location"].startswith("/admin/login")
            else:  # a form sent from a signed-out tab: to sign-in, back to its page after
                assert response.status_code == 303, (method, url)
                assert response.headers["Location"].startswith("/admin/login")
            body = response.get_data()
            assert SVG not in body and server.svc.store.credential(display).encode() not in body
    assert checked > 30
    # Nothing changed: the display and its plan are still there.
    assert server.svc.store.get_display(display.id) is not None
    assert server.svc.store.get_plan(floor) is not None


def test_bad_bearer_tokens_are_refused(server):
    client = server.app.test_client()
    for header in (
        "Bearer sgn_nope",
        "Bearer ",
        "Basic YWxpY2U6eA==",
        "sgn_x",
        "Bearer " + "a" * 5000,
    ):
        response = client.get("/api/admin/displays", headers={"Authorization": header})
        assert response.status_code == 401


def test_uploaded_plan_is_served_only_to_admins_and_kiosks_of_its_floor(server, floor):
    display = _seed_objects(server, floor)
    other_floor = server.svc.directory.floors()[1].id
    other = server.svc.store.add_display("Elsewhere", other_floor)
    client = server.app.test_client()
    assert client.get(f"/admin/plans/{floor}/file").status_code == 302
    assert client.get(f"/api/admin/floors/{floor}/plan").status_code == 401
    assert client.get("/kiosk/1.deadbeef/plan").status_code == 404
    # A kiosk of another floor cannot read this floor's plan (it has none of its own).
    assert client.get(f"/kiosk/{server.svc.store.credential(other)}/plan").status_code == 404
    ok = client.get(f"/kiosk/{server.svc.store.credential(display)}/plan")
    assert ok.status_code == 200 and b"<rect" in ok.data
    assert ok.headers["Content-Security-Policy"].startswith(
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    assert ok.headers["X-Content-Type-Options"] == "nosniff"
    # A revoked credential loses the plan too.
    server.svc.store.revoke_display(display.id)
    assert client.get(f"/kiosk/{server.svc.store.credential(display)}/plan").status_code == 404


# -- sign-in, cookies, sessions -----------------------------------------------------------------
def test_login_sets_a_hardened_session_cookie_and_logout_ends_it(server):
    make_admin(server.svc)
    c = Console(server.app)
    response = c.login()
    assert response.status_code == 302 and response.headers["Location"] == "/admin/displays"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert c.get("/admin/displays").status_code == 200
    assert c.post("/admin/logout").status_code == 302
    assert c.get("/admin/displays").status_code == 302


def test_session_cookie_is_secure_behind_https(server):
    make_admin(server.svc)
    server.svc.config["SIGNAGE_PUBLIC_URL"] = "https://signage.example"
    response = Console(server.app).login()
    assert "Secure" in response.headers["Set-Cookie"]
    plain = server.svc.config["SIGNAGE_PUBLIC_URL"] = "http://127.0.0.1"
    assert plain
    client = server.app.test_client()
    page = client.get("/admin/login", base_url="https://localhost")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(
        "/admin/login",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
        base_url="https://localhost",
    )
    assert response.status_code == 302 and "Secure" in response.headers["Set-Cookie"]


def test_wrong_password_and_unknown_user_look_the_same(server):
    make_admin(server.svc)
    c = Console(server.app)
    wrong = c.login(password="not the password at all")
    unknown = c.login(username="mallory")
    assert wrong.status_code == unknown.status_code == 401
    assert (
        b"Wrong username or password." in wrong.data
        and b"Wrong username or password." in unknown.data
    )


def test_new_password_signs_out_other_sessions(server, console):
    other = Console(server.app)
    assert other.login().status_code == 302
    new = "another long password"
    response = console.post(
        "/admin/account",
        {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
    )
    assert response.status_code == 302
    assert console.get("/admin/displays").status_code == 200  # this browser stays in
    assert other.get("/admin/displays").status_code == 302  # every other one is out
    assert Console(server.app).login(password=new).status_code == 302


def test_next_parameter_never_redirects_off_the_console(server):
    make_admin(server.svc)
    for target in ("//evil.example/admin", "https://evil.example", "/admin\\@evil", "/kiosk/x"):
        response = Console(server.app).login(next_=target)
        assert response.headers["Location"] == "/admin/displays", target
    response = Console(server.app).login(next_="/admin/fleet")
    assert response.headers["Location"] == "/admin/fleet"


def test_failed_logins_are_limited_per_address(server):
    make_admin(server.svc)
    for i in range(20):
        assert Console(server.app, ip="10.9.9.9").login(username=f"user{i}").status_code == 401
    assert Console(server.app, ip="10.9.9.9").login().status_code == 429
    assert Console(server.app, ip="10.9.9.10").login().status_code == 302


# -- CSRF ----------------------------------------------------------------------------------------
def test_every_form_post_without_the_token_is_refused(server, console, floor):
    display = _seed_objects(server, floor)
    posts = [
        r for r in admin_rules(server.app) if r.rule.startswith("/admin") and "POST" in r.methods
    ]
    assert len(posts) >= 10
    for rule in posts:
        url = example_url(rule, display.id, floor)
        missing = console.post(url, {"name": "x"}, csrf=False)
        wrong = console.post(url, {"name": "x", "csrf_token": "forged"}, csrf=False)
        assert missing.status_code == 403, url
        assert wrong.status_code == 403, url
    assert server.svc.store.get_display(display.id).name == "Lobby"
    assert server.svc.store.get_plan(floor) is not None
    assert console.get("/admin/displays").status_code == 200  # still signed in (logout refused)


def test_login_form_needs_the_token_too(server):
    make_admin(server.svc)
    client = server.app.test_client()
    response = client.post("/admin/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 403


def test_api_calls_with_the_session_need_the_csrf_header(server, console, floor):
    display = _seed_objects(server, floor)
    refused = console.api("PATCH", f"/api/admin/displays/{display.id}", {"name": "x"}, csrf=False)
    assert refused.status_code == 403
    ok = console.api("PATCH", f"/api/admin/displays/{display.id}", {"name": "Hall"})
    assert ok.status_code == 200 and ok.json["name"] == "Hall"


# -- displays ------------------------------------------------------------------------------------
def test_create_and_edit_a_display_through_the_console(server, console, floor):
    page = console.get("/admin/displays/new").get_data(as_text=True)
    assert '<optgroup label="Lindenhof">' in page  # building, then its floors
    created = console.post(
        "/admin/displays/new", {"name": "Lobby east", "floor_id": floor, "density_display_id": ""}
    )
    assert created.status_code == 302
    display = server.svc.store.list_displays()[0]
    assert (display.name, display.floor_id) == ("Lobby east", floor)
    room = server.svc.directory.rooms_of(floor)[0]
    form = {
        "settings_form": "1",
        "name": "Lobby east",
        "floor_id": floor,
        "density_display_id": "dsp_42",
        "orientation": "portrait",
        "rotation": "90",
        "theme": "dark",
        "brand_color": "#C2410C",  # an orange that reads on the dark theme (core/branding.py)
        "logo_url": "/static/logo.svg",
        "language": "de",
        "functions": ["meeting_room", "phone_booth"],
        "min_capacity": "4",
        "hidden_rooms": [room.id],
        "night_start": "22:00",
        "night_end": "06:30",
    }
    saved = console.post(f"/admin/displays/{display.id}", form)
    assert saved.status_code == 302
    settings = server.svc.store.get_display(display.id).settings
    assert settings == {
        "orientation": "portrait",
        "rotation": 90,
        "theme": "dark",
        "brand_color": "#c2410c",
        "logo_url": "/static/logo.svg",
        "language": "de",
        "functions": ["meeting_room", "phone_booth"],
        "min_capacity": 4,
        "hidden_rooms": [room.id],
        "night": {"start": "22:00", "end": "06:30"},
        "qr": False,  # the checkbox was not sent
        # Bookings (docs/bookings.md): the defaults, and the unticked offer box is "off".
        "booking_margin_min": 10,
        "booking_grace_min": 10,
        "offer_booked_empty": False,
        "free_for_min": 0,
    }
    page = console.get(f"/admin/displays/{display.id}").get_data(as_text=True)
    assert 'value="#c2410c"' in page and 'value="22:00"' in page
    assert server.svc.kiosk_url(server.svc.store.get_display(display.id)) in page


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("name", "", "a display needs a name"),
        ("name", "x" * 81, "at most 80 characters"),
        ("floor_id", "spc_nope", "not a floor Density knows"),
        ("density_display_id", "a b", "letters, digits"),
        ("orientation", "sideways", "landscape, portrait"),
        ("rotation", "45", "0, 90, 180 or 270"),
        ("rotation", "ninety", "whole number"),
        ("theme", "neon", "light, dark or contrast"),
        ("brand_color", "red", "#rrggbb"),
        ("brand_color", "#12345g", "#rrggbb"),
        ("logo_url", "javascript:alert(1)", "must start with"),
        ("logo_url", "//evil.example/x.png", "must start with"),
        ("language", "xx", "one of en, de, fr"),
        ("min_capacity", "-1", "between 0 and"),
        ("min_capacity", "lots", "whole number"),
        ("night_start", "25:00", "HH:MM"),
        ("night_end", "", "HH:MM"),
        ("functions", "Meeting Room", "invalid id"),
        ("hidden_rooms", "<script>", "invalid id"),
    ],
)
def test_each_bad_field_gets_a_clear_message_not_a_500(
    server, console, floor, field, value, message
):
    display = server.svc.store.add_display("Lobby", floor)
    form = {
        "settings_form": "1",
        "name": "Lobby",
        "floor_id": floor,
        "rotation": "0",
        "theme": "light",
        "language": "en",
        "night_start": "22:00",
        "night_end": "06:00",
    }
    form[field] = value
    response = console.post(f"/admin/displays/{display.id}", form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert server.svc.store.get_display(display.id).settings == {}  # nothing saved


def test_a_saved_change_reaches_open_kiosks_within_seconds(server, console, floor):
    display, credential = server.add_display(floor)
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
        response = console.post(
            f"/admin/displays/{display.id}",
            {"settings_form": "1", "name": "Renamed", "floor_id": floor, "theme": "dark"},
        )
        assert response.status_code == 302
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == CLOSE_RELOAD
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        snapshot = json.loads(ws.recv(timeout=5))
        assert snapshot["display"]["name"] == "Renamed"
        assert snapshot["display"]["settings"]["theme"] == "dark"


def test_deleting_a_display_closes_its_sockets(server, console, floor):
    display, credential = server.add_display(floor)
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        ws.recv(timeout=5)
        deleted = console.post(f"/admin/displays/{display.id}/delete", {"confirm": "yes"})
        assert deleted.status_code == 302
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert closed.value.rcvd.code == CLOSE_UNAUTHORIZED
    assert server.svc.store.get_display(display.id) is None


def test_display_names_are_inert_in_the_console_and_kiosk_json(server, console, floor):
    evil = '<script>window.__pwned=1</script><img src=x onerror="alert(1)">'
    response = console.post("/admin/displays/new", {"name": evil, "floor_id": floor})
    assert response.status_code == 302
    display = server.svc.store.list_displays()[0]
    for path in ("/admin/displays", f"/admin/displays/{display.id}", "/admin/fleet", "/admin/pair"):
        page = console.get(path).get_data(as_text=True)
        assert "<script>window.__pwned" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page, path
    credential = server.svc.store.credential(display)
    state = server.app.test_client().get(f"/api/kiosk/{credential}/state")
    assert state.mimetype == "application/json"
    assert state.headers["X-Content-Type-Options"] == "nosniff"
    assert state.json["display"]["name"] == evil  # data, shown by the page as text
    kiosk_page = server.app.test_client().get(f"/kiosk/{credential}").get_data(as_text=True)
    assert "<script>window.__pwned" not in kiosk_page


def test_fleet_page_lists_a_connected_display_first_when_it_has_problems(server, console, floor):
    quiet, _ = server.add_display(floor, name="Quiet")
    server.svc.store.mark_first_screen(quiet.id, 0.0)  # it had a screen once: now it is down
    live, credential = server.add_display(floor, name="Live")
    server.add_display(floor, name="Boxed")  # never had a screen: not installed, not down
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        ws.recv(timeout=5)
        ws.send(
            json.dumps(
                {"type": "heartbeat", "uptime_s": 12, "screen": "1920x1080", "version": "9.9"}
            )
        )
        wait_until(
            lambda: any(s.info.get("screen") for s in server.svc.hub.subscribers()),
            message="heartbeat recorded",
        )
        page = console.get("/admin/fleet").get_data(as_text=True)
        assert page.index("Quiet") < page.index("Live")  # problems first
        assert "Down" in page and "1920x1080" in page and "9.9" in page
        assert "Not installed" in page and "problem(s)" not in page
        fleet = console.api("GET", "/api/admin/fleet").json
        assert fleet["displays"][0]["id"] == quiet.id
        assert {d["name"]: d["state"] for d in fleet["displays"]} == {
            "Quiet": "down",
            "Live": "up",
            "Boxed": "not_installed",
        }
        assert fleet["counts"]["down"] == 1 and fleet["counts"]["not_installed"] == 1
        # The filters are links and a form: the query string does it, no script needed.
        down_only = console.get("/admin/fleet?show=down").get_data(as_text=True)
        assert "Quiet" in down_only and "Boxed" not in down_only and "fleet-spaces" not in down_only
        assert all(sp["floor"] for sp in fleet["spaces"])  # sensors say their floor
        by_name = {d["name"]: d for d in fleet["displays"]}
        assert by_name["Live"]["screens"][0]["screen"] == "1920x1080"
        # The floor's own feed, and its building's other floors for the "other floors" panel.
        feeds = {f["floor_id"]: f for f in fleet["feeds"]}
        assert floor in feeds and len(feeds) == len(server.svc.feeds.feeds())
        assert feeds[floor]["mode"] in ("live", "polling", "stale")
        assert fleet["spaces"], "the floor's spaces are listed"
        # Identify and reload reach the open screen.
        for action in ("identify", "reload"):
            assert console.post(f"/admin/displays/{live.id}/{action}").status_code == 302
            wait_until(lambda a=action: json.loads(ws.recv(timeout=5))["type"] == a, message=action)


# -- the command line ----------------------------------------------------------------------------
def _cli(tmp_path, *args, stdin: str = ""):
    env = {
        **os.environ,
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": str(tmp_path / "cli.sqlite3"),
        "SIGNAGE_SECRET_KEY": "cli-test",
    }
    return subprocess.run(
        [sys.executable, "-m", "signage", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_creates_admins_first_is_owner_and_tokens(tmp_path):
    first = _cli(tmp_path, "admin", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert first.returncode == 0, first.stderr
    assert "owner" in first.stdout and PASSWORD not in first.stdout + first.stderr
    second = _cli(tmp_path, "admin", "create", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    assert "(admin)" in second.stdout
    short = _cli(tmp_path, "admin", "create", "carol", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 10 characters" in short.stderr
    dup = _cli(tmp_path, "admin", "create", "ALICE", "--password-stdin", stdin=PASSWORD + "\n")
    assert dup.returncode != 0 and "exists already" in dup.stderr
    token = _cli(tmp_path, "admin", "token", "create", "ci")
    assert token.returncode == 0 and token.stdout.strip().startswith("sgn_")
    listed = _cli(tmp_path, "admin", "token", "list")
    assert "ci" in listed.stdout and token.stdout.strip() not in listed.stdout
    # Only the hash is stored.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("cli.sqlite3*"))
    assert token.stdout.strip().encode() not in raw and PASSWORD.encode() not in raw
