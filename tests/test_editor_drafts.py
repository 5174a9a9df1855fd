"""Drafts of a floor's layout: saved without touching the screens, published, kept as versions,
restored and discarded; in the store on both backends, through the console's routes, and in
Chromium with the rectangle tool, snapping and the preview frame."""

from __future__ import annotations

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from websockets.sync.client import connect

from signage.core.layout import empty_layout
from signage.store import StoreError, plans
from signage.store.plan_versions import LayoutHistory
from signage.web.kiosk import PAIRED_COOKIE
from tests import pg_server as pgs
from tests.admin_helpers import make_admin
from tests.helpers import wait_until
from tests.test_editor import (
    PLAN_SVG,
    SCREENSHOTS,
    SERVER_MS,
    _open_editor,
    _points,
    _to_client,
    _watch,
    a_layout,
    next_of,
    square,
)

pg_server, pg_url, any_store = pgs.pg_server, pgs.pg_url, pgs.any_store


@pytest.fixture
def floor(server) -> str:
    return server.svc.directory.floors()[0].id


@pytest.fixture
def rooms(server, floor) -> list[str]:
    return [r.id for r in server.svc.directory.rooms_of(floor)]


def with_rooms(*room_ids: str) -> dict:
    layout = empty_layout(400, 300)
    layout["rooms"] = {
        rid: {"outline": square(20 + 60 * i, 20), "door": None} for i, rid in enumerate(room_ids)
    }
    return layout


# -- the store, on SQLite and PostgreSQL -----------------------------------------------------------
def test_a_draft_is_kept_apart_from_the_published_layout_until_published(any_store):
    history = LayoutHistory(any_store, keep=3)
    assert history.draft("f1") is None and history.versions("f1") == []
    first = history.save_draft("f1", with_rooms("a"), expected_revision=0, base_version=0,
                               here={7: [1.0, 2.0]}, updated_by="alice")  # fmt: skip
    assert (first.revision, first.base_version, first.here) == (1, 0, {7: [1.0, 2.0]})
    assert any_store.get_layout("f1") is None  # kiosks read this: nothing published yet
    with pytest.raises(StoreError, match="revision 1, you had 0"):
        history.save_draft("f1", with_rooms("b"), expected_revision=0, base_version=0)
    with pytest.raises(StoreError, match="version 0, you had 5"):  # not what is live
        history.save_draft("f1", with_rooms("a", "b"), expected_revision=1, base_version=5)
    second = history.save_draft("f1", with_rooms("a", "b"), expected_revision=1, base_version=0)
    assert second.revision == 2 and second.base_version == 0
    assert set(history.drafts()) == {"f1"}

    with pytest.raises(StoreError, match="changed or published by someone else"):
        history.publish("f1", second.data, expected_version=0, draft_revision=1)
    assert history.draft("f1") is not None and any_store.get_layout("f1") is None
    live = history.publish("f1", second.data, expected_version=0, published_by="alice",
                           draft_revision=2)  # fmt: skip
    assert live.version == 1 and set(live.data["rooms"]) == {"a", "b"}
    assert any_store.get_layout("f1").data == second.data
    assert history.draft("f1") is None  # published: the draft is gone with it
    [v1] = history.versions("f1")
    assert (v1.version, v1.published_by, set(v1.data["rooms"])) == (1, "alice", {"a", "b"})


def test_publishing_over_a_newer_version_is_refused_and_old_versions_are_pruned(any_store):
    history = LayoutHistory(any_store, keep=3)
    for n in range(1, 6):
        history.publish("f1", with_rooms(*"abcde"[:n]), expected_version=n - 1,
                        published_by=f"u{n}")  # fmt: skip
    assert [v.version for v in history.versions("f1")] == [5, 4, 3]  # the last three kept
    assert history.version("f1", 2) is None
    assert len(history.version("f1", 4).data["rooms"]) == 4
    # The JSON API's direct save takes the same path: its conflict is worded as before.
    with pytest.raises(StoreError, match=r"version 5, you had 4"):
        history.publish("f1", with_rooms("a"), expected_version=4)

    draft = history.save_draft("f1", with_rooms("a"), expected_revision=0, base_version=5)
    history.publish("f1", with_rooms("z"), expected_version=5)  # someone publishes meanwhile
    with pytest.raises(StoreError, match="version 6, you had 5"):
        history.publish("f1", draft.data, expected_version=draft.base_version,
                        draft_revision=draft.revision)  # fmt: skip
    assert history.draft("f1").revision == 1  # nothing changed by the refusal
    # The editor reloaded (it loads version 6): its saves go on, the draft keeps its base 5.
    kept = history.save_draft("f1", with_rooms("a", "b"), expected_revision=1, base_version=6)
    assert (kept.revision, kept.base_version) == (2, 5)

    # Restoring a version replaces the draft and starts it over from what is live now.
    restored = history.save_draft("f1", history.version("f1", 4).data, expected_revision=2,
                                  base_version=6, restored_from=4)  # fmt: skip
    assert (restored.revision, restored.base_version, restored.restored_from) == (3, 6, 4)
    live = history.publish("f1", restored.data, expected_version=6, draft_revision=3,
                           restored_from=4)  # fmt: skip
    assert live.version == 7 and history.versions("f1")[0].restored_from == 4
    assert [v.version for v in history.versions("f1")] == [7, 6, 5]

    assert history.save_draft("f1", with_rooms("q"), expected_revision=0,
                              base_version=7).revision == 4  # fmt: skip
    with pytest.raises(StoreError):
        history.discard_draft("f1", expected_revision=9)
    assert history.discard_draft("f1", expected_revision=4)
    assert not history.discard_draft("f1")
    assert any_store.get_layout("f1").version == 7


def test_a_tab_that_did_not_see_the_current_draft_or_version_saves_and_publishes_nothing(
    any_store,
):
    """Editor A loaded a draft; B published it and began a new draft (or discarded it and began
    again): A's stale revision must not match B's draft, or A's autosave would overwrite it and
    A's Publish would put B's unseen draft live."""
    history = LayoutHistory(any_store)
    draft = history.save_draft("f1", with_rooms("a"), expected_revision=0, base_version=0)
    draft = history.save_draft("f1", with_rooms("a"), expected_revision=1, base_version=0)
    seen_by_a = draft.revision  # A's tab: this draft over published version 0

    history.publish("f1", draft.data, expected_version=0, draft_revision=draft.revision)
    b = history.save_draft("f1", with_rooms("b"), expected_revision=0, base_version=1)
    b = history.save_draft("f1", with_rooms("b", "c"), expected_revision=b.revision,
                           base_version=1)  # fmt: skip
    with pytest.raises(StoreError, match="saved by someone else"):
        history.save_draft("f1", with_rooms("a", "x"), expected_revision=seen_by_a,
                           base_version=0)  # fmt: skip
    with pytest.raises(StoreError, match="saved by someone else"):  # even had A loaded v1
        history.save_draft("f1", with_rooms("a", "x"), expected_revision=seen_by_a,
                           base_version=1)  # fmt: skip
    with pytest.raises(StoreError, match="changed or published by someone else"):
        history.publish("f1", with_rooms("a", "x"), expected_version=1,
                        draft_revision=seen_by_a)  # fmt: skip
    assert history.draft("f1").data == with_rooms("b", "c")  # B's draft stands
    assert any_store.get_layout("f1").version == 1
    assert b.revision > seen_by_a  # counted on, never from 1 again

    # Discarded and begun again: the same, and A's discard cannot drop B's new draft either.
    seen_by_a = b.revision
    assert history.discard_draft("f1", expected_revision=b.revision)
    b = history.save_draft("f1", with_rooms("d"), expected_revision=0, base_version=1)
    with pytest.raises(StoreError):
        history.save_draft("f1", with_rooms("x"), expected_revision=seen_by_a, base_version=1)
    with pytest.raises(StoreError):
        history.discard_draft("f1", expected_revision=seen_by_a)
    assert b.revision > seen_by_a

    # A tab that loaded before a publish and saw no draft starts none over the old version.
    history.publish("f1", b.data, expected_version=1, draft_revision=b.revision)
    with pytest.raises(StoreError, match="version 2, you had 1"):
        history.save_draft("f1", with_rooms("x"), expected_revision=0, base_version=1)
    assert history.draft("f1") is None and any_store.get_layout("f1").version == 2


# -- the console's routes ------------------------------------------------------------------------
def draft_body(layout: dict, revision: int = 0, base: int = 0, here: dict | None = None) -> dict:
    return {"revision": revision, "base_version": base, "layout": layout, "here": here or {}}


def test_a_draft_leaves_the_screens_alone_until_published(server, console, floor, rooms):
    display, credential = server.add_display(floor, name="Lobby")
    assert console.api(
        "PUT", f"/admin/floors/{floor}/layout.json", {"version": 0, "layout": a_layout(rooms)}
    ).json == {"version": 1}
    with connect(server.socket_url(credential), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        layout = a_layout(rooms)
        layout["rooms"][rooms[1]] = {"outline": square(200, 50), "door": None}
        saved = console.api(
            "PUT",
            f"/admin/floors/{floor}/draft.json",
            draft_body(layout, base=1, here={str(display.id): [10, 10]}),
        )
        assert saved.status_code == 200, saved.json
        assert saved.json["revision"] == 1
        assert saved.json["diff"] == {
            "added": 1, "removed": 0, "moved": 0, "corridors": False, "scale": False, "here": 1
        }  # fmt: skip
        assert server.svc.store.get_layout(floor).version == 1  # kiosks still read version 1
        for _ in range(2):  # heartbeats come every second; a reload would come first
            assert json.loads(ws.recv(timeout=10))["type"] != "reload"
        assert "here" not in server.svc.store.get_display(display.id).settings
        doc = console.get(f"/admin/floors/{floor}/layout.json").json
        assert set(doc["layout"]["rooms"]) == {rooms[0], rooms[1]}  # the editor gets the draft
        assert doc["version"] == 1 and doc["draft"]["revision"] == 1
        assert [v["version"] for v in doc["versions"]] == [1]
        plans_page = console.get("/admin/plans").get_data(as_text=True)
        assert "Draft, not published" in plans_page and "1 room added" in plans_page

        # A stale revision is refused, as is a room of another floor.
        stale = console.api("PUT", f"/admin/floors/{floor}/draft.json", draft_body(layout))
        assert stale.status_code == 409 and stale.json["cause"] == "published"
        assert "published as version 1 by alice at " in stale.json["message"]
        bad = dict(layout, rooms={"spc_elsewhere": {"outline": square(0, 0), "door": None}})
        refused = console.api("PUT", f"/admin/floors/{floor}/draft.json", draft_body(bad, 1, 1))
        assert refused.status_code == 400 and "spc_elsewhere" in refused.json["message"]

        published = console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 1})
        assert published.json == {"version": 2}
        assert next_of(ws, "reload") == {"type": "reload"}  # only now do the screens reload
    assert set(server.svc.store.get_layout(floor).data["rooms"]) == {rooms[0], rooms[1]}
    assert server.svc.store.get_display(display.id).settings["here"] == [10.0, 10.0]
    assert console.get(f"/admin/floors/{floor}/layout.json").json["draft"] is None
    again = console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 1})
    assert again.status_code == 409 and "no draft" in again.json["message"]


def test_publishing_reloads_the_floor_s_kiosks_and_a_version_comes_back_as_a_draft(
    server, console, floor, rooms
):
    _, credential = server.add_display(floor, name="Lobby")
    for n in (1, 2):
        saved = console.api(
            "PUT", f"/admin/floors/{floor}/draft.json", draft_body(with_rooms(*rooms[:n]), 0, n - 1)
        )
        assert saved.status_code == 200, saved.json
        assert saved.json["revision"] == n  # the second draft counts on from the first
        with connect(server.socket_url(credential), open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
            body = {"revision": n}
            published = console.api("POST", f"/admin/floors/{floor}/draft/publish", body)
            assert published.json == {"version": n}
            assert next_of(ws, "reload") == {"type": "reload"}
    restored = console.api("POST", f"/admin/floors/{floor}/versions/1/restore", {"revision": 0})
    assert restored.status_code == 200, restored.json
    assert restored.json["restored_from"] == 1 and restored.json["diff"]["removed"] == 1
    assert len(server.svc.store.get_layout(floor).data["rooms"]) == 2  # not live yet
    assert restored.json["revision"] == 3
    missing = console.api("POST", f"/admin/floors/{floor}/versions/99/restore", {"revision": 3})
    assert missing.status_code == 404
    discarded = console.api("POST", f"/admin/floors/{floor}/draft/discard", {"revision": 3})
    assert discarded.json == {"discarded": True}
    gone = console.api("POST", f"/admin/floors/{floor}/draft/discard", {"revision": 1})
    assert gone.status_code == 404
    for path, body in (
        (f"/admin/floors/{floor}/draft/publish", {"revision": "1"}),
        (f"/admin/floors/{floor}/draft/discard", []),
        (f"/admin/floors/{floor}/versions/1/restore", {"revision": -1}),
    ):
        answer = console.api("POST", path, body)
        assert answer.status_code == 400 and answer.json["message"], (path, answer.json)


def test_a_stale_editor_tab_cannot_overwrite_or_publish_a_later_draft(
    server, console, floor, rooms
):
    """Through the routes: A loads the editor with a draft; B publishes it and saves a new
    draft; A's autosave and A's Publish answer 409 and leave B's draft and the screens alone."""
    url = f"/admin/floors/{floor}/draft.json"
    first = console.api("PUT", url, draft_body(with_rooms(rooms[0])))
    assert first.status_code == 200, first.json
    tab_a = console.get(f"/admin/floors/{floor}/layout.json").json  # what A's editor loaded
    a_revision, a_version = tab_a["draft"]["revision"], tab_a["version"]

    # B (another tab) publishes the draft, then draws a new one.
    b_publish = console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 1})
    assert b_publish.json == {"version": 1}
    b = console.api("PUT", url, draft_body(with_rooms(*rooms[:2]), 0, 1)).json

    stale = console.api("PUT", url, draft_body(with_rooms(rooms[1]), a_revision, a_version))
    assert stale.status_code == 409, stale.json
    assert stale.json["message"].startswith("The draft was published as version 1 by")
    published = console.api(
        "POST", f"/admin/floors/{floor}/draft/publish", {"revision": a_revision}
    )
    assert published.status_code == 409 and published.json["cause"] == "saved"
    assert "The draft was saved in another tab or by another admin" in published.json["message"]
    doc = console.get(f"/admin/floors/{floor}/layout.json").json
    assert doc["version"] == 1 and doc["draft"]["revision"] == b["revision"]
    assert set(doc["layout"]["rooms"]) == set(rooms[:2])  # B's draft, untouched
    assert set(server.svc.store.get_layout(floor).data["rooms"]) == {rooms[0]}
    assert b["revision"] > a_revision  # counted on: a new draft's first save is not 1 again


def test_draft_routes_refuse_anonymous_callers_and_the_preview_is_admin_only(
    server, console, floor, rooms
):
    anonymous = server.app.test_client()
    assert anonymous.get(f"/admin/floors/{floor}/preview").status_code == 302
    for path in ("draft/publish", "draft/discard", "versions/1/restore"):
        assert anonymous.post(f"/admin/floors/{floor}/{path}", json={}).status_code == 401
    assert anonymous.put(f"/admin/floors/{floor}/draft.json", json={}).status_code == 401
    no_token = console.api(
        "PUT", f"/admin/floors/{floor}/draft.json", draft_body(with_rooms(rooms[0])), csrf=False
    )
    assert no_token.status_code == 403


def test_the_preview_is_the_kiosk_page_over_the_draft_framed_by_the_console_only(
    server, console, floor, rooms
):
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    display, _ = server.add_display(floor, name="Lobby")
    console.api("PUT", f"/admin/floors/{floor}/layout.json",
                {"version": 0, "layout": with_rooms(rooms[0])})  # fmt: skip
    here = {str(display.id): [30, 40]}
    console.api("PUT", f"/admin/floors/{floor}/draft.json",
                draft_body(with_rooms(rooms[0], rooms[1]), 0, 1, here))  # fmt: skip
    page = console.get(f"/admin/floors/{floor}/preview")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    config = json.loads(re.search(r'id="kiosk-config"[^>]*>(.*?)</script>', html).group(1))
    assert set(config["wayfinding"]["rooms"]) == {rooms[0], rooms[1]}  # the draft's rooms
    assert config["wayfinding"]["here"] == [30, 40]  # and its "you are here"
    # The display's own settings: the page reloads itself when its socket's settings differ.
    assert config["settings"] == server.svc.store.get_display(display.id).settings
    assert config["socket"].startswith("/ws/kiosk/p") and config["preview"] is True
    assert config["sw"] is None and config["storage_key"] is None
    assert "frame-ancestors 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    # Never a "paired" cookie in the console's browser (only the session's own).
    assert not any(PAIRED_COOKIE in c for c in page.headers.getlist("Set-Cookie"))
    # The preview's credential is the display's preview, not its pairing credential.
    assert server.svc.store.credential(display) not in html
    assert console.get(f"/admin/floors/{floor}/preview?display=999").status_code == 404
    assert console.get("/admin/floors/no_such_floor/preview").status_code == 404


# -- in Chromium -------------------------------------------------------------------------------
def _drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*_to_client(page, *start))
    page.mouse.down()
    page.mouse.move(*_to_client(page, (start[0] + end[0]) / 2, (start[1] + end[1]) / 2), steps=3)
    page.mouse.move(*_to_client(page, *end), steps=3)
    page.mouse.up()


def _rectangle(page, sid: str, start, end) -> None:
    _drag(page, start, end)
    expect(page.locator("#assign-panel")).to_be_visible()
    page.select_option("#assign-space", sid)
    page.click("#assign-ok")
    expect(page.locator(f'#canvas g.room-shape[data-space-id="{sid}"]')).to_have_count(1)


@pytest.mark.browser
def test_three_rectangles_as_a_draft_previewed_then_published_then_an_older_one_restored(
    server, sim, floor, rooms, browser
):
    for rid in rooms:
        sim.world.set_space(rid, presence=False, health="healthy")
    wait_until(
        lambda: server.svc.feeds.touch(floor).snapshot()["rooms"][rooms[0]]["state"] == "free",
        timeout=10,
        message="the rooms are free in the feed",
    )
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    first = with_rooms(rooms[0])
    server.svc.store.put_layout(floor, first, "earlier")  # screens show one room
    LayoutHistory(server.svc.store).publish(floor, first, expected_version=1)  # version 2, kept
    make_admin(server.svc)
    _, credential = server.add_display(floor, name="Lobby east")
    assert len(rooms) >= 4
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        kiosk = ctx.new_page()
        kiosk.goto(f"{server.url}/kiosk/{credential}")
        shapes = kiosk.locator("g.room-shape")
        expect(shapes).to_have_count(1, timeout=SERVER_MS)

        page = ctx.new_page()
        problems = _watch(page)
        _open_editor(page, server, floor)
        expect(page.locator("#draft-state")).to_contain_text("No draft")
        page.get_by_role("toolbar", name="Drawing tools").get_by_role(
            "button", name="Rectangle room"
        ).click()
        _rectangle(page, rooms[1], (150, 150), (230, 220))
        # Started 2 units off the first rectangle's corner (8 px snap, about 3 units here): it
        # snaps onto that corner; the next one's far corner snaps onto the plan's bottom edge.
        _rectangle(page, rooms[2], (232, 151), (320, 220))
        _rectangle(page, rooms[3], (151, 222), (230, 298))
        second = _points(
            page.locator(f'#canvas g.room-shape[data-space-id="{rooms[2]}"] polygon').get_attribute(
                "points"
            )
        )
        assert second[0] == (230.0, 150.0), second  # shares the first rectangle's corner
        third = _points(
            page.locator(f'#canvas g.room-shape[data-space-id="{rooms[3]}"] polygon').get_attribute(
                "points"
            )
        )
        assert third[2][1] == 300.0, third  # pulled onto the plan's bottom edge

        page.click("#save-draft")
        expect(page.locator("#draft-state")).to_contain_text(
            "Draft, not published", timeout=SERVER_MS
        )
        expect(page.locator("#draft-state")).to_contain_text("3 rooms added, 0 removed, 0 moved")
        # Saved at a time in the floor's zone, named, not the browser's (this one runs in UTC).
        zone = server.svc.directory.time_zone(floor)
        assert zone and zone != "UTC", zone
        # Written as the plans page and the audit trail write times: "2026-12-06 06:23 Zone".
        local = datetime.now(ZoneInfo(zone))
        expect(page.locator("#draft-state")).to_contain_text(
            re.compile(rf"Saved {local:%Y-%m-%d} \d\d:\d\d {re.escape(zone)}")
        )
        assert server.svc.store.get_layout(floor).version == 2
        # The real kiosk page, reloaded, still shows the published layout.
        kiosk.reload()
        expect(kiosk.locator("g.room-shape")).to_have_count(1, timeout=SERVER_MS)

        # The preview: the kiosk page over the draft, live (its rooms coloured by state).
        loads: list[str] = []
        page.on("framenavigated", lambda f: loads.append(f.url) if "/preview" in f.url else None)
        page.click("#preview-show")
        frame = page.frame_locator("#preview-frame")
        expect(frame.locator("g.room-shape")).to_have_count(4, timeout=SERVER_MS)
        expect(frame.locator(f'g.room-shape[data-space-id="{rooms[2]}"]')).to_have_attribute(
            "data-state", "free", timeout=SERVER_MS
        )
        expect(frame.locator("html")).to_have_attribute("data-feed", "live", timeout=SERVER_MS)
        box = page.locator("#preview-box").bounding_box()
        assert abs(box["width"] / box["height"] - 16 / 9) < 0.02, box
        expect(frame.locator("html")).to_have_attribute("data-orientation", "landscape")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "editor-draft-preview.png"), full_page=True)
        page.check("input[name=preview-orientation][value=portrait]")
        # The same page lays itself out for a portrait screen (the display follows its shape).
        expect(frame.locator("html")).to_have_attribute(
            "data-orientation", "portrait", timeout=SERVER_MS
        )
        box = page.locator("#preview-box").bounding_box()
        assert abs(box["height"] / box["width"] - 16 / 9) < 0.02, box
        page.screenshot(path=str(SCREENSHOTS / "editor-draft-portrait.png"), full_page=True)
        assert len(loads) == 1, loads  # one page: no reload for the shape, none by itself

        # Publish with the keyboard alone: the kiosk reloads and shows the four rooms.
        page.locator("#publish").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#editor-status")).to_contain_text(
            "Published (version 3)", timeout=SERVER_MS
        )
        expect(page.locator("#draft-state")).to_contain_text("No draft")
        expect(kiosk.locator("g.room-shape")).to_have_count(4, timeout=SERVER_MS)
        assert server.svc.store.get_layout(floor).version == 3

        # Version 2 comes back as the draft (the screens keep version 3 until published).
        restore = page.locator('#version-list li[data-version="2"] button')
        restore.focus()
        page.keyboard.press("Enter")
        expect(page.locator("#draft-state")).to_contain_text(
            "restored from version 2", timeout=SERVER_MS
        )
        expect(page.locator("#draft-state")).to_contain_text("0 rooms added, 3 removed")
        expect(page.locator("#canvas g.room-shape")).to_have_count(1)
        expect(frame.locator("g.room-shape")).to_have_count(1, timeout=SERVER_MS)
        kiosk.reload()
        expect(kiosk.locator("g.room-shape")).to_have_count(4, timeout=SERVER_MS)
        page.click("#publish")
        expect(page.locator("#editor-status")).to_contain_text(
            "Published (version 4)", timeout=SERVER_MS
        )
        expect(kiosk.locator("g.room-shape")).to_have_count(1, timeout=SERVER_MS)
        items = page.locator("#version-list li")
        expect(items.first).to_contain_text("from version 2")
        expect(items.first).to_contain_text("live")
        assert not problems, problems
    finally:
        ctx.close()


@pytest.mark.browser
def test_points_snap_to_rooms_and_edges_unless_s_turns_it_off_and_names_avoid_corridors(
    server, floor, rooms, browser
):
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    layout = with_rooms()
    layout["rooms"] = {rooms[0]: {"outline": square(100, 100, 80), "door": None}}
    # A corridor point right where the room's name would sit (its centre).
    layout["nodes"] = [{"id": "n1", "x": 140, "y": 140, "kind": "corridor"}]
    server.svc.store.put_layout(floor, layout, "earlier")
    make_admin(server.svc)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        problems = _watch(page)
        _open_editor(page, server, floor)
        label = page.locator(f'#canvas text[data-label-for="{rooms[0]}"]')
        expect(label).to_have_attribute("data-moved", "true")
        box = label.evaluate(
            "t => { const b = t.getBBox(); return [b.x, b.y, b.width, b.height]; }"
        )
        x, y, w, h = box
        assert not (x - 5 <= 140 <= x + w + 5 and y - 5 <= 140 <= y + h + 5), box
        assert 100 <= y and y + h <= 180, box  # still inside its room

        tools = page.get_by_role("toolbar", name="Drawing tools")
        tools.get_by_role("button", name="Polygon room").click()
        # 2-3 units off a corner, a wall and the plan's top edge: each lands exactly.
        for point in ((181.5, 101.5), (260, 2), (262, 160), (181.5, 150)):
            page.mouse.click(*_to_client(page, *point))
        page.keyboard.press("Enter")
        page.select_option("#assign-space", rooms[1])
        page.click("#assign-ok")
        outline = _points(
            page.locator(f'#canvas g.room-shape[data-space-id="{rooms[1]}"] polygon').get_attribute(
                "points"
            )
        )
        assert outline[0] == (180.0, 100.0), outline  # the other room's corner
        assert outline[1][1] == 0.0, outline  # the plan's edge
        assert outline[3][0] == 180.0 and abs(outline[3][1] - 150) < 1.5, outline  # its wall

        # S turns snapping off: the same kind of point stays where it was clicked.
        page.keyboard.press("s")
        expect(page.locator("#snap")).not_to_be_checked()
        tools.get_by_role("button", name="Rectangle room").click()
        page.mouse.move(*_to_client(page, 20, 100))
        page.mouse.down()
        page.mouse.move(*_to_client(page, 60, 140), steps=3)
        page.mouse.move(*_to_client(page, 97, 160), steps=3)
        page.mouse.up()
        page.select_option("#assign-space", rooms[2])
        page.click("#assign-ok")
        free = _points(
            page.locator(f'#canvas g.room-shape[data-space-id="{rooms[2]}"] polygon').get_attribute(
                "points"
            )
        )
        assert abs(free[1][0] - 97) < 1.2 and free[1][0] != 100.0, free
        # A tiny drag is no room.
        page.keyboard.press("S")
        expect(page.locator("#snap")).to_be_checked()
        page.mouse.move(*_to_client(page, 300, 250))
        page.mouse.down()
        page.mouse.move(*_to_client(page, 301, 251))
        page.mouse.up()
        expect(page.locator("#editor-status")).to_contain_text("Drag from one corner")
        expect(page.locator("#assign-panel")).to_be_hidden()
        # The drawing goes into the draft by itself.
        expect(page.locator("#draft-state")).to_contain_text(
            "Draft, not published", timeout=SERVER_MS
        )
        draft = LayoutHistory(server.svc.store).draft(floor)
        assert set(draft.data["rooms"]) == {rooms[0], rooms[1], rooms[2]}
        assert server.svc.store.get_layout(floor).version == 1

        # Discarded (after a confirmation): back to the published layout, nothing published.
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#discard")
        expect(page.locator("#draft-state")).to_contain_text("No draft", timeout=SERVER_MS)
        expect(page.locator("#canvas g.room-shape")).to_have_count(1)
        assert LayoutHistory(server.svc.store).draft(floor) is None
        assert server.svc.store.get_layout(floor).version == 1
        assert not problems, problems
    finally:
        ctx.close()


@pytest.mark.browser
def test_doors_snap_onto_walls_and_corridor_points_onto_walls_and_edges_unless_s_is_off(
    server, floor, rooms, browser
):
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    layout = with_rooms()
    layout["rooms"] = {rooms[0]: {"outline": square(100, 100, 80), "door": None}}
    server.svc.store.put_layout(floor, layout, "earlier")
    make_admin(server.svc)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        problems = _watch(page)
        _open_editor(page, server, floor)
        tools = page.get_by_role("toolbar", name="Drawing tools")
        tools.get_by_role("button", name="Door").click()
        # Two units inside the room's right wall, near its top corner too: on the wall, not
        # the corner (a door in a corner has no side to walk through).
        page.mouse.move(*_to_client(page, 178, 140))
        expect(page.locator("#canvas .snap-mark")).to_have_attribute("data-kind", "wall")
        page.mouse.click(*_to_client(page, 178, 140))
        page.mouse.click(*_to_client(page, 178.5, 103))
        tools.get_by_role("button", name="Corridor").click()
        # Off the room's wall, then off the plan's top edge, then (S off) exactly as clicked.
        page.mouse.click(*_to_client(page, 182, 150))
        page.mouse.click(*_to_client(page, 262, 2))
        page.keyboard.press("Escape")
        page.keyboard.press("s")
        expect(page.locator("#snap")).not_to_be_checked()
        page.mouse.click(*_to_client(page, 182.5, 230))
        expect(page.locator("#draft-state")).to_contain_text(
            "Draft, not published", timeout=SERVER_MS
        )

        def saved():
            draft = LayoutHistory(server.svc.store).draft(floor)
            return draft if draft and len(draft.data["nodes"]) == 3 else None

        draft = wait_until(saved, timeout=SERVER_MS / 1000, message="the draft with 3 points")
        door = draft.data["rooms"][rooms[0]]["door"]
        assert door[0] == 180.0 and abs(door[1] - 103) < 1.5 and door[1] != 100.0, door
        nodes = [(n["x"], n["y"]) for n in draft.data["nodes"]]
        assert nodes[0][0] == 180.0 and abs(nodes[0][1] - 150) < 1.5, nodes  # the wall
        assert nodes[1][1] == 0.0 and abs(nodes[1][0] - 262) < 1.5, nodes  # the plan's edge
        assert abs(nodes[2][0] - 182.5) < 1.2 and nodes[2][0] != 180.0, nodes  # as clicked
        assert not problems, problems
    finally:
        ctx.close()


def test_a_viewer_sees_drafts_and_the_preview_but_saves_nothing(server, floor, rooms):
    from tests.admin_helpers import Console

    make_admin(server.svc)  # the owner
    make_admin(server.svc, "vera", role="viewer")
    server.add_display(floor, name="Lobby")
    history = LayoutHistory(server.svc.store)
    history.save_draft(floor, with_rooms(rooms[0]), expected_revision=0, base_version=0)
    viewer = Console(server.app)
    assert viewer.login("vera").status_code == 302
    page = viewer.get(f"/admin/floors/{floor}/layout").get_data(as_text=True)
    config = json.loads(re.search(r'id="editor-config">(.*?)</script>', page).group(1))
    assert config["can_write"] is False  # the page offers no saving
    assert viewer.get(f"/admin/floors/{floor}/layout.json").json["draft"]["revision"] == 1
    assert viewer.get(f"/admin/floors/{floor}/preview").status_code == 200
    for method, path, body in (
        ("PUT", "draft.json", draft_body(with_rooms(rooms[1]), 1)),
        ("POST", "draft/publish", {"revision": 1}),
        ("POST", "draft/discard", {"revision": 1}),
        ("POST", "versions/1/restore", {"revision": 1}),
    ):
        refused = viewer.api(method, f"/admin/floors/{floor}/{path}", body)
        assert refused.status_code == 403, (path, refused.status_code)
    assert history.draft(floor).revision == 1 and server.svc.store.get_layout(floor) is None
