"""The SQLite store: migrations, displays, and revocable kiosk credentials."""

from __future__ import annotations

import sqlite3

import pytest

from signage.store import MIGRATIONS, Store, StoreError


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "db.sqlite3"), "secret")
    s.migrate()
    yield s
    s.close()


def test_migrate_is_idempotent_and_records_version(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    first = Store(path, "k")
    assert first.migrate() == len(MIGRATIONS)
    assert first.migrate() == len(MIGRATIONS)
    first.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


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


def test_credential_identifies_display_and_revocation_invalidates_it(store):
    display = store.add_display("Lobby", "spc_1")
    credential = store.credential(display)
    assert store.display_for_credential(credential) == display
    revoked = store.revoke_display(display.id)
    assert store.display_for_credential(credential) is None
    assert store.display_for_credential(store.credential(revoked)) == revoked


@pytest.mark.parametrize(
    "bad", ["", ".", "x.y", "1", "1.", "1.deadbeef", "99.abc", "1." + "a" * 200, "-1.ab"]
)
def test_bad_credentials_are_refused(store, bad):
    store.add_display("Lobby", "spc_1")
    assert store.display_for_credential(bad) is None


def test_credentials_depend_on_the_secret_key(tmp_path):
    path = str(tmp_path / "db.sqlite3")
    one = Store(path, "one")
    one.migrate()
    display = one.add_display("Lobby", "spc_1")
    other = Store(path, "two")
    assert other.display_for_credential(one.credential(display)) is None


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
    display = store.add_display("Lobby", "spc_1")
    changed = store.update_display_settings(display.id, {"theme": "dark"})
    assert changed.settings == {"theme": "dark"}
    assert changed.updated_at != display.updated_at
    with pytest.raises(StoreError):
        store.update_display_settings(999, {})


def test_pool_serves_many_threads_and_keeps_few_connections(store):
    import threading

    display = store.add_display("Lobby", "spc_1")
    errors: list[BaseException] = []

    def reader():
        try:
            for _ in range(50):
                assert store.display_for_credential(store.credential(display)) == display
        except BaseException as exc:  # collected: the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(store._idle) <= Store.POOL_SIZE


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
