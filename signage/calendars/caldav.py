"""One CalDAV time-range REPORT: the events of a window of one calendar, bounded in time and size.

A room's CalDAV source is a calendar collection's URL with a user name and password (Nextcloud,
Radicale, Fastmail, iCloud with an app password, ...). The worker asks for the events that
overlap its window (RFC 4791 calendar-query with a time-range filter: recurring series come
whole, and the same parser as for ICS links expands them), over the same httpx client, with the
same timeout and size limit as an ICS fetch, the body counted while it streams in.

The `caldav` library is not used at run time: its synchronous client reads whole bodies into
memory (no size limit can hold), puts the calendar's URL in its exceptions, and brings niquests,
whose urllib3-future replaces the urllib3 of the whole environment at every interpreter start.
The tests use it, against a real Radicale, as the client that creates the calendars.

Every failure is a CalendarError whose message names neither the URL nor the user nor the
password; the multistatus is parsed with defusedxml (no DTD, no entities).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import httpx
import icalendar
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from signage.calendars.errors import (
    BadStatus,
    CalendarError,
    Malformed,
    TimedOut,
    Unauthorized,
    Unreachable,
)
from signage.calendars.fetch import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, check_url, read_body

logger = logging.getLogger(__name__)

__all__ = ["query_body", "report"]

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def query_body(start: datetime, end: datetime) -> bytes:
    """The calendar-query REPORT body: every VEVENT that overlaps [start, end)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><C:calendar-data/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{_stamp(start)}" end="{_stamp(end)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter>"
        "</C:calendar-query>"
    ).encode()


def _merge(texts: list[str]) -> bytes:
    """The calendar-data of each resource as one VCALENDAR (time zones once by TZID)."""
    merged = icalendar.Calendar()
    merged.add("VERSION", "2.0")
    merged.add("PRODID", "-//signage//caldav//EN")
    zones: set[str] = set()
    for text in texts:
        try:
            calendar = icalendar.Calendar.from_ical(text)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            # The parser's message may quote the event (a title): only its type goes on.
            raise Malformed(f"not an iCalendar resource ({type(exc).__name__})") from None
        for component in calendar.subcomponents:
            if component.name == "VTIMEZONE":
                tzid = str(component.get("TZID", ""))
                if tzid in zones:
                    continue
                zones.add(tzid)
            merged.add_component(component)
    return merged.to_ical()


def _calendar_data(body: bytes) -> list[str]:
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise Malformed(f"not a WebDAV multistatus ({type(exc).__name__})") from None
    if root.tag != f"{DAV}multistatus":
        raise Malformed("not a WebDAV multistatus")
    return [
        node.text for node in root.iter(f"{CALDAV}calendar-data") if node.text and node.text.strip()
    ]


def _auth(response: httpx.Response, username: str, password: str) -> httpx.Auth | None:
    """Digest when the server's 401 asks for it (Basic went first), else None: refused."""
    challenge = response.headers.get("WWW-Authenticate", "").lower()
    return httpx.DigestAuth(username, password) if "digest" in challenge else None


def report(
    client: httpx.Client,
    url: str,
    username: str,
    password: str,
    start: datetime,
    end: datetime,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> bytes:
    """The events of [start, end) of the calendar at url as one iCalendar body; raise a
    CalendarError (never naming the URL or the credentials) on any failure."""
    url = check_url(url)
    # Identity encoding: the size limit counts bytes as they arrive (see fetch.fetch).
    headers = {
        "Depth": "1",
        "Content-Type": "application/xml; charset=utf-8",
        "Accept-Encoding": "identity",
    }
    body = query_body(start, end)
    deadline = time.monotonic() + timeout
    auth: httpx.Auth | None = httpx.BasicAuth(username, password) if username else None
    # As in fetch.py, the httpx exception is neither cause nor context of ours: it holds the
    # request, with the URL and the Authorization header.
    error: CalendarError
    try:
        for attempt in range(2):
            with client.stream(
                "REPORT", url, headers=headers, content=body, auth=auth, timeout=timeout
            ) as response:
                if response.status_code in (401, 403):
                    retry = _auth(response, username, password) if username else None
                    if attempt == 0 and retry is not None and response.status_code == 401:
                        auth = retry
                        continue
                    status = response.status_code
                    raise Unauthorized(
                        f"the server refused the user name or password (HTTP {status})"
                        if username
                        else f"the server asks for a user name and password (HTTP {status})"
                    )
                if response.status_code == 404:
                    raise BadStatus(404)
                if response.status_code != 207:
                    raise BadStatus(response.status_code)
                texts = _calendar_data(read_body(response, max_bytes, deadline, timeout))
                return _merge(texts)
        raise Unauthorized("the server refused the user name or password")
    except httpx.TimeoutException as exc:
        error = TimedOut(f"no answer within {timeout:g} s ({type(exc).__name__})")
    except httpx.TooManyRedirects:
        error = Unreachable("too many redirects")
    except httpx.HTTPError as exc:
        error = Unreachable(f"connection failed ({type(exc).__name__})")
    raise error
