"""The whole admin journey as a new admin sees it, in Chromium, through the console's own pages.

Sign in, add a display, watch its live preview, pair a screen, upload a plan, draw three rooms
with the rectangle tool, preview the draft, publish, see the rooms on the screen, schedule a
banner in the floor's local time, find the display down in fleet health once its screen is gone,
and read all of it in the audit trail. The real server against the built-in simulator
(tests/conftest.py); the screen is a second browser context that pairs as a screen does.

Each page is screenshotted into SIGNAGE_JOURNEY_SCREENSHOTS when set (to look at them), else
into the test's temporary folder (never into the repository).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from signage.actions.displays import floor_label
from tests.admin_helpers import PASSWORD, make_admin
from tests.helpers import wait_until
from tests.test_editor import PLAN_SVG, _watch
from tests.test_editor_drafts import _rectangle

SERVER_MS = 20_000  # a shared, loaded machine: conditions are waited for, never slept on
ADMIN = "nadia"
DISPLAY = "Lobby east"
BANNER = "Lift 2 out of service"


@pytest.mark.browser
def test_a_new_admin_walks_from_sign_in_to_the_audit_trail(make_server, sim, contexts, tmp_path):
    # The watcher looks 5 times a second and calls a screen gone for 1 s down (not 10 min).
    server = make_server(SIGNAGE_ALERT_AFTER=1 / 60, SIGNAGE_ALERT_INTERVAL=0.2)
    svc = server.svc
    floor = svc.directory.floors()[0].id
    zone = ZoneInfo(svc.directory.time_zone(floor))
    where = floor_label(svc.directory, floor)  # "Building / Floor", as the console names it
    rooms = [r.id for r in svc.directory.rooms_of(floor)][:3]
    assert len(rooms) == 3
    for rid in rooms:  # free, so that the previews show live states, not "unknown"
        sim.world.set_space(rid, presence=False, health="healthy")
    make_admin(svc, ADMIN, role="admin")
    shots = Path(os.environ.get("SIGNAGE_JOURNEY_SCREENSHOTS") or tmp_path / "journey")
    shots.mkdir(parents=True, exist_ok=True)

    def shot(p: Page, name: str) -> None:
        p.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    page = contexts(1400, 1000).new_page()
    # The preview pages' favicon probe aside, no script error, CSP refusal or failed request.
    problems = _watch(page)

    # -- sign in ------------------------------------------------------------------------------
    page.goto(f"{server.url}/admin/")
    page.wait_for_url("**/admin/login**")
    shot(page, "01-login")
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url("**/admin/displays")
    expect(page.locator("header .who")).to_contain_text(f"{ADMIN} admin")
    expect(page.locator("main")).to_contain_text("No display yet")

    # -- add a display --------------------------------------------------------------------------
    page.get_by_role("link", name="New display").click()
    page.get_by_label("Name (at most 80 characters)", exact=True).fill(DISPLAY)
    page.get_by_label("Floor").select_option(floor)
    shot(page, "02-new-display")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/admin/displays/\d+$"))
    display_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("main")).to_contain_text(f"Display “{DISPLAY}” created.")

    # -- its live preview: the kiosk page itself, live, and no screen counted ------------------
    preview = page.frame_locator("#preview-box iframe")
    expect(preview.locator("body")).to_contain_text(DISPLAY, timeout=SERVER_MS)
    expect(preview.locator("html")).to_have_attribute("data-feed", "live", timeout=SERVER_MS)
    assert svc.hub.screens() == []
    expect(page.locator("#open-kiosk")).to_have_attribute(
        "href", f"/admin/displays/{display_id}/preview"
    )
    shot(page, "03-display-preview")

    # -- pair a screen: a second browser opens /pair, the admin types its code -----------------
    screen_ctx = contexts(1920, 1080)
    kiosk = screen_ctx.new_page()
    kiosk_problems = _watch(kiosk)
    kiosk.goto(f"{server.url}/pair")
    code = kiosk.locator("#pair-code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code), code
    shot(kiosk, "04-screen-pair-code")
    page.get_by_role("link", name="Pair a screen to this display").click()
    page.wait_for_url("**/admin/pair**")
    expect(page.get_by_label("Display", exact=True)).to_have_value(str(display_id))
    page.get_by_label("Code on the screen").fill(code.lower().replace("-", ""))  # as typed
    page.get_by_role("button", name="Pair").click()
    page.wait_for_url(f"**/admin/displays/{display_id}")
    expect(page.locator("main")).to_contain_text(f"Paired: the screen now shows “{DISPLAY}”.")
    credential = svc.store.credential(svc.store.get_display(display_id))
    kiosk.wait_for_url(f"**/kiosk/{credential}", timeout=SERVER_MS)
    expect(kiosk.locator("html")).to_have_attribute("data-feed", "live", timeout=SERVER_MS)
    wait_until(
        lambda: [s.display_id for s in svc.hub.screens()] == [display_id],
        timeout=20,
        message="the paired screen is the display's one screen",
    )
    shot(kiosk, "05-screen-paired")

    # -- upload a plan --------------------------------------------------------------------------
    plan_file = tmp_path / "ground-floor.svg"
    plan_file.write_bytes(PLAN_SVG)
    page.get_by_role("link", name="Floor plans").click()
    section = page.locator(f'section[data-floor-id="{floor}"]')
    expect(section).to_contain_text("No plan")
    section.locator("input[type=file]").set_input_files(str(plan_file))
    section.get_by_role("button", name="Upload").click()
    section = page.locator(f'section[data-floor-id="{floor}"]')
    expect(section.locator("img.plan-preview")).to_be_visible()
    expect(section).to_contain_text(f"by {ADMIN}")
    shot(page, "06-plan-uploaded")
    # No room is drawn on it yet: the screen keeps its automatic map (a bare plan would show
    # no room at all).
    expect(kiosk.locator("#map-box svg#map")).to_have_count(1)
    expect(kiosk.locator("#plan-map")).to_have_count(0)

    # -- draw three rooms with the rectangle tool, saved as a draft ----------------------------
    section.get_by_role("link", name="Edit rooms and corridors").click()
    expect(page.locator("#editor")).to_have_attribute("data-loading", "false", timeout=SERVER_MS)
    expect(page.locator("#draft-state")).to_contain_text("No draft")
    tools = page.get_by_role("toolbar", name="Drawing tools")
    tools.get_by_role("button", name="Rectangle room").click()
    # Apart from each other and the plan's lines, so that no snapping moves them together.
    _rectangle(page, rooms[0], (20, 20), (90, 110))
    _rectangle(page, rooms[1], (230, 20), (330, 110))
    _rectangle(page, rooms[2], (60, 170), (180, 270))
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#draft-state")).to_contain_text("Draft, not published", timeout=SERVER_MS)
    expect(page.locator("#draft-state")).to_contain_text("3 rooms added, 0 removed, 0 moved")
    shot(page, "07-editor-draft")
    # The screen keeps the published layout (none): a reload shows no room either.
    kiosk.reload()
    expect(kiosk.locator("#map-box svg#map")).to_have_count(1, timeout=SERVER_MS)
    expect(kiosk.locator("#plan-map, g.room-shape")).to_have_count(0)

    # -- preview the draft: the kiosk page over the draft, live --------------------------------
    page.locator("#preview-show").click()
    draft = page.frame_locator("#preview-frame")
    expect(draft.locator("g.room-shape")).to_have_count(3, timeout=SERVER_MS)
    for rid in rooms:
        expect(draft.locator(f'g.room-shape[data-space-id="{rid}"]')).to_have_attribute(
            "data-state", "free", timeout=SERVER_MS
        )
    expect(draft.locator("image.plan-image")).to_have_count(1)
    shot(page, "08-draft-preview")
    expect(kiosk.locator("#plan-map, g.room-shape")).to_have_count(0)

    # -- publish: the screen reloads and shows the three rooms ---------------------------------
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.locator("#editor-status")).to_contain_text(
        "Published (version 1)", timeout=SERVER_MS
    )
    expect(page.locator("#draft-state")).to_contain_text("No draft")
    shown = kiosk.locator("#plan-map g.room-shape")
    expect(shown).to_have_count(3, timeout=SERVER_MS)
    expect(kiosk.locator("#plan-map image.plan-image")).to_have_count(1)
    assert {shown.nth(i).get_attribute("data-space-id") for i in range(3)} == set(rooms)
    expect(kiosk.locator(f'g.room-shape[data-space-id="{rooms[0]}"]')).to_have_attribute(
        "data-state", "free", timeout=SERVER_MS
    )
    shot(kiosk, "09-screen-published")

    # -- schedule a banner in the floor's local time -------------------------------------------
    page.get_by_role("link", name="Announcements").click()
    expect(page.locator("#announce-form")).to_contain_text(f"Times are {zone.key}")
    page.get_by_label("Show on").select_option(f"floor:{floor}")
    page.get_by_label("Banner above the map").check()
    page.get_by_label("Title", exact=True).fill(BANNER)
    page.get_by_text("Exact start or end time").click()
    # From this minute to two hours on, typed as the building's clock reads. Read as UTC
    # (Berlin is an hour or two ahead), the start would lie in the future: nothing would show.
    local = datetime.now(zone).replace(second=0, microsecond=0)
    start, end = local, local + timedelta(hours=2)
    page.get_by_label("Starts at").fill(start.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Ends at").fill(end.strftime("%Y-%m-%dT%H:%M"))
    shot(page, "10-banner-form")
    page.get_by_role("button", name="Send to screens").click()
    expect(page.locator("main")).to_contain_text(f"Announcement “{BANNER}” sent.")
    (made,) = svc.store.list_announcements()
    assert made.ends_at == end.timestamp()  # the building's clock, not UTC
    # A start already past (this minute) means now: nothing was shown before.
    assert start.timestamp() <= made.starts_at <= start.timestamp() + 120
    row = page.locator("#announcements-current tbody tr", has_text=BANNER)
    began = datetime.fromtimestamp(made.starts_at, zone)
    expect(row).to_contain_text(began.strftime("%Y-%m-%d %H:%M"))
    expect(row).to_contain_text(end.strftime("%Y-%m-%d %H:%M"))
    expect(kiosk.locator("#announcement .announcement-title")).to_have_text(
        BANNER, timeout=SERVER_MS
    )
    shot(kiosk, "11-screen-banner")
    assert not kiosk_problems, kiosk_problems

    # -- fleet health: up while the screen runs, down once it is stopped -----------------------
    page.get_by_role("link", name="Fleet health").click()
    fleet_row = page.locator(f'#fleet-displays tr[data-display-id="{display_id}"]')
    expect(fleet_row).to_have_attribute("data-state", "up")
    screen_ctx.close()  # the screen is switched off: its socket goes with its browser
    wait_until(lambda: svc.hub.screens() == [], timeout=20, message="the screen's socket closed")
    wait_until(
        lambda: svc.alerts.down_for("display", display_id) is not None,
        timeout=20,
        message="the watcher saw the display down",
    )
    page.reload()  # the page is read when loaded; the count of down displays is its link
    page.get_by_role("link", name="1 down", exact=True).click()
    fleet_row = page.locator(f'#fleet-displays tr[data-display-id="{display_id}"]')
    expect(fleet_row).to_have_attribute("data-state", "down")
    expect(fleet_row.locator("td.status")).to_contain_text("Down for under 1 min")
    expect(page.locator("#fleet-summary")).to_have_text("Needs attention")
    shot(page, "12-fleet-down")

    # -- the audit trail: each step, by the admin who made it ----------------------------------
    page.get_by_role("link", name="Audit trail").click()
    expect(page.locator("h1")).to_have_text("Audit trail")
    entries = page.locator("table.audit tbody tr")
    actions = {}
    for i in range(entries.count()):
        cells = entries.nth(i).locator("td")
        actions.setdefault(cells.nth(2).get_attribute("data-action"), []).append(
            (cells.nth(1).inner_text(), cells.nth(2).inner_text(), cells.nth(3).inner_text())
        )
    shot(page, "13-audit")
    expected = {  # in words, on what (by name)
        "display.create": ("Created", f"Display: {DISPLAY}"),
        "display.pair": ("Paired a screen", f"Display: {DISPLAY}"),
        "plan.replace": ("Uploaded", f"Floor plan: {where}"),  # the floor's name, not its id
        "layout.publish": ("Published", f"Floor layout: {where}"),
        "announcement.create": ("Sent", f"Announcement: {BANNER}"),
    }
    for action, (words, target) in expected.items():
        assert action in actions, (action, sorted(actions))
        (who, did, what), *more = actions[action]
        assert not more, (action, actions[action])  # once each
        assert who == f"{ADMIN} (account)", (action, who)
        assert did == words and what.startswith(target), (action, did, what)
    assert not problems, problems
