"""Logos served from our own origin, and a display's logo in the JSON admin API.

`/branding/logo/<sha256>.<ext>` is public (a kiosk's <img> loads it without a credential; the
digest names one upload and nothing else) and may be cached for a year: a new logo is a new URL.
It is served with the plans' strictest policy, so an SVG opened on its own runs and fetches
nothing (it was sanitised before it was stored too).

`PUT /api/admin/displays/<id>/logo` takes the file as the request body (image/png or
image/svg+xml), `DELETE` shows no logo again; the accent colour is the display's
`brand_color`, set through the display's own PATCH.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from signage.actions import branding
from signage.store import plans
from signage.store.branding import LOGO_TYPES, MAX_LOGO_BYTES
from signage.web import auth
from signage.web.answers import invalid
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("branding", __name__)
api_bp = Blueprint("api_branding", __name__, url_prefix="/api/admin")
api_bp.before_request(auth.admin_api_guard)

YEAR_S = 365 * 24 * 3600


@bp.get("/branding/logo/<digest>.<any(png, svg):ext>")
def logo(digest: str, ext: str) -> Response:
    """An uploaded logo by the SHA-256 of its bytes, cached for good."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        abort(404)
    found = branding.logo_of(services(), digest)
    if found is None or found.ext != ext:
        abort(404)
    response = Response(found.data, mimetype=found.content_type)
    response.headers["Cache-Control"] = f"public, max-age={YEAR_S}, immutable"
    response.headers["Content-Security-Policy"] = plans.PLAN_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.set_etag(digest)
    return response.make_conditional(request)


def _display(display_id: int) -> Any:
    display = services().store.get_display(display_id)
    if display is None:
        abort(404, f"no display {display_id}")
    return display


def _branding_json(change: branding.BrandingChange) -> dict[str, Any]:
    settings = change.display.settings
    return {
        "display_id": change.display.id,
        "logo_url": settings.get("logo_url", ""),
        "brand_color": settings.get("brand_color", ""),
    }


@api_bp.put("/displays/<int:display_id>/logo")
def put_logo(display_id: int) -> Any:
    """Upload a display's logo (the body is the PNG or SVG file); SVG is sanitised."""
    display = _display(display_id)
    too_big = invalid({"logo": f"a logo may have at most {MAX_LOGO_BYTES // 1000} kB"})
    if (request.content_length or 0) > MAX_LOGO_BYTES:
        return too_big  # said before the body is read: its size is enough to refuse it
    # A chunked body states no length: read at most one byte past the limit (Werkzeug stops
    # there), so 40 MB sent chunked is refused without being held in memory first.
    request.max_content_length = MAX_LOGO_BYTES + 1
    data = request.get_data(cache=False)
    if len(data) > MAX_LOGO_BYTES:
        return too_big
    try:
        change = branding.upload_logo(services(), display, data)
    except branding.Invalid as exc:
        return invalid(exc.errors)
    return jsonify(_branding_json(change))


@api_bp.delete("/displays/<int:display_id>/logo")
def delete_logo(display_id: int) -> Response:
    """Show no logo on a display's screens."""
    branding.remove_logo(services(), _display(display_id))
    return Response(status=204)


def openapi_paths(op: Any) -> dict[str, Any]:
    """The logo routes for the OpenAPI document (web/openapi.py)."""
    put = op("Upload a display's logo (PNG or SVG, at most 512 KB; SVG is sanitised)")
    put["requestBody"] = {
        "required": True,
        "content": {
            t: {"schema": {"type": "string", "format": "binary"}} for t in LOGO_TYPES.values()
        },
    }
    remove = op("Show no logo on a display's screens", ok="204")
    for operation in (put, remove):
        operation["parameters"] = [{"$ref": "#/components/parameters/display_id"}]
    return {"/displays/{display_id}/logo": {"put": put, "delete": remove}}
