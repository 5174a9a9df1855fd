"""The booking rules of core/rooms.py: what a room dict carries of its calendar, what its times
make of the sensor state with a display's margin and grace period, and what the other floors'
panel counts as free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signage.actions.displays import Invalid, clean_display
from signage.core.building import summarise
from signage.core.floormap import GROUP_ORDER, group_of
from signage.core.rooms import (
    BOOKED_EMPTY,
    BOOKED_SOON,
    FREE_NO_BOOKING,
    FREE_UNTIL,
    IN_USE_BOOKED,
    IN_USE_UNBOOKED,
    NO_BOOKINGS,
    UNAVAILABLE,
    booking_fields,
    booking_status,
    unknown,
)
from signage.density.models import Space

NOW = datetime(2026, 3, 2, 12, 20, tzinfo=UTC)


def room(state: str, start: int | None = None, end: int | None = None, **extra: Any) -> dict:
    """A room dict with a fresh calendar whose booking runs from `start` to `end` minutes
    from NOW (None: nothing booked)."""
    fields = booking_fields(
        calendar=True,
        fresh=True,
        start=None if start is None else NOW + timedelta(minutes=start),
        end=None if end is None else NOW + timedelta(minutes=end),
    )
    return {"id": "spc_1", "state": state, "function": "meeting_room", **fields, **extra}


def test_the_fields_carry_times_only_and_say_unavailable_rather_than_old_times() -> None:
    start = NOW + timedelta(minutes=40)
    fields = booking_fields(calendar=True, fresh=True, start=start, end=start + timedelta(hours=1))
    assert fields == {
        "bookings": "ok",
        "next_booking": "2026-03-02T13:00:00Z",
        "next_booking_end": "2026-03-02T14:00:00Z",
    }
    assert booking_fields(calendar=True, fresh=False, start=start) == {
        "bookings": "unavailable",
        "next_booking": None,
        "next_booking_end": None,
    }
    assert booking_fields(calendar=False, fresh=True, start=start) == {}


@pytest.mark.parametrize(
    ("given", "kind", "at", "offered"),
    [
        (room("free", 40, 100), FREE_UNTIL, 40, True),
        (room("free"), FREE_NO_BOOKING, None, True),
        (room("free", 10, 70), BOOKED_SOON, 10, False),  # the margin's edge is inside it
        (room("free", 11, 70), FREE_UNTIL, 11, True),
        (room("free", -5, 55), BOOKED_SOON, -5, False),  # within the grace period
        (room("free", -20, 40, since_s=3600), BOOKED_EMPTY, -20, False),  # empty all along
        (room("free", -20, 40, since_s=300), BOOKED_EMPTY, -5, False),  # emptied 5 min ago
        (room("free", -20, 40), BOOKED_EMPTY, -20, False),
        (room("occupied"), IN_USE_UNBOOKED, None, False),
        (room("occupied", 5, 60), IN_USE_UNBOOKED, 5, False),
        (room("occupied", -5, 60), IN_USE_BOOKED, -5, False),
        (room("unknown", 40, 100), NO_BOOKINGS, None, False),  # the sensors cannot vouch
        ({"state": "free"}, NO_BOOKINGS, None, True),  # no calendar: the sensors alone
        ({"state": "free", **booking_fields(calendar=True)}, UNAVAILABLE, None, True),
        ({"state": "occupied", **booking_fields(calendar=True)}, UNAVAILABLE, None, False),
    ],
)
def test_what_the_times_make_of_the_sensor_state(given, kind, at, offered) -> None:
    status = booking_status(given, NOW)
    assert status.kind == kind
    assert status.at == (None if at is None else NOW + timedelta(minutes=at))
    assert status.offered is offered


def test_a_displays_margin_grace_and_offer_change_the_answer() -> None:
    assert booking_status(room("free", 25, 60), NOW, margin_min=30).kind == BOOKED_SOON
    assert booking_status(room("free", 25, 60), NOW, margin_min=0).kind == FREE_UNTIL
    assert booking_status(room("free", -20, 40), NOW, grace_min=30).kind == BOOKED_SOON
    empty = booking_status(room("free", -20, 40), NOW, offer_booked_empty=True)
    assert empty.kind == BOOKED_EMPTY and empty.offered


def test_a_booking_that_has_ended_adds_nothing_until_the_next_is_named() -> None:
    # The fields name the booking in progress or the next one as of their last tick; between
    # a booking's end and that tick they still name the ended one. kiosk.js (bookingStatus)
    # then says the sensors' words alone, and the server must too: a free room is offered
    # (not "booked soon" by a start in the past), an occupied one is not "in use (not booked)".
    free = booking_status(room("free", -65, -5), NOW)
    assert (free.kind, free.at, free.offered) == (NO_BOOKINGS, None, True)
    busy = booking_status(room("occupied", -65, -5), NOW)
    assert (busy.kind, busy.at, busy.offered) == (NO_BOOKINGS, None, False)
    ending = booking_status(room("free", -65, 0), NOW)  # its end is the moment: ended
    assert ending.kind == NO_BOOKINGS and ending.offered


def test_a_holder_that_cannot_vouch_withdraws_the_times_with_the_state() -> None:
    mirrored = unknown({**room("free", 40, 100), "last_known": "free", "health": "healthy"})
    assert mirrored["state"] == "unknown" and mirrored["reason"] == "stale"
    assert mirrored["bookings"] == "unavailable" and mirrored["next_booking"] is None
    assert "bookings" not in unknown({"state": "free", "last_known": "free"})


class _Feed:
    """A feed as the panel reads it: a live snapshot of the given rooms."""

    def __init__(self, rooms: list[dict[str, Any]]) -> None:
        self.rooms = {f"spc_{n}": {**r, "id": f"spc_{n}"} for n, r in enumerate(rooms)}

    def snapshot(self) -> dict[str, Any]:
        return {"feed": "live", "rooms": self.rooms, "server_time": "2026-03-02T12:20:00Z"}


def test_the_other_floors_panel_counts_only_rooms_it_would_offer() -> None:
    floor = Space(id="spc_f", name="2nd floor", space_type="floor")
    feed = _Feed(
        [
            room("free", 40, 100),  # free until 13:00: counted
            room("free"),  # nothing booked: counted
            {"state": "free", "function": "meeting_room"},  # no calendar: counted
            room("free", 5, 60),  # booked in 5 minutes: not counted
            room("free", -30, 30),  # booked, nobody here: not counted
            room("occupied"),
        ]
    )
    entry = summarise(floor, feed, GROUP_ORDER, group_of)  # type: ignore[arg-type]
    assert entry["state"] == "known" and entry["free_total"] == 3
    assert entry["free"]["meet"] == 3


def test_the_booking_settings_are_checked_field_by_field() -> None:
    base = {"name": "Lobby", "floor_id": "spc_f"}
    cleaned = clean_display(base, None, {"spc_f"})["settings"]
    assert (cleaned["booking_margin_min"], cleaned["booking_grace_min"]) == (10, 10)
    assert cleaned["offer_booked_empty"] is False and cleaned["free_for_min"] == 0
    given = {"booking_margin_min": "15", "booking_grace_min": 5, "offer_booked_empty": True}
    cleaned = clean_display({**base, **given, "free_for_min": 30}, None, {"spc_f"})["settings"]
    assert cleaned["booking_margin_min"] == 15 and cleaned["offer_booked_empty"] is True
    with pytest.raises(Invalid) as bad:
        clean_display(
            {
                **base,
                "booking_margin_min": -1,
                "booking_grace_min": "soon",
                "offer_booked_empty": "yes",
                "free_for_min": 481,
            },
            None,
            {"spc_f"},
        )
    assert set(bad.value.errors) == {
        "booking_margin_min",
        "booking_grace_min",
        "offer_booked_empty",
        "free_for_min",
    }
