"""Announcements on screens: a banner or an emergency override, to a display, a floor or all.

The store keeps them (times in Unix seconds); this module checks what an admin typed, works out
which are showing on a display now, and pushes each affected display its whole current list as
`{"type": "announcements", "items": [...]}` through the hub. A list is idempotent, so a kiosk
needs no sequence numbers: the latest list wins. `rev` orders lists within a server epoch, so a
snapshot built a moment before a change cannot overwrite the change's list on the kiosk.

One scheduler thread (started on first use, like the feed housekeeper) sends again when an
announcement starts or ends, and re-reads the store now and then so that a change made by
another process (the CLI, a second server) reaches this process's kiosks too.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from signage.actions import audit
from signage.core.protocol import ANNOUNCEMENTS, dumps
from signage.store import Announcement, Display, Store
from signage.store.db import StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

KINDS = ("message", "emergency")
SCOPES = ("display", "floor", "all")
MAX_TITLE = 120
MAX_BODY = 1000
MAX_DURATION_MIN = 31 * 24 * 60  # a month: an announcement nobody remembers should still end
MAX_START_AHEAD_S = 365 * 24 * 3600
# Every kiosk state carries every announcement it shows (1040 at once made each 150 KB), and no
# lobby screen can show more than a handful: at most this many at any moment to one audience
# (a display, a floor, or all), and in all. Ended and cancelled ones do not count.
MAX_PER_AUDIENCE = 20
MAX_ACTIVE = 50
FIELDS = (
    "scope",
    "target",
    "audience",
    "kind",
    "title",
    "body",
    "starts_at",
    "ends_at",
    "duration_minutes",
)
_FLOOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_EPOCH_RANGE = (946_684_800.0, 32_503_680_000.0)  # 2000 to 3000: anything else is a typo


class AnnouncementInvalid(Exception):
    """Input that cannot be saved; `errors` maps each field to a message for people."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# -- checking what an admin typed ------------------------------------------------------------------
def _plain_text(value: Any, field: str, errors: dict[str, str], limit: int, lines: bool) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[field] = "must be text"
        return ""
    value = value.replace("\r\n", "\n").strip()
    if len(value) > limit:
        errors[field] = f"at most {limit} characters"
    elif any(ord(c) < 32 and not (lines and c in "\n\t") for c in value) or "\x7f" in value:
        errors[field] = "must not contain control characters"
    return value


def parse_time(value: Any) -> float:
    """Unix seconds from a number or an ISO 8601 time with its offset; ValueError says why."""
    if isinstance(value, bool):
        raise ValueError("a time: ISO 8601 with an offset (…Z or …+01:00) or Unix seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip()[:40])
        except ValueError:
            raise ValueError(
                "not a time: use ISO 8601 with an offset, e.g. 2026-05-01T17:00+02:00"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError("give the time's offset, e.g. 2026-05-01T17:00+02:00 or …Z")
        try:
            seconds = parsed.timestamp()
        except (OverflowError, OSError, ValueError):
            raise ValueError("not a time this server can use") from None
    else:
        raise ValueError("a time: ISO 8601 with an offset (…Z or …+01:00) or Unix seconds")
    if not math.isfinite(seconds) or not _EPOCH_RANGE[0] <= seconds <= _EPOCH_RANGE[1]:
        raise ValueError("not a time this server can use")
    return seconds


def iso(seconds: float) -> str:
    """Unix seconds as ISO 8601 UTC (what pages and the API show)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(value: Any, errors: dict[str, str]) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        # Digits past any sensible length still say the range, not "a whole number".
        value = int(value) if len(value.strip()) <= 12 else MAX_DURATION_MIN + 1
    if isinstance(value, bool) or not isinstance(value, int):
        errors["duration_minutes"] = f"a whole number of minutes, from 1 to {MAX_DURATION_MIN}"
        return None
    if not 1 <= value <= MAX_DURATION_MIN:
        errors["duration_minutes"] = f"at most {MAX_DURATION_MIN} minutes (31 days), at least 1"
        return None
    return value * 60.0


def clean_announcement(
    data: Mapping[str, Any],
    store: Store,
    now: float,
    known_floors: set[str] | None = None,
) -> dict[str, Any]:
    """Validated keyword arguments for `Store.add_announcement`; raises AnnouncementInvalid.

    `audience` ("all", "floor:<id>", "display:<id>", the console's one select) stands for
    scope and target. A floor must be one Density lists (`known_floors`) or one a display is on.
    The end is `ends_at` or `duration_minutes` after the start; the start defaults to now.
    """
    errors: dict[str, str] = {}
    for key in sorted((k for k in data if k not in FIELDS), key=str)[:5]:
        errors[str(key)[:40]] = "unknown field"

    scope, target = data.get("scope"), data.get("target")
    audience = data.get("audience")
    if audience not in (None, ""):
        if not isinstance(audience, str):
            errors["audience"] = "all, floor:<floor id> or display:<display id>"
        else:
            scope, _, target = audience.partition(":")
            target = target or None
    if isinstance(target, int) and not isinstance(target, bool):
        target = str(target)
    if scope not in SCOPES:
        errors.setdefault("scope", "display, floor or all")
    elif scope == "all":
        if target not in (None, ""):
            errors["target"] = "an announcement to all displays has no target"
        target = None
    elif not isinstance(target, str) or not target:
        errors["target"] = f"which {scope}: its id"
    elif scope == "display":
        display = store.get_display(int(target)) if re.fullmatch(r"\d{1,9}", target) else None
        if display is None:
            errors["target"] = "no such display"
        else:
            target = str(display.id)
    elif not _FLOOR_ID.match(target) or not (
        target in (known_floors or set()) or store.list_displays(target)
    ):
        errors["target"] = "not a floor Density lists or a display is on"

    kind = data.get("kind", "message")
    if kind not in KINDS:
        errors["kind"] = "message (a banner) or emergency (the whole screen)"

    title = _plain_text(data.get("title"), "title", errors, MAX_TITLE, lines=False)
    if not title and "title" not in errors:
        errors["title"] = "an announcement needs a title"
    body = _plain_text(data.get("body"), "body", errors, MAX_BODY, lines=True)

    starts_at = now
    raw_start = data.get("starts_at")
    if raw_start not in (None, ""):
        try:
            starts_at = parse_time(raw_start)
        except ValueError as exc:
            errors["starts_at"] = str(exc)
        else:
            if starts_at > now + MAX_START_AHEAD_S:
                errors["starts_at"] = "at most a year from now"
            # A start in the past means "now": nothing was shown then.
            starts_at = max(starts_at, now)

    duration = _duration(data.get("duration_minutes"), errors)
    raw_end = data.get("ends_at")
    ends_at: float | None = None
    if raw_end not in (None, ""):
        if duration is not None:
            errors["ends_at"] = "give an end time or a duration, not both"
        else:
            try:
                ends_at = parse_time(raw_end)
            except ValueError as exc:
                errors["ends_at"] = str(exc)
    elif duration is not None:
        ends_at = starts_at + duration
    elif "duration_minutes" not in errors:
        errors["ends_at"] = "give an end time (or a duration in minutes)"
    if ends_at is not None and "ends_at" not in errors and "starts_at" not in errors:
        if ends_at <= now:
            errors["ends_at"] = "the end must be in the future"
        elif ends_at <= starts_at:
            errors["ends_at"] = "the end must come after the start"
        elif ends_at - starts_at > MAX_DURATION_MIN * 60:
            errors["ends_at"] = "an announcement lasts at most 31 days"
    if not errors:
        assert ends_at is not None
        field = "audience" if audience not in (None, "") else "scope"
        full = _no_room(store, scope, target, starts_at, ends_at, now)
        if full:
            errors[field] = full
    if errors:
        raise AnnouncementInvalid(errors)
    assert ends_at is not None
    return {
        "scope": scope,
        "target": target,
        "kind": kind,
        "title": title,
        "body": body,
        "starts_at": starts_at,
        "ends_at": ends_at,
    }


def _no_room(
    store: Store, scope: str, target: str | None, starts_at: float, ends_at: float, now: float
) -> str:
    """Why a new announcement would pass a cap, or "" when there is room (checked early, so the
    form can say so with the other fields; `Announcer.create` checks again as it inserts)."""
    current = store.list_announcements(current_at=now)
    return _full(current, scope, target, starts_at, ends_at)


def _full(
    current: Iterable[Announcement],
    scope: str,
    target: str | None,
    starts_at: float,
    ends_at: float,
) -> str:
    """Why one more announcement among `current` would pass a cap, or "" when there is room.

    Only those whose time overlaps the new one's count: every moment the new one shows lies in
    its own window, so if it overlaps fewer than the cap, no moment shows more than the cap.
    """
    overlapping = [a for a in current if a.starts_at < ends_at and starts_at < a.ends_at]
    same = [a for a in overlapping if a.scope == scope and a.target == target]
    whom = {"all": "all displays", "floor": f"floor {target}", "display": f"display {target}"}
    if len(same) >= MAX_PER_AUDIENCE:
        return (
            f"at most {MAX_PER_AUDIENCE} announcements may show at once to {whom[scope]}, and"
            f" {len(same)} would overlap this one: cancel one first, or choose another time"
        )
    if len(overlapping) >= MAX_ACTIVE:
        return (
            f"at most {MAX_ACTIVE} announcements may show at once in all, and"
            f" {len(overlapping)} would overlap this one: cancel one first, or choose another time"
        )
    return ""


def room_for_all(store: Store, cleaned: list[dict[str, Any]], now: float) -> str:
    """Why the checked announcements of one selection would not all fit under the caps, each
    counting those before it, or "" when they all fit (so a selection is sent to all or none)."""
    pool: list[Any] = list(store.list_announcements(current_at=now))
    for fields in cleaned:
        scope, target = fields["scope"], fields["target"]
        full = _full(pool, scope, target, fields["starts_at"], fields["ends_at"])
        if full:
            return f"not sent to any of the {len(cleaned)}: {full}"
        pool.append(SimpleNamespace(**fields))
    return ""


# -- who sees what ---------------------------------------------------------------------------------
def reaches(announcement: Announcement, display_id: int, floor_id: str) -> bool:
    """Whether an announcement is addressed to this display."""
    if announcement.scope == "all":
        return True
    if announcement.scope == "floor":
        return announcement.target == floor_id
    return announcement.target == str(display_id)


def item(announcement: Announcement, now: float) -> dict[str, Any]:
    """An announcement as a kiosk gets it: plain text, and when it ends (ends_in_s at now)."""
    return {
        "id": announcement.id,
        "kind": announcement.kind,
        "title": announcement.title,
        "body": announcement.body,
        "starts_at": iso(announcement.starts_at),
        "ends_at": iso(announcement.ends_at),
        "ends_in_s": round(max(0.0, announcement.ends_at - now), 1),
    }


def etag_part(items: list[dict[str, Any]] | None) -> str:
    """What an HTTP poller's ETag needs from a snapshot's announcements: which ones, until when."""
    return ".".join(f"{i['id']}:{i['ends_at']}" for i in items or ()) or "none"


def public(announcement: Announcement, now: float, label: str = "") -> dict[str, Any]:
    """An announcement as the admin API shows it."""
    if announcement.cancelled_at is not None:
        status = "cancelled"
    elif now < announcement.starts_at:
        status = "scheduled"
    elif now < announcement.ends_at:
        status = "showing"
    else:
        status = "ended"
    return {
        "id": announcement.id,
        "scope": announcement.scope,
        "target": announcement.target,
        "audience": label,
        "kind": announcement.kind,
        "title": announcement.title,
        "body": announcement.body,
        "starts_at": iso(announcement.starts_at),
        "ends_at": iso(announcement.ends_at),
        "cancelled_at": None
        if announcement.cancelled_at is None
        else iso(announcement.cancelled_at),
        "created_at": announcement.created_at,
        "created_by": announcement.created_by,
        "status": status,
    }


class Announcer:
    """Sends each connected display its current announcements, now and at every start and end."""

    def __init__(
        self,
        store: Store,
        hub: Any,
        epoch: str,
        recheck: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.hub = hub
        self.epoch = epoch
        self.recheck = recheck
        self.clock = clock
        self._lock = threading.Lock()  # one list computed and queued at a time
        self._rev = 0
        self._sent: dict[int, tuple] = {}  # display id -> what its kiosks were last given
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_pool: list[Announcement] | None = None
        # Called after a change made here (the Redis fleet tells its other processes).
        self.on_change: Callable[[], Any] | None = None
        self.sends = 0

    # -- what a display shows ---------------------------------------------------------------
    def current_for(
        self, display_id: int, floor_id: str, now: float, pool: Iterable[Announcement] | None = None
    ) -> list[Announcement]:
        """The announcements showing on one display now, emergencies first, newest first."""
        pool = self._current_pool(now) if pool is None else pool
        shown = [a for a in pool if a.current(now) and reaches(a, display_id, floor_id)]
        return sorted(shown, key=lambda a: (a.kind != "emergency", -a.id))

    def _current_pool(self, now: float) -> list[Announcement]:
        """Announcements not over by `now`; while the database is unreachable, the last list read
        (kiosks that reconnect during an outage still get their snapshot, and end times are
        still applied to it)."""
        try:
            pool = self.store.list_announcements(current_at=now)
        except StoreUnavailable:
            if self._last_pool is None:
                raise
            return self._last_pool
        self._last_pool = pool
        return pool

    def snapshot_part(self, display: Display) -> dict[str, Any]:
        """The `announcements` and `announcements_rev` fields of a display's snapshot."""
        self.ensure_started()
        with self._lock:
            rev = self._rev
            now = self.clock()
            shown = self.current_for(display.id, display.floor_id, now)
            # The scheduler need not send this display what its snapshot carries.
            self._sent[display.id] = tuple((a.id, a.ends_at) for a in shown)
        return {"announcements": [item(a, now) for a in shown], "announcements_rev": rev}

    # -- changes ----------------------------------------------------------------------------
    def create(self, created_by: str | None = None, **fields: Any) -> Announcement:
        """Record a checked announcement and push it to the screens it reaches.

        The caps are counted again in the transaction that inserts it: two creates at once
        (two admins, two servers) each saw room in `clean_announcement`, but only one may take
        the last place. Raises AnnouncementInvalid when it was taken.
        """

        def refuse(current: list[Announcement]) -> str:
            return _full(
                current, fields["scope"], fields["target"], fields["starts_at"], fields["ends_at"]
            )

        try:
            with audit.change(
                self.store,
                "announcement.create",
                "announcement",
                None,
                fields.get("title"),
                after=dict(fields),
                created=True,
            ):
                announcement = self.store.add_announcement(
                    refuse=refuse, current_at=self.clock(), created_by=created_by, **fields
                )
        except StoreError as exc:
            raise AnnouncementInvalid({"scope": str(exc)}) from exc
        logger.info(
            "announcement %s (%s, %s %s) created by %s",
            announcement.id,
            announcement.kind,
            announcement.scope,
            announcement.target or "",
            created_by or "?",
        )
        self.push(force=self._affected(announcement))
        self._changed()
        self.ensure_started()
        self._wake.set()  # its start or end may be the next boundary
        return announcement

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def cancel(self, announcement_id: int, by: str | None = None) -> Announcement | None:
        """End an announcement at once and take it off its screens; None if there is none."""
        before = self.store.get_announcement(announcement_id)
        if before is None:
            return None
        # Cancelling one cancelled already changes no row, so records nothing (store/audit.py).
        with audit.change(
            self.store,
            "announcement.cancel",
            "announcement",
            announcement_id,
            before.title,
            before={"cancelled": False},
            after={"cancelled": True},
        ):
            cancelled = self.store.cancel_announcement(announcement_id, self.clock())
        if before.cancelled_at is None:
            logger.info("announcement %s cancelled by %s", announcement_id, by or "?")
            self.push(force=self._affected(before))
            self._changed()
            self._wake.set()
        return cancelled

    def _affected(self, announcement: Announcement) -> set[int]:
        return {
            s.display_id
            for s in self.hub.subscribers()
            if reaches(announcement, s.display_id, s.floor_id)
        }

    def push(self, force: Iterable[int] = ()) -> int:
        """Send each connected display its list when it changed (or is in `force`)."""
        force = set(force)
        with self._lock:
            self._rev += 1
            rev = self._rev
            now = self.clock()
            pool = self._current_pool(now)
            displays = {s.display_id: s.floor_id for s in self.hub.subscribers()}
            sent = 0
            for display_id, floor_id in displays.items():
                shown = self.current_for(display_id, floor_id, now, pool)
                signature = tuple((a.id, a.ends_at) for a in shown)
                if display_id not in force and self._sent.get(display_id, ()) == signature:
                    continue
                self._sent[display_id] = signature
                message = {
                    "type": ANNOUNCEMENTS,
                    "epoch": self.epoch,
                    "rev": rev,
                    "server_time": iso_precise(now),
                    "items": [item(a, now) for a in shown],
                }
                if self.hub.command(display_id, dumps(message)):
                    sent += 1
            for gone in set(self._sent) - set(displays):
                del self._sent[gone]
            self.sends += sent
            return sent

    # -- the scheduler thread -----------------------------------------------------------------
    def next_boundary(self, now: float) -> float | None:
        """When the next announcement starts or ends (Unix seconds), if any."""
        times = [
            a.starts_at if a.starts_at > now else a.ends_at
            for a in self.store.list_announcements(current_at=now)
        ]
        return min(times) if times else None

    def ensure_started(self) -> None:
        """Start the scheduler thread unless it runs (or the service was stopped)."""
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._run, name="announcement-scheduler", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.push()
                now = self.clock()
                boundary = self.next_boundary(now)
                # A little after the boundary, so that `current(now)` has flipped by then.
                wait = self.recheck if boundary is None else min(self.recheck, boundary - now)
            except Exception:  # the scheduler must outlive a database hiccup
                logger.exception("announcement scheduler error")
                wait = self.recheck
            self._wake.wait(timeout=max(0.05, wait + 0.02))
            self._wake.clear()

    def stop(self) -> None:
        """Stop the scheduler thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=3)


def iso_precise(seconds: float) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds (a kiosk's clock follows it)."""
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
