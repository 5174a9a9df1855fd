"""Operations: readiness, Prometheus metrics, and the URL converter for ids."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.routing import IntegerConverter

from signage.web import metrics as app_metrics
from signage.web.current import services

bp = Blueprint("ops", __name__)


@bp.get("/readyz")
def readyz() -> Response:
    """Ready to serve kiosks: 503 only while starting or shutting down.

    Feeds on fallback or stale and a briefly unreachable database do not make the server
    unready: kiosks are better served by a server that says so than by none.
    """
    svc = services()
    if svc.shutting_down or not svc.ready:
        response = jsonify(status="shutting down" if svc.shutting_down else "starting")
        response.status_code = 503
        return response
    return jsonify(status="ready")


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; behind a bearer token when SIGNAGE_METRICS_TOKEN is set."""
    svc = services()
    token = svc.config.get("SIGNAGE_METRICS_TOKEN") or ""
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            abort(401)
    return Response(generate_latest(app_metrics.registry()), mimetype=CONTENT_TYPE_LATEST)


class IdConverter(IntegerConverter):
    """`<int:…>` of at most 18 digits, so every id fits the database's 64-bit integers.

    werkzeug's own int converter takes any number of digits, and a query with an id past
    2**63 - 1 raises OverflowError (SQLite) or an out-of-range error (PostgreSQL): a 500 the
    schemathesis run in tests/test_api_fuzz.py found. A longer id now matches no route: 404.
    (A `max` would reject it only after the path matched, which werkzeug answers with 405.)
    """

    regex = r"\d{1,18}"
