"""Each room's calendar link (space id -> iCalendar URL), kept beside the store's other tables.

The URL is a secret link: it is read only by the bookings worker (core/bookings.py, through
services.py). Nothing here logs it, and what the console and the API show is whether a room
has one, never the link itself.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signage.store.store import Store

logger = logging.getLogger(__name__)

__all__ = ["CalendarSources"]


class CalendarSources:
    """The calendar_sources table: one link per room."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self) -> dict[str, str]:
        """Every room's link, by space id."""
        with self.store.connection() as conn:
            rows = conn.execute("SELECT space_id, url FROM calendar_sources").fetchall()
        return {row["space_id"]: row["url"] for row in rows}

    def has(self, space_id: str) -> bool:
        """Whether a room has a link."""
        with self.store.connection() as conn:
            row = conn.execute(
                "SELECT 1 FROM calendar_sources WHERE space_id = ?", (space_id,)
            ).fetchone()
        return row is not None

    def put(self, space_id: str, url: str, now: float | None = None) -> None:
        """Set (or replace) a room's link."""
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO calendar_sources (space_id, url, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (space_id) DO UPDATE SET url = excluded.url,"
                " updated_at = excluded.updated_at",
                (space_id, url, time.time() if now is None else now),
            )
        logger.info("calendar link of room %s set", space_id)

    def remove(self, space_id: str) -> bool:
        """Remove a room's link; whether it had one."""
        with self.store.transaction() as conn:
            gone = conn.execute("DELETE FROM calendar_sources WHERE space_id = ?", (space_id,))
            removed = gone.rowcount > 0
        if removed:
            logger.info("calendar link of room %s removed", space_id)
        return removed
