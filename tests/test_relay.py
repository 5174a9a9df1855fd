"""The live relay end to end: simulator -> floor feed -> hub -> real kiosk sockets, on loopback."""

from __future__ import annotations

import json
import resource
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.helpers import wait_until
from tests.kiosks import Fleet, stalled_kiosk

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).


@pytest.fixture
def fleet():
    f = Fleet()
    yield f
    f.stop()


def oa_rooms(server, floor_id):
    return [s.id for s in server.svc.directory.rooms_of(floor_id) if s.counting_mode != "entry"]


def floors(server):
    return [f.id for f in server.svc.directory.floors()]


def presence_sockets(sim, floor_id):
    return sim.sockets_open(floor_id, kind="presence")


def test_snapshot_first_from_memory_with_state_per_room(sim, server):
    floor = floors(server)[0]
    display, cred = server.add_display(floor)
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=5))
    assert first["type"] == "snapshot"
    assert first["feed"] in ("live", "polling", "stale")
    assert set(first["rooms"]) == {s.id for s in server.svc.directory.rooms_of(floor)}
    assert all(r["state"] in ("free", "occupied", "unknown") for r in first["rooms"].values())
    assert first["display"]["name"] == display.name
    text = json.dumps(first)
    assert "secret" not in text and "eyJ" not in text and cred not in text


def test_room_flip_reaches_every_kiosk_of_its_floor_and_only_one_socket_per_floor(
    sim, server, fleet
):
    f1, f2 = floors(server)[:2]
    _, c1 = server.add_display(f1, name="A")
    _, c2 = server.add_display(f2, name="B")
    k1 = fleet.add(server.socket_url(c1), 100)
    k2 = fleet.add(server.socket_url(c2), 100)
    fleet.wait(lambda k: k.feed == "live", timeout=20, message="all 200 kiosks live")
    assert presence_sockets(sim, f1) == 1 and presence_sockets(sim, f2) == 1

    room = oa_rooms(server, f1)[0]
    sim.world.set_space(room, presence=False, health="healthy")
    fleet.wait(lambda k: k.state(room) == "free", kiosks=k1, message="free on floor 1")
    sim.world.set_space(room, presence=True)
    fleet.wait(lambda k: k.state(room) == "occupied", kiosks=k1, message="occupied on floor 1")
    assert all(room not in k.rooms for k in k2)
    assert all(k.seqs_monotonic() for k in fleet.kiosks)
    assert presence_sockets(sim, f1) == 1 and presence_sockets(sim, f2) == 1


@pytest.mark.parametrize("fault", ["drop", "refuse", "silent"])
def test_upstream_fault_falls_back_to_polling_and_recovers(sim, server, fleet, fault):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    kiosks = fleet.add(server.socket_url(cred), 5)
    fleet.wait(lambda k: k.feed == "live", timeout=10)
    room = oa_rooms(server, floor)[0]

    if fault == "drop":
        sim.world.set_socket_mode("refuse")  # stay down after the cut so polling shows
        sim.world.drop_sockets(floor)
    elif fault == "refuse":
        sim.world.set_socket_mode("refuse")
        sim.world.drop_sockets(floor)
    else:
        sim.world.set_socket_mode("silent")
    fleet.wait(lambda k: k.feed == "polling", timeout=8, message="told polling")

    # Changes still arrive, by polling.
    sim.world.set_space(room, presence=True, health="healthy")
    fleet.wait(lambda k: k.state(room) == "occupied", timeout=5, message="change via polling")
    sim.world.set_space(room, presence=False)
    fleet.wait(lambda k: k.state(room) == "free", timeout=5, message="second change via polling")

    sim.world.set_socket_mode("normal")
    if fault == "silent":
        sim.world.drop_sockets(floor)
    fleet.wait(lambda k: k.feed == "live", timeout=10, message="live again")
    sim.world.set_space(room, presence=True)
    fleet.wait(lambda k: k.state(room) == "occupied", timeout=5, message="change via socket")
    assert all(k.seqs_monotonic() for k in kiosks)
    # One socket, never two; on a busy machine a ping can time out and the feed be
    # reconnecting at this instant, so wait for it rather than read one moment.
    assert presence_sockets(sim, floor) <= 1
    wait_until(lambda: presence_sockets(sim, floor) == 1, timeout=10, message="one socket")


def test_density_unreachable_turns_every_room_unknown_keeping_last_known(sim, server, fleet):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    (kiosk,) = fleet.add(server.socket_url(cred), 1)
    room = oa_rooms(server, floor)[0]
    sim.world.set_space(room, presence=False, health="healthy")
    fleet.wait(lambda k: k.state(room) == "free", timeout=10)

    sim.world.set_socket_mode("refuse")
    sim.world.force_429(60, retry_after=1)
    sim.world.drop_sockets(floor)
    fleet.wait(lambda k: k.feed == "stale", timeout=15, message="stale")
    assert all(r["state"] == "unknown" for r in kiosk.rooms.values())
    assert kiosk.rooms[room]["last_known"] == "free"
    assert kiosk.rooms[room]["reason"] == "stale"

    sim.world.force_429(0)
    sim.world.set_socket_mode("normal")
    fleet.wait(lambda k: k.feed == "live", timeout=15, message="live after outage")
    assert kiosk.state(room) == "free"


def test_sensor_offline_turns_room_unknown_everywhere(sim, server, fleet):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    kiosks = fleet.add(server.socket_url(cred), 10)
    room = oa_rooms(server, floor)[1]
    sim.world.set_space(room, presence=False, health="healthy")
    fleet.wait(lambda k: k.state(room) == "free", timeout=10)
    sim.world.set_space(room, health="offline")
    fleet.wait(lambda k: k.state(room) == "unknown", message="unknown on every kiosk")
    assert all(k.rooms[room]["reason"] == "sensor_offline" for k in kiosks)
    sim.world.set_space(room, presence=False, health="degraded")
    fleet.wait(lambda k: k.rooms[room]["reason"] == "sensor_degraded", message="degraded seen")
    assert all(k.state(room) == "unknown" for k in kiosks)


def test_stalled_kiosk_is_cut_while_others_get_every_change(sim, make_server, fleet):
    server = make_server(SIGNAGE_KIOSK_PING_INTERVAL=2.0, SIGNAGE_KIOSK_QUEUE=16)
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    healthy = fleet.add(server.socket_url(cred), 50)
    fleet.wait(lambda k: k.feed == "live", timeout=10)
    stalled = stalled_kiosk(server.port, f"/ws/kiosk/{cred}")
    wait_until(lambda: server.svc.hub.count(floor) == 51, timeout=5)
    started = time.monotonic()
    rooms = oa_rooms(server, floor)
    for i in range(40):
        sim.world.set_space(rooms[i % len(rooms)], presence=bool(i % 2), health="healthy")
    wait_until(lambda: server.svc.hub.count(floor) == 50, timeout=10, message="stalled cut")
    assert time.monotonic() - started < 10
    last = {r: (bool(i % 2)) for i, r in ((i, rooms[i % len(rooms)]) for i in range(40))}
    for room, occupied in last.items():
        want = "occupied" if occupied else "free"
        fleet.wait(lambda k, r=room, w=want: k.state(r) == w, kiosks=healthy, timeout=5)
    assert all(k.seqs_monotonic() and k.snapshots == 1 for k in healthy)
    stalled.close()


def test_flooding_kiosk_is_closed_and_memory_stays_flat(sim, server):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with connect(server.socket_url(cred), open_timeout=5, compression=None) as ws:
        ws.recv(timeout=5)
        closed_code = None
        try:
            for _ in range(20000):
                ws.send("x" * 1000)
        except Exception:
            pass
        try:
            while True:
                ws.recv(timeout=5)
        except Exception:
            closed_code = ws.close_code
    assert closed_code == 1008
    wait_until(lambda: server.svc.hub.count(floor) == 0, timeout=5)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 40, f"server grew {grown_mb:.0f} MB under the flood"


def test_oversized_kiosk_message_is_refused(sim, server):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    with connect(server.socket_url(cred), open_timeout=5, compression=None) as ws:
        ws.recv(timeout=5)
        wait_until(lambda: server.svc.hub.count(floor) == 1, timeout=5)
        ws.send("x" * 100_000)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)  # a timeout here (TimeoutError) would fail the test
        # 1009 is sent, but the server closes while our 100 KB is unread, so the resulting
        # TCP reset may discard the close frame before we read it.
        assert ws.close_code in (1009, None)
    wait_until(lambda: server.svc.hub.count(floor) == 0, timeout=5, message="kiosk dropped")


def test_foreign_origin_refused_no_origin_and_own_origin_allowed(sim, server):
    _, cred = server.add_display(floors(server)[0])
    url = server.socket_url(cred)
    with pytest.raises(Exception) as refused:
        connect(url, open_timeout=5, origin="http://evil.example")
    assert "403" in str(refused.value)
    with connect(url, open_timeout=5, origin=server.url) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
    with connect(url, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"


def test_compression_is_not_negotiated(sim, server):
    _, cred = server.add_display(floors(server)[0])
    with connect(server.socket_url(cred), open_timeout=5) as ws:  # offers permessage-deflate
        ws.recv(timeout=5)
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


def test_unknown_and_revoked_credentials_are_closed_4401(sim, server):
    display, cred = server.add_display(floors(server)[0])
    server.svc.store.revoke_display(display.id)
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4401
    assert httpx.get(f"{server.url}/api/kiosk/{cred}/state").status_code == 404


def test_http_fallback_etag(sim, server):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    url = f"{server.url}/api/kiosk/{cred}/state"
    room = oa_rooms(server, floor)[0]
    first = wait_until(lambda: (r := httpx.get(url)).json()["feed"] == "live" and r, timeout=10)
    etag = first.headers["ETag"]
    assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
    current = first.json()["rooms"][room]["occupied"]
    sim.world.set_space(room, presence=not current, health="healthy")
    changed = wait_until(
        lambda: (r := httpx.get(url, headers={"If-None-Match": etag})).status_code == 200 and r,
        timeout=5,
    )
    assert changed.json()["rooms"][room]["occupied"] is (not current)
    assert changed.headers["ETag"] != etag


def test_heartbeat_carries_seq_and_feed(sim, server):
    _, cred = server.add_display(floors(server)[0])
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        snapshot = json.loads(ws.recv(timeout=5))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=5))
            if message["type"] == "heartbeat":
                break
        assert message["type"] == "heartbeat"
        assert message["epoch"] == snapshot["epoch"] and message["seq"] >= snapshot["seq"]
        assert message["feed"] in ("live", "polling", "stale")


def test_feed_stops_after_last_kiosk_leaves(sim, server):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        ws.recv(timeout=5)
        wait_until(lambda: presence_sockets(sim, floor) == 1, timeout=10)
    wait_until(lambda: presence_sockets(sim, floor) == 0, timeout=10, message="feed stopped")
    assert server.svc.feeds.get(floor) is None


def test_first_http_request_waits_for_density_first_answer(sim, server):
    floor = floors(server)[0]
    _, cred = server.add_display(floor)
    state = httpx.get(f"{server.url}/api/kiosk/{cred}/state", timeout=10).json()
    assert any(room["state"] != "unknown" for room in state["rooms"].values()), state["feed"]


def test_first_answer_waits_for_every_channel_of_the_floor(sim, server):
    """A feed has data once every channel's first answer is in its rooms, health included.

    A floor with entry rooms has two channels. Were the first answer the presence poll's alone,
    a page that waited for it would read the floor stale ("no data yet"), the counts channel
    not heard yet; were it set before the rooms took the answer, the page could read none.
    """
    tree = server.svc.directory
    floor = next(
        f.id
        for f in tree.floors()
        if {s.counting_mode or "oa" for s in tree.rooms_of(f.id)} >= {"entry", "oa"}
    )
    for room in tree.rooms_of(floor):  # every room healthy: each must read free or occupied
        sim.world.set_space(room.id, health="healthy")
    feed = server.svc.feeds.acquire(floor)
    try:
        assert feed.wait_for_data(10)
        snapshot = feed.snapshot()
        assert snapshot["feed"] != "stale", snapshot["feed_reason"]
        unknown = {
            sid: r["reason"] for sid, r in snapshot["rooms"].items() if r["state"] == "unknown"
        }
        assert unknown == {}
    finally:
        server.svc.feeds.release(floor)


def test_revoke_from_another_process_reaches_open_sockets(sim, server):
    display, cred = server.add_display(floors(server)[0])
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        ws.recv(timeout=5)
        # As `signage displays revoke` does: straight in the database, not through the hub.
        server.svc.store.revoke_display(display.id)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
        assert ws.close_code == 4401


def test_root_sends_a_new_screen_to_pairing_and_a_paired_one_to_its_display(sim, server):
    display, cred = server.add_display(floors(server)[0])
    with httpx.Client(base_url=server.url) as browser:
        assert browser.get("/").headers["location"].endswith("/pair")
        assert browser.get(f"/kiosk/{cred}").status_code == 200
        assert browser.get("/").headers["location"].endswith(f"/kiosk/{cred}")
        server.svc.store.revoke_display(display.id)
        assert browser.get("/").headers["location"].endswith("/pair")
