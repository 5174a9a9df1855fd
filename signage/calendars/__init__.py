"""Room calendars from iCalendar (ICS) links and CalDAV calendars: fetch, parse, expand into
busy intervals.

Knows HTTP (httpx) and iCalendar, never Flask nor the rest of the server: core/bookings.py
runs it in the background. What leaves this package is start and end times only, never a
title, an organiser or an attendee.
"""

from __future__ import annotations

from signage.calendars.errors import (
    BadStatus,
    BadURL,
    CalendarError,
    Malformed,
    TimedOut,
    TooLarge,
    Unauthorized,
    Unexpected,
    Unreachable,
    Unreadable,
)
from signage.calendars.fetch import DEFAULT_MAX_BYTES, Fetched, check_url, fetch
from signage.calendars.parse import Busy, busy_intervals
from signage.calendars.sources import KINDS, Source, fetch_source

__all__ = [
    "DEFAULT_MAX_BYTES",
    "KINDS",
    "BadStatus",
    "BadURL",
    "Busy",
    "CalendarError",
    "Fetched",
    "Malformed",
    "Source",
    "TimedOut",
    "TooLarge",
    "Unauthorized",
    "Unexpected",
    "Unreachable",
    "Unreadable",
    "busy_intervals",
    "check_url",
    "fetch",
    "fetch_source",
]
