"""Console pages for floor plans: upload, replace, remove, and the stored file itself.

`plan_response` serves a stored plan for the console, the JSON API and the kiosks alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for

from signage.actions import floor_order
from signage.actions.displays import Invalid, floor_choices, floor_label
from signage.actions.drafts import drafts_summary, local_time
from signage.actions.plans import remove_plan, replace_plan
from signage.store import plans
from signage.web import auth
from signage.web.admin.base import ask_first, bp
from signage.web.current import services

logger = logging.getLogger(__name__)


def plan_response(plan_record: Any) -> Response:
    """A plan file with the strictest policy: opened on its own, it runs and fetches nothing."""
    data = plans.read_plan(services().config, plan_record)
    if data is None:
        abort(404)
    response = Response(data, mimetype=plan_record.content_type)
    response.headers["Content-Security-Policy"] = plans.PLAN_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    suffix = Path(plan_record.filename).suffix[1:]
    response.headers["Content-Disposition"] = f'inline; filename="plan.{suffix}"'
    response.set_etag(plan_record.sha256)
    return response.make_conditional(request)


@bp.get("/plans")
def plans_page() -> str:
    """Every floor with its plan, and an upload form for each."""
    svc = services()
    choices, floor_error = floor_choices(svc.directory)
    recorded = {p.floor_id: p for p in svc.store.list_plans()}

    def floor_time(value: str | None, floor_id: str) -> str:
        # Upload and draft times in the floor's own zone, named (UTC when Density gives none),
        # as the editor's messages write them.
        return local_time(svc, floor_id, value) if value else ""

    return render_template(
        "admin/plans.html",
        choices=choices,
        floor_time=floor_time,
        human_size=plans.human_size,
        floor_error=floor_error,
        plans=recorded,
        drafts=drafts_summary(svc),
        max_size=plans.human_size(int(svc.config["SIGNAGE_PLAN_MAX_BYTES"])),
        errors=request.args.get("error", ""),
    )


@bp.post("/plans/<floor_id>")
def plan_upload(floor_id: str) -> Any:
    """Upload a floor's plan (SVG is sanitised before it is stored)."""
    svc = services()
    upload = request.files.get("plan")
    if upload is None or not upload.filename:
        flash("Choose a file to upload.", "warn")
        return redirect(url_for("admin.plans_page"))
    principal = auth.current_principal()
    who = principal.name if principal else None
    try:
        replace_plan(svc.store, svc.hub, svc.config, floor_id, upload.read(), who)
    except plans.PlanError as exc:
        return Response(render_template("admin/plan_refused.html", message=str(exc)), status=400)
    flash("Plan stored.", "ok")
    return redirect(url_for("admin.plans_page"))


@bp.post("/plans/<floor_id>/delete")
def plan_delete(floor_id: str) -> Response:
    """Remove a floor's plan (its screens go back to the automatic schematic), once the page
    asking whether to was answered (one Enter on the plans page removes nothing)."""
    svc = services()
    if svc.store.get_plan(floor_id) is None:
        abort(404)
    asking = ask_first(
        title="Remove this floor's plan?",
        text="Its screens go back to the automatic schematic drawn from Density's rooms"
        " within seconds. A plan can be uploaded again at any time.",
        subject=floor_label(svc.directory, floor_id),
        button="Remove plan",
        cancel=url_for("admin.plans_page"),
    )
    if asking is not None:
        return asking
    if not remove_plan(svc.store, svc.hub, svc.config, floor_id):
        abort(404)
    flash("Plan removed.", "ok")
    return redirect(url_for("admin.plans_page"))


@bp.get("/plans/order")
def plan_order() -> str:
    """Each building's floors in order, with Up and Down buttons (forms: keyboard and no JS)."""
    svc = services()
    _, floor_error = floor_choices(svc.directory)
    return render_template(
        "admin/plan_order.html",
        buildings=floor_order.buildings(svc),
        floor_error=floor_error,
        moved=request.args.get("moved", ""),
        direction=request.args.get("dir", ""),
    )


@bp.post("/plans/order/<building_id>/<floor_id>/<any(up, down):direction>")
def plan_order_move(building_id: str, floor_id: str, direction: str) -> Response:
    """Move a floor up or down in its building's order."""
    try:
        moved = floor_order.move_floor(
            services(), building_id, floor_id, -1 if direction == "up" else 1
        )
    except Invalid:
        abort(404)
    if moved is None:
        abort(404)
    # Back with the focus on the same button, so a keyboard user can press it again (no
    # fragment: a browser skips autofocus when the address names an element).
    return redirect(url_for("admin.plan_order", moved=floor_id, dir=direction))


@bp.post("/plans/order/<building_id>/reset")
def plan_order_reset(building_id: str) -> Response:
    """Go back to the order Density lists the building's floors in."""
    if floor_order.set_floor_order(services(), building_id, []) is None:
        abort(404)
    flash("Floors back in Density's order.", "ok")
    return redirect(url_for("admin.plan_order", _anchor=f"order-{building_id}"))


@bp.get("/plans/<floor_id>/file")
def plan_file(floor_id: str) -> Response:
    """The stored plan file (signed-in admins only)."""
    plan_record = services().store.get_plan(floor_id)
    if plan_record is None:
        abort(404)
    return plan_response(plan_record)
