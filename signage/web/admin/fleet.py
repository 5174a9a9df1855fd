"""The console's fleet page: every display, floor feed and sensor, problems first."""

from __future__ import annotations

import logging

from flask import render_template

from signage.actions.fleet import fleet_status
from signage.web.admin.base import bp
from signage.web.current import services

logger = logging.getLogger(__name__)


@bp.get("/fleet")
def fleet() -> str:
    """One page: every display, floor feed and sensor, problems first."""
    return render_template("admin/fleet.html", fleet=fleet_status(services()))
