"""Kiosk pages and the HTTP fallback: the same state as the socket, as JSON with an ETag."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, jsonify, render_template, request

from signage import __version__
from signage.density.errors import DensityError
from signage.services import services
from signage.store import Display
from signage.web.sockets import display_public, kiosk_snapshot

logger = logging.getLogger(__name__)

bp = Blueprint("kiosk", __name__)


def _display_or_404(credential: str) -> Display:
    display = services().store.display_for_credential(credential)
    if display is None:
        abort(404)
    return display


@bp.get("/")
def index() -> str:
    """The server's front page: what this is and where the screens go."""
    return render_template("kiosk/index.html", version=__version__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return jsonify(status="ok", version=__version__)


@bp.get("/kiosk/<credential>")
def kiosk_page(credential: str) -> str:
    """A display's page: rendered with the current state, kept live by the socket."""
    svc = services()
    display = _display_or_404(credential)
    try:
        snapshot = kiosk_snapshot(svc.feeds.touch(display.floor_id), display)
    except DensityError:
        logger.warning("kiosk page for display %s rendered without data", display.id)
        snapshot = None
    return render_template(
        "kiosk/kiosk.html",
        display=display_public(display),
        snapshot=snapshot,
        socket_path=f"/ws/kiosk/{credential}",
        state_path=f"/api/kiosk/{credential}/state",
        version=__version__,
    )


@bp.get("/api/kiosk/<credential>/state")
def kiosk_state(credential: str) -> Response:
    """The display's snapshot as JSON; `If-None-Match` answers 304 while nothing changed."""
    svc = services()
    display = _display_or_404(credential)
    try:
        snapshot = kiosk_snapshot(svc.feeds.touch(display.floor_id), display)
    except DensityError as exc:
        return jsonify(error="density_unavailable", message=str(exc)), 503
    etag = f'{snapshot["epoch"]}-{snapshot["seq"]}-{snapshot["feed"]}-{display.updated_at}'
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = jsonify(snapshot)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response
