"""What the console keeps beside the displays: a building's floor order set by an admin, and
when each display first had a screen (fleet health and alerts tell "not installed" from down).

A mixin of the Store (store.py holds the connection life cycle and the displays), so the
store stays one object for its callers while its modules stay short.
"""

from __future__ import annotations

import json
import logging
from contextlib import AbstractContextManager
from typing import Any

logger = logging.getLogger(__name__)


class ConsoleTables:
    """A building's floor order set by an admin; when each display first had a screen."""

    def _query(self, sql: str, params: tuple = ()) -> list[Any]:  # the Store's
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:  # the Store's
        raise NotImplementedError

    # -- a building's floor order set by an admin (over Density's own) ----------------------
    def floor_orders(self) -> dict[str, list[str]]:
        """Each building's floor ids in the order an admin set."""
        rows = self._query("SELECT building_id, floor_ids FROM floor_order")
        return {r["building_id"]: json.loads(r["floor_ids"]) for r in rows}

    def set_floor_order(self, building_id: str, floor_ids: list[str], at: float) -> None:
        """Keep a building's floor order; an empty list goes back to Density's."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM floor_order WHERE building_id = ?", (building_id,))
            if floor_ids:
                conn.execute(
                    "INSERT INTO floor_order (building_id, floor_ids, updated_at) VALUES (?, ?, ?)",
                    (building_id, json.dumps(floor_ids), at),
                )

    # -- when a display first had a screen ------------------------------------------------------
    def first_screens(self) -> dict[int, float]:
        """Each display that ever had a screen: when it first did (Unix seconds)."""
        rows = self._query("SELECT display_id, first_at FROM display_first_screens")
        return {int(r["display_id"]): float(r["first_at"]) for r in rows}

    def mark_first_screen(self, display_id: int, at: float) -> None:
        """Note that a display has had a screen (the first time only)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO display_first_screens (display_id, first_at) VALUES (?, ?)"
                " ON CONFLICT (display_id) DO NOTHING",
                (display_id, at),
            )


__all__ = ["ConsoleTables"]
