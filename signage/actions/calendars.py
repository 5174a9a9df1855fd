"""Room calendars as fleet health and the console show them: per room its source's kind, last
fetch, age and error; per floor how many rooms are booked but empty.

Read from memory only (the bookings worker's statuses, the floor feeds' rooms): no request waits
on a calendar. Nothing here holds a link or a password: the store's `describe()` gives the kind
and user name, the worker's statuses the times and the error's reason.

"Booked but empty" is core/rooms.py's rule (`booking_status`) applied to each room as kiosks
receive it, with the default grace period: the sensors say free, and a booking began more than
the grace period ago and has not ended.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from signage.actions.displays import floor_label
from signage.actions.wording import calendar_problem
from signage.core.rooms import BOOKED_EMPTY, booking_status

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)

__all__ = ["booked_empty", "booked_empty_by_floor", "calendar_rows", "room_floor"]

KIND_LABELS = {"ics": "ICS link", "caldav": "CalDAV"}


def room_floor(svc: Services, space_id: str) -> str | None:
    """The id of the floor a room is on (its nearest floor ancestor), or None."""
    ancestors = svc.directory.tree().ancestors(space_id)
    return next((a.id for a in ancestors if a.space_type == "floor"), None)


def _rooms(feed: Any) -> list[dict[str, Any]]:
    rooms = feed.snapshot().get("rooms") or {}
    return list(rooms.values()) if isinstance(rooms, dict) else list(rooms)


def booked_empty(feed: Any, now: datetime) -> int:
    """How many of a floor feed's rooms are booked but empty at `now`."""
    return sum(1 for room in _rooms(feed) if booking_status(room, now).kind == BOOKED_EMPTY)


def booked_empty_by_floor(svc: Services) -> dict[str, int]:
    """Booked-but-empty rooms per floor this process has a feed for (its own or mirrored)."""
    now = datetime.fromtimestamp(_wall(svc), UTC)
    return {feed.floor_id: booked_empty(feed, now) for feed in svc.feeds.feeds()}


def _wall(svc: Services) -> float:
    assert svc.bookings is not None
    return svc.bookings.clock.time()


def calendar_rows(svc: Services, holders: dict[str, str | None] | None = None) -> list[dict]:
    """Every room with a calendar source: floor, kind, last fetch, age, error, problems.

    `holders` (a Redis fleet: floor id -> the process holding its lease) marks the rooms this
    process does not fetch: only the floor's holder does, and its own page shows them."""
    if svc.calendars is None or svc.bookings is None:
        return []
    wall = _wall(svc)
    me = svc.cluster.id if svc.cluster is not None else None
    statuses = svc.bookings.statuses()
    tree = svc.directory.tree()
    rows = []
    for space_id, info in svc.calendars.describe().items():
        status = statuses.get(space_id)
        space = tree.get(space_id)
        floor_id = room_floor(svc, space_id)
        holder = (holders or {}).get(floor_id or "")
        # In a fleet, another process's floor (or no one's): its holder fetches the calendar.
        elsewhere = holders is not None and (me is None or holder != me)
        problems = []
        if status is not None and status.error:
            problems.append(status.error)
        elif not elsewhere and (status is None or not status.fresh):
            # Shown as a problem only where it is fetched: elsewhere, its holder's page says.
            problems.append("not fetched yet" if not status or not status.last_ok else "stale")
        rows.append(
            {
                "space_id": space_id,
                "name": space.name if space is not None else space_id,
                "floor_id": floor_id,
                "floor": floor_label(svc.directory, floor_id) if floor_id else "—",
                "kind": info.kind,
                "kind_label": KIND_LABELS.get(info.kind, info.kind),
                "username": info.username or None,
                "updated_at": info.updated_at,
                "last_fetch_age_s": None
                if status is None or status.last_fetch is None
                else round(wall - status.last_fetch, 1),
                "age_s": status.age_s if status is not None else None,
                "fresh": bool(status and status.fresh),
                "error": status.error if status is not None else None,
                # The same in plain words for the console (the error above stays for its title).
                "error_text": calendar_problem(status.error if status is not None else None),
                "bookings": status.bookings if status is not None else 0,
                "problems": problems,
                **({"fetched_by": holder, "elsewhere": elsewhere} if holders is not None else {}),
            }
        )
    # Problems first; then floors as the building lists them (Density's order, or the one set on
    # the floor-order page), a room of a floor no longer listed last.
    rank = {f.id: i for i, f in enumerate(tree.floors(building_order=True))}
    return sorted(
        rows,
        key=lambda r: (
            not r["problems"],
            rank.get(r["floor_id"] or "", len(rank)),
            r["name"],
            r["space_id"],
        ),
    )
