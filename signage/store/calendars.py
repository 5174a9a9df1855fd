"""Each room's calendar source, kept beside the store's other tables, its secrets sealed.

A source is an iCalendar link or a CalDAV calendar (URL, user name, password). The link and the
password are secrets: they are stored sealed with AES-GCM under a key derived (HKDF-SHA256) from
the server's secret key (SIGNAGE_SECRET_KEY, or the one generated beside the database), bound to
the room's id, so a database copy or a backup (which never holds the key) does not give them
away, and a sealed source cannot be moved to another room. A row whose seal this server cannot
open (a database restored on another server, a changed key) is reported as unreadable, to be set
again. They are read only by the bookings worker (through services.py); nothing here logs them,
and what the console and the API show is the kind, the user name and when it was set.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from signage.store.store import Store

logger = logging.getLogger(__name__)

__all__ = ["CalendarSources", "SourceInfo", "SourceRow"]

SEAL_PREFIX = "v1:"


@dataclass(frozen=True)
class SourceRow:
    """A room's source as the worker reads it: `readable` False when its seal would not open
    (then `url` and `password` are empty). The secrets stay out of the repr."""

    space_id: str
    kind: str  # "ics" or "caldav"
    url: str = field(repr=False)
    username: str
    password: str = field(repr=False)
    readable: bool = True


@dataclass(frozen=True)
class SourceInfo:
    """What may be shown of a room's source: never the link or the password."""

    space_id: str
    kind: str
    username: str
    updated_at: float


def _key(secret_key: str | bytes) -> bytes:
    raw = secret_key.encode() if isinstance(secret_key, str) else secret_key
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"signage", info=b"calendar sources v1"
    ).derive(raw)


class CalendarSources:
    """The calendar_sources table: one source per room, its link and password sealed."""

    def __init__(self, store: Store, secret_key: str | bytes | None = None) -> None:
        self.store = store
        # Without a key of its own, the one the store signs credentials with: the same server
        # secret (services.py passes it explicitly).
        key = secret_key if secret_key is not None else store._secret
        self._aead = AESGCM(_key(key))

    # -- sealing ------------------------------------------------------------------------------
    def _seal(self, space_id: str, url: str, password: str) -> str:
        nonce = os.urandom(12)
        plain = json.dumps({"url": url, "password": password}).encode()
        sealed = self._aead.encrypt(nonce, plain, space_id.encode())
        return SEAL_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def _open(self, space_id: str, sealed: str) -> tuple[str, str] | None:
        if not sealed.startswith(SEAL_PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed[len(SEAL_PREFIX) :])
            plain = self._aead.decrypt(raw[:12], raw[12:], space_id.encode())
            data = json.loads(plain)
            return str(data["url"]), str(data.get("password", ""))
        except (InvalidTag, ValueError, KeyError, TypeError):
            return None

    # -- reading ------------------------------------------------------------------------------
    def sources(self) -> dict[str, SourceRow]:
        """Every room's source, unsealed, by space id (for the bookings worker only).

        A row from before sealing (a plain `url`) is sealed now, once."""
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT space_id, url, kind, username, sealed FROM calendar_sources"
            ).fetchall()
        out: dict[str, SourceRow] = {}
        legacy: list[tuple[str, str]] = []
        for row in rows:
            space_id, kind, username = row["space_id"], row["kind"], row["username"]
            if not row["sealed"] and row["url"]:
                legacy.append((space_id, row["url"]))
                out[space_id] = SourceRow(space_id, kind, row["url"], username, "")
                continue
            opened = self._open(space_id, row["sealed"])
            if opened is None:
                out[space_id] = SourceRow(space_id, kind, "", username, "", readable=False)
            else:
                out[space_id] = SourceRow(space_id, kind, opened[0], username, opened[1])
        for space_id, url in legacy:
            self._reseal(space_id, url)
        return out

    def all(self) -> dict[str, str]:
        """Every readable room's link, by space id."""
        return {sid: row.url for sid, row in self.sources().items() if row.readable}

    def describe(self) -> dict[str, SourceInfo]:
        """What the console and the API may show of every room's source (no secret)."""
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT space_id, kind, username, updated_at FROM calendar_sources"
            ).fetchall()
        return {
            row["space_id"]: SourceInfo(
                row["space_id"], row["kind"], row["username"], float(row["updated_at"])
            )
            for row in rows
        }

    def has(self, space_id: str) -> bool:
        """Whether a room has a source."""
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM calendar_sources WHERE space_id = ?", (space_id,)
            ).fetchone()
        return row is not None

    def get(self, space_id: str) -> SourceRow | None:
        """One room's source, unsealed (None: it has none)."""
        return self.sources().get(space_id)

    # -- writing ------------------------------------------------------------------------------
    def put(
        self,
        space_id: str,
        url: str,
        now: float | None = None,
        *,
        kind: str = "ics",
        username: str = "",
        password: str = "",
    ) -> None:
        """Set (or replace) a room's source; the link and the password are sealed."""
        sealed = self._seal(space_id, url, password)
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO calendar_sources (space_id, url, kind, username, sealed, updated_at)"
                " VALUES (?, '', ?, ?, ?, ?)"
                " ON CONFLICT (space_id) DO UPDATE SET url = '', kind = excluded.kind,"
                " username = excluded.username, sealed = excluded.sealed,"
                " updated_at = excluded.updated_at",
                (space_id, kind, username, sealed, time.time() if now is None else now),
            )
        logger.info("calendar source of room %s set (%s)", space_id, kind)

    def _reseal(self, space_id: str, url: str) -> None:
        sealed = self._seal(space_id, url, "")
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE calendar_sources SET url = '', sealed = ? WHERE space_id = ? AND url = ?",
                (sealed, space_id, url),
            )
        logger.info("calendar link of room %s sealed", space_id)

    def remove(self, space_id: str) -> bool:
        """Remove a room's source; whether it had one."""
        with self.store.transaction() as conn:
            gone = conn.execute("DELETE FROM calendar_sources WHERE space_id = ?", (space_id,))
            removed = gone.rowcount > 0
        if removed:
            logger.info("calendar source of room %s removed", space_id)
        return removed
