"""Every published layout is a version that can be restored, whatever wrote it: a floor's first
layout (drawn before drafts existed, by the demo, `Store.put_layout`, or the JSON API's PUT) was
never kept, so publishing a bad draft over it could not be undone. In the store on both backends
(the migration that keeps the live layouts included) and through the console's routes."""

from __future__ import annotations

from signage.store.migrations import MIGRATIONS
from signage.store.plan_versions import LayoutHistory
from tests import pg_server as pgs
from tests.test_editor_drafts import draft_body, with_rooms

pg_server, pg_url, any_store = pgs.pg_server, pgs.pg_url, pgs.any_store

BACKFILL = next(m for m in MIGRATIONS if isinstance(m, str) and "INSERT INTO layout_versions" in m)


def test_a_layout_saved_directly_is_a_version_and_survives_a_publish_over_it(any_store):
    history = LayoutHistory(any_store)
    any_store.put_layout("f1", with_rooms("a", "b"), "demo")
    [first] = history.versions("f1")
    assert (first.version, first.published_by, set(first.data["rooms"])) == (1, "demo", {"a", "b"})
    draft = history.save_draft("f1", with_rooms("z"), expected_revision=0, base_version=1)
    history.publish("f1", draft.data, expected_version=1, draft_revision=draft.revision)
    assert [v.version for v in history.versions("f1")] == [2, 1]
    assert set(history.version("f1", 1).data["rooms"]) == {"a", "b"}  # the undo is there


def test_a_live_layout_from_before_drafts_is_kept_when_published_over_and_by_the_migration(
    any_store,
):
    history = LayoutHistory(any_store)
    for floor in ("old", "older"):
        any_store.put_layout(floor, with_rooms("a"), "earlier")
    # As a database from before this change holds them: live layouts, no versions.
    with any_store.transaction() as conn:
        conn.execute("DELETE FROM layout_versions")
    assert history.versions("old") == [] and history.versions("older") == []
    # Published over (the first draft, or the JSON API's PUT): the live one is kept first.
    history.publish("old", with_rooms("b"), expected_version=1, published_by="alice")
    assert [v.version for v in history.versions("old")] == [2, 1]
    v1 = history.version("old", 1)
    assert (set(v1.data["rooms"]), v1.published_by) == ({"a"}, "earlier")
    # The migration keeps every live layout not kept yet, and nothing twice.
    with any_store.transaction() as conn:
        conn.execute(BACKFILL)
    assert [v.version for v in history.versions("older")] == [1]
    assert [v.version for v in history.versions("old")] == [2, 1]


def test_the_first_layout_can_be_restored_after_a_bad_draft_is_published(server, console):
    floor = server.svc.directory.floors()[0].id
    rooms = [r.id for r in server.svc.directory.rooms_of(floor)]
    server.svc.store.put_layout(floor, with_rooms(*rooms[:3]), "demo")  # as the demo writes it
    url = f"/admin/floors/{floor}/draft.json"
    saved = console.api("PUT", url, draft_body(with_rooms(rooms[0]), 0, 1))
    assert saved.status_code == 200, saved.json
    published = console.api(
        "POST", f"/admin/floors/{floor}/draft/publish", {"revision": saved.json["revision"]}
    )
    assert published.json == {"version": 2}
    doc = console.get(f"/admin/floors/{floor}/layout.json").json
    assert [v["version"] for v in doc["versions"]] == [2, 1]
    assert doc["versions"][1]["rooms"] == 3 and not doc["versions"][1]["live"]
    restored = console.api("POST", f"/admin/floors/{floor}/versions/1/restore", {"revision": 0})
    assert restored.status_code == 200, restored.json
    back = console.api(
        "POST", f"/admin/floors/{floor}/draft/publish", {"revision": restored.json["revision"]}
    )
    assert back.json == {"version": 3}
    assert set(server.svc.store.get_layout(floor).data["rooms"]) == set(rooms[:3])
