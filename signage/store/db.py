"""Where the store's tables live: an SQLite file (the embedded default) or PostgreSQL.

The store writes one dialect of SQL, SQLite's, with `?` placeholders; the PostgreSQL backend
translates the few SQLite-isms it meets, explicitly and nothing else: `?` placeholders, and in
migrations `INTEGER PRIMARY KEY` (an identity column), `INTEGER` (64-bit in SQLite, so BIGINT),
`REAL` (double precision in SQLite), `BLOB` and `UNIQUE COLLATE NOCASE` (a unique index on
lower(column)). Anything else SQLite-only in a migration stops the migration with a message, so a
new migration cannot silently mean two different schemas. A migration that cannot be one script
for both (a table rebuild) is a mapping {"sqlite": …, "postgresql": …}, each run as written.

Both backends hand out connections with the same small surface: `execute(sql, params)` returning
a cursor with fetchone/fetchall/rowcount, rows readable by column name and by position.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from signage.config import POSTGRES_SCHEMES, is_postgres, url_passwords  # noqa: F401 (importable here)

logger = logging.getLogger(__name__)

# Any constant works: it only has to be the same in every process that migrates this database.
MIGRATION_LOCK = 0x5167_6E61  # "Sgna"


# A migration: one SQLite script translated for PostgreSQL, or one script per backend.
Migration = str | Mapping[str, str]


def migration_script(migration: Migration, backend: str) -> str:
    """The script a backend ("sqlite" or "postgresql") runs for this migration."""
    return migration if isinstance(migration, str) else migration[backend]


class StoreError(Exception):
    """A request the store cannot carry out (unknown display, invalid value)."""


class StoreUnavailable(Exception):
    """The database cannot be reached right now (PostgreSQL down or unreachable)."""


def redact_url(url: str) -> str:
    """The URL with its password masked: safe for logs, messages and `init-db`'s output."""
    if not is_postgres(url):
        return url
    try:
        parts = urlsplit(url.strip())
        if parts.password is None:
            return url
    except ValueError:
        return "postgresql://***"
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit((parts.scheme, f"{user}:***@{hostport}", parts.path, parts.query, ""))


# -- SQLite ------------------------------------------------------------------------------------
def private_database_file(path: str | os.PathLike[str]) -> None:
    """Create the database file readable by its owner only (it holds password hashes), or take
    group and other access away from an existing one.

    SQLite gives the -wal and -shm files the mode of the database file, whatever the umask,
    so creating it 0600 before SQLite opens it covers all three.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError:  # a folder we cannot write: SQLite's own error says so when it opens
        return
    else:
        os.close(fd)
        return
    try:
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            for name in (str(path), f"{path}-wal", f"{path}-shm"):
                if os.path.exists(name):
                    os.chmod(name, mode & 0o700)
            logger.warning(
                "the database was readable by other users (%s): now owner-only", oct(mode)
            )
    except OSError:  # not ours to change (another user's file, a read-only disk): leave it
        return


class SqliteBackend:
    """An SQLite file; connections come from a small pool, one thread at a time each.

    A connection per thread would mean one per kiosk socket (each holds a server thread),
    about 100 KiB apiece. WAL mode so kiosk reads never wait on an admin's write.
    """

    name = "sqlite"
    integrity_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
    for_update = ""  # SQLite locks the whole database for a write transaction (BEGIN IMMEDIATE)
    POOL_SIZE = 4  # idle connections kept; more are opened under load and closed after

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            private_database_file(path)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode keeps every acknowledged commit through a process crash.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            if conn.in_transaction:  # never hand on a connection mid-transaction
                conn.execute("ROLLBACK")
            with self._pool_lock:
                if len(self._idle) < self.POOL_SIZE:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def insert(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int | None:
        """Run an INSERT; the new row's id, or None when it inserted nothing."""
        cur = conn.execute(sql, params)
        return cur.lastrowid if cur.rowcount > 0 else None

    def migrate(self, migrations: Sequence[Migration]) -> int:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, migration in enumerate(migrations[version:], start=version + 1):
                script = migration_script(migration, self.name)
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                logger.info("database migrated to schema version %d", number)
            return max(version, len(migrations))

    def close(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# -- PostgreSQL --------------------------------------------------------------------------------
class Row:
    """A result row like sqlite3.Row: by column name or by position, and keys()."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


_LITERAL = re.compile(r"('(?:[^']|'')*')")


@lru_cache(maxsize=512)
def postgres_sql(sql: str) -> str:
    """SQLite's `?` placeholders as psycopg's `%s` (and a literal `%` doubled), outside quotes."""
    parts = _LITERAL.split(sql)
    for i in range(0, len(parts), 2):  # even parts are outside string literals
        parts[i] = parts[i].replace("%", "%%").replace("?", "%s")
    return "".join(parts)


_NOCASE_UNIQUE = re.compile(r"\b(\w+)\s+TEXT\s+NOT\s+NULL\s+UNIQUE\s+COLLATE\s+NOCASE\b", re.I)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(\w+)", re.I)
_UNTRANSLATED = re.compile(
    r"\b(AUTOINCREMENT|COLLATE|PRAGMA|WITHOUT\s+ROWID|INSERT\s+OR|STRICT|GLOB)\b", re.I
)

# Tables only PostgreSQL has, created with the migration that needs them: the plan files, which
# live in the database so that every host running the server can read them.
POSTGRES_EXTRAS: dict[int, tuple[str, ...]] = {
    6: ("CREATE TABLE plan_files (filename TEXT PRIMARY KEY, data BYTEA NOT NULL)",),
}


def postgres_statements(number: int, migration: Migration) -> list[str]:
    """Migration `number` (SQLite DDL) as PostgreSQL statements; ValueError if untranslatable."""
    if not isinstance(migration, str):  # written for PostgreSQL already
        own = [s.strip() for s in migration["postgresql"].split(";") if s.strip()]
        return [*own, *POSTGRES_EXTRAS.get(number, ())]
    script = migration
    out: list[str] = []
    for statement in filter(str.strip, script.split(";")):
        indexes: list[str] = []
        table = _CREATE_TABLE.match(statement)
        for match in _NOCASE_UNIQUE.finditer(statement):
            if table is None:
                raise ValueError(f"migration {number}: COLLATE NOCASE outside CREATE TABLE")
            column = match.group(1)
            indexes.append(
                f"CREATE UNIQUE INDEX {table.group(1)}_{column}_nocase"
                f" ON {table.group(1)} (lower({column}))"
            )
        sql = _NOCASE_UNIQUE.sub(r"\1 TEXT NOT NULL", statement)
        if found := _UNTRANSLATED.search(sql):
            raise ValueError(
                f"migration {number} uses {found.group(1)!r}, which has no PostgreSQL"
                " translation in signage/store/db.py: add one there"
            )
        sql = re.sub(r"\bINTEGER\s+PRIMARY\s+KEY\b", "BIGINT_IDENTITY", sql, flags=re.I)
        sql = re.sub(r"\bINTEGER\b", "BIGINT", sql, flags=re.I)
        sql = sql.replace("BIGINT_IDENTITY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
        sql = re.sub(r"\bREAL\b", "DOUBLE PRECISION", sql, flags=re.I)
        sql = re.sub(r"\bBLOB\b", "BYTEA", sql, flags=re.I)
        out.append(sql.strip())
        out.extend(indexes)
    out.extend(POSTGRES_EXTRAS.get(number, ()))
    return out


# Command tags of statements that change rows, and how many they changed (psycopg's rowcount).
# TRUNCATE reports no count: it changed the table all the same.
_CHANGING = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE"})


class PgConnection:
    """A pooled psycopg connection that speaks the store's SQLite dialect."""

    def __init__(self, conn: Any, backend: PostgresBackend) -> None:
        self.raw = conn
        self._backend = backend
        # Rows changed through this connection, as sqlite3's total_changes counts them: the
        # store's audit trail tells by it whether a transaction wrote anything (store/audit.py).
        # Not txid_current_if_assigned(): SELECT ... FOR UPDATE is given a transaction id too.
        self.total_changes = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        psycopg = self._backend.psycopg
        for value in params:
            if isinstance(value, str) and "\x00" in value:
                raise StoreError("text may not contain NUL characters")
        try:
            cur = self.raw.execute(postgres_sql(sql), tuple(params))
        except psycopg.OperationalError:
            if self.raw.broken or self.raw.closed:
                self._backend.mark_down()
                raise StoreUnavailable("the database connection was lost") from None
            raise
        except psycopg.DataError as exc:
            # An out-of-range number or a malformed value: the caller's input, not our fault.
            raise StoreError("a value the database cannot store") from exc
        command = (cur.statusmessage or "").split(" ", 1)[0].upper()
        if command in _CHANGING:
            self.total_changes += max(cur.rowcount, 0)
        elif command == "TRUNCATE":
            self.total_changes += 1
        return cur

    @property
    def in_transaction(self) -> bool:
        idle = self._backend.psycopg.pq.TransactionStatus.IDLE
        return self.raw.info.transaction_status != idle


class PostgresBackend:
    """A PostgreSQL database through a psycopg_pool connection pool.

    Write transactions run at READ COMMITTED; the store's read-then-write methods lock the rows
    they read with SELECT ... FOR UPDATE (`for_update`), and single-statement changes rely on
    PostgreSQL re-checking their WHERE clause against the row a concurrent writer committed.
    """

    name = "postgresql"
    for_update = " FOR UPDATE"
    MAX_CONNECTIONS = 8  # per process: requests hold one only for the length of a query
    WAIT = 5.0  # seconds a request waits for a connection while the database is up
    WAIT_WHILE_DOWN = 0.5  # ... and while it is known to be down: fail fast, kiosks go on
    RECONNECT = 10.0  # the pool gives up a reconnection attempt (and its backoff) this soon

    def __init__(self, url: str) -> None:
        import psycopg  # optional: signage[scale], needed only with PostgreSQL
        import psycopg_pool  # optional, as psycopg

        try:
            psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            # libpq's words name the bad part; the URL itself stays out of the message.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            for secret in url_passwords(url):
                reason = reason.replace(secret, "***")
            raise StoreError(f"SIGNAGE_DATABASE is not a valid PostgreSQL URL: {reason}") from None
        self.psycopg = psycopg
        self.url = url
        self.path = redact_url(url)
        self.integrity_errors = (psycopg.IntegrityError,)
        self._psycopg_pool = psycopg_pool
        self._pool: Any = None
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._state_lock = threading.Lock()
        # The pool logs every checkout at INFO and every failed reconnection attempt as a
        # warning; the store logs the outage once when it starts and once when it ends.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

    def _get_pool(self) -> Any:
        with self._lock:
            if self._pool is None:
                pool = self._psycopg_pool.ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.MAX_CONNECTIONS,
                    kwargs={"autocommit": True, "row_factory": _row_factory, "connect_timeout": 5},
                    timeout=self.WAIT,
                    reconnect_timeout=self.RECONNECT,
                    # A connection broken by a database restart is replaced, not handed out.
                    check=self._psycopg_pool.ConnectionPool.check_connection,
                    open=False,
                    name="signage",
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    def mark_down(self) -> None:
        with self._state_lock:  # many threads fail at once; one of them logs it
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        logger.error(
            "database unreachable (%s): kiosks keep what they have; changes wait",
            self._reason(),
        )

    def _reason(self) -> str:
        """Why a connection fails now (psycopg's words: host, port, user, never the password)."""
        try:
            self.psycopg.connect(self.url, connect_timeout=2).close()
        except self.psycopg.Error as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return "it answers now, but no pooled connection came free in time"

    def _mark_up(self) -> None:
        if self._down_since is None:  # the usual case, without taking the lock
            return
        with self._state_lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            logger.warning("database reachable again after %.0f s", time.monotonic() - since)

    @contextmanager
    def connection(self) -> Iterator[PgConnection]:
        pool = self._get_pool()
        wait = self.WAIT if self._down_since is None else self.WAIT_WHILE_DOWN
        try:
            raw = pool.getconn(timeout=wait)
        except self._psycopg_pool.PoolTimeout:
            self.mark_down()
            raise StoreUnavailable("the database is unreachable") from None
        self._mark_up()
        conn = PgConnection(raw, self)
        try:
            yield conn
        finally:
            if not raw.closed and not raw.broken and conn.in_transaction:
                try:
                    raw.rollback()
                except Exception:  # the pool discards a connection in a bad state
                    pass
            pool.putconn(raw)

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        with self.connection() as conn:
            try:
                with conn.raw.transaction():
                    yield conn
            except self.psycopg.OperationalError:
                # Lost at COMMIT: whether it was applied is unknown, say so rather than a 500.
                if conn.raw.broken or conn.raw.closed:
                    self.mark_down()
                    raise StoreUnavailable("the database connection was lost") from None
                raise

    def insert(self, conn: PgConnection, sql: str, params: Sequence[Any]) -> int | None:
        """Run an INSERT; the new row's id, or None when it inserted nothing."""
        row = conn.execute(f"{sql} RETURNING id", params).fetchone()
        return row[0] if row is not None else None

    def migrate(self, migrations: Sequence[Migration]) -> int:
        # Statements are translated before anything runs: an untranslatable one changes nothing.
        translated = [postgres_statements(n, s) for n, s in enumerate(migrations, start=1)]
        with self.transaction() as conn:
            # Two processes starting at once: the second waits here, then finds nothing to do.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS signage_schema (version BIGINT NOT NULL)")
            row = conn.execute("SELECT version FROM signage_schema").fetchone()
            if row is None:
                conn.execute("INSERT INTO signage_schema (version) VALUES (0)")
            version = row[0] if row is not None else 0
            for number, statements in enumerate(translated[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("UPDATE signage_schema SET version = ?", (number,))
                logger.info("database migrated to schema version %d", number)
            return max(version, len(migrations))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def open_backend(database: str) -> SqliteBackend | PostgresBackend:
    """The backend SIGNAGE_DATABASE names: a postgresql:// URL, else an SQLite file."""
    if is_postgres(database):
        try:
            return PostgresBackend(database.strip())
        except ImportError as exc:
            raise RuntimeError(
                "SIGNAGE_DATABASE is a PostgreSQL URL but psycopg is not installed:"
                " pip install 'signage[scale]'"
            ) from exc
    return SqliteBackend(database)
