"""Publishing a floor's draft as one transaction with its "you are here" moves (audited, all or
nothing, other display settings kept), rooms checked against the last rooms Density listed, a
"draft started" audit entry, conflicts that say what happened, and the draft routes of the JSON
API over real HTTP."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest
from playwright.sync_api import expect

from signage.core.layout import empty_layout
from signage.store import plans
from signage.store.audit import AuditFilter
from signage.store.plan_versions import LayoutHistory
from signage.web import auth
from tests import pg_server as pgs
from tests.admin_helpers import Console, make_admin
from tests.helpers import free_port
from tests.test_editor import PLAN_SVG, SERVER_MS, _open_editor, square

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


def draft_body(layout: dict, revision: int = 0, base: int = 0, here: dict | None = None) -> dict:
    return {"revision": revision, "base_version": base, "layout": layout, "here": here or {}}


def token(svc, role: str = "admin", name: str = "robot") -> dict[str, str]:
    secret = auth.new_api_token()
    svc.store.add_api_token(name, auth.token_hash(secret), role)
    return {"Authorization": f"Bearer {secret}"}


def entries(svc, action: str) -> list:
    return svc.store.audit_entries(AuditFilter(action=action), limit=100)


# -- the store, on SQLite and PostgreSQL -----------------------------------------------------------
def test_a_publish_moves_only_here_and_an_error_in_it_publishes_nothing(any_store):
    history = LayoutHistory(any_store)
    lobby = any_store.add_display("Lobby", "f1")
    other = any_store.add_display("Elsewhere", "f2")
    any_store.update_display_settings(lobby.id, {"theme": "dark", "here": [1.0, 1.0]})
    draft = history.save_draft("f1", with_rooms("a"), expected_revision=0, base_version=0,
                               here={lobby.id: [5.0, 6.0], other.id: [7.0, 7.0]})  # fmt: skip
    # Another admin changes the display's language after the draft was saved.
    any_store.update_display_settings(
        lobby.id, {**any_store.get_display(lobby.id).settings, "language": "de"}
    )

    # Anything failing inside the publish (here: its audit step) leaves everything as it was.
    def fail(moves):
        raise RuntimeError("the audit entry could not be written")

    with pytest.raises(RuntimeError):
        history.publish("f1", draft.data, expected_version=0, draft_revision=draft.revision,
                        here=draft.here, moved=fail)  # fmt: skip
    assert any_store.get_layout("f1") is None and history.draft("f1") is not None
    assert any_store.get_display(lobby.id).settings["here"] == [1.0, 1.0]

    seen = []
    live = history.publish("f1", draft.data, expected_version=0, draft_revision=draft.revision,
                           here=draft.here, moved=seen.extend)  # fmt: skip
    assert live.version == 1 and history.draft("f1") is None
    assert any_store.get_display(lobby.id).settings == {
        "theme": "dark", "language": "de", "here": [5.0, 6.0]
    }  # fmt: skip
    assert "here" not in any_store.get_display(other.id).settings  # not a display of f1
    [move] = seen
    assert (move.display_id, move.name, move.before, move.after) == (
        lobby.id, "Lobby", [1.0, 1.0], [5.0, 6.0]
    )  # fmt: skip
    # Unplacing drops the key alone; a point already there is no move.
    history.publish("f1", draft.data, expected_version=1, here={lobby.id: None})
    assert any_store.get_display(lobby.id).settings == {"theme": "dark", "language": "de"}
    seen.clear()
    history.publish("f1", draft.data, expected_version=2, here={lobby.id: None}, moved=seen.extend)
    assert seen == []


# -- publishing through the editor's routes --------------------------------------------------------
def test_a_display_edit_landing_during_a_publish_survives_it(server, console, floor, rooms,
                                                             monkeypatch):  # fmt: skip
    """The publish used to re-read the floor's displays after committing and write each one's
    whole settings back: an edit landing between that read and the write was undone."""
    store = server.svc.store
    display, _ = server.add_display(floor, name="Lobby")
    saved = console.api(
        "PUT",
        f"/admin/floors/{floor}/draft.json",
        draft_body(with_rooms(rooms[0]), here={str(display.id): [10, 10]}),
    )
    assert saved.status_code == 200, saved.json
    reads = store.list_displays
    armed = {"on": True}

    def read_then_someone_edits(floor_id=None, *args, **kwargs):
        listed = reads(floor_id, *args, **kwargs)
        if armed["on"]:  # the other admin's save lands right after the publish read displays
            armed["on"] = False
            current = store.get_display(display.id)
            store.update_display_settings(display.id, {**current.settings, "language": "fr"})
        return listed

    monkeypatch.setattr(store, "list_displays", read_then_someone_edits)
    published = console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 1})
    assert published.json == {"version": 1}
    assert not armed["on"]
    settings = store.get_display(display.id).settings
    assert settings["language"] == "fr" and settings["here"] == [10.0, 10.0]


def test_a_failure_while_placing_displays_leaves_the_layout_unpublished(server, console, floor,
                                                                        rooms):  # fmt: skip
    display, _ = server.add_display(floor, name="Lobby")
    body = draft_body(with_rooms(rooms[0]), here={str(display.id): [10, 10]})
    assert console.api("PUT", f"/admin/floors/{floor}/draft.json", body).status_code == 200
    db = sqlite3.connect(server.svc.config["SIGNAGE_DATABASE"])
    try:  # the database refuses any change to a display, as a full disk or a lock error would
        db.execute(
            "CREATE TRIGGER refuse_displays BEFORE UPDATE ON displays"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
        db.commit()
        server.app.config["PROPAGATE_EXCEPTIONS"] = False  # the 500 page, not a raise
        refused = console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 1})
        assert refused.status_code == 500
        assert server.svc.store.get_layout(floor) is None  # nothing live
        assert LayoutHistory(server.svc.store).draft(floor).revision == 1  # the draft kept
        assert LayoutHistory(server.svc.store).versions(floor) == []
        assert entries(server.svc, "layout.publish") == []
        db.execute("DROP TRIGGER refuse_displays")
        db.commit()
    finally:
        db.close()
    published = console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 1})
    assert published.json == {"version": 1}
    assert server.svc.store.get_display(display.id).settings["here"] == [10.0, 10.0]


def test_the_publish_s_audit_entry_records_the_moves(server, console, floor, rooms):
    lobby, _ = server.add_display(floor, name="Lobby")
    cafe, _ = server.add_display(floor, name="Café key link")  # a name with "secret" words
    server.svc.store.update_display_settings(cafe.id, {"here": [30.0, 30.0]})
    here = {str(lobby.id): [10, 10], str(cafe.id): None}
    body = draft_body(with_rooms(rooms[0]), here=here)
    assert console.api("PUT", f"/admin/floors/{floor}/draft.json", body).status_code == 200
    published = console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 1})
    assert published.json == {"version": 1}
    [entry] = entries(server.svc, "layout.publish")
    assert entry.before["here"] == {
        str(lobby.id): {"display": "Lobby", "here": None},
        str(cafe.id): {"display": "Café key link", "here": [30.0, 30.0]},
    }
    assert entry.after["here"] == {
        str(lobby.id): {"display": "Lobby", "here": [10.0, 10.0]},
        str(cafe.id): {"display": "Café key link", "here": None},
    }
    assert entry.after["version"] == 1 and entry.after["rooms"] == 1
    assert "here" not in server.svc.store.get_display(cafe.id).settings
    # No moves: no "here" in the entry.
    body = draft_body(with_rooms(*rooms[:2]), revision=0, base=1)
    assert console.api("PUT", f"/admin/floors/{floor}/draft.json", body).status_code == 200
    revision = LayoutHistory(server.svc.store).draft(floor).revision
    console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": revision})
    latest = entries(server.svc, "layout.publish")[0]
    assert latest.after["version"] == 2 and "here" not in latest.after


def test_one_draft_started_entry_per_draft_not_per_autosave(server, console, floor, rooms):
    url = f"/admin/floors/{floor}/draft.json"
    assert console.api("PUT", url, draft_body(with_rooms(rooms[0]))).status_code == 200
    for revision in (1, 2, 3):  # autosaves
        layout = with_rooms(*rooms[: 1 + revision % 2])
        assert console.api("PUT", url, draft_body(layout, revision)).status_code == 200
    refused = console.api("PUT", url, draft_body(with_rooms(rooms[1])))  # a second "first" save
    assert refused.status_code == 409
    [started] = entries(server.svc, "layout.draft_started")
    assert started.target_id == floor and started.actor == "alice"
    assert started.after == {"base_version": 0, "rooms": 1}
    assert console.api("POST", f"/admin/floors/{floor}/draft/publish", {"revision": 4}).json == {
        "version": 1
    }
    assert console.api("PUT", url, draft_body(with_rooms(rooms[0]), 0, 1)).status_code == 200
    assert len(entries(server.svc, "layout.draft_started")) == 2


# -- conflicts say what happened ---------------------------------------------------------------
def test_a_stale_tab_hears_who_published_when_or_that_someone_else_saved(server, console, floor,
                                                                         rooms):  # fmt: skip
    url = f"/admin/floors/{floor}/draft.json"
    assert console.api("PUT", url, draft_body(with_rooms(rooms[0]))).status_code == 200
    # Published through the JSON API by a token while the tab still shows revision 1 over v0.
    api = server.app.test_client()
    headers = token(server.svc, name="robot")
    assert api.post(f"/api/admin/floors/{floor}/draft/publish", json={"revision": 1},
                    headers=headers).json == {"version": 1}  # fmt: skip
    stale = console.api("PUT", url, draft_body(with_rooms(*rooms[:2]), 1, 0))
    assert stale.status_code == 409 and stale.json["cause"] == "published"
    stored = server.svc.store.get_layout(floor)
    zone = server.svc.directory.time_zone(floor)
    assert zone and stored.updated_by == "token:robot"
    message = stale.json["message"]
    assert message.startswith("The draft was published as version 1 by API token robot at 20")
    assert re.search(rf" at \d{{4}}-\d\d-\d\d \d\d:\d\d {re.escape(zone)}\. Reload", message)
    assert (stale.json["version"], stale.json["by"]) == (1, "token:robot")
    # Its Publish (with the version it loaded) says the same.
    publish = console.api("POST", f"/admin/floors/{floor}/draft/publish",
                          {"revision": 1, "base_version": 0})  # fmt: skip
    assert publish.status_code == 409 and publish.json["cause"] == "published"

    # A draft saved by someone else over the same version: said so, with who.
    first = console.api("PUT", url, draft_body(with_rooms(rooms[0]), 0, 1)).json
    other = api.put(f"/api/admin/floors/{floor}/draft", headers=headers,
                    json=draft_body(with_rooms(*rooms[:2]), first["revision"], 1))  # fmt: skip
    assert other.status_code == 200, other.json
    stale = console.api("PUT", url, draft_body(with_rooms(rooms[1]), first["revision"], 1))
    assert stale.status_code == 409 and stale.json["cause"] == "saved"
    said = stale.json["message"]
    assert said.startswith(
        "The draft was saved in another tab or by another admin since you opened it"
        " (API token robot, 20"
    ), said
    assert re.search(rf", \d{{4}}-\d\d-\d\d \d\d:\d\d {re.escape(zone)}\)\. Reload", said)
    assert "token:" not in said and "session:" not in said
    # The same admin in another tab: their account's name, not its internal label.
    mine = console.get(f"/admin/floors/{floor}/layout.json").json["draft"]["revision"]
    assert console.api("PUT", url, draft_body(with_rooms(rooms[0]), mine, 1)).status_code == 200
    stale = console.api("PUT", url, draft_body(with_rooms(rooms[1]), mine, 1))
    assert stale.status_code == 409 and stale.json["by"].startswith("session:")
    account = stale.json["by"].split(":", 1)[1]
    assert f"since you opened it ({account}, 20" in stale.json["message"], stale.json


# -- rooms as Density last listed them ---------------------------------------------------------
def test_a_restored_version_names_rooms_that_left_the_floor_and_cannot_publish_them(
    server, console, floor, rooms
):
    history = LayoutHistory(server.svc.store)
    # Version 1 held a room that has left the floor since (Density no longer lists it there).
    history.publish(floor, with_rooms(rooms[0], "spc_left"), expected_version=0)
    history.publish(floor, with_rooms(rooms[0]), expected_version=1)
    restored = console.api("POST", f"/admin/floors/{floor}/versions/1/restore", {"revision": 0})
    assert restored.status_code == 200, restored.json
    assert restored.json["gone"] == ["spc_left"]
    doc = console.get(f"/admin/floors/{floor}/layout.json").json
    assert doc["draft"]["gone"] == ["spc_left"]
    assert any("spc_left" in w for w in doc["warnings"])
    [entry] = entries(server.svc, "layout.restore")
    assert entry.after["gone"] == ["spc_left"]
    refused = console.api(
        "POST", f"/admin/floors/{floor}/draft/publish", {"revision": restored.json["revision"]}
    )
    assert refused.status_code == 400 and "spc_left" in refused.json["message"]
    assert server.svc.store.get_layout(floor).version == 2


def test_without_the_floor_s_rooms_ever_known_nothing_is_published(make_server):
    # Nothing listens on this port: Density has never answered this server (no stored tree).
    server = make_server(DENSITY_API_URL=f"http://127.0.0.1:{free_port()}", SIGNAGE_BACKOFF_MAX=0.1)
    server.svc.client.max_retries = 0
    make_admin(server.svc)
    console = Console(server.app)
    assert console.login().status_code == 302
    server.svc.store.put_layout("flr_1", with_rooms("spc_known"), "earlier")
    # A draft may keep rooms already drawn (they are not live)...
    saved = console.api("PUT", "/admin/floors/flr_1/draft.json",
                        draft_body(with_rooms("spc_known"), 0, 1))  # fmt: skip
    assert saved.status_code == 200, saved.json
    assert saved.json["gone"] == []  # nothing to tell them by
    # ...but publishing waits for Density's list of the floor's rooms.
    refused = console.api("POST", "/admin/floors/flr_1/draft/publish", {"revision": 1})
    assert refused.status_code == 503 and refused.json["error"] == "density_unavailable"
    assert "have not been loaded from Density" in refused.json["message"]
    assert server.svc.store.get_layout("flr_1").version == 1
    assert LayoutHistory(server.svc.store).draft("flr_1").revision == 1
    direct = console.api(
        "PUT", "/admin/floors/flr_1/layout.json", {"version": 1, "layout": with_rooms("spc_known")}
    )
    assert direct.status_code == 503 and server.svc.store.get_layout("flr_1").version == 1


# -- the JSON API, over real HTTP ------------------------------------------------------------------
def test_the_api_saves_publishes_lists_restores_and_discards_drafts(server, floor, rooms):
    display, _ = server.add_display(floor, name="Lobby")
    admin = httpx.Client(base_url=f"{server.url}/api/admin", headers=token(server.svc), timeout=30)
    viewer = httpx.Client(
        base_url=f"{server.url}/api/admin",
        headers=token(server.svc, "viewer", "reader"),
        timeout=30,
    )
    with admin, viewer:
        base = f"/floors/{floor}"
        assert admin.get(f"{base}/draft").status_code == 404
        assert admin.get(f"{base}/versions").json() == {"live": 0, "versions": []}
        body = draft_body(with_rooms(rooms[0]), here={str(display.id): [10, 10]})
        saved = admin.put(f"{base}/draft", json=body)
        assert saved.status_code == 200, saved.text
        assert saved.json()["revision"] == 1 and saved.json()["diff"]["added"] == 1
        got = admin.get(f"{base}/draft").json()
        assert set(got["layout"]["rooms"]) == {rooms[0]}
        assert got["here"] == {str(display.id): [10.0, 10.0]} and got["version"] == 0
        assert viewer.get(f"{base}/draft").json()["revision"] == 1  # a viewer reads it

        # A viewer's token changes nothing.
        for method, path, payload in (
            ("PUT", "draft", draft_body(with_rooms(rooms[1]), 1)),
            ("POST", "draft/publish", {"revision": 1}),
            ("DELETE", "draft?revision=1", None),
            ("POST", "versions/1/restore", {"revision": 1}),
        ):
            answer = viewer.request(method, f"{base}/{path}", json=payload)
            assert answer.status_code == 403, (method, path, answer.status_code)
            assert "read-only access" in answer.json()["message"]
        assert server.svc.store.get_layout(floor) is None

        published = admin.post(f"{base}/draft/publish", json={"revision": 1})
        assert published.json() == {"version": 1}
        assert server.svc.store.get_display(display.id).settings["here"] == [10.0, 10.0]
        assert admin.get(f"{base}/draft").status_code == 404
        versions = admin.get(f"{base}/versions").json()
        assert versions["live"] == 1 and versions["versions"][0]["published_by"] == "token:robot"
        one = admin.get(f"{base}/versions/1").json()
        assert set(one["layout"]["rooms"]) == {rooms[0]} and one["live"] is True
        assert admin.get(f"{base}/versions/9").status_code == 404

        again = admin.post(f"{base}/draft/publish", json={"revision": 1})
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        restored = admin.post(f"{base}/versions/1/restore", json={"revision": 0})
        assert restored.status_code == 200 and restored.json()["restored_from"] == 1
        revision = restored.json()["revision"]
        assert admin.delete(f"{base}/draft", params={"revision": revision - 1}).status_code == 409
        assert admin.delete(f"{base}/draft", params={"revision": "x"}).status_code == 400
        assert admin.delete(f"{base}/draft", params={"revision": revision}).status_code == 204
        assert admin.delete(f"{base}/draft", params={"revision": revision}).status_code == 404
        assert admin.put(f"{base}/draft", json=[]).status_code == 400
        assert admin.get("/floors/nowhere/versions").status_code == 404

        doc = admin.get("/openapi.json").json()
        assert set(doc["paths"]["/floors/{floor_id}/draft"]) == {"get", "put", "delete"}
        assert "/floors/{floor_id}/versions/{version}/restore" in doc["paths"]
    actions = [e.action for e in server.svc.store.audit_entries(limit=20)]
    assert actions[:4] == [
        "layout.discard_draft", "layout.restore", "layout.publish", "layout.draft_started"
    ]  # fmt: skip


# -- the editor shows what happened, with Reload ---------------------------------------------------
@pytest.mark.browser
def test_a_stale_editor_says_the_draft_was_published_and_reloads(server, floor, rooms, browser):
    plans.store_plan(server.svc.store, server.svc.config, floor, PLAN_SVG, "test")
    make_admin(server.svc)
    history = LayoutHistory(server.svc.store)
    history.save_draft(floor, with_rooms(rooms[0]), expected_revision=0, base_version=0)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        _open_editor(page, server, floor)
        editor = page.locator("#editor")
        expect(editor).to_have_attribute("data-revision", "1")
        # Someone publishes the draft through the API while this tab is open.
        api = server.app.test_client()
        answer = api.post(f"/api/admin/floors/{floor}/draft/publish", json={"revision": 1},
                          headers=token(server.svc, name="robot"))  # fmt: skip
        assert answer.json == {"version": 1}
        page.fill("#metres", "48")
        page.click("#save-draft")
        status = page.locator("#editor-status")
        expect(status).to_contain_text(
            "Draft not saved: The draft was published as version 1 by API token robot at",
            timeout=SERVER_MS,
        )
        expect(status).to_contain_text(f" {server.svc.directory.time_zone(floor)}. Reload")
        expect(status).not_to_contain_text("someone else saved first")
        reload = status.get_by_role("button", name="Reload")
        expect(reload).to_be_visible()
        page.screenshot(path="/tmp/drafts-conflict.png")
        reload.click()
        expect(status).to_contain_text("Reloaded", timeout=SERVER_MS)
        expect(editor).to_have_attribute("data-version", "1")
        expect(editor).to_have_attribute("data-revision", "0")
    finally:
        ctx.close()
