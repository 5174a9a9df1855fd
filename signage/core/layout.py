"""A floor's layout: what an admin draws over its plan, and the check every save goes through.

The document (JSON, one per floor, stored by `Store.put_layout`):

    {
      "width": 1200, "height": 800,        # the coordinate space: the plan's own size
      "metres_across": 48.0,               # how wide `width` is in metres (sets the scale)
      "rooms": {                           # keyed by Density space id
        "spc_1": {"outline": [[x, y], ...], "door": [x, y] or null}
      },
      "nodes": [{"id": "n1", "x": 10, "y": 20, "kind": "corridor" | "stairs" | "lift"}],
      "edges": [["n1", "n2"], ...]          # walkable corridor segments between nodes
    }

Coordinates are in plan units with the origin top left, as in SVG. A display's "you are here"
is in the same units, in the display's settings (`here`: [x, y]). signage/core/wayfinding.py turns
the document into routes.

Everything an admin's browser sends is checked here, with a message that says what is wrong;
sizes are capped so that a layout stays small enough to send to every kiosk.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_ROOMS = 500
MAX_OUTLINE_POINTS = 200
MAX_NODES = 2000
MAX_EDGES = 5000
MAX_SIDE = 100_000.0  # plan units
NODE_KINDS = ("corridor", "stairs", "lift")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class LayoutError(ValueError):
    """A layout refused, with a message for the admin."""


def empty_layout(width: float = 1000.0, height: float = 700.0) -> dict[str, Any]:
    """A blank layout of the given size (the editor's starting point)."""
    return {
        "width": width,
        "height": height,
        "metres_across": None,
        "rooms": {},
        "nodes": [],
        "edges": [],
    }


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LayoutError(f"{what} must be a number")
    if not low <= value <= high:
        raise LayoutError(f"{what} must be between {low:g} and {high:g}")
    return round(float(value), 2)


def _point(value: Any, what: str, width: float, height: float) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise LayoutError(f"{what} must be a pair [x, y]")
    return [_number(value[0], f"{what} x", 0, width), _number(value[1], f"{what} y", 0, height)]


def check_point(value: Any, layout: dict[str, Any], what: str = "the point") -> list[float]:
    """A point (such as a display's "you are here") checked against a layout's bounds."""
    return _point(value, what, layout["width"], layout["height"])


def validate_layout(data: Any, known_spaces: set[str] | None = None) -> dict[str, Any]:
    """The layout as it will be stored, or LayoutError saying what is wrong.

    `known_spaces`, when given, are the floor's Density space ids: a room outline must name one.
    """
    if not isinstance(data, dict):
        raise LayoutError("the layout must be a JSON object")
    width = _number(data.get("width"), "width", 1, MAX_SIDE)
    height = _number(data.get("height"), "height", 1, MAX_SIDE)
    metres = data.get("metres_across")
    metres = None if metres in (None, "") else _number(metres, "metres across", 1, 10_000)

    rooms_in = data.get("rooms", {})
    if not isinstance(rooms_in, dict):
        raise LayoutError("rooms must be an object keyed by space id")
    if len(rooms_in) > MAX_ROOMS:
        raise LayoutError(f"at most {MAX_ROOMS} rooms")
    rooms: dict[str, Any] = {}
    for space_id, room in rooms_in.items():
        if not isinstance(space_id, str) or not _ID.match(space_id):
            raise LayoutError("a room's space id is not valid")
        if known_spaces is not None and space_id not in known_spaces:
            raise LayoutError(f"space {space_id} is not a room on this floor")
        if not isinstance(room, dict):
            raise LayoutError(f"room {space_id} must be an object")
        outline = room.get("outline")
        if not isinstance(outline, list) or not 3 <= len(outline) <= MAX_OUTLINE_POINTS:
            raise LayoutError(f"room {space_id}: an outline needs 3 to {MAX_OUTLINE_POINTS} points")
        points = [_point(p, f"room {space_id} point", width, height) for p in outline]
        door = room.get("door")
        rooms[space_id] = {
            "outline": points,
            "door": None if door is None else _point(door, f"room {space_id} door", width, height),
        }

    nodes_in = data.get("nodes", [])
    if not isinstance(nodes_in, list) or len(nodes_in) > MAX_NODES:
        raise LayoutError(f"nodes must be a list of at most {MAX_NODES}")
    nodes: list[dict[str, Any]] = []
    seen: set[str] = set()
    for node in nodes_in:
        if not isinstance(node, dict):
            raise LayoutError("each node must be an object")
        node_id = node.get("id")
        if not isinstance(node_id, str) or not _ID.match(node_id):
            raise LayoutError("a node's id is not valid")
        if node_id in seen:
            raise LayoutError(f"node {node_id} appears twice")
        seen.add(node_id)
        kind = node.get("kind", "corridor")
        if kind not in NODE_KINDS:
            raise LayoutError(f"node {node_id}: kind must be one of {', '.join(NODE_KINDS)}")
        x, y = _point([node.get("x"), node.get("y")], f"node {node_id}", width, height)
        nodes.append({"id": node_id, "x": x, "y": y, "kind": kind})

    edges_in = data.get("edges", [])
    if not isinstance(edges_in, list) or len(edges_in) > MAX_EDGES:
        raise LayoutError(f"edges must be a list of at most {MAX_EDGES}")
    edges: list[list[str]] = []
    pairs: set[frozenset[str]] = set()
    for edge in edges_in:
        if (
            not isinstance(edge, list | tuple)
            or len(edge) != 2
            or not all(isinstance(e, str) for e in edge)
        ):
            raise LayoutError("each edge must be a pair of node ids")
        a, b = edge
        if a not in seen or b not in seen:
            raise LayoutError(f"edge {a}-{b} names a node that does not exist")
        if a == b:
            raise LayoutError(f"edge {a}-{b} joins a node to itself")
        pair = frozenset((a, b))
        if pair not in pairs:  # a duplicate segment is harmless: keep one
            pairs.add(pair)
            edges.append([a, b])

    return {
        "width": width,
        "height": height,
        "metres_across": metres,
        "rooms": rooms,
        "nodes": nodes,
        "edges": edges,
    }
