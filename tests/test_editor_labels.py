"""The floor editor's room names at a narrow window: each fits its room (smaller type, then cut
with "…", the whole name in its tooltip) and no two overlap: narrow rooms on a narrow window ran
14 px names into each other ("Heat Orchid Kelp Flintir" in a review).

Real server and simulator, the editor in Chromium.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from signage.core.layout import empty_layout
from signage.store import plans
from tests.admin_helpers import make_admin
from tests.test_editor import PLAN_SVG, SERVER_MS, _open_editor, _watch

BOXES = """() => [...document.querySelectorAll('#canvas text.room-label:not(.orphan-label)')]
.map(t => {
  const b = t.getBoundingClientRect();
  const room = t.closest('g.room-shape').querySelector('polygon').getBoundingClientRect();
  const title = t.closest('g.room-shape').querySelector(':scope > title');
  return {id: t.dataset.labelFor, text: t.textContent, full: title ? title.textContent
    : t.textContent, size: parseFloat(getComputedStyle(t).fontSize)
    * (t.getScreenCTM() ? t.getScreenCTM().a : 1), box: [b.left, b.top, b.right, b.bottom],
    room: [room.left, room.top, room.right, room.bottom]};
})"""


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5


@pytest.mark.browser
@pytest.mark.parametrize("width", [800, 1400])
def test_room_names_fit_their_rooms_and_never_overlap_at_any_window(server, browser, width) -> None:
    floor = server.svc.directory.floors()[0].id
    rooms = [r.id for r in server.svc.directory.rooms_of(floor)]
    assert len(rooms) >= 6
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    layout = empty_layout(400, 300)
    # Six rooms side by side, 20 units wide: about 38 px each at 800 px (where the plan takes
    # the column's width, ~760 px), 50 px at 1400 px.
    layout["rooms"] = {
        rid: {"outline": [[x, 40], [x + 20, 40], [x + 20, 90], [x, 90]], "door": None}
        for i, rid in enumerate(rooms[:6])
        for x in [20 + 25 * i]
    }
    server.svc.store.put_layout(floor, layout, "earlier")
    make_admin(server.svc)
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = ctx.new_page()
        problems = _watch(page)
        _open_editor(page, server, floor)
        expect(page.locator("#canvas text.room-label")).to_have_count(6, timeout=SERVER_MS)
        labels = page.evaluate(BOXES)
        names = {r.id: r.name for r in server.svc.directory.rooms_of(floor)}
        for label in labels:
            box, room = label["box"], label["room"]
            assert box[2] - box[0] <= room[2] - room[0] + 1, label  # fits its room's width
            assert room[0] - 1 <= box[0] and box[2] <= room[2] + 1, label
            assert label["full"] == names[label["id"]], label  # the whole name kept
            assert label["size"] >= 8.5, label  # never under the 9 px floor on screen
            if label["text"] != label["full"]:
                assert label["text"].endswith("…"), label
        for i, a in enumerate(labels):
            for b in labels[i + 1 :]:
                assert not _overlap(a["box"], b["box"]), (a, b)
        if os.environ.get("SIGNAGE_EDITOR_SHOT"):
            page.locator("#canvas").screenshot(path=f"/tmp/editor-labels-{width}.png")
        if width == 800:  # the narrow window had to cut some
            assert any(x["text"].endswith("…") for x in labels), labels
        assert not problems, problems
    finally:
        ctx.close()


@pytest.mark.browser
def test_the_plan_takes_the_whole_column_when_the_editor_stacks(server, browser) -> None:
    """At 800 px the side panel goes under the plan; the plan then takes the column's width
    (it kept its content's width, ~300 px, with room names cut to "B…")."""
    floor = server.svc.directory.floors()[0].id
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    make_admin(server.svc)
    ctx = browser.new_context(viewport={"width": 800, "height": 900})
    try:
        page = ctx.new_page()
        problems = _watch(page)
        _open_editor(page, server, floor)
        canvas = page.locator("#canvas").bounding_box()
        side = page.locator("aside.side").bounding_box()
        assert canvas is not None and side is not None
        assert canvas["width"] >= 700, canvas
        assert side["y"] >= canvas["y"] + canvas["height"] - 1, (canvas, side)  # stacked under
        assert not problems, problems
    finally:
        ctx.close()


HERE_BOX = """() => {
  const t = document.querySelector('#canvas text.here-label');
  const b = t.getBoundingClientRect();
  const edges = [...document.querySelectorAll('#canvas line.edge')].map(l => {
    const m = l.getScreenCTM();
    const p = (x, y) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f];
    return [p(l.x1.baseVal.value, l.y1.baseVal.value), p(l.x2.baseVal.value, l.y2.baseVal.value)];
  });
  const dots = [...document.querySelectorAll('#canvas .node circle')].map(c => {
    const r = c.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  });
  const marker = document.querySelector('#canvas .here-marker circle').getBoundingClientRect();
  return {text: t.textContent, box: [b.left, b.top, b.right, b.bottom], edges, dots,
    marker: [marker.left, marker.top, marker.right, marker.bottom]};
}"""


def _crosses(segment: list[list[float]], box: list[float]) -> bool:
    """Whether a line segment (screen points) passes through a box, sampled finely."""
    (x1, y1), (x2, y2) = segment
    steps = 400
    return any(
        box[0] < x1 + (x2 - x1) * i / steps < box[2]
        and box[1] < y1 + (y2 - y1) * i / steps < box[3]
        for i in range(steps + 1)
    )


@pytest.mark.browser
@pytest.mark.parametrize("width", [800, 1400])
def test_you_are_here_stays_clear_of_the_corridor_and_room_names(server, browser, width) -> None:
    """A display's "you are here" is usually put on a corridor: its label ran along the corridor
    line over its dots. It is placed as room names are, clear of points, lines and names."""
    floor = server.svc.directory.floors()[0].id
    rooms = [r.id for r in server.svc.directory.rooms_of(floor)]
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    layout = empty_layout(400, 300)
    layout["rooms"] = {
        rid: {"outline": [[x, 60], [x + 60, 60], [x + 60, 120], [x, 120]], "door": None}
        for i, rid in enumerate(rooms[:4])
        for x in [20 + 90 * i]
    }
    # A corridor along the rooms, its points every 40 units, and one going down from it.
    layout["nodes"] = [
        {"id": f"n{i}", "x": 20 + 40 * i, "y": 140, "kind": "corridor"} for i in range(10)
    ] + [{"id": "down", "x": 140, "y": 280, "kind": "stairs"}]
    layout["edges"] = [[f"n{i}", f"n{i + 1}"] for i in range(9)] + [["n3", "down"]]
    server.svc.store.put_layout(floor, layout, "earlier")
    display = server.svc.store.add_display("Lobby east", floor)
    server.svc.store.update_display_settings(display.id, {"here": [130, 140]})  # on the corridor
    make_admin(server.svc)
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = ctx.new_page()
        problems = _watch(page)
        _open_editor(page, server, floor)
        expect(page.locator("#canvas text.here-label")).to_have_count(1, timeout=SERVER_MS)
        if os.environ.get("SIGNAGE_EDITOR_SHOT"):
            page.screenshot(path=f"/tmp/editor-here-{width}.png", full_page=True)
        here = page.evaluate(HERE_BOX)
        assert here["text"] == "You are here: Lobby east"
        box = here["box"]
        for segment in here["edges"]:
            assert not _crosses(segment, box), (segment, box)
        for dot in here["dots"]:
            assert not _overlap(dot, box), (dot, box)
        for name in page.evaluate(BOXES):
            assert not _overlap(name["box"], box), (name, box)
        assert not _overlap(here["marker"], box)
        # Still beside its marker: within a few label heights of it.
        height = box[3] - box[1]
        gap_x = max(0.0, box[0] - here["marker"][2], here["marker"][0] - box[2])
        gap_y = max(0.0, box[1] - here["marker"][3], here["marker"][1] - box[3])
        assert gap_x <= 3 * height and gap_y <= 3 * height, (box, here["marker"])
        assert not problems, problems
    finally:
        ctx.close()
