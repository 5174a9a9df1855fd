"""The audit trail: each kind of change leaves exactly one entry (who, what, before and after,
never a secret), written with the change's own transaction on both store backends; old entries
are pruned in the background; the console page and `GET /api/admin/audit` filter it."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from websockets.sync.client import connect

from signage.actions import accounts, audit, pairing
from signage.actions.audit import AuditPruner
from signage.core.layout import empty_layout
from signage.store import Store, StoreError
from signage.store.audit import AuditFilter
from signage.web import auth
from tests import pg_server as pgs
from tests.admin_helpers import PASSWORD, Console, make_admin
from tests.helpers import wait_until

pg_server, pg_url, any_store = pgs.pg_server, pgs.pg_url, pgs.any_store

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="300" viewBox="0 0 400 300">'
    b'<rect x="10" y="10" width="380" height="280" fill="#eee"/></svg>'
)
CALENDAR_LINK = "https://calendar.example.com/private/secret-feed-7f3a.ics"


def token_headers(svc: Any, role: str = "admin", name: str = "robot") -> tuple[dict, str]:
    """An API token's headers, and the token (to show it never reaches the trail)."""
    token = auth.new_api_token()
    svc.store.add_api_token(name, auth.token_hash(token), role)
    return {"Authorization": f"Bearer {token}"}, token


def entries(svc: Any, **where: Any) -> list:
    return svc.store.audit_entries(AuditFilter(**where), limit=1000)


class Trail:
    """Counts the entries a step adds: exactly one, returned for its fields to be checked."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.seen = svc.store.count_audit()

    def one(self, action: str):
        total = self.svc.store.count_audit()
        added = self.svc.store.audit_entries(limit=max(total - self.seen, 1))
        assert total - self.seen == 1, [(e.action, e.target_id) for e in added]
        self.seen = total
        (entry,) = added
        assert entry.action == action, entry
        return entry

    def none(self) -> None:
        assert self.svc.store.count_audit() == self.seen


# -- the store: one transaction for the change and its entry, both backends --------------------
def _pending(action: str = "display.update", **kw: Any) -> audit.PendingAudit:
    return audit.PendingAudit("account", "alice", action, "display", **kw)


def test_an_entry_commits_with_its_change_and_a_failed_change_leaves_none(any_store) -> None:
    store: Store = any_store
    display = store.add_display("Lobby", "spc_1")
    with store.audited(
        _pending(target_id=str(display.id), before={"name": "Lobby"}, after={"name": "Hall"})
    ):
        store.update_display(display.id, "Hall", "spc_1", None, {})
    (entry,) = store.audit_entries()
    assert (entry.actor, entry.action, entry.target_id) == ("alice", "display.update", "1")
    assert entry.before == {"name": "Lobby"} and entry.after == {"name": "Hall"}

    # The change fails inside its transaction: neither it nor an entry is kept.
    with pytest.raises(StoreError), store.audited(_pending()):
        store.update_display(999, "Nowhere", "spc_1", None, {})
    assert store.count_audit() == 1

    # The entry cannot be written (a crash at that point): the change is rolled back with it.
    def broken(conn: Any, entry: Any) -> None:
        raise RuntimeError("disk gone")

    store._write_audit = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError), store.audited(_pending()):
        store.update_display(display.id, "Lost", "spc_1", None, {})
    del store._write_audit
    assert store.get_display(display.id).name == "Hall"
    assert store.count_audit() == 1

    # The change committed, then the caller failed (closing sockets, say): the entry stays.
    with pytest.raises(RuntimeError), store.audited(_pending()):
        store.update_display(display.id, "Kept", "spc_1", None, {})
        raise RuntimeError("after the commit")
    assert store.get_display(display.id).name == "Kept"
    assert store.count_audit() == 2


def test_a_creation_names_its_new_row_and_a_no_op_records_nothing(any_store) -> None:
    store: Store = any_store
    store.add_display("First", "spc_1")
    with store.audited(_pending("display.create", id_from_insert=True)):
        created = store.add_display("Second", "spc_1")
    assert store.audit_entries()[0].target_id == str(created.id)
    # Removing what is gone already changes no row: nothing to record.
    with store.audited(_pending("display.remove", target_id="999")):
        assert store.remove_display(999) is False
    # A change outside the database (no transaction at all) is recorded after it.
    with store.audited(_pending("display.reload", target_id="1")):
        pass
    assert [e.action for e in store.audit_entries()] == ["display.reload", "display.create"]


def test_a_lock_or_the_same_role_records_nothing_and_a_change_one_entry(any_store) -> None:
    """A transaction that only locked rows changed nothing. On PostgreSQL SELECT ... FOR UPDATE
    gives a transaction an id as a write does, so the trail must count changed rows instead."""
    store: Store = any_store
    display = store.add_display("Lobby", "spc_1")
    owner = store.add_admin("alice", "hash")
    colleague = store.add_admin("bob", "hash", "admin")
    assert (owner.role, colleague.role) == ("owner", "admin")
    # A well-formed code no screen shows: the display is locked, the UPDATE matches nothing.
    with pytest.raises(pairing.PairingRefused):
        pairing.claim_code(store, pairing.ALPHABET[: pairing.CODE_LENGTH], display.id)
    # The role each already has: the owners are locked, no row written.
    assert accounts.set_role(store, colleague, "admin") is False
    assert accounts.set_role(store, owner, "owner") is False
    assert store.count_audit() == 0

    # The real changes: exactly one entry each.
    code = pairing.ALPHABET[-pairing.CODE_LENGTH :]
    assert store.add_pairing_code(code, "secret-hash", time.time(), 600.0, None) is not None
    assert pairing.claim_code(store, code, display.id).id == display.id
    assert accounts.set_role(store, colleague, "viewer") is True
    changes = [(e.action, e.target_id, e.before, e.after) for e in store.audit_entries()]
    assert changes == [
        ("account.role", str(colleague.id), {"role": "admin"}, {"role": "viewer"}),
        ("display.pair", str(display.id), None, None),
    ]


def test_filters_pruning_and_no_secret_keys(any_store) -> None:
    store: Store = any_store
    for i, (actor, kind) in enumerate([("alice", "display"), ("bob", "plan"), ("alice", "plan")]):
        entry = audit.PendingAudit(
            "account",
            actor,
            f"{kind}.x",
            kind,
            str(i),
            f"Name {i}_%",
            after={
                "password": "p",
                "token_hash": "h",
                "theme": "dark",
                "nested": {"secret": "s", "ok": 1},
            },
        )
        with store.audited(entry):
            pass
    assert store.count_audit(AuditFilter(actor="alice")) == 2
    assert store.count_audit(AuditFilter(actor="alice", target_kind="plan")) == 1
    assert store.count_audit(AuditFilter(target="name 1")) == 1  # part of a name, any case
    assert store.count_audit(AuditFilter(target="_%")) == 3  # LIKE's wildcards taken literally
    assert store.count_audit(AuditFilter(target="2")) == 1  # an id
    assert store.count_audit(AuditFilter(action="plan.")) == 2
    assert [e.target_id for e in store.audit_entries(limit=2, offset=1)] == ["1", "0"]
    assert store.audit_entries()[0].after == {"theme": "dark", "nested": {"ok": 1}}
    now = time.time()
    assert store.count_audit(AuditFilter(since=now - 60, until=now + 60)) == 3
    assert store.count_audit(AuditFilter(until=now - 60)) == 0
    assert store.prune_audit(now - 60) == 0
    assert store.prune_audit(now + 60) == 3
    assert store.count_audit() == 0


def test_the_pruner_forgets_old_entries_in_its_own_thread(any_store) -> None:
    store: Store = any_store
    with store.audited(_pending()):
        pass
    with store.transaction() as conn:
        conn.execute("UPDATE audit_log SET at = ?", (time.time() - 3 * 86_400,))
    with store.audited(_pending("display.fresh")):
        pass
    pruner = AuditPruner(store, days=2, interval=3600)
    pruner.ensure_started()
    try:
        wait_until(lambda: pruner.runs >= 1, timeout=10)
    finally:
        pruner.stop()
    assert [e.action for e in store.audit_entries()] == ["display.fresh"]
    assert pruner.pruned == 1
    kept = AuditPruner(store, days=0)  # 0: kept for ever, no thread
    kept.ensure_started()
    assert kept._thread is None


# -- every kind of change, through the real server ------------------------------------------------
def test_each_kind_of_change_leaves_exactly_one_entry_and_no_secret(server, tmp_path) -> None:
    svc = server.svc
    make_admin(svc, "alice", "owner")
    console = Console(server.app)
    assert console.login().status_code == 302
    headers, token = token_headers(svc)
    client = server.app.test_client()
    trail = Trail(svc)
    floor = svc.directory.floors()[0]

    # Displays: created (console form), renamed (API), revoked, phone link, removed.
    assert (
        console.post(
            "/admin/displays/new", {"name": "Lobby", "floor_id": floor.id, "theme": "dark"}
        ).status_code
        == 302
    )
    entry = trail.one("display.create")
    display = svc.store.list_displays()[-1]
    assert (entry.actor_kind, entry.actor) == ("account", "alice")
    assert (entry.target_kind, entry.target_id, entry.target_name) == (
        "display",
        str(display.id),
        "Lobby",
    )
    assert entry.before is None and entry.after["theme"] == "dark"
    answer = client.patch(
        f"/api/admin/displays/{display.id}",
        json={"name": "Main lobby", "theme": "contrast"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.json
    entry = trail.one("display.update")
    assert (entry.actor_kind, entry.actor) == ("token", "robot")
    assert entry.before == {"name": "Lobby", "theme": "dark"}
    assert entry.after == {"name": "Main lobby", "theme": "contrast"}
    # Saved again without a change (a form sent back as it was): nothing to record.
    path = f"/api/admin/displays/{display.id}"
    assert client.patch(path, json={"name": "Main lobby"}, headers=headers).status_code == 200
    trail.none()
    credential = svc.store.credential(svc.store.get_display(display.id))
    assert (
        client.post(f"/api/admin/displays/{display.id}/revoke", headers=headers).status_code == 200
    )
    trail.one("display.revoke")
    path = f"/api/admin/displays/{display.id}/revoke-phone"
    assert client.post(path, headers=headers).status_code == 200
    trail.one("display.revoke_phone")

    # Pairing: a screen's code claimed for the display.
    code = "ABCDEFGH"
    assert svc.store.add_pairing_code(code, "x" * 40, time.time(), 600, "127.0.0.1")
    answer = client.post(
        "/api/admin/pair", json={"code": code, "display_id": display.id}, headers=headers
    )
    assert answer.status_code == 200, answer.json
    entry = trail.one("display.pair")
    assert entry.target_id == str(display.id) and code not in json.dumps(entry.public())
    # A wrong code pairs nothing and records nothing.
    assert (
        client.post(
            "/api/admin/pair", json={"code": "ZZZZZZZZ", "display_id": display.id}, headers=headers
        ).status_code
        == 400
    )
    trail.none()

    # Plans: uploaded, then removed.
    answer = client.put(
        f"/api/admin/floors/{floor.id}/plan",
        data=SVG,
        headers={**headers, "Content-Type": "image/svg+xml"},
    )
    assert answer.status_code == 200, answer.json
    entry = trail.one("plan.replace")
    assert entry.before is None and entry.after["sha256"] == answer.json["sha256"]
    assert entry.after["content_type"] == "image/svg+xml"

    # Layouts: published through the API (its version read in the same transaction).
    room = svc.directory.rooms_of(floor.id)[0]
    layout = empty_layout(400, 300)
    layout["rooms"] = {room.id: {"outline": [[0, 0], [100, 0], [100, 100], [0, 100]], "door": None}}
    answer = client.put(
        f"/api/admin/floors/{floor.id}/layout",
        json={"version": 0, "layout": layout},
        headers=headers,
    )
    assert answer.status_code == 200, answer.json
    entry = trail.one("layout.publish")
    assert entry.before is None and entry.after["version"] == answer.json["version"]
    assert entry.after["rooms"] == 1

    # "You are here" on the layout.
    answer = client.put(
        f"/api/admin/displays/{display.id}/here", json={"here": [50, 50]}, headers=headers
    )
    assert answer.status_code == 200, answer.json
    entry = trail.one("display.place")
    assert entry.before == {"here": None} and entry.after == {"here": [50, 50]}
    assert client.delete(f"/api/admin/floors/{floor.id}/plan", headers=headers).status_code == 204
    entry = trail.one("plan.remove")
    assert entry.before["content_type"] == "image/svg+xml" and entry.after is None

    # Announcements: created and cancelled.
    now = datetime.now(UTC)
    answer = client.post(
        "/api/admin/announcements",
        json={
            "scope": "all",
            "kind": "message",
            "title": "Fire drill",
            "body": "At 3",
            "starts_at": now.isoformat(),
            "ends_at": datetime.fromtimestamp(now.timestamp() + 600, UTC).isoformat(),
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.json
    entry = trail.one("announcement.create")
    assert entry.target_id == str(answer.json["id"]) and entry.after["title"] == "Fire drill"
    path = f"/api/admin/announcements/{answer.json['id']}/cancel"
    assert client.post(path, headers=headers).status_code == 200
    assert trail.one("announcement.cancel").after == {"cancelled": True}
    assert client.post(path, headers=headers).status_code == 200  # cancelled already
    trail.none()

    # Floor order.
    building = client.get("/api/admin/buildings", headers=headers).json["buildings"][0]
    order = [f["id"] for f in building["floors"]][::-1]
    answer = client.put(
        f"/api/admin/buildings/{building['id']}/floor-order",
        json={"floor_ids": order},
        headers=headers,
    )
    assert answer.status_code == 200, answer.json
    entry = trail.one("floor_order.set")
    assert entry.after == {"floor_ids": order, "custom": True}

    # Calendar links: set and removed; the link itself is never recorded.
    path = f"/api/admin/rooms/{room.id}/calendar"
    assert client.put(path, json={"url": CALENDAR_LINK}, headers=headers).status_code == 200
    entry = trail.one("calendar.set")
    assert (entry.target_kind, entry.target_name) == ("room", room.name)
    assert entry.after == {"calendar": "set"}
    assert client.delete(path, headers=headers).status_code == 204
    trail.one("calendar.remove")
    assert client.delete(path, headers=headers).status_code == 404
    trail.none()

    # Display names of a room.
    answer = client.put(
        f"/api/admin/spaces/{room.id}/names",
        json={"default": "Fishbowl", "de": "Aquarium"},
        headers=headers,
    )
    assert answer.status_code == 200, answer.json
    entry = trail.one("names.set")
    assert entry.before == {"default": None, "de": None}
    assert entry.after == {"default": "Fishbowl", "de": "Aquarium"}

    # Accounts: added, role changed, password changed, removed (console, as the owner).
    assert (
        console.post(
            "/admin/admins", {"username": "vera", "password": PASSWORD, "role": "viewer"}
        ).status_code
        == 302
    )
    entry = trail.one("account.create")
    vera = svc.store.admin_by_username("vera")
    assert entry.target_id == str(vera.id) and entry.after == {"role": "viewer"}
    assert console.post(f"/admin/admins/{vera.id}/role", {"role": "admin"}).status_code == 302
    entry = trail.one("account.role")
    assert entry.before == {"role": "viewer"} and entry.after == {"role": "admin"}
    new_password = "a much longer new password"
    assert (
        console.post(
            "/admin/account",
            {
                "current_password": PASSWORD,
                "new_password": new_password,
                "confirm_password": new_password,
            },
        ).status_code
        == 302
    )
    entry = trail.one("account.password")
    assert entry.target_name == "alice"
    console.refresh_token()
    assert console.post(f"/admin/admins/{vera.id}/delete", {"confirm": "yes"}).status_code == 302
    assert trail.one("account.remove").before == {"role": "admin"}

    # Display removed last (the API).
    assert client.delete(f"/api/admin/displays/{display.id}", headers=headers).status_code == 204
    entry = trail.one("display.remove")
    assert entry.before["name"] == "Main lobby"

    # Tokens: the command line, as the operating-system user.
    env = {
        **os.environ,
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": svc.config["SIGNAGE_DATABASE"],
        "SIGNAGE_SECRET_KEY": "test-secret-key",
        "DENSITY_API_URL": svc.config["DENSITY_API_URL"],
    }
    made = subprocess.run(
        [sys.executable, "-m", "signage", "admin", "token", "create", "deploy", "--read-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    cli_token = made.stdout.strip()
    entry = trail.one("token.create")
    assert (entry.actor_kind, entry.actor) == ("cli", getpass.getuser())
    assert entry.target_name == "deploy" and entry.after == {"role": "viewer"}
    gone = subprocess.run(
        [sys.executable, "-m", "signage", "admin", "token", "revoke", entry.target_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gone.returncode == 0, gone.stderr
    assert trail.one("token.revoke").target_name == "deploy"

    # No secret anywhere in the trail, as stored or as the API answers it.
    everything = json.dumps([e.public() for e in entries(svc)])
    answered = client.get("/api/admin/audit?limit=500", headers=headers).get_data(as_text=True)
    hashes = [a.password_hash for a in svc.store.list_admins()]
    for secret in (
        PASSWORD,
        new_password,
        token,
        cli_token,
        auth.token_hash(token),
        CALENDAR_LINK,
        credential,
        svc.config["SIGNAGE_SECRET_KEY"],
        *hashes,
    ):
        assert secret not in everything and secret not in answered
    kinds = {e.target_kind for e in entries(svc)}
    assert kinds == {
        "session",  # the console's sign-in
        "display",
        "plan",
        "layout",
        "announcement",
        "building",
        "room",
        "name",
        "account",
        "token",
    }


# -- reading it: the console page and the API ---------------------------------------------------
def _seed(svc: Any) -> None:
    """Entries of two people over three days."""
    day = 86_400
    now = time.time()
    rows = [
        (now - 2 * day, "alice", "display", "1", "Entrance hall"),
        (now - day, "bob", "plan", "spc_2", "2nd floor"),
        (now, "alice", "announcement", "7", "Fire drill"),
    ]
    with svc.store.transaction() as conn:
        for at, actor, kind, target_id, name in rows:
            conn.execute(
                "INSERT INTO audit_log (at, actor_kind, actor, action, target_kind, target_id,"
                " target_name, before_json, after_json) VALUES (?, 'account', ?, ?, ?, ?, ?,"
                " ?, ?)",
                (
                    at,
                    actor,
                    f"{kind}.update",
                    kind,
                    target_id,
                    name,
                    '{"theme": "light"}',
                    '{"theme": "dark"}',
                ),
            )


def test_the_page_filters_pages_and_says_its_zone(server) -> None:
    svc = server.svc
    make_admin(svc, "alice", "owner")
    console = Console(server.app)
    assert console.login().status_code == 302
    svc.store.prune_audit(time.time() + 1)  # the sign-in's own entry: the seed's three alone
    _seed(svc)
    page = console.get("/admin/audit").get_data(as_text=True)
    assert "3 changes" in page and "Fire drill" in page and "theme: light → dark" in page
    zone = svc.directory.time_zone(svc.directory.floors()[0].id) or "UTC"
    assert f"Times are {zone}" in page
    page = console.get("/admin/audit?who=bob").get_data(as_text=True)
    assert "1 change<" in page and "2nd floor" in page and "Fire drill" not in page
    page = console.get("/admin/audit?kind=announcement&target=fire").get_data(as_text=True)
    assert "1 change<" in page and "Fire drill" in page
    today = datetime.now(ZoneInfo(zone)).date()
    yesterday = datetime.fromtimestamp(time.time() - 86_400, ZoneInfo(zone)).date()
    page = console.get(f"/admin/audit?from={yesterday}&to={today}").get_data(as_text=True)
    assert "Entrance hall" not in page and "Fire drill" in page  # two days ago is outside
    page = console.get(f"/admin/audit?to={yesterday}").get_data(as_text=True)
    assert "Entrance hall" in page and "Fire drill" not in page
    bad = console.get("/admin/audit?from=yesterday&kind=nonsense")
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "a date as YYYY-MM-DD" in text and "one of display" in text
    # 120 entries: three pages of 50, newest first, the filters kept in the links.
    with svc.store.transaction() as conn:
        for i in range(117):
            conn.execute(
                "INSERT INTO audit_log (at, actor_kind, actor, action, target_kind, target_id)"
                " VALUES (?, 'cli', 'ops', 'display.update', 'display', ?)",
                (time.time() - 3 * 86_400 - i, str(i)),
            )
    page = console.get("/admin/audit?who=ops").get_data(as_text=True)
    assert "page 1 of 3" in page and "?who=ops&amp;page=2" in page
    page = console.get("/admin/audit?who=ops&page=3").get_data(as_text=True)
    assert page.count("<tr>") == 1 + 17  # the head and the last 17


def test_the_api_filters_and_refuses_bad_filters_by_name(server) -> None:
    svc = server.svc
    headers, _ = token_headers(svc, role="viewer")  # reading it is a viewer's right too
    client = server.app.test_client()
    _seed(svc)
    answer = client.get("/api/admin/audit", headers=headers)
    assert answer.status_code == 200
    assert answer.json["total"] == 3
    first = answer.json["entries"][0]
    assert first["target_name"] == "Fire drill" and first["at"].endswith("Z")
    assert first["before"] == {"theme": "light"} and first["after"] == {"theme": "dark"}
    answer = client.get("/api/admin/audit?who=alice&kind=display", headers=headers)
    assert [e["target_name"] for e in answer.json["entries"]] == ["Entrance hall"]
    since = datetime.fromtimestamp(time.time() - 1.5 * 86_400, UTC).isoformat()
    answer = client.get("/api/admin/audit", query_string={"since": since}, headers=headers)
    assert [e["actor"] for e in answer.json["entries"]] == ["alice", "bob"]
    answer = client.get(f"/api/admin/audit?until={time.time() - 1.5 * 86_400}", headers=headers)
    assert [e["target_name"] for e in answer.json["entries"]] == ["Entrance hall"]
    answer = client.get("/api/admin/audit?target=floor", headers=headers)
    assert answer.json["total"] == 1 and answer.json["entries"][0]["target_id"] == "spc_2"
    answer = client.get("/api/admin/audit?limit=1&offset=1", headers=headers)
    assert answer.json["total"] == 3 and answer.json["entries"][0]["actor"] == "bob"
    bad = client.get("/api/admin/audit?since=noon&limit=-1&kind=x", headers=headers)
    assert bad.status_code == 400
    assert set(bad.json["fields"]) == {"since", "limit", "kind"}
    # An empty kind is no kind the document lists: named, not read as "any" (the console's
    # form sends it empty for any kind, and keeps doing so).
    empty = client.get("/api/admin/audit?kind=", headers=headers)
    assert empty.status_code == 400 and set(empty.json["fields"]) == {"kind"}
    assert client.get("/api/admin/audit").status_code == 401
    doc = client.get("/api/admin/openapi.json", headers=headers).json
    names = {p["name"] for p in doc["paths"]["/audit"]["get"]["parameters"]}
    assert {"who", "kind", "target", "since", "until", "limit", "offset"} <= names


def test_the_server_prunes_in_the_background(make_server) -> None:
    server = make_server(SIGNAGE_AUDIT_DAYS=1.0)
    svc = server.svc
    _seed(svc)  # two days, one day and now: the first two are past a day
    server.app.test_client().get("/healthz")  # the first request starts the pruner's thread
    wait_until(lambda: svc.store.count_audit() == 1, timeout=15)
    assert svc.audit is not None and svc.audit.pruned == 2


def test_on_postgresql_creations_name_their_rows_and_results_are_read_in_the_change(
    make_server, pg_url
) -> None:
    """lastval() and the changed-row count (store/audit.py on PostgreSQL) on a real server."""
    server = make_server(SIGNAGE_DATABASE=pg_url)
    svc = server.svc
    assert svc.store.backend == "postgresql"
    headers, _ = token_headers(svc)
    client = server.app.test_client()
    trail = Trail(svc)
    floor = svc.directory.floors()[0]
    answer = client.post(
        "/api/admin/displays", json={"name": "Atrium", "floor_id": floor.id}, headers=headers
    )
    assert answer.status_code == 201, answer.json
    assert trail.one("display.create").target_id == str(answer.json["id"])
    path = f"/api/admin/displays/{answer.json['id']}"
    assert client.patch(path, json={"name": "Atrium"}, headers=headers).status_code == 200
    trail.none()  # saved unchanged: nothing to record
    assert client.patch(path, json={"name": "Atrium east"}, headers=headers).status_code == 200
    assert trail.one("display.update").after == {"name": "Atrium east"}
    answer = client.put(
        f"/api/admin/floors/{floor.id}/plan",
        data=SVG,
        headers={**headers, "Content-Type": "image/svg+xml"},
    )
    assert answer.status_code == 200, answer.json
    assert trail.one("plan.replace").after["sha256"] == answer.json["sha256"]
    assert client.delete(path, headers=headers).status_code == 204
    trail.one("display.remove")
    assert client.delete(path, headers=headers).status_code == 404
    trail.none()


# -- what happens without changing a setting: commands, sign-ins ---------------------------------
def test_reload_and_identify_leave_one_entry_per_action_naming_the_displays(server) -> None:
    svc = server.svc
    make_admin(svc, "alice", "owner")
    console = Console(server.app)
    assert console.login().status_code == 302
    headers, _ = token_headers(svc)
    floor = svc.directory.floors()[0].id
    lobby, hall, desk = (svc.store.add_display(n, floor) for n in ("Lobby", "Hall", "Desk"))
    trail = Trail(svc)
    # A command that reaches no screen did nothing, so it records nothing.
    assert console.post(f"/admin/displays/{desk.id}/reload").status_code == 302
    trail.none()
    # Lobby and Hall have a screen each (closed with the server at the end).
    screens = [connect(server.socket_url(svc.store.credential(d))) for d in (lobby, hall)]
    for screen in screens:
        screen.recv(timeout=5)  # the snapshot: the screen is connected
    # One display, from its page (and from fleet health, the same route).
    assert console.post(f"/admin/displays/{lobby.id}/reload").status_code == 302
    entry = trail.one("display.reload")
    assert (entry.actor, entry.target_kind, entry.target_id, entry.target_name) == (
        "alice",
        "display",
        str(lobby.id),
        "Lobby",
    )
    assert entry.after == {"displays": [f"Lobby (#{lobby.id})"], "count": 1, "screens": 1}
    # A selection from the list: one entry naming every display and the count.
    ids = [str(d.id) for d in (lobby, hall, desk)]
    answer = console.post("/admin/displays/bulk", {"action": "identify", "ids": ids})
    assert answer.status_code == 302
    entry = trail.one("display.identify")
    assert entry.target_id is None and entry.target_name == "3 displays: Desk, Hall, Lobby"
    assert entry.after["count"] == 3 and entry.after["screens"] == 2
    assert entry.after["displays"] == [
        f"Desk (#{desk.id})",
        f"Hall (#{hall.id})",
        f"Lobby (#{lobby.id})",
    ]
    assert console.post("/admin/displays/bulk", {"action": "reload", "ids": ids}).status_code
    assert trail.one("display.reload").after["count"] == 3
    # Nothing selected, or only announce (its own entry when sent): nothing recorded here.
    console.post("/admin/displays/bulk", {"action": "reload"})
    console.post("/admin/displays/bulk", {"action": "announce", "ids": ids})
    trail.none()
    # The API's command, by a token.
    client = server.app.test_client()
    answer = client.post(f"/api/admin/displays/{hall.id}/identify", headers=headers)
    assert answer.status_code == 200
    entry = trail.one("display.identify")
    assert (entry.actor_kind, entry.actor, entry.target_name) == ("token", "robot", "Hall")
    # Found by the display's name in the page's filter, bulk entries included.
    page = console.get("/admin/audit?kind=display&target=desk").get_data(as_text=True)
    assert "2 changes<" in page and "Flashed its name (identify)" in page  # the two bulk ones


def test_sign_ins_sign_outs_and_failed_attempts_are_recorded_without_flooding(server) -> None:
    svc = server.svc
    make_admin(svc, "alice", "owner")
    trail = Trail(svc)
    console = Console(server.app, ip="198.51.100.7")
    assert console.login().status_code == 302
    entry = trail.one("session.sign_in")
    assert (entry.actor_kind, entry.actor, entry.target_kind, entry.target_name) == (
        "account",
        "alice",
        "session",
        "alice",
    )
    assert entry.after == {"address": "198.51.100.7"}
    assert console.post("/admin/logout").status_code == 302
    entry = trail.one("session.sign_out")
    assert entry.actor == "alice" and entry.after == {"address": "198.51.100.7"}

    # A guessing loop at alice from three addresses (the form's limits allow each a few), and
    # at names that are no account: one entry for alice and one for the unknown names.
    guesses = [f"wrong guess number {i}" for i in range(18)]
    for i, guess in enumerate(guesses):
        guesser = Console(server.app, ip=f"203.0.113.{i % 3 + 1}")
        answer = guesser.login("alice", guess)
        assert answer.status_code in (401, 429)
    for i, name in enumerate(["root", "admin", "administrator", "my-Passw0rd!"]):
        assert Console(server.app, ip=f"192.0.2.{i + 1}").login(name, "hunter2hunter2").status_code
    failed = entries(svc, action="session.sign_in_failed")
    assert len(failed) == 2, [(e.target_name, e.after) for e in failed]
    unknown, at_alice = failed
    assert (at_alice.actor_kind, at_alice.target_id, at_alice.target_name) == (
        "anonymous",
        str(svc.store.admin_by_username("alice").id),
        "alice",
    )
    checked = at_alice.after["attempts"]
    assert 3 <= checked <= len(guesses)  # refused ones (429) never reach the password check
    assert sorted(at_alice.after["addresses"]) == ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    assert (unknown.target_id, unknown.target_name) == (None, "(no such account)")
    # Names that are no account are not kept: people type their password into the name box.
    assert unknown.after == {
        "attempts": 4,
        "addresses": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"],
    }
    # Never a password, in the trail or its API.
    everything = json.dumps([e.public() for e in entries(svc)])
    assert not any(g in everything for g in guesses) and "hunter2" not in everything
    assert "my-Passw0rd!" not in everything and "administrator" not in everything
    # A minute later the next failure starts a new entry: a minute at most per entry.
    with svc.store.transaction() as conn:
        conn.execute("UPDATE audit_log SET at = at - 61 WHERE action = 'session.sign_in_failed'")
    assert Console(server.app, ip="192.0.2.99").login("root", "again wrong").status_code == 401
    assert len(entries(svc, action="session.sign_in_failed")) == 3
    # The page offers the new kinds and reads them in words.
    admin = Console(server.app)
    assert admin.login().status_code == 302
    page = admin.get("/admin/audit").get_data(as_text=True)
    for words in ('<option value="session"', '<option value="backup"', "Failed sign-in"):
        assert words in page, words
    assert "(sign-in form)" in page and "attempts: 1" in page


def test_a_tally_counts_into_one_entry_per_target_and_window_on_both_backends(any_store) -> None:
    store: Store = any_store

    def fail(name: str | None, target_id: str | None, address: str) -> None:
        entry = audit.PendingAudit(
            "anonymous", "not signed in", "session.sign_in_failed", "session", target_id, name
        )
        store.tally_audit(entry, time.time() - 60, {"addresses": address}, most=2)

    for i in range(5):
        fail("alice", "1", f"10.0.0.{i}")
    fail("bob", "2", "10.0.0.9")
    fail(None, None, "10.0.0.8")
    rows = store.audit_entries(AuditFilter(action="session.sign_in_failed"))
    assert [(e.target_id, e.after) for e in rows] == [
        (None, {"attempts": 1, "addresses": ["10.0.0.8"]}),
        ("2", {"attempts": 1, "addresses": ["10.0.0.9"]}),
        ("1", {"attempts": 5, "addresses": ["10.0.0.0", "10.0.0.1"]}),  # at most two listed
    ]


def test_simultaneous_first_failures_start_one_entry_on_both_backends(any_store) -> None:
    """The first failures of a window find no row to lock: on PostgreSQL four at once made up
    to three entries before the tally took a lock per action and target."""
    import threading

    store: Store = any_store
    for round_ in range(8):
        target = f"r{round_}"
        start = threading.Barrier(4)

        def fail(n: int, target: str = target, start: threading.Barrier = start) -> None:
            entry = audit.PendingAudit(
                "anonymous", "not signed in", "session.sign_in_failed", "session", target, "x"
            )
            start.wait(timeout=10)
            store.tally_audit(entry, time.time() - 60, {"addresses": f"10.0.1.{n}"})

        threads = [threading.Thread(target=fail, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        rows = [
            e
            for e in store.audit_entries(AuditFilter(action="session.sign_in_failed"))
            if e.target_id == target
        ]
        assert len(rows) == 1, (round_, [e.after for e in rows])
        assert rows[0].after["attempts"] == 4
