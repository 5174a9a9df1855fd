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

from signage.actions import displays as display_actions
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
    send_command,
)
from signage.actions.fleet import fleet_status
from signage.actions.pairing import PairingRefused, claim
from signage.config import __version__
from signage.core.protocol import CLOSE_RELOAD
from signage.services import Services
from signage.store import Display, StoreError, plans
from signage.web import auth
from signage.web.admin import announcements, editor
from signage.web.admin.plans import plan_response
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("api_admin", __name__, url_prefix="/api/admin")

API_PREFIX = "/api/admin/"
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@bp.before_request
def _guard() -> None:
    """Who is calling (401), then may a session's unsafe call be forged (CSRF), then the role."""
    principal = auth.load_principal(allow_token=True)
    if principal is None:
        abort(401)
    if request.method in UNSAFE:
        if principal.kind == "session" and not auth.csrf_ok():
            abort(403, "missing or wrong X-CSRF-Token header (the console's form token)")
        if not principal.can_write:
            abort(403, "this token may only read")


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


def _bad_request(errors: dict[str, str]) -> Response:
    response = jsonify(
        error="invalid", message="; ".join(f"{k}: {v}" for k, v in errors.items()), fields=errors
    )
    response.status_code = 400
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
        connected = sum(1 for s in svc.hub.subscribers() if s.display_id == display.id)
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
    for sub in svc.hub.subscribers():
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
        return _bad_request(exc.errors)
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
            return _bad_request({"settings": "must be an object"})
        body = {**nested, **body}
    try:
        cleaned = clean_display(body, display, _floor_ids(svc))
    except Invalid as exc:
        return _bad_request(exc.errors)
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
    sent = send_command(svc.hub, _display_or_404(display_id), action)
    return jsonify(sent=sent)


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
        return _bad_request(errors)
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
        return _bad_request({"code": str(exc)})
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
            {"id": c.id, "name": c.name, "building": c.building, "has_plan": c.id in plans}
            for c in choices
        ],
        directory={"state": status["state"], "as_of": status["as_of"], "message": note},
    )


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
            {"id": r.id, "name": r.name, "function": r.function, "capacity": r.capacity}
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
    try:
        plan = plans.store_plan(
            svc.store, svc.config, floor_id, request.get_data(cache=False), _principal().label
        )
    except plans.PlanError as exc:
        return _bad_request({"plan": str(exc)})
    for display in svc.store.list_displays(floor_id):
        svc.hub.close_display(display.id, CLOSE_RELOAD, "floor plan changed")
    return jsonify(
        floor_id=plan.floor_id, content_type=plan.content_type, size=plan.size, sha256=plan.sha256
    )


@bp.delete("/floors/<floor_id>/plan")
def floor_plan_delete(floor_id: str) -> Any:
    """Remove a floor's plan."""
    svc = services()
    if not plans.delete_plan(svc.store, svc.config, floor_id):
        abort(404, "this floor has no plan")
    for display in svc.store.list_displays(floor_id):
        svc.hub.close_display(display.id, CLOSE_RELOAD, "floor plan changed")
    return "", 204


# -- floor layouts (the floor editor's document; see signage/web/admin/editor.py) ------------------
@bp.get("/floors/<floor_id>/layout")
def floor_layout(floor_id: str) -> Any:
    """The floor's layout, its version (0: none yet), plan, rooms and displays."""
    try:
        doc = editor.layout_document(services(), floor_id, f"{API_PREFIX}floors/{floor_id}/plan")
    except editor.EditorError as exc:
        return exc.response()
    return jsonify(doc)


@bp.put("/floors/<floor_id>/layout")
def floor_layout_put(floor_id: str) -> Any:
    """Save a layout: {"version": the version read, "layout": {...}}; 409 if saved since."""
    try:
        version = editor.save_layout(services(), floor_id, _json_object(), _principal().label)
    except editor.EditorError as exc:
        return exc.response()
    return jsonify(version=version)


@bp.get("/displays/<int:display_id>/here")
def display_here(display_id: int) -> Response:
    """Where the display stands on its floor's layout ("you are here"), or null."""
    display = _display_or_404(display_id)
    return jsonify(here=editor.here_of(display), floor_id=display.floor_id)


@bp.put("/displays/<int:display_id>/here")
def display_here_put(display_id: int) -> Any:
    """Place the display: {"here": [x, y]} in its floor layout's units, or null; it reloads."""
    svc = services()
    display = _display_or_404(display_id)
    try:
        point = editor.set_here(svc, display, _json_object())
    except editor.EditorError as exc:
        return exc.response()
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
        return _bad_request(exc.errors)
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


# -- the OpenAPI document --------------------------------------------------------------------------
def _op(summary: str, *, body: str | None = None, ok: str = "200", params: tuple = ()) -> dict:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK"},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
        },
    }
    if params:
        op["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in params]
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 description of this API."""
    settings_props = {
        "orientation": {"type": "string", "enum": list(display_actions.ORIENTATIONS)},
        "rotation": {"type": "integer", "enum": list(display_actions.ROTATIONS)},
        "theme": {"type": "string", "enum": list(display_actions.THEMES)},
        "brand_color": {"type": "string", "pattern": "^(#[0-9a-fA-F]{6})?$"},
        "logo_url": {"type": "string", "maxLength": display_actions.MAX_URL},
        "language": {"type": "string", "enum": ["en", "de", "fr"]},
        # Patterns and bounds as clean_display checks them, so the document does not promise
        # what the API refuses (found by the schemathesis run in tests/test_api_fuzz.py).
        "functions": {
            "type": "array",
            "maxItems": display_actions.MAX_LIST,
            "items": {"type": "string", "pattern": display_actions.FUNCTION_ID.pattern},
        },
        "min_capacity": {"type": "integer", "minimum": 0, "maximum": 10000},
        "hidden_rooms": {
            "type": "array",
            "maxItems": display_actions.MAX_LIST,
            "items": {"type": "string", "pattern": display_actions.SPACE_ID.pattern},
        },
        "night": {
            "type": ["object", "null"],
            "properties": {  # both empty (or none at all): no night hours
                "start": {"type": "string", "pattern": "^(([01]\\d|2[0-3]):[0-5]\\d)?$"},
                "end": {"type": "string", "pattern": "^(([01]\\d|2[0-3]):[0-5]\\d)?$"},
            },
        },
        "qr": {"type": "boolean"},
    }
    display_input = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": display_actions.MAX_NAME},
            "floor_id": {"type": "string"},
            "density_display_id": {"type": ["string", "null"]},
            "settings": {"type": "object", "properties": settings_props},
            **settings_props,
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "signage admin API", "version": __version__},
        "servers": [{"url": "/api/admin"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "signage admin token create NAME",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "signage_session",
                    "description": "The console's session; unsafe methods also need X-CSRF-Token.",
                },
            },
            "parameters": {
                "display_id": {
                    "name": "display_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
                "floor_id": {
                    "name": "floor_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": plans._FLOOR_ID.pattern},
                },
            },
            "schemas": {
                "DisplayCreate": {**display_input, "required": ["name", "floor_id"]},
                "DisplayUpdate": display_input,
                **editor.openapi_schemas(),
                **announcements.openapi_schemas(),
                "Pair": {
                    "type": "object",
                    "required": ["code", "display_id"],
                    "properties": {"code": {"type": "string"}, "display_id": {"type": "integer"}},
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {"type": "object"},
                    },
                },
            },
            "responses": {
                "Error": {
                    "description": "An error, explained",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
        "paths": {
            "/me": {"get": _op("The caller")},
            "/displays": {
                "get": _op("List displays"),
                "post": _op("Create a display", body="DisplayCreate", ok="201"),
            },
            "/displays/{display_id}": {
                "get": _op("One display", params=("display_id",)),
                "patch": _op("Change a display", body="DisplayUpdate", params=("display_id",)),
                "put": _op("Change a display", body="DisplayUpdate", params=("display_id",)),
                "delete": _op("Delete a display", ok="204", params=("display_id",)),
            },
            "/displays/{display_id}/revoke": {
                "post": _op(
                    "New credential; open screens return to pairing", params=("display_id",)
                )
            },
            "/displays/{display_id}/revoke-phone": {
                "post": _op(
                    "New phone link (QR code); the old one opens nothing", params=("display_id",)
                )
            },
            "/displays/{display_id}/reload": {
                "post": _op("Reload the display's pages", params=("display_id",))
            },
            "/displays/{display_id}/identify": {
                "post": _op("Flash the display's name on its screens", params=("display_id",))
            },
            "/pair": {"post": _op("Claim a pairing code for a display", body="Pair")},
            "/floors": {"get": _op("Density's floors")},
            **editor.openapi_paths(_op),
            **announcements.openapi_paths(_op),
            "/floors/{floor_id}/rooms": {"get": _op("A floor's rooms", params=("floor_id",))},
            "/floors/{floor_id}/plan": {
                "get": _op("The floor's plan file", params=("floor_id",)),
                "put": {
                    **_op("Upload the floor's plan (SVG, PNG or JPEG)", params=("floor_id",)),
                    "requestBody": {
                        "required": True,
                        "content": {
                            t: {"schema": {"type": "string", "format": "binary"}}
                            for t in ("image/svg+xml", "image/png", "image/jpeg")
                        },
                    },
                },
                "delete": _op("Remove the floor's plan", ok="204", params=("floor_id",)),
            },
            "/fleet": {"get": _op("Fleet health, problems first")},
            "/admins": {"get": _op("Admin accounts (owners only)")},
            "/openapi.json": {"get": _op("This document")},
        },
    }


@bp.get("/openapi.json")
def openapi() -> Response:
    """This API's OpenAPI document."""
    return jsonify(openapi_document())
