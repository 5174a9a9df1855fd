"""Floor plans and layouts as the console and the JSON API change them: what storing or removing
a plan does to the floor's screens, and the floor editor's document (rooms, doors, corridors and
"you are here" drawn over the plan), checked and saved the same way for both.

Saving a layout is optimistic: the editor sends the version it loaded, and a layout saved by
someone else since then is refused (409) rather than overwritten. Outlines of spaces that are
not rooms of the floor any more are refused by name, so the admin gives them to a room or
deletes them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signage.core.errors import FeedUnavailable
from signage.core.hub import Hub
from signage.core.layout import LayoutError, check_point, empty_layout, validate_layout
from signage.core.protocol import CLOSE_RELOAD
from signage.store import Display, Plan, Store, StoreError, plans

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)

_FLOOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_VERSION = 2**62


class LayoutRefused(Exception):
    """A layout request refused: an HTTP status, a message for the admin and an error code."""

    def __init__(self, status: int, message: str, error: str = "invalid") -> None:
        super().__init__(message)
        self.status, self.message, self.error = status, message, error


# -- plans -------------------------------------------------------------------------------------
def _reload_floor(store: Store, hub: Hub, floor_id: str, reason: str) -> int:
    """Have every screen of a floor's displays reconnect for what changed; how many sockets."""
    return sum(
        hub.close_display(display.id, CLOSE_RELOAD, reason)
        for display in store.list_displays(floor_id)
    )


def replace_plan(
    store: Store, hub: Hub, config: dict[str, Any], floor_id: str, data: bytes, by: str | None
) -> Plan:
    """Store a floor's plan (SVG is sanitised first; plans.PlanError when refused); the floor's
    screens reload to show it."""
    record = plans.store_plan(store, config, floor_id, data, by)
    _reload_floor(store, hub, floor_id, "floor plan changed")
    return record


def remove_plan(store: Store, hub: Hub, config: dict[str, Any], floor_id: str) -> bool:
    """Remove a floor's plan (False: it had none); its screens go back to the schematic."""
    if not plans.delete_plan(store, config, floor_id):
        return False
    _reload_floor(store, hub, floor_id, "floor plan changed")
    return True


# -- layouts -----------------------------------------------------------------------------------
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
    """The floor and its rooms from Density; LayoutRefused 404 when Density does not know it."""
    if not _FLOOR_ID.match(floor_id):
        raise LayoutRefused(404, "no such floor", "not_found")
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
        raise LayoutRefused(404, "no such floor", "not_found")
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

    The floor's kiosks reload to show it. LayoutRefused 400 (bad layout), 404, 409 (saved by
    someone else since `version`) or 503 (new rooms while Density cannot be reached).
    """
    if not isinstance(body, dict):
        raise LayoutRefused(400, 'the body must be a JSON object {"version": n, "layout": {...}}')
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < MAX_VERSION:
        raise LayoutRefused(400, "version must be the whole number the editor loaded (0 for none)")
    data = body.get("layout")
    if not isinstance(data, dict):
        raise LayoutRefused(400, "layout must be a JSON object")
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
            raise LayoutRefused(
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
            raise LayoutRefused(
                400,
                "not rooms of this floor (any more): "
                + ", ".join(unknown[:10])
                + more
                + "; give their outlines to rooms of this floor or delete them, and save again",
            )
    try:
        clean = validate_layout(data, known)
    except LayoutError as exc:
        raise LayoutRefused(400, str(exc)) from exc
    try:
        saved = svc.store.put_layout(floor_id, clean, updated_by, expected_version=version)
    except StoreError as exc:
        raise LayoutRefused(409, str(exc), "conflict") from exc
    closed = _reload_floor(svc.store, svc.hub, floor_id, "floor layout changed")
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
        raise LayoutRefused(400, 'the body must be a JSON object {"here": [x, y] or null}')
    value = body["here"]
    settings = dict(display.settings)
    if value is None:
        point = None
        settings.pop("here", None)
    else:
        layout = svc.store.get_layout(display.floor_id)
        if layout is None:
            raise LayoutRefused(
                400, "the display's floor has no layout yet: draw and save it first"
            )
        try:
            point = check_point(value, layout.data, "you are here")
        except LayoutError as exc:
            raise LayoutRefused(400, str(exc)) from exc
        settings["here"] = point
    try:
        svc.store.update_display_settings(display.id, settings)
    except StoreError as exc:
        raise LayoutRefused(404, f"no display {display.id}", "not_found") from exc
    svc.hub.close_display(display.id, CLOSE_RELOAD, "display placed on its floor")
    return point


def live_states(svc: Services, floor_id: str) -> dict[str, Any]:
    """Each room's state as the floor's kiosks see it now (the feed's view)."""
    # A floor Density does not know gets 404, and no feed is started for a junk id.
    ctx = floor_context(svc, floor_id)
    if ctx.spaces is None:
        raise LayoutRefused(503, ctx.error or "Density cannot be reached", "density_unavailable")
    try:
        snapshot = svc.feeds.touch(floor_id, wait=1.0).snapshot()
    except FeedUnavailable as exc:
        # Named after Density's own error (the cause), as the admin has always been told.
        cause = type(exc.__cause__ or exc).__name__
        raise LayoutRefused(
            503, f"Density cannot be reached ({cause})", "density_unavailable"
        ) from exc
    return {
        "mode": snapshot.get("mode"),
        "rooms": {
            sid: {"state": room.get("state"), "name": room.get("name")}
            for sid, room in snapshot.get("rooms", {}).items()
        },
    }
