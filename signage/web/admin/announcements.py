"""Console pages for announcements, on the admin blueprint (so its guard applies: sign-in and
the CSRF token), and the helpers the JSON API's announcement routes share with them."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for

from signage.actions.announcements import (
    MAX_BODY,
    MAX_DURATION_MIN,
    MAX_TITLE,
    AnnouncementInvalid,
    clean_announcement,
    public,
)
from signage.actions.displays import floor_choices, floor_label
from signage.services import Services
from signage.store import Announcement
from signage.web import auth
from signage.web.admin.base import bp
from signage.web.current import services

logger = logging.getLogger(__name__)

RECENT = 20  # ended and cancelled announcements the console still lists


def audiences(svc: Services) -> tuple[list[tuple[str, str]], set[str] | None, str | None]:
    """The console's choices ("all", "floor:<id>", "display:<id>") with labels, the floors
    of the last space tree (None when none was ever fetched) and a note when it is not current."""
    choices, floor_error = floor_choices(svc.directory)
    displays = svc.store.list_displays()
    options = [("all", "All displays")]
    floors = {c.id: f"{c.building} / {c.name}" if c.building else c.name for c in choices}
    for display in displays:
        floors.setdefault(display.floor_id, floor_label(svc.directory, display.floor_id))
    options += [(f"floor:{fid}", f"Floor: {label}") for fid, label in floors.items()]
    options += [(f"display:{d.id}", f"Display: {d.name}") for d in displays]
    # A tree kept through an outage still names the floors; only with none at all is any
    # floor id taken on trust.
    known = {c.id for c in choices} if choices else None
    return options, known, floor_error


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
    _, known, _ = audiences(svc)
    cleaned = clean_announcement(data, svc.store, svc.announcer.clock(), known)
    return svc.announcer.create(created_by=by, **cleaned)


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


@bp.route("/announcements", methods=["GET", "POST"])
def announcements_page() -> Any:
    """Push a banner or an emergency to screens; current and recent ones, with cancel."""
    svc = services()
    errors: dict[str, str] = {}
    values: dict[str, Any] = {"kind": "message", "audience": "all", "duration_minutes": "60"}
    if request.method == "POST":
        values = _form_data()
        principal = auth.current_principal()
        try:
            announcement = create(svc, values, principal.label if principal else "?")
        except AnnouncementInvalid as exc:
            errors = exc.errors
        else:
            what = "Emergency override" if announcement.kind == "emergency" else "Announcement"
            flash(f"{what} “{announcement.title}” sent.", "ok")
            return redirect(url_for("admin.announcements_page"))
    options, _, floor_error = audiences(svc)
    body = render_template(
        "admin/announcements.html",
        options=options,
        floor_error=floor_error,
        errors=errors,
        values=values,
        listing=listing(svc),
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
