"""Room calendars that agree with the simulated day: an iCalendar feed per meeting room.

The bookings are read off the scenario's own day (scenarios.day_events), so the calendar and
the sensors tell one story: most meetings are booked and held, some bookings are never turned up
to (the empty booked room), and some meetings sit in a room nobody booked. Times are real
wall-clock times as the scenario plays them (`speed` times faster than real time), so a server
comparing them with its clock sees the same day the sensors show.

Served at /_sim/calendars/<space_id>.ics, with an ETag (answers 304 while nothing changed);
the quiet scenario has no bookings.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, abort, current_app, request

from signage.sim.portfolio import Portfolio
from signage.sim.scenarios import DAY_LENGTH, day_events

logger = logging.getLogger(__name__)

__all__ = ["SimBooking", "bp", "calendar_text", "day_bookings"]

SLOT = 30.0  # minutes: bookings start and end on the half hour
NO_SHOW = 0.25  # chance a free half hour holds a booking nobody turns up to
UNBOOKED = 0.12  # chance a held meeting was never booked
DAYS_AROUND = (1, 3)  # simulated days served before and after the current one

bp = Blueprint("sim_calendars", __name__, url_prefix="/_sim/calendars")


@dataclass(frozen=True)
class SimBooking:
    """One booking in minutes after its simulated day began, and whether anyone turns up."""

    start: float
    end: float
    held: bool


def _sessions(portfolio: Portfolio, seed: int, day: int) -> dict[str, list[tuple[float, float]]]:
    """Each meeting room's occupied periods that day, in minutes, from the scenario's events."""
    meeting = {r.id for r in portfolio.rooms() if r.function == "meeting_room"}
    opened: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = {room: [] for room in meeting}
    for event in day_events(portfolio, seed, day):
        if event.kind != "presence" or event.target not in meeting:
            continue
        if event.value:
            opened[event.target] = event.at / 60
        elif event.target in opened:
            out[event.target].append((opened.pop(event.target), event.at / 60))
    return out


def day_bookings(portfolio: Portfolio, seed: int, day: int) -> dict[str, list[SimBooking]]:
    """Each meeting room's bookings of one simulated day, a pure function of its arguments."""
    out: dict[str, list[SimBooking]] = {}
    for room, sessions in sorted(_sessions(portfolio, seed, day).items()):
        rng = random.Random(f"calendar-{seed}-{day}-{room}")
        bookings: list[SimBooking] = []
        taken: set[int] = set()
        for start, end in sessions:
            first = int(round(start / SLOT))
            last = max(first + 1, int(round(end / SLOT)))
            taken.update(range(first - 1, last + 1))  # no phantom booking touching a meeting
            if rng.random() < UNBOOKED:
                continue  # people walked in without booking
            bookings.append(SimBooking(first * SLOT, last * SLOT, held=True))
        for slot in range(2, 22):  # 08:00 to 18:00 of the simulated day
            if slot in taken or rng.random() >= NO_SHOW:
                continue
            length = rng.choice((1, 2))
            if any(s in taken for s in range(slot, slot + length)):
                continue
            taken.update(range(slot - 1, slot + length + 1))
            bookings.append(SimBooking(slot * SLOT, (slot + length) * SLOT, held=False))
        out[room] = sorted(bookings, key=lambda b: b.start)
    return out


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar_text(
    portfolio: Portfolio,
    seed: int,
    space_id: str,
    began: datetime,
    speed: float,
    day: int,
) -> str:
    """The room's feed around simulated `day`, for a scenario that began at wall time `began`."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//signage simulator//calendars//EN"]
    first, after = DAYS_AROUND
    for d in range(max(0, day - first), day + after + 1):
        for n, booking in enumerate(day_bookings(portfolio, seed, d).get(space_id, [])):

            def wall(minutes: float, d: int = d) -> datetime:
                return began + timedelta(seconds=(d * DAY_LENGTH + minutes * 60) / speed)

            lines += [
                "BEGIN:VEVENT",
                f"UID:{space_id}-{d}-{n}@signage-sim",
                f"DTSTAMP:{_stamp(began)}",
                f"DTSTART:{_stamp(wall(booking.start))}",
                f"DTEND:{_stamp(wall(booking.end))}",
                "SUMMARY:Booked",  # a real feed has titles; the server must drop them
                "END:VEVENT",
            ]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


@bp.get("/<space_id>.ics")
def room_calendar(space_id: str) -> Response:
    """A meeting room's calendar as the scenario plays it (empty in the quiet scenario)."""
    sim = current_app.extensions["signage_sim"]
    room = next((r for r in sim.portfolio.rooms() if r.id == space_id), None)
    if room is None:
        abort(404)
    began = getattr(sim, "scenario_began", None)
    if sim.scenario == "quiet" or began is None:
        text = calendar_text(sim.portfolio, sim.seed, "", sim.wall(), 1.0, 0)  # no events
    else:
        elapsed = (sim.wall() - began).total_seconds() * sim.speed
        day = max(0, int(elapsed // DAY_LENGTH))
        text = calendar_text(sim.portfolio, sim.seed, space_id, began, sim.speed, day)
    etag = hashlib.sha256(text.encode()).hexdigest()[:20]
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = Response(text, mimetype="text/calendar")
    response.set_etag(etag)
    return response
