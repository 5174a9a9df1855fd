"""The OpenAPI 3.1 document of the JSON admin API (/api/admin/openapi.json).

Bounds and patterns come from the modules that check them (signage/actions/, signage/core/layout,
signage/store/plans), so the document does not promise what the API refuses.
"""

from __future__ import annotations

from typing import Any

from signage.actions import displays as display_actions
from signage.actions.announcements import MAX_BODY, MAX_DURATION_MIN, MAX_TITLE
from signage.actions.plans import MAX_VERSION
from signage.config import __version__
from signage.core import layout as doc
from signage.store import plans
from signage.web import openapi_fleet as fleet_api
from signage.web.admin.audit import openapi_paths as audit_paths
from signage.web.api_drafts import openapi_paths as draft_paths
from signage.web.branding import openapi_paths as branding_paths
from signage.web.calendars import openapi_paths as calendar_paths
from signage.web.names import openapi_paths as names_paths


def _op(summary: str, *, body: str | None = None, ok: str = "200", params: tuple = ()) -> dict:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "OK"},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "403": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
        },
    }
    if params:
        op["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in params]
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return op


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 description of this API."""
    settings_props = {
        "orientation": {"type": "string", "enum": list(display_actions.ORIENTATIONS)},
        "rotation": {"type": "integer", "enum": list(display_actions.ROTATIONS)},
        "theme": {"type": "string", "enum": list(display_actions.THEMES)},
        "brand_color": {"type": "string", "pattern": "^(#[0-9a-fA-F]{6})?$"},
        "logo_url": {"type": "string", "maxLength": display_actions.MAX_URL},
        "language": {"type": "string", "enum": ["en", "de", "fr"]},
        # Patterns and bounds as clean_display checks them, so the document does not promise
        # what the API refuses (found by the schemathesis run in tests/test_api_fuzz.py).
        "functions": {
            "type": "array",
            "maxItems": display_actions.MAX_LIST,
            "items": {"type": "string", "pattern": display_actions.FUNCTION_ID.pattern},
        },
        "min_capacity": {"type": "integer", "minimum": 0, "maximum": 10000},
        "hidden_rooms": {
            "type": "array",
            "maxItems": display_actions.MAX_LIST,
            "items": {"type": "string", "pattern": display_actions.SPACE_ID.pattern},
        },
        "night": {
            "type": ["object", "null"],
            "properties": {  # both empty (or none at all): no night hours
                "start": {"type": "string", "pattern": "^(([01]\\d|2[0-3]):[0-5]\\d)?$"},
                "end": {"type": "string", "pattern": "^(([01]\\d|2[0-3]):[0-5]\\d)?$"},
            },
        },
        "qr": {"type": "boolean"},
        # Bookings (docs/bookings.md): minutes, as clean_display bounds them.
        "booking_margin_min": {"type": "integer", "minimum": 0, "maximum": 240},
        "booking_grace_min": {"type": "integer", "minimum": 0, "maximum": 240},
        "offer_booked_empty": {"type": "boolean"},
        "free_for_min": {"type": "integer", "minimum": 0, "maximum": 480},
    }
    display_input = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": display_actions.MAX_NAME},
            "floor_id": {"type": "string"},
            "density_display_id": {"type": ["string", "null"]},
            "settings": {"type": "object", "properties": settings_props},
            **settings_props,
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "signage admin API", "version": __version__},
        "servers": [{"url": "/api/admin"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "signage admin token create NAME",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "signage_session",
                    "description": "The console's session; unsafe methods also need X-CSRF-Token.",
                },
            },
            "parameters": {
                "display_id": {
                    "name": "display_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer"},
                },
                "building_id": {
                    "name": "building_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": plans._FLOOR_ID.pattern},
                },
                "floor_id": {
                    "name": "floor_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": plans._FLOOR_ID.pattern},
                },
                "space_id": {
                    "name": "space_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": display_actions.SPACE_ID.pattern},
                },
            },
            "schemas": {
                "DisplayCreate": {**display_input, "required": ["name", "floor_id"]},
                "DisplayUpdate": display_input,
                **_layout_schemas(),
                **_announcement_schemas(),
                "FloorOrder": {
                    "type": "object",
                    "required": ["floor_ids"],
                    "properties": {
                        "floor_ids": {
                            "type": "array",
                            "items": {"type": "string"},
                            "uniqueItems": True,
                            "description": "The building's floors, first to last; [] for "
                            "Density's order. Floors left out follow in the order they had.",
                        }
                    },
                },
                "Pair": {
                    "type": "object",
                    "required": ["code", "display_id"],
                    "properties": {"code": {"type": "string"}, "display_id": {"type": "integer"}},
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "fields": {"type": "object"},
                    },
                },
            },
            "responses": {
                "Error": {
                    "description": "An error, explained",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
        "paths": {
            "/me": {"get": _op("The caller")},
            "/displays": {
                "get": _op("List displays"),
                "post": _op("Create a display", body="DisplayCreate", ok="201"),
            },
            "/displays/{display_id}": {
                "get": _op("One display", params=("display_id",)),
                "patch": _op("Change a display", body="DisplayUpdate", params=("display_id",)),
                "put": _op("Change a display", body="DisplayUpdate", params=("display_id",)),
                "delete": _op("Delete a display", ok="204", params=("display_id",)),
            },
            "/displays/{display_id}/revoke": {
                "post": _op(
                    "New credential; open screens return to pairing", params=("display_id",)
                )
            },
            "/displays/{display_id}/revoke-phone": {
                "post": _op(
                    "New phone link (QR code); the old one opens nothing", params=("display_id",)
                )
            },
            "/displays/{display_id}/reload": {
                "post": _op("Reload the display's pages", params=("display_id",))
            },
            "/displays/{display_id}/identify": {
                "post": _op("Flash the display's name on its screens", params=("display_id",))
            },
            "/pair": {"post": _op("Claim a pairing code for a display", body="Pair")},
            "/floors": {"get": fleet_api.floors_op(_op)},
            "/buildings": {"get": _op("Every building with its floors in order")},
            "/buildings/{building_id}/floor-order": {
                "get": _op("A building's floors in order", params=("building_id",)),
                "put": _op(
                    "Set a building's floor order", body="FloorOrder", params=("building_id",)
                ),
            },
            **_layout_paths(_op),
            **draft_paths(_op),
            **_announcement_paths(_op),
            **calendar_paths(_op),
            **audit_paths(_op),
            **names_paths(_op),
            **branding_paths(_op),
            "/floors/{floor_id}/rooms": {"get": fleet_api.rooms_op(_op)},
            **fleet_api.openapi_paths(_op),
            "/floors/{floor_id}/plan": {
                "get": _op("The floor's plan file", params=("floor_id",)),
                "put": {
                    **_op("Upload the floor's plan (SVG, PNG or JPEG)", params=("floor_id",)),
                    "requestBody": {
                        "required": True,
                        "content": {
                            t: {"schema": {"type": "string", "format": "binary"}}
                            for t in ("image/svg+xml", "image/png", "image/jpeg")
                        },
                    },
                },
                "delete": _op("Remove the floor's plan", ok="204", params=("floor_id",)),
            },
            "/fleet": {"get": _op("Fleet health, problems first")},
            "/admins": {"get": _op("Admin accounts (owners only)")},
            "/openapi.json": {"get": _op("This document")},
        },
    }


# -- floor layouts and "you are here" (signage/actions/plans.py) -----------------------------
def _layout_schemas() -> dict[str, Any]:
    """Request bodies of the layout routes, as strict as the check they go through."""
    ident = {"type": "string", "pattern": doc._ID.pattern}
    point = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    side = {"type": "number", "minimum": 1, "maximum": doc.MAX_SIDE}
    layout = {
        "type": "object",
        "required": ["width", "height"],
        "properties": {
            "width": side,
            "height": side,
            "metres_across": {
                "anyOf": [
                    {"type": "number", "minimum": 1, "maximum": 10_000},
                    {"type": "null"},
                    {"const": ""},
                ]
            },
            "rooms": {
                "type": "object",
                "maxProperties": doc.MAX_ROOMS,
                "propertyNames": ident,
                "additionalProperties": {
                    "type": "object",
                    "required": ["outline"],
                    "properties": {
                        "outline": {
                            "type": "array",
                            "items": point,
                            "minItems": 3,
                            "maxItems": doc.MAX_OUTLINE_POINTS,
                        },
                        "door": {"anyOf": [point, {"type": "null"}]},
                    },
                },
            },
            "nodes": {
                "type": "array",
                "maxItems": doc.MAX_NODES,
                "items": {
                    "type": "object",
                    "required": ["id", "x", "y"],
                    "properties": {
                        "id": ident,
                        "x": {"type": "number"},
                        "y": {"type": "number"},
                        "kind": {"type": "string", "enum": list(doc.NODE_KINDS)},
                    },
                },
            },
            "edges": {
                "type": "array",
                "maxItems": doc.MAX_EDGES,
                "items": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
        },
    }
    return {
        "Layout": layout,
        "LayoutSave": {
            "type": "object",
            "required": ["version", "layout"],
            "properties": {
                "version": {"type": "integer", "minimum": 0, "maximum": MAX_VERSION - 1},
                "layout": {"$ref": "#/components/schemas/Layout"},
            },
        },
        "Here": {
            "type": "object",
            "required": ["here"],
            "properties": {"here": {"anyOf": [point, {"type": "null"}]}},
        },
    }


def _layout_paths(op: Any) -> dict[str, Any]:
    """The layout routes' entries; `op` is the API's operation builder."""
    error = {"$ref": "#/components/responses/Error"}
    put_layout = op(
        "Save the floor's layout (send the version read; 409 when saved since)",
        body="LayoutSave",
        params=("floor_id",),
    )
    put_layout["responses"].update({"409": error, "503": error})
    return {
        "/floors/{floor_id}/layout": {
            "get": op("The floor's layout, plan, rooms and displays", params=("floor_id",)),
            "put": put_layout,
        },
        "/displays/{display_id}/here": {
            "get": op('Where the display stands ("you are here")', params=("display_id",)),
            "put": op(
                'Place the display on its floor\'s layout ("you are here"); it reloads',
                body="Here",
                params=("display_id",),
            ),
        },
    }


# -- announcements (signage/actions/announcements.py) ----------------------------------------
def _announcement_schemas() -> dict[str, Any]:
    """The request body of POST /announcements."""
    time_value = {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
        "description": "ISO 8601 with an offset, or Unix seconds",
    }
    return {
        "AnnouncementCreate": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scope", "title"],
            "properties": {
                "scope": {"type": "string", "enum": ["display", "floor", "all"]},
                "target": {
                    "type": ["string", "integer", "null"],
                    "description": "the display id or floor id; none for all",
                },
                "kind": {"type": "string", "enum": ["message", "emergency"]},
                "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE},
                "body": {"type": "string", "maxLength": MAX_BODY},
                "starts_at": time_value,
                "ends_at": time_value,
                "duration_minutes": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_DURATION_MIN,
                },
            },
        }
    }


def _announcement_paths(op: Any) -> dict[str, Any]:
    """The announcement routes."""
    cancel = op("End an announcement now")
    cancel["parameters"] = [
        {
            "name": "announcement_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer"},
        }
    ]
    return {
        "/announcements": {
            "get": op("Current, scheduled and recent announcements"),
            "post": op(
                "Show a banner or an emergency override on screens",
                body="AnnouncementCreate",
                ok="201",
            ),
        },
        "/announcements/{announcement_id}/cancel": {"post": cancel},
    }
