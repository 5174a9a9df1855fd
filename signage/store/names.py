"""Display names of floors and rooms (space id -> language -> name), kept beside the store.

One row per space and language; language "" is the default display name. Density's own names
are never written here: this table holds only what an admin set (core/names.py resolves).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from signage.store.rows import check_text

if TYPE_CHECKING:
    from signage.store.store import Store

logger = logging.getLogger(__name__)

__all__ = ["DisplayNames"]


class DisplayNames:
    """The display_names table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self) -> dict[str, dict[str, str]]:
        """Every space's display names: {space id: {language or "": name}}."""
        with self.store.connection() as conn:
            rows = conn.execute("SELECT space_id, language, name FROM display_names").fetchall()
        out: dict[str, dict[str, str]] = {}
        for row in rows:
            out.setdefault(row["space_id"], {})[row["language"]] = row["name"]
        return out

    def of(self, space_id: str) -> dict[str, str]:
        """One space's display names ("" is the default)."""
        with self.store.connection() as conn:
            rows = conn.execute(
                "SELECT language, name FROM display_names WHERE space_id = ?", (space_id,)
            ).fetchall()
        return {row["language"]: row["name"] for row in rows}

    def put(self, space_id: str, names: dict[str, str], now: float | None = None) -> dict[str, str]:
        """Set a space's display names to exactly `names` (languages left out are removed);
        returns the names it had before."""
        check_text(space_id, *names.keys(), *names.values())
        at = time.time() if now is None else now
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT language, name FROM display_names WHERE space_id = ?", (space_id,)
            ).fetchall()
            before = {row["language"]: row["name"] for row in rows}
            conn.execute("DELETE FROM display_names WHERE space_id = ?", (space_id,))
            for language, name in sorted(names.items()):
                conn.execute(
                    "INSERT INTO display_names (space_id, language, name, updated_at)"
                    " VALUES (?, ?, ?, ?)",
                    (space_id, language, name, at),
                )
        return before
