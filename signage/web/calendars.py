"""Room calendars in the JSON admin API: set, remove and look at a room's calendar link.

A link is a secret (whoever has it reads the room's calendar): it goes in with PUT and never
comes out. Answers say whether a room has one and how its last fetch went. Setting one only
wakes the bookings worker: no request fetches a calendar.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from signage.actions.displays import SPACE_ID
from signage.core.bookings import Bookings, CalendarStatus, InvalidLink, valid_link
from signage.services import Services
from signage.web import auth
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("api_calendars", __name__, url_prefix="/api/admin")

MAX_LINK = 2048


bp.before_request(auth.admin_api_guard)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _parts(svc: Services) -> tuple[Any, Any]:
    if svc.calendars is None or svc.bookings is None:
        abort(404, "room calendars are not set up on this server")
    return svc.calendars, svc.bookings


def _status(space_id: str, has_link: bool, status: CalendarStatus | None) -> dict[str, Any]:
    """What the API says of a room's calendar: never its link."""
    return {
        "space_id": space_id,
        "source_set": has_link,
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
    return jsonify(
        calendars=[_status(sid, True, statuses.get(sid)) for sid in sorted(calendars.all())]
    )


@bp.get("/rooms/<space_id>/calendar")
def get_calendar(space_id: str) -> Response:
    """Whether a room has a calendar link, and its last fetch, age and error."""
    calendars, bookings = _parts(services())
    if not SPACE_ID.match(space_id):
        abort(404, "no such room")
    return jsonify(_status(space_id, calendars.has(space_id), bookings.statuses().get(space_id)))


@bp.put("/rooms/<space_id>/calendar")
def put_calendar(space_id: str) -> Response:
    """Set a room's calendar link (an iCalendar URL); fetched in the background soon after."""
    svc = services()
    calendars, bookings = _parts(svc)
    _room(svc, space_id)
    body = request.get_json(silent=True)
    url = body.get("url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_LINK:
        return _invalid(f"an http(s) iCalendar link of at most {MAX_LINK} characters")
    try:
        link = valid_link(url)
    except InvalidLink as exc:
        return _invalid(str(exc))
    calendars.put(space_id, link)
    bookings.poke()
    return jsonify(_status(space_id, True, None))


@bp.delete("/rooms/<space_id>/calendar")
def delete_calendar(space_id: str) -> Response:
    """Remove a room's calendar link: its bookings are no longer shown."""
    calendars, bookings = _parts(services())
    if not SPACE_ID.match(space_id) or not calendars.remove(space_id):
        abort(404, "this room has no calendar link")
    bookings.poke()
    return Response(status=204)


def _invalid(message: str) -> Response:
    response = jsonify(error="invalid", message=f"url: {message}", fields={"url": message})
    response.status_code = 400
    return response


def openapi_paths(op: Any) -> dict[str, Any]:
    """The calendar routes for the OpenAPI document (web/openapi.py)."""
    room = [
        {
            "name": "space_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": SPACE_ID.pattern},
        }
    ]
    put = op("Set a room's calendar link (never shown again)")
    put["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["url"],
                    "properties": {
                        "url": {"type": "string", "format": "uri", "maxLength": MAX_LINK}
                    },
                }
            }
        },
    }
    remove = op("Remove a room's calendar link", ok="204")
    get = op("Whether a room has a calendar link, its last fetch, age and error")
    for operation in (put, remove, get):
        operation["parameters"] = room
    return {
        "/calendars": {"get": op("Every room calendar's last fetch, age and error")},
        "/rooms/{space_id}/calendar": {"get": get, "put": put, "delete": remove},
    }


def calendar_metrics(bookings: Bookings) -> Iterator[Metric]:
    """Each room calendar's age and whether it is fresh, and the fetches so far (/metrics)."""
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
    for space_id, status in sorted(statuses.items()):
        if status.age_s is not None:
            age.add_metric([space_id], status.age_s)
        up.add_metric([space_id], 1 if status.fresh else 0)
    yield age
    yield up
    fetches = CounterMetricFamily(
        "signage_calendar_fetches", "Calendar fetches, by result.", labels=["result"]
    )
    fetches.add_metric(["ok"], bookings.fetches - bookings.fetch_errors)
    fetches.add_metric(["error"], bookings.fetch_errors)
    yield fetches
