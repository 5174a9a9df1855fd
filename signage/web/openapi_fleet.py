"""The OpenAPI parts of the routes that show displays' screens and names: a display's preview,
and the floor and room lists with each space's display names (web/openapi.py places them)."""

from __future__ import annotations

from typing import Any

from signage import i18n

# {"en": ..., "de": ..., "fr": ...}: what a screen in each language shows for the space (its
# display name for that language, else its default one, else Density's; core/names.py).
DISPLAY_NAMES: dict[str, Any] = {
    "type": "object",
    "description": "The name a screen in each language shows (display names, else Density's)",
    "required": list(i18n.LANGUAGES),
    "properties": {lang: {"type": "string"} for lang in i18n.LANGUAGES},
}


def _answers(op: dict[str, Any], schema: dict[str, Any], description: str = "OK") -> dict:
    op["responses"]["200"] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    return op


def floors_op(op: Any) -> dict[str, Any]:
    """GET /floors: each floor with Density's `name` and its `display_names`."""
    floor = {
        "type": "object",
        "required": ["id", "name", "display_names", "building", "building_id", "has_plan"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string", "description": "Density's name"},
            "display_names": DISPLAY_NAMES,
            "building": {"type": "string"},
            "building_id": {"type": ["string", "null"]},
            "has_plan": {"type": "boolean"},
        },
    }
    answer = {
        "type": "object",
        "required": ["floors", "directory"],
        "properties": {
            "floors": {"type": "array", "items": floor},
            "directory": {"type": "object"},
        },
    }
    return _answers(op("Density's floors, each building's in its order"), answer)


def rooms_op(op: Any) -> dict[str, Any]:
    """GET /floors/{floor_id}/rooms: each room with Density's `name` and its `display_names`."""
    room = {
        "type": "object",
        "required": ["id", "name", "display_names"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string", "description": "Density's name"},
            "display_names": DISPLAY_NAMES,
            "function": {"type": ["string", "null"]},
            "capacity": {"type": ["integer", "null"]},
        },
    }
    answer = {
        "type": "object",
        "required": ["rooms"],
        "properties": {"rooms": {"type": "array", "items": room}},
    }
    return _answers(op("A floor's rooms", params=("floor_id",)), answer)


def openapi_paths(op: Any) -> dict[str, Any]:
    """GET /displays/{display_id}/preview."""
    answer = {
        "type": "object",
        "required": ["display_id", "url", "phone_url", "expires_at"],
        "properties": {
            "display_id": {"type": "integer"},
            "url": {"type": "string", "description": "The kiosk page, as the screens show it"},
            "phone_url": {
                "type": ["string", "null"],
                "description": "The phone view (null when the display's QR code is off)",
            },
            "expires_at": {
                "type": "string",
                "format": "date-time",
                "description": "When both links stop working (UTC, ten minutes on)",
            },
        },
    }
    get = op(
        "Preview what the display's screens show: links that expire and are never counted as a"
        " screen (read-only tokens may ask)",
        params=("display_id",),
    )
    return {"/displays/{display_id}/preview": {"get": _answers(get, answer)}}
