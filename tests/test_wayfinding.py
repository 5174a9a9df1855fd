"""Wayfinding: snapping onto corridors, shortest routes, exits, and what a kiosk receives."""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signage.core import wayfinding
from signage.core.layout import validate_layout
from signage.core.wayfinding import (
    WALK_SPEED_M_S,
    PathGraph,
    kiosk_wayfinding,
    polygon_centroid,
    simplify,
)
from signage.store import Store, StoreError


def make_layout(
    nodes: Sequence[tuple[Any, ...]] = (),
    edges: Sequence[tuple[str, str]] = (),
    rooms: dict[str, Any] | None = None,
    metres_across: float | None = None,
    width: float = 1000,
    height: float = 700,
) -> dict[str, Any]:
    """A layout document as an admin would save it: through the real check."""
    return validate_layout(
        {
            "width": width,
            "height": height,
            "metres_across": metres_across,
            "rooms": rooms or {},
            "nodes": [
                {"id": n[0], "x": n[1], "y": n[2], "kind": n[3] if len(n) > 3 else "corridor"}
                for n in nodes
            ],
            "edges": [list(e) for e in edges],
        }
    )


def box(x: float, y: float, w: float = 20, h: float = 20, door: Any = None) -> dict[str, Any]:
    """A rectangular room outline, with its door if given."""
    return {"outline": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]], "door": door}


def path_length(points: Any) -> float:
    """The length of a polyline."""
    return sum(math.dist(a, b) for a, b in zip(points, points[1:], strict=False))


@pytest.fixture(autouse=True)
def fresh_cache():
    wayfinding.clear_cache()
    yield
    wayfinding.clear_cache()


# -- two corridors: north (long) and south (short) from W to E -----------------------------
TWO_WAYS = make_layout(
    nodes=[
        ("w", 100, 300),
        ("nw", 100, 100),
        ("ne", 900, 100),
        ("e", 900, 300),
        ("sw", 100, 400),
        ("se", 900, 400),
    ],
    edges=[("w", "nw"), ("nw", "ne"), ("ne", "e"), ("w", "sw"), ("sw", "se"), ("se", "e")],
    rooms={"spc_e": box(920, 290, door=[920, 300])},
)


def test_shortest_path_picks_the_shorter_of_two_corridors():
    graph = PathGraph.from_layout(TWO_WAYS)
    route = graph.route((100, 300), (920, 300))
    assert route is not None
    # North: 200 + 800 + 200; south: 100 + 800 + 100; then the 20-unit spur to the door.
    assert route.length == pytest.approx(1020)
    assert (100.0, 400.0) in route.points and (900.0, 400.0) in route.points
    assert (100.0, 100.0) not in route.points

    out = kiosk_wayfinding(TWO_WAYS, [100, 300], 1)
    assert out["routes"]["spc_e"]["points"] == [
        [100.0, 300.0],
        [100.0, 400.0],
        [900.0, 400.0],
        [900.0, 300.0],
        [920.0, 300.0],
    ]
    assert out["routes"]["spc_e"]["units"] == 1020.0


def test_route_length_equals_the_sum_of_its_segments():
    rnd = random.Random(7)
    nodes = [(f"n{i}", rnd.uniform(0, 1000), rnd.uniform(0, 700)) for i in range(40)]
    edges = [(f"n{i}", f"n{rnd.randrange(i)}") for i in range(1, 40)]  # a random tree
    edges += [(f"n{rnd.randrange(40)}", f"n{rnd.randrange(40)}") for _ in range(30)]
    edges = [e for e in edges if e[0] != e[1]]
    rooms = {f"spc_{i}": box(rnd.uniform(0, 970), rnd.uniform(0, 670)) for i in range(10)}
    layout = make_layout(nodes, edges, rooms)
    graph = PathGraph.from_layout(layout)
    here = (rnd.uniform(0, 1000), rnd.uniform(0, 700))
    targets = {k: polygon_centroid(r["outline"]) for k, r in layout["rooms"].items()}
    found = graph.routes_from(here, targets)
    assert all(r is not None for r in found.values())
    for key, route in found.items():
        assert route.points[0] == here and route.points[-1] == targets[key]
        assert route.length == pytest.approx(path_length(route.points), rel=1e-9)

    out = kiosk_wayfinding(layout, list(here), 1)
    for info in out["routes"].values():
        # Rounded to 0.1 unit per coordinate: the drawn line's length matches within that.
        assert info["units"] == pytest.approx(path_length(info["points"]), abs=0.1 * 20)


def test_a_room_in_another_part_of_the_graph_has_no_route_and_is_listed_unreachable():
    layout = make_layout(
        nodes=[("a", 100, 100), ("b", 400, 100), ("c", 600, 500), ("d", 900, 500)],
        edges=[("a", "b"), ("c", "d")],
        rooms={"near": box(200, 120, door=[210, 120]), "far": box(700, 520, door=[710, 520])},
    )
    graph = PathGraph.from_layout(layout)
    assert graph.route((150, 90), (710, 520)) is None
    assert graph.route((150, 90), (210, 120)) is not None

    out = kiosk_wayfinding(layout, [150, 90], 2)
    assert out["unreachable"] == ["far"]
    assert set(out["routes"]) == {"near"}
    assert "far" in out["rooms"]  # still drawn, just not routed to


def test_snap_onto_the_middle_of_an_edge_an_endpoint_and_beyond_its_end():
    graph = PathGraph.from_layout(make_layout([("a", 100, 100), ("b", 500, 100)], [("a", "b")]))
    middle = graph.snap((300, 160))
    assert middle.point == pytest.approx((300, 100))
    assert middle.distance == pytest.approx(60)
    assert middle.edge == ("a", "b") and middle.t == pytest.approx(0.5)

    on_end = graph.snap((100, 100))
    assert on_end.point == pytest.approx((100, 100)) and on_end.distance == 0

    beyond = graph.snap((530, 140))  # past b: the nearest point is b itself
    assert beyond.point == pytest.approx((500, 100))
    assert beyond.distance == pytest.approx(50)
    assert beyond.t == 1.0


def test_a_snap_point_splits_its_edge():
    graph = PathGraph.from_layout(
        make_layout([("a", 0, 0), ("b", 1000, 0), ("c", 1000, 500)], [("a", "b"), ("b", "c")])
    )
    # From a quarter of the way along a-b to c: 750 to b, then 500 down, not via a.
    route = graph.route((250, 10), (1000, 500))
    assert route.length == pytest.approx(10 + 750 + 500)
    assert route.points == ((250, 10), (250, 0), (1000, 0), (1000, 500), (1000, 500))


def test_two_points_on_the_same_edge_walk_straight_along_it():
    graph = PathGraph.from_layout(make_layout([("a", 0, 100), ("b", 1000, 100)], [("a", "b")]))
    route = graph.route((400, 80), (600, 130))
    # 20 to the corridor, 200 along it, 30 to the door; not out to a or b and back.
    assert route.length == pytest.approx(250)
    assert (0.0, 100.0) not in route.points and (1000.0, 100.0) not in route.points

    out = kiosk_wayfinding(
        make_layout(
            [("a", 0, 100), ("b", 1000, 100)], [("a", "b")], {"r": box(590, 130, door=[600, 130])}
        ),
        [400, 80],
        1,
    )
    assert out["here"] == [400.0, 100.0]
    assert out["routes"]["r"]["units"] == 230.0  # drawn from the marker on the corridor
    assert out["routes"]["r"]["points"] == [[400.0, 100.0], [600.0, 100.0], [600.0, 130.0]]


def test_a_graph_with_nodes_but_no_edges():
    layout = make_layout(
        nodes=[("a", 100, 100), ("s", 800, 600, "stairs")],
        rooms={"r": box(120, 120, door=[130, 120])},
        metres_across=100,
    )
    graph = PathGraph.from_layout(layout)
    assert not graph.has_edges
    snap = graph.snap((90, 130))
    assert snap.edge is None and snap.node == "a"
    assert snap.point == (100.0, 100.0)
    assert snap.distance == pytest.approx(math.dist((90, 130), (100, 100)))
    # Both ends at the same lone node: through it; ends at different ones: not connected.
    assert graph.route((90, 130), (130, 120)).length == pytest.approx(
        math.dist((90, 130), (100, 100)) + math.dist((100, 100), (130, 120))
    )
    assert graph.route((90, 130), (790, 590)) is None

    # A kiosk gets straight lines, marked approximate, and the nearest stairs as the crow flies.
    out = kiosk_wayfinding(layout, [90, 130], 1)
    assert out["approximate"] is True
    assert out["here"] == [90.0, 130.0]
    assert out["routes"]["r"]["points"] == [[90.0, 130.0], [130.0, 120.0]]
    assert [e["kind"] for e in out["exits"]] == ["stairs"]
    assert out["exits"][0]["points"] == [[90.0, 130.0], [800.0, 600.0]]


def test_no_graph_at_all_gives_straight_lines_marked_approximate():
    layout = make_layout(rooms={"r": box(300, 400, door=None), "q": box(10, 10, door=[30, 20])})
    assert PathGraph.from_layout(layout).snap((1, 1)) is None
    assert PathGraph.from_layout(layout).route((1, 1), (5, 5)) is None
    out = kiosk_wayfinding(layout, [0, 0], 4)
    assert out["approximate"] is True and out["exits"] == [] and out["unreachable"] == []
    assert out["rooms"]["r"]["center"] == [310.0, 410.0]
    assert out["routes"]["r"]["points"] == [[0.0, 0.0], [310.0, 410.0]]  # to the centre
    assert out["routes"]["q"]["points"] == [[0.0, 0.0], [30.0, 20.0]]  # to the door
    assert out["routes"]["r"]["units"] == pytest.approx(math.hypot(310, 410), abs=0.05)


def test_without_a_layout_or_a_position():
    assert kiosk_wayfinding(None, [1, 2]) is None
    out = kiosk_wayfinding(TWO_WAYS, None, 3)
    assert out["version"] == 3 and out["here"] is None
    assert out["routes"] == {} and out["exits"] == [] and out["unreachable"] == []
    assert set(out["rooms"]) == {"spc_e"}
    # A position that is not a pair of numbers is "not placed", never an error page.
    for junk in (["a", 1], [1], [float("nan"), 1], [True, False], "12,3", {"x": 1}):
        assert kiosk_wayfinding(TWO_WAYS, junk, 3)["here"] is None


def test_metres_and_seconds_with_and_without_a_scale():
    nodes = [("a", 0, 100), ("b", 1000, 100)]
    rooms = {"r": box(590, 100, door=[600, 100])}
    scaled = kiosk_wayfinding(make_layout(nodes, [("a", "b")], rooms, metres_across=50), [0, 100])
    assert scaled["metres_per_unit"] == pytest.approx(0.05)
    route = scaled["routes"]["r"]
    assert route["units"] == 600.0
    assert route["m"] == 30.0
    assert route["s"] == math.ceil(30 / WALK_SPEED_M_S) == 25

    unscaled = kiosk_wayfinding(make_layout(nodes, [("a", "b")], rooms), [0, 100])
    assert unscaled["metres_per_unit"] is None
    assert unscaled["routes"]["r"] == {**route, "m": None, "s": None}


def test_seconds_round_up_and_metres_to_one_decimal():
    nodes = [("a", 0, 100), ("b", 1000, 100)]
    rooms = {"r": box(0, 100, door=[123.45, 100])}
    out = kiosk_wayfinding(make_layout(nodes, [("a", "b")], rooms, metres_across=10), [0, 100])
    route = out["routes"]["r"]
    assert route["m"] == 1.2  # 1.2345 m
    assert route["s"] == 2  # 1.03 s walks as 2, not 1
    assert isinstance(route["s"], int)


def test_exits_are_the_nearest_reachable_stairs_and_lift():
    layout = make_layout(
        nodes=[
            ("a", 100, 300),
            ("b", 500, 300),
            ("c", 900, 300),
            ("s_far", 900, 100, "stairs"),
            ("s_near", 500, 100, "stairs"),
            ("s_cut", 110, 330, "stairs"),  # nearest by far, but on a separate corridor
            ("cut2", 110, 600),
            ("lift", 900, 500, "lift"),
        ],
        edges=[
            ("a", "b"),
            ("b", "c"),
            ("c", "s_far"),
            ("b", "s_near"),
            ("c", "lift"),
            ("s_cut", "cut2"),
        ],
    )
    out = kiosk_wayfinding(layout, [100, 290], 1)
    exits = {e["kind"]: e for e in out["exits"]}
    assert exits["stairs"]["id"] == "s_near"
    assert exits["stairs"]["units"] == 600.0  # 400 along, 200 up
    assert exits["stairs"]["points"] == [[100.0, 300.0], [500.0, 300.0], [500.0, 100.0]]
    assert exits["lift"]["id"] == "lift"
    assert exits["lift"]["units"] == 1000.0
    assert out["exits"][0]["kind"] == "stairs" and out["exits"][1]["kind"] == "lift"


def test_no_exit_listed_when_none_is_reachable():
    layout = make_layout(
        nodes=[("a", 0, 0), ("b", 100, 0), ("s", 500, 500, "stairs"), ("t", 600, 500)],
        edges=[("a", "b"), ("s", "t")],
    )
    assert kiosk_wayfinding(layout, [50, 5], 1)["exits"] == []


def test_polygon_centroid_is_area_weighted():
    # An L: a 100x20 bar and a 20x80 leg; the vertex mean would sit elsewhere.
    ell = [[0, 0], [100, 0], [100, 20], [20, 20], [20, 100], [0, 100]]
    cx, cy = polygon_centroid(ell)
    bar, leg = (2000, (50, 10)), (1600, (10, 60))
    assert cx == pytest.approx((bar[0] * bar[1][0] + leg[0] * leg[1][0]) / 3600)
    assert cy == pytest.approx((bar[0] * bar[1][1] + leg[0] * leg[1][1]) / 3600)
    # Clockwise or counter-clockwise: the same point.
    assert polygon_centroid(list(reversed(ell))) == pytest.approx((cx, cy))
    # No area (all on one line): the mean of the vertices.
    assert polygon_centroid([[0, 0], [10, 10], [30, 30]]) == pytest.approx((40 / 3, 40 / 3))
    assert polygon_centroid([[5, 5], [5, 5], [5, 5]]) == (5, 5)


def test_simplify_drops_straight_runs_and_repeats_but_keeps_turns():
    assert simplify([(0, 0), (0, 0), (5, 0), (10, 0), (10, 5), (10, 10)]) == [
        (0, 0),
        (10, 0),
        (10, 10),
    ]
    # Out and back along one line: the turning point stays.
    assert simplify([(0, 0), (10, 0), (4, 0)]) == [(0, 0), (10, 0), (4, 0)]


def test_the_returned_data_is_the_callers_own():
    first = kiosk_wayfinding(TWO_WAYS, [100, 300], 1)
    first["routes"].clear()
    first["rooms"]["spc_e"]["outline"].append([0, 0])
    again = kiosk_wayfinding(TWO_WAYS, [100, 300], 1)
    assert "spc_e" in again["routes"]
    assert len(again["rooms"]["spc_e"]["outline"]) == 4


def test_same_version_on_two_floors_is_not_confused():
    other = make_layout(
        nodes=[("x", 0, 0), ("y", 0, 600)], edges=[("x", "y")], rooms={"spc_e": box(10, 590)}
    )
    a = kiosk_wayfinding(TWO_WAYS, [100, 300], 1)
    b = kiosk_wayfinding(other, [100, 300], 1)
    assert a["routes"]["spc_e"] != b["routes"]["spc_e"]
    assert b["here"] == [0.0, 300.0]


def test_many_threads_at_once_get_the_same_answer():
    layout = make_layout(
        nodes=[(f"n{i}", 20 * i, 300) for i in range(40)],
        edges=[(f"n{i}", f"n{i + 1}") for i in range(39)],
        rooms={f"r{i}": box(20 * i, 320) for i in range(30)},
    )
    expected = wayfinding.compute_wayfinding(layout, (5.0, 280.0), 9)
    results: list[Any] = []
    errors: list[BaseException] = []

    def render(i: int) -> None:
        try:
            for _ in range(20):
                here = [5, 280] if i % 2 else [400, 400]
                results.append((here, kiosk_wayfinding(layout, here, 9)))
        except BaseException as exc:  # collected so the test fails with it
            errors.append(exc)

    threads = [threading.Thread(target=render, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 160
    for here, out in results:
        if here == [5, 280]:
            assert out == expected
        else:
            assert out["here"] == [400.0, 300.0]


def test_a_graph_edited_while_kiosks_show_it(tmp_path):
    store = Store(str(tmp_path / "x.db"), "k" * 32)
    store.migrate()
    try:
        # A corridor ring: the room at the top right is reached along the top.
        doc = {
            "width": 1000,
            "height": 700,
            "metres_across": 100,
            "rooms": {"spc_r": box(880, 20, door=[900, 40])},
            "nodes": [
                {"id": "tl", "x": 100, "y": 100},
                {"id": "tr", "x": 900, "y": 100},
                {"id": "bl", "x": 100, "y": 600},
                {"id": "br", "x": 900, "y": 600},
            ],
            "edges": [["tl", "tr"], ["tl", "bl"], ["bl", "br"], ["br", "tr"]],
        }
        saved = store.put_layout("flr_1", validate_layout(doc), expected_version=0)
        here = [100, 120]
        shown = store.get_layout("flr_1")
        before = kiosk_wayfinding(shown.data, here, shown.version)
        assert before["version"] == 1
        assert before["routes"]["spc_r"]["units"] == 20 + 800 + 60

        # Someone cuts the top corridor: the route goes round the bottom.
        doc["edges"] = [["tl", "bl"], ["bl", "br"], ["br", "tr"]]
        saved = store.put_layout("flr_1", validate_layout(doc), expected_version=saved.version)
        with pytest.raises(StoreError):  # an editor holding the old version is refused
            store.put_layout("flr_1", validate_layout(doc), expected_version=1)
        shown = store.get_layout("flr_1")
        cut = kiosk_wayfinding(shown.data, here, shown.version)
        assert cut["version"] == 2
        assert cut["routes"]["spc_r"]["units"] == 480 + 800 + 500 + 60
        assert [100.0, 600.0] in cut["routes"]["spc_r"]["points"]

        # A shortcut straight across from the display's corridor to the room's.
        doc["nodes"].append({"id": "mid_l", "x": 100, "y": 300})
        doc["nodes"].append({"id": "mid_r", "x": 900, "y": 300})
        doc["edges"] = [
            ["tl", "mid_l"],
            ["mid_l", "bl"],
            ["bl", "br"],
            ["br", "mid_r"],
            ["mid_r", "tr"],
            ["mid_l", "mid_r"],
        ]
        saved = store.put_layout("flr_1", validate_layout(doc), expected_version=saved.version)
        shown = store.get_layout("flr_1")
        short = kiosk_wayfinding(shown.data, here, shown.version)
        assert short["version"] == 3
        assert short["routes"]["spc_r"]["units"] == 180 + 800 + 200 + 60
        assert short["routes"]["spc_r"]["m"] == pytest.approx(124.0)

        # The floor's layout is removed and drawn again: its version starts over at 1, so the
        # cache must not hand back the first drawing's answer for "version 1".
        assert store.remove_layout("flr_1")
        store.put_layout("flr_1", validate_layout(doc), expected_version=0)
        again = store.get_layout("flr_1")
        assert again.version == 1
        redrawn = kiosk_wayfinding(again.data, here, again.version)
        assert redrawn["routes"]["spc_r"] == short["routes"]["spc_r"]
        assert redrawn["routes"]["spc_r"] != before["routes"]["spc_r"]
    finally:
        store.close()


# -- properties ------------------------------------------------------------------------------
coords = st.integers(min_value=0, max_value=200).map(float)


@st.composite
def connected_graphs(draw: Any) -> tuple[list[tuple[str, float, float]], list[tuple[str, str]]]:
    count = draw(st.integers(min_value=2, max_value=9))
    points = draw(st.lists(st.tuples(coords, coords), min_size=count, max_size=count, unique=True))
    nodes = [(f"n{i}", x, y) for i, (x, y) in enumerate(points)]
    edges = [(f"n{i}", f"n{draw(st.integers(0, i - 1))}") for i in range(1, count)]
    extra = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1))))
    edges += [(f"n{a}", f"n{b}") for a, b in extra if a != b]
    return nodes, edges


def floyd_warshall(nodes: list[Any], edges: list[Any]) -> dict[tuple[str, str], float]:
    xy = {n[0]: (n[1], n[2]) for n in nodes}
    dist = {(a, b): (0.0 if a == b else math.inf) for a in xy for b in xy}
    for a, b in edges:
        d = math.dist(xy[a], xy[b])
        dist[a, b] = min(dist[a, b], d)
        dist[b, a] = min(dist[b, a], d)
    for k in xy:
        for i in xy:
            for j in xy:
                if dist[i, k] + dist[k, j] < dist[i, j]:
                    dist[i, j] = dist[i, k] + dist[k, j]
    return dist


def brute_snap(graph: PathGraph, p: tuple[float, float]) -> float:
    return min(
        math.sqrt(wayfinding._project(*p, *graph.xy[a], *graph.xy[b])[1]) for a, b, _ in graph.edges
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(connected_graphs(), st.tuples(coords, coords), st.tuples(coords, coords))
def test_dijkstra_matches_floyd_warshall(graph_spec, start, target):
    nodes, edges = graph_spec
    kinds = ["stairs" if i % 3 == 1 else "corridor" for i in range(len(nodes))]
    graph = PathGraph(((n, x, y, k) for (n, x, y), k in zip(nodes, kinds, strict=True)), edges)
    fw = floyd_warshall(nodes, edges)
    s, t = graph.snap(start), graph.snap(target)
    assert s.distance == pytest.approx(brute_snap(graph, start), abs=1e-9)
    assert t.distance == pytest.approx(brute_snap(graph, target), abs=1e-9)

    def ends(snap):
        (a, b), length = snap.edge, math.dist(graph.xy[graph.index[snap.edge[0]]], snap.point)
        full = math.dist(graph.xy[graph.index[a]], graph.xy[graph.index[b]])
        return [(a, length), (b, full - length)]

    best = min(ds + fw[a, b] + dt for a, ds in ends(s) for b, dt in ends(t))
    if set(s.edge) == set(t.edge):
        best = min(best, math.dist(s.point, t.point))
    route = graph.route(start, target)
    assert route is not None  # connected by construction
    assert route.length == pytest.approx(s.distance + best + t.distance, abs=1e-6)
    assert route.length == pytest.approx(path_length(route.points), abs=1e-6)

    # From a node, Dijkstra's distance to every node is the graph distance itself.
    dist, _, _ = graph._dijkstra([(0, 0.0)])
    for i, node_id in enumerate(graph.ids):
        assert dist[i] == pytest.approx(fw[graph.ids[0], node_id], abs=1e-6)

    # The nearest stairs, found by stopping the search early, is the nearest by the full table.
    stairs = [n for (n, _, _), k in zip(nodes, kinds, strict=True) if k == "stairs"]
    exits = graph.nearest_of_kind(start, ["stairs", "lift"])
    assert "lift" not in exits
    if stairs:
        expected = s.distance + min(ds + fw[a, n] for a, ds in ends(s) for n in stairs)
        node_id, exit_route = exits["stairs"]
        assert node_id in stairs
        assert exit_route.length == pytest.approx(expected, abs=1e-6)
        assert exit_route.length == pytest.approx(path_length(exit_route.points), abs=1e-6)
    else:
        assert exits == {}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(coords, coords, coords, coords), min_size=1, max_size=60),
    st.lists(
        st.tuples(st.floats(-50, 250, allow_nan=False), st.floats(-50, 250, allow_nan=False)),
        min_size=1,
        max_size=10,
    ),
)
def test_grid_snap_finds_the_nearest_segment(segments, points):
    grid = wayfinding._Grid(segments)
    for p in points:
        _, _, distance = grid.nearest(*p)
        brute = min(math.sqrt(wayfinding._project(*p, *seg)[1]) for seg in segments)
        assert distance == pytest.approx(brute, abs=1e-9)


def test_a_layout_that_cannot_be_read_gives_no_wayfinding_and_one_warning(caplog):
    broken = dict(TWO_WAYS, edges=[["w", "nowhere"]])
    with caplog.at_level("WARNING", logger="signage.core.wayfinding"):
        assert kiosk_wayfinding(broken, [100, 300], 5) is None
        assert kiosk_wayfinding(broken, [100, 300], 5) is None
    assert len([r for r in caplog.records if "cannot be used" in r.getMessage()]) == 1
    no_size = {k: v for k, v in TWO_WAYS.items() if k != "width"}
    assert kiosk_wayfinding(no_size, None, 5) is None


def test_kiosks_reloading_together_build_the_floor_once(monkeypatch):
    builds: list[int] = []
    real = wayfinding.FloorWays.from_layout.__func__
    gate = threading.Barrier(6)

    def counted(cls, layout):
        builds.append(1)
        return real(cls, layout)

    monkeypatch.setattr(wayfinding.FloorWays, "from_layout", classmethod(counted))
    outs: list[Any] = []

    def reload(i: int) -> None:
        gate.wait(timeout=10)
        outs.append(kiosk_wayfinding(TWO_WAYS, [100 + 10 * i, 300], 1))

    threads = [threading.Thread(target=reload, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(outs) == 6 and all(o["routes"]["spc_e"] for o in outs)
    assert len(builds) == 1


def test_the_cache_is_bounded_and_keyed_by_content():
    lru = wayfinding._LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # now the most recently used
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and len(lru) == 2

    same = validate_layout(dict(TWO_WAYS))
    assert wayfinding.layout_fingerprint(same) == wayfinding.layout_fingerprint(TWO_WAYS)
    moved = validate_layout(dict(TWO_WAYS, width=1001))
    assert wayfinding.layout_fingerprint(moved) != wayfinding.layout_fingerprint(TWO_WAYS)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(coords, coords), min_size=1, max_size=12))
def test_simplify_keeps_the_walk(points):
    out = simplify(points)
    assert out[0] == points[0]
    assert math.dist(out[-1], points[-1]) <= 0.05
    # Only repeats and points on the way are dropped: the walk is as long as before.
    assert path_length(out) == pytest.approx(path_length(points), abs=0.1 * len(points))


def test_every_room_is_routed_or_listed_unreachable_and_the_json_is_clean():
    rnd = random.Random(11)
    nodes = [(f"n{i}", rnd.uniform(0, 1000), rnd.uniform(0, 700), "corridor") for i in range(60)]
    nodes[5] = ("n5", *nodes[5][1:3], "stairs")
    nodes[50] = ("n50", *nodes[50][1:3], "lift")
    # Two separate trees: 0-39 and 40-59.
    edges = [(f"n{i}", f"n{rnd.randrange(i)}") for i in range(1, 40)]
    edges += [(f"n{i}", f"n{rnd.randrange(40, i)}") for i in range(41, 60)]
    rooms = {f"spc_{i}": box(rnd.uniform(0, 970), rnd.uniform(0, 670)) for i in range(25)}
    layout = make_layout(nodes, edges, rooms, metres_across=40)
    out = kiosk_wayfinding(layout, [500, 350], 3)
    assert set(out["routes"]).isdisjoint(out["unreachable"])
    assert set(out["routes"]) | set(out["unreachable"]) == set(rooms)
    assert out["routes"] and out["unreachable"]  # both parts of the floor have rooms
    assert len(out["exits"]) == 1  # the stairs and the lift sit in different parts
    json.dumps(out, allow_nan=False)  # JSON-ready: no NaN, no tuples-only types, nothing odd
    for route in out["routes"].values():
        assert route["points"][0] == out["here"]
        assert isinstance(route["s"], int) and route["m"] == pytest.approx(
            route["units"] * 0.04, abs=0.06
        )


# -- landmarks: every stairs and lift, for the kiosk's plan ----------------------------------
EXITS_APART = make_layout(
    nodes=[
        ("a", 100, 300),
        ("b", 500, 300),
        ("s_near", 500, 100.25, "stairs"),
        ("l1", 900, 300, "lift"),
        ("s_cut", 110, 330, "stairs"),  # on a corridor of its own: not reachable from a-b
        ("cut2", 110, 600),
        ("lone_lift", 950, 650, "lift"),  # on no corridor at all
    ],
    edges=[("a", "b"), ("b", "s_near"), ("b", "l1"), ("s_cut", "cut2")],
)


def test_landmarks_are_every_stairs_and_lift_where_the_admin_put_them():
    out = kiosk_wayfinding(EXITS_APART, [100, 290], 2)
    assert out["landmarks"] == [
        {"kind": "stairs", "id": "s_near", "x": 500.0, "y": 100.25},
        {"kind": "lift", "id": "l1", "x": 900.0, "y": 300.0},
        {"kind": "stairs", "id": "s_cut", "x": 110.0, "y": 330.0},
        {"kind": "lift", "id": "lone_lift", "x": 950.0, "y": 650.0},
    ]
    # Reachable or not, all of them are on the plan; only the reachable ones are exits.
    assert {e["id"] for e in out["exits"]} == {"s_near", "l1"}
    json.dumps(out, allow_nan=False)


def test_landmarks_do_not_depend_on_you_are_here():
    placed = kiosk_wayfinding(EXITS_APART, [100, 290], 2)
    unplaced = kiosk_wayfinding(EXITS_APART, None, 2)
    assert unplaced["here"] is None and unplaced["exits"] == []
    assert unplaced["landmarks"] == placed["landmarks"] and len(placed["landmarks"]) == 4
    # Nodes without edges (straight-line mode) are landmarks too.
    loose = make_layout(nodes=[("s", 10, 20, "stairs"), ("c", 30, 40), ("l", 50, 60, "lift")])
    assert [(m["kind"], m["id"]) for m in kiosk_wayfinding(loose, [0, 0])["landmarks"]] == [
        ("stairs", "s"),
        ("lift", "l"),
    ]


def test_no_stairs_or_lifts_means_no_landmarks():
    assert kiosk_wayfinding(TWO_WAYS, [100, 300], 1)["landmarks"] == []
    assert kiosk_wayfinding(make_layout(), None, 1)["landmarks"] == []


def test_landmarks_from_the_cache_are_the_callers_own():
    first = kiosk_wayfinding(EXITS_APART, [100, 290], 2)
    first["landmarks"][0]["x"] = -1
    first["landmarks"].clear()
    again = kiosk_wayfinding(EXITS_APART, [100, 290], 2)
    assert again["landmarks"][0] == {"kind": "stairs", "id": "s_near", "x": 500.0, "y": 100.25}
    # An edit that moves the stairs is seen at once, even at the same version number.
    moved = json.loads(json.dumps(EXITS_APART))
    moved["nodes"][2]["x"] = 520
    assert kiosk_wayfinding(moved, [100, 290], 2)["landmarks"][0]["x"] == 520.0
