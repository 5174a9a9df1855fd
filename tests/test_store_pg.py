"""PostgreSQL as the store: schema bookkeeping, the app end-to-end on it, an outage, secrets.

Everything runs against a real PostgreSQL started by the test run (tests/pg_server.py); the
store's own methods are covered on both backends in test_store.py.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from contextlib import ExitStack

import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signage import config as settings
from signage import logs
from signage.store import MIGRATIONS, Store, StoreError, StoreUnavailable, plans
from signage.store.backup import create_backup, restore_backup
from signage.store.db import PostgresBackend, redact_url, url_passwords
from tests import pg_server as pgs
from tests.admin_helpers import Console, make_admin
from tests.helpers import wait_until
from tests.kiosks import Fleet
from tests.test_store import SVG, race

# The fixtures, named here so that pytest finds them for this module's tests.
pg_server, pg_url = pgs.pg_server, pgs.pg_url
PgServer, PASSWORD_PREFIX = pgs.PgServer, pgs.PASSWORD_PREFIX
CODE_RE_GROUP = r'id="pair-code"[^>]*>([A-Z0-9]{4}-[A-Z0-9]{4})<'


def columns(url: str, table: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type, is_identity FROM information_schema.columns"
            " WHERE table_name = %s",
            (table,),
        ).fetchall()
    return {name: (kind, identity) for name, kind, identity in rows}


# -- schema ------------------------------------------------------------------------------------
def test_two_processes_starting_at_once_migrate_once(pg_url):
    stores = [Store(pg_url, "k") for _ in range(3)]
    try:
        assert race(3, lambda i: stores[i].migrate()) == [len(MIGRATIONS)] * 3
        assert stores[0].migrate() == len(MIGRATIONS)
    finally:
        for store in stores:
            store.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM signage_schema").fetchall() == [(len(MIGRATIONS),)]


def test_sqlite_types_are_translated_explicitly(pg_url):
    store = Store(pg_url, "k")
    store.migrate()
    store.close()
    assert columns(pg_url, "displays")["id"] == ("bigint", "YES")
    assert columns(pg_url, "pairing_codes")["expires_at"][0] == "double precision"
    assert columns(pg_url, "plan_files")["data"][0] == "bytea"
    with psycopg.connect(pg_url) as conn:
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'admins'"
        ).fetchall()
    assert any("lower(username)" in row[0] and "UNIQUE" in row[0] for row in indexes)


def test_a_migration_without_a_translation_stops_before_changing_anything(pg_url):
    backend = PostgresBackend(pg_url)
    try:
        backend.migrate(MIGRATIONS)
        untranslatable = "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)"
        with pytest.raises(ValueError, match="AUTOINCREMENT"):
            backend.migrate([*MIGRATIONS, untranslatable])
    finally:
        backend.close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM signage_schema").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("SELECT to_regclass('notes')").fetchone()[0] is None


# -- secrets -----------------------------------------------------------------------------------
def test_the_database_password_reaches_no_log_line_message_or_output(pg_server, pg_url, caplog):
    password = pg_server.password
    assert password.startswith(PASSWORD_PREFIX)
    caplog.set_level(logging.DEBUG)
    store = Store(pg_url, "k")
    store.migrate()
    assert password not in store.path and "***" in store.path
    store.close()
    wrong = pg_url.replace(password, PASSWORD_PREFIX + "wrong")
    refused = Store(wrong, "k")
    refused._db.WAIT = 1.0
    with pytest.raises(StoreUnavailable) as caught:
        refused.migrate()
    refused.close()
    assert PASSWORD_PREFIX not in str(caught.value) and PASSWORD_PREFIX not in caplog.text
    # Redaction has the password to mask, wherever a library might print the URL.
    config = {**settings.defaults(), "SIGNAGE_DATABASE": pg_url}
    assert password in settings.secret_values(config)
    assert password not in logs.redact(f"connecting to {pg_url}", settings.secret_values(config))
    assert redact_url(pg_url) == store.path
    env = {**os.environ, "SIGNAGE_DATABASE": pg_url, "SIGNAGE_SECRET_KEY": "k"}
    done = subprocess.run(
        [sys.executable, "-m", "signage", "init-db"],
        env={**env, "SIGNAGE_CONFIG": "/nonexistent.toml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"schema version {len(MIGRATIONS)}" in done.stdout
    assert password not in done.stdout + done.stderr


def test_urls_are_shown_without_their_password_and_a_bad_one_is_refused_clearly():
    url = "postgresql://app:s3cr%40t-pw@db.internal:5432/signage?sslmode=require"
    assert redact_url(url) == "postgresql://app:***@db.internal:5432/signage?sslmode=require"
    assert url_passwords(url) == ["s3cr%40t-pw", "s3cr@t-pw"]
    assert url_passwords("/srv/signage.sqlite3") == [] and redact_url("x.sqlite3") == "x.sqlite3"
    with pytest.raises(StoreError, match="not a valid PostgreSQL URL") as caught:
        Store("postgresql://app:s3cr%zz-pw@db.internal/signage", "k")
    assert "s3cr" not in str(caught.value)
    # No folder is ever derived from a URL: the password would be in its path.
    with pytest.raises(ValueError, match="kept in the database"):
        plans.plans_dir({"SIGNAGE_DATABASE": url})


# -- the app on PostgreSQL ---------------------------------------------------------------------
def test_the_app_runs_end_to_end_on_postgresql(make_server, pg_url, tmp_path):
    server = make_server(SIGNAGE_DATABASE=pg_url)
    svc = server.svc
    assert svc.store.backend == "postgresql"
    floor = svc.directory.floors()[0].id
    make_admin(svc)
    console = Console(server.app)
    assert console.login().status_code == 302
    # A display made through the console...
    created = console.post(
        "/admin/displays/new", {"name": "Lobby east", "floor_id": floor, "density_display_id": ""}
    )
    assert created.status_code == 302
    (display,) = svc.store.list_displays()
    credential = svc.store.credential(display)
    # ...its kiosk page, and its socket's snapshot.
    page = console.client.get(f"/kiosk/{credential}")
    assert page.status_code == 200 and "kiosk-config" in page.get_data(as_text=True)
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=5))
    assert first["type"] == "snapshot" and first["display"]["name"] == "Lobby east"
    # A plan uploaded through the console lives in the database and reaches the kiosk.
    uploaded = console.post(f"/admin/plans/{floor}", {"plan": (io.BytesIO(SVG), "plan.svg")})
    assert uploaded.status_code == 302
    served = console.client.get(f"/kiosk/{credential}/plan")
    assert served.status_code == 200 and b"<rect" in served.data
    assert not plans.plans_dir({"SIGNAGE_DATABASE": str(tmp_path / "x")}).exists()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM plan_files").fetchone()[0] == 1
    # A screen pairs with a code shown on it.
    screen = server.app.test_client()
    shown = screen.get("/pair", environ_base={"REMOTE_ADDR": "192.0.2.9"})
    code = re.search(CODE_RE_GROUP, shown.get_data(as_text=True)).group(1)
    claimed = console.post("/admin/pair", {"code": code, "display_id": str(display.id)})
    assert claimed.status_code == 302
    answer = screen.get("/pair/status").json
    assert answer["state"] == "paired" and answer["kiosk_path"] == f"/kiosk/{credential}"


@pytest.mark.slow
def test_a_postgresql_outage_leaves_kiosks_running_and_changes_work_after(sim, make_server, caplog):
    pg = PgServer().start()
    fleet = Fleet()
    sockets = ExitStack()
    try:
        server = make_server(SIGNAGE_DATABASE=pg.create_database())
        svc = server.svc
        floor = svc.directory.floors()[0].id
        display, credential = server.add_display(floor)
        (kiosk,) = fleet.add(server.socket_url(credential))
        fleet.wait(lambda k: k.feed == "live" and k.rooms, timeout=20, message="kiosk live")
        room = next(iter(kiosk.rooms))
        resyncer = sockets.enter_context(connect(server.socket_url(credential), open_timeout=5))
        assert json.loads(resyncer.recv(timeout=5))["type"] == "snapshot"

        pg.stop()
        # The kiosk's credential is checked again each heartbeat: those checks now fail.
        wait_until(
            lambda: svc.store._db._down_since is not None,
            timeout=20,
            message="the store noticed the outage",
        )
        beats = kiosk.heartbeats
        sim.world.set_space(room, presence=False, health="healthy")
        fleet.wait(lambda k: k.state(room) == "free", timeout=10, message="update in outage")
        sim.world.set_space(room, presence=True, health="healthy")
        fleet.wait(lambda k: k.state(room) == "occupied", timeout=10, message="and another")
        fleet.wait(lambda k: k.heartbeats >= beats + 3, timeout=15, message="heartbeats go on")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            svc.store.add_display("During", floor)
        assert time.monotonic() - started < 3  # known to be down: it fails fast
        assert kiosk.connected and kiosk.close_codes == []
        # A kiosk arriving now cannot be checked: it is asked to come back, not turned away.
        with connect(server.socket_url(credential), open_timeout=5) as late:
            with pytest.raises(ConnectionClosed) as closed:
                late.recv(timeout=10)
        assert closed.value.rcvd.code == 1013
        # A snapshot asked for now carries the announcements last read from the database.
        resyncer.send(json.dumps({"type": "resync"}))
        while (message := json.loads(resyncer.recv(timeout=10)))["type"] != "snapshot":
            pass
        assert message["announcements"] == [] and room in message["rooms"]
        # HTTP says what is wrong and when to come back, not a 500.
        answer = server.app.test_client().get(f"/api/kiosk/{credential}/state")
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        assert pg.password not in answer.get_data(as_text=True)
        assert kiosk.connected and kiosk.close_codes == []

        pg.start()
        added = wait_until(
            lambda: _try(lambda: svc.store.add_display("After", floor)),
            timeout=40,
            interval=0.25,
            message="changes work again",
        )
        assert added.name == "After"
        svc.store.revoke_display(display.id)  # and reach the open socket as before
        fleet.wait(lambda k: 4401 in k.close_codes, timeout=10, message="revoke reaches kiosk")
        unreachable = [r for r in caplog.records if "database unreachable" in r.getMessage()]
        assert len(unreachable) == 1  # logged once, not once per kiosk or per check
        assert pg.password not in caplog.text
    finally:
        sockets.close()
        fleet.stop()
        pg.remove()


def _try(action):
    try:
        return action()
    except StoreUnavailable:
        return None


# -- backup and restore ------------------------------------------------------------------------
def test_a_postgresql_backup_restores_every_table_and_plan(pg_url, tmp_path):
    config = {"SIGNAGE_DATABASE": pg_url, "SIGNAGE_PLAN_MAX_BYTES": 1_000_000}
    store = Store(pg_url, "k")
    store.migrate()
    admin = store.add_admin("alice", "hash")
    display = store.add_display("Lobby", "spc_1", settings={"here": [1.5, 2]})
    plan = plans.store_plan(store, config, "spc_1", SVG, "alice")
    layout = store.put_layout("spc_1", {"rooms": {}}, "alice")
    archive = tmp_path / "backup.tar.gz"
    manifest = create_backup(config, archive)
    assert manifest["backend"] == "postgresql" and manifest["plans"] == [plan.filename]
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    store.remove_display(display.id)
    plans.delete_plan(store, config, "spc_1")
    store.remove_layout("spc_1")
    store.close()
    restore_backup(config, archive)
    store = Store(pg_url, "k")
    try:
        assert store.get_display(display.id) == display
        assert store.get_display(display.id).settings == {"here": [1.5, 2]}
        assert store.admin_by_username("alice") == admin
        assert store.get_layout("spc_1") == layout
        restored = store.get_plan("spc_1")
        assert restored == plan and plans.read_plan(config, restored).startswith(b"<?xml")
        # Ids go on after the restored ones.
        assert store.add_display("New", "spc_1").id > display.id
    finally:
        store.close()


def test_an_sqlite_backup_moves_into_postgresql(pg_url, tmp_path):
    sqlite_config = {"SIGNAGE_DATABASE": str(tmp_path / "old.sqlite3")}
    old = Store(sqlite_config["SIGNAGE_DATABASE"], "k")
    old.migrate()
    display = old.add_display("Lobby", "spc_1", "dsp_1")
    old.add_pairing_code("ABCD2345", "s" * 64, time.time(), 600, None)
    old.claim_pairing_code("ABCD2345", display.id, time.time())
    plans.store_plan(old, sqlite_config, "spc_1", SVG, None)
    old.close()
    archive = tmp_path / "sqlite-backup.tar.gz"
    create_backup(sqlite_config, archive)
    restore_backup({"SIGNAGE_DATABASE": pg_url}, archive)
    store = Store(pg_url, "k")
    try:
        assert store.get_display(display.id) == display
        assert store.pairing_by_secret("s" * 64).display_id == display.id
        plan = store.get_plan("spc_1")
        assert plans.read_plan({"SIGNAGE_DATABASE": pg_url}, plan).startswith(b"<?xml")
    finally:
        store.close()


def test_a_postgresql_restore_issues_new_credentials_and_never_reuses_an_id(pg_url, tmp_path):
    config = {"SIGNAGE_DATABASE": pg_url}
    store = Store(pg_url, "k")
    store.migrate()
    lobby = store.add_display("Lobby", "spc_1")
    stolen = store.credential(lobby)
    archive = tmp_path / "backup.tar.gz"
    create_backup(config, archive)
    # After the backup: the credential is revoked, and a display comes and goes.
    store.revoke_display(lobby.id)
    later = store.add_display("Later", "spc_1")
    store.remove_display(later.id)
    store.close()
    restore_backup(config, archive)
    store = Store(pg_url, "k")
    try:
        assert store.display_for_credential(stolen) is None
        restored = store.get_display(lobby.id)
        assert store.display_for_credential(store.credential(restored)) == restored
        assert store.add_display("Next", "spc_1").id > later.id
    finally:
        store.close()
    restore_backup(config, archive, keep_credentials=True)
    store = Store(pg_url, "k")
    try:
        assert store.display_for_credential(stolen) == store.get_display(lobby.id)
        assert store.add_display("After", "spc_1").id > later.id + 1
    finally:
        store.close()


def test_an_sqlite_backup_restored_into_postgresql_keeps_its_ids_used(pg_url, tmp_path):
    sqlite_config = {"SIGNAGE_DATABASE": str(tmp_path / "old.sqlite3")}
    old = Store(sqlite_config["SIGNAGE_DATABASE"], "k")
    old.migrate()
    kept = old.add_display("Kept", "spc_1")
    gone = old.add_display("Gone", "spc_1")
    old.remove_display(gone.id)
    old.close()
    archive = tmp_path / "sqlite-backup.tar.gz"
    create_backup(sqlite_config, archive)
    restore_backup({"SIGNAGE_DATABASE": pg_url}, archive)
    store = Store(pg_url, "k")
    try:
        assert store.get_display(kept.id) is not None
        assert store.add_display("New", "spc_1").id > gone.id
    finally:
        store.close()


def test_the_upgrade_to_row_secrets_keeps_paired_screens_working_on_postgresql(pg_url):
    before = next(i for i, m in enumerate(MIGRATIONS) if not isinstance(m, str))
    backend = PostgresBackend(pg_url)
    try:
        backend.migrate(MIGRATIONS[:before])
        with backend.transaction() as conn:
            conn.execute(
                "INSERT INTO displays (name, floor_id, created_at, updated_at)"
                " VALUES ('Lobby', 'spc_1', 'x', 'x')"
            )
    finally:
        backend.close()
    store = Store(pg_url, "k")
    try:
        assert store.migrate() == len(MIGRATIONS)
        (display,) = store.list_displays()
        mac = hmac.new(b"k", f"display:{display.id}:1".encode(), hashlib.sha256).hexdigest()
        assert store.display_for_credential(f"{display.id}.{mac[:32]}") == display
        new = store.add_display("New", "spc_1")
        assert new.secret and store.display_for_credential(store.credential(new)) == new
    finally:
        store.close()


def test_an_existing_postgresql_database_keeps_the_key_an_older_version_kept_in_the_package(
    sim, tmp_path, monkeypatch, pg_server, pg_url
):
    # Upgrading a PostgreSQL install without SIGNAGE_SECRET_KEY unpaired every screen: the key
    # an older version kept in the package's folder was adopted only for an SQLite file.
    from signage import create_app, services
    from tests.conftest import server_config

    old_key = "the-key-paired-screens-were-given"
    legacy = tmp_path / "old-package-instance" / "secret_key"
    legacy.parent.mkdir()
    legacy.write_text(old_key + "\n")
    monkeypatch.setattr(services, "_legacy_secret_keys", lambda: [legacy])
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("SIGNAGE_SECRET_KEY", raising=False)
    old = Store(pg_url, old_key)
    old.migrate()
    paired = old.add_display("Lobby", "spc_1")
    credential = old.credential(paired)
    old.close()
    fresh_url = pg_server.create_database()
    made = []
    try:
        for n, (url, adopted) in enumerate(((pg_url, True), (fresh_url, False))):
            instance = tmp_path / f"instance-{n}"
            config = server_config(
                sim, tmp_path, SIGNAGE_DATABASE=url, SIGNAGE_INSTANCE=str(instance)
            )
            config["SIGNAGE_SECRET_KEY"] = ""
            app = create_app(config)
            made.append(app)
            assert (app.config["SECRET_KEY"] == old_key) is adopted
            if adopted:  # the screen paired before the upgrade carries on
                assert (instance / "secret_key").read_text() == old_key
                state = app.test_client().get(f"/api/kiosk/{credential}/state")
                assert state.status_code == 200
    finally:
        for app in made:
            app.extensions["signage"].close()
        pg_server.drop_database(fresh_url)
