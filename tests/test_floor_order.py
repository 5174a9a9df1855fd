"""A building's floor order: Density's `children_ids` first, an admin's override over it, one
order for the console, the JSON API and the kiosks' other-floors panel."""

from __future__ import annotations

from tests.test_api import make_token

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).


def _building(server):
    tree = server.svc.directory.tree()
    floor = server.svc.directory.floors(building_order=True)[0]
    return tree.building_of(floor.id)


def test_the_api_lists_floors_in_the_buildings_order_and_takes_an_override(server):
    client, headers = server.app.test_client(), make_token(server.svc)
    building = _building(server)
    density_order = list(building.children_ids)
    url = f"/api/admin/buildings/{building.id}/floor-order"
    got = client.get(url, headers=headers).json
    assert [f["id"] for f in got["floors"]] == density_order and got["custom"] is False
    listed = client.get("/api/admin/buildings", headers=headers).json["buildings"]
    assert [b["id"] for b in listed] == [building.id]

    wanted = density_order[::-1]
    put = client.put(url, json={"floor_ids": wanted}, headers=headers)
    assert put.status_code == 200 and put.json["custom"] is True
    assert [f["id"] for f in put.json["floors"]] == wanted
    floors = client.get("/api/admin/floors", headers=headers).json["floors"]
    assert [f["id"] for f in floors] == wanted
    assert all(f["building_id"] == building.id for f in floors)
    # The kiosks' other-floors panel reads the same order.
    assert [f.id for f in server.svc.building.siblings(wanted[0])] == wanted[1:]

    # A partial list: the floors left out follow in the order they had.
    put = client.put(url, json={"floor_ids": [density_order[2]]}, headers=headers)
    expected = [density_order[2], *(f for f in wanted if f != density_order[2])]
    assert [f["id"] for f in put.json["floors"]] == expected

    # Kept in the store: a restart (a new directory reading it) keeps the order.
    assert server.svc.store.floor_orders()[building.id] == expected

    reset = client.put(url, json={"floor_ids": []}, headers=headers)
    assert [f["id"] for f in reset.json["floors"]] == density_order
    assert reset.json["custom"] is False and server.svc.store.floor_orders() == {}


def test_bad_orders_are_refused_with_the_field_named(server):
    client, headers = server.app.test_client(), make_token(server.svc)
    building = _building(server)
    url = f"/api/admin/buildings/{building.id}/floor-order"
    first = building.children_ids[0]
    for body in ({}, {"floor_ids": "x"}, {"floor_ids": [first, first]}, {"floor_ids": ["spc_no"]}):
        response = client.put(url, json=body, headers=headers)
        assert response.status_code == 400, body
        assert "floor_ids" in response.json["fields"]
    unknown = client.put(
        "/api/admin/buildings/spc_nope/floor-order", json={"floor_ids": []}, headers=headers
    )
    assert unknown.status_code == 404
    reader = make_token(server.svc, role="viewer", name="reader")
    refused = client.put(url, json={"floor_ids": []}, headers=reader)
    assert refused.status_code == 403
    assert server.svc.store.floor_orders() == {}


def test_the_console_moves_floors_with_up_and_down_buttons(server, console):
    building = _building(server)
    order = list(building.children_ids)
    page = console.get("/admin/plans/order").get_data(as_text=True)
    assert page.index(f'data-floor-id="{order[0]}"') < page.index(f'data-floor-id="{order[1]}"')
    moved = console.post(f"/admin/plans/order/{building.id}/{order[0]}/down", {})
    assert moved.status_code == 302
    assert f"moved={order[0]}" in moved.headers["Location"]
    now = [f.id for f in server.svc.directory.floors(building_order=True)]
    assert now == [order[1], order[0], *order[2:]]
    page = console.get(moved.headers["Location"]).get_data(as_text=True)
    assert page.index(f'data-floor-id="{order[1]}"') < page.index(f'data-floor-id="{order[0]}"')
    assert "autofocus" in page and "Back to Density" in page
    # The floor picker of the display form follows it too.
    form = console.get("/admin/displays/new").get_data(as_text=True)
    assert form.index(f'value="{order[1]}"') < form.index(f'value="{order[0]}"')
    console.post(f"/admin/plans/order/{building.id}/reset", {})
    assert [f.id for f in server.svc.directory.floors(building_order=True)] == order
