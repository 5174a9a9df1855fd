"""Display names of floors and rooms (space id -> language -> name), kept beside the store.

One row per space and language; language "" is the default display name. Density's own names
are never written here: this table holds only what an admin set (core/names.py resolves).
Every write bumps the `display_names` row of `generations` in its own transaction, so a process
holding the names compares one number to know whether any changed, in any process.
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

_GENERATION = "display_names"  # its row in `generations` (store/migrations.py)


class DisplayNames:
    """The display_names table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def generation(self) -> int:
        """The names' generation: changes (in the same transaction) with every write."""
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT generation FROM generations WHERE name = ?", (_GENERATION,)
            ).fetchone()
        return int(row["generation"]) if row is not None else 0

    def read(self) -> tuple[int, dict[str, dict[str, str]]]:
        """The generation and every space's display names as of (at least) that generation.

        The generation is read first: a write landing between the two reads leaves newer names
        under an older number, which only costs the next look one more read (never the other
        way round, which would keep old names under a new number).
        """
        generation = self.generation()
        return generation, self.all()

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
            if before == names:
                return before  # nothing to write: no audit entry, no new generation
            conn.execute("DELETE FROM display_names WHERE space_id = ?", (space_id,))
            for language, name in sorted(names.items()):
                conn.execute(
                    "INSERT INTO display_names (space_id, language, name, updated_at)"
                    " VALUES (?, ?, ?, ?)",
                    (space_id, language, name, at),
                )
            # One more, and at least the write's time in milliseconds: a restored backup brings
            # back an older number, and the next write must not land on a number a process
            # still holds from before the restore (with other names).
            conn.execute(
                "UPDATE generations SET generation = CASE WHEN generation + 1 > ?"
                " THEN generation + 1 ELSE ? END WHERE name = ?",
                (int(at * 1000), int(at * 1000), _GENERATION),
            )
        return before
