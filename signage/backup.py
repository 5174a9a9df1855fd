"""Backup and restore: the database (a consistent copy) and the floor plans, in one tar file.

The copy is made with SQLite's online backup API, so a running server can keep writing while it
is taken. Backups are only ever written to and read from the server's own disk by the CLI: no
route serves them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path

from signage import __version__
from signage.plans import atomic_write, plans_dir

logger = logging.getLogger(__name__)

DB_MEMBER = "signage.sqlite3"
PLANS_PREFIX = "plans/"
MANIFEST = "manifest.json"


class BackupError(Exception):
    """A backup that cannot be made or restored, with the reason."""


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


def _database_copy(db_path: str) -> bytes:
    """A consistent copy of the live database, through SQLite's backup API."""
    with tempfile.TemporaryDirectory() as tmp:
        copy_path = os.path.join(tmp, DB_MEMBER)
        source = sqlite3.connect(db_path)
        target = sqlite3.connect(copy_path)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return Path(copy_path).read_bytes()


def create_backup(config: dict, destination: str | os.PathLike[str]) -> dict:
    """Write a tar of the database and the plans folder; returns its manifest."""
    db_path = config["SIGNAGE_DATABASE"]
    if not Path(db_path).exists():
        raise BackupError(f"no database at {db_path}")
    database = _database_copy(db_path)
    folder = plans_dir(config)
    plan_files = (
        sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if folder.is_dir()
        else []
    )
    manifest = {
        "version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plans": [p.name for p in plan_files],
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
        _add_bytes(tar, DB_MEMBER, database)
        for path in plan_files:
            _add_bytes(tar, PLANS_PREFIX + path.name, path.read_bytes())
    # The backup holds password hashes and the means to rebuild kiosk credentials: owner-only.
    atomic_write(Path(destination), buffer.getvalue())
    os.chmod(destination, 0o600)
    logger.info("backup written: %d plan file(s)", len(plan_files))
    return manifest


def restore_backup(config: dict, source: str | os.PathLike[str]) -> dict:
    """Replace the database and plans with a backup's (the server must be stopped)."""
    try:
        tar = tarfile.open(source, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"not a signage backup: {exc}") from exc
    with tar:
        members = {m.name: m for m in tar.getmembers()}
        if MANIFEST not in members or DB_MEMBER not in members:
            raise BackupError("not a signage backup (no manifest or database inside)")
        manifest = json.loads(_read(tar, members[MANIFEST]))
        database = _read(tar, members[DB_MEMBER])
        plan_files: dict[str, bytes] = {}
        for name, member in members.items():
            if not name.startswith(PLANS_PREFIX):
                continue
            base = name[len(PLANS_PREFIX) :]
            # Only plain names: a crafted archive cannot write outside the plans folder.
            if not member.isfile() or not base or "/" in base or base.startswith("."):
                raise BackupError(f"unexpected entry in backup: {name!r}")
            plan_files[base] = _read(tar, member)
    _check_database(database)
    folder = plans_dir(config)
    for name, data in plan_files.items():
        atomic_write(folder / name, data)
    db_path = Path(config["SIGNAGE_DATABASE"])
    for suffix in ("-wal", "-shm"):  # the old journal must not be replayed onto the new file
        try:
            os.unlink(f"{db_path}{suffix}")
        except FileNotFoundError:
            pass
    atomic_write(db_path, database)
    logger.info("backup restored: %d plan file(s)", len(plan_files))
    return manifest


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupError(f"unreadable entry in backup: {member.name!r}")
    return handle.read()


def _check_database(data: bytes) -> None:
    """Refuse a database copy that SQLite does not find intact."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, DB_MEMBER)
        Path(path).write_bytes(data)
        try:
            conn = sqlite3.connect(path)
            try:
                result = conn.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"the database in the backup is unreadable: {exc}") from exc
    if result != "ok":
        raise BackupError(f"the database in the backup is damaged: {result}")
