"""The audit trail's table: who changed what, when, with the settings before and after.

A mixin of the Store, as store/console.py is. A change is recorded in the same transaction as
the change itself wherever the store makes that change: `audited()` leaves the entry pending
for this thread, and the Store's `transaction()` writes it (`_flush_audit`) just before its
COMMIT. So a crash mid-write leaves both or neither: never a record of a change that did not
happen, never a change without its record. A change the database does not hold (a reload sent
to screens, a plan file on SQLite's disk written before its row) has no such transaction; its
entry is written right after the change succeeded, when the block ends.

Entries never hold secrets: the caller gives settings, and `scrub` drops any key that names a
password, hash, token, secret, credential or link on the way in, as a second guard.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["AuditEntry", "AuditFilter", "AuditLog", "PendingAudit", "scrub"]

# Keys never kept in an entry's settings, whatever the caller passes.
SECRET_KEY = re.compile(r"password|hash|token|secret|credential|url|link|key", re.I)
MAX_TEXT = 200  # a name or id as recorded: enough to recognise it, bounded

# What a change stored that its caller learns only from the store (a sanitised plan's size and
# digest, a layout's new version): read by the target's id inside the change's own transaction.
AFTER_QUERIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "plan": (
        "SELECT content_type, size, sha256 FROM plans WHERE floor_id = ?",
        ("content_type", "size", "sha256"),
    ),
    "layout": ("SELECT version FROM layouts WHERE floor_id = ?", ("version",)),
    "account": ("SELECT role FROM admins WHERE CAST(id AS TEXT) = ?", ("role",)),
}


def scrub(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """The settings without any key that could hold a secret (nested dicts too)."""
    if values is None:
        return None
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if SECRET_KEY.search(str(key)) and key != "logo_url":
            continue  # logo_url is a public image address on the kiosk page, not a secret
        clean[str(key)] = scrub(value) if isinstance(value, dict) else value
    return clean


@dataclass
class PendingAudit:
    """An entry waiting for its change: written with the change's transaction, or after it."""

    actor_kind: str
    actor: str
    action: str
    target_kind: str
    target_id: str | None = None
    target_name: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    id_from_insert: bool = False  # a creation: the target's id is the transaction's new row
    after_from: str | None = None  # a key of AFTER_QUERIES: `after` read in the same transaction
    written: bool = field(default=False, compare=False)
    # A transaction committed in the block without changing a row: the change was refused or
    # had nothing to do (a code no screen shows, a display removed already): nothing to record.
    unchanged: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change."""

    id: int
    at: float  # Unix seconds
    actor_kind: str  # account, token, cli or system
    actor: str
    action: str  # dotted: display.update, plan.replace, account.role…
    target_kind: str
    target_id: str | None
    target_name: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def public(self) -> dict[str, Any]:
        """The entry as the API answers it."""
        return {
            "id": self.id,
            "at": self.at,
            "actor_kind": self.actor_kind,
            "actor": self.actor,
            "action": self.action,
            "target_kind": self.target_kind,
            "target_id": self.target_id,
            "target_name": self.target_name,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to read: every given field must match (None: any)."""

    actor: str | None = None  # exact name
    target_kind: str | None = None
    target: str | None = None  # the target's id, or a part of its name (case-insensitive)
    action: str | None = None  # exact, or a prefix ending in "." (display.)
    since: float | None = None  # Unix seconds, inclusive
    until: float | None = None  # Unix seconds, exclusive

    def where(self) -> tuple[str, tuple[Any, ...]]:
        """The SQL condition and its parameters."""
        parts: list[str] = []
        params: list[Any] = []
        if self.actor:
            parts.append("actor = ?")
            params.append(self.actor)
        if self.target_kind:
            parts.append("target_kind = ?")
            params.append(self.target_kind)
        if self.target:
            like = "%" + re.sub(r"([\\%_])", r"\\\1", self.target.lower()) + "%"
            parts.append("(target_id = ? OR lower(target_name) LIKE ? ESCAPE '\\')")
            params.extend([self.target, like])
        if self.action:
            if self.action.endswith("."):
                parts.append("substr(action, 1, ?) = ?")
                params.extend([len(self.action), self.action])
            else:
                parts.append("action = ?")
                params.append(self.action)
        if self.since is not None:
            parts.append("at >= ?")
            params.append(self.since)
        if self.until is not None:
            parts.append("at < ?")
            params.append(self.until)
        return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(params)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).replace("\x00", "")
    return text[:MAX_TEXT]


def _json(values: dict[str, Any] | None) -> str | None:
    return None if values is None else json.dumps(scrub(values), sort_keys=True, default=str)


class AuditLog:
    """The audit_log table: pending entries, writing, reading with filters, pruning."""

    backend: str  # the Store's

    def _query(self, sql: str, params: tuple = ()) -> list[Any]:  # the Store's
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:  # the Store's
        raise NotImplementedError

    @property
    def _audit_local(self) -> threading.local:
        local = self.__dict__.get("_audit_thread")
        if local is None:
            local = self.__dict__.setdefault("_audit_thread", threading.local())
        return local

    def _pending_audit(self) -> list[PendingAudit]:
        local = self._audit_local
        if not hasattr(local, "pending"):
            local.pending = []
        return local.pending

    @contextmanager
    def audited(self, entry: PendingAudit) -> Iterator[PendingAudit]:
        """Record `entry` with the change made inside the block (see the module's docstring):
        in the first write transaction that commits in it on this thread, else right after
        the block ends without an error. An error before any commit records nothing."""
        pending = self._pending_audit()
        pending.append(entry)
        try:
            yield entry
        finally:
            pending.remove(entry)
        if not entry.written and not entry.unchanged:
            # No store transaction carried the change (it is outside the database, or made
            # through a path of its own): recorded right after it succeeded.
            with self.transaction() as conn:
                self._write_audit(conn, entry)

    def _audit_mark(self, conn: Any) -> int:
        """Where a transaction starts, to tell at its end whether it changed a row: the rows
        changed through its connection so far (sqlite3's total_changes, no trigger adding to it
        in this schema; on PostgreSQL store/db.py's PgConnection counts the same way). A lock
        (SELECT ... FOR UPDATE) or a statement that matched nothing changes no row."""
        return int(conn.total_changes)

    def _flush_audit(self, conn: Any, mark: int) -> None:
        """Write this thread's pending entries inside the transaction about to commit, if it
        changed a row."""
        local = self.__dict__.get("_audit_thread")
        pending = getattr(local, "pending", ())
        waiting = [e for e in pending if not e.written and not e.unchanged]
        if not waiting:
            return
        changed = conn.total_changes != mark
        for entry in waiting:
            if changed:
                self._write_audit(conn, entry)
            else:
                entry.unchanged = True

    def _write_audit(self, conn: Any, entry: PendingAudit) -> None:
        if entry.id_from_insert and entry.target_id is None:
            sql = (
                "SELECT lastval()" if self.backend == "postgresql" else "SELECT last_insert_rowid()"
            )
            row = conn.execute(sql).fetchone()
            entry.target_id = str(row[0]) if row is not None and row[0] else None
        if entry.after_from is not None:
            sql, columns = AFTER_QUERIES[entry.after_from]
            row = conn.execute(sql, (entry.target_id,)).fetchone()
            if row is not None:
                entry.after = {**(entry.after or {}), **{c: row[c] for c in columns}}
        conn.execute(
            "INSERT INTO audit_log (at, actor_kind, actor, action, target_kind, target_id,"
            " target_name, before_json, after_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                time.time(),
                _text(entry.actor_kind),
                _text(entry.actor) or "unknown",
                _text(entry.action),
                _text(entry.target_kind),
                _text(entry.target_id),
                _text(entry.target_name),
                _json(entry.before),
                _json(entry.after),
            ),
        )
        entry.written = True

    def tally_audit(
        self, entry: PendingAudit, since: float, lists: dict[str, str], most: int = 10
    ) -> None:
        """Count one more attempt in the latest entry like `entry` (same action and target)
        recorded since `since` (Unix seconds), or start one: `after` holds "attempts" and, for
        each key of `lists`, up to `most` distinct values seen (an address, a name tried). So a
        loop of attempts adds one row per target and window, whatever its rate."""
        for_update = " FOR UPDATE" if self.backend == "postgresql" else ""
        with self.transaction() as conn:
            if self.backend == "postgresql":
                # FOR UPDATE locks the row found, but the first attempts of a window find none
                # and would each start an entry (four at once made up to three rows): one lock
                # per action and target orders them. SQLite's write lock already does.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(?))",
                    (f"audit tally {entry.action} {entry.target_kind} {entry.target_id or ''}",),
                )
            row = conn.execute(
                "SELECT id, after_json FROM audit_log WHERE action = ? AND target_kind = ?"
                " AND COALESCE(target_id, '') = ? AND at >= ? ORDER BY id DESC LIMIT 1"
                + for_update,
                (
                    _text(entry.action),
                    _text(entry.target_kind),
                    _text(entry.target_id) or "",
                    since,
                ),
            ).fetchone()
            after = json.loads(row["after_json"]) if row is not None and row["after_json"] else {}
            after["attempts"] = int(after.get("attempts") or 0) + 1
            for key, value in lists.items():
                seen = after.setdefault(key, [])
                if value not in seen and len(seen) < most:
                    seen.append(_text(value))
            if row is None:
                entry.after = after
                self._write_audit(conn, entry)
            else:
                conn.execute(
                    "UPDATE audit_log SET after_json = ? WHERE id = ?", (_json(after), row["id"])
                )

    # -- reading --------------------------------------------------------------------------------
    @staticmethod
    def _audit_entry(row: Any) -> AuditEntry:
        return AuditEntry(
            id=int(row["id"]),
            at=float(row["at"]),
            actor_kind=row["actor_kind"],
            actor=row["actor"],
            action=row["action"],
            target_kind=row["target_kind"],
            target_id=row["target_id"],
            target_name=row["target_name"],
            before=json.loads(row["before_json"]) if row["before_json"] else None,
            after=json.loads(row["after_json"]) if row["after_json"] else None,
        )

    def audit_entries(
        self, where: AuditFilter | None = None, limit: int = 50, offset: int = 0
    ) -> list[AuditEntry]:
        """Entries matching the filter, newest first."""
        sql, params = (where or AuditFilter()).where()
        rows = self._query(
            f"SELECT * FROM audit_log{sql} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
            (*params, max(0, limit), max(0, offset)),
        )
        return [self._audit_entry(r) for r in rows]

    def count_audit(self, where: AuditFilter | None = None) -> int:
        """How many entries match the filter."""
        sql, params = (where or AuditFilter()).where()
        return int(self._query(f"SELECT COUNT(*) FROM audit_log{sql}", params)[0][0])

    def audit_choices(self) -> tuple[list[str], list[str]]:
        """The names that have changed something and the kinds changed (the filters' lists)."""
        actors = [r[0] for r in self._query("SELECT DISTINCT actor FROM audit_log")]
        kinds = [r[0] for r in self._query("SELECT DISTINCT target_kind FROM audit_log")]
        return sorted(actors, key=str.lower), sorted(kinds)

    def prune_audit(self, older_than: float) -> int:
        """Forget entries from before `older_than` (Unix seconds); how many."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM audit_log WHERE at < ?", (older_than,))
        return max(cur.rowcount, 0)
