"""Console pages for announcements, on the admin blueprint (so its guard applies: sign-in and
the CSRF token), and the helpers the JSON API's announcement routes share with them."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Response, abort, flash, redirect, render_template, request, url_for

from signage.actions.announcements import (
    MAX_ACTIVE,
    MAX_BODY,
    MAX_DURATION_MIN,
    MAX_TITLE,
    AnnouncementInvalid,
    clean_announcement,
    public,
    room_for_all,
)
from signage.actions.displays import floor_choices, floor_label
from signage.services import Services
from signage.store import Announcement
from signage.web import auth
from signage.web.admin.base import bp
from signage.web.current import services
from signage.web.names import floor_name

logger = logging.getLogger(__name__)

RECENT = 20  # ended and cancelled announcements the console still lists
UTC_NAME = "UTC"
# A form time without an offset ("2026-05-01T17:00", what <input type=datetime-local> sends):
# read in the audience's time zone. One with an offset or "Z" is taken as it is.
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


def audiences(svc: Services) -> tuple[list[tuple[str, str]], set[str] | None, str | None]:
    """The console's choices ("all", "floor:<id>", "display:<id>") with labels, the floors
    of the last space tree (None when none was ever fetched) and a note when it is not current."""
    choices, floor_error = floor_choices(svc.directory)
    displays = svc.store.list_displays()
    options = [("all", "All displays")]
    # Floors by their display names in the admin's language (Density's without one).
    floors = {c.id: floor_name(c.id) for c in choices}
    for display in displays:
        floors.setdefault(display.floor_id, floor_name(display.floor_id))
    options += [(f"floor:{fid}", f"Floor: {label}") for fid, label in floors.items()]
    options += [(f"display:{d.id}", f"Display: {d.name}") for d in displays]
    # A tree kept through an outage still names the floors; only with none at all is any
    # floor id taken on trust.
    known = {c.id for c in choices} if choices else None
    return options, known, floor_error


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):  # a zone this system's tz database lacks
        return None


def zone_of(svc: Services, scope: str, target: str | None) -> str:
    """The time zone an audience's times are in: its floor's (a display's floor's), for all
    displays the one zone their floors share (the building's), else UTC."""
    directory = svc.directory
    if scope == "floor":
        name = directory.time_zone(target or "")
    elif scope == "display":
        display = svc.store.get_display(int(target)) if (target or "").isdigit() else None
        name = directory.time_zone(display.floor_id) if display else None
    else:
        floors = {d.floor_id for d in svc.store.list_displays()} or {
            f.id for f in directory.floors()
        }
        zones = {directory.time_zone(f) for f in floors} - {None}
        name = zones.pop() if len(zones) == 1 else None
    return name if _zone(name) is not None else UTC_NAME


def page_zone(svc: Services) -> tuple[str, bool]:
    """The zone the page states, and whether floors differ (each audience then uses its own)."""
    floors = {f.id for f in svc.directory.floors()} | {
        d.floor_id for d in svc.store.list_displays()
    }
    zones = {z for f in floors if _zone(z := svc.directory.time_zone(f))}
    return (zones.pop() if len(zones) == 1 else UTC_NAME), len(zones) > 1


def local_time(value: str | None, zone: str) -> str:
    """An ISO 8601 time as "2026-05-01 17:00" in a zone, for a table."""
    if not value:
        return ""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    tz = _zone(zone)
    return (when.astimezone(tz) if tz else when).strftime("%Y-%m-%d %H:%M")


class LocalTimeError(ValueError):
    """A form's local time that cannot be used; its message is for people."""


def _in_zone(value: str, zone: str) -> str:
    """A form's time: one without an offset is read in `zone` and given its offset. A time the
    zone skips (the hour the clocks go forward) or text that is no time raises LocalTimeError
    saying so in the form's own terms (a local time, the zone named)."""
    value = value.strip()
    tz = _zone(zone)
    if tz is None or re.search(r"(Z|[+-]\d{2}:?\d{2})$", value):
        return value  # with its offset (the API's form): the check that follows reads it
    if not _NAIVE.match(value):
        raise LocalTimeError(
            f"a date and time as YYYY-MM-DD HH:MM ({zone} time), e.g. 2026-05-01 17:00"
        )
    try:
        naive = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        raise LocalTimeError(
            f"not a date and time: use YYYY-MM-DD HH:MM ({zone} time), e.g. 2026-05-01 17:00"
        ) from None
    local = naive.replace(tzinfo=tz)
    # A wall time in the gap does not come back unchanged from UTC: it does not exist there.
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise LocalTimeError(
            f"{naive:%H:%M} does not exist on {naive:%Y-%m-%d} in {zone}: the clocks go"
            " forward that night; choose a time after the change"
        )
    return local.isoformat()


def audience_label(svc: Services, announcement: Announcement) -> str:
    """Who sees an announcement, for people."""
    if announcement.scope == "all":
        return "All displays"
    if announcement.scope == "floor":
        return f"Floor: {floor_label(svc.directory, announcement.target or '')}"
    display = svc.store.get_display(int(announcement.target or 0))
    return f"Display: {display.name}" if display else f"Display {announcement.target} (deleted)"


def listing(svc: Services) -> dict[str, list[dict[str, Any]]]:
    """Current and scheduled announcements, then the most recent ended or cancelled ones."""
    now = svc.announcer.clock()
    current = [
        public(a, now, audience_label(svc, a)) for a in svc.store.list_announcements(current_at=now)
    ]
    showing = {a["id"] for a in current}
    recent = []
    for announcement in svc.store.list_announcements():
        if len(recent) >= RECENT:
            break
        if announcement.id not in showing:
            recent.append(public(announcement, now, audience_label(svc, announcement)))
    return {"current": current, "recent": recent}


def create(svc: Services, data: dict[str, Any], by: str) -> Announcement:
    """Check and create an announcement; raises AnnouncementInvalid with a message per field."""
    return create_each(svc, [data], by)[-1]


def create_each(svc: Services, datas: list[dict[str, Any]], by: str) -> list[Announcement]:
    """Check every announcement, then create each: one that is refused refuses them all, so a
    form sent to a selection is never sent to part of it (and sent again to the rest twice)."""
    _, known, _ = audiences(svc)
    now = svc.announcer.clock()
    if len(datas) > MAX_ACTIVE:
        raise AnnouncementInvalid(
            {
                "audience": f"{len(datas)} displays selected, but at most {MAX_ACTIVE}"
                " announcements may show at once: choose their floor or all displays instead,"
                " or fewer displays"
            }
        )
    cleaned = [clean_announcement(data, svc.store, now, known) for data in datas]
    # The caps over the whole selection, before any is created: each counts the ones before it.
    if len(cleaned) > 1 and (full := room_for_all(svc.store, cleaned, now)):
        raise AnnouncementInvalid({"audience": full})
    return [svc.announcer.create(created_by=by, **fields) for fields in cleaned]


# -- console pages ---------------------------------------------------------------------------------
def _form_data() -> dict[str, Any]:
    form = request.form
    data = {
        key: form.get(key, "")
        for key in ("audience", "kind", "title", "body", "duration_minutes", "starts_at")
    }
    if form.get("ends_at", "").strip():
        data["ends_at"] = form["ends_at"]
        data.pop("duration_minutes")  # an exact end replaces the duration the form defaults to
    minutes = str(data.get("duration_minutes", "")).strip()
    if minutes.isdigit() and len(minutes) < 7:
        data["duration_minutes"] = int(minutes)  # the API takes a number; the form sends text
    return data


def _local_times(
    svc: Services, data: dict[str, Any], errors: dict[str, str] | None = None
) -> dict[str, Any]:
    """The form's times read in the chosen audience's time zone; a time that cannot be read
    there goes to `errors` under its field (and stays as typed, so the check refuses it)."""
    scope, _, target = str(data.get("audience", "all")).partition(":")
    zone = zone_of(svc, scope, target or None)
    out = dict(data)
    for key in ("starts_at", "ends_at"):
        if isinstance(out.get(key), str) and out[key].strip():
            try:
                out[key] = _in_zone(out[key], zone)
            except LocalTimeError as exc:
                if errors is not None:
                    errors.setdefault(key, str(exc))
    return out


def _with_local_times(svc: Services, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Listing rows with their times in their audience's zone, for the page's tables."""
    out = []
    for a in items:
        zone = zone_of(svc, a["scope"], a.get("target"))
        local = {
            k + "_local": local_time(a.get(k), zone)
            for k in ("starts_at", "ends_at", "cancelled_at")
        }
        out.append({**a, **local, "time_zone": zone})
    return out


@bp.route("/announcements", methods=["GET", "POST"])
def announcements_page() -> Any:
    """Push a banner or an emergency to screens; current and recent ones, with cancel."""
    svc = services()
    errors: dict[str, str] = {}
    values: dict[str, Any] = {"kind": "message", "audience": "all", "duration_minutes": "60"}
    # Several audiences: a selection from the displays list (?audience=display:1&audience=…),
    # sent as one announcement to each.
    picked = request.values.getlist("audience")
    if request.method == "GET" and picked:
        values["audience"] = picked if len(picked) > 1 else picked[0]
    if request.method == "POST":
        values = _form_data()
        principal = auth.current_principal()
        targets = picked if len(picked) > 1 else [values["audience"]]
        if len(picked) > 1:
            values["audience"] = picked
        time_errors: dict[str, str] = {}
        try:
            datas = [
                _local_times(svc, {**values, "audience": audience}, time_errors)
                for audience in targets
            ]
            if time_errors:  # said in the form's terms, with the other fields' checks
                _, known, _ = audiences(svc)
                try:
                    clean_announcement(datas[0], svc.store, svc.announcer.clock(), known)
                except AnnouncementInvalid as exc:
                    time_errors = {**exc.errors, **time_errors}
                raise AnnouncementInvalid(time_errors)
            announcement = create_each(svc, datas, principal.label if principal else "?")[-1]
        except AnnouncementInvalid as exc:
            errors = exc.errors
        else:
            what = "Emergency override" if announcement.kind == "emergency" else "Announcement"
            where = f" to {len(picked)} displays" if len(picked) > 1 else ""
            flash(f"{what} “{announcement.title}” sent{where}.", "ok")
            return redirect(url_for("admin.announcements_page"))
    options, _, floor_error = audiences(svc)
    shown = listing(svc)
    zone, zones_differ = page_zone(svc)
    body = render_template(
        "admin/announcements.html",
        options=options,
        floor_error=floor_error,
        errors=errors,
        values=values,
        listing={key: _with_local_times(svc, rows) for key, rows in shown.items()},
        zone=zone,
        zones_differ=zones_differ,
        max_title=MAX_TITLE,
        max_body=MAX_BODY,
        max_minutes=MAX_DURATION_MIN,
    )
    return Response(body, status=400 if errors else 200)


@bp.post("/announcements/<int:announcement_id>/cancel")
def announcement_cancel(announcement_id: int) -> Response:
    """End an announcement now; its screens drop it within seconds."""
    svc = services()
    principal = auth.current_principal()
    cancelled = svc.announcer.cancel(announcement_id, principal.label if principal else None)
    if cancelled is None:
        abort(404)
    flash(f"“{cancelled.title}” ended.", "ok")
    return redirect(url_for("admin.announcements_page"))
