"""An iCalendar body to the busy intervals of a window: times only, nothing that names anyone.

recurring-ical-events expands the series (RRULE, RDATE, EXDATE, instances moved by
RECURRENCE-ID); what is kept of each occurrence is its start and end as aware datetimes.
Cancelled and transparent ("show as free") events are not busy. An all-day event holds the
room from midnight to midnight in the room's time zone, as does a floating time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import icalendar
import recurring_ical_events

from signage.calendars.errors import Malformed

logger = logging.getLogger(__name__)

__all__ = ["MAX_INTERVALS", "Busy", "busy_intervals"]

# A feed with a series every second must not fill the memory nor hold the thread: past this
# many occurrences in the window the rest is dropped (a room has a few dozen bookings a week).
MAX_INTERVALS = 5000


@dataclass(frozen=True, order=True)
class Busy:
    """One span in which the room is booked, as aware datetimes (start < end)."""

    start: datetime
    end: datetime


def _aware(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    return datetime.combine(value, time(0), zone)


def _span(event: Any, zone: tzinfo) -> tuple[datetime, datetime] | None:
    start_prop = event.get("DTSTART")
    if start_prop is None:
        return None
    start_value = start_prop.dt
    end_prop = event.get("DTEND")
    if end_prop is not None:
        end_value = end_prop.dt
    elif event.get("DURATION") is not None:
        end_value = start_value + event["DURATION"].dt
    elif isinstance(start_value, datetime):
        return None  # RFC 5545: a point in time, which holds the room for no time at all
    else:
        end_value = start_value + timedelta(days=1)  # an all-day event without DTEND: one day
    start, end = _aware(start_value, zone), _aware(end_value, zone)
    return (start, end) if end > start else None


def _merge(spans: list[Busy]) -> tuple[Busy, ...]:
    out: list[Busy] = []
    for span in sorted(spans):
        if out and span.start <= out[-1].end:
            if span.end > out[-1].end:
                out[-1] = Busy(out[-1].start, span.end)
        else:
            out.append(span)
    return tuple(out)


def busy_intervals(
    body: bytes | str, start: datetime, end: datetime, zone: tzinfo = UTC
) -> tuple[Busy, ...]:
    """The busy spans that overlap [start, end), merged and sorted; Malformed if unreadable.

    `zone` is the room's time zone: all-day events and floating times are read in it.
    """
    try:
        calendar = icalendar.Calendar.from_ical(body)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        # The parser's message may quote the feed (a title): only its type goes on.
        raise Malformed(f"not an iCalendar calendar ({type(exc).__name__})") from None
    if getattr(calendar, "name", None) != "VCALENDAR":
        raise Malformed("not an iCalendar calendar (no VCALENDAR)")
    spans: list[Busy] = []
    # Lazily and in order of start, with a day's margin (an all-day event is matched in the
    # feed's own terms, the window is cut again below with aware times): a series every
    # second costs MAX_INTERVALS occurrences, not the millions in the window.
    query = recurring_ical_events.of(calendar, skip_bad_series=True)
    seen = 0
    try:
        for event in query.after(start - timedelta(days=1)):
            begins = event.get("DTSTART")
            if begins is not None and _aware(begins.dt, zone) >= end:
                break
            seen += 1
            if seen > MAX_INTERVALS:
                logger.warning("calendar has more than %d events in the window", MAX_INTERVALS)
                break
            if str(event.get("STATUS", "")).upper() == "CANCELLED":
                continue
            if str(event.get("TRANSP", "")).upper() == "TRANSPARENT":
                continue
            span = _span(event, zone)
            if span is None or span[1] <= start or span[0] >= end:
                continue
            spans.append(Busy(span[0], span[1]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise Malformed(f"unreadable events ({type(exc).__name__})") from None
    return _merge(spans)
