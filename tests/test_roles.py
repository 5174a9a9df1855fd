"""Roles for people: owner, admin and viewer. A viewer (an account or a read-only API token)
reads every page and changes nothing: every state-changing route of the app, enumerated from
its URL map so that a new one cannot be forgotten, is refused with a clear message."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from typing import Any

import pytest
from werkzeug.routing import Rule

from signage.store import StoreError
from signage.web import auth
from tests import pg_server as pgs
from tests.admin_helpers import PASSWORD, Console, make_admin

pg_server, pg_url, any_store = pgs.pg_server, pgs.pg_url, pgs.any_store

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
GUARDED_PREFIXES = ("/admin", "/api/admin")
# Unsafe routes outside the console and the admin API, each with why a viewer is no concern:
# they take a kiosk's or phone's own credential, not an account, and change nothing stored.
NOT_ADMIN_ROUTES = {
    "kiosk.kiosk_hyphens": "computes break points for the names a kiosk shows",
    "kiosk.phone_hyphens": "the same for the phone view",
}


def token_headers(svc: Any, role: str) -> dict[str, str]:
    token = auth.new_api_token()
    svc.store.add_api_token(f"{role}-token", auth.token_hash(token), role)
    return {"Authorization": f"Bearer {token}"}


def database_rows(path: str) -> dict[str, list[tuple]]:
    """Every row of every table: what "nothing changed" is checked against."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}")), key=repr) for t in tables}
    finally:
        conn.close()


def concrete_url(rule: Rule, values: dict[str, Any]) -> str:
    """The rule with ids of objects that exist (any other argument: 'x', or its first choice)."""
    path = rule.rule
    for arg in rule.arguments:
        converter = rule._converters[arg]
        if type(converter).__name__ == "AnyConverter":
            value = sorted(converter.items)[0]  # type: ignore[attr-defined]
        else:
            value = values.get(arg, "x")
        path = re.sub(rf"<(?:[^:<>]+:)?{arg}(?:\([^)]*\))?>", str(value), path)
    return path


def unsafe_routes(app: Any) -> list[tuple[Rule, str]]:
    return sorted(
        ((r, m) for r in app.url_map.iter_rules() for m in sorted((r.methods or set()) & UNSAFE)),
        key=lambda pair: (pair[0].rule, pair[1]),
    )


@pytest.fixture
def world(server):
    """An owner, an admin, a viewer and one of everything a route could change."""
    svc = server.svc
    make_admin(svc, "olive", "owner")
    bob = make_admin(svc, "bob", "admin")
    vera = make_admin(svc, "vera", "viewer")
    floor = svc.directory.floors()[0]
    room = svc.directory.rooms_of(floor.id)[0]
    display = svc.store.add_display("Lobby", floor.id)
    owner = Console(server.app)
    assert owner.login("olive").status_code == 302
    admin_headers = token_headers(svc, "admin")
    client = server.app.test_client()
    now = time.time()
    announcement = svc.store.add_announcement(
        scope="all",
        target=None,
        kind="message",
        title="Drill",
        body="",
        starts_at=now,
        ends_at=now + 3600,
    )
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
        b'<rect width="5" height="5"/></svg>'
    )
    assert (
        client.put(
            f"/api/admin/floors/{floor.id}/plan",
            data=svg,
            headers={**admin_headers, "Content-Type": "image/svg+xml"},
        ).status_code
        == 200
    )
    link = {"url": "https://calendar.example.com/a.ics"}
    assert (
        client.put(
            f"/api/admin/rooms/{room.id}/calendar", json=link, headers=admin_headers
        ).status_code
        == 200
    )
    building = svc.directory.tree().building_of(floor.id)
    values = {
        "display_id": display.id,
        "announcement_id": announcement.id,
        "admin_id": bob.id,
        "floor_id": floor.id,
        "building_id": building.id if building else "x",
        "space_id": room.id,
        "version": 1,
    }
    return {
        "svc": svc,
        "server": server,
        "values": values,
        "vera": vera,
        "display": display,
        "owner": owner,
    }


def test_every_state_changing_route_refuses_a_viewer_and_changes_nothing(world) -> None:
    server, svc, values = world["server"], world["svc"], world["values"]
    app = server.app
    viewer = Console(app)
    assert viewer.login("vera").status_code == 302
    viewer_token = token_headers(svc, "viewer")
    routes = unsafe_routes(app)
    outside = {r.endpoint for r, _ in routes if not r.rule.startswith(GUARDED_PREFIXES)}
    assert outside == set(NOT_ADMIN_ROUTES), (
        "a state-changing route outside /admin and /api/admin: guard it, or say here why a"
        f" viewer is no concern: {sorted(outside - set(NOT_ADMIN_ROUTES))}"
    )
    before = database_rows(svc.config["SIGNAGE_DATABASE"])
    walked = 0
    for rule, method in routes:
        if not rule.rule.startswith(GUARDED_PREFIXES):
            continue
        url = concrete_url(rule, values)
        if rule.endpoint in auth.SELF_SERVICE_ENDPOINTS:
            continue  # signing in and out, one's own password: below
        as_session = viewer.api(method, url, json={}, data=None)
        as_token = app.test_client().open(url, method=method, json={}, headers=viewer_token)
        where = f"{method} {url}"
        assert as_session.status_code == 403, (where, as_session.status_code)
        assert "read-only access" in as_session.get_data(as_text=True), where
        if rule.rule.startswith("/api/admin"):
            assert as_token.status_code == 403, (where, as_token.status_code)
            assert "read-only access" in as_token.json["message"], where
        else:
            assert as_token.status_code == 401, where  # tokens never open the console
        walked += 1
    assert walked >= 30, walked  # every console form and API change, not a handful
    assert database_rows(svc.config["SIGNAGE_DATABASE"]) == before

    # The same requests are not refused for an admin: the walk's refusals are the viewer's.
    admin = Console(app)
    assert admin.login("bob").status_code == 302
    url = f"/admin/displays/{values['display_id']}/reload"
    assert admin.post(url).status_code == 302
    assert viewer.post(url).status_code == 403
    answer = app.test_client().post(
        f"/api/admin/displays/{values['display_id']}/identify", headers=token_headers(svc, "admin")
    )
    assert answer.status_code == 200

    # What a viewer may do: change their own password, and sign out.
    new = "viewer's own new password"
    changed = viewer.post(
        "/admin/account",
        {"current_password": PASSWORD, "new_password": new, "confirm_password": new},
    )
    assert changed.status_code == 302
    viewer.refresh_token()
    assert viewer.post("/admin/logout").status_code == 302
    assert viewer.get("/admin/displays").status_code == 302  # signed out


def test_a_viewer_reads_every_page_and_api_get(world) -> None:
    server, values = world["server"], world["values"]
    app = server.app
    viewer = Console(app)
    assert viewer.login("vera").status_code == 302
    viewer_token = token_headers(world["svc"], "viewer")
    owner_only = {"admin.admins", "api_admin.admins_list"}
    read = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()) or not rule.rule.startswith(GUARDED_PREFIXES):
            continue
        if rule.endpoint in {"admin.login", "admin.display_preview"}:
            continue
        url = concrete_url(rule, values)
        answer = viewer.get(url)
        expected = {403} if rule.endpoint in owner_only else {200, 302, 404, 503}
        if rule.endpoint == "admin.home":
            expected = {302}
        assert answer.status_code in expected, (url, answer.status_code)
        assert answer.status_code != 403 or rule.endpoint in owner_only, url
        if rule.rule.startswith("/api/admin"):
            by_token = app.test_client().get(url, headers=viewer_token)
            assert by_token.status_code == answer.status_code, url
        read += 1
    assert read >= 20
    page = viewer.get(f"/admin/displays/{values['display_id']}").get_data(as_text=True)
    assert 'class="read-only"' in page and "You have read-only access" in page
    assert "/kiosk/" + str(values["display_id"]) + "." not in page  # no credential for a viewer
    me = viewer.api("GET", "/api/admin/me").json
    assert me["role"] == "viewer" and me["kind"] == "session"


def test_owners_change_roles_never_the_last_owner_and_it_holds_at_once(world) -> None:
    svc, owner = world["svc"], world["owner"]
    bob = svc.store.admin_by_username("bob")
    bob_console = Console(world["server"].app)
    assert bob_console.login("bob").status_code == 302
    url = f"/admin/displays/{world['values']['display_id']}/reload"
    assert bob_console.post(url).status_code == 302
    page = owner.get("/admin/admins").get_data(as_text=True)
    assert "vera" in page and 'option value="viewer"' in page and "(you)" in page
    assert owner.post(f"/admin/admins/{bob.id}/role", {"role": "viewer"}).status_code == 302
    assert svc.store.get_admin(bob.id).role == "viewer"
    refused = bob_console.post(url)  # the same session, its next click
    assert refused.status_code == 403 and "read-only access" in refused.get_data(as_text=True)
    # Bob cannot give himself his role back, nor may an admin manage accounts.
    assert bob_console.post(f"/admin/admins/{bob.id}/role", {"role": "owner"}).status_code == 403
    olive = svc.store.admin_by_username("olive")
    answer = owner.post(f"/admin/admins/{olive.id}/role", {"role": "admin"}, follow_redirects=True)
    assert "the last owner cannot stop being an owner" in answer.get_data(as_text=True)
    assert svc.store.get_admin(olive.id).role == "owner"
    bad = owner.post(f"/admin/admins/{bob.id}/role", {"role": "god"}, follow_redirects=True)
    assert "Role: choose owner, admin or viewer." in bad.get_data(as_text=True)
    # A new viewer from the form; a bad role is named.
    form = {"username": "sam", "password": PASSWORD, "role": "nobody"}
    answer = owner.post("/admin/admins", form)
    assert answer.status_code == 400 and "owner, admin or viewer" in answer.get_data(as_text=True)
    assert owner.post("/admin/admins", {**form, "role": "viewer"}).status_code == 302
    assert svc.store.admin_by_username("sam").role == "viewer"


def test_the_store_keeps_viewers_and_its_last_owner(any_store) -> None:
    store = any_store
    owner = store.add_admin("o", "h1")
    viewer = store.add_admin("v", "h2", "viewer")
    assert (owner.role, viewer.role) == ("owner", "viewer")
    with pytest.raises(StoreError):
        store.add_admin("x", "h3", "root")
    with pytest.raises(StoreError, match="last owner"):
        store.set_admin_role(owner.id, "viewer")
    assert store.set_admin_role(viewer.id, "owner") == "viewer"
    assert store.set_admin_role(owner.id, "viewer") == "owner"
    assert store.set_admin_role(9999, "admin") is None
    assert [a.role for a in store.list_admins()] == ["viewer", "owner"]


def test_the_migration_keeps_accounts_and_never_reissues_a_removed_id(tmp_path) -> None:
    from signage.store import MIGRATIONS, Store

    path = str(tmp_path / "old.sqlite3")
    store = Store(path, "k")
    # The schema as it was before viewers: every migration up to the one that allows them.
    viewer_migration = next(
        i for i, m in enumerate(MIGRATIONS) if isinstance(m, dict) and "'viewer'" in m["sqlite"]
    )
    store._db.migrate(MIGRATIONS[:viewer_migration])
    first = store.add_admin("first", "h")
    gone = store.add_admin("gone", "h")
    store.remove_admin(gone.id)
    with pytest.raises(StoreError):  # the old CHECK knew owner and admin only
        store.add_admin("early", "h", "viewer")
    store.migrate()
    assert [(a.username, a.role, a.secret) for a in store.list_admins()] == [
        ("first", "owner", first.secret)
    ]
    later = store.add_admin("later", "h", "viewer")
    assert later.id > gone.id  # a removed account's id (and so its old cookies) never returns
    store.close()


def test_the_cli_creates_a_viewer_and_changes_roles(tmp_path) -> None:
    env = {
        **os.environ,
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3"),
        "SIGNAGE_SECRET_KEY": "cli-test",
        "DENSITY_API_TOKEN": "",
    }

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "signage", "admin", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert run("create", "olive", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    made = run("create", "vera", "--role", "viewer", "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "admin vera created (viewer)" in made.stdout
    assert run("role", "vera", "admin").stdout.strip() == "vera is now admin"
    last = run("role", "olive", "viewer")
    assert last.returncode != 0 and "last owner" in last.stderr
    listing = run("list").stdout
    assert re.search(r"olive\s+owner", listing) and re.search(r"vera\s+admin", listing)


def test_the_console_hides_what_a_viewer_cannot_use(world, browser, contexts) -> None:
    server, values = world["server"], world["values"]
    ctx = contexts(width=1280, height=900)
    page = ctx.new_page()
    page.goto(f"{server.url}/admin/login")
    page.fill("#username", "vera")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/displays")
    page.goto(f"{server.url}/admin/displays/{values['display_id']}")
    assert page.get_by_text("You have read-only access").is_visible()
    assert page.locator(".who .role").inner_text() == "viewer"
    for label in ("Save", "Identify", "Reload"):
        buttons = page.get_by_role("button", name=label, include_hidden=True)
        assert buttons.count() >= 1 and not any(
            buttons.nth(i).is_visible() for i in range(buttons.count())
        ), label
    assert page.get_by_role("button", name="Sign out").is_visible()
    page.goto(f"{server.url}/admin/account")
    assert page.get_by_role("button", name=re.compile("Change password", re.I)).is_visible()
    if os.environ.get("SIGNAGE_SCREENSHOTS"):
        page.goto(f"{server.url}/admin/displays/{values['display_id']}")
        page.screenshot(path=os.environ["SIGNAGE_SCREENSHOTS"], full_page=True)
