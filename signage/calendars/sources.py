"""A room's calendar source, whichever its kind, and the one call that reads it.

`Source` is an iCalendar link ("ics") or a CalDAV calendar ("caldav": URL, user name,
password). The link and the password are secrets: they are left out of the dataclass's repr, so
a source printed in a log line or a traceback shows its kind and user name only. A source whose
sealed secret the server could not open is kind "unreadable": reading it fails with a message
saying to set it again, shown in fleet health like any other failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from signage.calendars.caldav import report
from signage.calendars.errors import CalendarError, Unreadable
from signage.calendars.fetch import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, Fetched, fetch

logger = logging.getLogger(__name__)

__all__ = ["KINDS", "Source", "fetch_source"]

KINDS = ("ics", "caldav")


@dataclass(frozen=True)
class Source:
    """Where a room's bookings come from; `url` and `password` never show in its repr."""

    kind: str  # "ics", "caldav" or "unreadable"
    url: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def conditional(self) -> bool:
        """Whether a fetch can be conditional (ETag, Last-Modified): an ICS GET can, a CalDAV
        REPORT cannot (its answer depends on the window asked for)."""
        return self.kind == "ics"


def fetch_source(
    client: httpx.Client,
    source: Source | str,
    start: datetime,
    end: datetime,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> Fetched:
    """Read a source: an ICS link with its validators, a CalDAV calendar's events in
    [start, end) (as one iCalendar body); a plain string is an ICS link."""
    if isinstance(source, str):
        source = Source("ics", source)
    if source.kind == "ics":
        return fetch(
            client,
            source.url,
            etag=etag,
            last_modified=last_modified,
            max_bytes=max_bytes,
            timeout=timeout,
        )
    if source.kind == "caldav":
        body = report(
            client,
            source.url,
            source.username,
            source.password,
            start,
            end,
            max_bytes=max_bytes,
            timeout=timeout,
        )
        return Fetched(body)
    if source.kind == "unreadable":
        raise Unreadable("the stored link cannot be read with this server's key: set it again")
    raise CalendarError(f"unknown kind of calendar source {source.kind!r}")
