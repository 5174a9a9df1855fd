"""The store on both backends: SQLite (a file) and a real PostgreSQL, through the same methods.

Each test taking `store` runs twice, once per backend; the SQLite-only ones check what only
SQLite has (its file, its pragmas, the schema an old file migrates to).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from signage.store import MIGRATIONS, Store, StoreError, plans
from signage.store.db import SqliteBackend, migration_script
from tests import pg_server as pgs

SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 20">'
    b'<rect width="4" height="4"/></svg>'
)


# The fixtures, named here so that pytest finds them for this module's tests.
pg_server, pg_url, any_store = pgs.pg_server, pgs.pg_url, pgs.any_store


@pytest.fixture
def store(any_store):
    """Each test below that takes `store` runs on SQLite and on PostgreSQL."""
    return any_store


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..n-1) in n threads released at once; each result or the exception raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[i] = work(i)
        except Exception as exc:  # collected: the caller asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


# -- SQLite only -------------------------------------------------------------------------------
def test_migrate_is_idempotent_and_records_version(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    first = Store(path, "k")
    assert first.migrate() == len(MIGRATIONS)
    assert first.migrate() == len(MIGRATIONS)
    first.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _schema(path: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def _apply_raw(path: str, upto: int) -> None:
    """Migrations 1..upto applied the way every shipped version did: one statement at a time."""
    conn = sqlite3.connect(path)
    for number, migration in enumerate(MIGRATIONS[:upto], start=1):
        for statement in filter(str.strip, migration_script(migration, "sqlite").split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("old_version", [0, 6, 9])
def test_an_old_sqlite_file_migrates_to_exactly_the_fresh_schema(tmp_path, old_version):
    reference = str(tmp_path / "reference.sqlite3")
    _apply_raw(reference, len(MIGRATIONS))
    fresh = str(tmp_path / "fresh.sqlite3")
    Store(fresh, "k").migrate()
    old = str(tmp_path / "old.sqlite3")
    _apply_raw(old, old_version)
    store = Store(old, "k")
    assert store.migrate() == len(MIGRATIONS)
    store.close()
    assert _schema(old) == _schema(fresh) == _schema(reference)
    # No PostgreSQL-only table leaks into SQLite files.
    assert "plan_files" not in {row[1] for row in _schema(fresh)}


def test_sqlite_pool_serves_many_threads_and_keeps_few_connections(tmp_path):
    store = Store(str(tmp_path / "db.sqlite3"), "k")
    store.migrate()
    display = store.add_display("Lobby", "spc_1")
    results = race(
        20, lambda _: [store.display_for_credential(store.credential(display)) for _ in range(50)]
    )
    assert all(r == [display] * 50 for r in results), results
    assert len(store._db._idle) <= SqliteBackend.POOL_SIZE
    store.close()


# -- both backends -----------------------------------------------------------------------------
def test_add_list_remove(store):
    a = store.add_display("Lobby A", "spc_1", "dsp_1")
    b = store.add_display("Lobby B", "spc_2")
    assert [d.id for d in store.list_displays()] == [a.id, b.id]
    assert [d.id for d in store.list_displays("spc_2")] == [b.id]
    assert store.get_display(a.id).density_display_id == "dsp_1"
    assert store.remove_display(a.id)
    assert not store.remove_display(a.id)
    assert store.get_display(a.id) is None


@pytest.mark.parametrize("name,floor", [("", "spc_1"), ("  ", "spc_1"), ("Lobby", "")])
def test_add_refuses_blank_fields(store, name, floor):
    with pytest.raises(StoreError):
        store.add_display(name, floor)


def test_nul_characters_are_refused_on_write_and_found_nowhere_on_read(store):
    with pytest.raises(StoreError, match="NUL"):
        store.add_display("Lob\x00by", "spc_1")
    with pytest.raises(StoreError, match="NUL"):
        store.add_admin("al\x00ice", "hash")
    assert store.admin_by_username("al\x00ice") is None
    assert store.get_layout("spc\x00") is None and store.get_plan("spc\x00") is None
    assert store.list_displays("spc\x00") == []


def test_credential_identifies_display_and_revocation_invalidates_it(store):
    display = store.add_display("Lobby", "spc_1")
    credential = store.credential(display)
    assert store.display_for_credential(credential) == display
    revoked = store.revoke_display(display.id)
    assert store.display_for_credential(credential) is None
    assert store.display_for_credential(store.credential(revoked)) == revoked


@pytest.mark.parametrize(
    "bad",
    ["", ".", "x.y", "1", "1.", "1.deadbeef", "99.abc", "1." + "a" * 200, "-1.ab", "².ab"]
    + ["9" * 40 + ".ab", "99999999999999999999.ab"],
)
def test_bad_credentials_are_refused(store, bad):
    store.add_display("Lobby", "spc_1")
    assert store.display_for_credential(bad) is None


def test_credentials_depend_on_the_secret_key(store):
    display = store.add_display("Lobby", "spc_1")
    other = Store(store.database, "two")
    try:
        assert other.display_for_credential(store.credential(display)) is None
        assert other.get_display(display.id) == display
    finally:
        other.close()


def test_phone_link_is_separate_and_revocable(store):
    display = store.add_display("Lobby", "spc_1")
    phone = store.phone_credential(display)
    assert phone != store.credential(display)
    assert store.display_for_phone_credential(phone) == display
    assert store.display_for_credential(phone) is None  # a phone link never opens the kiosk
    assert store.display_for_phone_credential(store.credential(display)) is None
    store.revoke_phone_link(display.id)
    assert store.display_for_phone_credential(phone) is None
    assert store.display_for_credential(store.credential(display)) is not None


def test_update_settings_changes_updated_at(store):
    display = store.add_display("Lobby", "spc_1", settings={"here": [1, 2]})
    changed = store.update_display_settings(display.id, {"theme": "dark", "here": [3.5, 4]})
    assert changed.settings == {"theme": "dark", "here": [3.5, 4]}
    assert changed.updated_at != display.updated_at
    edited = store.update_display(display.id, " Hall ", "spc_2", "dsp_9", {"theme": "light"})
    assert (edited.name, edited.floor_id, edited.density_display_id) == ("Hall", "spc_2", "dsp_9")
    with pytest.raises(StoreError):
        store.update_display_settings(999, {})


def test_many_threads_share_the_pool(store):
    display = store.add_display("Lobby", "spc_1")
    credential = store.credential(display)
    results = race(12, lambda _: [store.display_for_credential(credential) for _ in range(20)])
    assert all(r == [display] * 20 for r in results), results


def test_failed_transaction_rolls_back_and_pool_stays_usable(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO displays (name, floor_id, created_at, updated_at)"
                " VALUES ('x', 'f', 'now', 'now')"
            )
            raise RuntimeError("crash mid-change")
    assert store.list_displays() == []
    assert store.add_display("Lobby", "spc_1").id >= 1


def test_admins_are_unique_whatever_the_case_and_the_last_owner_stays(store):
    owner = store.add_admin("Alice", "hash-1")
    assert owner.role == "owner"
    assert store.add_admin("bob", "hash-2").role == "admin"
    assert store.admin_by_username("  ALICE ") == owner
    with pytest.raises(StoreError, match="exists already"):
        store.add_admin("alice", "hash-3")
    with pytest.raises(StoreError, match="unknown role"):
        store.add_admin("carol", "hash", "root")
    # The failed insert left the store usable (PostgreSQL aborts a transaction on an error).
    carol = store.add_admin("carol", "hash-4", "owner")
    changed = store.set_admin_password(owner.id, "hash-5", sign_out=True)
    assert changed.session_generation == owner.session_generation + 1
    assert changed.password_hash == "hash-5"
    assert store.remove_admin(carol.id)
    with pytest.raises(StoreError, match="last owner"):
        store.remove_admin(owner.id)
    assert [a.username for a in store.list_admins()] == ["Alice", "bob"]
    assert not store.remove_admin(999)


def test_two_owners_removed_at_once_leave_one(store):
    for round_ in range(3):
        a = store.add_admin(f"a{round_}", "h", "owner")
        b = store.add_admin(f"b{round_}", "h", "owner")
        for other in store.list_admins():
            if other.id not in (a.id, b.id):
                store.remove_admin(other.id)
        results = race(2, lambda i, ids=(a.id, b.id): store.remove_admin(ids[i]))
        assert sorted(map(repr, results)) == sorted(
            [repr(True), repr(StoreError("the last owner cannot be removed"))]
        ), results
        assert [x.role for x in store.list_admins()] == ["owner"]


def test_api_tokens(store):
    token = store.add_api_token(" deploy ", "f" * 64, "viewer")
    assert (token.name, token.role) == ("deploy", "viewer")
    assert store.api_token_by_hash("f" * 64) == token
    assert store.api_token_by_hash("0" * 64) is None
    with pytest.raises(StoreError):
        store.add_api_token("x", "e" * 64, "god")
    assert store.list_api_tokens() == [token]
    assert store.remove_api_token(token.id) and not store.remove_api_token(token.id)


def test_pairing_codes_work_once_and_expire(store):
    now = time.time()
    display = store.add_display("Lobby", "spc_1")
    code = store.add_pairing_code("ABCD2345", "s" * 64, now, 600, "192.0.2.1")
    assert code.expires_at == pytest.approx(now + 600)
    assert store.add_pairing_code("ABCD2345", "t" * 64, now, 600, None) is None  # code taken
    assert store.add_pairing_code("WXYZ6789", "s" * 64, now, 600, None) is None  # secret taken
    assert store.pending_pairing_count(now) == 1
    assert store.claim_pairing_code("ABCD2345", 999, now) is None  # no such display
    assert store.claim_pairing_code("ABCD2345", display.id, now) == display
    assert store.claim_pairing_code("ABCD2345", display.id, now) is None  # spent
    claimed = store.pairing_by_secret("s" * 64)
    assert claimed.display_id == display.id and claimed.claimed_at == pytest.approx(now)
    assert store.pending_pairing_count(now) == 0
    late = store.add_pairing_code("LATE2345", "u" * 64, now - 700, 600, None)
    assert store.claim_pairing_code("LATE2345", display.id, now) is None  # expired
    # Making a new code purges expired ones.
    store.add_pairing_code("NEWC2345", "v" * 64, now, 600, None)
    assert store.pairing_by_secret("u" * 64) is None and late is not None
    store.delete_pairing(claimed.id)
    assert store.pairing_by_secret("s" * 64) is None


def test_two_claims_of_one_code_exactly_one_wins(store):
    displays = [store.add_display(f"Lobby {i}", "spc_1") for i in range(2)]
    now = time.time()
    for round_ in range(5):
        code = f"RACE{round_:04d}"
        store.add_pairing_code(code, f"{round_}" * 64, now, 600, None)
        results = race(2, lambda i, c=code: store.claim_pairing_code(c, displays[i].id, now))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1 and winners[0] in displays, results
        assert store.pairing_by_secret(f"{round_}" * 64).display_id == winners[0].id


def test_plans_are_recorded_and_read_back_through_read_plan(store, tmp_path):
    config = {"SIGNAGE_DATABASE": store.database, "SIGNAGE_PLANS_DIR": str(tmp_path / "plans")}
    first = plans.store_plan(store, config, "spc_1", SVG, "alice")
    assert store.get_plan("spc_1") == first
    assert plans.read_plan(config, store.get_plan("spc_1")).startswith(b"<?xml")
    assert plans.plan_dimensions(plans.read_plan(config, first), first.content_type) == (40, 20)
    other = SVG.replace(b"40 20", b"80 20")
    second = plans.store_plan(store, config, "spc_1", other, "bob")
    assert second.filename != first.filename
    assert [p.floor_id for p in store.list_plans()] == ["spc_1"]
    assert b"80 20" in plans.read_plan(config, store.get_plan("spc_1"))
    assert plans.read_plan(config, first) is None  # the replaced plan's bytes are gone
    stored_files = list((tmp_path / "plans").glob("*")) if (tmp_path / "plans").is_dir() else []
    if store.plans_in_database:
        assert stored_files == []  # every host reads plans from the database, none from disk
    else:
        assert [p.name for p in stored_files] == [second.filename]
    assert plans.sweep(store, config, min_age=0) == 0
    assert plans.delete_plan(store, config, "spc_1")
    assert store.get_plan("spc_1") is None and not plans.delete_plan(store, config, "spc_1")
    assert plans.read_plan(config, second) is None


def test_layouts_count_versions_and_refuse_a_stale_save(store):
    assert store.get_layout("spc_1") is None
    first = store.put_layout("spc_1", {"rooms": {"a": 1}}, "alice", expected_version=0)
    assert (first.version, first.data, first.updated_by) == (1, {"rooms": {"a": 1}}, "alice")
    second = store.put_layout("spc_1", {"rooms": {}}, "bob", expected_version=1)
    assert second.version == 2
    with pytest.raises(StoreError, match="changed by someone else"):
        store.put_layout("spc_1", {"rooms": {"lost": 1}}, "carol", expected_version=1)
    assert store.get_layout("spc_1").data == {"rooms": {}}
    assert store.put_layout("spc_1", {"x": 1}).version == 3  # no check asked for
    assert store.remove_layout("spc_1") and not store.remove_layout("spc_1")


def test_two_first_saves_of_a_layout_at_once_one_is_refused(store):
    for round_ in range(4):
        floor = f"spc_race_{round_}"
        results = race(
            2, lambda i, f=floor: store.put_layout(f, {"by": i}, f"editor{i}", expected_version=0)
        )
        saved = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, StoreError)]
        assert len(saved) == 1 and len(refused) == 1, results
        assert store.get_layout(floor) == saved[0] and saved[0].version == 1


def test_announcements(store):
    now = time.time()
    a = store.add_announcement(
        scope="floor", target="spc_1", kind="message", title="Fire drill", body="at 3",
        starts_at=now - 10, ends_at=now + 3600, created_by="alice",
    )  # fmt: skip
    b = store.add_announcement(
        scope="all", target=None, kind="emergency", title="Leave", body="",
        starts_at=now + 60, ends_at=now + 120,
    )  # fmt: skip
    assert a.current(now) and not b.current(now) and b.current(now + 61)
    assert store.get_announcement(a.id) == a
    assert [x.id for x in store.list_announcements()] == [b.id, a.id]
    assert [x.id for x in store.list_announcements(current_at=now)] == [b.id, a.id]
    cancelled = store.cancel_announcement(a.id, now)
    assert cancelled.cancelled_at == pytest.approx(now) and not cancelled.current(now)
    assert [x.id for x in store.list_announcements(current_at=now)] == [b.id]
    assert store.cancel_announcement(999, now) is None
    for bad in (
        {"scope": "room", "target": "x", "kind": "message"},
        {"scope": "all", "target": "x", "kind": "message"},
        {"scope": "floor", "target": "spc_1", "kind": "message", "ends_at": now - 20},
    ):
        fields = {"title": "t", "body": "", "starts_at": now - 10, "ends_at": now + 10, **bad}
        with pytest.raises(StoreError):
            store.add_announcement(**fields)
