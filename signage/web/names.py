"""Display names in the JSON admin API, and keeping this process's names current.

`GET /api/admin/names` lists every floor and its rooms with their display names and what each
language's screens show; `GET/PUT/DELETE /api/admin/spaces/<id>/names` read, set and remove one
space's. What a change does is in signage/actions/names.py, shared with the console. The
console's templates name floors and rooms through the globals below (`space_name`, `floor_name`,
...): the display name in the admin's language, Density's name beside it where it differs.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, abort, jsonify, request

from signage import i18n
from signage.actions import names as actions
from signage.actions.displays import SPACE_ID
from signage.web import auth
from signage.web.answers import invalid
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("api_names", __name__, url_prefix="/api/admin")
bp.before_request(auth.admin_api_guard)

# Requests that render names: their generation in the store is looked at first (always when a
# screen's page or socket opens, else at most every REFRESH_S seconds) and the names re-read
# when it moved, so another process's rename reaches this one's screens and console too.
_SCREEN_PATHS = ("/kiosk/", "/phone/", "/api/kiosk/", "/api/phone/", "/ws/")
_CONSOLE_PATHS = ("/admin/", "/api/admin/")  # they show names too (a rename in another process)
_SCREEN_OPENINGS = frozenset({"kiosk.kiosk_page", "kiosk.phone_page"})


def init_app(app: Flask) -> None:
    """Read the names once now (and give the hub its localiser), then keep them current; give
    the console's templates the names too."""
    actions.refresh(services_of(app), force=True)
    app.before_request(_refresh_for_screens)
    app.add_template_global(space_name)
    app.add_template_global(density_note)
    app.add_template_global(space_option)
    app.add_template_global(floor_name)
    app.add_template_global(floor_note)


# -- the console: a space as its screens call it, in the admin's language ----------------------
def console_language() -> str:
    """The admin's language for names: the browser's first of en/de/fr, else English."""
    return request.accept_languages.best_match(i18n.LANGUAGES) or "en"


def space_name(space_id: str, density_name: str, is_floor: bool = False) -> str:
    """A floor's or room's display name in the admin's language (Density's without one)."""
    return actions.book(services()).resolve(space_id, console_language(), density_name, is_floor)


def density_note(space_id: str, density_name: str, is_floor: bool = False) -> str:
    """ "Density: <its name>" when the display name differs (a title attribute), else ""."""
    if not density_name or space_name(space_id, density_name, is_floor) == density_name:
        return ""
    return f"Density: {density_name}"


def space_option(space_id: str, density_name: str, is_floor: bool = False) -> str:
    """A choice's text: the display name, with Density's in brackets when it differs, so an
    admin who knows either finds it ("Erdgeschoss (Ground floor)")."""
    shown = space_name(space_id, density_name, is_floor)
    return shown if not density_name or shown == density_name else f"{shown} ({density_name})"


def floor_name(floor_id: str) -> str:
    """ "Building / Floor" with the floor's display name in the admin's language."""
    return actions.floor_label(services(), floor_id, console_language())


def floor_note(floor_id: str) -> str:
    """ "Density: <its name>" for a floor shown by its display name (a title attribute)."""
    floor = services().directory.tree().get(floor_id)  # memory only
    return density_note(floor_id, floor.name, True) if floor is not None else ""


def services_of(app: Flask) -> Any:
    """The app's services (init_app runs outside a request)."""
    return app.extensions["signage"]


def _refresh_for_screens() -> None:
    if request.endpoint in _SCREEN_OPENINGS or request.path.startswith("/ws/"):
        # A screen (re)opening, as it does after a rename anywhere in a fleet (the reload goes
        # to every process): its snapshot must carry the names as stored now.
        actions.refresh(services(), force=True)
    elif request.path.startswith(_SCREEN_PATHS + _CONSOLE_PATHS):
        actions.refresh(services())


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _space(space_id: str) -> tuple[str, str]:
    if not SPACE_ID.match(space_id):
        abort(404, "no such floor or room")
    try:
        return actions.space_kind(services(), space_id)
    except actions.UnknownSpace:
        abort(404, "no such floor or room (as Density lists them now)")


def _answer(space_id: str, kind: str, density_name: str) -> dict[str, Any]:
    svc = services()
    book = actions.book(svc)
    return {
        "space_id": space_id,
        "kind": kind,
        "density_name": density_name,
        "names": actions.names_of(svc, space_id),
        "shown": {
            lang: book.resolve(space_id, lang, density_name, kind == "floor")
            for lang in i18n.LANGUAGES
        },
    }


@bp.get("/names")
def list_names() -> Response:
    """Every floor (in its building's order) and its rooms: display names and what shows."""
    return jsonify(floors=actions.overview(services()))


@bp.get("/spaces/<space_id>/names")
def get_names(space_id: str) -> Response:
    """A floor's or a room's display names, and the name each language's screens show."""
    kind, density_name = _space(space_id)
    return jsonify(_answer(space_id, kind, density_name))


@bp.put("/spaces/<space_id>/names")
def put_names(space_id: str) -> Any:
    """Set a space's display names: `default` and any of en, de, fr (others are removed)."""
    _space(space_id)
    body = request.get_json(silent=True)
    try:
        change = actions.set_names(services(), space_id, body)
    except actions.Invalid as exc:
        return invalid(exc.errors)
    return jsonify(_answer(space_id, change.kind, change.density_name))


@bp.delete("/spaces/<space_id>/names")
def delete_names(space_id: str) -> Response:
    """Remove every display name of a space: its screens show Density's name again."""
    _space(space_id)
    actions.set_names(services(), space_id, {})
    return Response(status=204)


def openapi_paths(op: Any) -> dict[str, Any]:
    """The display-name routes for the OpenAPI document (web/openapi.py)."""
    name = {"type": "string", "maxLength": actions.MAX_NAME}
    put = op(
        "Set a floor's or a room's display names (default and per language)", params=("space_id",)
    )
    put["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {field: name for field in actions.FIELDS},
                }
            }
        },
    }
    get = op(
        "A floor's or a room's display names and the name each language shows", params=("space_id",)
    )
    remove = op("Remove a floor's or a room's display names", ok="204", params=("space_id",))
    return {
        "/names": {"get": op("Every floor and room: display names and what each language shows")},
        "/spaces/{space_id}/names": {"get": get, "put": put, "delete": remove},
    }
