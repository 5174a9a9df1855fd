"""A drawn floor for `signage demo`: a plan, room outlines, corridors and "you are here".

The demo's first floor gets what an admin would draw in the floor editor, so the kiosk shows
the plan map, walking distances and a route from the first run. Rooms sit on both sides of
one corridor, each with its door on the corridor; stairs at one end, a lift at the other.
"""

from __future__ import annotations

from typing import Any

from signage.core.layout import validate_layout
from signage.density.models import Space

WIDTH, HEIGHT = 1600.0, 900.0
MARGIN = 60.0
CORRIDOR_Y = 450.0  # centre line of the corridor
CORRIDOR_HALF = 45.0
METRES_ACROSS = 64.0
HERE = [MARGIN + 40.0, CORRIDOR_Y]


def demo_floor(rooms: list[Space]) -> tuple[bytes, dict[str, Any]]:
    """The plan (SVG bytes) and the layout document for a floor with these rooms."""
    rooms = sorted(rooms, key=lambda r: (-(r.capacity or 1), r.name or r.id))[:24]
    top, bottom = rooms[0::2], rooms[1::2]
    inner = WIDTH - 2 * MARGIN - 160.0  # room for stairs and lift at the ends
    outlines: dict[str, Any] = {}
    walls: list[str] = []
    nodes = [
        {"id": "stairs", "x": MARGIN + 20.0, "y": CORRIDOR_Y, "kind": "stairs"},
        {"id": "lift", "x": WIDTH - MARGIN - 20.0, "y": CORRIDOR_Y, "kind": "lift"},
    ]
    bands = {
        "top": (MARGIN, CORRIDOR_Y - CORRIDOR_HALF),
        "bottom": (CORRIDOR_Y + CORRIDOR_HALF, HEIGHT - MARGIN),
    }
    for row, band in ((top, bands["top"]), (bottom, bands["bottom"])):
        if not row:
            continue
        weights = [max(1, r.capacity or 1) ** 0.5 + 1 for r in row]
        x = MARGIN + 80.0
        for room, weight in zip(row, weights, strict=True):
            w = inner * weight / sum(weights)
            x0, x1, (y0, y1) = x + 6, x + w - 6, band
            door_y = y1 if y1 <= CORRIDOR_Y else y0
            outlines[room.id] = {
                "outline": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
                "door": [round((x0 + x1) / 2, 1), door_y],
            }
            walls.append(
                f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}"/>'
            )
            x += w
    # Corridor nodes under every door, so routes turn into each room at its door.
    xs = sorted({round(r["door"][0], 1) for r in outlines.values()})
    nodes += [
        {"id": f"c{i}", "x": x, "y": CORRIDOR_Y, "kind": "corridor"} for i, x in enumerate(xs)
    ]
    chain = ["stairs", *(f"c{i}" for i in range(len(xs))), "lift"]
    edges = [[a, b] for a, b in zip(chain, chain[1:], strict=False)]
    layout = validate_layout(
        {
            "width": WIDTH,
            "height": HEIGHT,
            "metres_across": METRES_ACROSS,
            "rooms": outlines,
            "nodes": nodes,
            "edges": edges,
        }
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH:g} {HEIGHT:g}">'
        f'<rect width="{WIDTH:g}" height="{HEIGHT:g}" fill="#f4f2ee"/>'
        f'<rect x="{MARGIN / 2:g}" y="{MARGIN / 2:g}" width="{WIDTH - MARGIN:g}"'
        f' height="{HEIGHT - MARGIN:g}" fill="none" stroke="#3a3835" stroke-width="12"/>'
        f'<rect x="{MARGIN:g}" y="{CORRIDOR_Y - CORRIDOR_HALF:g}" width="{WIDTH - 2 * MARGIN:g}"'
        f' height="{2 * CORRIDOR_HALF:g}" fill="#e4e0d8"/>'
        f'<g fill="#fbfaf7" stroke="#8a857c" stroke-width="3">{"".join(walls)}</g>'
        "</svg>"
    ).encode()
    return svg, layout
