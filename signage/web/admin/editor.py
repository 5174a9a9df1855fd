"""The floor editor: rooms, doors, corridors and "you are here" drawn over a floor's plan.

The routes join the console's blueprint (`admin.bp`), so its guard applies before any of them
runs: a signed-in admin, and the session's CSRF token on every unsafe request. The JSON API
(signage/web/api.py) calls the same functions, so both check and save layouts the same way.

Saving is optimistic: the editor sends the version it loaded, and a layout saved by someone
else since then is refused (409) rather than overwritten. Outlines of spaces that are not rooms
of the floor any more are refused by name, so the admin gives them to a room or deletes them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Response, abort, jsonify, render_template, request, url_for

from signage.core import layout as doc
from signage.core.errors import FeedUnavailable
from signage.core.layout import LayoutError, check_point, empty_layout, validate_layout
from signage.core.protocol import CLOSE_RELOAD
from signage.services import Services
from signage.store import Display, StoreError, plans
from signage.web import auth
from signage.web.admin.base import bp, display_or_404
from signage.web.current import services

logger = logging.getLogger(__name__)

_FLOOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_VERSION = 2**62


class EditorError(Exception):
    """A request the editor refuses: an HTTP status and a message for the admin."""

    def __init__(self, status: int, message: str, error: str = "invalid") -> None:
        super().__init__(message)
        self.status, self.message, self.error = status, message, error

    def response(self) -> Response:
        """The refusal as JSON: {"error", "message"}."""
        out = jsonify(error=self.error, message=self.message)
        out.status_code = self.status
        return out


@dataclass
class FloorContext:
    """A floor as the editor needs it: Density's view of it (when reachable) and what we store."""

    floor: dict[str, Any]
    spaces: list[dict[str, Any]] | None  # None: Density could not be reached
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def space_ids(self) -> set[str] | None:
        return None if self.spaces is None else {s["id"] for s in self.spaces}


def floor_context(svc: Services, floor_id: str) -> FloorContext:
    """The floor and its rooms from Density; EditorError 404 when Density does not know it."""
    if not _FLOOR_ID.match(floor_id):
        raise EditorError(404, "no such floor", "not_found")
    tree = svc.directory.tree()  # the cached tree: the editor never waits on Density
    floor = tree.get(floor_id)
    if floor is None and not tree:
        # No tree fetched yet: the editor still opens with what is stored; new rooms cannot be
        # checked meanwhile.
        svc.directory.request_refresh()
        return FloorContext(
            {"id": floor_id, "name": floor_id, "building": ""},
            None,
            "Could not load the floor's rooms from Density (waiting for its first answer):"
            " rooms already drawn can be edited, new ones can be assigned once it answers.",
        )
    if floor is None or floor.space_type != "floor":
        svc.directory.request_refresh()
        raise EditorError(404, "no such floor", "not_found")
    rooms = tree.rooms_of(floor_id)
    parent = tree.building_of(floor_id)
    return FloorContext(
        {"id": floor.id, "name": floor.name, "building": parent.name if parent else ""},
        [
            {"id": r.id, "name": r.name, "function": r.function, "capacity": r.capacity}
            for r in rooms
        ],
    )


def _plan_info(svc: Services, floor_id: str, url: str) -> dict[str, Any] | None:
    """The plan's URL and its own size (None for either side when it cannot be read)."""
    record = svc.store.get_plan(floor_id)
    if record is None:
        return None
    data = plans.read_plan(svc.config, record)
    size = plans.plan_dimensions(data, record.content_type) if data is not None else None
    return {
        "url": f"{url}?v={record.sha256[:8]}",
        "width": size[0] if size else None,
        "height": size[1] if size else None,
    }


def here_of(display: Display) -> list[float] | None:
    """A display's "you are here" as stored, or None when it is not placed."""
    here = display.settings.get("here")
    if isinstance(here, list) and len(here) == 2:
        return here
    return None


def layout_document(svc: Services, floor_id: str, plan_url: str) -> dict[str, Any]:
    """Everything the editor loads: floor, version, layout, plan, the floor's rooms, displays."""
    ctx = floor_context(svc, floor_id)
    plan = _plan_info(svc, floor_id, plan_url)
    stored = svc.store.get_layout(floor_id)
    if stored is not None:
        layout = stored.data
        if (
            plan
            and plan["width"]
            and (
                abs(plan["width"] - layout["width"]) > 0.5
                or abs(plan["height"] - layout["height"]) > 0.5
            )
        ):
            ctx.warnings.append(
                f"The plan is {plan['width']:g}×{plan['height']:g} but the layout was drawn at"
                f" {layout['width']:g}×{layout['height']:g}: check that the outlines still fit."
            )
    elif plan and plan["width"] and plan["height"]:
        layout = empty_layout(plan["width"], plan["height"])
    else:
        layout = empty_layout()
    if ctx.spaces is not None:
        gone = sorted(set(layout.get("rooms", {})) - ctx.space_ids)
        if gone:
            ctx.warnings.append(
                "Outlines of spaces that are not rooms of this floor any more: "
                + ", ".join(gone)
                + ". Give them to a room of this floor or delete them before saving."
            )
    displays = svc.store.list_displays(floor_id)
    for display in displays:
        here = here_of(display)
        if here is not None:
            try:
                check_point(here, layout)
            except LayoutError:
                ctx.warnings.append(
                    f"“You are here” of {display.name} lies outside the layout: place it again."
                )
    return {
        "floor": ctx.floor,
        "version": stored.version if stored else 0,
        "updated_at": stored.updated_at if stored else None,
        "layout": layout,
        "plan": plan,
        "spaces": ctx.spaces if ctx.spaces is not None else [],
        "error": ctx.error,
        "warnings": ctx.warnings,
        "displays": [{"id": d.id, "name": d.name, "here": here_of(d)} for d in displays],
    }


def save_layout(svc: Services, floor_id: str, body: Any, updated_by: str | None) -> int:
    """Check and store a layout sent as {"version": n, "layout": {...}}; the new version.

    The floor's kiosks reload to show it. EditorError 400 (bad layout), 404, 409 (saved by
    someone else since `version`) or 503 (new rooms while Density cannot be reached).
    """
    if not isinstance(body, dict):
        raise EditorError(400, 'the body must be a JSON object {"version": n, "layout": {...}}')
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < MAX_VERSION:
        raise EditorError(400, "version must be the whole number the editor loaded (0 for none)")
    data = body.get("layout")
    if not isinstance(data, dict):
        raise EditorError(400, "layout must be a JSON object")
    ctx = floor_context(svc, floor_id)
    rooms = data.get("rooms")
    named = set(rooms) if isinstance(rooms, dict) else set()
    known = ctx.space_ids
    if known is None:
        # Density is away: rooms already stored were checked when they were saved.
        stored = svc.store.get_layout(floor_id)
        known = set(stored.data.get("rooms", {})) if stored else set()
        unchecked = sorted(str(s) for s in named - known)
        if unchecked:
            raise EditorError(
                503,
                "Density cannot be reached to check the new room(s) "
                + ", ".join(unchecked[:10])
                + "; save again later or remove them",
                "density_unavailable",
            )
    else:
        unknown = sorted(str(s) for s in named - known)
        if unknown:
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise EditorError(
                400,
                "not rooms of this floor (any more): "
                + ", ".join(unknown[:10])
                + more
                + "; give their outlines to rooms of this floor or delete them, and save again",
            )
    try:
        clean = validate_layout(data, known)
    except LayoutError as exc:
        raise EditorError(400, str(exc)) from exc
    try:
        saved = svc.store.put_layout(floor_id, clean, updated_by, expected_version=version)
    except StoreError as exc:
        raise EditorError(409, str(exc), "conflict") from exc
    closed = 0
    for display in svc.store.list_displays(floor_id):
        closed += svc.hub.close_display(display.id, CLOSE_RELOAD, "floor layout changed")
    logger.info(
        "floor %s layout saved (version %d); %d kiosk socket(s) reloading",
        floor_id,
        saved.version,
        closed,
    )
    return saved.version


def set_here(svc: Services, display: Display, body: Any) -> list[float] | None:
    """Place (or, with null, unplace) a display's "you are here" on its floor's layout."""
    if not isinstance(body, dict) or "here" not in body:
        raise EditorError(400, 'the body must be a JSON object {"here": [x, y] or null}')
    value = body["here"]
    settings = dict(display.settings)
    if value is None:
        point = None
        settings.pop("here", None)
    else:
        layout = svc.store.get_layout(display.floor_id)
        if layout is None:
            raise EditorError(400, "the display's floor has no layout yet: draw and save it first")
        try:
            point = check_point(value, layout.data, "you are here")
        except LayoutError as exc:
            raise EditorError(400, str(exc)) from exc
        settings["here"] = point
    try:
        svc.store.update_display_settings(display.id, settings)
    except StoreError as exc:
        raise EditorError(404, f"no display {display.id}", "not_found") from exc
    svc.hub.close_display(display.id, CLOSE_RELOAD, "display placed on its floor")
    return point


def live_states(svc: Services, floor_id: str) -> dict[str, Any]:
    """Each room's state as the floor's kiosks see it now (the feed's view)."""
    # A floor Density does not know gets 404, and no feed is started for a junk id.
    ctx = floor_context(svc, floor_id)
    if ctx.spaces is None:
        raise EditorError(503, ctx.error or "Density cannot be reached", "density_unavailable")
    try:
        snapshot = svc.feeds.touch(floor_id, wait=1.0).snapshot()
    except FeedUnavailable as exc:
        # Named after Density's own error (the cause), as the admin has always been told.
        cause = type(exc.__cause__ or exc).__name__
        raise EditorError(
            503, f"Density cannot be reached ({cause})", "density_unavailable"
        ) from exc
    return {
        "mode": snapshot.get("mode"),
        "rooms": {
            sid: {"state": room.get("state"), "name": room.get("name")}
            for sid, room in snapshot.get("rooms", {}).items()
        },
    }


def _who() -> str | None:
    principal = auth.current_principal()
    return principal.label if principal else None


# -- console routes (admin.bp: its guard has already checked sign-in and CSRF) -------------------
@bp.get("/floors/<floor_id>/layout")
def plan_layout(floor_id: str) -> Any:
    """The floor editor's page (its data comes from layout.json)."""
    svc = services()
    try:
        ctx = floor_context(svc, floor_id)
    except EditorError:
        abort(404)
    config = {
        "floor_id": floor_id,
        "data_url": url_for("admin.plan_layout_data", floor_id=floor_id),
        "states_url": url_for("admin.plan_layout_states", floor_id=floor_id),
        "here_url": url_for("admin.display_here", display_id=0).replace("/0/", "/{id}/"),
        "csrf_token": auth.csrf_token(),
    }
    return render_template("admin/plan_edit.html", floor=ctx.floor, config=config)


@bp.get("/floors/<floor_id>/layout.json")
def plan_layout_data(floor_id: str) -> Response:
    """The editor's data: floor, version, layout, plan, rooms and displays."""
    try:
        doc = layout_document(services(), floor_id, url_for("admin.plan_file", floor_id=floor_id))
    except EditorError as exc:
        return exc.response()
    return jsonify(doc)


@bp.route("/floors/<floor_id>/layout.json", methods=["PUT", "POST"])
def plan_layout_save(floor_id: str) -> Response:
    """Save the layout drawn in the editor: {"version": n, "layout": {...}} → {"version": n+1}."""
    try:
        version = save_layout(services(), floor_id, request.get_json(silent=True), _who())
    except EditorError as exc:
        return exc.response()
    return jsonify(version=version)


@bp.get("/floors/<floor_id>/states.json")
def plan_layout_states(floor_id: str) -> Response:
    """Live room states for the editor's preview."""
    try:
        return jsonify(live_states(services(), floor_id))
    except EditorError as exc:
        return exc.response()


@bp.post("/displays/<int:display_id>/here")
def display_here(display_id: int) -> Response:
    """Place a display's "you are here": {"here": [x, y] | null}; its kiosks reload."""
    svc = services()
    display = display_or_404(display_id)
    try:
        point = set_here(svc, display, request.get_json(silent=True))
    except EditorError as exc:
        return exc.response()
    return jsonify(here=point)


# -- the API's OpenAPI entries (signage/web/api.py merges them into its document) --------------
def openapi_schemas() -> dict[str, Any]:
    """Request bodies of the layout routes, as strict as the check they go through."""
    ident = {"type": "string", "pattern": doc._ID.pattern}
    point = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    side = {"type": "number", "minimum": 1, "maximum": doc.MAX_SIDE}
    layout = {
        "type": "object",
        "required": ["width", "height"],
        "properties": {
            "width": side,
            "height": side,
            "metres_across": {
                "anyOf": [
                    {"type": "number", "minimum": 1, "maximum": 10_000},
                    {"type": "null"},
                    {"const": ""},
                ]
            },
            "rooms": {
                "type": "object",
                "maxProperties": doc.MAX_ROOMS,
                "propertyNames": ident,
                "additionalProperties": {
                    "type": "object",
                    "required": ["outline"],
                    "properties": {
                        "outline": {
                            "type": "array",
                            "items": point,
                            "minItems": 3,
                            "maxItems": doc.MAX_OUTLINE_POINTS,
                        },
                        "door": {"anyOf": [point, {"type": "null"}]},
                    },
                },
            },
            "nodes": {
                "type": "array",
                "maxItems": doc.MAX_NODES,
                "items": {
                    "type": "object",
                    "required": ["id", "x", "y"],
                    "properties": {
                        "id": ident,
                        "x": {"type": "number"},
                        "y": {"type": "number"},
                        "kind": {"type": "string", "enum": list(doc.NODE_KINDS)},
                    },
                },
            },
            "edges": {
                "type": "array",
                "maxItems": doc.MAX_EDGES,
                "items": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
        },
    }
    return {
        "Layout": layout,
        "LayoutSave": {
            "type": "object",
            "required": ["version", "layout"],
            "properties": {
                "version": {"type": "integer", "minimum": 0, "maximum": MAX_VERSION - 1},
                "layout": {"$ref": "#/components/schemas/Layout"},
            },
        },
        "Here": {
            "type": "object",
            "required": ["here"],
            "properties": {"here": {"anyOf": [point, {"type": "null"}]}},
        },
    }


def openapi_paths(op: Any) -> dict[str, Any]:
    """The layout routes' entries; `op` is the API's operation builder."""
    error = {"$ref": "#/components/responses/Error"}
    put_layout = op(
        "Save the floor's layout (send the version read; 409 when saved since)",
        body="LayoutSave",
        params=("floor_id",),
    )
    put_layout["responses"].update({"409": error, "503": error})
    return {
        "/floors/{floor_id}/layout": {
            "get": op("The floor's layout, plan, rooms and displays", params=("floor_id",)),
            "put": put_layout,
        },
        "/displays/{display_id}/here": {
            "get": op('Where the display stands ("you are here")', params=("display_id",)),
            "put": op(
                'Place the display on its floor\'s layout ("you are here"); it reloads',
                body="Here",
                params=("display_id",),
            ),
        },
    }
