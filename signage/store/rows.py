"""The rows the store hands out (frozen dataclasses) and the small rules every row follows:
a display's name and floor, per-row secrets, timestamps, and no NUL in any text.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from signage.store.db import StoreError

if TYPE_CHECKING:
    from signage.store.store import Store

logger = logging.getLogger(__name__)


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
    # Random per display ('' for one made before there were secrets): in every credential.
    secret: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class Admin:
    """A person who may use the admin console."""

    id: int
    username: str
    password_hash: str = field(repr=False)
    role: str
    session_generation: int
    created_at: str
    # Random per admin ('' for one made before there were secrets): in every session.
    secret: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class ApiToken:
    """An automation token (its value is never stored)."""

    id: int
    name: str
    role: str
    created_at: str


@dataclass(frozen=True)
class PairingCode:
    """A short code a kiosk shows until an admin gives it a display."""

    id: int
    code: str
    created_at: float
    expires_at: float
    display_id: int | None
    claimed_at: float | None


@dataclass(frozen=True)
class Plan:
    """A floor's plan file, as recorded once it is in place."""

    floor_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_at: str
    uploaded_by: str | None = None
    # The store that keeps the file's bytes (PostgreSQL), None when it is a file on disk.
    storage: Store | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Layout:
    """What an admin drew over a floor: see signage/core/layout.py for the document's shape."""

    floor_id: str
    version: int
    data: dict[str, Any] = field(compare=False, hash=False)
    updated_at: str = ""
    updated_by: str | None = None


@dataclass(frozen=True)
class Announcement:
    """A message on screens, to one display (target = its id), a floor (target = floor id) or
    all; "emergency" takes the whole screen. Times are Unix seconds."""

    id: int
    scope: str
    target: str | None
    kind: str
    title: str
    body: str
    starts_at: float
    ends_at: float
    created_at: str
    created_by: str | None
    cancelled_at: float | None

    def current(self, now: float) -> bool:
        """Showing at `now`."""
        return self.cancelled_at is None and self.starts_at <= now < self.ends_at


def display_identity(name: str, floor_id: str, density_display_id: str | None) -> tuple[str, str]:
    """A display's name and floor, stripped and checked (shared by create and replace)."""
    name, floor_id = name.strip(), floor_id.strip()
    if not name:
        raise StoreError("a display needs a name")
    if not floor_id:
        raise StoreError("a display needs a floor id")
    check_text(name, floor_id, density_display_id)
    return name, floor_id


def new_row_secret() -> str:
    """A display's or admin's own secret: 256 random bits, hex."""
    return secrets.token_hex(32)


def reissue_secrets(conn: Any) -> int:
    """Store.reissue_credentials inside a caller's transaction; the number of displays."""
    counts = {}
    for table in ("displays", "admins"):
        ids = [r["id"] for r in conn.execute(f"SELECT id FROM {table}").fetchall()]
        for row_id in ids:
            conn.execute(f"UPDATE {table} SET secret = ? WHERE id = ?", (new_row_secret(), row_id))
        counts[table] = len(ids)
    return counts["displays"]


def timestamp() -> str:
    """Now, UTC, to the second: the created_at and updated_at of most rows."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def precise_timestamp() -> str:
    """Now, UTC, to the microsecond: a display's updated_at."""
    # Part of the kiosk's ETag: two edits within a second must still differ.
    return datetime.now(UTC).isoformat(timespec="microseconds")


def has_nul(*values: str | None) -> bool:
    """PostgreSQL cannot keep NUL in text: no stored value has one, on either backend."""
    return any(v is not None and "\x00" in v for v in values)


def check_text(*values: str | None) -> None:
    """Refuse text with a NUL character (StoreError), before it reaches either backend."""
    if has_nul(*values):
        raise StoreError("text may not contain NUL characters")
