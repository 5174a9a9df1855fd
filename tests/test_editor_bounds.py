"""A room outside the plan's drawing is named in the editor's warnings before publishing: the
plan image is fitted into the layout keeping its shape, so a layout of another shape (or a plan
replaced by one of another shape) leaves bands beside the floor where a room published with no
word. Real server and simulator, the editor in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from signage.core.layout import empty_layout
from signage.store import plans
from tests.admin_helpers import make_admin
from tests.test_editor import PLAN_SVG, SERVER_MS, _open_editor, _watch, square


@pytest.mark.browser
def test_a_room_off_the_plan_is_named_before_publishing(server, browser) -> None:
    floor = server.svc.directory.floors()[0].id
    spaces = server.svc.directory.rooms_of(floor)
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")  # 400×300
    # Drawn at 400×600: the plan fills y 150..450, the band above and below is off the floor.
    layout = empty_layout(400, 600)
    layout["rooms"] = {
        spaces[0].id: {"outline": square(20, 20, 50), "door": None},  # above the plan
        spaces[1].id: {"outline": square(100, 200, 50), "door": None},  # on it
    }
    server.svc.store.put_layout(floor, layout, "earlier")
    make_admin(server.svc)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        problems = _watch(page)
        _open_editor(page, server, floor)
        warning = page.locator("#editor-warnings li", has_text="Outside the plan")
        expect(warning).to_have_count(1, timeout=SERVER_MS)
        said = warning.inner_text()
        assert spaces[0].name in said and spaces[1].name not in said, said
        # Moved onto the plan (selected, then nudged down with the arrow keys): the warning goes.
        page.locator(f'#canvas g.room-shape[data-space-id="{spaces[0].id}"] polygon').click()
        for _ in range(14):
            page.keyboard.press("Shift+ArrowDown")
        expect(warning).to_have_count(0, timeout=SERVER_MS)
        assert not problems, problems
    finally:
        ctx.close()
