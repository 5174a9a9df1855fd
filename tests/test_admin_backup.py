"""`signage backup` and `signage restore`: database and plans, consistent, never over HTTP."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import tarfile

import pytest

from signage.store import MIGRATIONS, Store, plans
from signage.store.backup import BackupError, restore_backup
from signage.web import auth

SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><rect id="r" width="4" height="4"/></svg>'


@pytest.fixture
def env(tmp_path):
    return {
        **os.environ,
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": str(tmp_path / "live" / "signage.sqlite3"),
        "SIGNAGE_SECRET_KEY": "backup-test",
    }


def cli(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "signage", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_backup_then_restore_brings_everything_back(env, tmp_path):
    db = env["SIGNAGE_DATABASE"]
    config = {"SIGNAGE_DATABASE": db, "SIGNAGE_PLAN_MAX_BYTES": 1_000_000}
    store = Store(db, "backup-test")
    store.migrate()
    store.add_admin("alice", auth.hash_password("a long enough password"))
    display = store.add_display("Lobby", "spc_1", settings={"theme": "dark"})
    plan = plans.store_plan(store, config, "spc_1", SVG, "alice")
    archive = tmp_path / "backup.tar.gz"
    done = cli(env, "backup", str(archive))
    assert done.returncode == 0, done.stderr
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    # Lose everything...
    store.remove_display(display.id)
    plans.delete_plan(store, config, "spc_1")
    store.close()
    # ...and get it back.
    done = cli(env, "restore", "--yes", str(archive))
    assert done.returncode == 0, done.stderr
    store = Store(db, "backup-test")
    try:
        assert store.get_display(display.id).settings == {"theme": "dark"}
        assert store.admin_by_username("alice") is not None
        restored = store.get_plan("spc_1")
        assert restored == plan
        assert plans.plan_file(config, restored).read_bytes().startswith(b"<?xml")
    finally:
        store.close()


def test_restore_refuses_archives_that_are_not_ours_or_escape_the_plans_folder(tmp_path):
    config = {"SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3")}
    not_tar = tmp_path / "x.tar.gz"
    not_tar.write_bytes(b"hello")
    with pytest.raises(BackupError, match="not a signage backup"):
        restore_backup(config, not_tar)

    def archive(entries: dict[str, bytes]):
        path = tmp_path / "crafted.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    with pytest.raises(BackupError, match="no manifest"):
        restore_backup(config, archive({"other.txt": b"x"}))
    escaping = archive(
        {"manifest.json": b"{}", "signage.sqlite3": b"", "plans/../../evil.sh": b"#!/bin/sh"}
    )
    with pytest.raises(BackupError, match="unexpected entry"):
        restore_backup(config, escaping)
    assert not (tmp_path / "evil.sh").exists()
    damaged = archive({"manifest.json": b"{}", "signage.sqlite3": b"not a database" * 100})
    with pytest.raises(BackupError, match="database in the backup"):
        restore_backup(config, damaged)
    assert not (tmp_path / "db.sqlite3").exists()


def _database_file(tmp_path, name: str, *statements: str) -> bytes:
    path = tmp_path / name
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path.read_bytes()


def test_restore_refuses_another_programs_or_a_newer_versions_database_clearly(tmp_path):
    # Each ended in a traceback (OperationalError: table displays already exists, no such
    # table) from bringing the copy to this version's schema.
    newer = tmp_path / "newer.sqlite3"
    newer.write_bytes(_valid_database(tmp_path))
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    cases = {
        "not a signage database": _database_file(tmp_path, "a.db", "CREATE TABLE displays (x)"),
        "does not fit": _database_file(
            tmp_path, "b.db", "CREATE TABLE displays (x)", "PRAGMA user_version = 3"
        ),
        "newer version of signage": newer.read_bytes(),
    }
    live = tmp_path / "live" / "signage.sqlite3"
    for message, database in cases.items():
        archive = _crafted(
            tmp_path / "b.tar.gz",
            [
                (tarfile.TarInfo("manifest.json"), b"{}"),
                (tarfile.TarInfo("signage.sqlite3"), database),
            ],
        )
        with pytest.raises(BackupError, match=message):
            restore_backup({"SIGNAGE_DATABASE": str(live)}, archive)
        assert not live.exists()


def test_no_route_serves_a_backup(server):
    assert not [r.rule for r in server.app.url_map.iter_rules() if "backup" in r.rule]


# -- limits: a crafted archive gets a clear refusal, in bounded memory ---------------------------
def _crafted(path, entries):
    """A .tar.gz of (TarInfo, bytes or None) pairs, written as given."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _valid_database(tmp_path) -> bytes:
    path = tmp_path / "valid.sqlite3"
    store = Store(str(path), "k")
    store.migrate()
    store.close()
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "fifo", "directory"])
def test_restore_refuses_links_and_devices_with_a_clear_message(tmp_path, kind):
    config = {"SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3")}
    odd = tarfile.TarInfo("manifest.json")
    odd.type = {
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "device": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
        "directory": tarfile.DIRTYPE,
    }[kind]
    odd.linkname = "/etc/passwd" if kind == "symlink" else "signage.sqlite3"
    archive = _crafted(
        tmp_path / "odd.tar.gz",
        [(tarfile.TarInfo("signage.sqlite3"), _valid_database(tmp_path)), (odd, None)],
    )
    with pytest.raises(BackupError, match="not a regular file"):
        restore_backup(config, archive)
    assert not (tmp_path / "db.sqlite3").exists()


def test_restore_refuses_a_deeply_nested_or_odd_manifest_clearly(tmp_path):
    config = {"SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3")}
    database = _valid_database(tmp_path)
    for manifest, message in (
        (b"[" * 200_000 + b"]" * 200_000, "manifest"),
        (b"[1, 2]", "manifest"),
        (b"\xff\xfe", "manifest"),
    ):
        archive = _crafted(
            tmp_path / "deep.tar.gz",
            [
                (tarfile.TarInfo("manifest.json"), manifest),
                (tarfile.TarInfo("signage.sqlite3"), database),
            ],
        )
        with pytest.raises(BackupError, match=message):
            restore_backup(config, archive)
    assert not (tmp_path / "db.sqlite3").exists()


def test_restore_refuses_too_many_entries(tmp_path):
    config = {"SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3")}
    entries = [
        (tarfile.TarInfo("manifest.json"), b"{}"),
        (tarfile.TarInfo("signage.sqlite3"), _valid_database(tmp_path)),
    ]
    entries += [(tarfile.TarInfo(f"plans/p{i}.svg"), SVG) for i in range(20_001)]
    with pytest.raises(BackupError, match="entries"):
        restore_backup(config, _crafted(tmp_path / "many.tar.gz", entries))


def test_a_compression_bomb_is_refused_in_bounded_memory(env, tmp_path):
    # 400 MB of zeros compress to under half a megabyte: the size is declared in the entry's
    # header, so it is refused before anything is read.
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        _add(tar, "manifest.json", b"{}")
        _add(tar, "signage.sqlite3", _valid_database(tmp_path))
        bomb = tarfile.TarInfo("plans/plan.svg")
        bomb.size = 400 * 1024 * 1024
        tar.addfile(bomb, _Zeros(bomb.size))
    assert archive.stat().st_size < 2_000_000
    # VmHWM is this process's peak (ru_maxrss would count the parent's memory at fork).
    code = (
        "import re, sys\n"
        "from signage.cli import main\n"
        "try:\n"
        "    main(['restore', '--yes', '--create', sys.argv[1]], standalone_mode=False)\n"
        "except Exception as exc:\n"
        "    print('refused:', exc)\n"
        "status = open('/proc/self/status').read()\n"
        "print('maxrss_kib', re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "plans/plan.svg" in done.stdout, done.stdout
    rss_mib = int(done.stdout.split("maxrss_kib")[1]) / 1024
    assert rss_mib < 150, rss_mib
    assert not (tmp_path / "live" / "plans" / "plan.svg").exists()


def _add(tar, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


class _Zeros(io.RawIOBase):
    """`size` zero bytes, read in chunks (never all in memory at once)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


# -- a restore cannot revive a revoked credential -------------------------------------------------
def _credentials(db):
    store = Store(db, "backup-test")
    try:
        store.migrate()
        return {d.id: store.credential(d) for d in store.list_displays()}, store.get_admin(1)
    finally:
        store.close()


def test_a_restore_issues_new_credentials_unless_asked_to_keep_them(env, tmp_path):
    db = env["SIGNAGE_DATABASE"]
    store = Store(db, "backup-test")
    store.migrate()
    store.add_admin("alice", auth.hash_password("a long enough password"))
    lobby = store.add_display("Lobby", "spc_1")
    stolen = store.credential(lobby)
    store.close()
    archive = tmp_path / "backup.tar.gz"
    assert cli(env, "backup", str(archive)).returncode == 0
    # The lobby's credential leaked: the admin revokes it, and later restores the backup.
    store = Store(db, "backup-test")
    current = store.credential(store.revoke_display(lobby.id))
    gone = store.add_display("Temporary", "spc_1")
    store.remove_display(gone.id)
    store.close()
    done = cli(env, "restore", "--yes", str(archive))
    assert done.returncode == 0, done.stderr
    assert "pair" in done.stdout  # it says the screens must be paired again
    store = Store(db, "backup-test")
    try:
        assert store.display_for_credential(stolen) is None  # the revoked one stays revoked
        assert store.display_for_credential(current) is None  # every credential is new
        restored = store.get_display(lobby.id)
        assert store.display_for_credential(store.credential(restored)) == restored
        # No id issued before the restore is issued again.
        assert store.add_display("Next", "spc_1").id > gone.id
    finally:
        store.close()
    # Asked to keep them, the backup's credentials (the revoked one too) come back as they were.
    done = cli(env, "restore", "--yes", "--keep-credentials", str(archive))
    assert done.returncode == 0, done.stderr
    store = Store(db, "backup-test")
    try:
        assert store.display_for_credential(stolen) == store.get_display(lobby.id)
    finally:
        store.close()


def test_restore_help_explains_new_credentials(env):
    done = cli(env, "restore", "--help")
    assert "--keep-credentials" in done.stdout and "pair" in done.stdout


def test_backups_and_restores_are_in_the_audit_trail_and_a_restore_outlives_itself(env, tmp_path):
    """Who took or restored a backup, when, the file, its size and counts (never its content);
    a restore replaces the trail too, so its entry is written into the restored one."""
    from signage.store.audit import AuditFilter

    db = env["SIGNAGE_DATABASE"]
    store = Store(db, "backup-test")
    store.migrate()
    store.add_admin("alice", auth.hash_password("a long enough password"))
    store.add_display("Lobby", "spc_1")
    store.close()
    archive = tmp_path / "nightly.tar.gz"
    env = {**env, "USER": "ops", "LOGNAME": "ops"}  # the operating-system user named
    done = cli(env, "backup", str(archive))
    assert done.returncode == 0, done.stderr
    store = Store(db, "backup-test")
    (entry,) = store.audit_entries(AuditFilter(action="backup.create"))
    assert (entry.actor_kind, entry.actor, entry.target_kind, entry.target_name) == (
        "cli",
        "ops",
        "backup",
        "nightly.tar.gz",
    )
    assert entry.after == {
        "file": str(archive.resolve()),
        "bytes": archive.stat().st_size,
        "plans": 0,
        "displays": 1,
        "accounts": 1,
    }
    store.add_display("Hall", "spc_1")  # after the backup: gone again after the restore
    store.close()
    done = cli(env, "restore", "--yes", str(archive))
    assert done.returncode == 0, done.stderr
    store = Store(db, "backup-test")
    try:
        restored = store.audit_entries(AuditFilter(target_kind="backup"))
        # The backup's own entry was written after the archive: not in it. The restore's is.
        assert [e.action for e in restored] == ["backup.restore"]
        (entry,) = restored
        assert (entry.actor_kind, entry.actor, entry.target_name) == ("cli", "ops", archive.name)
        assert entry.after["bytes"] == archive.stat().st_size
        assert entry.after["displays"] == 1 and entry.after["accounts"] == 1
        assert entry.after["screens_pair_again"] is True and entry.after["taken_at"]
        assert [d.name for d in store.list_displays()] == ["Lobby"]
    finally:
        store.close()
