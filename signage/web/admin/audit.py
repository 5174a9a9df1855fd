"""The audit trail: a console page to read and filter it, and `GET /api/admin/audit`.

Both read the store only (signage/store/audit.py); what is recorded, and when, is the actions'
business (signage/actions/audit.py). Every signed-in account may read it, viewers included.
The page shows times in the building's zone and says which (as the announcements page does);
the API answers in UTC.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, jsonify, render_template, request

from signage.actions.audit import AuditFilter
from signage.actions.displays import floor_label
from signage.web import auth
from signage.web.admin.announcements import page_zone
from signage.web.admin.base import bp
from signage.web.answers import invalid
from signage.web.current import services

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_LIMIT = 500
MAX_FILTER = 200

# The JSON side: its own blueprint under /api/admin, behind the admin API's guard.
api_bp = Blueprint("api_audit", __name__, url_prefix="/api/admin")
api_bp.before_request(auth.admin_api_guard)

TARGET_KINDS = {
    "display": "Display",
    "plan": "Floor plan",
    "layout": "Floor layout",
    "announcement": "Announcement",
    "account": "Account",
    "token": "API token",
    "room": "Room calendar",
    "building": "Floor order",
    "name": "Display names",
    "session": "Sign-in",
    "backup": "Backup",
}
# What an entry did, in words (the page); the API and the filters keep the dotted names.
ACTIONS = {
    "display.create": "Created",
    "display.update": "Changed",
    "display.remove": "Deleted",
    "display.pair": "Paired a screen",
    "display.revoke": "Revoked its screens",
    "display.revoke_phone": "Revoked its phone link",
    "display.place": "Placed “you are here”",
    "display.reload": "Reloaded its screens",
    "display.identify": "Flashed its name (identify)",
    "session.sign_in": "Signed in",
    "session.sign_out": "Signed out",
    "session.sign_in_failed": "Failed sign-in",
    "backup.create": "Backed up",
    "backup.restore": "Restored",
    "plan.replace": "Uploaded",
    "plan.remove": "Removed",
    "layout.draft_started": "Started a draft",
    "layout.publish": "Published",
    "layout.restore": "Restored a version as the draft",
    "layout.discard_draft": "Discarded the draft",
    "announcement.create": "Sent",
    "announcement.cancel": "Ended",
    "account.create": "Created",
    "account.remove": "Removed",
    "account.role": "Changed the role",
    "account.password": "Changed the password",
    "token.create": "Created",
    "token.revoke": "Revoked",
    "calendar.set": "Set",
    "calendar.remove": "Removed",
    "names.set": "Renamed",
    "floor_order.set": "Reordered",
}
ACTOR_KINDS = {
    "account": "account",
    "token": "API token",
    "cli": "command line",
    "system": "server",
    "anonymous": "sign-in form",
}


class FilterError(ValueError):
    """A filter that cannot be read, by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _text(args: Any, key: str, errors: dict[str, str]) -> str | None:
    value = (args.get(key) or "").strip()
    if len(value) > MAX_FILTER or "\x00" in value:
        errors[key] = f"at most {MAX_FILTER} characters"
        return None
    return value or None


def _day(args: Any, key: str, zone: ZoneInfo, errors: dict[str, str], end: bool) -> float | None:
    """A form's date (YYYY-MM-DD) as Unix seconds at the start of that day in the page's zone;
    for the end of a range, the start of the next day (the range takes the whole day)."""
    value = (args.get(key) or "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value[:10]) if len(value) <= 10 else None
    except ValueError:
        day = None
    if day is None:
        errors[key] = "a date as YYYY-MM-DD"
        return None
    try:  # the day after 9999-12-31, or one before 0001-01-01 in the zone, is no date
        if end:
            day += timedelta(days=1)
        return datetime.combine(day, time(0), zone).timestamp()
    except (OverflowError, ValueError, OSError):
        errors[key] = "a date as YYYY-MM-DD"
        return None


def _instant(args: Any, key: str, errors: dict[str, str]) -> float | None:
    """The API's time: ISO 8601 with an offset (or Z), or Unix seconds."""
    value = (args.get(key) or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors[key] = "an ISO 8601 time with its offset (2026-05-01T09:00:00Z) or Unix seconds"
            return None
        if when.tzinfo is None:
            errors[key] = "give the time's offset (Z for UTC)"
            return None
        return when.timestamp()
    if not math.isfinite(seconds):
        errors[key] = "a finite number of seconds"
        return None
    return seconds


def _common(args: Any, errors: dict[str, str]) -> dict[str, Any]:
    kind = _text(args, "kind", errors)
    if kind is not None and kind not in TARGET_KINDS:
        errors["kind"] = "one of " + ", ".join(TARGET_KINDS)
    return {
        "actor": _text(args, "who", errors),
        "target_kind": kind,
        "target": _text(args, "target", errors),
        "action": _text(args, "action", errors),
    }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except Exception:  # a name this system's tz database lacks: UTC, and the page says so
        return ZoneInfo("UTC")


def _local(seconds: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(seconds, zone).strftime("%Y-%m-%d %H:%M:%S")


def _changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """An entry's settings as lines: "key: before → after" for a change, "key: value" for what
    a creation set, "key was value" for what a removal took away."""
    if before is None and after is None:
        return []
    if before is None:
        return [f"{k}: {_shown(v)}" for k, v in sorted((after or {}).items())]
    if after is None:
        return [f"{k} was {_shown(v)}" for k, v in sorted(before.items())]
    keys = sorted({*before, *after})
    return [f"{k}: {_shown(before.get(k))} → {_shown(after.get(k))}" for k in keys]


def _target_name(svc: Any, entry: Any) -> str | None:
    """What the page calls an entry's target: a floor's plan or layout is recorded under the
    floor's id (all it has), read as "Building / Floor" from the cached tree (no request waits
    on Density; a floor it no longer knows keeps its id)."""
    name = entry.target_name
    if entry.target_kind in ("plan", "layout") and entry.target_id and name == entry.target_id:
        return floor_label(svc.directory, entry.target_id)
    return name


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    return str(value)


@bp.get("/audit")
def audit_page() -> Any:
    """Who changed what, and when: newest first, filtered, 50 to a page."""
    svc = services()
    zone_name, _differ = page_zone(svc)
    zone = _zone(zone_name)
    errors: dict[str, str] = {}
    fields = _common(request.args, errors)
    since = _day(request.args, "from", zone, errors, end=False)
    until = _day(request.args, "to", zone, errors, end=True)
    if since is not None and until is not None and since >= until:
        # Not "No change matches": the range is empty because it is backwards.
        errors["from"] = (
            f"From ({request.args['from']}) is after To ({request.args['to']}): the dates are"
            " the wrong way round"
        )
    try:
        page = max(1, min(int(request.args.get("page", "1") or 1), 10**6))
    except ValueError:
        errors["page"] = "a page number"
        page = 1
    where = AuditFilter(**fields, since=since, until=until) if not errors else AuditFilter()
    total = svc.store.count_audit(where) if not errors else 0
    entries = (
        svc.store.audit_entries(where, PAGE_SIZE, (page - 1) * PAGE_SIZE) if not errors else []
    )
    pages = max(1, math.ceil(total / PAGE_SIZE))
    actors, kinds = svc.store.audit_choices()
    kept = {k: v for k, v in request.args.items() if k != "page" and v}

    def page_url(number: int) -> str:
        return "?" + urlencode({**kept, "page": number})

    rows = [
        {
            "entry": e,
            "when": _local(e.at, zone),
            "who": e.actor,
            "who_kind": ACTOR_KINDS.get(e.actor_kind, e.actor_kind),
            "kind": TARGET_KINDS.get(e.target_kind, e.target_kind),
            "action": ACTIONS.get(e.action, e.action),
            "target": _target_name(svc, e),
            "changes": _changes(e.before, e.after),
        }
        for e in entries
    ]
    body = render_template(
        "admin/audit.html",
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        page_url=page_url,
        zone=zone.key,
        errors=errors,
        args=request.args,
        actors=actors,
        kinds={k: TARGET_KINDS.get(k, k) for k in sorted({*TARGET_KINDS, *kinds})},
        days=float(svc.config.get("SIGNAGE_AUDIT_DAYS") or 0),
    )
    return Response(body, status=400 if errors else 200)


@api_bp.get("/audit")
def audit_api() -> Any:
    """The audit trail, newest first: filters who, kind, target, action, since, until; limit and
    offset page through it. Times are UTC."""
    svc = services()
    errors: dict[str, str] = {}
    fields = _common(request.args, errors)
    if "kind" in request.args and fields["target_kind"] is None:
        # The console's "any kind" is an empty field; the API documents `kind` as one of a list,
        # so an empty one is a mistake to name, not "any" (leave the parameter out for that).
        errors["kind"] = "one of " + ", ".join(TARGET_KINDS)
    since = _instant(request.args, "since", errors)
    until = _instant(request.args, "until", errors)
    if since is not None and until is not None and since > until:
        errors["since"] = "after until: the times are the wrong way round"
    limit = offset = 0
    for key, default, high in (("limit", 100, MAX_LIMIT), ("offset", 0, 10**9)):
        raw = request.args.get(key, str(default))
        if not raw.isascii() or not raw.isdigit() or int(raw) > high:
            errors[key] = f"a whole number from 0 to {high}"
        elif key == "limit":
            limit = int(raw)
        else:
            offset = int(raw)
    if errors:
        return invalid(errors)
    where = AuditFilter(**fields, since=since, until=until)
    entries = svc.store.audit_entries(where, limit, offset)
    return jsonify(
        entries=[_entry_json(e) for e in entries],
        total=svc.store.count_audit(where),
        limit=limit,
        offset=offset,
    )


def _entry_json(entry: Any) -> dict[str, Any]:
    out = entry.public()
    out["at"] = datetime.fromtimestamp(entry.at, UTC).isoformat().replace("+00:00", "Z")
    return out


@api_bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def openapi_paths(op: Any) -> dict[str, Any]:
    """The audit route for the OpenAPI document (web/openapi.py)."""
    get = op("The audit trail: who changed what and when, newest first (times in UTC)")

    def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "schema": schema, "description": description}

    text = {"type": "string", "maxLength": MAX_FILTER}
    get["parameters"] = [
        query("who", text, "The account, token or command-line user's name"),
        query("kind", {"type": "string", "enum": list(TARGET_KINDS)}, "What was changed"),
        query("target", text, "The target's id, or a part of its name"),
        query("action", text, "An action (display.update), or a prefix ending in a dot"),
        query("since", {"type": "string"}, "From this time (ISO 8601 with offset, or Unix s)"),
        query("until", {"type": "string"}, "Before this time (ISO 8601 with offset, or Unix s)"),
        query("limit", {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT}, "At most"),
        query("offset", {"type": "integer", "minimum": 0}, "Entries to skip"),
    ]
    return {"/audit": {"get": get}}
