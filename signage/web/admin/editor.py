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

from signage.actions.plans import (
    LayoutRefused,
    floor_context,
    layout_document,
    live_states,
    save_layout,
    set_here,
)
from signage.web import auth
from signage.web.admin.base import bp, display_or_404
from signage.web.current import services

logger = logging.getLogger(__name__)


def _refused(exc: LayoutRefused) -> Response:
    """A refusal as JSON: {"error", "message"} with its status."""
    out = jsonify(error=exc.error, message=exc.message)
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
