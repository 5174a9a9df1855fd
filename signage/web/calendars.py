"""Room calendars in the JSON admin API: set, remove and look at a room's calendar source.

A source is an iCalendar link or a CalDAV calendar (URL, user name, password). The link and the
password are secrets (whoever has them reads the room's calendar): they go in with PUT and never
come out. Answers say which kind a room has, its user name and how its last fetch went. Setting
one only wakes the bookings worker: no request fetches a calendar. `clean_source` checks a
source for this API and the console's page alike, naming the field at fault.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from signage.actions import audit
from signage.actions.displays import SPACE_ID
from signage.core.bookings import Bookings, CalendarStatus, InvalidLink, valid_link
from signage.services import Services
from signage.store.calendars import SourceInfo, SourceRow
from signage.web import auth
from signage.web.answers import invalid
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("api_calendars", __name__, url_prefix="/api/admin")

MAX_LINK = 2048
MAX_USERNAME = 256
MAX_PASSWORD = 1024
KINDS = ("ics", "caldav")


class SourceInvalid(ValueError):
    """A source that cannot be saved: {field: message}, each message for a person."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def clean_source(data: Any, existing: SourceRow | None) -> dict[str, str]:
    """A source to save from a form or a JSON body: kind, url, username and password.

    An empty URL or password keeps the stored one (the page never shows it, so it cannot send
    it back), as long as the room already has a readable source of the same kind."""
    if not isinstance(data, dict):
        raise SourceInvalid({"url": "send a JSON object with the calendar's url"})
    kind = data.get("kind") or "ics"
    if kind not in KINDS:
        raise SourceInvalid({"kind": "choose an ICS link or a CalDAV calendar"})
    same = existing if existing is not None and existing.kind == kind else None
    keep = same is not None and same.readable
    errors: dict[str, str] = {}
    url, username, password = data.get("url"), data.get("username"), data.get("password")
    if url is not None and not isinstance(url, str):
        errors["url"] = "must be text"
    elif not (url or "").strip():
        if not keep:
            errors["url"] = "required: the calendar's http(s) address"
        url = same.url if keep and same else ""
    elif len(url) > MAX_LINK:
        errors["url"] = f"at most {MAX_LINK} characters"
    else:
        try:
            url = valid_link(url)
        except InvalidLink as exc:
            errors["url"] = str(exc)
    if kind == "caldav":
        if "url" not in errors and _clear_text(str(url)):
            errors["url"] = "a CalDAV calendar needs https:// (the password would travel in clear)"
        if username is not None and not isinstance(username, str):
            errors["username"] = "must be text"
        elif not (username or "").strip():
            errors["username"] = "required for a CalDAV calendar"
        elif len(username) > MAX_USERNAME or any(ord(c) < 32 for c in username):
            errors["username"] = f"at most {MAX_USERNAME} characters, no control characters"
        # The stored password goes only where it went before: the same address, as the same
        # user. Kept for a new address, one request could send it to any host.
        unchanged = (
            keep
            and same is not None
            and str(url) == same.url
            and (username or "").strip() == same.username
        )
        if password is not None and not isinstance(password, str):
            errors["password"] = "must be text"
        elif not password:
            if not keep:
                errors["password"] = "required for a new CalDAV calendar"
            elif not unchanged:
                errors["password"] = "required again for a new address or user name"
            password = same.password if unchanged and same else ""
        elif len(password) > MAX_PASSWORD:
            errors["password"] = f"at most {MAX_PASSWORD} characters"
    else:
        username = password = ""
    if errors:
        raise SourceInvalid(errors)
    return {
        "kind": kind,
        "url": str(url),
        "username": str(username or "").strip(),
        "password": str(password or ""),
    }


def _clear_text(url: str) -> bool:
    """Whether a URL is plain http to another host (loopback stays on this machine)."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


bp.before_request(auth.admin_api_guard)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _parts(svc: Services) -> tuple[Any, Any]:
    if svc.calendars is None or svc.bookings is None:
        abort(404, "room calendars are not set up on this server")
    return svc.calendars, svc.bookings


def _status(
    space_id: str, info: SourceInfo | None, status: CalendarStatus | None
) -> dict[str, Any]:
    """What the API says of a room's calendar: never its link nor its password."""
    return {
        "space_id": space_id,
        "source_set": info is not None,
        "kind": info.kind if info else None,
        "username": (info.username or None) if info else None,
        "last_fetch": status.last_fetch if status else None,
        "last_ok": status.last_ok if status else None,
        "age_s": status.age_s if status else None,
        "fresh": status.fresh if status else False,
        "error": status.error if status else None,
        "bookings": status.bookings if status else 0,
    }


def _room(svc: Services, space_id: str) -> None:
    space = svc.directory.get(space_id) if SPACE_ID.match(space_id) else None
    if space is None or space.space_type in ("campus", "building", "floor"):
        abort(404, "no such room")


@bp.get("/calendars")
def list_calendars() -> Response:
    """Every room with a calendar link and how its last fetch went."""
    calendars, bookings = _parts(services())
    statuses = bookings.statuses()
    infos = calendars.describe()
    return jsonify(calendars=[_status(sid, infos[sid], statuses.get(sid)) for sid in sorted(infos)])


@bp.get("/rooms/<space_id>/calendar")
def get_calendar(space_id: str) -> Response:
    """Whether a room has a calendar link, and its last fetch, age and error."""
    calendars, bookings = _parts(services())
    if not SPACE_ID.match(space_id):
        abort(404, "no such room")
    info = calendars.describe().get(space_id)
    return jsonify(_status(space_id, info, bookings.statuses().get(space_id)))


@bp.put("/rooms/<space_id>/calendar")
def put_calendar(space_id: str) -> Response:
    """Set a room's calendar source (an iCalendar link, or a CalDAV calendar with its user name
    and password); fetched in the background soon after."""
    svc = services()
    calendars, bookings = _parts(svc)
    _room(svc, space_id)
    try:
        source = clean_source(request.get_json(silent=True), calendars.get(space_id))
    except SourceInvalid as exc:
        return invalid(exc.errors)
    set_source(svc, space_id, source)
    return jsonify(_status(space_id, calendars.describe().get(space_id), None))


def set_source(svc: Services, space_id: str, source: dict[str, str]) -> None:
    """Save a cleaned source (recorded in the audit trail without its secrets) and wake the
    worker; the API and the console's page both set a source through here."""
    calendars, bookings = _parts(svc)
    link = source["url"]
    had = calendars.has(space_id)
    # The link is a secret: the trail says only that the room has one, never which.
    with audit.change(
        svc.store,
        "calendar.set",
        "room",
        space_id,
        _room_name(svc, space_id),
        before={"calendar": "set" if had else "none"},
        after={"calendar": "replaced" if had else "set"},
    ):
        calendars.put(
            space_id,
            link,
            kind=source["kind"],
            username=source["username"],
            password=source["password"],
        )
    bookings.poke()


@bp.delete("/rooms/<space_id>/calendar")
def delete_calendar(space_id: str) -> Response:
    """Remove a room's calendar link: its bookings are no longer shown."""
    svc = services()
    calendars, bookings = _parts(svc)
    if not SPACE_ID.match(space_id):
        abort(404, "this room has no calendar link")
    with audit.change(
        svc.store,
        "calendar.remove",
        "room",
        space_id,
        _room_name(svc, space_id),
        before={"calendar": "set"},
        after={"calendar": "none"},
    ):
        removed = calendars.remove(space_id)  # nothing removed: no row changed, none recorded
    if not removed:
        abort(404, "this room has no calendar link")
    bookings.poke()
    return Response(status=204)


def _room_name(svc: Services, space_id: str) -> str | None:
    """The room's name as the directory's cache has it (never a call to Density)."""
    tree = svc.directory.tree()
    space = tree.get(space_id) if tree else None
    return space.name if space is not None else None


def openapi_paths(op: Any) -> dict[str, Any]:
    """The calendar routes for the OpenAPI document (web/openapi.py)."""
    put = op(
        "Set a room's calendar source (its link and password never shown again)",
        params=("space_id",),
    )
    put["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["url"],
                    "properties": {
                        "kind": {"type": "string", "enum": list(KINDS), "default": "ics"},
                        "url": {"type": "string", "format": "uri", "maxLength": MAX_LINK},
                        "username": {"type": "string", "maxLength": MAX_USERNAME},
                        "password": {"type": "string", "maxLength": MAX_PASSWORD},
                    },
                }
            }
        },
    }
    remove = op("Remove a room's calendar link", ok="204", params=("space_id",))
    get = op(
        "Whether a room has a calendar link, its last fetch, age and error", params=("space_id",)
    )
    return {
        "/calendars": {"get": op("Every room calendar's last fetch, age and error")},
        "/rooms/{space_id}/calendar": {"get": get, "put": put, "delete": remove},
    }


def calendar_metrics(
    bookings: Bookings, booked_empty: Mapping[str, int] | None = None
) -> Iterator[Metric]:
    """Each room calendar's age, last fetch, error and freshness, the fetches so far, and the
    booked-but-empty rooms per floor (/metrics)."""
    statuses = bookings.statuses()
    age = GaugeMetricFamily(
        "signage_calendar_age_seconds",
        "Seconds since a room's calendar was last read or confirmed (absent: never).",
        labels=["space_id"],
    )
    up = GaugeMetricFamily(
        "signage_calendar_fresh",
        "Whether a room's bookings are fresh enough to show (1/0).",
        labels=["space_id"],
    )
    last = GaugeMetricFamily(
        "signage_calendar_last_fetch_timestamp_seconds",
        "Unix time of a room calendar's last fetch attempt, whatever its result.",
        labels=["space_id"],
    )
    failing = GaugeMetricFamily(
        "signage_calendar_error",
        "1 while a room calendar's last fetch failed, with the reason (never the link).",
        labels=["space_id", "reason"],
    )
    for space_id, status in sorted(statuses.items()):
        if status.age_s is not None:
            age.add_metric([space_id], status.age_s)
        up.add_metric([space_id], 1 if status.fresh else 0)
        if status.last_fetch is not None:
            last.add_metric([space_id], status.last_fetch)
        if status.error:
            failing.add_metric([space_id, status.error.split(":", 1)[0]], 1)
    yield age
    yield up
    yield last
    yield failing
    if booked_empty is not None:
        empty = GaugeMetricFamily(
            "signage_floor_booked_empty_rooms",
            "Rooms booked now, past the grace period, that the sensors say are empty.",
            labels=["floor_id"],
        )
        for floor_id, count in sorted(booked_empty.items()):
            empty.add_metric([floor_id], count)
        yield empty
    fetches = CounterMetricFamily(
        "signage_calendar_fetches", "Calendar fetches, by result.", labels=["result"]
    )
    fetches.add_metric(["ok"], bookings.fetches - bookings.fetch_errors)
    fetches.add_metric(["error"], bookings.fetch_errors)
    yield fetches
