"""Room calendars from iCalendar (ICS) links: fetch, parse, expand into busy intervals.

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
    Unreachable,
)
from signage.calendars.fetch import DEFAULT_MAX_BYTES, Fetched, check_url, fetch
from signage.calendars.parse import Busy, busy_intervals

__all__ = [
    "DEFAULT_MAX_BYTES",
    "BadStatus",
    "BadURL",
    "Busy",
    "CalendarError",
    "Fetched",
    "Malformed",
    "TimedOut",
    "TooLarge",
    "Unreachable",
    "busy_intervals",
    "check_url",
    "fetch",
]
