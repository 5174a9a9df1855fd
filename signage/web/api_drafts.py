"""A floor's draft and its kept versions through the JSON admin API, as the floor editor has them.

The same use cases as the editor's routes (signage/actions/drafts.py): a draft is saved without
touching the screens, published in one transaction with its "you are here" moves, discarded, and
a kept version restored as the draft. Its own blueprint under /api/admin, behind the admin API's
guard (a token or the console's session; a viewer is refused every write with 403).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from signage.actions.drafts import (
    discard_draft,
    draft_document,
    publish_draft,
    restore_version,
    save_draft,
    version_document,
    versions_document,
)
from signage.actions.plans import MAX_VERSION, LayoutRefused
from signage.web import auth
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("api_drafts", __name__, url_prefix="/api/admin")
bp.before_request(auth.admin_api_guard)


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(exc: LayoutRefused) -> Response:
    """A refusal as JSON ({"error", "message"}, a conflict's cause) with the status it names."""
    response = jsonify(exc.answer())
    response.status_code = exc.status
    return response


def _body() -> Any:
    """The JSON body (the use case names what is wrong with anything else)."""
    return request.get_json(silent=True)


def _who() -> str | None:
    principal = auth.current_principal()
    return principal.label if principal else None


@bp.get("/floors/<floor_id>/draft")
def draft_get(floor_id: str) -> Any:
    """The floor's draft: revision, base version, layout, "you are here" moves, what it changes
    and the rooms in it that left the floor; 404 when there is none."""
    try:
        return jsonify(draft_document(services(), floor_id))
    except LayoutRefused as exc:
        return _refused(exc)


@bp.put("/floors/<floor_id>/draft")
def draft_put(floor_id: str) -> Any:
    """Save the draft: {"revision": r (0: none yet), "base_version": v, "layout": {...},
    "here": {...}}; the screens are untouched. 409 says whether it was published or saved
    by someone else since."""
    try:
        return jsonify(save_draft(services(), floor_id, _body(), _who()))
    except LayoutRefused as exc:
        return _refused(exc)


@bp.delete("/floors/<floor_id>/draft")
def draft_delete(floor_id: str) -> Any:
    """Discard the draft at `?revision=r` (or {"revision": r}); the published layout stays."""
    raw = request.args.get("revision")
    if raw is not None:
        if not raw.isascii() or not raw.isdigit() or int(raw) >= MAX_VERSION:
            abort(400, "revision must be the draft's revision, a whole number")
        body: Any = {"revision": int(raw)}
    else:
        body = _body()
    try:
        discard_draft(services(), floor_id, body)
    except LayoutRefused as exc:
        return _refused(exc)
    return "", 204


@bp.post("/floors/<floor_id>/draft/publish")
def draft_publish(floor_id: str) -> Any:
    """Publish the draft: {"revision": r, "base_version": v (optional)} -> {"version": n}; the
    layout and its "you are here" moves go live together and the floor's screens reload."""
    try:
        version = publish_draft(services(), floor_id, _body(), _who())
    except LayoutRefused as exc:
        return _refused(exc)
    return jsonify(version=version)


@bp.get("/floors/<floor_id>/versions")
def versions_list(floor_id: str) -> Any:
    """The kept published versions, newest first, with who published each and when (UTC)."""
    try:
        return jsonify(versions_document(services(), floor_id))
    except LayoutRefused as exc:
        return _refused(exc)


@bp.get("/floors/<floor_id>/versions/<int:version>")
def version_get(floor_id: str, version: int) -> Any:
    """One kept version with its layout."""
    try:
        return jsonify(version_document(services(), floor_id, version))
    except LayoutRefused as exc:
        return _refused(exc)


@bp.post("/floors/<floor_id>/versions/<int:version>/restore")
def version_restore(floor_id: str, version: int) -> Any:
    """Take a kept version back as the draft: {"revision": r (the draft's, 0: none)} -> the
    draft (not live until published; rooms that left the floor are named in its "gone")."""
    try:
        return jsonify(restore_version(services(), floor_id, version, _body(), _who()))
    except LayoutRefused as exc:
        return _refused(exc)


def openapi_paths(op: Any) -> dict[str, Any]:
    """The draft and version routes for the OpenAPI document (web/openapi.py)."""
    error = {"$ref": "#/components/responses/Error"}
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }

    def with_body(entry: dict[str, Any], schema: dict[str, Any], *extra: str) -> dict[str, Any]:
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
        for status in extra:
            entry["responses"][status] = error
        return entry

    def revision(what: str) -> dict[str, Any]:
        return {"type": "integer", "minimum": 0, "maximum": MAX_VERSION - 1, "description": what}

    point = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
    save = {
        "type": "object",
        "required": ["revision", "base_version", "layout"],
        "properties": {
            "revision": revision("the draft's revision read, 0 when there is none"),
            "base_version": revision("the published version read, 0 when none"),
            "layout": {"$ref": "#/components/schemas/Layout"},
            "here": {
                "type": "object",
                "description": 'display id -> "you are here" point, or null to unplace',
                "additionalProperties": {"anyOf": [point, {"type": "null"}]},
            },
        },
    }
    publish = {
        "type": "object",
        "required": ["revision"],
        "properties": {
            "revision": revision("the draft's revision read"),
            "base_version": revision("the published version read (names a conflict's cause)"),
        },
    }
    by_revision = {
        "type": "object",
        "required": ["revision"],
        "properties": {"revision": revision("the draft's revision read, 0 when there is none")},
    }
    discard = op("Discard the floor's draft", ok="204", params=("floor_id",))
    discard["parameters"].append(
        {
            "name": "revision",
            "in": "query",
            "required": False,
            "description": 'the draft\'s revision (or a body {"revision": r})',
            "schema": revision("the draft's revision read"),
        }
    )
    discard["responses"]["409"] = error
    restore = op("Take a kept version back as the draft (not live)", params=("floor_id",))
    restore["parameters"].append(version_param)
    one = op("One kept version with its layout", params=("floor_id",))
    one["parameters"].append(version_param)
    return {
        "/floors/{floor_id}/draft": {
            "get": op("The floor's draft (404: none)", params=("floor_id",)),
            "put": with_body(
                op("Save the floor's draft (screens untouched)", params=("floor_id",)),
                save,
                "409",
                "503",
            ),
            "delete": discard,
        },
        "/floors/{floor_id}/draft/publish": {
            "post": with_body(
                op(
                    'Publish the draft with its "you are here" moves; screens reload',
                    params=("floor_id",),
                ),
                publish,
                "409",
                "503",
            )
        },
        "/floors/{floor_id}/versions": {
            "get": op("The floor's kept published versions", params=("floor_id",))
        },
        "/floors/{floor_id}/versions/{version}": {"get": one},
        "/floors/{floor_id}/versions/{version}/restore": {
            "post": with_body(restore, by_revision, "409")
        },
    }
