"""Room bookings from calendar links, refreshed in the background and answered from memory.

One thread (`Bookings.start`) fetches every room's iCalendar link each refresh interval
(SIGNAGE_CALENDAR_REFRESH), with the validators of its last answer, and backs off a calendar
that fails. It keeps, per room, the busy intervals of the coming days and when they were last
confirmed. Requests and feeds only read that memory (`next_booking`, `room_fields`): none ever
waits on a calendar. Data older than the refresh interval plus a margin is not answered: the
room is then "bookings unavailable", never a stale "free until".

The URLs come from `sources()` (the store's, wired in services.py) and are never logged nor
returned: a room's status names its space, its age and its error, not its link.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from signage.calendars import (
    DEFAULT_MAX_BYTES,
    Busy,
    CalendarError,
    Source,
    Unexpected,
    busy_intervals,
    check_url,
    fetch_source,
)
from signage.core.clock import SYSTEM_CLOCK, Clock
from signage.core.rooms import booking_fields
from signage.density.backoff import Backoff

logger = logging.getLogger(__name__)

__all__ = ["Bookings", "CalendarStatus", "InvalidLink", "NextBooking", "valid_link"]

# How far ahead bookings are kept: a week and a day, so "free until" holds across a weekend.
HORIZON = timedelta(days=8)
# Unchanged answers (304) keep the intervals computed when the body was last read; once those
# reach less than this far ahead, the validators are dropped and the body read again.
REREAD_AFTER = timedelta(days=1)


class InvalidLink(ValueError):
    """A calendar link the worker could never fetch (not http(s), no host)."""


def valid_link(url: str) -> str:
    """The link as it will be fetched, or InvalidLink saying why (never repeating it)."""
    try:
        return check_url(url)
    except CalendarError as exc:
        raise InvalidLink(exc.message) from None


@dataclass(frozen=True)
class NextBooking:
    """What is known of a room's next booking: `known` False when the data is missing or old;
    `start` and `end` are those of the booking in progress or of the next one (None: none
    ahead)."""

    known: bool
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class CalendarStatus:
    """A room's calendar as fleet health shows it: never its URL."""

    space_id: str
    last_fetch: float | None  # wall time of the last attempt
    last_ok: float | None  # wall time the intervals were last confirmed
    age_s: float | None
    fresh: bool
    error: str | None  # the last attempt's reason and message, None when it worked
    bookings: int  # busy intervals held in the horizon


@dataclass
class _Entry:
    url: str | Source  # an ICS link, or any kind of source (signage/calendars/sources.py)
    etag: str | None = None
    last_modified: str | None = None
    intervals: tuple[Busy, ...] = ()
    read_at: datetime | None = None  # when the body was last parsed (the window's start)
    last_fetch: float | None = None
    last_ok: float | None = None
    error: str | None = None
    due: float = 0.0  # wall time of the next attempt
    failures: int = 0
    running: bool = False


class Bookings:
    """Every room's calendar, fetched in a background thread and read from memory."""

    def __init__(
        self,
        sources: Callable[[], Mapping[str, str | Source]],
        *,
        refresh: float = 300.0,
        margin: float | None = None,
        timeout: float = 10.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        zone_of: Callable[[str], str | tzinfo | None] | None = None,
        client: httpx.Client | None = None,
        clock: Clock = SYSTEM_CLOCK,
        workers: int = 4,
        wanted: Callable[[str], bool] | None = None,
    ) -> None:
        self._sources = sources
        # In a Redis fleet, only the process holding a room's floor lease fetches its calendar
        # (its feed builds the rooms every process mirrors); `wanted` says which (services.py).
        self._wanted = wanted or (lambda _space_id: True)
        self.refresh = float(refresh)
        # Past refresh + margin the data is not trusted: one failed attempt plus its timeout
        # is tolerated, a calendar silent for two intervals is not.
        self.margin = float(margin) if margin is not None else max(60.0, self.refresh / 2)
        self.timeout = float(timeout)
        self.max_bytes = int(max_bytes)
        self._zone_of = zone_of or (lambda _space_id: None)
        self._owns_client = client is None
        self._client = client or httpx.Client(follow_redirects=True, max_redirects=5)
        self.clock = clock
        self._workers = max(1, workers)
        self._backoff = Backoff(base=min(30.0, self.refresh), cap=max(60.0, 4 * self.refresh))
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list[Callable[[set[str]], Any]] = []  # rooms whose bookings changed
        self.fetches = 0  # attempts so far, for /metrics
        self.fetch_errors = 0

    # -- the background thread ----------------------------------------------------------------
    def start(self) -> None:
        """Start the refresh thread (idempotent; restarted in a forked child)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="signage-bookings", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the client if it was created here."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.timeout + 5)
        if self._owns_client:
            self._client.close()

    def poke(self) -> None:
        """Re-read the sources and fetch any new one soon (after an admin change). Only wakes
        the thread: the caller never waits on a calendar."""
        self._wake.set()

    def _run(self) -> None:
        with ThreadPoolExecutor(self._workers, thread_name_prefix="signage-calendar") as pool:
            while not self._stop.is_set():
                try:
                    self.refresh_due(pool)
                except Exception:  # the thread must outlive a store outage or a bug
                    logger.exception("calendar refresh failed")
                self._wake.clear()
                self.clock.wait(self._wake, self._next_wait())

    def _next_wait(self) -> float:
        now = self.clock.time()
        with self._lock:
            dues = [e.due for e in self._entries.values() if not e.running]
        return max(0.5, min([d - now for d in dues], default=self.refresh))

    def refresh_due(self, pool: ThreadPoolExecutor | None = None) -> int:
        """Sync the sources, then fetch every calendar that is due; returns how many were."""
        self._sync_sources()
        now = self.clock.time()
        with self._lock:
            ready = [s for s, e in self._entries.items() if e.due <= now and not e.running]
        due = [s for s in ready if self._wanted(s)]  # outside the lock: it asks the feeds
        with self._lock:
            for space_id in ready:
                entry = self._entries.get(space_id)
                if entry is not None and space_id in due:
                    entry.running = True
                elif entry is not None:  # another process's floor: look again soon
                    entry.due = now + min(self.refresh, 5.0)
            due = [s for s in due if s in self._entries]
        if pool is None:
            for space_id in due:
                self._refresh_one(space_id)
        else:
            list(pool.map(self._refresh_one, due))
        return len(due)

    def _sync_sources(self) -> None:
        sources = dict(self._sources())
        with self._lock:
            for space_id in set(self._entries) - set(sources):
                del self._entries[space_id]
            for space_id, url in sources.items():
                entry = self._entries.get(space_id)
                if entry is None or entry.url != url:
                    self._entries[space_id] = _Entry(url=url)

    def _zone(self, space_id: str) -> tzinfo:
        """The room's time zone (all-day events are its midnights); UTC when unknown."""
        zone = self._zone_of(space_id)
        if isinstance(zone, tzinfo):
            return zone
        try:
            return ZoneInfo(zone) if zone else UTC
        except (ZoneInfoNotFoundError, ValueError):
            return UTC

    def _refresh_one(self, space_id: str) -> None:
        with self._lock:
            entry = self._entries.get(space_id)
            if entry is None:
                return
            url, etag, modified = entry.url, entry.etag, entry.last_modified
            read_at = entry.read_at
        wall = self.clock.time()
        now = datetime.fromtimestamp(wall, UTC)
        if read_at is None or now - read_at > REREAD_AFTER:
            etag = modified = None  # the kept window runs out: read the body again
        error: CalendarError | None = None
        intervals: tuple[Busy, ...] | None = None
        try:
            got = fetch_source(
                self._client,
                url,
                now - timedelta(days=1),
                now + HORIZON,
                etag=etag,
                last_modified=modified,
                max_bytes=self.max_bytes,
                timeout=self.timeout,
            )
            if got.body is not None:
                start = now - timedelta(days=1)
                intervals = busy_intervals(got.body, start, now + HORIZON, self._zone(space_id))
        except CalendarError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 (a fault of ours or a library's)
            # The room must not stay "being fetched" for ever; the message may carry the link,
            # so only the exception's type is kept and logged.
            logger.warning("calendar of %s: unexpected %s", space_id, type(exc).__name__)
            error = Unexpected(type(exc).__name__)
        changed = False
        with self._lock:
            if self._entries.get(space_id) is not entry:
                return  # removed or replaced by an admin meanwhile
            entry.running = False
            entry.last_fetch = wall
            self.fetches += 1
            self.fetch_errors += error is not None
            if error is None:
                if entry.error is not None:
                    logger.info("calendar of room %s recovered", space_id)
                entry.error, entry.failures = None, 0
                entry.last_ok = wall
                if intervals is not None:
                    changed = intervals != entry.intervals
                    entry.intervals, entry.read_at = intervals, now
                    entry.etag, entry.last_modified = got.etag, got.last_modified
                entry.due = wall + self.refresh
            else:
                text = f"{error.reason}: {error.message}"
                if entry.error != text:
                    # A change of state, not every retry; the reason, never the link.
                    logger.warning(
                        "calendar of room %s failed: %s",
                        space_id,
                        text,
                        extra={"event": "calendar", "space_id": space_id, "reason": error.reason},
                    )
                entry.error = text
                entry.due = wall + max(1.0, self._backoff.delay(entry.failures))
                entry.failures += 1
        if changed:
            for listener in list(self.listeners):
                listener({space_id})

    # -- answers, from memory only ------------------------------------------------------------
    def has_source(self, space_id: str) -> bool:
        """Whether the room has a calendar (as of the last look at the sources)."""
        with self._lock:
            return space_id in self._entries

    def _fresh(self, entry: _Entry, wall: float) -> bool:
        return entry.last_ok is not None and wall - entry.last_ok <= self.refresh + self.margin

    def next_booking(self, space_id: str, now: datetime) -> NextBooking:
        """The booking in progress at `now` or the next one, if the room's data is fresh."""
        with self._lock:
            entry = self._entries.get(space_id)
            if entry is None or not self._fresh(entry, now.timestamp()):
                return NextBooking(known=False)
            intervals = entry.intervals
        for busy in intervals:  # sorted and merged: the first that has not ended
            if busy.end > now:
                return NextBooking(known=True, start=busy.start, end=busy.end)
        return NextBooking(known=True, start=None)

    def room_fields(self, space_id: str) -> dict[str, Any]:
        """What a room dict carries of its bookings, by the rule in core/rooms.py
        (`booking_fields`): nothing without a calendar, "unavailable" when its data is old,
        else the times of the booking in progress or the next one."""
        if not self.has_source(space_id):
            return booking_fields(calendar=False)
        answer = self.next_booking(space_id, datetime.fromtimestamp(self.clock.time(), UTC))
        return booking_fields(calendar=True, fresh=answer.known, start=answer.start, end=answer.end)

    def statuses(self) -> dict[str, CalendarStatus]:
        """Every room's calendar status, for fleet health and the API (no URL)."""
        wall = self.clock.time()
        with self._lock:
            return {
                space_id: CalendarStatus(
                    space_id=space_id,
                    last_fetch=e.last_fetch,
                    last_ok=e.last_ok,
                    age_s=None if e.last_ok is None else round(wall - e.last_ok, 1),
                    fresh=self._fresh(e, wall),
                    error=e.error,
                    bookings=len(e.intervals),
                )
                for space_id, e in self._entries.items()
            }
