"""The JSON admin API: tokens, roles, 404/403/400 answers, the OpenAPI document, no 5xx."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signage.web import auth
from tests.admin_helpers import Console, admin_rules, example_url, make_admin

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).


def make_token(svc, role: str = "admin", name: str = "ci") -> dict[str, str]:
    token = auth.new_api_token()
    svc.store.add_api_token(name, auth.token_hash(token), role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def floor(server):
    return server.svc.directory.floors()[0].id


@pytest.fixture
def api(server):
    """A test client and an admin token's headers."""
    return server.app.test_client(), make_token(server.svc)


def test_displays_crud_with_a_token(server, api, floor):
    client, headers = api
    created = client.post(
        "/api/admin/displays",
        json={"name": "Lobby", "floor_id": floor, "theme": "dark", "night": None},
        headers=headers,
    )
    assert created.status_code == 201, created.json
    display = created.json
    assert display["settings"]["theme"] == "dark" and display["kiosk_url"].endswith(
        server.svc.store.credential(server.svc.store.get_display(display["id"]))
    )
    listed = client.get("/api/admin/displays", headers=headers).json["displays"]
    assert [d["id"] for d in listed] == [display["id"]]
    patched = client.patch(
        f"/api/admin/displays/{display['id']}",
        json={"settings": {"min_capacity": 6, "night": {"start": "20:00", "end": "07:00"}}},
        headers=headers,
    )
    assert patched.status_code == 200
    assert patched.json["settings"]["min_capacity"] == 6
    assert patched.json["settings"]["theme"] == "dark"  # untouched fields keep their value
    assert patched.json["name"] == "Lobby"
    assert client.delete(f"/api/admin/displays/{display['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/admin/displays/{display['id']}", headers=headers).status_code == 404


def test_bad_input_gets_400_with_a_message_per_field(server, api, floor):
    client, headers = api
    response = client.post(
        "/api/admin/displays",
        json={"name": "", "floor_id": "spc_nope", "rotation": 45, "qr": "yes", "colour": 1},
        headers=headers,
    )
    assert response.status_code == 400
    fields = response.json["fields"]
    assert set(fields) == {"name", "floor_id", "rotation", "qr", "colour"}
    assert fields["colour"] == "unknown field"
    for body in (b"not json", b"[1, 2]", b"null", b'"text"'):
        r = client.post(
            "/api/admin/displays",
            data=body,
            headers={**headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json["error"] == "bad_request"


def test_missing_objects_are_404_and_unknown_routes_stay_json(server, api):
    client, headers = api
    assert client.get("/api/admin/displays/999", headers=headers).status_code == 404
    assert client.patch("/api/admin/displays/999", json={}, headers=headers).status_code == 404
    assert client.post("/api/admin/displays/999/revoke", headers=headers).status_code == 404
    assert client.get("/api/admin/floors/spc_nope/rooms", headers=headers).status_code == 404
    assert client.get("/api/admin/floors/spc_nope/plan", headers=headers).status_code == 404
    wrong_method = client.delete("/api/admin/displays", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.is_json


def test_roles_read_only_tokens_and_owner_only_routes(server, floor):
    client = server.app.test_client()
    display = server.svc.store.add_display("Lobby", floor)
    viewer = make_token(server.svc, "viewer", "dashboard")
    assert client.get("/api/admin/displays", headers=viewer).status_code == 200
    # A read-only token sees displays but never their credentials, and cannot change anything.
    shown = client.get(f"/api/admin/displays/{display.id}", headers=viewer).json
    assert "kiosk_url" not in shown and "socket_url" not in shown
    for method, path in (
        ("POST", "/api/admin/displays"),
        ("PATCH", f"/api/admin/displays/{display.id}"),
        ("DELETE", f"/api/admin/displays/{display.id}"),
        ("POST", f"/api/admin/displays/{display.id}/revoke"),
        ("POST", "/api/admin/pair"),
    ):
        assert client.open(path, method=method, json={}, headers=viewer).status_code == 403
    assert server.svc.store.get_display(display.id) is not None
    # Admin management is for owners: an admin token and an admin session get 403.
    assert client.get("/api/admin/admins", headers=make_token(server.svc)).status_code == 403
    make_admin(server.svc, "olga")  # the first admin: owner
    make_admin(server.svc, "adam")
    owner, plain = Console(server.app), Console(server.app)
    owner.login("olga")
    plain.login("adam")
    assert owner.api("GET", "/api/admin/admins").json["admins"][0]["role"] == "owner"
    assert plain.api("GET", "/api/admin/admins").status_code == 403
    assert plain.get("/admin/admins").status_code == 403
    assert plain.post("/admin/admins", {"username": "x", "password": "y" * 12}).status_code == 403


def test_pair_through_the_api(server, api, floor):
    client, headers = api
    display = server.svc.store.add_display("Lobby", floor)
    screen = server.app.test_client()
    page = screen.get("/pair").get_data(as_text=True)
    code = re.search(r'id="pair-code"[^>]*>([A-Z0-9-]{9})<', page).group(1)
    bad = client.post("/api/admin/pair", json={"code": code, "display_id": 999}, headers=headers)
    assert bad.status_code == 404
    ok = client.post(
        "/api/admin/pair", json={"code": code, "display_id": display.id}, headers=headers
    )
    assert ok.status_code == 200 and ok.json["id"] == display.id
    assert screen.get("/pair/status").json["state"] == "paired"


def test_floors_and_rooms(server, api, floor):
    client, headers = api
    floors = client.get("/api/admin/floors", headers=headers).json["floors"]
    assert floor in {f["id"] for f in floors} and all(f["building"] for f in floors)
    rooms = client.get(f"/api/admin/floors/{floor}/rooms", headers=headers).json["rooms"]
    assert rooms and {"id", "name", "function", "capacity"} <= set(rooms[0])


def test_openapi_document_describes_every_route(server, api):
    client, headers = api
    doc = client.get("/api/admin/openapi.json", headers=headers).json
    assert doc["openapi"].startswith("3.")
    documented = {
        (re.sub(r"\{[^}]+\}", "{}", path), method.upper())
        for path, ops in doc["paths"].items()
        for method in ops
    }
    for rule in admin_rules(server.app):
        if not rule.rule.startswith("/api/admin"):
            continue
        path = re.sub(r"<[^>]+>", "{}", rule.rule[len("/api/admin") :])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if "<any(" in rule.rule:
                for item in sorted(rule._converters["action"].items):  # type: ignore[attr-defined]
                    concrete = path.replace("{}", "{}", 1)
                    concrete = re.sub(r"\{\}$", item, concrete)
                    assert (concrete, method) in documented, (concrete, method)
            else:
                assert (path, method) in documented, (path, method)


# -- no input makes a route answer 5xx ------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "name",
        "floor_id",
        "density_display_id",
        "settings",
        "orientation",
        "rotation",
        "theme",
        "brand_color",
        "logo_url",
        "language",
        "functions",
        "min_capacity",
        "hidden_rooms",
        "night",
        "qr",
        "code",
        "display_id",
    ]
)
bodies = json_values | st.dictionaries(field_names, json_values, max_size=6)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, display_id=st.sampled_from([1, 2, 999]))
def test_random_json_to_every_route_never_gets_a_5xx(server, body, display_id):
    svc = server.svc
    if svc.store.get_display(1) is None:
        floor = svc.directory.floors()[0].id
        svc.store.add_display("Fuzz", floor)
        svc.state["fuzz_headers"] = make_token(svc, name="fuzz")
    headers = svc.state["fuzz_headers"]
    client = server.app.test_client()
    for rule in admin_rules(server.app):
        if not rule.rule.startswith("/api/admin"):
            continue
        url = example_url(rule, display_id, "spc_x")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method == "DELETE":
                continue  # deleting the fixture's display would end the search early
            response = client.open(url, method=method, json=body, headers=headers)
            assert response.status_code < 500, (method, url, body, response.get_data())
