"""JSON answers the admin APIs share (web/api.py, branding, names, calendars, audit)."""

from __future__ import annotations

from flask import Response, jsonify


def invalid(errors: dict[str, str]) -> Response:
    """400 naming each bad field: {"error": "invalid", "message": ..., "fields": {...}}."""
    message = "; ".join(f"{field}: {text}" for field, text in errors.items())
    response = jsonify(error="invalid", message=message, fields=errors)
    response.status_code = 400
    return response
