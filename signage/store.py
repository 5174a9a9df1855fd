"""SQLite storage: schema migrations, displays and their revocable kiosk credentials.

Connections come from a small pool, one thread at a time each: a connection per thread would
mean one per kiosk socket (each holds a server thread), about 100 KiB apiece. WAL mode so kiosk
reads never wait on an admin's write, and every multi-row change in one transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Each entry moves the schema one version forward; applied in order, never edited once shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE displays (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        floor_id TEXT NOT NULL,
        density_display_id TEXT,
        key_generation INTEGER NOT NULL DEFAULT 1,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX displays_floor ON displays (floor_id);
    """,
    # The phone view's read-only link ("take this map with you") is revocable on its own.
    """
    ALTER TABLE displays ADD COLUMN phone_key_generation INTEGER NOT NULL DEFAULT 1;
    """,
)


class StoreError(Exception):
    """A request the store cannot carry out (unknown display, invalid value)."""


@dataclass(frozen=True)
class Display:
    """A screen (or several showing the same thing) configured for one floor."""

    id: int
    name: str
    floor_id: str
    density_display_id: str | None
    key_generation: int
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    phone_key_generation: int = 1
    updated_at: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _now_precise() -> str:
    # Part of the kiosk's ETag: two edits within a second must still differ.
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Store:
    """The app's database: open, migrate, and read and write displays."""

    POOL_SIZE = 4  # idle connections kept; more are opened under load and closed after

    def __init__(self, path: str, secret_key: str) -> None:
        self.path = path
        self._secret = secret_key.encode()
        self._idle: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    # -- connection life cycle -------------------------------------------------------------
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
        """A connection for this thread's use until the block ends."""
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
        """One write transaction; rolled back whole if anything in it fails."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the idle connections."""
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                logger.info("database migrated to schema version %d", number)
            return len(MIGRATIONS) if version < len(MIGRATIONS) else version

    # -- displays ---------------------------------------------------------------------------
    @staticmethod
    def _display(row: sqlite3.Row) -> Display:
        return Display(
            id=row["id"],
            name=row["name"],
            floor_id=row["floor_id"],
            density_display_id=row["density_display_id"],
            key_generation=row["key_generation"],
            settings=json.loads(row["settings"] or "{}"),
            phone_key_generation=row["phone_key_generation"],
            updated_at=row["updated_at"],
        )

    def add_display(
        self,
        name: str,
        floor_id: str,
        density_display_id: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Display:
        """Create a display for a floor."""
        name, floor_id = name.strip(), floor_id.strip()
        if not name:
            raise StoreError("a display needs a name")
        if not floor_id:
            raise StoreError("a display needs a floor id")
        now = _now()
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO displays (name, floor_id, density_display_id, settings,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, floor_id, density_display_id or None, json.dumps(settings or {}), now, now),
            )
            row = conn.execute("SELECT * FROM displays WHERE id = ?", (cur.lastrowid,)).fetchone()
        return self._display(row)

    def get_display(self, display_id: int) -> Display | None:
        """The display with this id, or None."""
        rows = self._query("SELECT * FROM displays WHERE id = ?", (display_id,))
        return self._display(rows[0]) if rows else None

    def list_displays(self, floor_id: str | None = None) -> list[Display]:
        """Every display, or those of one floor, in id order."""
        if floor_id is None:
            rows = self._query("SELECT * FROM displays ORDER BY id")
        else:
            rows = self._query("SELECT * FROM displays WHERE floor_id = ? ORDER BY id", (floor_id,))
        return [self._display(r) for r in rows]

    def remove_display(self, display_id: int) -> bool:
        """Delete a display; True when one was deleted."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM displays WHERE id = ?", (display_id,))
        return cur.rowcount > 0

    def update_display_settings(self, display_id: int, settings: dict[str, Any]) -> Display:
        """Replace a display's settings (orientation, theme, filters…)."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE displays SET settings = ?, updated_at = ? WHERE id = ?",
                (json.dumps(settings), _now_precise(), display_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no display {display_id}")
            row = conn.execute("SELECT * FROM displays WHERE id = ?", (display_id,)).fetchone()
        return self._display(row)

    def revoke_phone_link(self, display_id: int) -> Display:
        """Invalidate the display's phone link; a new one replaces it."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE displays SET phone_key_generation = phone_key_generation + 1,"
                " updated_at = ? WHERE id = ?",
                (_now_precise(), display_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no display {display_id}")
            row = conn.execute("SELECT * FROM displays WHERE id = ?", (display_id,)).fetchone()
        return self._display(row)

    def revoke_display(self, display_id: int) -> Display:
        """Invalidate the display's credential; a new one replaces it."""
        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE displays SET key_generation = key_generation + 1, updated_at = ?"
                " WHERE id = ?",
                (_now(), display_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no display {display_id}")
            row = conn.execute("SELECT * FROM displays WHERE id = ?", (display_id,)).fetchone()
        return self._display(row)

    # -- credentials ------------------------------------------------------------------------
    # A credential is "<id>.<hmac(secret, purpose:id:generation)>": nothing secret is stored, an
    # admin can show the URL again at any time, and bumping the generation revokes it. The
    # kiosk credential and the phone link differ by purpose, so one never opens the other.
    def _mac(self, purpose: str, display_id: int, generation: int) -> str:
        message = f"{purpose}:{display_id}:{generation}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def credential(self, display: Display) -> str:
        """The display's current kiosk credential (goes in its kiosk and socket URLs)."""
        return f"{display.id}.{self._mac('display', display.id, display.key_generation)}"

    def phone_credential(self, display: Display) -> str:
        """The display's read-only phone link credential (the QR code)."""
        return f"{display.id}.{self._mac('phone', display.id, display.phone_key_generation)}"

    def _lookup(self, credential: str, expected: Any) -> Display | None:
        head, _, _mac = credential.partition(".")
        if not head.isdigit() or len(credential) > 64:
            return None
        display = self.get_display(int(head))
        if display is None:
            return None
        return display if hmac.compare_digest(expected(display), credential) else None

    def display_for_credential(self, credential: str) -> Display | None:
        """The display a kiosk credential belongs to, if it is current; None otherwise."""
        return self._lookup(credential, self.credential)

    def display_for_phone_credential(self, credential: str) -> Display | None:
        """The display a phone link belongs to, if it is current; None otherwise."""
        return self._lookup(credential, self.phone_credential)
