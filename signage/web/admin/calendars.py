"""The console's room calendars: per floor, each room's source, last fetch, age and error; a
form to set, replace or remove a room's ICS link or CalDAV calendar.

On the admin blueprint, so its guard applies (sign-in, the CSRF token, viewers read only). The
link and the password are secrets: the form never shows the stored ones, and an empty field
keeps them (the same rule as the JSON API, `web/calendars.py` `clean_source`). Saving only wakes
the bookings worker: the page never waits on a calendar.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from signage.actions import audit
from signage.actions.calendars import KIND_LABELS, calendar_rows, room_floor
from signage.actions.displays import SPACE_ID, floor_label
from signage.services import Services
from signage.web.admin.base import ask_first, bp
from signage.web.calendars import (
    MAX_LINK,
    MAX_PASSWORD,
    MAX_USERNAME,
    SourceInvalid,
    clean_source,
    set_source,
)
from signage.web.current import services
from signage.web.names import floor_name, space_option

logger = logging.getLogger(__name__)

# How the form names each field in its messages: a message always says which field is at fault.
FIELD_LABELS = {
    "kind": "Kind of calendar",
    "url": "Calendar address",
    "username": "User name",
    "password": "Password",
}


def _ready(svc: Services) -> None:
    if svc.calendars is None or svc.bookings is None:
        abort(404, "room calendars are not set up on this server")


def _room_or_404(svc: Services, space_id: str) -> Any:
    space = svc.directory.get(space_id) if SPACE_ID.match(space_id) else None
    if space is None or space.space_type in ("campus", "building", "floor"):
        abort(404, "no such room")
    return space


@bp.get("/calendars")
def calendars_page() -> str:
    """Every floor's rooms with their calendar source and how its last fetch went."""
    svc = services()
    _ready(svc)
    rows = {r["space_id"]: r for r in calendar_rows(svc)}
    floors = []
    listed: set[str] = set()
    for floor in svc.directory.floors(building_order=True):
        rooms = svc.directory.rooms_of(floor.id)
        listed.update(r.id for r in rooms)
        floors.append(
            {
                "id": floor.id,
                "label": floor_label(svc.directory, floor.id),
                "rooms": [{"id": r.id, "name": r.name, "calendar": rows.get(r.id)} for r in rooms],
                "with_calendar": sum(1 for r in rooms if r.id in rows),
            }
        )
    # A source whose room Density no longer lists: shown so that it can be removed.
    orphans = [row for sid, row in rows.items() if sid not in listed]
    return render_template(
        "admin/calendars.html",
        floors=floors,
        orphans=orphans,
        refresh=svc.bookings.refresh if svc.bookings else None,
    )


def _form_errors(errors: dict[str, str]) -> dict[str, str]:
    return {field: f"{FIELD_LABELS.get(field, field)}: {text}" for field, text in errors.items()}


@bp.route("/calendars/<space_id>", methods=["GET", "POST"])
def calendar_edit(space_id: str) -> Any:
    """Set or replace a room's calendar: an ICS link, or a CalDAV calendar with its user name
    and password. The stored link and password are never shown; empty fields keep them."""
    svc = services()
    _ready(svc)
    assert svc.calendars is not None
    info = svc.calendars.describe().get(space_id)
    # A room Density no longer lists may still have a source: it can be looked at and removed.
    space = svc.directory.get(space_id) if SPACE_ID.match(space_id) else None
    if info is None:
        space = _room_or_404(svc, space_id)
    errors: dict[str, str] = {}
    values: dict[str, str] = {
        "kind": info.kind if info else "ics",
        "username": info.username if info else "",
    }
    if request.method == "POST":
        if space is None:
            abort(404, "no such room")
        form = {
            "kind": request.form.get("kind", ""),
            "url": request.form.get("url", ""),
            "username": request.form.get("username", ""),
            "password": request.form.get("password", ""),
        }
        values = {"kind": form["kind"], "username": form["username"]}
        try:
            source = clean_source(form, svc.calendars.get(space_id))
        except SourceInvalid as exc:
            errors = _form_errors(exc.errors)
        else:
            set_source(svc, space_id, source)
            flash(
                f"Calendar of {space.name} saved: it is read in the background within moments;"
                " its status shows here and on the fleet page.",
                "ok",
            )
            return redirect(url_for("admin.calendars_page") + f"#floor-{room_floor(svc, space_id)}")
    status = next((r for r in calendar_rows(svc) if r["space_id"] == space_id), None)
    floor_id = room_floor(svc, space_id)
    return render_template(
        "admin/calendars_edit.html",
        space_id=space_id,
        # By its display name in the admin's language, Density's in brackets when it differs.
        name=space_option(space_id, space.name) if space is not None else space_id,
        floor=floor_name(floor_id) if floor_id else None,
        info=info,
        status=status,
        values=values,
        errors=errors,
        kinds=KIND_LABELS,
        max_link=MAX_LINK,
        max_username=MAX_USERNAME,
        max_password=MAX_PASSWORD,
    ), (400 if errors else 200)


@bp.post("/calendars/<space_id>/remove")
def calendar_remove(space_id: str) -> Any:
    """Remove a room's calendar: its bookings are no longer shown (after a page asking)."""
    svc = services()
    _ready(svc)
    assert svc.calendars is not None and svc.bookings is not None
    if not SPACE_ID.match(space_id):
        abort(404, "no such room")
    space = svc.directory.get(space_id)
    name = space.name if space is not None else space_id
    asking = ask_first(
        title="Remove this room's calendar?",
        text="Its bookings are no longer shown on the screens, and the stored link and"
        " password are deleted: to show bookings again, the link must be entered again.",
        subject=name,
        button="Remove calendar",
        cancel=url_for("admin.calendar_edit", space_id=space_id),
    )
    if asking is not None:
        return asking
    with audit.change(
        svc.store,
        "calendar.remove",
        "room",
        space_id,
        name,
        before={"calendar": "set"},
        after={"calendar": "none"},
    ):
        removed = svc.calendars.remove(space_id)
    if not removed:
        abort(404, "this room has no calendar")
    svc.bookings.poke()
    flash(f"Calendar of {name} removed: its bookings are no longer shown.", "ok")
    return redirect(url_for("admin.calendars_page"))
