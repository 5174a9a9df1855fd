"""The Density simulator over real loopback sockets: API, tokens, limits, sockets, control."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from signage.sim import SimServer, SimSettings
from signage.sim.portfolio import build_portfolio
from signage.sim.scenarios import day_events

STATIC = {"Authorization": "Bearer tok_sim_static"}


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with SimServer(seed=1) as server:
        yield server


@pytest.fixture
def http(sim: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, trust_env=False, timeout=5) as client:
        yield client


@pytest.fixture
def state(http: httpx.Client) -> dict[str, Any]:
    return http.get("/_sim/state").json()


def floors(state: dict[str, Any]) -> list[str]:
    return list(state["floors"])


def rooms(state: dict[str, Any], floor_id: str, mode: str = "oa") -> list[str]:
    return [
        sid
        for sid, s in state["spaces"].items()
        if s["floor_id"] == floor_id and s["counting_mode"] == mode
    ]


def open_socket(url: str) -> ClientConnection:
    return connect(url, proxy=None, open_timeout=3, close_timeout=1)


def presence_url(http: httpx.Client, floor_id: str, headers: dict[str, str] = STATIC) -> str:
    response = http.post(f"/v3/analytics/ws/floor/{floor_id}/presence", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["ws_url"]


def recv_json(ws: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def display_token(http: httpx.Client, display_id: str) -> dict[str, Any]:
    response = http.post(
        "/v3/wayfinding/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "sim_client_id",
            "client_secret": "sim_client_secret",
            "display_id": display_id,
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


# --- portfolio -------------------------------------------------------------------------------


def test_portfolio_is_deterministic_and_realistic() -> None:
    one, again, other = build_portfolio(1), build_portfolio(1), build_portfolio(2)
    assert one == again
    assert one.building_id != other.building_id
    room_list = one.rooms()
    assert len(one.floor_ids) >= 3
    assert 34 <= len(room_list) <= 46
    assert all(s.id.startswith("spc_") and s.id[4:].isdigit() for s in one.spaces.values())
    assert all(1 <= (r.capacity or 0) <= 16 for r in room_list)
    assert len({r.name for r in room_list}) == len(room_list)
    functions = {r.function for r in room_list}
    assert {"meeting_room", "phone_booth", "desk_neighborhood", "cafe", "lounge"} <= functions
    entry = [r for r in room_list if r.counting_mode == "entry"]
    assert {r.function for r in entry} == {"cafe", "lounge"}
    assert one.spaces[one.building_id].time_zone == "Europe/Berlin"
    per_floor = {f: sum(1 for d in one.displays.values() if d == f) for f in one.floor_ids}
    assert all(1 <= n <= 2 for n in per_floor.values())


def test_spaces_list_shape(http: httpx.Client, state: dict[str, Any]) -> None:
    spaces = http.get("/v3/spaces", headers=STATIC).json()
    assert isinstance(spaces, list)
    assert [s["id"] for s in spaces] == [s["id"] for s in state["portfolio"]]
    types = {s["space_type"] for s in spaces}
    assert types == {"building", "floor", "space"}
    room = next(s for s in spaces if s["space_type"] == "space")
    assert set(room) >= {
        "id", "name", "space_type", "parent_id", "children_ids", "capacity", "function",
        "time_zone", "counting_mode", "labels",
    }  # fmt: skip
    entry = http.get("/v3/spaces", params={"counting_mode": "entry"}, headers=STATIC).json()
    assert entry and all(s["counting_mode"] == "entry" for s in entry)


def test_spaces_envelope_variant_has_two_pages(http: httpx.Client) -> None:
    bare = http.get("/v3/spaces", headers=STATIC).json()
    http.post("/_sim/settings", json={"spaces_envelope": True})
    first = http.get("/v3/spaces", headers=STATIC).json()
    assert first["next"]
    second = http.get(first["next"], headers=STATIC).json()
    assert second["next"] is None
    assert first["results"] + second["results"] == bare


# --- tokens ----------------------------------------------------------------------------------


def test_static_token_and_missing_or_unknown_token(http: httpx.Client) -> None:
    assert http.get("/v3/hello-world", headers=STATIC).text.endswith("Yoda")
    assert http.get("/version", headers=STATIC).text == "1.0.2"
    missing = http.get("/v3/hello-world")
    assert missing.status_code == 401
    assert set(missing.json()) == {"code", "message"} and missing.json()["code"] == 401
    unknown = http.get("/v3/hello-world", headers={"Authorization": "Bearer eyJnope"})
    assert unknown.status_code == 401


def test_oauth_token_expires_in_is_a_string(http: httpx.Client) -> None:
    body = {
        "grant_type": "client_credentials",
        "client_id": "sim_client_id",
        "client_secret": "sim_client_secret",
    }
    answer = http.post("/v3/oauth/token", json=body).json()
    assert answer["access_token"].startswith("eyJ")
    assert answer["expires_in"] == "3600"
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    assert http.get("/v3/hello-world", headers=headers).status_code == 200
    bad = http.post("/v3/oauth/token", json={**body, "client_secret": "wrong"})
    assert bad.status_code == 401
    missing = http.post("/v3/oauth/token", json={"grant_type": "client_credentials"})
    assert missing.status_code == 400


def test_wayfinding_token_expires_in_is_an_integer(
    http: httpx.Client, state: dict[str, Any]
) -> None:
    display_id = next(iter(state["displays"]))
    answer = display_token(http, display_id)
    assert answer["access_token"].startswith("eyJ")
    assert answer["expires_in"] == 3600 and isinstance(answer["expires_in"], int)
    assert display_id in answer["scope"]
    form = {"grant_type": "client_credentials", "client_id": "sim_client_id"}
    assert http.post("/v3/wayfinding/token", data=form).status_code == 400
    wrong = {**form, "client_secret": "nope", "display_id": display_id}
    assert http.post("/v3/wayfinding/token", data=wrong).status_code == 401


def test_expired_token_gets_401_and_is_counted(sim: SimServer, http: httpx.Client) -> None:
    http.post("/_sim/settings", json={"token_lifetime": 0.5})
    display_id = next(iter(sim.world.displays))
    answer = display_token(http, display_id)
    assert answer["expires_in"] == 1  # whole seconds, rounded up
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    assert http.get("/v3/hello-world", headers=headers).status_code == 200
    wait_for(lambda: http.get("/v3/hello-world", headers=headers).status_code == 401)
    assert http.get("/_sim/calls").json()["expired_token_uses"] >= 1


def test_display_token_reads_only_its_own_floor(http: httpx.Client, state: dict[str, Any]) -> None:
    display_id, floor_id = next(iter(state["displays"].items()))
    other_floor = next(f for f in floors(state) if f != floor_id)
    headers = {"Authorization": f"Bearer {display_token(http, display_id)['access_token']}"}
    presence_url(http, floor_id, headers)
    forbidden = http.post(f"/v3/analytics/ws/floor/{other_floor}/presence", headers=headers)
    assert forbidden.status_code == 403
    other_room = rooms(state, other_floor)[0]
    body = {"space_ids": [other_room]}
    assert http.post("/v3/analytics/presence-health", json=body, headers=headers).status_code == 403
    own = http.post("/v3/analytics/presence-health", json={}, headers=headers).json()["data"]
    assert set(own) == set(rooms(state, floor_id))
    listed = http.get("/v3/spaces", headers=headers).json()
    assert all(s["id"] not in rooms(state, other_floor) for s in listed)


# --- rate limit ------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(http: httpx.Client) -> None:
    http.post("/_sim/settings", json={"rate_limit": 0.5, "rate_burst": 3})
    answers = [http.get("/v3/hello-world", headers=STATIC) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    # Token endpoints count against the same bucket.
    limited = http.post("/v3/oauth/token", json={})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["code"] == 429
    assert http.get("/_sim/calls").json()["status"]["429"] == 1


def test_forced_429_for_a_period(http: httpx.Client) -> None:
    http.post("/_sim/ratelimit", json={"force_429_seconds": 0.4, "retry_after": 7})
    forced = http.get("/v3/hello-world", headers=STATIC)
    assert forced.status_code == 429 and forced.headers["Retry-After"] == "7"
    wait_for(lambda: http.get("/v3/hello-world", headers=STATIC).status_code == 200)


# --- validation ------------------------------------------------------------------------------

DAY = "2026-11-20T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v3/sensors/health", {"start_date": "2026-11-01T00:00:00Z", "end_date": DAY}),
        ("/v3/sensors/health", {"start_date": DAY}),
        (
            "/v3/sensors/health",
            {"start_date": DAY, "end_date": DAY, "serial_numbers": [], "space_ids": []},
        ),
        ("/v3/analytics/data-status", {"start_date": "2026-11-01T00:00:00Z", "end_date": DAY}),
        ("/v3/analytics/data-status", {"start_date": DAY, "end_date": "2026-11-20T00:04:00Z"}),
        ("/v3/analytics/data-status", {"start_date": "2024-05-01T00:00:00Z",
                                       "end_date": "2024-05-02T00:00:00Z"}),
        ("/v3/analytics/sessions/raw", {"start_date": "2026-08-01T00:00:00", "end_date": DAY}),
        ("/v3/analytics/short-term", {"minutes_lookback": 241}),
        ("/v3/analytics/short-term", {"minutes_lookback": -1}),
        ("/v3/analytics/short-term", {"minutes_lookback": "5"}),
        ("/v3/sensors/health/current", {"serial_numbers": ["A"], "space_ids": ["spc_1"]}),
        ("/v3/sensors", {"serial_numbers": ["A"], "space_ids": ["spc_1"]}),
        ("/v3/analytics/metrics", {"start_date": DAY}),
        ("/v3/analytics/occupancy", {"end_date": DAY}),
        ("/v3/analytics/time-used", {}),
        ("/v3/analytics/utilization", {"start_date": DAY, "end_date": "not a date"}),
        ("/v3/analytics/presence-health", {"space_ids": "spc_1"}),
    ],
)  # fmt: skip
def test_validation_rules_answer_400(http: httpx.Client, path: str, body: dict) -> None:
    response = http.post(path, json=body, headers=STATIC)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 400


def test_valid_ranges_are_accepted(http: httpx.Client) -> None:
    ten_days = {"start_date": "2026-11-10T00:00:00Z", "end_date": DAY}
    assert http.post("/v3/sensors/health", json=ten_days, headers=STATIC).status_code == 200
    assert http.post("/v3/analytics/data-status", json=ten_days, headers=STATIC).status_code == 200
    sixty = {"start_date": "2026-09-21T00:00:00", "end_date": "2026-11-20T00:00:00"}
    assert http.post("/v3/analytics/sessions/raw", json=sixty, headers=STATIC).status_code == 200
    metrics = http.post("/v3/analytics/metrics", json=ten_days, headers=STATIC)
    assert metrics.status_code == 200 and metrics.json()


# --- live REST -------------------------------------------------------------------------------


def test_presence_endpoints_follow_set_space(sim: SimServer, http: httpx.Client, state) -> None:
    room = rooms(state, floors(state)[0])[0]
    sim.world.set_space(room, presence=True, health="degraded")
    body = {"space_ids": [room]}
    health = http.post("/v3/analytics/presence-health", json=body, headers=STATIC).json()
    assert health["data"][room]["occupied"] is True
    assert health["data"][room]["space_health_status"] == "degraded"
    assert health["data"][room]["timestamp"].endswith("Z")
    assert http.post("/v3/analytics/presence", json=body, headers=STATIC).json() == {room: True}
    count = http.post("/v3/analytics/occupancy/current", json=body, headers=STATIC).json()
    assert count["data"][room]["count"] >= 1
    sensors = http.post("/v3/sensors/health/current", json=body, headers=STATIC).json()["data"]
    assert sensors and sensors[0]["health_status"] == "degraded"
    assert all(s["space_id"] == room for s in sensors)
    short = http.post(
        "/v3/analytics/short-term", json={**body, "minutes_lookback": 5}, headers=STATIC
    ).json()["data"]
    assert len(short) == 6 and short[-1]["presence"] is True


def test_all_spaces_when_no_filter(http: httpx.Client, state: dict[str, Any]) -> None:
    data = http.post("/v3/analytics/presence-health", json={}, headers=STATIC).json()["data"]
    oa = [sid for sid, s in state["spaces"].items() if s["counting_mode"] == "oa"]
    assert set(data) == set(oa)
    # A floor id is flattened into its rooms, as Density's analytics handlers do.
    floor_id = floors(state)[1]
    body = {"space_ids": [floor_id]}
    data = http.post("/v3/analytics/presence-health", json=body, headers=STATIC).json()["data"]
    assert set(data) == set(rooms(state, floor_id))


# --- sockets ---------------------------------------------------------------------------------


def test_refresh_on_connect_then_live_on_change(sim: SimServer, http, state) -> None:
    floor_id = floors(state)[0]
    with open_socket(presence_url(http, floor_id)) as ws:
        refresh = recv_json(ws)
        assert refresh["update_type"] == "refresh"
        assert set(refresh["data"]) == set(rooms(state, floor_id))
        room = rooms(state, floor_id)[0]
        entry = refresh["data"][room]
        assert entry["counting_mode"] == "oa"
        assert entry["space_health_status"] == "healthy"
        sim.world.set_space(room, presence=not entry["presence"])
        live = recv_json(ws)
        assert live["update_type"] == "live"
        assert live["data"] == {
            room: {**entry, "presence": not entry["presence"], "timestamp": ANY_TS}
        }
        http.post(f"/_sim/spaces/{room}", json={"health": "offline"})
        assert recv_json(ws)["data"][room]["space_health_status"] == "offline"
        assert sim.sockets_open(floor_id) == 1


class _AnyTimestamp:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.endswith("Z")


ANY_TS = _AnyTimestamp()


def test_refresh_can_be_withheld(sim: SimServer, http: httpx.Client, state) -> None:
    http.post("/_sim/settings", json={"refresh_on_connect": False})
    floor_id = floors(state)[0]
    room = rooms(state, floor_id)[0]
    with open_socket(presence_url(http, floor_id)) as ws:
        wait_for(lambda: sim.sockets_open(floor_id) == 1)
        sim.world.set_space(room, health="unknown")
        first = recv_json(ws)
        assert first["update_type"] == "live" and list(first["data"]) == [room]


def test_periodic_refresh(http: httpx.Client, state: dict[str, Any]) -> None:
    http.post("/_sim/settings", json={"refresh_interval": 0.2})
    with open_socket(presence_url(http, floors(state)[2])) as ws:
        kinds = [recv_json(ws)["update_type"] for _ in range(3)]
    assert kinds == ["refresh", "refresh", "refresh"]


def test_refuse_mode_answers_503_before_upgrade(http: httpx.Client, state) -> None:
    url = presence_url(http, floors(state)[0])
    http.post("/_sim/sockets", json={"mode": "refuse"})
    with pytest.raises(InvalidStatus) as refused:
        open_socket(url)
    assert refused.value.response.status_code == 503
    http.post("/_sim/sockets", json={"mode": "normal"})
    with open_socket(presence_url(http, floors(state)[0])) as ws:
        assert recv_json(ws)["update_type"] == "refresh"


def test_drop_cuts_without_close_frame(sim: SimServer, http: httpx.Client, state) -> None:
    floor_id = floors(state)[0]
    with open_socket(presence_url(http, floor_id)) as ws:
        recv_json(ws)
        assert http.post("/_sim/sockets/drop", json={"floor_id": floor_id}).json() == {"dropped": 1}
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=3)
        assert closed.value.rcvd is None  # no close frame came
    wait_for(lambda: sim.sockets_open(floor_id) == 0)


def test_silent_mode_sends_nothing_but_answers_pings(sim: SimServer, http, state) -> None:
    floor_id = floors(state)[0]
    http.post("/_sim/sockets", json={"mode": "silent"})
    with open_socket(presence_url(http, floor_id)) as ws:
        wait_for(lambda: sim.sockets_open(floor_id) == 1)
        sim.world.set_space(rooms(state, floor_id)[0], health="degraded")
        assert ws.ping().wait(3)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # the change above would have arrived well within this


def test_raw_frames_are_sent_as_is(sim: SimServer, http: httpx.Client, state) -> None:
    floor_id = floors(state)[1]
    with open_socket(presence_url(http, floor_id)) as ws:
        recv_json(ws)
        sent = http.post("/_sim/sockets/send", json={"text": "{not json", "floor_id": floor_id})
        assert sent.json() == {"sent": 1}
        assert ws.recv(timeout=3) == "{not json"
        assert sim.world.send_raw("x" * 200_000) == 1
        assert len(ws.recv(timeout=3)) == 200_000


def test_ws_url_is_single_use_and_expires(http: httpx.Client, state) -> None:
    floor_id = floors(state)[0]
    url = presence_url(http, floor_id)
    with open_socket(url) as ws:
        recv_json(ws)
        with pytest.raises(InvalidStatus) as again:
            open_socket(url)
        assert again.value.response.status_code in (403, 404)
    http.post("/_sim/settings", json={"ws_url_ttl": 0.05})
    stale = presence_url(http, floor_id)
    time.sleep(0.1)  # the ttl itself is what is under test here
    with pytest.raises(InvalidStatus) as expired:
        open_socket(stale)
    assert expired.value.response.status_code in (403, 404)
    assert http.post("/v3/analytics/ws/floor/spc_0/presence", headers=STATIC).status_code == 404


def test_occupancy_socket_for_entry_spaces(sim: SimServer, http: httpx.Client, state) -> None:
    cafe = next(sid for sid, s in state["spaces"].items() if s["counting_mode"] == "entry")
    response = http.post(f"/v3/analytics/ws/space/{cafe}/occupancy", headers=STATIC)
    with open_socket(response.json()["ws_url"]) as ws:
        refresh = recv_json(ws)
        assert refresh["update_type"] == "refresh" and list(refresh["data"]) == [cafe]
        assert isinstance(refresh["data"][cafe]["occupancy"], int)
        assert refresh["data"][cafe]["counting_mode"] == "entry"
        sim.world.set_space(cafe, occupancy=refresh["data"][cafe]["occupancy"] + 3)
        live = recv_json(ws)
        assert live["update_type"] == "live"
        assert live["data"][cafe]["occupancy"] == refresh["data"][cafe]["occupancy"] + 3
    # A building-wide socket carries every entry space.
    building = state["building_id"]
    response = http.post(f"/v3/analytics/ws/space/{building}/occupancy", headers=STATIC)
    with open_socket(response.json()["ws_url"]) as ws:
        wait_for(lambda: sim.sockets_open(building, kind="occupancy") == 1)
        assert sim.sockets_open(building, kind="presence") == 0
        entry = {sid for sid, s in state["spaces"].items() if s["counting_mode"] == "entry"}
        assert set(recv_json(ws)["data"]) == entry


def test_client_leaving_frees_the_handler(sim: SimServer, http: httpx.Client, state) -> None:
    floor_id = floors(state)[0]
    for _ in range(3):
        with open_socket(presence_url(http, floor_id)) as ws:
            recv_json(ws)
    wait_for(lambda: sim.sockets_open(floor_id) == 0)
    assert sim.calls()["sockets_opened"][floor_id] == 3


def test_stop_closes_open_sockets_quickly(state: dict[str, Any]) -> None:
    server = SimServer(seed=1).start()
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        url = presence_url(http, floors(state)[0])
    with open_socket(url) as ws:
        recv_json(ws)
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 2
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=3)


def test_stop_cuts_a_socket_whose_client_stopped_reading(state: dict[str, Any]) -> None:
    server = SimServer(seed=1).start()
    with httpx.Client(base_url=server.url, trust_env=False) as http:
        url = urlsplit(presence_url(http, floors(state)[0]))
    # A bare TCP client with a tiny receive buffer that never reads after the handshake.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((url.hostname, url.port))
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        assert raw.recv(12) == b"HTTP/1.1 101"
        wait_for(lambda: server.sockets_open() == 1)
        for _ in range(20):
            server.world.send_raw("x" * 1_000_000)
        began = time.monotonic()
        server.stop(timeout=0.5)
        assert time.monotonic() - began < 2
        assert server.sockets_open() == 0
    finally:
        raw.close()


# --- scenarios --------------------------------------------------------------------------------


def test_day_scenario_is_deterministic() -> None:
    portfolio = build_portfolio(3)
    assert day_events(portfolio, 3, 0) == day_events(portfolio, 3, 0)
    assert day_events(portfolio, 3, 0) != day_events(portfolio, 4, 0)
    kinds = {e.kind for e in day_events(portfolio, 3, 0)}
    assert kinds == {"presence", "occupancy", "health", "drop", "burst_429"}

    def played(seed: int) -> list:
        with SimServer(seed=seed, scenario="day", speed=200_000) as server:
            wait_for(lambda: len(server.world.scenario_log()) >= 400)
            return server.world.scenario_log()[:400]

    first, second = played(3), played(3)
    assert first == second
    assert [e for _, e in first] == day_events(portfolio, 3, 0)[:400]


def test_day_scenario_changes_the_world() -> None:
    with SimServer(seed=5, scenario="day", speed=20_000) as server:
        before = server.world.state()["spaces"]
        wait_for(lambda: server.world.state()["spaces"] != before)


# --- control and counters --------------------------------------------------------------------


def test_counters_and_reset(sim: SimServer, http: httpx.Client, state) -> None:
    http.get("/v3/hello-world", headers=STATIC)
    http.get("/v3/hello-world")
    floor_id = floors(state)[0]
    presence_url(http, floor_id)
    calls = http.get("/_sim/calls").json()
    assert calls["calls"]["GET /v3/hello-world"] == 2
    assert calls["calls"]["POST /v3/analytics/ws/floor/{floor_id}/presence"] == 1
    assert calls["status"] == {"200": 2, "401": 1}
    assert set(calls["sockets_open"]) == set(floors(state))
    assert calls == sim.calls()
    http.post("/_sim/settings", json={"refresh_interval": 5})
    room = rooms(state, floor_id)[0]
    http.post(f"/_sim/spaces/{room}", json={"health": "offline"})
    assert http.post("/_sim/reset").status_code == 200

    # Seeded timestamps are "N minutes before now", so a reset in the next second moves them:
    # compare the rooms without them.
    def seeded(spaces: dict[str, Any]) -> dict[str, Any]:
        return {sid: {k: v for k, v in s.items() if k != "timestamp"} for sid, s in spaces.items()}

    assert seeded(http.get("/_sim/state").json()["spaces"]) == seeded(state["spaces"])
    assert http.get("/_sim/settings").json()["refresh_interval"] == 60
    assert http.get("/_sim/calls").json()["calls"] == {}


def test_control_api_rejects_bad_input(http: httpx.Client, state: dict[str, Any]) -> None:
    room = rooms(state, floors(state)[0])[0]
    assert http.post(f"/_sim/spaces/{room}", json={"health": "sick"}).status_code == 400
    assert http.post(f"/_sim/spaces/{room}", json={"presence": "yes"}).status_code == 400
    assert http.post(f"/_sim/spaces/{room}", json={"colour": "red"}).status_code == 400
    assert http.post("/_sim/spaces/spc_0", json={"presence": True}).status_code == 404
    assert http.post("/_sim/settings", json={"nope": 1}).status_code == 400
    assert http.post("/_sim/settings", json={"rate_limit": "fast"}).status_code == 400
    assert http.post("/_sim/sockets", json={"mode": "loud"}).status_code == 400
    changed = http.post(f"/_sim/spaces/{room}", json={"occupancy": 4}).json()
    assert changed["presence"] is True and changed["occupancy"] == 4


def test_settings_object_is_frozen_and_validated() -> None:
    settings = SimSettings()
    with pytest.raises(AttributeError):
        settings.rate_limit = 1  # type: ignore[misc]
    assert settings.updated({"rate_burst": 5}).rate_burst == 5
    with pytest.raises(ValueError):
        settings.updated({"spaces_envelope": 1})


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "simulator.md").read_text()
    missing = [f.name for f in dataclasses.fields(SimSettings) if f"`{f.name}`" not in doc]
    assert not missing, f"settings missing from docs/simulator.md: {missing}"


# --- the reference's shapes ------------------------------------------------------------------

# Every field of the space object in the reference's own sample (Update Space's response).
REFERENCE_SPACE_FIELDS = {
    "address", "binary_occupancy", "capacity", "children", "children_ids", "cost_per_sqft",
    "counting_mode", "daily_reset", "function", "go_live_date_utc", "id", "iwms_id", "labels",
    "name", "size_area", "space_type", "status", "time_zone",
}  # fmt: skip


@pytest.fixture
def ref() -> Iterator[SimServer]:
    with SimServer(SimSettings(shape="reference"), seed=1) as server:
        yield server


@pytest.fixture
def ref_http(ref: SimServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ref.url, trust_env=False, timeout=5) as client:
        yield client


def parents_from_nesting(spaces: list[dict[str, Any]]) -> dict[str, str | None]:
    """space id -> parent id, read from nested `children` objects only."""
    found: dict[str, str | None] = {}

    def walk(space: dict[str, Any], parent: str | None) -> None:
        if found.get(space["id"]) is None:
            found[space["id"]] = parent
        for child in space["children"]:
            walk(child, space["id"])

    for space in spaces:
        walk(space, None)
    return found


def test_reference_shape_spaces_have_nested_children_and_no_parent_id(
    ref_http: httpx.Client, http: httpx.Client, state: dict[str, Any]
) -> None:
    listed = ref_http.get("/v3/spaces", headers=STATIC).json()
    assert isinstance(listed, list)
    assert [s["id"] for s in listed] == [s["id"] for s in state["portfolio"]]
    assert all(set(s) == REFERENCE_SPACE_FIELDS for s in listed)
    # The same tree as the default shape's parent_id, from children_ids and from nesting.
    tree = {s["id"]: s["parent_id"] for s in state["portfolio"]}
    from_ids = {cid: s["id"] for s in listed for cid in s["children_ids"]}
    assert {sid: from_ids.get(sid) for sid in tree} == tree
    assert parents_from_nesting(listed) == tree
    for space in listed:
        assert [c["id"] for c in space["children"]] == space["children_ids"]
    building = listed[0]
    assert building["space_type"] == "building"
    assert sum(len(f["children"]) for f in building["children"]) == len(state["spaces"])
    # A filtered list is filtered at the top; children stay whole.
    entry = ref_http.get("/v3/spaces", params={"counting_mode": "entry"}, headers=STATIC).json()
    assert entry and all(s["counting_mode"] == "entry" and s["children"] == [] for s in entry)
    # The default shape is unchanged.
    default = http.get("/v3/spaces", headers=STATIC).json()
    assert all("parent_id" in s and "children" not in s for s in default)


def test_reference_shape_display_token_sees_only_its_floor_nested(
    ref_http: httpx.Client, state: dict[str, Any]
) -> None:
    display_id, floor_id = next(iter(state["displays"].items()))
    headers = {"Authorization": f"Bearer {display_token(ref_http, display_id)['access_token']}"}
    listed = ref_http.get("/v3/spaces", headers=headers).json()
    building = next(s for s in listed if s["space_type"] == "building")
    assert [f["id"] for f in building["children"]] == [floor_id]
    assert {r["id"] for r in building["children"][0]["children"]} == {
        sid for sid, s in state["spaces"].items() if s["floor_id"] == floor_id
    }


def test_reference_shape_answers_bare_maps(
    ref: SimServer, ref_http: httpx.Client, http: httpx.Client, state: dict[str, Any]
) -> None:
    room = rooms(state, floors(state)[0])[0]
    ref.world.set_space(room, occupancy=2, health="degraded")
    body = {"space_ids": [room]}
    health = ref_http.post("/v3/analytics/presence-health", json=body, headers=STATIC).json()
    assert set(health) == {room}
    assert health[room]["occupied"] is True and health[room]["space_health_status"] == "degraded"
    count = ref_http.post("/v3/analytics/occupancy/current", json=body, headers=STATIC).json()
    assert set(count) == {room} and count[room]["count"] == 2
    # The default shape keeps its "data" envelope.
    wrapped = http.post("/v3/analytics/presence-health", json=body, headers=STATIC).json()
    assert set(wrapped) == {"data"}
    wrapped = http.post("/v3/analytics/occupancy/current", json=body, headers=STATIC).json()
    assert set(wrapped) == {"data"}


def test_reference_shape_occupancy_socket_counts_the_floor_and_all_its_children(
    ref: SimServer, ref_http: httpx.Client, state: dict[str, Any]
) -> None:
    floor_id = next(
        f for f in floors(state) if rooms(state, f, "entry") and len(rooms(state, f)) >= 2
    )
    on_floor = rooms(state, floor_id, "oa") + rooms(state, floor_id, "entry")
    response = ref_http.post(f"/v3/analytics/ws/space/{floor_id}/occupancy", headers=STATIC)
    with open_socket(response.json()["ws_url"]) as ws:
        refresh = recv_json(ws)
        assert refresh["update_type"] == "refresh"
        assert set(refresh["data"]) == {floor_id, *on_floor}
        counts = {sid: entry["occupancy"] for sid, entry in refresh["data"].items()}
        assert counts[floor_id] == sum(counts[r] for r in on_floor)
        assert all(isinstance(n, int) for n in counts.values())
        oa_room, other = rooms(state, floor_id, "oa")[:2]
        assert refresh["data"][oa_room]["counting_mode"] == "oa"
        assert refresh["data"][floor_id]["space_health_status"] == "healthy"
        ref.world.set_space(oa_room, occupancy=counts[oa_room] + 4)
        live = recv_json(ws)
        assert live["update_type"] == "live" and set(live["data"]) == {floor_id, oa_room}
        assert live["data"][oa_room]["occupancy"] == counts[oa_room] + 4
        assert live["data"][floor_id]["occupancy"] == counts[floor_id] + 4
        # One sensor down makes the floor degraded, by Density's rule for a space's health.
        ref.world.set_space(other, health="offline")
        live = recv_json(ws)
        assert live["data"][other]["space_health_status"] == "offline"
        assert live["data"][floor_id]["space_health_status"] == "degraded"
    # A building-wide socket carries the building, every floor and every room.
    building = state["building_id"]
    response = ref_http.post(f"/v3/analytics/ws/space/{building}/occupancy", headers=STATIC)
    with open_socket(response.json()["ws_url"]) as ws:
        data = recv_json(ws)["data"]
        assert set(data) == {building, *floors(state), *state["spaces"]}
        assert data[building]["occupancy"] == sum(data[f]["occupancy"] for f in floors(state))


def test_reference_shape_presence_socket_is_unchanged(
    ref_http: httpx.Client, state: dict[str, Any]
) -> None:
    floor_id = floors(state)[0]
    with open_socket(presence_url(ref_http, floor_id)) as ws:
        data = recv_json(ws)["data"]
        assert set(data) == set(rooms(state, floor_id))
        assert all(
            set(e) == {"timestamp", "presence", "counting_mode", "space_health_status"}
            for e in data.values()
        )


def test_shape_is_a_setting_with_two_values(http: httpx.Client) -> None:
    assert http.get("/_sim/settings").json()["shape"] == "simulator"
    assert http.post("/_sim/settings", json={"shape": "reference"}).json()["shape"] == "reference"
    assert "parent_id" not in http.get("/v3/spaces", headers=STATIC).json()[0]
    assert http.post("/_sim/settings", json={"shape": "density"}).status_code == 400
    with pytest.raises(ValueError):
        SimSettings(shape="density")
    http.post("/_sim/reset")
    assert "parent_id" in http.get("/v3/spaces", headers=STATIC).json()[0]


# --- 429 windows -----------------------------------------------------------------------------


def test_a_scenario_burst_never_cuts_short_a_window_set_through_the_control_api(
    sim: SimServer, http: httpx.Client
) -> None:
    first = next(e for e in day_events(sim.world.portfolio, 1, 0) if e.kind == "burst_429")
    http.post("/_sim/ratelimit", json={"force_429_seconds": 5, "retry_after": 17})
    # Fast enough that the day's first burst (1 real second long) comes within half a second.
    sim.world.start_scenario("day", speed=first.at / 0.5)
    wait_for(lambda: any(e.kind == "burst_429" for _, e in sim.world.scenario_log()))
    burst_over = time.monotonic() + 1.5
    while time.monotonic() < burst_over:
        answer = http.get("/v3/hello-world", headers=STATIC)
        assert (answer.status_code, answer.headers.get("Retry-After")) == (429, "17")
        time.sleep(0.05)


def test_a_scenario_burst_extends_a_shorter_window(sim: SimServer, http: httpx.Client) -> None:
    http.post("/_sim/ratelimit", json={"force_429_seconds": 0.2, "retry_after": 9})
    sim.world.force_429(1.5, 2, extend_only=True)  # as the scenario applies its bursts
    outlived = time.monotonic() + 0.6
    while time.monotonic() < outlived:
        answer = http.get("/v3/hello-world", headers=STATIC)
        assert (answer.status_code, answer.headers.get("Retry-After")) == (429, "2")
        time.sleep(0.05)
    # The control API still sets the window as asked: 0 ends it at once.
    http.post("/_sim/ratelimit", json={"force_429_seconds": 0})
    assert http.get("/v3/hello-world", headers=STATIC).status_code == 200


def test_an_outage_answers_every_call_with_its_status(sim: SimServer, http: httpx.Client) -> None:
    assert http.post("/_sim/outage", json={"seconds": 30}).json() == {"seconds": 30, "status": 503}
    down = http.get("/v3/spaces", headers=STATIC)
    assert down.status_code == 503 and "Retry-After" not in down.headers
    assert down.json()["code"] == 503
    assert http.post("/v3/oauth/token", json={}).status_code == 503  # tokens too
    http.post("/_sim/outage", json={"seconds": 30, "status": 502, "retry_after": 4})
    bad_gateway = http.get("/v3/hello-world", headers=STATIC)
    assert (bad_gateway.status_code, bad_gateway.headers["Retry-After"]) == (502, "4")
    assert http.post("/_sim/outage", json={"seconds": 1, "status": 404}).status_code == 400
    assert http.post("/_sim/outage", json={"seconds": -1}).status_code == 400
    http.post("/_sim/outage", json={"seconds": 0})
    assert http.get("/v3/hello-world", headers=STATIC).status_code == 200
    assert sim.calls()["status"]["503"] == 2
