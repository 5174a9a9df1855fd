"""Backup and restore: the database (a consistent copy) and the floor plans, in one tar file.

On SQLite the copy is made with SQLite's online backup API, so a running server can keep writing
while it is taken. On PostgreSQL the backup is a logical export: every table's rows as JSON
(`database.json`), read in one REPEATABLE READ transaction, and the plan files (kept in the
database) as `plans/` entries like SQLite's. A PostgreSQL restore takes either kind of backup, so
restoring an SQLite backup into PostgreSQL is how an installation moves over. pg_dump remains the
tool for PostgreSQL's own backups; this one is for moving signage's data about.

Backups are only ever written to and read from the server's own disk by the CLI: no route serves
them.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from signage import __version__
from signage.db import is_postgres
from signage.plans import atomic_write, plans_dir
from signage.store import MIGRATIONS, Store

logger = logging.getLogger(__name__)

DB_MEMBER = "signage.sqlite3"
EXPORT_MEMBER = "database.json"  # PostgreSQL backups: {table: {"columns": [...], "rows": [...]}}
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
    if is_postgres(config["SIGNAGE_DATABASE"]):
        return _create_postgres_backup(config, destination)
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
    if is_postgres(config["SIGNAGE_DATABASE"]):
        return _restore_into_postgres(config, source)
    try:
        tar = tarfile.open(source, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"not a signage backup: {exc}") from exc
    with tar:
        members = {m.name: m for m in tar.getmembers()}
        if MANIFEST not in members or DB_MEMBER not in members:
            if EXPORT_MEMBER in members:
                raise BackupError(
                    "this backup was taken from PostgreSQL; restore it into a PostgreSQL"
                    " database (SIGNAGE_DATABASE=postgresql://…)"
                )
            raise BackupError("not a signage backup (no manifest or database inside)")
        manifest = json.loads(_read(tar, members[MANIFEST]))
        database = _read(tar, members[DB_MEMBER])
        plan_files = _plan_members(tar, members)
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


def _plan_members(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> dict[str, bytes]:
    """The plan files in a backup, by file name; both restore paths read them the same way."""
    files: dict[str, bytes] = {}
    for name, member in members.items():
        if not name.startswith(PLANS_PREFIX):
            continue
        base = name[len(PLANS_PREFIX) :]
        # Only plain names: a crafted archive cannot write outside the plans folder.
        if not member.isfile() or not base or "/" in base or base.startswith("."):
            raise BackupError(f"unexpected entry in backup: {name!r}")
        files[base] = _read(tar, member)
    return files


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


# -- PostgreSQL: a logical export ---------------------------------------------------------------
# Tables in an order that satisfies their foreign keys; plan_files leaves as plans/ entries.
# signage_schema is not data: a restore checks the backup's version against it instead.
NOT_EXPORTED = {"signage_schema", "plan_files"}


def _open_store(config: dict) -> Store:
    store = Store(config["SIGNAGE_DATABASE"], "backup")  # the key signs nothing here
    store.migrate()
    return store


def _tables(conn: Any) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        " ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in NOT_EXPORTED]


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"base64"}:
        return base64.b64decode(value["base64"])
    return value


def _create_postgres_backup(config: dict, destination: str | os.PathLike[str]) -> dict:
    store = _open_store(config)
    try:
        with store.connection() as conn, conn.raw.transaction():
            # One snapshot for every table: the export is consistent while the server writes.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            export: dict[str, Any] = {}
            for table in _tables(conn):
                cur = conn.execute(f"SELECT * FROM {table} ORDER BY 1")
                rows = cur.fetchall()
                columns = [c.name for c in cur.description]
                export[table] = {
                    "columns": columns,
                    "rows": [[_encode(v) for v in row] for row in rows],
                }
            version = conn.execute("SELECT version FROM signage_schema").fetchone()[0]
            files = conn.execute("SELECT filename, data FROM plan_files ORDER BY 1").fetchall()
    finally:
        store.close()
    manifest = {
        "version": __version__,
        "backend": "postgresql",
        "schema_version": version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plans": [f["filename"] for f in files],
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
        _add_bytes(tar, EXPORT_MEMBER, json.dumps(export).encode())
        for f in files:
            _add_bytes(tar, PLANS_PREFIX + f["filename"], bytes(f["data"]))
    atomic_write(Path(destination), buffer.getvalue())
    os.chmod(destination, 0o600)
    logger.info("backup written: %d table(s), %d plan file(s)", len(export), len(files))
    return manifest


def _rows_from_sqlite(data: bytes) -> dict[str, Any]:
    """Every table of an SQLite backup, brought to the current schema first."""
    _check_database(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, DB_MEMBER)
        Path(path).write_bytes(data)
        old = Store(path, "backup")
        old.migrate()
        old.close()
        conn = sqlite3.connect(path)
        try:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            export = {}
            for table in names:
                cur = conn.execute(f"SELECT * FROM {table} ORDER BY 1")
                rows = cur.fetchall()
                export[table] = {
                    "columns": [c[0] for c in cur.description],
                    "rows": [[_encode(v) for v in row] for row in rows],
                }
            return export
        finally:
            conn.close()


def _restore_into_postgres(config: dict, source: str | os.PathLike[str]) -> dict:
    try:
        tar = tarfile.open(source, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"not a signage backup: {exc}") from exc
    with tar:
        members = {m.name: m for m in tar.getmembers()}
        if MANIFEST not in members or not ({DB_MEMBER, EXPORT_MEMBER} & set(members)):
            raise BackupError("not a signage backup (no manifest or database inside)")
        manifest = json.loads(_read(tar, members[MANIFEST]))
        files = _plan_members(tar, members)
        if EXPORT_MEMBER in members:
            if manifest.get("schema_version") != len(MIGRATIONS):
                raise BackupError(
                    f"the backup has schema version {manifest.get('schema_version')}; this"
                    f" signage has {len(MIGRATIONS)}: restore it with the version that made it"
                )
            try:
                export = json.loads(_read(tar, members[EXPORT_MEMBER]))
            except ValueError as exc:
                raise BackupError("the database in the backup is unreadable") from exc
        else:
            export = _rows_from_sqlite(_read(tar, members[DB_MEMBER]))
    store = _open_store(config)
    try:
        with store.transaction() as conn:
            tables = _tables(conn)
            unknown = set(export) - set(tables)
            if unknown:
                raise BackupError(f"the backup has tables this database has not: {sorted(unknown)}")
            conn.execute(f"TRUNCATE {', '.join([*tables, 'plan_files'])} RESTART IDENTITY")
            for table in _insert_order(conn, tables):
                content = export.get(table, {"columns": [], "rows": []})
                columns = content["columns"]
                marks = ", ".join("?" for _ in columns)
                for row in content["rows"]:
                    conn.execute(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                        tuple(_decode(v) for v in row),
                    )
                if "id" in columns:
                    # Identity columns go on after the highest id restored, not from 1.
                    conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    )
            for name, data in files.items():
                conn.execute("INSERT INTO plan_files (filename, data) VALUES (?, ?)", (name, data))
    finally:
        store.close()
    logger.info("backup restored into PostgreSQL: %d plan file(s)", len(files))
    return manifest


def _insert_order(conn: Any, tables: list[str]) -> list[str]:
    """Tables with those they reference first."""
    refs = conn.execute(
        "SELECT tc.table_name, ccu.table_name FROM information_schema.table_constraints tc"
        " JOIN information_schema.constraint_column_usage ccu"
        " ON tc.constraint_name = ccu.constraint_name"
        " WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()"
    ).fetchall()
    needs = {t: {r[1] for r in refs if r[0] == t and r[1] != t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and needs[t] <= set(ordered)]
        if not ready:  # a cycle: cannot happen with this schema, but never loop forever
            ready = [t for t in tables if t not in ordered]
        ordered.extend(ready)
    return ordered
