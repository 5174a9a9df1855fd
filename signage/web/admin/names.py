"""Console pages for display names: every floor with what its screens call it, and one page
per floor to rename it and its rooms, as a default and per language (actions/names.py)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for

from signage import i18n
from signage.actions import names as actions
from signage.actions.displays import SPACE_ID
from signage.web.admin.base import bp
from signage.web.admin.displays import LANGUAGE_NAMES
from signage.web.current import services

logger = logging.getLogger(__name__)

FIELD_NAMES = {"default": "Default", **LANGUAGE_NAMES}


@bp.get("/names")
def names_page() -> str:
    """Every floor Density lists: its display names and how many of its rooms have one."""
    svc = services()
    actions.refresh(svc)
    return render_template(
        "admin/names.html",
        floors=actions.overview(svc),
        languages=i18n.LANGUAGES,
        language_names=LANGUAGE_NAMES,
    )


def _floor_entry(floor_id: str) -> dict[str, Any]:
    if not SPACE_ID.match(floor_id):
        abort(404)
    for floor in actions.overview(services()):
        if floor["id"] == floor_id:
            return floor
    abort(404)


@bp.route("/names/<floor_id>", methods=["GET", "POST"])
def names_floor(floor_id: str) -> Any:
    """Rename a floor and its rooms: one form, a row per space, a column per language."""
    svc = services()
    actions.refresh(svc)
    floor = _floor_entry(floor_id)
    spaces = [floor, *floor["rooms"]]
    errors: dict[str, str] = {}
    typed: dict[str, dict[str, str]] = {}
    if request.method == "POST":
        cleaned: dict[str, dict[str, str]] = {}
        for space in spaces:
            data = {f: request.form.get(f"{space['id']}.{f}", "") for f in actions.FIELDS}
            typed[space["id"]] = data
            try:
                cleaned[space["id"]] = actions.clean_names(data)
            except actions.Invalid as exc:
                for field, message in exc.errors.items():
                    label = FIELD_NAMES.get(field, field)
                    errors[f"{space['id']}.{field}"] = (
                        f"{label} name of “{space['density_name']}”: {message}"
                    )
        if not errors:
            changed = 0
            for space in spaces:
                if cleaned[space["id"]] != space["names"]:
                    actions.set_names(svc, space["id"], cleaned[space["id"]])
                    changed += 1
            if changed:
                flash(f"Saved names of {changed} space(s). The screens showing them reload.", "ok")
            else:
                flash("Nothing changed.", "ok")
            return redirect(url_for("admin.names_floor", floor_id=floor_id))
    body = render_template(
        "admin/names_floor.html",
        floor=floor,
        spaces=spaces,
        fields=actions.FIELDS,
        field_names=FIELD_NAMES,
        errors=errors,
        typed=typed,
        max_name=actions.MAX_NAME,
    )
    return Response(body, status=400 if errors else 200)
