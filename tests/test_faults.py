"""Upstream faults on loopback: kiosks keep their last state, say so, and recover.

Each test drives the simulator into a fault while real kiosks watch, then checks the kiosks'
view, the recovery, and that no thread raised (unhandled thread exceptions fail the run, see
pyproject.toml) and nothing was logged at ERROR.
"""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.helpers import wait_until
from tests.kiosks import Fleet


@pytest.fixture
def fleet():
    f = Fleet()
    yield f
    f.stop()


@pytest.fixture
def no_errors(caplog):
    caplog.set_level(logging.INFO)
    yield
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("signage")
    ]
    assert errors == [], [r.getMessage() for r in errors]


def setup_floor(sim, server, fleet, kiosks=3, with_display_id=False):
    floor = server.svc.directory.floors()[0].id
    density_id = None
    if with_display_id:
        density_id = next(d for d, f in sorted(sim.world.displays.items()) if f == floor)
    _, cred = server.add_display(floor, density_id)
    watchers = fleet.add(server.socket_url(cred), kiosks)
    fleet.wait(lambda k: k.feed == "live", timeout=10, message="live")
    rooms = [s.id for s in server.svc.directory.rooms_of(floor) if s.counting_mode != "entry"]
    return floor, rooms, watchers


def flip(sim, fleet, room, occupied, timeout=5.0):
    sim.world.set_space(room, presence=occupied, health="healthy")
    want = "occupied" if occupied else "free"
    fleet.wait(lambda k: k.state(room) == want, timeout=timeout, message=f"{room} {want}")


def test_malformed_and_oversized_frames_are_counted_and_skipped(sim, server, fleet, no_errors):
    floor, rooms, kiosks = setup_floor(sim, server, fleet)
    flip(sim, fleet, rooms[0], True)
    bad_frames = [
        "not json",
        "[1, 2, 3]",
        json.dumps({"update_type": "teleport", "data": {}}),
        json.dumps({"update_type": "live", "data": "nope"}),
        json.dumps({"update_type": "live", "data": {rooms[0]: {"presence": "maybe"}}}),
        json.dumps({"update_type": "live"}),
        json.dumps({"update_type": "refresh", "data": {"x": 1}, "padding": "y" * 1_500_000}),
    ]
    for text in bad_frames:
        sim.world.send_raw(text, floor)
    feed = server.svc.feeds.get(floor)
    wait_until(lambda: feed.malformed_frames >= 5, timeout=5, message="malformed counted")
    # Nothing changed on the kiosks because of it, and real changes still arrive.
    assert all(k.state(rooms[0]) == "occupied" for k in kiosks)
    flip(sim, fleet, rooms[0], False)
    flip(sim, fleet, rooms[1], True)
    assert all(k.feed == "live" and k.seqs_monotonic() for k in kiosks)
    text = httpx.get(f"{server.url}/metrics").text
    assert "signage_upstream_malformed_frames_total 0.0" not in text


def test_token_expiry_mid_stream(sim, make_server, fleet, no_errors):
    sim.world.update_settings(token_lifetime=3)
    server = make_server()
    floor, rooms, kiosks = setup_floor(sim, server, fleet, with_display_id=True)
    display_id = server.svc.token_display_for_floor(floor)
    before = sim.calls()["calls"].get("POST /v3/wayfinding/token", 0)
    for round_ in range(4):  # across four token lifetimes, with reconnects in between
        flip(sim, fleet, rooms[round_ % 3], bool(round_ % 2 == 0), timeout=8)
        # Let the token the socket was opened with run out, then cut the socket.
        wait_until(
            lambda: (server.svc.client.token_expiry(display_id) or 0) < 0.5,
            timeout=8,
            message="token near expiry",
        )
        sim.world.drop_sockets(floor)
        fleet.wait(lambda k: k.feed in ("live", "polling"), timeout=8)
        wait_until(lambda: sim.sockets_open(floor, kind="presence") == 1, timeout=10)
        wait_until(lambda: server.svc.feeds.get(floor).mode == "live", timeout=10)
    calls = sim.calls()
    assert calls["expired_token_uses"] == 0
    assert calls["status"].get("401", 0) == 0
    renewed = calls["calls"]["POST /v3/wayfinding/token"] - before
    assert renewed >= 2  # the token really expired and was renewed while kiosks watched
    assert all(k.seqs_monotonic() for k in kiosks)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_refused_sockets_and_a_429_storm_then_recovery(sim, server, fleet, no_errors):
    """Sockets refused for a long spell (30 stale-intervals' worth), a 429 storm inside it."""
    floor, rooms, kiosks = setup_floor(sim, server, fleet)
    flip(sim, fleet, rooms[0], False)
    sim.world.set_socket_mode("refuse")
    sim.world.drop_sockets(floor)
    fleet.wait(lambda k: k.feed == "polling", timeout=8, message="polling")
    flip(sim, fleet, rooms[1], True, timeout=8)  # changes still arrive by polling

    sim.world.force_429(12, retry_after=2)  # the storm: polling fails too
    fleet.wait(lambda k: k.feed == "stale", timeout=15, message="stale in the storm")
    for kiosk in kiosks:
        assert all(r["state"] == "unknown" for r in kiosk.rooms.values())
        assert kiosk.rooms[rooms[0]]["last_known"] == "free"  # the last known state is kept
    fleet.wait(lambda k: k.feed == "polling", timeout=30, message="polling after the storm")

    calls_before = sum(sim.calls()["calls"].values())
    sim.world.set_socket_mode("normal")
    fleet.wait(lambda k: k.feed == "live", timeout=15, message="live again")
    flip(sim, fleet, rooms[0], True)
    assert all(k.seqs_monotonic() for k in kiosks)
    # Polling stayed inside the budget: no 429 from our own pace once the storm ended.
    assert sum(sim.calls()["calls"].values()) - calls_before < 100
