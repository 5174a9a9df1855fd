"""Console pages for displays: the list, create, edit, delete, revoke, commands, and pairing."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs

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
    send_commands,
)
from signage.actions.fleet import fleet_status
from signage.actions.pairing import PairingRefused, claim
from signage.actions.wording import counted
from signage.services import Services
from signage.store import Display
from signage.web import auth
from signage.web.admin.base import ask_first, bp, display_or_404
from signage.web.current import services
from signage.web.names import floor_name

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
            "booking_margin_min",
            "booking_grace_min",
            "free_for_min",
        )
        if key in form
    }
    if form.get("settings_form"):  # the full edit form: absent checkboxes mean "off"/"none"
        data["functions"] = form.getlist("functions")
        data["hidden_rooms"] = form.getlist("hidden_rooms")
        data["qr"] = form.get("qr") == "on"
        data["offer_booked_empty"] = form.get("offer_booked_empty") == "on"
        start, end = form.get("night_start", ""), form.get("night_end", "")
        data["night"] = {"start": start, "end": end} if (start or end) else None
    return data


def _floor_ids(choices: list[FloorChoice], error: str | None) -> set[str] | None:
    return None if error else {c.id for c in choices}


# -- displays ------------------------------------------------------------------------------------
# The list's states, as an admin names them (fleet health's words: a display that never had a
# screen is "not installed", not down).
STATES = {
    "live": "Live",
    "stale": "Stale data",
    "down": "Down",
    "not_installed": "Not installed",
}
PAGE_SIZES = (50, 100)
# Query keys the list keeps across its links, forms and the bulk actions' way back.
LIST_KEYS = ("q", "floor", "state", "language", "per_page", "page")


@dataclass(frozen=True)
class ListQuery:
    """What the displays list is asked for: a search, filters and a page (bad values dropped,
    so a hand-edited URL shows the whole list rather than an error)."""

    q: str = ""
    floor: str = ""
    state: str = ""
    language: str = ""
    per_page: int = PAGE_SIZES[0]
    page: int = 1

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> ListQuery:
        """Read the list's query string."""
        per_page = args.get("per_page", "")
        page = args.get("page", "")
        return cls(
            q=" ".join(args.get("q", "").split())[:80],
            floor=args.get("floor", "")[:64],
            state=args.get("state", "") if args.get("state") in STATES else "",
            language=args.get("language", "") if args.get("language") in i18n.LANGUAGES else "",
            per_page=int(per_page) if per_page in {str(n) for n in PAGE_SIZES} else PAGE_SIZES[0],
            page=int(page) if page.isascii() and page.isdigit() and 0 < len(page) < 7 else 1,
        )

    def args(self, **changes: Any) -> dict[str, Any]:
        """The query as URL arguments, defaults left out, with `changes` applied."""
        values = {**{k: getattr(self, k) for k in LIST_KEYS}, **changes}
        defaults = ListQuery()
        return {k: v for k, v in values.items() if v != getattr(defaults, k)}


def _list_state(row: dict[str, Any], feed_modes: dict[str, str]) -> str:
    """A fleet report row's state in the list's words: a screen showing a stale floor is
    "stale", one whose page stopped answering counts as down (as fleet health counts it)."""
    if row["state"] == "not_installed":
        return "not_installed"
    if row["state"] in ("down", "silent"):
        return "down"
    return "stale" if feed_modes.get(row["floor_id"]) == "stale" else "live"


def display_rows(svc: Services) -> list[dict[str, Any]]:
    """Every display with its floor, state, language and screens, by name (the fleet report's
    view of its screens: a fleet's other processes count, previews do not)."""
    report = fleet_status(svc)
    feed_modes = {f["floor_id"]: f["mode"] for f in report["feeds"]}
    by_id = {d["id"]: d for d in report["displays"]}
    rows = []
    for display in svc.store.list_displays():
        row = by_id.get(display.id)
        if row is None:  # created after the report was read
            continue
        orientation = (display.settings or {}).get("orientation")
        rows.append(
            {
                "display": display,
                # The floor as the admin reads it (display names), Density's kept for search.
                "floor": floor_name(display.floor_id),
                "density_floor": row["floor"],
                "state": _list_state(row, feed_modes),
                "down_s": row["down_s"],
                "language": i18n.language(display.settings),
                "orientation": "portrait" if orientation == "portrait" else "landscape",
                "connected": row["connected"],
            }
        )
    rows.sort(key=lambda r: (r["display"].name.casefold(), r["display"].id))
    return rows


def filter_rows(rows: list[dict[str, Any]], query: ListQuery) -> list[dict[str, Any]]:
    """The rows a search and the filters keep (the search looks in names and floors)."""
    words = query.q.casefold().split()

    def keep(row: dict[str, Any]) -> bool:
        if query.floor and row["display"].floor_id != query.floor:
            return False
        if query.state and row["state"] != query.state:
            return False
        if query.language and row["language"] != query.language:
            return False
        text = f"{row['display'].name} {row['floor']} {row.get('density_floor', '')}".casefold()
        return all(word in text for word in words)

    return [r for r in rows if keep(r)]


@bp.get("/displays")
def displays() -> str:
    """Every display, searchable and filtered, a page at a time; bulk actions on a selection.

    Each row's preview is loaded only when asked for (a socket per shown preview)."""
    svc = services()
    query = ListQuery.from_args(request.args)
    rows = display_rows(svc)
    # The floors with a display, in the building's order (Density's or the floor-order page's);
    # a floor the directory no longer lists goes last, by name.
    rank = {f.id: i for i, f in enumerate(svc.directory.floors(building_order=True))}
    floors = sorted(
        {(r["display"].floor_id, r["floor"]) for r in rows},
        key=lambda f: (rank.get(f[0], len(rank)), f[1]),
    )
    shown = filter_rows(rows, query)
    pages = max(1, -(-len(shown) // query.per_page))
    query = replace(query, page=min(query.page, pages))
    first = (query.page - 1) * query.per_page
    return render_template(
        "admin/displays.html",
        rows=shown[first : first + query.per_page],
        total=len(rows),
        matching=len(shown),
        first=first + 1,
        query=query,
        pages=pages,
        floors=floors,
        states=STATES,
        languages=i18n.LANGUAGES,
        language_names=LANGUAGE_NAMES,
        page_sizes=PAGE_SIZES,
        counts={s: sum(1 for r in rows if r["state"] == s) for s in STATES},
    )


def _back_to_list() -> Response:
    """Back to the list as it was (the bulk form carries its query, known keys only)."""
    back = ListQuery.from_args(parse_qs_single(request.form.get("back", "")))
    return redirect(url_for("admin.displays", **back.args()))


def parse_qs_single(text: str) -> dict[str, str]:
    """A query string's first value for each key."""
    return {k: v[0] for k, v in parse_qs(text[:2000]).items() if v}


def _selected(svc: Services) -> list[Display]:
    """The displays ticked in the bulk form that still exist, in list order."""
    ids = {
        int(i) for i in request.form.getlist("ids") if i.isascii() and i.isdigit() and len(i) < 12
    }
    chosen = [d for d in svc.store.list_displays() if d.id in ids]
    return sorted(chosen, key=lambda d: (d.name.casefold(), d.id))


@bp.post("/displays/bulk")
def displays_bulk() -> Response:
    """Reload, identify, announce or (after a confirmation page) revoke the selected displays."""
    svc = services()
    action = request.form.get("action", "")
    chosen = _selected(svc)
    if action not in ("reload", "identify", "announce", "revoke"):
        flash("Choose what to do with the selected displays.", "warn")
        return _back_to_list()
    if not chosen:
        flash("Select at least one display first (the boxes in the first column).", "warn")
        return _back_to_list()
    if action == "announce":
        audience = [f"display:{d.id}" for d in chosen]
        return redirect(url_for("admin.announcements_page", audience=audience) + "#announce-form")
    if action == "revoke":
        connected = {r["display"].id: r["connected"] for r in display_rows(svc)}
        body = render_template(
            "admin/displays_revoke.html",
            chosen=chosen,
            connected=connected,
            floors={d.id: floor_label(svc.directory, d.floor_id) for d in chosen},
            back=request.form.get("back", "")[:2000],
        )
        return Response(body)
    sent = send_commands(svc.store, svc.hub, chosen, action)
    reached = f"{counted(sent, 'screen')} of {counted(len(chosen), 'display')}"
    flash(
        f"Sent “{action}” to {reached}." if sent else "None of them has a screen connected.",
        "ok" if sent else "warn",
    )
    return _back_to_list()


@bp.post("/displays/bulk/revoke")
def displays_bulk_revoke() -> Response:
    """Revoke the confirmed displays' credentials: their screens go back to pairing."""
    svc = services()
    chosen = _selected(svc)
    if not chosen or request.form.get("confirm") != "yes":
        flash("Nothing revoked.", "warn")
        return _back_to_list()
    for display in chosen:
        revoke_display(svc.store, svc.hub, display)
    names = ", ".join(f"“{d.name}”" for d in chosen[:5]) + (" …" if len(chosen) > 5 else "")
    revoked = counted(len(chosen), "credential")
    flash(f"Revoked {revoked}: {names}. Their screens show a pairing code.", "ok")
    return _back_to_list()


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


def _room_ids(svc: Services) -> Any:
    """The rooms the cached tree knows on a floor (None: none known now), for hidden rooms."""
    return lambda floor_id: {r.id for r in svc.directory.rooms_of(floor_id)} or None


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
            cleaned = clean_display(
                values, display, _floor_ids(choices, floor_error), _room_ids(svc)
            )
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
    # Its URLs carry its credentials (the phone link is one too): to accounts that may write
    # only, as the API's display JSON; a viewer gets the preview's, which expires.
    principal = auth.current_principal()
    writer = principal is not None and principal.can_write
    body = render_template(
        "admin/display_edit.html",
        display=display,
        form=form,
        choices=choices,
        floor_error=floor_error,
        rooms=rooms,
        rooms_error=rooms_error,
        functions=sorted({r.function for r in rooms if r.function}),
        # Night times are the floor's local time (UTC when Density names no zone for it).
        night_zone=svc.directory.time_zone(display.floor_id) or "UTC",
        errors=errors,
        values=values,
        languages=i18n.LANGUAGES,
        language_names=LANGUAGE_NAMES,
        themes=THEMES,
        kiosk_url=svc.kiosk_url(display) if writer else "",
        socket_url=svc.socket_url(display) if writer else "",
        state_url=svc.state_url(display) if writer else "",
        phone_url=phone_url(svc, display) if writer else "",
        connected=len([s for s in svc.hub.screens() if s.display_id == display.id]),
        # Its state in the list's and fleet health's words ("Down for 7 min", "Not installed").
        state_row=next((r for r in display_rows(svc) if r["display"].id == display.id), None),
        states=STATES,
        # What its screens show, through a preview credential (never counted as a screen).
        preview_src=url_for("kiosk.kiosk_page", credential=preview_for(svc, display).credential),
        preview_orientation="portrait"
        if display.settings.get("orientation") == "portrait"
        else "landscape",
    )
    return Response(body, status=400 if errors else 200)


@bp.post("/displays/<int:display_id>/delete")
def display_delete(display_id: int) -> Any:
    """Delete a display; its screens lose their credential (after a page asking whether to)."""
    svc = services()
    display = display_or_404(display_id)
    asking = ask_first(
        title="Delete this display?",
        text="Its screens lose their credential at once, and its settings and phone link"
        " are gone. This cannot be undone: a new display must be paired again.",
        subject=display.name,
        button="Delete display",
        cancel=url_for("admin.display_edit", display_id=display.id),
    )
    if asking is not None:
        return asking
    remove_display(svc.store, svc.hub, display)
    flash(f"Display “{display.name}” deleted.", "ok")
    return redirect(url_for("admin.displays"))


@bp.post("/displays/<int:display_id>/revoke")
def display_revoke(display_id: int) -> Any:
    """A new credential for a display: its screens return to pairing (after a page asking)."""
    svc = services()
    display = display_or_404(display_id)
    asking = ask_first(
        title="Revoke this display's credential?",
        text="Its screens stop at once and show a pairing code: someone must pair each"
        " screen again at the screen. Its settings and phone link are kept.",
        subject=display.name,
        button="Revoke credential",
        cancel=url_for("admin.display_edit", display_id=display.id),
    )
    if asking is not None:
        return asking
    revoke_display(svc.store, svc.hub, display)
    flash("Credential revoked: its screens show a pairing code again.", "ok")
    return redirect(url_for("admin.display_edit", display_id=display.id))


@bp.post("/displays/<int:display_id>/revoke-phone")
def display_revoke_phone(display_id: int) -> Any:
    """A new phone link (QR code) for a display: phones holding the old one lose the view
    (after a page asking)."""
    svc = services()
    display = display_or_404(display_id)
    asking = ask_first(
        title="Revoke this display's phone link?",
        text="Phones that opened the old link or QR code lose the view at once; its screens"
        " show a new QR code within seconds. The screens themselves keep working.",
        subject=display.name,
        button="Revoke phone link",
        cancel=url_for("admin.display_edit", display_id=display.id),
    )
    if asking is not None:
        return asking
    revoke_phone_link(svc.store, svc.hub, display)
    flash("Phone link revoked: its screens show a new QR code within seconds.", "ok")
    return redirect(url_for("admin.display_edit", display_id=display.id))


@bp.post("/displays/<int:display_id>/<any(reload, identify):action>")
def display_command(display_id: int, action: str) -> Response:
    """Reload a display's page, or flash its name on its screen."""
    svc = services()
    display = display_or_404(display_id)
    sent = send_commands(svc.store, svc.hub, [display], action)
    if sent:
        flash(f"Sent “{action}” to {counted(sent, 'screen')}.", "ok")
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
