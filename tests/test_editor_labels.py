"""The floor editor's room names at a narrow window: each fits its room (smaller type, then cut
with "…", the whole name in its tooltip) and no two overlap. At 800 px the plan is about 310 px
wide, where 14 px names ran into each other ("Heat Orchid Kelp Flintir" in a review).

Real server and simulator, the editor in Chromium.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from signage.core.layout import empty_layout
from signage.store import plans
from tests.admin_helpers import make_admin
from tests.test_editor import PLAN_SVG, SERVER_MS, _open_editor, _watch, square

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
    # Six rooms side by side, 50 units wide: about 39 px each at 800 px, 70 px at 1400 px.
    layout["rooms"] = {
        rid: {"outline": square(20 + 60 * i, 40, 50), "door": None}
        for i, rid in enumerate(rooms[:6])
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
