"""When each display last had a screen connected, kept beside the store.

Fleet health says how long a display has been down from this record, so the first page view
after a restart (or on another process of a fleet) reads "Down for 12 min", not a bare "Down"
nor minutes counted from the restart. The alert watcher stamps the displays it sees connected
(signage/actions/alerts.py), at most every STAMP_S seconds each, so a large fleet writes a row
per display a minute, in one transaction per look.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signage.store.store import Store

logger = logging.getLogger(__name__)

__all__ = ["STAMP_S", "ScreenSightings"]

STAMP_S = 60.0  # a down display's duration is right to within this plus one look


class ScreenSightings:
    """The display_last_seen table: display id -> when a screen of it was last seen (Unix s)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def last_seen(self) -> dict[int, float]:
        """Each display ever seen with a screen: when it last was (Unix seconds)."""
        with self.store.connection() as conn:
            rows = conn.execute("SELECT display_id, seen_at FROM display_last_seen").fetchall()
        return {int(r["display_id"]): float(r["seen_at"]) for r in rows}

    def seen(self, display_ids: Iterable[int], at: float, every: float = STAMP_S) -> None:
        """Note that these displays have a screen at `at`; a stamp younger than `every` seconds
        is left as it is (one write per display a minute, however often the watcher looks)."""
        ids = sorted(set(display_ids))
        if not ids:
            return
        with self.store.transaction() as conn:
            for display_id in ids:
                conn.execute(
                    "INSERT INTO display_last_seen (display_id, seen_at) VALUES (?, ?)"
                    " ON CONFLICT (display_id) DO UPDATE SET seen_at = excluded.seen_at"
                    " WHERE display_last_seen.seen_at <= ?",
                    (display_id, at, at - every),
                )
