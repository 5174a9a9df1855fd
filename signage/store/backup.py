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
import shutil
import sqlite3
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from signage.config import __version__
from signage.store import MIGRATIONS, Store, StoreError, reissue_secrets
from signage.store.db import is_postgres
from signage.store.plans import atomic_write, plans_dir

logger = logging.getLogger(__name__)

DB_MEMBER = "signage.sqlite3"
EXPORT_MEMBER = "database.json"  # PostgreSQL backups: {table: {"columns": [...], "rows": [...]}}
PLANS_PREFIX = "plans/"
MANIFEST = "manifest.json"

# What a restore accepts (the file and what it unpacks to), so that a crafted or damaged archive
# is refused with a reason rather than filling memory or the disk: a gzip bomb of 4.5 MB once
# took a restore to 1.07 GB of memory. Each entry's size is in its header, checked before any
# byte is read; the database is streamed to disk, the rest read one entry at a time.
MAX_ARCHIVE_BYTES = 2 * 1024**3
MAX_TOTAL_BYTES = 4 * 1024**3
MAX_MEMBERS = 10_000  # a manifest, a database and one plan per floor
MAX_MANIFEST_BYTES = 1024**2
MAX_DATABASE_BYTES = 1024**3
MAX_EXPORT_BYTES = 256 * 1024**2  # parsed whole: JSON has no streaming reader in the stdlib
MAX_PLAN_BYTES = 64 * 1024**2


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


def restore_backup(
    config: dict, source: str | os.PathLike[str], keep_credentials: bool = False
) -> dict:
    """Replace the database and plans with a backup's (the server must be stopped).

    Every display and admin gets a new secret unless `keep_credentials`: a credential revoked
    since the backup was taken (or a session ended since) must not open anything again, so
    screens pair again and admins sign in again. Ids go on after every id either database
    issued, so none is given twice.
    """
    if is_postgres(config["SIGNAGE_DATABASE"]):
        return _restore_into_postgres(config, source, keep_credentials)
    db_path = Path(config["SIGNAGE_DATABASE"])
    with _open_archive(source) as (tar, members):
        if MANIFEST not in members or DB_MEMBER not in members:
            if EXPORT_MEMBER in members:
                raise BackupError(
                    "this backup was taken from PostgreSQL; restore it into a PostgreSQL"
                    " database (SIGNAGE_DATABASE=postgresql://…)"
                )
            raise BackupError("not a signage backup (no manifest or database inside)")
        manifest = _manifest(tar, members[MANIFEST])
        plan_members = _plan_members(members)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.TemporaryDirectory(dir=db_path.parent, prefix=".restore-")
        with staging as tmp:
            staged = Path(tmp) / DB_MEMBER
            _copy_member(tar, members[DB_MEMBER], staged)
            _check_database(staged)
            _prepare_database(staged, db_path, keep_credentials)
            folder = plans_dir(config)
            for name, member in plan_members.items():
                atomic_write(folder / name, _read(tar, member, MAX_PLAN_BYTES))
            for suffix in ("-wal", "-shm"):  # the old journal must not be replayed onto the new
                try:
                    os.unlink(f"{db_path}{suffix}")
                except FileNotFoundError:
                    pass
            os.replace(staged, db_path)
            _fsync_dir(db_path.parent)
    logger.info(
        "backup restored: %d plan file(s), credentials %s",
        len(plan_members),
        "kept" if keep_credentials else "issued anew",
    )
    return manifest


# -- reading an archive: every entry checked before anything is read ---------------------------
@contextmanager
def _open_archive(
    source: str | os.PathLike[str],
) -> Iterator[tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]]:
    """The archive and its entries by name, once every entry's header has passed the limits."""
    try:
        size = os.stat(source).st_size
    except OSError as exc:
        raise BackupError(f"cannot read the backup: {exc.strerror}") from exc
    if size > MAX_ARCHIVE_BYTES:
        raise BackupError(
            f"the backup is {_mib(size)}: larger than the {_mib(MAX_ARCHIVE_BYTES)} a restore"
            " accepts"
        )
    try:
        tar = tarfile.open(source, mode="r:gz")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise BackupError(f"not a signage backup: {exc}") from exc
    with tar:
        members: dict[str, tarfile.TarInfo] = {}
        total = 0
        try:
            # Header by header (never getmembers()): the count is checked as it grows.
            for member in tar:
                if len(members) >= MAX_MEMBERS:
                    raise BackupError(
                        f"the backup has more than {MAX_MEMBERS} entries: not one signage made"
                    )
                _check_member(member)
                if member.name in members:
                    raise BackupError(f"the backup has the entry {member.name!r} twice")
                members[member.name] = member
                total += member.size
                if total > MAX_TOTAL_BYTES:
                    raise BackupError(
                        f"the backup unpacks to more than {_mib(MAX_TOTAL_BYTES)}: refused"
                    )
        except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
            raise BackupError(f"the backup is damaged: {exc}") from exc
        yield tar, members


def _check_member(member: tarfile.TarInfo) -> None:
    """Only regular files, each within the size its kind may have."""
    if not member.isreg():
        raise BackupError(
            f"backup entry {member.name!r} is not a regular file (links, devices and folders"
            " are refused)"
        )
    limit = _limit_for(member.name)
    if member.size > limit:
        raise BackupError(
            f"backup entry {member.name!r} is {_mib(member.size)}: larger than the"
            f" {_mib(limit)} a restore accepts for it"
        )


def _limit_for(name: str) -> int:
    if name == MANIFEST:
        return MAX_MANIFEST_BYTES
    if name == DB_MEMBER:
        return MAX_DATABASE_BYTES
    if name == EXPORT_MEMBER:
        return MAX_EXPORT_BYTES
    return MAX_PLAN_BYTES  # plans, and anything else (which is not read)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _manifest(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    manifest = _json(_read(tar, member, MAX_MANIFEST_BYTES), "manifest")
    if not isinstance(manifest, dict):
        raise BackupError("the backup's manifest is not a JSON object")
    return manifest


def _json(data: bytes, what: str) -> Any:
    """Parsed JSON, or a BackupError saying what is wrong with it."""
    try:
        return json.loads(data)
    except RecursionError:
        raise BackupError(f"the backup's {what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both
        raise BackupError(f"the backup's {what} is not valid JSON: {exc}") from None


def _plan_members(members: dict[str, tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    """The plan files in a backup, by file name; both restore paths read them the same way."""
    files: dict[str, tarfile.TarInfo] = {}
    for name, member in members.items():
        if not name.startswith(PLANS_PREFIX):
            continue
        base = name[len(PLANS_PREFIX) :]
        # Only plain names: a crafted archive cannot write outside the plans folder.
        if not base or "/" in base or "\\" in base or base.startswith("."):
            raise BackupError(f"unexpected entry in backup: {name!r}")
        files[base] = member
    return files


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    """An entry's bytes, never more than `limit` (its header was checked; this holds anyway)."""
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupError(f"unreadable entry in backup: {member.name!r}")
    try:
        data = handle.read(limit + 1)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise BackupError(f"backup entry {member.name!r} is damaged: {exc}") from exc
    if len(data) > limit:
        raise BackupError(f"backup entry {member.name!r} is larger than {_mib(limit)}")
    return data


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    """Stream an entry to a new owner-only file, a megabyte at a time."""
    handle = tar.extractfile(member)
    if handle is None:
        raise BackupError(f"unreadable entry in backup: {member.name!r}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        try:
            shutil.copyfileobj(handle, out, 1024 * 1024)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise BackupError(f"backup entry {member.name!r} is damaged: {exc}") from exc
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_only_uri(path: Path) -> str:
    # as_uri() percent-encodes: a folder named with "?" or "#" stays part of the path.
    return f"{Path(path).resolve().as_uri()}?mode=ro"


def _check_database(path: Path) -> None:
    """Refuse a database copy that SQLite does not find intact."""
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the database in the backup is unreadable: {exc}") from exc
    if result != "ok":
        raise BackupError(f"the database in the backup is damaged: {result}")


def _migrate_staged(path: Path, reissue: bool = False) -> None:
    """Bring a staged SQLite copy to this version's schema (new credentials with `reissue`);
    a BackupError, not a traceback, for another program's database or a newer version's."""
    conn = sqlite3.connect(_read_only_uri(path), uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise BackupError(f"the database in the backup is unreadable: {exc}") from exc
    finally:
        conn.close()
    if version > len(MIGRATIONS):
        raise BackupError(
            f"the backup was taken by a newer version of signage (schema {version}; this"
            f" version knows up to {len(MIGRATIONS)}): upgrade signage, then restore it"
        )
    if version == 0 or "displays" not in tables:
        raise BackupError("the database in the backup is not a signage database")
    store = Store(str(path), "backup")  # the key signs nothing here
    try:
        store.migrate()
        if reissue:
            store.reissue_credentials()
    except (sqlite3.Error, StoreError) as exc:
        raise BackupError(
            f"the database in the backup does not fit this version's schema: {exc}"
        ) from exc
    finally:
        store.close()


def _prepare_database(staged: Path, live: Path, keep_credentials: bool) -> None:
    """Bring a staged SQLite copy to this version's schema, issue new credentials (unless
    kept) and carry the live database's id high-water marks over, before it goes in place."""
    _migrate_staged(staged, reissue=not keep_credentials)
    issued = _sqlite_high_water(live) if live.exists() else {}
    conn = sqlite3.connect(staged, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for table, seq in issued.items():
            # Ids the live database issued after the backup was taken stay used.
            if conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = ?", (table,)).fetchone():
                conn.execute(
                    "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, table)
                )
            else:
                conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, seq))
        conn.execute("COMMIT")
        # Everything into the main file: the staged -wal goes away when this connection closes.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _sqlite_high_water(path: Path) -> dict[str, int]:
    """The highest id each AUTOINCREMENT table of an SQLite database has issued."""
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
    except sqlite3.Error:
        return {}
    try:
        rows = conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
    except sqlite3.Error:  # no AUTOINCREMENT table yet, or not a database at all
        return {}
    finally:
        conn.close()
    return {name: int(seq) for name, seq in rows if isinstance(seq, int)}


# -- PostgreSQL: a logical export ---------------------------------------------------------------
# Tables in an order that satisfies their foreign keys; plan_files leaves as plans/ entries.
# signage_schema is not data: a restore checks the backup's version against it instead.
NOT_EXPORTED = {"signage_schema", "plan_files"}


def open_store(config: dict) -> Store:
    """The configured database, migrated (the key signs nothing here): for the export, and for
    the audit trail's entry of a backup or restore (actions/backup.py)."""
    store = Store(config["SIGNAGE_DATABASE"], "backup")
    store.migrate()
    return store


_open_store = open_store


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
            issued = {t: _issued(conn, t) for t in _id_tables(conn, list(export))}
            files = conn.execute("SELECT filename, data FROM plan_files ORDER BY 1").fetchall()
    finally:
        store.close()
    manifest = {
        "version": __version__,
        "backend": "postgresql",
        "schema_version": version,
        "id_high_water": issued,
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


def _rows_from_sqlite(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Every table of a staged SQLite backup, brought to the current schema first, and the
    highest id each of its tables has issued."""
    _check_database(path)
    _migrate_staged(path)
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
    finally:
        conn.close()
    return export, _sqlite_high_water(path)


def _check_export(export: Any) -> dict[str, Any]:
    """A PostgreSQL backup's tables, shaped as this module writes them."""
    if not isinstance(export, dict):
        raise BackupError("the database in the backup is not a JSON object of tables")
    for table, content in export.items():
        ok = (
            isinstance(content, dict)
            and isinstance(content.get("columns"), list)
            and all(isinstance(c, str) for c in content["columns"])
            and isinstance(content.get("rows"), list)
            and all(
                isinstance(r, list) and len(r) == len(content["columns"]) for r in content["rows"]
            )
        )
        if not ok:
            raise BackupError(f"the backup's table {table!r} is not in the expected shape")
    return export


def _id_tables(conn: Any, tables: list[str]) -> list[str]:
    """The tables whose `id` is an identity column (with a sequence to keep ahead)."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND column_name = 'id' AND is_identity = 'YES'"
    ).fetchall()
    return sorted({r[0] for r in rows} & set(tables))


def _issued(conn: Any, table: str) -> int:
    """The highest value the id sequence of `table` has handed out (0 if none)."""
    row = conn.execute(
        f"SELECT pg_sequence_last_value(pg_get_serial_sequence('{table}', 'id'))"
    ).fetchone()
    return int(row[0] or 0)


def _restore_into_postgres(
    config: dict, source: str | os.PathLike[str], keep_credentials: bool = False
) -> dict:
    with _open_archive(source) as (tar, members):
        if MANIFEST not in members or not ({DB_MEMBER, EXPORT_MEMBER} & set(members)):
            raise BackupError("not a signage backup (no manifest or database inside)")
        manifest = _manifest(tar, members[MANIFEST])
        plan_members = _plan_members(members)
        if EXPORT_MEMBER in members:
            if manifest.get("schema_version") != len(MIGRATIONS):
                raise BackupError(
                    f"the backup has schema version {manifest.get('schema_version')!r}; this"
                    f" signage has {len(MIGRATIONS)}: restore it with the version that made it"
                )
            data = _read(tar, members[EXPORT_MEMBER], MAX_EXPORT_BYTES)
            export = _check_export(_json(data, "database"))
            del data
            backup_issued = manifest.get("id_high_water")
            if not isinstance(backup_issued, dict):
                backup_issued = {}
        else:
            with tempfile.TemporaryDirectory(prefix="signage-restore-") as tmp:
                staged = Path(tmp) / DB_MEMBER
                _copy_member(tar, members[DB_MEMBER], staged)
                export, backup_issued = _rows_from_sqlite(staged)
        store = _open_store(config)
        try:
            with store.transaction() as conn:
                tables = _tables(conn)
                unknown = set(export) - set(tables)
                if unknown:
                    raise BackupError(
                        f"the backup has tables this database has not: {sorted(unknown)}"
                    )
                id_tables = _id_tables(conn, tables)
                # Before the truncation resets them: ids this database has issued stay used.
                issued = {t: _issued(conn, t) for t in id_tables}
                conn.execute(f"TRUNCATE {', '.join([*tables, 'plan_files'])} RESTART IDENTITY")
                for table in _insert_order(conn, tables):
                    content = export.get(table, {"columns": [], "rows": []})
                    columns = content["columns"]
                    known = _columns(conn, table)
                    if set(columns) - known:
                        raise BackupError(
                            f"the backup's table {table!r} has columns this database has not:"
                            f" {sorted(set(columns) - known)}"
                        )
                    marks = ", ".join("?" for _ in columns)
                    for row in content["rows"]:
                        conn.execute(
                            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                            tuple(_decode(v) for v in row),
                        )
                for table in id_tables:
                    high = max(issued[table], _int(backup_issued.get(table)))
                    # Identity columns go on after every id either database issued, not from 1.
                    conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" GREATEST(COALESCE((SELECT MAX(id) FROM {table}), 0), ?) + 1, false)",
                        (high,),
                    )
                for name, member in plan_members.items():
                    data = _read(tar, member, MAX_PLAN_BYTES)
                    conn.execute(
                        "INSERT INTO plan_files (filename, data) VALUES (?, ?)", (name, data)
                    )
                if not keep_credentials:
                    reissue_secrets(conn)  # with the rows, in one transaction
        finally:
            store.close()
    logger.info(
        "backup restored into PostgreSQL: %d plan file(s), credentials %s",
        len(plan_members),
        "kept" if keep_credentials else "issued anew",
    )
    return manifest


def _columns(conn: Any, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    ).fetchall()
    return {r[0] for r in rows}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


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
