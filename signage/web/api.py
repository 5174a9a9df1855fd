"""The JSON admin API under /api/admin/: the console's session or a bearer token.

Every route checks the caller first (401), then whether its role may do this (403), then whether
the object exists (404). Bad input answers 400 with a message per field, never a 500. The
OpenAPI document at /api/admin/openapi.json describes every route.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException

from signage.actions import floor_order, preview
from signage.actions import names as display_names
from signage.actions.announcements import AnnouncementInvalid, public
from signage.actions.displays import (
    DEFAULT_SETTINGS,
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
from signage.actions.plans import (
    LayoutRefused,
    here_of,
    layout_document,
    remove_plan,
    replace_plan,
    save_layout,
    set_here,
)
from signage.config import __version__
from signage.services import Services
from signage.store import Display, StoreError, plans
from signage.web import auth
from signage.web.admin import announcements
from signage.web.admin.plans import plan_response
from signage.web.answers import invalid
from signage.web.current import services
from signage.web.openapi import openapi_document

logger = logging.getLogger(__name__)

bp = Blueprint("api_admin", __name__, url_prefix="/api/admin")

API_PREFIX = "/api/admin/"


bp.before_request(auth.admin_api_guard)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.app_errorhandler(HTTPException)
def _json_errors(exc: HTTPException) -> Any:
    """Errors under /api/admin/ as JSON; elsewhere, the usual pages."""
    if not request.path.startswith(API_PREFIX):
        return exc
    response = jsonify(
        error=(exc.name or "error").lower().replace(" ", "_"), message=exc.description
    )
    response.status_code = exc.code or 500
    if exc.code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="signage admin API"'
    valid = getattr(exc, "valid_methods", None)
    if exc.code == 405 and valid:
        response.headers["Allow"] = ", ".join(valid)
    return response


def _refused(exc: LayoutRefused) -> Response:
    """A refused layout request as JSON, with the status it names."""
    response = jsonify(error=exc.error, message=exc.message)
    response.status_code = exc.status
    return response


def _json_object() -> dict[str, Any]:
    """The request body as a JSON object, or 400."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object (Content-Type: application/json)")
    return body


def _principal() -> auth.Principal:
    principal = auth.current_principal()
    assert principal is not None  # the guard ran
    return principal


def _display_or_404(display_id: int) -> Display:
    display = services().store.get_display(display_id)
    if display is None:
        abort(404, f"no display {display_id}")
    return display


def display_json(svc: Services, display: Display, connected: int | None = None) -> dict[str, Any]:
    """A display as the API shows it; its URLs (credentials) only to callers who may write."""
    if connected is None:
        connected = sum(1 for s in svc.hub.screens() if s.display_id == display.id)
    out: dict[str, Any] = {
        "id": display.id,
        "name": display.name,
        "floor_id": display.floor_id,
        "floor": floor_label(svc.directory, display.floor_id),
        "density_display_id": display.density_display_id,
        "settings": {**DEFAULT_SETTINGS, **display.settings},
        "updated_at": display.updated_at,
        "connected": connected,
    }
    if _principal().can_write:
        out["kiosk_url"] = svc.kiosk_url(display)
        out["socket_url"] = svc.socket_url(display)
        out["state_url"] = svc.state_url(display)
        out["phone_url"] = phone_url(svc, display)
    return out


# -- who am I ------------------------------------------------------------------------------------
@bp.get("/me")
def me() -> Response:
    """The caller: kind (session or token), name and role."""
    p = _principal()
    return jsonify(kind=p.kind, name=p.name, role=p.role, version=__version__)


# -- displays ------------------------------------------------------------------------------------
@bp.get("/displays")
def displays_list() -> Response:
    """Every display."""
    svc = services()
    counts: dict[int, int] = {}
    for sub in svc.hub.screens():
        counts[sub.display_id] = counts.get(sub.display_id, 0) + 1
    return jsonify(
        displays=[display_json(svc, d, counts.get(d.id, 0)) for d in svc.store.list_displays()]
    )


def _floor_ids(svc: Services) -> set[str] | None:
    choices, _note = floor_choices(svc.directory)
    # No tree yet (Density never answered): the floor cannot be checked, so it is not.
    return {c.id for c in choices} if choices else None


@bp.post("/displays")
def displays_create() -> Any:
    """Create a display: name and floor_id required, any setting optional."""
    svc = services()
    try:
        cleaned = clean_display(_json_object(), None, _floor_ids(svc))
    except Invalid as exc:
        return invalid(exc.errors)
    display = apply_display_change(svc.store, svc.hub, None, cleaned)
    return jsonify(display_json(svc, display)), 201


@bp.get("/displays/<int:display_id>")
def display_get(display_id: int) -> Response:
    """One display."""
    svc = services()
    return jsonify(display_json(svc, _display_or_404(display_id)))


@bp.route("/displays/<int:display_id>", methods=["PATCH", "PUT"])
def display_update(display_id: int) -> Any:
    """Change some fields of a display; its kiosks reconnect for the new state within seconds."""
    svc = services()
    display = _display_or_404(display_id)
    body = _json_object()
    # Settings may come nested ({"settings": {...}}) as the GET shows them, or flat.
    nested = body.pop("settings", None)
    if nested is not None:
        if not isinstance(nested, dict):
            return invalid({"settings": "must be an object"})
        body = {**nested, **body}
    try:
        cleaned = clean_display(body, display, _floor_ids(svc))
    except Invalid as exc:
        return invalid(exc.errors)
    try:
        updated = apply_display_change(svc.store, svc.hub, display, cleaned)
    except StoreError:
        abort(404, f"no display {display_id}")
    return jsonify(display_json(svc, updated))


@bp.delete("/displays/<int:display_id>")
def display_delete(display_id: int) -> Any:
    """Delete a display; its screens are closed and lose their credential."""
    svc = services()
    remove_display(svc.store, svc.hub, _display_or_404(display_id))
    return "", 204


@bp.post("/displays/<int:display_id>/revoke")
def display_revoke(display_id: int) -> Response:
    """A new credential: screens holding the old one are closed (4401) and show pairing."""
    svc = services()
    revoked = revoke_display(svc.store, svc.hub, _display_or_404(display_id))
    return jsonify(display_json(svc, revoked))


@bp.post("/displays/<int:display_id>/revoke-phone")
def display_revoke_phone(display_id: int) -> Response:
    """A new phone link (QR code): the old one opens nothing; screens reload with the new one."""
    svc = services()
    revoked = revoke_phone_link(svc.store, svc.hub, _display_or_404(display_id))
    return jsonify(display_json(svc, revoked))


@bp.post("/displays/<int:display_id>/<any(reload, identify):action>")
def display_command(display_id: int, action: str) -> Response:
    """Reload the display's pages, or flash its name on its screens."""
    svc = services()
    sent = send_commands(svc.store, svc.hub, [_display_or_404(display_id)], action)
    return jsonify(sent=sent)


@bp.get("/displays/<int:display_id>/preview")
def display_preview(display_id: int) -> Response:
    """A preview of what the display's screens show: its kiosk page and phone view through a
    signed credential that ends after ten minutes and is never counted as a screen."""
    # A GET, open to read-only tokens as the console's preview is to viewer accounts: issuing
    # one writes nothing (signed, not stored), and it shows only what the screens show in the
    # lobby, read-only: it cannot pair, post or become the display's credential, and it ends.
    svc = services()
    display = _display_or_404(display_id)
    return jsonify(preview.links(svc, display, preview.for_display(svc, display)))


@bp.post("/pair")
def pair() -> Any:
    """Claim a code a screen shows for a display: {"code": "ABCD-EFGH", "display_id": 1}."""
    svc = services()
    body = _json_object()
    code, display_id = body.get("code"), body.get("display_id")
    errors = {}
    if not isinstance(code, str) or not code or len(code) > 32:
        errors["code"] = "the code the screen shows"
    # In range too: an id past 64 bits overflows the database query (a 500 the fuzzing found).
    if not isinstance(display_id, int) or isinstance(display_id, bool) or abs(display_id) >= 2**63:
        errors["display_id"] = "a display id"
    if errors:
        return invalid(errors)
    if svc.store.get_display(display_id) is None:
        abort(404, f"no display {display_id}")
    try:
        display = claim(
            svc.store,
            code,
            display_id,
            _principal().label,
            auth.address_key(auth.client_ip()),
            auth.limiter,
        )
    except PairingRefused as exc:
        if exc.status == 429:
            abort(429, str(exc))
        return invalid({"code": str(exc)})
    return jsonify(display_json(svc, display))


# -- floors ----------------------------------------------------------------------------------------
@bp.get("/floors")
def floors() -> Any:
    """Density's floors, by building (cached)."""
    svc = services()
    choices, note = floor_choices(svc.directory)
    if not choices and note:
        return jsonify(error="density_unavailable", message=note), 503
    plans = {p.floor_id for p in svc.store.list_plans()}
    status = svc.directory.status()
    return jsonify(
        floors=[
            {
                "id": c.id,
                "name": c.name,  # Density's; what screens show is in display_names
                "display_names": display_names.shown(svc, c.id, c.name, True),
                "building": c.building,
                "building_id": c.building_id,
                "has_plan": c.id in plans,
            }
            for c in choices
        ],
        directory={"state": status["state"], "as_of": status["as_of"], "message": note},
    )


def _building_json(entry: floor_order.BuildingFloors) -> dict[str, Any]:
    return {
        "id": entry.id,
        "name": entry.name,
        "floors": [{"id": f, "name": n} for f, n in entry.floors],
        "custom": entry.custom,
    }


@bp.get("/buildings")
def buildings_list() -> Response:
    """Every building with its floors in the order in force (an admin's, else Density's)."""
    return jsonify(buildings=[_building_json(b) for b in floor_order.buildings(services())])


@bp.get("/buildings/<building_id>/floor-order")
def building_floor_order(building_id: str) -> Response:
    """A building's floors in the order in force."""
    entry = floor_order.building(services(), building_id)
    if entry is None:
        abort(404, "no such building")
    return jsonify(_building_json(entry))


@bp.put("/buildings/<building_id>/floor-order")
def building_floor_order_put(building_id: str) -> Any:
    """Set a building's floor order (`floor_ids`; an empty list goes back to Density's)."""
    body = _json_object()
    try:
        entry = floor_order.set_floor_order(services(), building_id, body.get("floor_ids"))
    except Invalid as exc:
        return invalid(exc.errors)
    if entry is None:
        abort(404, "no such building")
    return jsonify(_building_json(entry))


@bp.get("/floors/<floor_id>/rooms")
def floor_rooms(floor_id: str) -> Any:
    """The rooms of a floor: id, name, function, capacity."""
    svc = services()
    tree = svc.directory.tree()  # the cached tree: never waits on Density
    if not tree:
        message = directory_note(svc.directory.status()) or "no floors yet"
        return jsonify(error="density_unavailable", message=message), 503
    floor = tree.get(floor_id)
    rooms = tree.rooms_of(floor_id) if floor is not None else []
    if floor is None:
        svc.directory.request_refresh()
    if floor is None or floor.space_type != "floor":
        abort(404, "no such floor")
    return jsonify(
        rooms=[
            {
                "id": r.id,
                "name": r.name,
                "display_names": display_names.shown(svc, r.id, r.name, False),
                "function": r.function,
                "capacity": r.capacity,
            }
            for r in rooms
        ]
    )


@bp.get("/floors/<floor_id>/plan")
def floor_plan(floor_id: str) -> Response:
    """The floor's plan file, as sanitised and stored."""
    plan = services().store.get_plan(floor_id)
    if plan is None:
        abort(404, "this floor has no plan")
    return plan_response(plan)


@bp.put("/floors/<floor_id>/plan")
def floor_plan_put(floor_id: str) -> Any:
    """Upload a floor's plan as the raw body (SVG, PNG or JPEG; SVG is sanitised)."""
    svc = services()
    limit = int(svc.config["SIGNAGE_PLAN_MAX_BYTES"])
    if (request.content_length or 0) > limit:
        abort(413, f"plans may have at most {plans.human_size(limit)}")
    request.max_content_length = limit
    body = request.get_data(cache=False)
    try:
        plan = replace_plan(svc.store, svc.hub, svc.config, floor_id, body, _principal().label)
    except plans.PlanError as exc:
        return invalid({"plan": str(exc)})
    return jsonify(
        floor_id=plan.floor_id, content_type=plan.content_type, size=plan.size, sha256=plan.sha256
    )


@bp.delete("/floors/<floor_id>/plan")
def floor_plan_delete(floor_id: str) -> Any:
    """Remove a floor's plan."""
    svc = services()
    if not remove_plan(svc.store, svc.hub, svc.config, floor_id):
        abort(404, "this floor has no plan")
    return "", 204


# -- floor layouts (the floor editor's document: signage/actions/plans.py) ------------------------
@bp.get("/floors/<floor_id>/layout")
def floor_layout(floor_id: str) -> Any:
    """The floor's layout, its version (0: none yet), plan, rooms and displays."""
    try:
        doc = layout_document(services(), floor_id, f"{API_PREFIX}floors/{floor_id}/plan")
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(doc)


@bp.put("/floors/<floor_id>/layout")
def floor_layout_put(floor_id: str) -> Any:
    """Save a layout: {"version": the version read, "layout": {...}}; 409 if saved since."""
    try:
        version = save_layout(services(), floor_id, _json_object(), _principal().label)
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(version=version)


@bp.get("/displays/<int:display_id>/here")
def display_here(display_id: int) -> Response:
    """Where the display stands on its floor's layout ("you are here"), or null."""
    display = _display_or_404(display_id)
    return jsonify(here=here_of(display), floor_id=display.floor_id)


@bp.put("/displays/<int:display_id>/here")
def display_here_put(display_id: int) -> Any:
    """Place the display: {"here": [x, y]} in its floor layout's units, or null; it reloads."""
    svc = services()
    display = _display_or_404(display_id)
    try:
        point = set_here(svc, display, _json_object())
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(here=point, floor_id=display.floor_id)


# -- announcements (signage/web/admin/announcements.py) --------------------------------------------
@bp.get("/announcements")
def announcements_list() -> Response:
    """Showing and scheduled announcements, then recent ended or cancelled ones."""
    return jsonify(announcements.listing(services()))


@bp.post("/announcements")
def announcements_create() -> Any:
    """A banner or an emergency override for a display, a floor or all, shown within seconds."""
    svc = services()
    try:
        created = announcements.create(svc, _json_object(), _principal().label)
    except AnnouncementInvalid as exc:
        return invalid(exc.errors)
    label = announcements.audience_label(svc, created)
    return jsonify(public(created, svc.announcer.clock(), label)), 201


@bp.post("/announcements/<int:announcement_id>/cancel")
def announcement_cancel(announcement_id: int) -> Response:
    """End an announcement now; its screens drop it within seconds."""
    svc = services()
    cancelled = svc.announcer.cancel(announcement_id, _principal().label)
    if cancelled is None:
        abort(404, f"no announcement {announcement_id}")
    label = announcements.audience_label(svc, cancelled)
    return jsonify(public(cancelled, svc.announcer.clock(), label))


# -- fleet -----------------------------------------------------------------------------------------
@bp.get("/fleet")
def fleet() -> Response:
    """Displays, floor feeds and sensors, problems first."""
    return jsonify(fleet_status(services()))


# -- admins (owners only) --------------------------------------------------------------------------
@bp.get("/admins")
def admins_list() -> Response:
    """Every admin account (owners only)."""
    if not _principal().is_owner:
        abort(403, "only owners manage admins")
    return jsonify(
        admins=[
            {"id": a.id, "username": a.username, "role": a.role, "created_at": a.created_at}
            for a in services().store.list_admins()
        ]
    )


@bp.get("/openapi.json")
def openapi() -> Response:
    """This API's OpenAPI document."""
    return jsonify(openapi_document())
