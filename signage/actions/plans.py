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

from signage.actions import audit
from signage.actions import names as display_names
from signage.core.errors import FeedUnavailable
from signage.core.hub import Hub
from signage.core.layout import LayoutError, check_point, empty_layout, validate_layout
from signage.core.protocol import CLOSE_RELOAD, dumps
from signage.store import Display, Layout, Plan, Store, StoreError, plans
from signage.store.plan_versions import Draft, HereMove, LayoutHistory

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)

_FLOOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_VERSION = 2**62


class LayoutRefused(Exception):
    """A layout request refused: an HTTP status, a message for the admin and an error code."""

    def __init__(
        self,
        status: int,
        message: str,
        error: str = "invalid",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.error = status, message, error
        # More for a program than the message says (a conflict's cause, version, who, when).
        self.details = details or {}

    def answer(self) -> dict[str, Any]:
        """The refusal as a JSON answer's body."""
        return {**self.details, "error": self.error, "message": self.message}


# -- plans -------------------------------------------------------------------------------------
def reload_pages(store: Store, hub: Hub, floor_id: str) -> int:
    """Have every screen of the floor load its page again; how many screens were told.

    A floor's plan and layout are part of the page (its map and routes are drawn when the page
    is rendered), so closing the sockets (the screens reconnect and get a new snapshot, on the
    same page) would leave them on the old ones: they get the `reload` command the console's
    Reload button sends, and reload once the server answers the page."""
    message = dumps({"type": "reload"})
    return sum(hub.command(d.id, message) for d in store.list_displays(floor_id))


def replace_plan(
    store: Store, hub: Hub, config: dict[str, Any], floor_id: str, data: bytes, by: str | None
) -> Plan:
    """Store a floor's plan (SVG is sanitised first; plans.PlanError when refused); the floor's
    screens reload to show it."""
    with audit.change(
        store,
        "plan.replace",
        "plan",
        floor_id,
        floor_id,
        before=audited_plan(store, floor_id),
        after_from="plan",
    ):
        record = plans.store_plan(store, config, floor_id, data, by)
    reload_pages(store, hub, floor_id)
    return record


def audited_plan(store: Store, floor_id: str) -> dict[str, Any] | None:
    """A floor's plan as the audit trail records it (None: the floor has none)."""
    plan = store.get_plan(floor_id)
    if plan is None:
        return None
    return {"content_type": plan.content_type, "size": plan.size, "sha256": plan.sha256}


def remove_plan(store: Store, hub: Hub, config: dict[str, Any], floor_id: str) -> bool:
    """Remove a floor's plan (False: it had none); its screens go back to the schematic."""
    with audit.change(
        store, "plan.remove", "plan", floor_id, floor_id, before=audited_plan(store, floor_id)
    ):
        if not plans.delete_plan(store, config, floor_id):
            return False
    reload_pages(store, hub, floor_id)
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
            {
                "id": r.id,
                "name": r.name,  # Density's; the editor shows display_names (actions/names.py)
                "display_names": display_names.shown(svc, r.id, r.name, False),
                "function": r.function,
                "capacity": r.capacity,
            }
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


def layout_document(
    svc: Services, floor_id: str, plan_url: str, draft: Draft | None = None
) -> dict[str, Any]:
    """Everything the editor loads: floor, version, layout, plan, the floor's rooms, displays.

    With a `draft`, its layout is the one given (and checked for warnings); `version` stays the
    published one.
    """
    ctx = floor_context(svc, floor_id)
    plan = _plan_info(svc, floor_id, plan_url)
    stored = svc.store.get_layout(floor_id)
    drawn = draft.data if draft is not None else stored.data if stored is not None else None
    if drawn is not None:
        layout = drawn
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
    heres = {d.id: here_of(d) for d in displays}
    if draft is not None:
        heres.update({k: v for k, v in draft.here.items() if k in heres})
    for display in displays:
        here = heres[display.id]
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
        "displays": [{"id": d.id, "name": d.name, "here": heres[d.id]} for d in displays],
    }


def version_field(body: dict[str, Any], key: str, what: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_VERSION:
        raise LayoutRefused(400, f"{key} must be the whole number the editor loaded ({what})")
    return value


ROOMS_NEVER_KNOWN = (
    "The floor's rooms have not been loaded from Density yet (it has not answered since this"
    " server was set up), so the layout's rooms cannot be checked: nothing is published until"
    " they are, or a room that left the floor could go on the screens. Try again once Density"
    " answers."
)


def checked_layout(
    svc: Services, floor_id: str, data: Any, *, publishing: bool = False
) -> dict[str, Any]:
    """A layout checked against the floor's rooms, as it will be stored; LayoutRefused 400,
    404 or 503 (new rooms while Density cannot be reached).

    The rooms are the last ones Density listed for the floor (the directory's cached tree, kept
    in the store across restarts: never a call to Density). `publishing`: the layout goes live,
    so when the floor's rooms were never known it is refused (503) rather than trusting the
    rooms it names; a draft may still keep rooms it or the published layout already had."""
    if not isinstance(data, dict):
        raise LayoutRefused(400, "layout must be a JSON object")
    ctx = floor_context(svc, floor_id)
    rooms = data.get("rooms")
    named = set(rooms) if isinstance(rooms, dict) else set()
    known = ctx.space_ids
    if known is None and publishing:
        raise LayoutRefused(503, ROOMS_NEVER_KNOWN, "density_unavailable")
    if known is None:
        # Density is away: rooms already stored (published or drafted) were checked then.
        stored = svc.store.get_layout(floor_id)
        draft = LayoutHistory(svc.store).draft(floor_id)
        known = set(stored.data.get("rooms", {})) if stored else set()
        known |= set(draft.data.get("rooms", {})) if draft else set()
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
        return validate_layout(data, known)
    except LayoutError as exc:
        raise LayoutRefused(400, str(exc)) from exc


def save_layout(svc: Services, floor_id: str, body: Any, updated_by: str | None) -> int:
    """Check and publish a layout sent as {"version": n, "layout": {...}}; the new version.

    The JSON API's way (and the editor's before drafts): live at once, kept as a version. The
    floor's kiosks reload to show it. A draft of the floor is left as it is (publishing it later
    is refused as a conflict, since it was drawn over an older version). LayoutRefused 400 (bad
    layout), 404, 409 (saved by someone else since `version`) or 503 (new rooms while Density
    cannot be reached).
    """
    if not isinstance(body, dict):
        raise LayoutRefused(400, 'the body must be a JSON object {"version": n, "layout": {...}}')
    version = version_field(body, "version", "0 for none")
    clean = checked_layout(svc, floor_id, body.get("layout"), publishing=True)
    saved = publish_layout(
        svc,
        LayoutHistory(svc.store),
        floor_id,
        clean,
        expected_version=version,
        published_by=updated_by,
    )
    closed = reload_pages(svc.store, svc.hub, floor_id)
    logger.info(
        "floor %s layout saved (version %d); %d kiosk socket(s) reloading",
        floor_id,
        saved.version,
        closed,
    )
    return saved.version


def publish_layout(
    svc: Services, history: LayoutHistory, floor_id: str, clean: dict[str, Any], **publish: Any
) -> Layout:
    """Publish a checked layout (`history.publish` with `publish`, "you are here" moves
    included), recorded in the audit trail in the same transaction, the moves with it (each
    display's point before and after); a version or revision conflict is LayoutRefused 409."""
    try:
        stored = svc.store.get_layout(floor_id)
        with audit.change(
            svc.store,
            "layout.publish",
            "layout",
            floor_id,
            floor_id,
            before=audited_layout(stored.data if stored else None, stored),
            after=audited_layout(clean, None),
            after_from="layout",
            only_changes=False,
        ) as entry:

            def moved(moves: list[HereMove]) -> None:
                # Called inside the publish's transaction, before the entry is written.
                entry.before = {**(entry.before or {}), "here": _audited_here(moves, "before")}
                entry.after = {**(entry.after or {}), "here": _audited_here(moves, "after")}

            return history.publish(floor_id, clean, moved=moved, **publish)
    except StoreError as exc:
        raise LayoutRefused(409, str(exc), "conflict") from exc


def _audited_here(moves: list[HereMove], side: str) -> dict[str, Any]:
    """Display id -> its name and "you are here" point on one side of the publish (ids as keys:
    a display's name may hold any word, and the trail drops keys that look like secrets)."""
    return {str(m.display_id): {"display": m.name, "here": getattr(m, side)} for m in moves}


def audited_layout(data: dict[str, Any] | None, stored: Any) -> dict[str, Any] | None:
    """A layout as the audit trail records it: its version and what it holds, counted."""
    if data is None:
        return None
    counts = {k: len(v) for k, v in data.items() if isinstance(v, dict | list)}
    return {**counts, **({"version": stored.version} if stored is not None else {})}


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
        with audit.change(
            svc.store,
            "display.place",
            "display",
            display.id,
            display.name,
            before={"here": display.settings.get("here")},
            after={"here": point},
        ):
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
