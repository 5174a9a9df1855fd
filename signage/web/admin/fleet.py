"""The console's fleet page: every display, floor feed and sensor, what needs looking at first."""

from __future__ import annotations

import logging

from flask import render_template, request

from signage.actions.displays import floor_choices
from signage.actions.fleet import FILTERS, filter_report, fleet_status
from signage.web.admin.base import bp
from signage.web.current import services

logger = logging.getLogger(__name__)


@bp.get("/fleet")
def fleet() -> str:
    """One page: counts at the top, then displays, floor feeds and sensors; filtered by the
    query string (`show`: down, stale or sensors; `floor`), so the filters need no script."""
    svc = services()
    show = request.args.get("show", "")
    show = show if show in FILTERS else ""
    floor = request.args.get("floor", "")
    report = filter_report(fleet_status(svc), show, floor)
    choices, _ = floor_choices(svc.directory)
    return render_template(
        "admin/fleet.html",
        fleet=report,
        counts=report["counts"],  # of the floor chosen, if one is
        show=show,
        floor=floor,
        choices=choices,
    )
