"""The app's database: schema migrations, displays and their revocable kiosk credentials,
admins, tokens, pairing codes, plans, layouts and announcements.

The same tables, migrations and methods on SQLite (an embedded file, the default) and on
PostgreSQL (SIGNAGE_DATABASE=postgresql://…, for several processes or hosts); store/db.py holds
what differs. Every multi-row change runs in one transaction. On SQLite a write transaction locks
the database (BEGIN IMMEDIATE); on PostgreSQL the methods that read before they write lock the
rows they read (SELECT … FOR UPDATE), so both give the same answers to concurrent callers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from signage.store.accounts import AccountRoles
from signage.store.audit import AuditLog
from signage.store.console import ConsoleTables
from signage.store.db import StoreError, StoreUnavailable, open_backend
from signage.store.migrations import MIGRATIONS
from signage.store.plan_versions import keep_live
from signage.store.rows import (
    Admin,
    Announcement,
    ApiToken,
    Display,
    Layout,
    PairingCode,
    Plan,
    check_text,
    display_identity,
    has_nul,
    new_row_secret,
    precise_timestamp,
    reissue_secrets,
    timestamp,
)

logger = logging.getLogger(__name__)

__all__ = ["ADMIN_ROLES", "Store", "StoreError", "StoreUnavailable"]

# What an account may be: owner (also manages accounts), admin, or viewer (reads only).
ADMIN_ROLES = ("owner", "admin", "viewer")


class Store(ConsoleTables, AuditLog, AccountRoles):
    """The app's database: open, migrate, and read and write displays."""

    def __init__(self, path: str, secret_key: str) -> None:
        self._db = open_backend(path)
        self.path = self._db.path  # a PostgreSQL URL without its password
        self.backend = self._db.name  # "sqlite" or "postgresql"
        # On PostgreSQL plan files live in the database, where every host can read them.
        self.plans_in_database = self.backend == "postgresql"
        self._secret = secret_key.encode()
        self._for_update = self._db.for_update

    # -- connection life cycle -------------------------------------------------------------
    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection for this thread's use until the block ends."""
        with self._db.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One write transaction; rolled back whole if anything in it fails."""
        with self._db.transaction() as conn:
            mark = self._audit_mark(conn)
            yield conn
            self._flush_audit(conn, mark)  # a change's audit entry commits with it (store/audit.py)

    def _query(self, sql: str, params: tuple = ()) -> list[Any]:
        with self.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the idle connections (the store opens new ones if used again)."""
        self._db.close()

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        return self._db.migrate(MIGRATIONS)

    # -- displays ---------------------------------------------------------------------------
    @staticmethod
    def _display(row: Any) -> Display:
        return Display(
            id=row["id"],
            name=row["name"],
            floor_id=row["floor_id"],
            density_display_id=row["density_display_id"],
            key_generation=row["key_generation"],
            settings=json.loads(row["settings"] or "{}"),
            phone_key_generation=row["phone_key_generation"],
            updated_at=row["updated_at"],
            secret=row["secret"],
        )

    def add_display(
        self,
        name: str,
        floor_id: str,
        density_display_id: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Display:
        """Create a display for a floor."""
        name, floor_id = display_identity(name, floor_id, density_display_id)
        now = timestamp()
        with self.transaction() as conn:
            new_id = self._db.insert(
                conn,
                "INSERT INTO displays (name, floor_id, density_display_id, settings,"
                " created_at, updated_at, secret) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    floor_id,
                    density_display_id or None,
                    json.dumps(settings or {}),
                    now,
                    now,
                    new_row_secret(),
                ),
            )
            row = conn.execute("SELECT * FROM displays WHERE id = ?", (new_id,)).fetchone()
        return self._display(row)

    def get_display(self, display_id: int) -> Display | None:
        """The display with this id, or None."""
        rows = self._query("SELECT * FROM displays WHERE id = ?", (display_id,))
        return self._display(rows[0]) if rows else None

    def list_displays(self, floor_id: str | None = None) -> list[Display]:
        """Every display, or those of one floor, in id order."""
        if floor_id is None:
            rows = self._query("SELECT * FROM displays ORDER BY id")
        elif has_nul(floor_id):
            rows = []
        else:
            rows = self._query("SELECT * FROM displays WHERE floor_id = ? ORDER BY id", (floor_id,))
        return [self._display(r) for r in rows]

    def remove_display(self, display_id: int, now: float | None = None) -> bool:
        """Delete a display and cancel the announcements sent to it; True when one was deleted."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM displays WHERE id = ?", (display_id,))
            if cur.rowcount > 0:
                # Its messages end with it: none may ever show on another screen.
                conn.execute(
                    "UPDATE announcements SET cancelled_at = ? WHERE scope = 'display'"
                    " AND target = ? AND cancelled_at IS NULL",
                    (time.time() if now is None else now, str(display_id)),
                )
        return cur.rowcount > 0

    def _update_display(self, display_id: int, assignments: str, params: tuple = ()) -> Display:
        """Apply `SET assignments` (updated_at too) to one display and return it."""
        with self.transaction() as conn:
            cur = conn.execute(
                f"UPDATE displays SET {assignments}, updated_at = ? WHERE id = ?",
                (*params, precise_timestamp(), display_id),
            )
            if cur.rowcount == 0:
                raise StoreError(f"no display {display_id}")
            row = conn.execute("SELECT * FROM displays WHERE id = ?", (display_id,)).fetchone()
        return self._display(row)

    def update_display_settings(self, display_id: int, settings: dict[str, Any]) -> Display:
        """Replace a display's settings (orientation, theme, filters…)."""
        return self._update_display(display_id, "settings = ?", (json.dumps(settings),))

    def revoke_phone_link(self, display_id: int) -> Display:
        """Invalidate the display's phone link; a new one replaces it."""
        return self._update_display(display_id, "phone_key_generation = phone_key_generation + 1")

    def revoke_display(self, display_id: int) -> Display:
        """Invalidate the display's credential; a new one replaces it.

        A display from before row secrets gets its secret now: its screen pairs again anyway,
        and the phone link, which changes with it, is shown afresh by the screen. (Revoking only
        the phone link leaves the secret be: it would unpair the screen too.)
        """
        return self._update_display(
            display_id,
            "key_generation = key_generation + 1,"
            " secret = CASE WHEN secret = '' THEN ? ELSE secret END",
            (new_row_secret(),),
        )

    # -- credentials ------------------------------------------------------------------------
    # A credential is "<id>.<hmac(key, purpose:id:generation:row secret)>": an admin can show the
    # URL again at any time, bumping the generation revokes it, and the row's random secret ties
    # it to this one row (another row with the same id, after a restore or elsewhere, has
    # another). The kiosk credential and the phone link differ by purpose, so one never opens the
    # other. A row from before row secrets has '' and keeps the formula its screens were given.
    def _mac(self, purpose: str, display: Display, generation: int) -> str:
        message = f"{purpose}:{display.id}:{generation}"
        if display.secret:
            message += f":{display.secret}"
        return hmac.new(self._secret, message.encode(), hashlib.sha256).hexdigest()[:32]

    def credential(self, display: Display) -> str:
        """The display's current kiosk credential (goes in its kiosk and socket URLs)."""
        return f"{display.id}.{self._mac('display', display, display.key_generation)}"

    def phone_credential(self, display: Display) -> str:
        """The display's read-only phone link credential (the QR code)."""
        return f"{display.id}.{self._mac('phone', display, display.phone_key_generation)}"

    def reissue_credentials(self) -> int:
        """A new random secret for every display and admin: every kiosk credential, phone link
        and console session issued so far stops working (a restore does this). Returns the
        number of displays."""
        with self.transaction() as conn:
            return reissue_secrets(conn)

    def _lookup(self, credential: str, expected: Any) -> Display | None:
        head, _, _mac = credential.partition(".")
        # ASCII digits only ("²" is a digit to isdigit()), and few enough for a 64-bit id.
        if not (head.isascii() and head.isdigit()) or len(head) > 18 or len(credential) > 64:
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

    # -- displays: edits from the admin console -------------------------------------------------
    def update_display(
        self,
        display_id: int,
        name: str,
        floor_id: str,
        density_display_id: str | None,
        settings: dict[str, Any],
    ) -> Display:
        """Replace every editable field of a display in one transaction."""
        name, floor_id = display_identity(name, floor_id, density_display_id)
        return self._update_display(
            display_id,
            "name = ?, floor_id = ?, density_display_id = ?, settings = ?",
            (name, floor_id, density_display_id or None, json.dumps(settings)),
        )

    # -- admins -------------------------------------------------------------------------------
    @staticmethod
    def _admin(row: Any) -> Admin:
        return Admin(
            id=row["id"],
            username=row["username"],
            password_hash=row["password_hash"],
            role=row["role"],
            session_generation=row["session_generation"],
            created_at=row["created_at"],
            secret=row["secret"],
        )

    def add_admin(self, username: str, password_hash: str, role: str | None = None) -> Admin:
        """Create an admin; the first one is the owner unless a role is given."""
        username = username.strip()
        if not username:
            raise StoreError("an admin needs a username")
        check_text(username, password_hash)
        with self.transaction() as conn:
            if role is None:
                first = conn.execute("SELECT COUNT(*) FROM admins").fetchone()[0] == 0
                role = "owner" if first else "admin"
            if role not in ADMIN_ROLES:
                raise StoreError(f"unknown role {role!r}")
            try:
                new_id = self._db.insert(
                    conn,
                    "INSERT INTO admins (username, password_hash, role, created_at, secret)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (username, password_hash, role, timestamp(), new_row_secret()),
                )
            except self._db.integrity_errors as exc:
                raise StoreError(f"an admin named {username!r} exists already") from exc
            row = conn.execute("SELECT * FROM admins WHERE id = ?", (new_id,)).fetchone()
        return self._admin(row)

    def get_admin(self, admin_id: int) -> Admin | None:
        """The admin with this id, or None."""
        rows = self._query("SELECT * FROM admins WHERE id = ?", (admin_id,))
        return self._admin(rows[0]) if rows else None

    def admin_by_username(self, username: str) -> Admin | None:
        """The admin with this username (case-insensitive), or None."""
        if has_nul(username):
            return None
        # lower() on both sides: SQLite's column is NOCASE, PostgreSQL's unique index is lower().
        rows = self._query(
            "SELECT * FROM admins WHERE lower(username) = lower(?)", (username.strip(),)
        )
        return self._admin(rows[0]) if rows else None

    def list_admins(self) -> list[Admin]:
        """Every admin, in id order."""
        return [self._admin(r) for r in self._query("SELECT * FROM admins ORDER BY id")]

    def set_admin_password(self, admin_id: int, password_hash: str, *, sign_out: bool) -> Admin:
        """Store a new password hash; `sign_out` ends every session of this admin."""
        with self.transaction() as conn:
            if sign_out:
                # A new secret too: an admin from before row secrets gets one once signed out.
                cur = conn.execute(
                    "UPDATE admins SET password_hash = ?, secret = ?,"
                    " session_generation = session_generation + 1 WHERE id = ?",
                    (password_hash, new_row_secret(), admin_id),
                )
            else:
                cur = conn.execute(
                    "UPDATE admins SET password_hash = ? WHERE id = ?", (password_hash, admin_id)
                )
            if cur.rowcount == 0:
                raise StoreError(f"no admin {admin_id}")
            row = conn.execute("SELECT * FROM admins WHERE id = ?", (admin_id,)).fetchone()
        return self._admin(row)

    def end_admin_sessions(self, admin_id: int) -> None:
        """Sign an admin out of every browser (a new session generation and secret)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE admins SET session_generation = session_generation + 1, secret = ?"
                " WHERE id = ?",
                (new_row_secret(), admin_id),
            )

    def remove_admin(self, admin_id: int) -> bool:
        """Delete an admin, never the last owner; True when one was deleted."""
        with self.transaction() as conn:
            # Owners are locked first and in id order: two removals at once cannot both see
            # another owner left, and cannot deadlock on each other.
            owners = conn.execute(
                f"SELECT id FROM admins WHERE role = 'owner' ORDER BY id{self._for_update}"
            ).fetchall()
            row = conn.execute("SELECT role FROM admins WHERE id = ?", (admin_id,)).fetchone()
            if row is None:
                return False
            if row["role"] == "owner":
                if len(owners) <= 1:
                    raise StoreError("the last owner cannot be removed")
            conn.execute("DELETE FROM admins WHERE id = ?", (admin_id,))
        return True

    # -- API tokens ---------------------------------------------------------------------------
    def add_api_token(self, name: str, token_hash: str, role: str = "admin") -> ApiToken:
        """Record a new API token by its hash."""
        name = name.strip()
        if not name:
            raise StoreError("a token needs a name")
        if role not in ("admin", "viewer"):
            raise StoreError(f"unknown token role {role!r}")
        check_text(name, token_hash)
        with self.transaction() as conn:
            new_id = self._db.insert(
                conn,
                "INSERT INTO api_tokens (name, token_hash, role, created_at) VALUES (?, ?, ?, ?)",
                (name, token_hash, role, timestamp()),
            )
            row = conn.execute("SELECT * FROM api_tokens WHERE id = ?", (new_id,)).fetchone()
        return ApiToken(row["id"], row["name"], row["role"], row["created_at"])

    def api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, or None."""
        if has_nul(token_hash):
            return None
        rows = self._query("SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,))
        if not rows:
            return None
        row = rows[0]
        return ApiToken(row["id"], row["name"], row["role"], row["created_at"])

    def list_api_tokens(self) -> list[ApiToken]:
        """Every API token (never its value)."""
        rows = self._query("SELECT * FROM api_tokens ORDER BY id")
        return [ApiToken(r["id"], r["name"], r["role"], r["created_at"]) for r in rows]

    def remove_api_token(self, token_id: int) -> bool:
        """Delete an API token; True when one was deleted."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
        return cur.rowcount > 0

    # -- pairing codes ------------------------------------------------------------------------
    @staticmethod
    def _pairing(row: Any) -> PairingCode:
        return PairingCode(
            id=row["id"],
            code=row["code"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            display_id=row["display_id"],
            claimed_at=row["claimed_at"],
        )

    def add_pairing_code(
        self, code: str, secret_hash: str, now: float, ttl: float, client_ip: str | None
    ) -> PairingCode | None:
        """Record a new code (expired ones are purged first); None when the code is taken."""
        check_text(code, secret_hash, client_ip)
        with self.transaction() as conn:
            conn.execute("DELETE FROM pairing_codes WHERE expires_at < ?", (now,))
            # DO NOTHING rather than catching the error: PostgreSQL would abort the transaction.
            new_id = self._db.insert(
                conn,
                "INSERT INTO pairing_codes (code, secret_hash, created_at, expires_at,"
                " client_ip) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (code, secret_hash, now, now + ttl, client_ip),
            )
            if new_id is None:
                return None
            row = conn.execute("SELECT * FROM pairing_codes WHERE id = ?", (new_id,)).fetchone()
        return self._pairing(row)

    def pairing_by_secret(self, secret_hash: str) -> PairingCode | None:
        """The pairing a kiosk's private secret belongs to, expired or not."""
        if has_nul(secret_hash):
            return None
        rows = self._query("SELECT * FROM pairing_codes WHERE secret_hash = ?", (secret_hash,))
        return self._pairing(rows[0]) if rows else None

    def pending_pairing_count(self, now: float) -> int:
        """Unexpired, unclaimed codes (a bound on what anonymous callers can make us keep)."""
        rows = self._query(
            "SELECT COUNT(*) FROM pairing_codes WHERE expires_at >= ? AND display_id IS NULL",
            (now,),
        )
        return rows[0][0]

    def make_room_for_pairing(
        self, client_ip: str, now: float, per_address: int, total: int
    ) -> None:
        """Before `client_ip` gets a new code, keep the pending pool fair between addresses.

        The address's own oldest codes go when it holds `per_address` already; when the pool
        holds `total`, the oldest codes of whichever address holds the most go. A flood from
        many addresses thus replaces its own codes, never a lone screen's.
        """
        pending = "display_id IS NULL AND expires_at >= ?"
        with self.transaction() as conn:
            own = conn.execute(
                f"SELECT id FROM pairing_codes WHERE {pending} AND COALESCE(client_ip, '') = ?"
                " ORDER BY created_at, id",
                (now, client_ip),
            ).fetchall()
            for row in own[: max(0, len(own) - per_address + 1)]:
                conn.execute("DELETE FROM pairing_codes WHERE id = ?", (row[0],))
            count = conn.execute(
                f"SELECT COUNT(*) FROM pairing_codes WHERE {pending}", (now,)
            ).fetchone()[0]
            for _ in range(max(0, count - total + 1)):
                # Among addresses holding as many, the one whose code is oldest gives it up: a
                # flood of one-code addresses then replaces its own codes, not a new screen's.
                greediest = conn.execute(
                    "SELECT COALESCE(client_ip, '') AS ip, COUNT(*) AS n,"
                    " MIN(created_at) AS first FROM pairing_codes"
                    f" WHERE {pending} GROUP BY COALESCE(client_ip, '')"
                    " ORDER BY n DESC, first, ip LIMIT 1",
                    (now,),
                ).fetchone()
                if greediest is None:
                    break
                oldest = conn.execute(
                    f"SELECT id FROM pairing_codes WHERE {pending}"
                    " AND COALESCE(client_ip, '') = ? ORDER BY created_at, id LIMIT 1",
                    (now, greediest[0]),
                ).fetchone()
                if oldest is None:  # taken meanwhile (PostgreSQL reads at each statement)
                    continue
                conn.execute("DELETE FROM pairing_codes WHERE id = ?", (oldest[0],))

    def claim_pairing_code(self, code: str, display_id: int, now: float) -> Display | None:
        """Give an unexpired, unclaimed code to a display; None when no such code (or display)."""
        if has_nul(code):
            return None
        with self.transaction() as conn:
            # Locked so it cannot be deleted before the code points at it. Of two claims of one
            # code, the second's UPDATE finds display_id set (PostgreSQL re-reads the row it
            # waited for) and changes nothing.
            display = conn.execute(
                f"SELECT * FROM displays WHERE id = ?{self._for_update}", (display_id,)
            ).fetchone()
            if display is None:
                return None
            cur = conn.execute(
                "UPDATE pairing_codes SET display_id = ?, claimed_at = ?"
                " WHERE code = ? AND display_id IS NULL AND expires_at >= ?",
                (display_id, now, code, now),
            )
            if cur.rowcount != 1:
                return None
        return self._display(display)

    def delete_pairing(self, pairing_id: int) -> None:
        """Forget a pairing (its kiosk has its credential)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM pairing_codes WHERE id = ?", (pairing_id,))

    # -- floor plans --------------------------------------------------------------------------
    def _plan(self, row: Any) -> Plan:
        return Plan(
            floor_id=row["floor_id"],
            filename=row["filename"],
            content_type=row["content_type"],
            size=row["size"],
            sha256=row["sha256"],
            uploaded_at=row["uploaded_at"],
            uploaded_by=row["uploaded_by"],
            storage=self if self.plans_in_database else None,
        )

    def get_plan(self, floor_id: str) -> Plan | None:
        """The floor's plan record, or None."""
        if has_nul(floor_id):
            return None
        rows = self._query("SELECT * FROM plans WHERE floor_id = ?", (floor_id,))
        return self._plan(rows[0]) if rows else None

    def list_plans(self) -> list[Plan]:
        """Every floor plan record, by floor id."""
        rows = self._query("SELECT * FROM plans")
        # Sorted here: PostgreSQL's ORDER BY on text follows the database's locale.
        return sorted((self._plan(r) for r in rows), key=lambda p: p.floor_id)

    def put_plan(self, plan: Plan, data: bytes | None = None) -> Plan | None:
        """Record a floor's plan; returns the one it replaced.

        On SQLite the file is in place already and `data` is not used; on PostgreSQL `data` is
        the file, written in the same transaction (and the replaced plan's file removed).
        """
        if self.plans_in_database and data is None:
            raise StoreError("the plan's data is needed: plans are kept in the database")
        check_text(plan.floor_id, plan.filename, plan.content_type, plan.uploaded_by)
        with self.transaction() as conn:
            old = conn.execute(
                f"SELECT * FROM plans WHERE floor_id = ?{self._for_update}", (plan.floor_id,)
            ).fetchone()
            if self.plans_in_database:
                conn.execute(
                    "INSERT INTO plan_files (filename, data) VALUES (?, ?)"
                    " ON CONFLICT (filename) DO UPDATE SET data = excluded.data",
                    (plan.filename, data),
                )
            conn.execute(
                "INSERT INTO plans (floor_id, filename, content_type, size, sha256,"
                " uploaded_at, uploaded_by) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (floor_id) DO UPDATE SET filename = excluded.filename,"
                " content_type = excluded.content_type, size = excluded.size,"
                " sha256 = excluded.sha256, uploaded_at = excluded.uploaded_at,"
                " uploaded_by = excluded.uploaded_by",
                (
                    plan.floor_id,
                    plan.filename,
                    plan.content_type,
                    plan.size,
                    plan.sha256,
                    plan.uploaded_at,
                    plan.uploaded_by,
                ),
            )
            if self.plans_in_database and old is not None and old["filename"] != plan.filename:
                self._drop_plan_file(conn, old["filename"])
        return self._plan(old) if old is not None else None

    def remove_plan(self, floor_id: str) -> Plan | None:
        """Forget a floor's plan; returns the record removed (on SQLite its file is the
        caller's; on PostgreSQL it goes with the record)."""
        with self.transaction() as conn:
            old = conn.execute(
                f"SELECT * FROM plans WHERE floor_id = ?{self._for_update}", (floor_id,)
            ).fetchone()
            conn.execute("DELETE FROM plans WHERE floor_id = ?", (floor_id,))
            if self.plans_in_database and old is not None:
                self._drop_plan_file(conn, old["filename"])
        return self._plan(old) if old is not None else None

    def _drop_plan_file(self, conn: Any, filename: str) -> None:
        # Another floor may name the same file only if it has the same name, which includes
        # the floor: so in practice never, but checking costs nothing.
        conn.execute(
            "DELETE FROM plan_files WHERE filename = ?"
            " AND NOT EXISTS (SELECT 1 FROM plans WHERE plans.filename = plan_files.filename)",
            (filename,),
        )

    def plan_data(self, filename: str) -> bytes | None:
        """A plan file's bytes kept in the database (PostgreSQL), or None."""
        if not self.plans_in_database or has_nul(filename):
            return None
        rows = self._query("SELECT data FROM plan_files WHERE filename = ?", (filename,))
        return bytes(rows[0]["data"]) if rows else None

    def sweep_plan_data(self) -> int:
        """Remove plan files in the database that no plan record names; how many."""
        if not self.plans_in_database:
            return 0
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM plan_files WHERE filename NOT IN (SELECT filename FROM plans)"
            )
        return max(cur.rowcount, 0)

    # -- floor layouts ------------------------------------------------------------------------
    @staticmethod
    def _layout(row: Any) -> Layout:
        return Layout(
            floor_id=row["floor_id"],
            version=row["version"],
            data=json.loads(row["data"]),
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
        )

    def get_layout(self, floor_id: str) -> Layout | None:
        """The floor's layout (outlines, doors, corridors), or None."""
        if has_nul(floor_id):
            return None
        rows = self._query("SELECT * FROM layouts WHERE floor_id = ?", (floor_id,))
        return self._layout(rows[0]) if rows else None

    def put_layout(
        self,
        floor_id: str,
        data: dict[str, Any],
        updated_by: str | None = None,
        expected_version: int | None = None,
    ) -> Layout:
        """Save a floor's layout (already checked); refuse if saved since `expected_version`.

        `expected_version` is the version the editor loaded (0 for "there was none"); None skips
        the check.
        """
        check_text(floor_id, updated_by)
        document = json.dumps(data, separators=(",", ":"))
        conflict = (
            "the layout was changed by someone else (version {}, you had {}); reload to see it"
        )
        with self.transaction() as conn:
            row = conn.execute(
                f"SELECT version FROM layouts WHERE floor_id = ?{self._for_update}", (floor_id,)
            ).fetchone()
            current = row["version"] if row is not None else 0
            if expected_version is not None and expected_version != current:
                raise StoreError(conflict.format(current, expected_version))
            if row is not None:
                conn.execute(
                    "UPDATE layouts SET version = ?, data = ?, updated_at = ?, updated_by = ?"
                    " WHERE floor_id = ?",
                    (current + 1, document, timestamp(), updated_by, floor_id),
                )
            else:
                # No row to lock: of two first saves at once, the second's INSERT fails here.
                try:
                    conn.execute(
                        "INSERT INTO layouts (floor_id, version, data, updated_at, updated_by)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (floor_id, 1, document, timestamp(), updated_by),
                    )
                except self._db.integrity_errors as exc:
                    raise StoreError(conflict.format(1, expected_version or 0)) from exc
            saved = conn.execute("SELECT * FROM layouts WHERE floor_id = ?", (floor_id,)).fetchone()
            # Every published layout is a version the editor can restore (plan_versions.py).
            keep_live(conn, floor_id, saved)
        return self._layout(saved)

    def remove_layout(self, floor_id: str) -> bool:
        """Forget a floor's layout; True if there was one."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM layouts WHERE floor_id = ?", (floor_id,)).rowcount > 0

    # -- announcements ------------------------------------------------------------------------
    @staticmethod
    def _announcement(row: Any) -> Announcement:
        return Announcement(**{k: row[k] for k in row.keys()})

    def add_announcement(
        self,
        *,
        scope: str,
        target: str | None,
        kind: str,
        title: str,
        body: str,
        starts_at: float,
        ends_at: float,
        created_by: str | None = None,
        refuse: Callable[[list[Announcement]], str] | None = None,
        current_at: float = 0.0,
    ) -> Announcement:
        """Record an announcement (checked by the caller); returns it with its id.

        With `refuse`, it is given the announcements not over by `current_at` and may name a
        reason not to record this one (StoreError(reason) then). Counting and inserting are one
        transaction, so creates at once cannot pass a cap together.
        """
        if scope not in ("display", "floor", "all") or kind not in ("message", "emergency"):
            raise StoreError("unknown announcement scope or kind")
        if (scope == "all") != (target is None):
            raise StoreError("an announcement to one display or floor needs its target")
        if ends_at <= starts_at:
            raise StoreError("an announcement must end after it starts")
        check_text(target, title, body, created_by)
        with self.transaction() as conn:
            if refuse is not None:
                if self.backend == "postgresql":
                    # SQLite's BEGIN IMMEDIATE already serialises writers; on PostgreSQL row
                    # locks cannot hold off an INSERT, so capped creates queue on this table
                    # lock (it conflicts with itself and with writes, not with reads).
                    conn.execute("LOCK TABLE announcements IN SHARE ROW EXCLUSIVE MODE")
                rows = conn.execute(
                    "SELECT * FROM announcements WHERE cancelled_at IS NULL AND ends_at > ?",
                    (current_at,),
                ).fetchall()
                reason = refuse([self._announcement(r) for r in rows])
                if reason:
                    raise StoreError(reason)
            new_id = self._db.insert(
                conn,
                "INSERT INTO announcements (scope, target, kind, title, body, starts_at, ends_at,"
                " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (scope, target, kind, title, body, starts_at, ends_at, timestamp(), created_by),
            )
            row = conn.execute("SELECT * FROM announcements WHERE id = ?", (new_id,)).fetchone()
        return self._announcement(row)

    def get_announcement(self, announcement_id: int) -> Announcement | None:
        rows = self._query("SELECT * FROM announcements WHERE id = ?", (announcement_id,))
        return self._announcement(rows[0]) if rows else None

    def list_announcements(self, current_at: float | None = None) -> list[Announcement]:
        """All announcements, newest first; with `current_at`, only those not ended or cancelled
        by then (including ones that start later)."""
        if current_at is None:
            rows = self._query("SELECT * FROM announcements ORDER BY id DESC")
        else:
            rows = self._query(
                "SELECT * FROM announcements WHERE cancelled_at IS NULL AND ends_at > ?"
                " ORDER BY id DESC",
                (current_at,),
            )
        return [self._announcement(r) for r in rows]

    def cancel_announcement(self, announcement_id: int, at: float) -> Announcement | None:
        """End an announcement now; returns it, or None if there is no such announcement."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE announcements SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
                (at, announcement_id),
            )
            row = conn.execute(
                "SELECT * FROM announcements WHERE id = ?", (announcement_id,)
            ).fetchone()
        return self._announcement(row) if row is not None else None

    # -- the last space tree from Density (signage/core/directory.py) ---------------------
    def load_space_cache(self) -> tuple[str, float] | None:
        """The space tree last fetched (JSON text) and when (Unix seconds), or None."""
        rows = self._query("SELECT data, fetched_at FROM space_cache WHERE id = 1")
        return (rows[0]["data"], float(rows[0]["fetched_at"])) if rows else None

    def save_space_cache(self, data: str, fetched_at: float) -> None:
        """Keep the space tree, so a restart inside a Density outage still knows every room."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO space_cache (id, data, fetched_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET data = excluded.data,"
                " fetched_at = excluded.fetched_at",
                (data, fetched_at),
            )
