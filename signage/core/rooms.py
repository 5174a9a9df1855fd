"""The room rules, in one place: what a kiosk may be told about a room.

Two feeds tell kiosks about a floor: `FloorFeed` (signage/core/feeds.py) keeps its rooms from
Density's sockets and polls, and `ClusterFeed` (signage/fleet/feed.py) mirrors the `FloorFeed` of
whichever process holds the floor in Redis mode. Both decide a room's state here, so a rule
changed once changes both:

- A room is `free` only when Density says it is unoccupied, its space health is `healthy` and
  the channel that serves it heard from Density within `stale_after`; `occupied` on the same
  terms; `unknown` otherwise, always with a reason (`classify`). A process that cannot vouch
  for a room any more (a mirror that stopped hearing from the fleet) shows it `unknown` by the
  same rule (`unknown`).
- Each channel sets only what it knows (`Room.apply`): a frame without a health field leaves
  the room's health as it was, a count poll sets counts, a presence poll presence and health.
- An entry room's health comes from its sensors' health (`Room.apply_sensors`, by Density's
  own rule in `space_health`) where no frame carries one: `occupancy/current` has none.
- Counts are whole numbers; a capped count (Waffle's "3+") travels as `count` with
  `capped: true`, and occupies the room like any count above zero.
- What a kiosk receives is built by core/protocol.py (`room_dict`, `envelope`).

Bookings (docs/bookings.md) sit beside the sensors and never change a room's `state`:

- A room dict carries its calendar's times only (`booking_fields`): `bookings` "ok" with
  `next_booking` and `next_booking_end` (the booking in progress or the next one), "unavailable"
  with no times when the calendar's data is too old, and no booking field without a calendar.
  A holder that can no longer vouch for a room withdraws its times too (`unknown`).
- What those times make of a sensor state (`booking_status`) depends on a display's margin and
  grace period, so each kiosk applies it with its own settings (static/kiosk/kiosk.js,
  `bookingStatus`, the same rule); the server applies it with the defaults where no display is
  asking (the other floors' panel counts only the rooms it would offer, `offered`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from signage.core.protocol import (
    FREE,
    NO_DATA,
    NOT_VERIFIED,
    OCCUPIED,
    SENSOR_DEGRADED,
    SENSOR_OFFLINE,
    STALE_DATA,
    UNKNOWN,
    room_dict,
)
from signage.density.models import Doorway, SensorHealth, Space, SpaceUpdate

logger = logging.getLogger(__name__)

# Why a room with data is still `unknown`, by its space health.
UNHEALTHY_REASONS = {
    "offline": SENSOR_OFFLINE,
    "degraded": SENSOR_DEGRADED,
    "unknown": NOT_VERIFIED,
}


def classify(last_known: str | None, health: str | None, fresh: bool) -> tuple[str, str | None]:
    """The state a kiosk may show for a room, with the reason when it is `unknown`.

    `last_known` is Density's last word (free/occupied, whatever its health or age), `fresh`
    whether the channel serving the room heard from Density within `stale_after`.
    """
    if last_known is None:
        return UNKNOWN, NO_DATA
    if not fresh:
        return UNKNOWN, STALE_DATA
    if health != "healthy":
        return UNKNOWN, UNHEALTHY_REASONS.get(health or "unknown", NOT_VERIFIED)
    return last_known, None


def space_health(sensor_healths: Iterable[str]) -> str | None:
    """A space's health from its sensors' (Density's rule); None for a space without sensors.

    Healthy when all are healthy, offline when all are offline, unknown when one or more is
    unknown and none is healthy, degraded otherwise.
    """
    healths = list(sensor_healths)
    if not healths:
        return None
    if all(h == "healthy" for h in healths):
        return "healthy"
    if all(h == "offline" for h in healths):
        return "offline"
    if "unknown" in healths and "healthy" not in healths:
        return "unknown"
    return "degraded"


@dataclass
class Room:
    """What a feed knows of one room, and since when."""

    space: Space
    occupied: bool | None = None  # oa spaces
    count: int | None = None  # entry spaces
    capped: bool = False  # the count is Waffle's "3+": at least `count`
    health: str = "unknown"
    changed_at: float | None = None  # monotonic time occupancy last changed
    source: str | None = None  # "socket" or "poll"
    sensors: tuple[tuple[str, str], ...] = ()  # (serial, health) from sensor health
    # When Density last gave the room's health (monotonic): an entry room's health comes from
    # its sensors every few minutes, and a health read long ago vouches for nothing now.
    health_at: float | None = None
    # False once a whole answer (a presence-health poll, a socket `refresh`) left the room out:
    # Density no longer speaks for it (a sensor unmapped), so its last word is not confident.
    reported: bool = True

    @property
    def entry(self) -> bool:
        return self.space.counting_mode == "entry"

    def last_known(self) -> str | None:
        """Free or occupied by Density's last word, whatever its health or age."""
        if self.entry:
            return None if self.count is None else (OCCUPIED if self.count > 0 else FREE)
        return None if self.occupied is None else (OCCUPIED if self.occupied else FREE)

    def classify(
        self, fresh: bool, now: float | None = None, health_max_age: float | None = None
    ) -> tuple[str, str | None]:
        """The state a kiosk may show, with the reason when it is `unknown`.

        With `health_max_age`, an entry room whose health was last read longer ago than that
        (or never) is not verified: its doorway sensor may have died since, count 0 and all.
        """
        health = self.health
        if not self.reported:
            health = "unknown"
        elif (
            self.entry
            and health_max_age is not None
            and now is not None
            and (self.health_at is None or now - self.health_at > health_max_age)
        ):
            health = "unknown"
        return classify(self.last_known(), health, fresh)

    def apply(self, update: SpaceUpdate, now: float, source: str) -> None:
        """Take what one update says, and only that: fields it lacks keep their value."""
        if self.entry:
            if update.occupancy is not None and (update.occupancy, update.capped) != (
                self.count,
                self.capped,
            ):
                self.count, self.capped = update.occupancy, update.capped
                self.changed_at = now
        elif update.presence is not None and update.presence != self.occupied:
            self.occupied = update.presence
            self.changed_at = now
        if update.health is not None:
            self.health = update.health
            self.health_at = now
        self.reported = True
        self.source = source

    def apply_sensors(self, sensors: Iterable[tuple[str, str]], now: float | None = None) -> None:
        """Record the room's sensors; an entry room takes its space health from them."""
        self.sensors = tuple(sensors)
        if self.entry:
            # No sensor in the answer: nothing vouches for the count any more.
            self.health = space_health(h for _, h in self.sensors) or "unknown"
            self.health_at = now

    def follow(self, public: Mapping[str, Any]) -> None:
        """A mirror's copy learns what the fleet's room dict says (for the admin pages)."""
        if isinstance(public.get("health"), str):
            self.health = public["health"]

    def public(
        self, now: float, fresh: bool, health_max_age: float | None = None
    ) -> dict[str, Any]:
        """The room as kiosks receive it (docs/protocol.md)."""
        state, reason = self.classify(fresh, now, health_max_age)
        return room_dict(
            self.space,
            state=state,
            reason=reason,
            last_known=self.last_known(),
            occupied=self.occupied,
            count=self.count,
            capped=self.capped,
            health=self.health,
            since_s=None if self.changed_at is None else round(now - self.changed_at, 1),
            source=self.source,
        )


def unknown(room: Mapping[str, Any]) -> dict[str, Any]:
    """A room dict its holder can no longer vouch for: `unknown`, keeping Density's last word;
    its booking times are withdrawn too (they were as fresh as the holder, no fresher)."""
    out = dict(room)
    if out.get("state") != UNKNOWN:
        out["state"], out["reason"] = classify(out.get("last_known"), out.get("health"), False)
    if BOOKINGS in out:
        out.update(booking_fields(calendar=True, fresh=False))
    return out


# -- bookings beside the sensors ---------------------------------------------------------------
BOOKINGS = "bookings"  # the room dict's field: "ok", "unavailable", absent without a calendar
BOOKINGS_OK = "ok"
BOOKINGS_UNAVAILABLE = "unavailable"
BOOKING_FIELDS = (BOOKINGS, "next_booking", "next_booking_end")
# A display's defaults (settings booking_margin_min, booking_grace_min), in minutes; the server
# uses them where no display asks (the other floors' panel).
DEFAULT_MARGIN_MIN = 10
DEFAULT_GRACE_MIN = 10

# What a room's bookings make of its sensor state (`booking_status`).
NO_BOOKINGS = "none"  # no calendar, or a state the sensors cannot vouch for: sensor words only
UNAVAILABLE = "unavailable"  # the calendar's data is too old: "bookings unavailable"
FREE_UNTIL = "free_until"  # free, next booking beyond the margin: "Free until 14:00"
FREE_NO_BOOKING = "free"  # free, nothing booked ahead (the kiosk says "Free" unless today)
BOOKED_SOON = "booked_soon"  # free, booked within the margin (or within grace of its start)
BOOKED_EMPTY = "booked_empty"  # free past the grace period of a booking in progress
IN_USE_BOOKED = "in_use_booked"  # occupied during a booking
IN_USE_UNBOOKED = "in_use_unbooked"  # occupied with no booking in progress


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def booking_fields(
    *,
    calendar: bool,
    fresh: bool = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """A room dict's booking fields: times and the fact of a booking, nothing else."""
    if not calendar:
        return {}
    if not fresh:
        return {BOOKINGS: BOOKINGS_UNAVAILABLE, "next_booking": None, "next_booking_end": None}
    return {BOOKINGS: BOOKINGS_OK, "next_booking": _iso(start), "next_booking_end": _iso(end)}


@dataclass(frozen=True)
class BookingStatus:
    """What a kiosk says of a room's bookings: `kind` (above), the time it names, and whether
    the room may be offered to a visitor (listed free, routed to)."""

    kind: str
    at: datetime | None = None
    offered: bool = False
    free_for_s: float | None = None  # how long it stays free; None: no booking ahead known


def booking_status(
    room: Mapping[str, Any],
    now: datetime,
    *,
    margin_min: float = DEFAULT_MARGIN_MIN,
    grace_min: float = DEFAULT_GRACE_MIN,
    offer_booked_empty: bool = False,
) -> BookingStatus:
    """The bookings' word on a room dict at `now`, led by its sensor `state`.

    Free: booked within `margin_min` (or a booking began less than `grace_min` ago) is "booked
    soon" and not offered; a booking in progress for longer than `grace_min` with nobody there
    is "booked but empty", offered only with `offer_booked_empty`; else free until the next
    booking. Occupied: "in use" during a booking, "in use (not booked)" outside one. Unknown:
    nothing of bookings (the sensors cannot vouch for the room, so neither can a booking).
    """
    state = room.get("state")
    free = state == FREE
    status = room.get(BOOKINGS)
    if state not in (FREE, OCCUPIED) or status is None:
        return BookingStatus(NO_BOOKINGS, offered=free)
    if status != BOOKINGS_OK:
        return BookingStatus(UNAVAILABLE, offered=free)
    start, end = _parse(room.get("next_booking")), _parse(room.get("next_booking_end"))
    if end is not None and end <= now:
        # A booking that has just ended: the fields name the next one at their next tick;
        # until then the sensors speak alone (as kiosk.js does), never "booked soon" by a
        # start in the past nor "in use (not booked)".
        return BookingStatus(NO_BOOKINGS, offered=free)
    current = start is not None and start <= now
    if not free:
        return BookingStatus(IN_USE_BOOKED if current else IN_USE_UNBOOKED, at=start)
    if start is None:
        return BookingStatus(FREE_NO_BOOKING, offered=True)
    if current:
        if now - start >= timedelta(minutes=grace_min):
            # Nobody here since the booking began, or since the room emptied if that was later.
            since = room.get("since_s")
            emptied = now - timedelta(seconds=since) if isinstance(since, int | float) else start
            return BookingStatus(BOOKED_EMPTY, at=max(start, emptied), offered=offer_booked_empty)
        return BookingStatus(BOOKED_SOON, at=start, free_for_s=0.0)
    ahead = (start - now).total_seconds()
    if ahead <= margin_min * 60:
        return BookingStatus(BOOKED_SOON, at=start, free_for_s=ahead)
    return BookingStatus(FREE_UNTIL, at=start, offered=True, free_for_s=ahead)


def snapshot_moment(snapshot: Mapping[str, Any]) -> datetime:
    """The moment a feed's snapshot speaks for (its `server_time`), for the booking rules;
    now when it names none."""
    try:
        return datetime.fromisoformat(snapshot["server_time"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


def offered(room: Mapping[str, Any], now: datetime) -> bool:
    """Whether the server may count a room as free for visitors (the other floors' panel):
    free by its sensors and not booked within the default margin, nor booked but empty."""
    return booking_status(room, now).offered


def aged(room: Mapping[str, Any], at: float, now: float) -> dict[str, Any]:
    """A room dict taken at monotonic time `at`, with its `since_s` as of `now`."""
    since = room.get("since_s")
    if not isinstance(since, int | float):
        return dict(room)
    out = dict(room)
    out["since_s"] = round(since + (now - at), 1)
    return out


def differs(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a kiosk needs to hear about this room: ages alone do not count."""
    return any(before.get(key) != after.get(key) for key in after if key != "since_s")


def sensors_by_space(
    sensors: Iterable[SensorHealth], doorways: Iterable[Doorway] = ()
) -> dict[str, list[tuple[str, str]]]:
    """(serial, health) of each space's sensors.

    An entry sensor may name its doorway rather than a space; the doorway (by its id, or by
    the sensor's serial number) says which spaces it counts for.
    """
    by_id: dict[str, Doorway] = {}
    by_serial: dict[str, Doorway] = {}
    for doorway in doorways:
        by_id[doorway.id] = doorway
        for serial in doorway.serial_numbers:
            by_serial[serial] = doorway
    out: dict[str, list[tuple[str, str]]] = {}
    for sensor in sensors:
        if sensor.space_ids or sensor.space_id:
            # A doorway counts for one or more spaces (a floor and its room): every one of them.
            spaces: Iterable[str] = sensor.space_ids or (sensor.space_id or "",)
        else:
            doorway = by_id.get(sensor.doorway_id or "") or by_serial.get(sensor.serial_number)
            spaces = doorway.space_ids if doorway is not None else ()
        for sid in spaces:
            out.setdefault(sid, []).append((sensor.serial_number, sensor.health))
    return out


def needs_doorways(sensors: Iterable[SensorHealth]) -> bool:
    """Whether some sensor names no space, so doorways must say where it counts."""
    return any(not s.space_id for s in sensors)
