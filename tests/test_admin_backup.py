"""`signage backup` and `signage restore`: database and plans, consistent, never over HTTP."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

import pytest

from signage import auth, plans
from signage.backup import BackupError, restore_backup
from signage.store import Store

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


def test_no_route_serves_a_backup(server):
    assert not [r.rule for r in server.app.url_map.iter_rules() if "backup" in r.rule]
