"""Routes on a floor: from a display's "you are here" along the corridors to each room's door.

A floor's layout (signage/core/layout.py) may carry a corridor graph: nodes (corridor, stairs, lift)
joined by straight walkable edges. `PathGraph` is that graph, built once per layout version.
A point off the graph (the display, a room's door, or the room's centroid when it has no door)
joins it by a straight segment to the nearest point on any edge; that snap point splits the edge.
Distances are shortest paths (Dijkstra), so a room in a part of the graph the display cannot
reach has no route at all rather than a made-up one. Without edges, routes are straight lines
and marked approximate.

`kiosk_wayfinding` is what the kiosk page receives; results are cached per layout and position
because a display's page is rendered again on every reload.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import marshal
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

WALK_SPEED_M_S = 1.2  # a relaxed indoor walking pace
EXIT_KINDS = ("stairs", "lift")
CACHE_SIZE = 256
FLOOR_CACHE_SIZE = 16

Point = tuple[float, float]


@dataclass(frozen=True)
class Snap:
    """Where a point joins the graph: the point on the graph, the edge it splits, how far."""

    point: Point
    edge: tuple[str, str] | None  # node ids (a, b); None when snapped onto a lone node
    distance: float
    t: float = 0.0  # position along the edge from a (0) to b (1)
    node: str | None = None  # the node it landed on when the graph has no edges


@dataclass(frozen=True)
class Route:
    """A walk from a start point to a target point along the graph, in plan units."""

    length: float
    points: tuple[Point, ...]


def polygon_centroid(points: Iterable[Iterable[float]]) -> Point:
    """The area-weighted centroid of a simple polygon; the vertex mean when it has no area."""
    pts = [(float(p[0]), float(p[1])) for p in points]
    if not pts:
        raise ValueError("a polygon needs at least one point")
    # Relative to the first vertex: keeps the cross products small and the sums accurate.
    x0, y0 = pts[0]
    xs = [x - x0 for x, _ in pts]
    ys = [y - y0 for _, y in pts]
    area2 = cx = cy = 0.0
    for ax, ay, bx, by in zip(xs, ys, xs[1:] + xs[:1], ys[1:] + ys[:1], strict=True):
        cross = ax * by - bx * ay
        area2 += cross
        cx += (ax + bx) * cross
        cy += (ay + by) * cross
    box_area = max(max(xs) - min(xs), 1e-12) * max(max(ys) - min(ys), 1e-12)
    if abs(area2) <= 1e-9 * box_area:  # collinear or repeated points: no meaningful area
        return (x0 + sum(xs) / len(xs), y0 + sum(ys) / len(ys))
    return (x0 + cx / (3.0 * area2), y0 + cy / (3.0 * area2))


def _project(
    px: float, py: float, ax: float, ay: float, bx: float, by: float
) -> tuple[float, float]:
    """(t, squared distance) of p's nearest point on segment a-b, t in [0, 1]."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0.0:
        t = 0.0
    else:
        t = ((px - ax) * dx + (py - ay) * dy) / length2
        t = 0.0 if t < 0.0 else 1.0 if t > 1.0 else t
    qx, qy = ax + t * dx - px, ay + t * dy - py
    return t, qx * qx + qy * qy


class _Grid:
    """A uniform grid over the edges (or lone nodes) so a snap looks at a few, not thousands."""

    def __init__(self, segments: list[tuple[float, float, float, float]]) -> None:
        self.segments = segments
        xs = [c for s in segments for c in (s[0], s[2])]
        ys = [c for s in segments for c in (s[1], s[3])]
        self.x0, self.y0 = min(xs), min(ys)
        span = max(max(xs) - self.x0, max(ys) - self.y0, 1e-9)
        # About one segment per cell on average; few cells when there are few segments.
        per_side = max(1, min(256, int(math.sqrt(len(segments))) + 1))
        self.cell = span / per_side
        self.nx = int((max(xs) - self.x0) / self.cell) + 1
        self.ny = int((max(ys) - self.y0) / self.cell) + 1
        self.cells: dict[tuple[int, int], list[int]] = {}
        for index, seg in enumerate(segments):
            for key in self._cells_of(*seg):
                self.cells.setdefault(key, []).append(index)

    def _col(self, x: float) -> int:
        return min(self.nx - 1, max(0, int(math.floor((x - self.x0) / self.cell))))

    def _row(self, y: float) -> int:
        return min(self.ny - 1, max(0, int(math.floor((y - self.y0) / self.cell))))

    def _cells_of(self, ax: float, ay: float, bx: float, by: float) -> set[tuple[int, int]]:
        """Every cell the segment passes through, one column at a time (with a hair of margin)."""
        if ax > bx:
            ax, ay, bx, by = bx, by, ax, ay
        eps = self.cell * 1e-6
        out: set[tuple[int, int]] = set()
        for col in range(self._col(ax - eps), self._col(bx + eps) + 1):
            lo_x = max(ax, self.x0 + col * self.cell)
            hi_x = min(bx, self.x0 + (col + 1) * self.cell)
            if bx == ax:
                y1, y2 = ay, by
            else:
                slope = (by - ay) / (bx - ax)
                y1, y2 = ay + (lo_x - ax) * slope, ay + (hi_x - ax) * slope
            if y1 > y2:
                y1, y2 = y2, y1
            for row in range(self._row(y1 - eps), self._row(y2 + eps) + 1):
                out.add((col, row))
        return out

    def nearest(self, px: float, py: float) -> tuple[int, float, float]:
        """(segment index, t, distance) of the segment nearest to p."""
        col = int(math.floor((px - self.x0) / self.cell))
        row = int(math.floor((py - self.y0) / self.cell))
        # A point outside the grid starts at the first ring that touches it.
        start = max(0, -col, col - (self.nx - 1), -row, row - (self.ny - 1))
        last = max(col, self.nx - 1 - col, row, self.ny - 1 - row)
        best = (-1, 0.0, math.inf)
        seen: set[int] = set()
        for ring in range(start, last + 1):
            for key in self._ring(col, row, ring):
                for index in self.cells.get(key, ()):
                    if index in seen:
                        continue
                    seen.add(index)
                    t, d2 = _project(px, py, *self.segments[index])
                    # Ties go to the lower index so that a snap never depends on visiting order.
                    if d2 < best[2] or (d2 == best[2] and index < best[0]):
                        best = (index, t, d2)
            # Anything not yet seen lies in rings beyond this one: at least ring * cell away.
            if best[0] >= 0 and math.sqrt(best[2]) < ring * self.cell:
                break
        return best[0], best[1], math.sqrt(best[2])

    def _ring(self, col: int, row: int, ring: int) -> Iterable[tuple[int, int]]:
        if ring == 0:
            return [(col, row)]
        cells = []
        for c in range(max(0, col - ring), min(self.nx - 1, col + ring) + 1):
            for r in (row - ring, row + ring):
                if 0 <= r < self.ny:
                    cells.append((c, r))
        for r in range(max(0, row - ring + 1), min(self.ny - 1, row + ring - 1) + 1):
            for c in (col - ring, col + ring):
                if 0 <= c < self.nx:
                    cells.append((c, r))
        return cells


class PathGraph:
    """A floor's corridor graph: immutable once built, safe to share between threads."""

    def __init__(
        self,
        nodes: Iterable[tuple[str, float, float, str]],
        edges: Iterable[tuple[str, str]],
    ) -> None:
        node_list = list(nodes)
        self.ids: tuple[str, ...] = tuple(n[0] for n in node_list)
        self.xy: tuple[Point, ...] = tuple((float(n[1]), float(n[2])) for n in node_list)
        self.kinds: tuple[str, ...] = tuple(n[3] for n in node_list)
        self.index: dict[str, int] = {node_id: i for i, node_id in enumerate(self.ids)}
        adjacency: list[list[tuple[int, float]]] = [[] for _ in node_list]
        edge_list: list[tuple[int, int, float]] = []
        pairs: set[frozenset[int]] = set()
        for a_id, b_id in edges:
            a, b = self.index[a_id], self.index[b_id]
            if a == b or frozenset((a, b)) in pairs:
                continue
            pairs.add(frozenset((a, b)))
            length = math.dist(self.xy[a], self.xy[b])
            edge_list.append((a, b, length))
            adjacency[a].append((b, length))
            adjacency[b].append((a, length))
        self.edges: tuple[tuple[int, int, float], ...] = tuple(edge_list)
        self.adjacency: tuple[tuple[tuple[int, float], ...], ...] = tuple(map(tuple, adjacency))
        if self.edges:
            segments = [(*self.xy[a], *self.xy[b]) for a, b, _ in self.edges]
        else:  # lone nodes: degenerate segments, so a snap finds the nearest node
            segments = [(x, y, x, y) for x, y in self.xy]
        self._grid = _Grid(segments) if segments else None

    @classmethod
    def from_layout(cls, layout: Mapping[str, Any]) -> PathGraph:
        """The graph of a validated layout document (signage/core/layout.py)."""
        nodes = [
            (n["id"], n["x"], n["y"], n.get("kind", "corridor")) for n in layout.get("nodes") or []
        ]
        edges = [(e[0], e[1]) for e in layout.get("edges") or []]
        return cls(nodes, edges)

    @property
    def has_edges(self) -> bool:
        """True when there is at least one corridor to walk along."""
        return bool(self.edges)

    def snap(self, point: Iterable[float]) -> Snap | None:
        """The nearest point on any edge (or the nearest node when there are no edges)."""
        px, py = (float(c) for c in point)
        if self._grid is None:
            return None
        index, t, distance = self._grid.nearest(px, py)
        if not self.edges:
            return Snap(self.xy[index], None, distance, 0.0, self.ids[index])
        a, b, _ = self.edges[index]
        (ax, ay), (bx, by) = self.xy[a], self.xy[b]
        spot = (ax + t * (bx - ax), ay + t * (by - ay))
        return Snap(spot, (self.ids[a], self.ids[b]), distance, t)

    # -- shortest paths ----------------------------------------------------------------------
    def _entries(self, snap: Snap) -> list[tuple[int, float]]:
        """The graph nodes a snap point reaches directly, with the distance along its edge."""
        if snap.edge is None:
            return [(self.index[snap.node], 0.0)] if snap.node is not None else []
        a, b = self.index[snap.edge[0]], self.index[snap.edge[1]]
        length = math.dist(self.xy[a], self.xy[b])
        return [(a, snap.t * length), (b, (1.0 - snap.t) * length)]

    def _dijkstra(
        self,
        seeds: list[tuple[int, float]],
        wanted: set[int] | None = None,
        kinds: Iterable[str] = (),
    ) -> tuple[list[float], list[int], dict[str, int]]:
        """Distances, predecessors (-1: a seed) and the nearest node of each kind, from seeds.

        With `wanted`, the search stops once those nodes and one node of each kind are settled:
        nodes settle nearest first, so the first of a kind is the nearest.
        """
        dist = [math.inf] * len(self.ids)
        prev = [-1] * len(self.ids)
        heap: list[tuple[float, int]] = []
        for node, d in seeds:
            if d < dist[node]:
                dist[node] = d
                heapq.heappush(heap, (d, node))
        remaining = set(wanted) if wanted is not None else None
        looking = set(kinds)
        nearest: dict[str, int] = {}
        done = [False] * len(self.ids)
        adjacency, node_kinds = self.adjacency, self.kinds
        while heap:
            d, node = heapq.heappop(heap)
            if done[node]:
                continue
            done[node] = True
            if node_kinds[node] in looking:
                looking.discard(node_kinds[node])
                nearest[node_kinds[node]] = node
            if remaining is not None:
                remaining.discard(node)
                if not remaining and not looking:
                    break
            for other, length in adjacency[node]:
                nd = d + length
                if nd < dist[other]:
                    dist[other] = nd
                    prev[other] = node
                    heapq.heappush(heap, (nd, other))
        return dist, prev, nearest

    def _walk_back(self, node: int, prev: list[int]) -> list[Point]:
        chain = []
        while node != -1:
            chain.append(self.xy[node])
            node = prev[node]
        chain.reverse()
        return chain

    def survey(
        self,
        start: Iterable[float],
        targets: Mapping[Hashable, Iterable[float]],
        kinds: Iterable[str] = (),
    ) -> tuple[dict[Hashable, Route | None], dict[str, tuple[str, Route]]]:
        """Routes to many targets and to the nearest node of each kind, in one Dijkstra run.

        A target the start cannot reach maps to None; a kind with no reachable node is absent.
        """
        start_pt = _pair(start)
        target_pts = {key: _pair(p) for key, p in targets.items()}
        routes: dict[Hashable, Route | None] = dict.fromkeys(target_pts)
        found: dict[str, tuple[str, Route]] = {}
        start_snap = self.snap(start_pt)
        if start_snap is None:
            return routes, found
        target_snaps = {key: self.snap(p) for key, p in target_pts.items()}
        wanted = {node for s in target_snaps.values() if s for node, _ in self._entries(s)}
        seeds = [(n, start_snap.distance + d) for n, d in self._entries(start_snap)]
        dist, prev, nearest = self._dijkstra(seeds, wanted, kinds)
        head = [start_pt, start_snap.point]
        for key, snap in target_snaps.items():
            if snap is None:
                continue
            best: tuple[float, list[Point]] | None = None
            if _same_place(start_snap, snap):
                # Both on one edge (or one lone node): straight along it, not via its ends.
                along = math.dist(start_snap.point, snap.point)
                best = (start_snap.distance + along, [*head, snap.point])
            for node, d in self._entries(snap):
                total = dist[node] + d
                if total < math.inf and (best is None or total < best[0]):
                    best = (total, [*head, *self._walk_back(node, prev), snap.point])
            if best is not None:
                routes[key] = Route(best[0] + snap.distance, (*best[1], target_pts[key]))
        for kind, node in nearest.items():
            found[kind] = (self.ids[node], Route(dist[node], (*head, *self._walk_back(node, prev))))
        return routes, found

    def routes_from(
        self, start: Iterable[float], targets: Mapping[Hashable, Iterable[float]]
    ) -> dict[Hashable, Route | None]:
        """Shortest routes from one point to many, in one Dijkstra run; None where unreachable."""
        return self.survey(start, targets)[0]

    def route(self, start: Iterable[float], target: Iterable[float]) -> Route | None:
        """The shortest route from start to target, or None when they are not connected."""
        return self.routes_from(start, {0: target})[0]

    def nearest_of_kind(
        self, start: Iterable[float], kinds: Iterable[str]
    ) -> dict[str, tuple[str, Route]]:
        """For each kind, (node id, Route) of the nearest reachable node of it, if any."""
        return self.survey(start, {}, kinds)[1]


def _pair(point: Iterable[float]) -> Point:
    x, y = point
    return (float(x), float(y))


def _same_place(a: Snap, b: Snap) -> bool:
    if a.edge is None or b.edge is None:
        return a.edge is None and b.edge is None and a.node == b.node
    return a.edge == b.edge


def simplify(points: Iterable[Point], tolerance: float = 0.05) -> list[Point]:
    """The polyline without repeated points and without interior points on a straight run."""
    out: list[Point] = []
    for p in points:
        if out and math.dist(out[-1], p) <= tolerance:
            continue
        while len(out) >= 2 and _on_the_way(out[-2], out[-1], p, tolerance):
            out.pop()
        out.append(p)
    return out


def _on_the_way(a: Point, b: Point, c: Point, tolerance: float) -> bool:
    """True when b lies on segment a-c (within tolerance): dropping it keeps the same walk."""
    ax, ay = a
    cx, cy = c
    length = math.dist(a, c)
    if length == 0.0:
        return False
    off_line = abs((cx - ax) * (b[1] - ay) - (cy - ay) * (b[0] - ax)) / length
    along = ((b[0] - ax) * (cx - ax) + (b[1] - ay) * (cy - ay)) / length
    return off_line <= tolerance and -tolerance <= along <= length + tolerance


def _r(value: float) -> float:
    return round(value, 1)


def _rp(point: Iterable[float]) -> list[float]:
    x, y = point
    return [_r(x), _r(y)]


def _measure(units: float, metres_per_unit: float | None) -> dict[str, Any]:
    if metres_per_unit is None:
        return {"units": _r(units), "m": None, "s": None}
    metres = units * metres_per_unit
    # Rounded up (a kiosk should not promise less), but float noise such as 30 / 1.2 =
    # 25.000000000000004 must not add a second.
    seconds = math.ceil(metres / WALK_SPEED_M_S - 1e-9)
    return {"units": _r(units), "m": _r(metres), "s": seconds}


def _route_json(route: Route, metres_per_unit: float | None) -> dict[str, Any]:
    points = [_rp(p) for p in simplify(route.points)]
    if len(points) == 1:  # standing on the spot: still a drawable (if empty) line
        points.append(list(points[0]))
    return {**_measure(route.length, metres_per_unit), "points": points}


def _here(here: Any) -> Point | None:
    """The display's position if it is a usable pair of numbers, else None (not placed)."""
    if not isinstance(here, list | tuple) or len(here) != 2:
        return None
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in here):
        return None
    if not all(math.isfinite(c) for c in here):
        return None
    return (float(here[0]), float(here[1]))


@dataclass(frozen=True)
class FloorWays:
    """What a layout version gives every display on the floor: the graph and the rooms."""

    graph: PathGraph
    width: float
    height: float
    metres_per_unit: float | None
    # JSON-ready outlines, doors and centres, packed: a tenth of the memory of the objects, and
    # each caller unpacks its own copy.
    rooms_packed: bytes
    targets: dict[str, Point]  # where a route to each room ends: its door, else its centre
    # Every stairs and lift node, drawn on the kiosk's plan whether or not it can be reached.
    landmarks: tuple[tuple[str, str, float, float], ...] = ()  # (kind, node id, x, y)

    def landmark_list(self) -> list[dict[str, Any]]:
        """The stairs and lifts of the floor for the kiosk, in the layout's order."""
        return [{"kind": k, "id": i, "x": x, "y": y} for k, i, x, y in self.landmarks]

    def rooms(self) -> dict[str, Any]:
        """A fresh copy of the rooms for the kiosk: outline, door and centre of each."""
        return marshal.loads(self.rooms_packed)

    @classmethod
    def from_layout(cls, layout: Mapping[str, Any]) -> FloorWays:
        """The graph and room geometry of a validated layout document."""
        width, height = float(layout["width"]), float(layout["height"])
        metres_across = layout.get("metres_across")
        rooms: dict[str, Any] = {}
        targets: dict[str, Point] = {}
        for space_id, room in (layout.get("rooms") or {}).items():
            center = polygon_centroid(room["outline"])
            door = room.get("door")
            rooms[space_id] = {
                "outline": [[round(x, 1), round(y, 1)] for x, y in room["outline"]],
                "door": None if door is None else _rp(door),
                "center": _rp(center),
            }
            targets[space_id] = _pair(door) if door is not None else center
        graph = PathGraph.from_layout(layout)
        return cls(
            graph=graph,
            width=width,
            height=height,
            metres_per_unit=float(metres_across) / width if metres_across else None,
            rooms_packed=marshal.dumps(rooms),
            targets=targets,
            landmarks=landmarks_of(graph),
        )


def landmarks_of(graph: PathGraph) -> tuple[tuple[str, str, float, float], ...]:
    """(kind, node id, x, y) of every stairs or lift node, at the admin's own coordinates."""
    return tuple(
        (kind, node_id, x, y)
        for node_id, (x, y), kind in zip(graph.ids, graph.xy, graph.kinds, strict=True)
        if kind in EXIT_KINDS
    )


def compute_wayfinding(
    layout: Mapping[str, Any], here: Point | None, version: int, floor: FloorWays | None = None
) -> dict[str, Any]:
    """What kiosk_wayfinding returns, computed afresh (no cache)."""
    floor = floor if floor is not None else FloorWays.from_layout(layout)
    graph, scale = floor.graph, floor.metres_per_unit
    approximate = not graph.has_edges
    routes: dict[str, Any] = {}
    exits: list[dict[str, Any]] = []
    unreachable: list[str] = []
    shown_here: list[float] | None = None
    if here is not None and approximate:
        shown_here = _rp(here)
        for space_id, target in floor.targets.items():
            routes[space_id] = _route_json(Route(math.dist(here, target), (here, target)), scale)
        # Lone stairs and lifts still help as the crow flies.
        nearest: dict[str, tuple[float, str, Point]] = {}
        for node_id, xy, kind in zip(graph.ids, graph.xy, graph.kinds, strict=True):
            candidate = (math.dist(here, xy), node_id, xy)
            if kind in EXIT_KINDS and (kind not in nearest or candidate < nearest[kind]):
                nearest[kind] = candidate
        for kind in EXIT_KINDS:
            if kind in nearest:
                d, node_id, xy = nearest[kind]
                exits.append(
                    {"kind": kind, "id": node_id, **_route_json(Route(d, (here, xy)), scale)}
                )
    elif here is not None:
        snap = graph.snap(here)
        assert snap is not None  # a graph with edges always snaps
        shown_here = _rp(snap.point)
        # The kiosk draws "you are here" on the corridor: lines and lengths start there.
        found, nearest_exits = graph.survey(snap.point, floor.targets, EXIT_KINDS)
        for space_id, route in found.items():
            if route is None:
                unreachable.append(space_id)
            else:
                routes[space_id] = _route_json(route, scale)
        for kind in EXIT_KINDS:
            if kind in nearest_exits:
                node_id, route = nearest_exits[kind]
                exits.append({"kind": kind, "id": node_id, **_route_json(route, scale)})
    return {
        "version": version,
        "width": floor.width,
        "height": floor.height,
        "metres_per_unit": scale,
        "approximate": approximate,
        "here": shown_here,
        "rooms": floor.rooms(),
        "routes": routes,
        "exits": exits,
        "unreachable": sorted(unreachable),
        "landmarks": floor.landmark_list(),
    }


class _LRU:
    """A small least-recently-used map guarded by a lock (kiosk pages render on many threads)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


_results = _LRU(CACHE_SIZE)
_floors = _LRU(FLOOR_CACHE_SIZE)
_building: dict[str, threading.Lock] = {}
_building_lock = threading.Lock()


def layout_fingerprint(layout: Mapping[str, Any]) -> str:
    """A digest of the layout's content: a cache key that cannot outlive an edit."""
    try:
        # marshal writes plain JSON data (dicts, lists, floats) byte for byte, ten times faster
        # than json.dumps; it is only ever hashed here, never read back. Format 2 because later
        # ones mark objects shared by reference, so equal layouts could give different bytes.
        data = marshal.dumps(layout, 2)
    except ValueError:  # something marshal cannot write: a slower but general digest
        data = json.dumps(layout, sort_keys=True, default=repr).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def clear_cache() -> None:
    """Forget every cached floor and result."""
    _results.clear()
    _floors.clear()


def _floor_for(fingerprint: str, layout: Mapping[str, Any]) -> FloorWays:
    """The floor's cached graph and rooms, built once even when many kiosks ask at once."""
    floor = _floors.get(fingerprint)
    if floor is not None:
        return floor
    # A saved layout reloads every kiosk on the floor together: one builds, the others wait.
    with _building_lock:
        lock = _building.setdefault(fingerprint, threading.Lock())
    try:
        with lock:
            floor = _floors.get(fingerprint)
            if floor is None:
                floor = FloorWays.from_layout(layout)
                _floors.put(fingerprint, floor)
            return floor
    finally:
        with _building_lock:
            _building.pop(fingerprint, None)


def kiosk_wayfinding(
    layout: Mapping[str, Any] | None, here: Any, version: int = 0
) -> dict[str, Any] | None:
    """The kiosk's wayfinding data for a display at `here`, or None without a layout."""
    if layout is None:
        return None
    spot = _here(here)
    # Keyed by content as well as version: two floors at the same version never share an entry,
    # and a redrawn layout (whose version starts over after a removal) is never answered from
    # the old one's.
    fingerprint = layout_fingerprint(layout)
    key = (fingerprint, version, spot)
    entry: tuple[FloorWays | None, bytes] | None = _results.get(key)
    if entry is None:
        try:
            floor = _floor_for(fingerprint, layout)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            # Saved layouts pass validate_layout; one that does not (an old or hand-edited row)
            # leaves the kiosk on its room tiles rather than failing the page.
            logger.warning("layout version %s cannot be used for wayfinding: %r", version, exc)
            _results.put(key, (None, b""))  # remembered, so the warning is not repeated per page
            return None
        result = compute_wayfinding(layout, spot, version, floor)
        # Only what depends on "you are here" is kept per display; the rooms live in the floor.
        result["rooms"] = None
        entry = (floor, marshal.dumps(result))
        _results.put(key, entry)
    floor, packed = entry
    if floor is None:
        return None
    # Unpacked on every call: each caller gets its own copy and cannot change the next one's.
    result = marshal.loads(packed)
    result["rooms"] = floor.rooms()
    return result
