"""Console pages for displays: the list, create, edit, delete, revoke, commands, and pairing."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for

from signage import i18n
from signage.actions import preview
from signage.actions.displays import (
    DEFAULT_SETTINGS,
    THEMES,
    FloorChoice,
    Invalid,
    apply_display_change,
    clean_display,
    directory_note,
    floor_choices,
    floor_label,
    phone_url,
    remove_display,
    revoke_display,
    revoke_phone_link,
    send_command,
)
from signage.actions.pairing import PairingRefused, claim
from signage.services import Services
from signage.web import auth
from signage.web.admin.base import bp, display_or_404
from signage.web.current import services

logger = logging.getLogger(__name__)

LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français"}


def _form_data() -> dict[str, Any]:
    """The display form as the same shape the JSON API takes."""
    form = request.form
    data: dict[str, Any] = {
        key: form.get(key, "")
        for key in (
            "name",
            "floor_id",
            "density_display_id",
            "orientation",
            "rotation",
            "theme",
            "brand_color",
            "logo_url",
            "language",
            "min_capacity",
        )
        if key in form
    }
    if form.get("settings_form"):  # the full edit form: absent checkboxes mean "off"/"none"
        data["functions"] = form.getlist("functions")
        data["hidden_rooms"] = form.getlist("hidden_rooms")
        data["qr"] = form.get("qr") == "on"
        start, end = form.get("night_start", ""), form.get("night_end", "")
        data["night"] = {"start": start, "end": end} if (start or end) else None
    return data


def _floor_ids(choices: list[FloorChoice], error: str | None) -> set[str] | None:
    return None if error else {c.id for c in choices}


# -- displays ------------------------------------------------------------------------------------
@bp.get("/displays")
def displays() -> str:
    """Every display: floor, connection, links to edit."""
    svc = services()
    connected: dict[int, int] = {}
    for sub in svc.hub.subscribers():
        connected[sub.display_id] = connected.get(sub.display_id, 0) + 1
    rows = [
        {
            "display": d,
            "floor": floor_label(svc.directory, d.floor_id),
            "connected": connected.get(d.id, 0),
        }
        for d in svc.store.list_displays()
    ]
    return render_template("admin/displays.html", rows=rows)


@bp.route("/displays/new", methods=["GET", "POST"])
def display_new() -> Any:
    """Create a display: name, floor, Density display id; the rest on its edit page."""
    svc = services()
    choices, floor_error = floor_choices(svc.directory)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = _form_data()
        try:
            cleaned = clean_display(values, None, _floor_ids(choices, floor_error))
        except Invalid as exc:
            errors = exc.errors
        else:
            display = apply_display_change(svc.store, svc.hub, None, cleaned)
            flash(f"Display “{display.name}” created.", "ok")
            return redirect(url_for("admin.display_edit", display_id=display.id))
    status = 400 if errors else 200
    body = render_template(
        "admin/display_new.html",
        choices=choices,
        floor_error=floor_error,
        errors=errors,
        values=values,
    )
    return Response(body, status=status)


def _rooms_for(svc: Services, floor_id: str) -> tuple[list[Any], str | None]:
    rooms = svc.directory.rooms_of(floor_id)  # the cached tree: never waits on Density
    note = directory_note(svc.directory.status())
    return rooms, (note.replace("floors", "rooms") if note and not rooms else note)


@bp.route("/displays/<int:display_id>", methods=["GET", "POST"])
def display_edit(display_id: int) -> Any:
    """A display's settings; saving reaches its kiosks within seconds."""
    svc = services()
    display = display_or_404(display_id)
    choices, floor_error = floor_choices(svc.directory)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = _form_data()
        try:
            cleaned = clean_display(values, display, _floor_ids(choices, floor_error))
        except Invalid as exc:
            errors = exc.errors
        else:
            apply_display_change(svc.store, svc.hub, display, cleaned)
            flash("Saved. Its screens update within seconds.", "ok")
            return redirect(url_for("admin.display_edit", display_id=display.id))
    rooms, rooms_error = _rooms_for(svc, display.floor_id)
    # What the form shows: the stored values, overlaid with what was just typed (on an error).
    form: dict[str, Any] = {
        "name": display.name,
        "floor_id": display.floor_id,
        "density_display_id": display.density_display_id or "",
        **DEFAULT_SETTINGS,
        **display.settings,
        **values,
    }
    night = form.get("night") if isinstance(form.get("night"), dict) else {}
    form["night_start"], form["night_end"] = night.get("start", ""), night.get("end", "")
    body = render_template(
        "admin/display_edit.html",
        display=display,
        form=form,
        choices=choices,
        floor_error=floor_error,
        rooms=rooms,
        rooms_error=rooms_error,
        functions=sorted({r.function for r in rooms if r.function}),
        errors=errors,
        values=values,
        languages=i18n.LANGUAGES,
        language_names=LANGUAGE_NAMES,
        themes=THEMES,
        kiosk_url=svc.kiosk_url(display),
        socket_url=svc.socket_url(display),
        state_url=svc.state_url(display),
        phone_url=phone_url(svc, display),
        connected=len([s for s in svc.hub.subscribers() if s.display_id == display.id]),
    )
    return Response(body, status=400 if errors else 200)


@bp.post("/displays/<int:display_id>/delete")
def display_delete(display_id: int) -> Response:
    """Delete a display; its screens lose their credential."""
    svc = services()
    display = display_or_404(display_id)
    remove_display(svc.store, svc.hub, display)
    flash(f"Display “{display.name}” deleted.", "ok")
    return redirect(url_for("admin.displays"))


@bp.post("/displays/<int:display_id>/revoke")
def display_revoke(display_id: int) -> Response:
    """A new credential for a display: its screens return to pairing."""
    svc = services()
    display = display_or_404(display_id)
    revoke_display(svc.store, svc.hub, display)
    flash("Credential revoked: its screens show a pairing code again.", "ok")
    return redirect(url_for("admin.display_edit", display_id=display.id))


@bp.post("/displays/<int:display_id>/revoke-phone")
def display_revoke_phone(display_id: int) -> Response:
    """A new phone link (QR code) for a display: phones holding the old one lose the view."""
    svc = services()
    display = display_or_404(display_id)
    revoke_phone_link(svc.store, svc.hub, display)
    flash("Phone link revoked: its screens show a new QR code within seconds.", "ok")
    return redirect(url_for("admin.display_edit", display_id=display.id))


@bp.post("/displays/<int:display_id>/<any(reload, identify):action>")
def display_command(display_id: int, action: str) -> Response:
    """Reload a display's page, or flash its name on its screen."""
    svc = services()
    display = display_or_404(display_id)
    sent = send_command(svc.hub, display, action)
    if sent:
        flash(f"Sent “{action}” to {sent} screen(s).", "ok")
    else:
        flash("No screen of this display is connected.", "warn")
    if request.form.get("back") == "fleet":
        return redirect(url_for("admin.fleet"))
    return redirect(url_for("admin.display_edit", display_id=display.id))


@bp.get("/displays/<int:display_id>/preview")
def display_preview(display_id: int) -> Response:
    """The display's kiosk page through a fresh preview credential (read-only, 10 minutes):
    the console's frames and its "Open kiosk" link. Issuing one writes nothing, so a viewer
    account may preview too."""
    svc = services()
    issued = preview_for(svc, display_or_404(display_id))
    return redirect(url_for("kiosk.kiosk_page", credential=issued.credential))


def preview_for(svc: Services, display: Any) -> preview.Preview:
    """A preview credential for a display, on the services' clock (a test's fake one)."""
    return preview.issue(svc.config["SIGNAGE_SECRET_KEY"], display, svc.feeds.clock.time())


# -- pairing ---------------------------------------------------------------------------------------
@bp.route("/pair", methods=["GET", "POST"])
def pair() -> Any:
    """Type the code a screen shows and pick its display."""
    svc = services()
    errors: dict[str, str] = {}
    code = ""
    status = 200
    if request.method == "POST":
        code = request.form.get("code", "")[:32]
        raw_id = request.form.get("display_id", "")
        display_id = int(raw_id) if raw_id.isdigit() and len(raw_id) < 10 else None
        principal = auth.current_principal()
        assert principal is not None
        try:
            display = claim(
                svc.store,
                code,
                display_id,
                principal.label,
                auth.address_key(auth.client_ip()),
                auth.limiter,
            )
        except PairingRefused as exc:
            errors["code"] = str(exc)
            status = exc.status
        else:
            flash(f"Paired: the screen now shows “{display.name}”.", "ok")
            return redirect(url_for("admin.display_edit", display_id=display.id))
    body = render_template(
        "admin/pair.html",
        displays=svc.store.list_displays(),
        errors=errors,
        code=code,
        selected=request.form.get("display_id") or request.args.get("display", ""),
    )
    return Response(body, status=status)
