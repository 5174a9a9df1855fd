"""The floor editor's pages: rooms, doors, corridors and "you are here" drawn over a floor's plan.

The routes join the console's blueprint (`admin.bp`), so its guard applies before any of them
runs: a signed-in admin, and the session's CSRF token on every unsafe request. What loading and
saving a layout does is signage/actions/plans.py, which the JSON API calls too, so both check
and save layouts the same way.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, abort, jsonify, render_template, request, url_for

from signage.actions import preview
from signage.actions.drafts import (
    discard_draft,
    draft_or_published,
    editor_document,
    publish_draft,
    restore_version,
    save_draft,
)
from signage.actions.plans import (
    LayoutRefused,
    floor_context,
    live_states,
    save_layout,
    set_here,
)
from signage.store import Display, Layout
from signage.store.plan_versions import KEEP_VERSIONS
from signage.web import auth
from signage.web import kiosk as kiosk_pages
from signage.web.admin.base import bp, display_or_404
from signage.web.current import services

logger = logging.getLogger(__name__)


def _refused(exc: LayoutRefused) -> Response:
    """A refusal as JSON: {"error", "message"} (and a conflict's cause) with its status."""
    out = jsonify(exc.answer())
    out.status_code = exc.status
    return out


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
    except LayoutRefused:
        abort(404)
    principal = auth.current_principal()
    config = {
        "floor_id": floor_id,
        "data_url": url_for("admin.plan_layout_data", floor_id=floor_id),
        "states_url": url_for("admin.plan_layout_states", floor_id=floor_id),
        "here_url": url_for("admin.display_here", display_id=0).replace("/0/", "/{id}/"),
        "draft_url": url_for("admin.plan_draft_save", floor_id=floor_id),
        "publish_url": url_for("admin.plan_draft_publish", floor_id=floor_id),
        "discard_url": url_for("admin.plan_draft_discard", floor_id=floor_id),
        "restore_url": url_for("admin.plan_version_restore", floor_id=floor_id, version=0).replace(
            "/0/", "/{version}/"
        ),
        "preview_url": url_for("admin.plan_preview", floor_id=floor_id),
        # Saved and published times in the floor's own zone (the browser may be elsewhere).
        "time_zone": svc.directory.time_zone(floor_id) or "UTC",
        # A viewer may look (and preview) but not save: the page offers no saving then.
        "can_write": bool(principal and principal.can_write),
        "csrf_token": auth.csrf_token(),
    }
    return render_template(
        "admin/plan_edit.html", floor=ctx.floor, config=config, keep=KEEP_VERSIONS
    )


@bp.get("/floors/<floor_id>/layout.json")
def plan_layout_data(floor_id: str) -> Response:
    """The editor's data: floor, published version, the draft's layout (else the published
    one), plan, rooms, displays, the draft's difference and the kept versions."""
    try:
        doc = editor_document(services(), floor_id, url_for("admin.plan_file", floor_id=floor_id))
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(doc)


@bp.route("/floors/<floor_id>/layout.json", methods=["PUT", "POST"])
def plan_layout_save(floor_id: str) -> Response:
    """Save the layout drawn in the editor: {"version": n, "layout": {...}} → {"version": n+1}."""
    try:
        version = save_layout(services(), floor_id, request.get_json(silent=True), _who())
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(version=version)


@bp.put("/floors/<floor_id>/draft.json")
def plan_draft_save(floor_id: str) -> Response:
    """Keep the drawing as the floor's draft (kiosks unchanged):
    {"revision": r, "base_version": v, "layout": {...}, "here": {...}} → the draft."""
    try:
        draft = save_draft(services(), floor_id, request.get_json(silent=True), _who())
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(draft)


@bp.post("/floors/<floor_id>/draft/publish")
def plan_draft_publish(floor_id: str) -> Response:
    """Make the draft live: {"revision": r} → {"version": n}; the floor's screens reload."""
    try:
        version = publish_draft(services(), floor_id, request.get_json(silent=True), _who())
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(version=version)


@bp.post("/floors/<floor_id>/draft/discard")
def plan_draft_discard(floor_id: str) -> Response:
    """Drop the draft: {"revision": r}; the published layout is left as it is."""
    try:
        discard_draft(services(), floor_id, request.get_json(silent=True))
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(discarded=True)


@bp.post("/floors/<floor_id>/versions/<int:version>/restore")
def plan_version_restore(floor_id: str, version: int) -> Response:
    """Take a published version back as the draft: {"revision": r} → the draft."""
    try:
        draft = restore_version(
            services(), floor_id, version, request.get_json(silent=True), _who()
        )
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(draft)


def _preview_display(svc: Any, floor_id: str, wanted: str | None) -> Display:
    """The display a preview shows the floor as (its language, theme, "you are here"): the one
    asked for, else the floor's first; a display of defaults when the floor has none."""
    displays = svc.store.list_displays(floor_id)
    if wanted:
        chosen = next((d for d in displays if str(d.id) == wanted), None)
        if chosen is None:
            abort(404, description="display: not a display of this floor")
        return chosen
    if displays:
        return displays[0]
    return Display(0, "Preview", floor_id, None, 1, {"qr": False})


def _live_links(svc: Any, display: Display) -> dict[str, Any]:
    """How the preview page keeps its states live: a preview credential of the display (read-
    only, ten minutes, never counted as a screen: signage/actions/preview.py) for its socket,
    state fallback and plan. A floor without a display has none: its page shows the states of
    the moment it was rendered, and says it has no live link."""
    if not display.id:
        # Addresses that answer a page without the console's cookie with a sign-in redirect:
        # the page retries quietly (a kiosk address would answer "unknown" and end the page).
        quiet = url_for("admin.plan_layout_states", floor_id=display.floor_id)
        return {"socket": quiet, "state": quiet, "plan": None}
    credential = preview.issue(
        svc.config["SIGNAGE_SECRET_KEY"], display, svc.feeds.clock.time()
    ).credential
    return {
        "socket": f"/ws/kiosk/{credential}",
        "state": f"/api/kiosk/{credential}/state",
        "plan": f"/kiosk/{credential}/plan",
        "hyphens": f"/api/kiosk/{credential}/hyphens",
    }


@bp.get("/floors/<floor_id>/preview")
def plan_preview(floor_id: str) -> Response:
    """The real kiosk page with the floor's draft (else its published layout), for the editor's
    scaled frame: `?display=<id>` (default: the floor's first). The frame's size makes a
    display of automatic orientation landscape or portrait, as a screen of that shape would."""
    svc = services()
    try:
        floor_context(svc, floor_id)
    except LayoutRefused:
        abort(404)
    display = _preview_display(svc, floor_id, request.args.get("display"))
    data, heres = draft_or_published(svc, floor_id)
    here = heres[display.id] if display.id in heres else display.settings.get("here")
    links = _live_links(svc, display)
    config = {
        "mode": "kiosk",
        "socket": links["socket"],
        "state": links["state"],
        "heartbeat_s": svc.config["SIGNAGE_HEARTBEAT_INTERVAL"],
        "sw": None,  # never the kiosk's service worker or saved state in the console's browser
        "storage_key": None,
        "preview": True,
        "qr": None,
        "idle_s": 15,
        "hyphens_url": links.get("hyphens"),
    }
    layout = Layout(floor_id, 0, data) if data is not None else None
    plan_url = links["plan"] or url_for("admin.plan_file", floor_id=floor_id)
    body = kiosk_pages.render_draft(display, config, plan_url, layout, here)
    response = Response(body, mimetype="text/html")
    kiosk_pages.allow_console_frame(response)  # framed by the editor (our own origin) only
    return response


@bp.get("/floors/<floor_id>/states.json")
def plan_layout_states(floor_id: str) -> Response:
    """Live room states for the editor's preview."""
    try:
        return jsonify(live_states(services(), floor_id))
    except LayoutRefused as exc:
        return _refused(exc)


@bp.post("/displays/<int:display_id>/here")
def display_here(display_id: int) -> Response:
    """Place a display's "you are here": {"here": [x, y] | null}; its kiosks reload."""
    svc = services()
    display = display_or_404(display_id)
    try:
        point = set_here(svc, display, request.get_json(silent=True))
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(here=point)
