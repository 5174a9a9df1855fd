"""Fan-out through Redis: a real redis-server, real `signage serve` processes, real kiosk sockets.

Two server processes share one SQLite file and one Redis; kiosks connect to both. The built-in
simulator counts the upstream sockets and is where rooms are flipped. Every frame a kiosk
receives is checked against what the simulator said at the time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from signage.density.client import DensityClient
from signage.density.ratelimit import RateLimiter
from signage.fleet import Cluster, scripts
from signage.sim import SimServer, SimSettings
from tests.conftest import FAST
from tests.helpers import ServeProcess, free_port, serve_env, wait_until
from tests.pg_server import pg_server, pg_url  # noqa: F401 (fixtures)
from tests.redis_server import RedisServer, redis_server  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parent.parent

# A frame may reflect the simulator as it was this long before it arrived (upstream socket,
# Redis, the hub and the kiosk's own loop on two shared cores).
DELIVERY_ALLOWANCE = 1.5


# -- a player that follows docs/protocol.md -----------------------------------------------------
class Player:
    """A kiosk that resyncs on a new epoch or a gap, reconnects across servers, keeps frames."""

    def __init__(self, urls: list[str], name: str) -> None:
        self.urls = urls
        self.name = name
        self.rooms: dict[str, dict[str, Any]] = {}
        self.epoch: str | None = None
        self.seq = -1
        self.frames: list[tuple[float, dict[str, Any]]] = []  # (monotonic, snapshot/update)
        self.updates: list[tuple[str, int]] = []  # (epoch, seq) of each applied update
        self.commands: list[str] = []  # types outside the floor's sequence (identify, reload)
        self.connects = 0
        self.resyncs = 0
        self.server: str | None = None
        self._stop = False

    def state(self, room: str) -> str | None:
        entry = self.rooms.get(room)
        return entry["state"] if entry else None

    def _apply(self, message: dict[str, Any]) -> bool:
        """Apply one message; True when a resync is due."""
        kind = message.get("type")
        if kind in ("snapshot", "update"):
            self.frames.append((time.monotonic(), message))
        if kind == "snapshot":
            self.rooms = dict(message["rooms"])
            self.epoch, self.seq = message["epoch"], message["seq"]
            return False
        if kind == "update":
            if message["epoch"] != self.epoch:
                return True
            if message["seq"] <= self.seq:
                return False
            gap = message["seq"] != self.seq + 1
            self.rooms.update(message["rooms"])
            self.seq = message["seq"]
            self.updates.append((self.epoch, self.seq))
            return gap
        if kind == "heartbeat":
            return message["epoch"] != self.epoch or message["seq"] > self.seq
        self.commands.append(str(kind))
        return False

    async def run(self) -> None:
        index = 0
        while not self._stop:
            url = self.urls[index % len(self.urls)]
            index += 1
            try:
                async with connect(url, open_timeout=5, ping_interval=None) as ws:
                    self.connects += 1
                    self.server = url
                    async for raw in ws:
                        if self._apply(json.loads(raw)):
                            self.resyncs += 1
                            await ws.send(json.dumps({"type": "resync"}))
            except (OSError, TimeoutError, ConnectionClosed):
                pass
            self.server = None
            if not self._stop:
                await asyncio.sleep(0.2)


class Players:
    """Players on one asyncio loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.players: list[Player] = []

    def add(self, urls: list[str], n: int, name: str) -> list[Player]:
        new = [Player(urls, f"{name}{i}") for i in range(n)]
        for player in new:
            asyncio.run_coroutine_threadsafe(player.run(), self.loop)
        self.players.extend(new)
        return new

    def wait(self, condition, players=None, timeout=15.0, message="") -> None:
        group = self.players if players is None else players
        wait_until(lambda: all(condition(p) for p in group), timeout, 0.05, message)

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        for player in self.players:
            player._stop = True

        async def cancel() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class Flips:
    """The simulator's presence of each room over time, as this test set it."""

    def __init__(self, sim: SimServer, rooms: list[str]) -> None:
        self.sim = sim
        self.log: dict[str, list[tuple[float, bool]]] = {
            r: [(float("-inf"), sim.world.space_state(r).presence)] for r in rooms
        }

    def set(self, room: str, occupied: bool) -> None:
        # Logged before the change: a frame can only show the new value after this moment.
        self.log[room].append((time.monotonic(), occupied))
        self.sim.world.set_space(room, presence=occupied, health="healthy")

    def was_free_within(self, room: str, start: float, end: float) -> bool:
        """Whether the simulator had the room unoccupied at some moment in [start, end]."""
        history = self.log[room]
        for i, (at, occupied) in enumerate(history):
            until = history[i + 1][0] if i + 1 < len(history) else float("inf")
            if not occupied and at <= end and until >= start:
                return True
        return False

    def lies(self, players: list[Player]) -> list[str]:
        """Every frame that showed a tracked room free when the simulator had it occupied."""
        found = []
        for player in players:
            for at, frame in player.frames:
                for sid, room in (frame.get("rooms") or {}).items():
                    if sid in self.log and room["state"] == "free":
                        if not self.was_free_within(sid, at - DELIVERY_ALLOWANCE, at):
                            found.append(f"{player.name} seq {frame['seq']} {sid} at {at:.2f}")
        return found


# -- the fleet: two `signage serve` processes, one SQLite file, one Redis ----------------------
def fleet_env(sim: SimServer, tmp_path: Path, redis_url: str, **extra: Any) -> dict[str, str]:
    fleet = {
        "SIGNAGE_DATABASE": str(tmp_path / "fleet.sqlite3"),
        "SIGNAGE_SECRET_KEY": "fleet-secret-key",
        "SIGNAGE_REDIS_URL": redis_url,
        "SIGNAGE_MAX_KIOSKS": 100,
    }
    return serve_env(sim, tmp_path, **{**fleet, **FAST, **extra})


def worker_pids(server: ServeProcess) -> set[int]:
    """The gunicorn master and its workers."""
    pid = server.proc.pid
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return {pid, *(int(p) for p in fh.read().split())}
    except OSError:
        return {pid}


def holder(redis_url: str, floor_id: str) -> int | None:
    """The process id of the floor's lease holder (the lease value is host:pid:random)."""
    value = redis.Redis.from_url(redis_url, decode_responses=True).get(f"signage:lease:{floor_id}")
    return int(value.split(":")[1]) if value else None


def holder_server(redis_url: str, floor_id: str, servers: list[ServeProcess]) -> ServeProcess:
    pid = wait_until(lambda: holder(redis_url, floor_id), 15, 0.05, "a lease holder")
    return next(s for s in servers if pid in worker_pids(s))


@pytest.fixture
def players():
    group = Players()
    yield group
    group.stop()


@pytest.fixture
def fleet(sim, tmp_path, redis_server):  # noqa: F811
    """Start `signage serve` processes sharing SQLite and Redis; all stopped at the end."""
    started: list[ServeProcess] = []

    def start(n: int = 2, **extra: Any) -> list[ServeProcess]:
        env = fleet_env(sim, tmp_path, redis_server.url, **extra)
        new = [
            ServeProcess(env).start(log_path=tmp_path / f"serve-{len(started) + i}.log")
            for i in range(n)
        ]
        started.extend(new)
        return new

    yield start
    for server in started:
        server.stop(signal.SIGKILL if server.proc and server.proc.poll() is None else None)


def setup_floor(sim: SimServer, server: ServeProcess) -> tuple[str, str, list[str]]:
    """A display on the first floor: (floor id, credential, the floor's open-area rooms)."""
    state = sim.world.state()
    floor = sorted(state["floors"])[0]
    rooms = sorted(
        sid
        for sid, space in state["spaces"].items()
        if space["floor_id"] == floor and space["counting_mode"] == "oa"
    )
    display_id = next(d for d, f in sorted(sim.world.displays.items()) if f == floor)
    info = json.loads(
        server.cli(
            "displays",
            "add",
            "--name",
            "Lobby",
            "--floor",
            floor,
            "--density-display-id",
            display_id,
            "--json",
        )  # fmt: skip
    )
    return floor, info["socket_url"].rsplit("/", 1)[1], rooms


def ws_url(server: ServeProcess, credential: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/kiosk/{credential}"


def one_upstream_socket(sim: SimServer, floor: str, timeout: float = 15) -> None:
    """The floor has exactly one presence socket open for the fleet, never two meanwhile.

    Waited for, not read once: under load the holder may be between a cut socket and its
    reconnect (the kiosks keep their state meanwhile), which is not a second socket.
    """
    seen: list[int] = []

    def one() -> bool:
        seen.append(sim.sockets_open(floor, kind="presence"))
        return seen[-1] == 1

    wait_until(one, timeout, 0.05, "one upstream socket for the floor")
    assert max(seen) == 1, seen


def agree(flips: Flips, rooms: list[str]):
    """A player whose every tracked room shows what the simulator says now."""

    def check(player: Player) -> bool:
        for room in rooms:
            occupied = flips.log[room][-1][1]
            if player.state(room) != ("occupied" if occupied else "free"):
                return False
        return True

    return check


def monotonic_updates(player: Player) -> bool:
    """Within each epoch, applied updates only go forward."""
    last: dict[str, int] = {}
    for epoch, seq in player.updates:
        if seq <= last.get(epoch, -1):
            return False
        last[epoch] = seq
    return True


# -- the tests ----------------------------------------------------------------------------------
def test_two_processes_one_upstream_socket_every_kiosk_gets_every_flip(
    sim,
    fleet,
    players,
    redis_server,  # noqa: F811
):
    a, b = fleet(2)
    floor, cred, rooms = setup_floor(sim, a)
    flips = Flips(sim, rooms[:3])
    for room in rooms[:3]:
        flips.set(room, occupied=True)
    on_a = players.add([ws_url(a, cred)], 5, "a")
    on_b = players.add([ws_url(b, cred)], 5, "b")
    players.wait(agree(flips, rooms[:3]), timeout=20, message="every kiosk has the floor")
    one_upstream_socket(sim, floor)

    for i in range(12):
        flips.set(rooms[i % 3], occupied=i % 2 == 0)
        players.wait(agree(flips, rooms[:3]), message=f"flip {i} on every kiosk")
    one_upstream_socket(sim, floor)
    assert all(monotonic_updates(p) for p in on_a + on_b)
    assert flips.lies(on_a + on_b) == []
    # Both processes relay the same fleet stream: the same epoch everywhere.
    assert len({p.epoch for p in on_a + on_b}) == 1


def test_two_processes_on_postgresql_and_redis_share_floor_and_configuration(
    sim,
    fleet,
    players,
    pg_url,  # noqa: F811
):
    """The several-hosts set-up: configuration in PostgreSQL, fan-out through Redis."""
    a, b = fleet(2, SIGNAGE_DATABASE=pg_url)
    floor, cred, rooms = setup_floor(sim, a)  # written through process a's CLI, into PostgreSQL
    flips = Flips(sim, rooms[:2])
    for room in rooms[:2]:
        flips.set(room, occupied=True)
    on_a = players.add([ws_url(a, cred)], 3, "a")
    on_b = players.add([ws_url(b, cred)], 3, "b")
    players.wait(agree(flips, rooms[:2]), timeout=20, message="every kiosk has the floor")
    flips.set(rooms[0], occupied=False)
    players.wait(agree(flips, rooms[:2]), message="a flip on every kiosk")
    one_upstream_socket(sim, floor)
    # A change made on process a reaches the screens held by process b.
    token = a.cli("admin", "token", "create", "ci").strip()
    display_id = json.loads(b.cli("displays", "list", "--json"))[0]["id"]
    answer = httpx.patch(
        f"{a.url}/api/admin/displays/{display_id}",
        json={"name": "Lobby north"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text

    def renamed(player: Player) -> bool:
        snapshots = [m for _, m in player.frames if m["type"] == "snapshot"]
        return bool(snapshots) and snapshots[-1]["display"]["name"] == "Lobby north"

    players.wait(renamed, on_b, 15, "the new name on process b's kiosks")
    assert flips.lies(on_a + on_b) == []


def test_killing_the_holder_moves_the_socket_within_10_s(
    sim,
    fleet,
    players,
    redis_server,  # noqa: F811
):
    # Stale only after 30 s here: the failover itself must not make rooms unknown.
    a, b = fleet(2, SIGNAGE_STALE_AFTER=30.0)
    floor, cred, rooms = setup_floor(sim, a)
    flips = Flips(sim, rooms[:2])
    flips.set(rooms[0], occupied=True)
    flips.set(rooms[1], occupied=False)
    # Behind a load balancer a kiosk whose server died comes back on the other one.
    on_a = players.add([ws_url(a, cred), ws_url(b, cred)], 4, "a")
    on_b = players.add([ws_url(b, cred), ws_url(a, cred)], 4, "b")
    players.wait(agree(flips, rooms[:2]), timeout=20, message="every kiosk has the floor")
    wait_until(lambda: sim.sockets_open(floor, kind="presence") == 1, 10)

    dead = holder_server(redis_server.url, floor, [a, b])
    alive = b if dead is a else a
    dead_pids = worker_pids(dead)
    killed_at = time.monotonic()
    os.kill(dead.proc.pid, signal.SIGKILL)  # the master first, so that it respawns nothing
    for pid in dead_pids - {dead.proc.pid}:
        os.kill(pid, signal.SIGKILL)

    def moved() -> bool:
        pid = holder(redis_server.url, floor)
        return pid is not None and pid not in dead_pids and pid in worker_pids(alive)

    wait_until(moved, timeout=10, interval=0.05, message="the lease moved to the survivor")
    wait_until(
        lambda: sim.sockets_open(floor, kind="presence") == 1,
        timeout=10 - (time.monotonic() - killed_at),
        interval=0.05,
        message="one upstream socket again, within 10 s of the kill",
    )
    took = time.monotonic() - killed_at
    assert took < 10, f"failover took {took:.1f} s"
    print(f"kill -9 of the holder: one upstream socket again after {took:.1f} s")

    everyone = on_a + on_b
    players.wait(lambda p: p.server == ws_url(alive, cred), everyone, 15, "all on the survivor")
    for i in range(6):
        flips.set(rooms[i % 2], occupied=i % 2 == 1)
        players.wait(agree(flips, rooms[:2]), everyone, 15, f"flip {i} after the failover")
    one_upstream_socket(sim, floor)
    assert all(monotonic_updates(p) for p in everyone)
    assert flips.lies(everyone) == []
    # The new holder carried the sequence on: the epoch did not change, so nobody resynced
    # from scratch except the kiosks that had to reconnect.
    assert len({p.epoch for p in everyone}) == 1


def test_sigterm_hands_the_floor_over_at_once(sim, fleet, players, redis_server):  # noqa: F811
    # A 30 s lease: only the handover on SIGTERM (a rolling restart) can move it this fast.
    a, b = fleet(2, SIGNAGE_LEASE_TTL=30.0)
    floor, cred, _rooms = setup_floor(sim, a)
    group = players.add([ws_url(a, cred)], 1, "a") + players.add([ws_url(b, cred)], 1, "b")
    players.wait(lambda p: p.epoch is not None, group, 20, "kiosks joined")
    wait_until(lambda: sim.sockets_open(floor, kind="presence") == 1, 10)
    leaving = holder_server(redis_server.url, floor, [a, b])
    staying = b if leaving is a else a
    leaving.proc.send_signal(signal.SIGTERM)
    wait_until(
        lambda: holder(redis_server.url, floor) in worker_pids(staying),
        timeout=5,
        interval=0.05,
        message="the survivor holds the floor long before the 30 s lease would expire",
    )
    wait_until(lambda: sim.sockets_open(floor, kind="presence") == 1, 5, 0.05, "one socket")


def test_redis_restart_recovers_and_no_kiosk_is_ever_told_a_room_is_free_when_it_is_not(
    sim,
    fleet,
    players,
    redis_server,  # noqa: F811
):
    a, b = fleet(2)  # stale after 4 s (FAST): the outage below outlasts it
    floor, cred, rooms = setup_floor(sim, a)
    tracked = rooms[:3]
    flips = Flips(sim, tracked)
    for room in tracked:
        flips.set(room, occupied=False)
    on_a = players.add([ws_url(a, cred)], 4, "a")
    on_b = players.add([ws_url(b, cred)], 4, "b")
    everyone = on_a + on_b
    players.wait(agree(flips, tracked), timeout=20, message="every kiosk has the floor")

    redis_server.stop(signal.SIGKILL)
    # While Redis is away nobody holds the socket: the floor goes stale, rooms unknown.
    wait_until(lambda: sim.sockets_open(floor, kind="presence") == 0, 10, 0.05, "socket stopped")
    flips.set(tracked[0], occupied=True)  # nobody can relay this now
    players.wait(
        lambda p: all(p.state(r) == "unknown" for r in tracked),
        everyone,
        timeout=15,
        message="kiosks show unknown while nobody hears from Density",
    )
    redis_server.start()  # same port, empty: no epoch, no leases

    players.wait(agree(flips, tracked), everyone, 20, "recovered after the restart")
    wait_until(lambda: sim.sockets_open(floor, kind="presence") == 1, 10, 0.05, "one socket again")
    for i in range(6):
        flips.set(tracked[i % 3], occupied=i % 2 == 0)
        players.wait(agree(flips, tracked), everyone, 15, f"flip {i} after the restart")
    one_upstream_socket(sim, floor)
    assert flips.lies(everyone) == []
    assert all(monotonic_updates(p) for p in everyone)
    # Redis came back without its data: a new epoch, and every kiosk moved to it.
    assert len({p.epoch for p in everyone}) == 1


def test_quick_redis_restarts_keep_every_kiosk_current(sim, fleet, players, redis_server):  # noqa: F811
    # Redis killed and back at once, empty, three times; flips right after each restart.
    a, b = fleet(2, SIGNAGE_STALE_AFTER=30.0)
    floor, cred, rooms = setup_floor(sim, a)
    tracked = rooms[:3]
    flips = Flips(sim, tracked)
    for room in tracked:
        flips.set(room, occupied=True)
    everyone = players.add([ws_url(a, cred)], 3, "a") + players.add([ws_url(b, cred)], 3, "b")
    players.wait(agree(flips, tracked), timeout=20, message="every kiosk has the floor")
    epochs = set()
    for i in range(3):
        redis_server.restart()
        flips.set(tracked[i], occupied=False)
        players.wait(agree(flips, tracked), everyone, 20, f"restart {i}: the flip everywhere")
        epochs.update(p.epoch for p in everyone)
    wait_until(lambda: sim.sockets_open(floor, kind="presence") == 1, 10, 0.05, "one socket")
    assert redis_server.starts == 4
    assert len(epochs) == 3  # each empty Redis meant a new epoch, and every kiosk followed
    assert flips.lies(everyone) == []
    assert all(monotonic_updates(p) for p in everyone)
    assert len({p.epoch for p in everyone}) == 1  # all on the fleet's current epoch


def test_redis_password_and_shared_tokens_never_reach_a_log_or_a_kiosk(sim, tmp_path, players):
    """A password in SIGNAGE_REDIS_URL and the Density token kept in Redis stay secret."""
    password = "redis-canary-" + os.urandom(6).hex()
    server_redis = RedisServer(tmp_path / "redis-auth", password=password).start()
    try:
        env = fleet_env(sim, tmp_path, server_redis.url)
        server = ServeProcess(env).start(log_path=tmp_path / "serve.log")
        floor, cred, rooms = setup_floor(sim, server)
        flips = Flips(sim, rooms[:1])
        flips.set(rooms[0], occupied=False)
        group = players.add([ws_url(server, cred)], 2, "s")
        players.wait(agree(flips, rooms[:1]), group, 20, "kiosks on an authenticated Redis")
        r = redis.Redis.from_url(server_redis.url, decode_responses=True)
        tokens = [r.hget(key, "access_token") for key in r.scan_iter("signage:token:*")]
        assert tokens and all(tokens)
        server_redis.stop(signal.SIGKILL)  # errors get logged now: none may carry a secret
        wait_until(lambda: "redis unreachable" in (tmp_path / "serve.log").read_text(), 10)
        server.stop()
    finally:
        server_redis.stop()
    logged = (tmp_path / "serve.log").read_text(errors="replace")
    frames = json.dumps([frame for p in group for _, frame in p.frames])
    for secret in (password, *tokens):
        assert secret not in logged
        assert secret not in frames


@pytest.mark.browser
def test_kiosk_page_on_a_relaying_process_stays_honest_through_a_redis_outage(
    sim,
    fleet,
    browser,
    redis_server,  # noqa: F811
):
    """The real page in Chromium, served by the process that does not hold the floor."""
    from playwright.sync_api import expect

    a, b = fleet(2)
    floor, cred, rooms = setup_floor(sim, a)
    room = rooms[0]
    sim.world.set_space(room, presence=False, health="healthy")
    assert httpx.get(f"{a.url}/api/kiosk/{cred}/state", timeout=10).status_code == 200
    wait_until(lambda: holder(redis_server.url, floor) in worker_pids(a), 10, message="a holds")
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        page = context.new_page()
        page.goto(f"{b.url}/kiosk/{cred}")
        tile = page.locator(f'#map [data-space-id="{room}"]')
        expect(tile).to_have_attribute("data-state", "free", timeout=15_000)
        sim.world.set_space(room, presence=True)
        expect(tile).to_have_attribute("data-state", "occupied", timeout=5_000)
        sim.world.set_space(room, presence=False)
        expect(tile).to_have_attribute("data-state", "free", timeout=5_000)
        redis_server.stop(signal.SIGKILL)
        # Nobody can hear from Density for this floor now: after 4 s (FAST), unknown.
        expect(tile).to_have_attribute("data-state", "unknown", timeout=15_000)
        expect(page.locator("html")).to_have_attribute("data-feed", "stale")
        expect(page.locator(f'#free-list [data-space-id="{room}"]')).to_have_count(0)
        sim.world.set_space(room, presence=True)
        redis_server.start()
        expect(tile).to_have_attribute("data-state", "occupied", timeout=20_000)
        sim.world.set_space(room, presence=False)
        expect(tile).to_have_attribute("data-state", "free", timeout=5_000)
        expect(page.locator("html")).to_have_attribute("data-feed", "live")
    finally:
        context.close()


def test_display_commands_reach_kiosks_on_the_other_process(sim, fleet, players):
    a, b = fleet(2)
    floor, cred, _rooms = setup_floor(sim, a)
    on_b = players.add([ws_url(b, cred)], 2, "b")
    players.wait(lambda p: p.epoch is not None, on_b, 20, "kiosks on b joined")
    token = a.cli("admin", "token", "create", "ci").strip()
    display_id = json.loads(a.cli("displays", "list", "--json"))[0]["id"]
    # "Identify" pressed in the console served by process a; the screens are on process b.
    answer = httpx.post(
        f"{a.url}/api/admin/displays/{display_id}/identify",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["sent"] == 0  # no screen of the display on process a itself
    players.wait(lambda p: "identify" in p.commands, on_b, 10, "identify reached process b")


def test_an_announcement_made_on_one_process_reaches_kiosks_on_the_other_at_once(
    sim, fleet, players
):
    """Each process sends announcements to its own kiosks; Redis tells the others to look now
    (without it they would only see it at their next 15 s check of the database)."""
    a, b = fleet(2)
    floor, cred, _rooms = setup_floor(sim, a)
    on_b = players.add([ws_url(b, cred)], 2, "b")
    players.wait(lambda p: p.epoch is not None, on_b, 20, "kiosks on b joined")
    token = a.cli("admin", "token", "create", "ci").strip()
    started = time.monotonic()
    answer = httpx.post(
        f"{a.url}/api/admin/announcements",
        json={"scope": "floor", "target": floor, "title": "Fire drill", "duration_minutes": 5},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    players.wait(lambda p: "announcements" in p.commands, on_b, 5, "it reached process b")
    assert time.monotonic() - started < 6  # the nudge, not the 15 s recheck


def test_serve_workers_needs_redis(tmp_path):
    env = {**os.environ, "SIGNAGE_CONFIG": str(tmp_path / "none.toml"), "SIGNAGE_REDIS_URL": ""}
    env["SIGNAGE_DATABASE"] = str(tmp_path / "x.sqlite3")
    done = subprocess.run(
        [sys.executable, "-m", "signage", "serve", "--workers", "2", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SIGNAGE_REDIS_URL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "url", ["localhost:6379", "http://secret-canary@host/0", "redis://:secret-canary@:x/0"]
)
def test_serve_refuses_a_bad_redis_url_clearly(tmp_path, url):
    env = {**os.environ, "SIGNAGE_CONFIG": str(tmp_path / "none.toml"), "SIGNAGE_REDIS_URL": url}
    env["SIGNAGE_DATABASE"] = str(tmp_path / "x.sqlite3")
    done = subprocess.run(
        [sys.executable, "-m", "signage", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "SIGNAGE_REDIS_URL" in done.stderr and "Traceback" not in done.stderr
    assert "secret-canary" not in done.stderr + done.stdout


def test_serve_workers_share_one_upstream_socket(sim, tmp_path, players, redis_server):  # noqa: F811
    env = fleet_env(sim, tmp_path, redis_server.url)
    server = ServeProcess(env)
    server.args = [*server.args, "--workers", "3"]
    server.start(log_path=tmp_path / "workers.log")
    try:
        floor, cred, rooms = setup_floor(sim, server)
        flips = Flips(sim, rooms[:1])
        flips.set(rooms[0], occupied=True)
        group = players.add([ws_url(server, cred)], 12, "w")
        players.wait(agree(flips, rooms[:1]), group, 20, "every kiosk has the floor")
        assert len(worker_pids(server)) == 4  # the master and three workers
        flips.set(rooms[0], occupied=False)
        players.wait(agree(flips, rooms[:1]), group, 15, "the flip reached every worker's kiosks")
        one_upstream_socket(sim, floor)
    finally:
        server.stop()


def test_mirror_fills_gaps_goes_stale_alone_and_follows_a_new_epoch(
    sim,
    make_server,
    players,
    redis_server,  # noqa: F811
):
    """The test holds the floor's lease and speaks the fleet protocol itself, step by step."""
    server = make_server(SIGNAGE_REDIS_URL=redis_server.url, SIGNAGE_STALE_AFTER=3.0)
    floor = sorted(sim.world.state()["floors"])[0]
    rooms = [s.id for s in server.svc.directory.rooms_of(floor)]
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    r.set(f"signage:lease:{floor}", "test-holder", px=120_000)
    state_key, channel = f"signage:floor:{floor}", f"signage:u:{floor}"

    def room(sid: str, state: str) -> dict[str, Any]:
        return {"id": sid, "state": state, "reason": None, "last_known": state, "since_s": 1.0}

    def write(epoch: str, seq: int, states: dict[str, str], publish: dict[str, str] | None):
        snapshot = {"type": "snapshot", "epoch": epoch, "seq": seq, "floor_id": floor}
        snapshot.update(feed="live", feed_reason=None, heard_age_s=0.0, server_time="")
        snapshot["rooms"] = {sid: room(sid, st) for sid, st in states.items()}
        snapshot["floor"] = {"id": floor, "name": "F", "time_zone": None}
        now = repr(time.time())
        r.hset(state_key, mapping={"epoch": epoch, "seq": seq, "snapshot": json.dumps(snapshot)})
        r.hset(state_key, mapping={"at": now, "heard": now})
        if publish is not None:
            update = {**snapshot, "type": "update"}
            update["rooms"] = {sid: room(sid, st) for sid, st in publish.items()}
            r.publish(channel, json.dumps(update))

    states = {sid: "occupied" for sid in rooms}
    write("e1", 10, states, None)
    _display, cred = server.add_display(floor)
    (player,) = players.add([server.socket_url(cred)], 1, "m")
    wait_until(lambda: (player.epoch, player.seq) == ("e1", 10), 10, message="snapshot e1/10")
    assert all(player.state(sid) == "occupied" for sid in rooms)

    states[rooms[0]] = "free"
    write("e1", 11, states, {rooms[0]: "free"})
    wait_until(lambda: player.state(rooms[0]) == "free", 5, message="update 11 relayed")

    # Update 12 never arrives (pub/sub is at most once): 13 shows the gap, the kiosk resyncs
    # and gets the state from Redis, room 1 included.
    states[rooms[1]] = "free"
    write("e1", 12, states, None)
    states[rooms[0]] = "occupied"
    write("e1", 13, states, {rooms[0]: "occupied"})
    wait_until(lambda: player.seq == 13 and player.state(rooms[1]) == "free", 5, message="gap")
    assert player.resyncs >= 1

    # The holder stops hearing from Density (no heartbeat in Redis): after 3 s the process
    # tells its kiosks itself, under a local epoch: every room unknown.
    wait_until(
        lambda: all(player.state(sid) == "unknown" for sid in rooms), 10, message="stale alone"
    )
    assert player.epoch != "e1"
    # Fresh again: the next update brings the kiosk back to the fleet's epoch and state.
    states[rooms[2]] = "free"
    write("e1", 14, states, {rooms[2]: "free"})
    wait_until(lambda: player.epoch == "e1" and player.state(rooms[1]) == "free", 5, message="back")

    # Redis lost everything and a holder started epoch e2 at seq 5, below what this kiosk was
    # sent: the hub would drop it, so the kiosk is reconnected (1012) for a fresh snapshot.
    connects = player.connects
    states = {sid: "occupied" for sid in rooms}
    states[rooms[3]] = "free"
    write("e2", 5, states, dict(states))
    wait_until(lambda: player.epoch == "e2" and player.state(rooms[3]) == "free", 10, message="e2")
    assert player.connects == connects + 1
    assert player.state(rooms[0]) == "occupied"


# -- tokens and the rate budget, shared through Redis -------------------------------------------
def test_one_token_renewal_fleet_wide(redis_server):  # noqa: F811
    """Two processes' clients, 16 threads, 2 s tokens for 5 s: as few renewals as one client."""
    # The simulator's edge limit (15/s) is off: 16 threads calling flat out would exceed it,
    # and a call whose 2 retries all meet a 429 rightly hands RateLimited to its caller. This
    # test is about tokens, so the only limit is each client's own (200/s).
    settings = SimSettings(token_lifetime=2.0, rate_limit=0)
    with SimServer(settings, seed=1) as sim:
        display_id = sorted(sim.world.displays)[0]
        clusters = [Cluster(redis_server.url) for _ in range(2)]
        clients = []
        for cluster in clusters:
            client = DensityClient(
                sim.url,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                limiter=RateLimiter(rate=200, burst=200),
                shared_tokens=cluster.tokens,
            )
            clients.append(client)
        floor = sim.world.displays[display_id]
        rooms = [s.id for s in clients[0].spaces() if s.parent_id == floor][:2]
        errors: list[BaseException] = []
        end = time.monotonic() + 5.0

        def work(client: DensityClient) -> None:
            try:
                while time.monotonic() < end:
                    client.presence_health(rooms, display_id=display_id)
            except BaseException as exc:  # recorded, then the test fails on it
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(clients[i % 2],)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        issued = sim.calls()["calls"].get("POST /v3/wayfinding/token", 0)
        # A 2 s token is renewed 0.4 s before it ends: 5 s need at most 4 tokens, however many
        # processes and threads ask. Without the shared store each process renews on its own.
        assert 1 <= issued <= 4, issued
        assert sum(c.tokens.adopted.get(display_id, 0) for c in clients) >= 1
        # The token in Redis is the one in use; a 401 drops it fleet-wide (compare-and-delete).
        r = redis.Redis.from_url(redis_server.url, decode_responses=True)
        shared = r.hget(f"signage:token:{display_id}", "access_token")
        # Whichever process renewed last holds it; the other may still hold the one before.
        holders = [c for c in clients if c.tokens.peek(display_id).access_token == shared]
        assert shared and holders, "the shared token is in neither process"
        assert holders[0].tokens.invalidate(display_id, shared)
        assert r.exists(f"signage:token:{display_id}") == 0
        for client in clients:
            client.close()
        for cluster in clusters:
            cluster.close()


def test_rate_budget_is_the_fleets(redis_server):  # noqa: F811
    """Two limiters at 20/s burst 5 sharing Redis hand out ~20 slots a second between them."""
    clusters = [Cluster(redis_server.url) for _ in range(2)]
    limiters = [RateLimiter(rate=20, burst=5, shared=c.budget) for c in clusters]
    taken: list[list[float]] = [[], []]  # when each slot was handed out, per process
    start = time.monotonic()
    end = start + 2.0

    def work(i: int) -> None:
        while time.monotonic() < end:
            limiters[i % 2].acquire(timeout=5)
            taken[i % 2].append(time.monotonic())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    within = [sum(1 for at in slots if at <= end) for slots in taken]
    total = sum(within)
    # 2 s at 20/s plus the burst of 5, and one slot of slack for the clocks' edges.
    assert 35 <= total <= 46, (total, within)
    assert min(within) > 5  # both processes drew from the same bucket
    # A 429 pauses the whole fleet: a limiter that never saw it waits too.
    limiters[0].pause_for(1.0)
    started = time.monotonic()
    limiters[1].acquire(timeout=5)
    assert time.monotonic() - started >= 0.9
    for cluster in clusters:
        cluster.close()


def test_sign_in_and_pairing_attempts_are_counted_for_the_whole_fleet(redis_server):  # noqa: F811
    """Two processes must not give a guesser twice the attempts; without Redis, each counts."""
    from signage.web.auth import AttemptLimiter

    clusters = [Cluster(redis_server.url) for _ in range(2)]
    try:
        a, b = (c.attempt_limiter("login-ip", AttemptLimiter(3, 60.0)) for c in clusters)
        assert a.hit("10.0.0.7") and b.hit("10.0.0.7") and a.hit("10.0.0.7")
        assert b.blocked("10.0.0.7") and not b.hit("10.0.0.7") and not a.hit("10.0.0.7")
        assert 55 <= b.retry_after("10.0.0.7") <= 61
        assert not a.blocked("10.0.0.8")  # per key
        keys = clusters[0].redis.keys("*attempts*")
        assert keys and not any("10.0.0" in k for k in keys)  # addresses are hashed
        b.reset("10.0.0.7")  # a successful sign-in on one process clears it everywhere
        assert not a.blocked("10.0.0.7") and a.hit("10.0.0.7")
    finally:
        for cluster in clusters:
            cluster.close()
    # Redis away: the process's own count still limits.
    away = Cluster(f"redis://127.0.0.1:{free_port()}/0")
    try:
        limiter = away.attempt_limiter("login-ip", AttemptLimiter(2, 60.0))
        assert limiter.hit("x") and limiter.hit("x") and not limiter.hit("x")
        assert limiter.blocked("x") and limiter.retry_after("x") > 0
    finally:
        away.close()


def test_redis_away_the_budget_falls_back_to_the_local_bucket(tmp_path):
    """A Redis that does not answer must not stop calls: the limiter uses its own bucket."""
    dead = RedisServer(tmp_path / "r")  # never started: nothing listens on its port
    cluster = Cluster(dead.url, timeout=0.2)
    limiter = RateLimiter(rate=50, burst=3, shared=cluster.budget)
    started = time.monotonic()
    for _ in range(3):
        limiter.acquire(timeout=2)
    assert time.monotonic() - started < 2
    assert cluster.reachable is False
    cluster.close()


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_example_in_front_of_two_hosts(sim, fleet, players, tmp_path):
    """deploy/haproxy-signage.cfg (TLS bind and redirect taken out) in front of two servers."""
    a, b = fleet(2)
    floor, cred, rooms = setup_floor(sim, a)
    port = free_port()
    config = (REPO / "deploy/haproxy-signage.cfg").read_text()
    config = config.replace("log /dev/log local0", "log stderr local0")
    config = re.sub(r"maxconn \d+\n", "maxconn 2000\n", config, count=1)  # our file limit
    config = re.sub(r"(?m)^\s*bind :443 .*$|^\s*http-request redirect .*$", "", config)
    config = config.replace("bind :80", f"bind 127.0.0.1:{port}")
    config = config.replace("10.0.0.11:8000", f"127.0.0.1:{a.port}")
    config = config.replace("10.0.0.12:8000", f"127.0.0.1:{b.port}")
    (tmp_path / "haproxy.cfg").write_text(config)
    log_path = tmp_path / "haproxy.log"
    with open(log_path, "wb") as log:
        proxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")], stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(f"{url}/healthz"), 15, 0.1, "haproxy forwards")
        flips = Flips(sim, rooms[:1])
        flips.set(rooms[0], occupied=True)
        group = players.add([f"ws://127.0.0.1:{port}/ws/kiosk/{cred}"], 6, "lb")
        players.wait(agree(flips, rooms[:1]), group, 20, "kiosks through the balancer")
        flips.set(rooms[0], occupied=False)
        players.wait(agree(flips, rooms[:1]), group, 15, "a flip through the balancer")
        # leastconn spread the sockets over both hosts; the floor still has one upstream socket.
        assert {p.server for p in group} == {f"ws://127.0.0.1:{port}/ws/kiosk/{cred}"}
        counts = [_kiosks_on(server) for server in (a, b)]
        assert min(counts) >= 1, counts
        one_upstream_socket(sim, floor)
        assert httpx.get(f"{url}/kiosk/{cred}", timeout=10).status_code == 200
        players.stop()  # a socket's log line is written when it ends
        wait_until(lambda: "/ws/kiosk/REDACTED" in log_path.read_text(errors="replace"), 10)
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
    logged = log_path.read_text(errors="replace")
    assert "/kiosk/REDACTED" in logged, logged[-2000:]
    assert cred not in logged


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _kiosks_on(server: ServeProcess) -> int:
    """Kiosk sockets connected to one server, from its own /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("signage_kiosks_connected{")
        )
    )


def test_fleet_env_example_names_real_settings():
    from signage import config

    text = (REPO / "deploy/signage-fleet.env.example").read_text()
    names = set(re.findall(r"^([A-Z_]+)=", text, re.MULTILINE))
    assert names <= {s.name for s in config.SETTINGS}, names - {s.name for s in config.SETTINGS}
    assert {"SIGNAGE_REDIS_URL", "SIGNAGE_DATABASE", "SIGNAGE_SECRET_KEY"} <= names


def test_down_alerts_see_the_whole_fleet_and_are_sent_once(redis_server, tmp_path):  # noqa: F811
    """A display held by another process is not down; an outage is reported by one process."""
    from types import SimpleNamespace

    from signage.actions.alerts import AlertWatcher
    from signage.store import Store

    store = Store(str(tmp_path / "fleet.sqlite3"), "k" * 32)
    store.migrate()
    held = store.add_display("Held by a", "spc_floor")
    dark = store.add_display("Dark", "spc_floor")
    store.mark_first_screen(dark.id, 0.0)  # it had a screen once (else: not installed, no alert)

    class Screens:  # a process's hub, as the watcher reads it: who is connected here
        def __init__(self) -> None:
            self.displays: set[int] = set()

        def subscribers(self):
            return [SimpleNamespace(display_id=d) for d in self.displays]

        screens = subscribers  # no console previews here: every subscriber is a screen

    clock = [1000.0]
    clusters = [Cluster(redis_server.url) for _ in range(2)]
    hubs = [Screens(), Screens()]
    no_feeds = SimpleNamespace(feeds=lambda: [])
    watchers = [
        AlertWatcher(
            store,
            hub,
            no_feeds,
            after=60,
            interval=1,
            clock=lambda: clock[0],
            fleet=cluster.alerts(),
        )  # fmt: skip
        for hub, cluster in zip(hubs, clusters, strict=True)
    ]

    def look(advance: float = 0.0) -> list[tuple[str, str]]:
        """Every process looks once, then the clock moves on; the reports they would send."""
        sent = [(r["event"], r["id"]) for w in watchers for r in w.check()]
        clock[0] += advance
        return sent

    try:
        hubs[0].displays = {held.id}  # screens of "Held by a" are on process a only
        sent = [pair for _ in range(5) for pair in look(advance=40)]  # 200 s: over the 60
        assert ("down", str(held.id)) not in sent  # process b learns of it through Redis
        assert sent.count(("down", str(dark.id))) == 1  # one report for the fleet, not two
        assert all(w.down_for("display", dark.id) for w in watchers)
        hubs[1].displays = {held.id, dark.id}  # its screen comes back, on process b
        back = look() + look()
        assert back.count(("recovered", str(dark.id))) == 1
    finally:
        for cluster in clusters:
            cluster.close()
        store.close()


# -- fleet health and metrics across processes ---------------------------------------------------
def _fleet_json(server: ServeProcess, token: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{server.url}/api/admin/fleet", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _metric(server: ServeProcess, name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics (None when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def _process_pid(process_id: str) -> int:
    """The pid in a process id (host:pid:random), as the lease holds it."""
    return int(process_id.split(":")[1])


def test_fleet_health_and_metrics_see_every_process_and_forget_a_dead_one(
    sim,
    fleet,
    players,
    redis_server,  # noqa: F811
):
    a, b = fleet(2)
    floor, cred, _rooms = setup_floor(sim, a)
    token = a.cli("admin", "token", "create", "ci").strip()
    kiosks = {a: 2, b: 3}
    group = {
        s: players.add([ws_url(s, cred)], n, f"p{i}") for i, (s, n) in enumerate(kiosks.items())
    }
    players.wait(lambda p: p.epoch is not None, timeout=30, message="kiosks joined")
    ids = {s: _fleet_json(s, token)["cluster"]["process"] for s in (a, b)}
    for server, process in ids.items():
        assert _process_pid(process) in worker_pids(server)

    # One more screen on b whose page reports itself, as kiosk.js does (every second here).
    beat = {"type": "heartbeat", "uptime_s": 12, "screen": "1920x1080", "version": "9.9"}

    def whole(server: ServeProcess, page_kiosk: Any) -> dict[str, Any] | None:
        """The server's fleet view once it shows every screen of both processes, beating."""
        page_kiosk.send(json.dumps(beat))  # kept fresh: the page is stale 8 s after the last
        try:  # and read what the server sent, as a page does (a full buffer stops pongs)
            while True:
                page_kiosk.recv(timeout=0)
        except TimeoutError:
            pass
        view = _fleet_json(server, token)
        screens = view["displays"][0]["screens"]
        wanted = sorted([ids[a]] * kiosks[a] + [ids[b]] * (kiosks[b] + 1))
        feed = next((f for f in view["feeds"] if f["floor_id"] == floor), {})
        beating = [s for s in screens if s["screen"] == "1920x1080"]
        return (
            view
            if sorted(s["process"] for s in screens) == wanted
            and feed.get("holder")
            and len(beating) == 1
            and beating[0]["heartbeat_age_s"] is not None
            and beating[0]["heartbeat_age_s"] < 8
            else None
        )

    with sync_connect(ws_url(b, cred), open_timeout=10) as page_kiosk:
        page_kiosk.recv(timeout=10)
        views = [
            wait_until(lambda s=s: whole(s, page_kiosk), 30, 0.2, "every screen, beating")
            for s in (a, b)
        ]
    lease = redis.Redis.from_url(redis_server.url, decode_responses=True).get(
        f"signage:lease:{floor}"
    )
    holding = next(s for s in (a, b) if ids[s] == lease)
    relaying = b if holding is a else a
    for view in views:
        assert view["cluster"]["reachable"] is True and view["cluster"]["note"] is None
        assert {p["id"] for p in view["cluster"]["processes"]} == {ids[a], ids[b]}
        display = view["displays"][0]
        assert display["connected"] == 6 and display["problems"] == []
        (beating,) = [s for s in display["screens"] if s["screen"] == "1920x1080"]
        assert beating["process"] == ids[b] and beating["version"] == "9.9"
        assert beating["uptime_s"] == 12 and 0 <= beating["heartbeat_age_s"] < 8
        assert all(
            s["connected_s"] is not None and s["connected_s"] < 60 for s in display["screens"]
        )
        # Each floor once, the same holder named whichever process answers, kiosks summed.
        floors = [f["floor_id"] for f in view["feeds"]]
        assert len(floors) == len(set(floors))
        feed = next(f for f in view["feeds"] if f["floor_id"] == floor)
        assert feed["holder"] == lease and feed["kiosks"] == 6
    assert {f["floor_id"]: f["holder"] for f in views[0]["feeds"]} == {
        f["floor_id"]: f["holder"] for f in views[1]["feeds"]
    }
    page = httpx.get(f"{a.url}/admin/fleet", timeout=10)
    assert page.status_code in (302, 401, 403)  # the page itself wants a signed-in admin

    assert _metric(holding, "signage_floor_upstream_held", floor=floor) == 1
    assert _metric(relaying, "signage_floor_upstream_held", floor=floor) == 0
    assert (_metric(holding, "signage_lease_takeovers_total") or 0) >= 1
    for server in (a, b):
        assert _metric(server, "signage_redis_up") == 1
        assert _metric(server, "signage_fleet_processes") == 2

    # The reports are small and carry no secret (client secret, kiosk credential, tokens).
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    reports = [r.get(key) or "" for key in r.scan_iter("signage:proc:*")]
    tokens = [r.hget(key, "access_token") or "" for key in r.scan_iter("signage:token:*")]
    assert len(reports) == 2 and all(0 < len(text) < 2000 for text in reports)
    for secret in (SimSettings().client_secret, cred, "fleet-secret-key", *tokens):
        assert secret and all(secret not in text for text in reports)

    # The holder dies: its screens leave the survivor's view, and the survivor holds the floor.
    dead_pids = worker_pids(holding)
    os.kill(holding.proc.pid, signal.SIGKILL)  # the master first, so that it respawns nothing
    for pid in dead_pids - {holding.proc.pid}:
        os.kill(pid, signal.SIGKILL)

    def forgotten() -> bool:
        view = _fleet_json(relaying, token)
        screens = view["displays"][0]["screens"]
        feed = next(f for f in view["feeds"] if f["floor_id"] == floor)
        return (
            [s["process"] for s in screens] == [ids[relaying]] * kiosks[relaying]
            and [p["id"] for p in view["cluster"]["processes"]] == [ids[relaying]]
            and feed["holder"] == ids[relaying]
            and feed["kiosks"] == kiosks[relaying]
        )

    # Its report expires within 9 s and its lease within 5 s; the rest is room for a busy host.
    wait_until(forgotten, 30, 0.2, "the dead process left the survivor's fleet view")
    assert _metric(relaying, "signage_floor_upstream_held", floor=floor) == 1
    assert _metric(relaying, "signage_fleet_processes") == 1
    assert all(p.server == ws_url(relaying, cred) for p in group[relaying])


def test_fleet_page_with_redis_away_shows_this_process_only(
    sim,
    fleet,
    players,
    redis_server,  # noqa: F811
):
    (server,) = fleet(1)
    floor, cred, _rooms = setup_floor(sim, server)
    token = server.cli("admin", "token", "create", "ci").strip()
    password = "correct horse battery staple"
    done = subprocess.run(
        [sys.executable, "-m", "signage", "admin", "create", "alice", "--password-stdin"],
        env=server.env,
        input=password,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    console = httpx.Client(base_url=server.url, timeout=10)
    login = console.get("/admin/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf is not None
    signed_in = console.post(
        "/admin/login",
        data={"csrf_token": csrf.group(1), "username": "alice", "password": password},
    )
    assert signed_in.status_code == 302, signed_in.text
    group = players.add([ws_url(server, cred)], 2, "s")
    players.wait(lambda p: p.epoch is not None, group, 30, "kiosks joined")
    try:
        page = console.get("/admin/fleet")
        assert page.status_code == 200 and 'id="fleet-whole"' in page.text
        assert 'id="fleet-partial"' not in page.text

        redis_server.stop(signal.SIGKILL)
        page = console.get("/admin/fleet")
        assert page.status_code == 200, page.text
        assert 'id="fleet-partial"' in page.text and "this process only" in page.text
        view = _fleet_json(server, token)
        assert (
            view["cluster"]["reachable"] is False and "this process only" in view["cluster"]["note"]
        )
        # Its own screens are still there, from memory.
        assert view["displays"][0]["connected"] == 2
        assert _metric(server, "signage_redis_up") == 0
        assert _metric(server, "signage_fleet_processes") is None
    finally:
        console.close()
    logged = server.log_path.read_text(errors="replace")
    assert "Traceback" not in logged and cred not in logged


def test_fleet_report_ages_need_no_clock_agreement_and_dead_ids_leave_the_index(
    redis_server,  # noqa: F811
    monkeypatch,
):
    reader, writer = Cluster(redis_server.url), Cluster(redis_server.url)
    hub = writer.hub_factory()
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        sub = hub.subscribe("floor-1", 7, threading.Event())
        sub.connected_at = time.monotonic() - 10
        sub.info = {"screen": "1920x1080", "received_at": time.monotonic() - 2}
        assert reader.send_report()
        r.zadd(scripts.PROCS, {"gone:1:abc": 0})  # a process whose report has expired
        real = time.time
        with monkeypatch.context() as m:  # the writer's host two hours ahead of the reader's
            m.setattr(time, "time", lambda: real() + 7200)
            assert writer.send_report()
        # No host's clock prunes the index: the reader's entry survives the writer's report.
        assert set(r.zrange(scripts.PROCS, 0, -1)) == {reader.id, writer.id, "gone:1:abc"}

        view = reader.fleet_view(leases=False)
        (screen,) = view.screens_of(7)
        assert 10 <= screen["connected_s"] < 15 and 2 <= screen["heartbeat_age_s"] < 7
        assert screen["process"] == writer.id and screen["screen"] == "1920x1080"
        # The reader drops the ids whose report is gone, and counts the live ones.
        assert set(r.zrange(scripts.PROCS, 0, -1)) == {reader.id, writer.id}
        assert reader.live_processes() == 2

        # The report was written 4 s ago (by the key's time to live): every age is 4 s older.
        r.pexpire(scripts.REPORT.format(writer.id), int((writer.report_ttl - 4) * 1000))
        view = reader.fleet_view(leases=False)
        (screen,) = view.screens_of(7)
        assert 14 <= screen["connected_s"] < 19 and 6 <= screen["heartbeat_age_s"] < 11
        (row,) = [p for p in view.summary()["processes"] if p["id"] == writer.id]
        assert 4 <= row["report_age_s"] < 6

        writer.close()
        assert reader.live_processes() == 1
        assert reader.fleet_view(leases=False).screens_of(7) == []
    finally:
        hub.stop()
        writer.close()
        reader.close()


def test_a_closed_cluster_sends_no_report_even_from_a_late_lease_thread(redis_server):  # noqa: F811
    cluster = Cluster(redis_server.url, lease_renew=0.2)  # a report every 2 s
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    key = scripts.REPORT.format(cluster.id)
    release = threading.Event()
    rounds: list[float] = []

    class SlowFloor:
        """A floor whose second lease round hangs (Redis slow to answer), past close()'s join."""

        floor_id = "slow"
        holding = False

        def status(self) -> dict[str, Any]:
            return {"mode": "live", "reason": None, "heard_age_s": 1.0}

        def lease_round(self) -> None:
            rounds.append(time.monotonic())
            if len(rounds) > 1:
                release.wait(30)

        def resync_from_redis(self) -> None:
            pass

    cluster.register(SlowFloor())  # type: ignore[arg-type]
    try:
        wait_until(lambda: r.exists(key) and len(rounds) > 1, 15, 0.05, "a report, a stuck round")
        cluster.close()  # gives up on the lease thread after 3 s, then deletes the report
        assert not r.exists(key) and cluster.id not in r.zrange(scripts.PROCS, 0, -1)
    finally:
        release.set()
    for thread in cluster._threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    # The round ended after a report was due again: none was sent, and none starts anew.
    assert not r.exists(key)
    cluster.start_reports()
    assert not cluster.send_report() and not r.exists(key)


def test_a_worker_with_no_kiosks_reports_to_the_fleet(sim, fleet, redis_server):  # noqa: F811
    (server,) = fleet(1)
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    # Nothing asks for the fleet page or /metrics: the worker reports from its start.
    keys = wait_until(lambda: list(r.scan_iter("signage:proc:*")), 30, 0.1, "a report")
    (key,) = keys
    assert _process_pid(key.removeprefix("signage:proc:")) in worker_pids(server)
    assert json.loads(r.get(key) or "{}")["screens"] == []


# -- freshness across hosts whose clocks disagree -------------------------------------------------
CLOCK_SKEW = 120.0  # what a Pi's clock can be off after a boot without network
SKEW_STALE_AFTER = 3.0


def _mirror_with_a_skewed_clock(
    sim: SimServer, fleet, make_server, players: Players, redis_url: str, monkeypatch, skew: float
) -> tuple[ServeProcess, Any, Player, str, list[str]]:
    """A holder process on the real clock, and a mirror in this process whose clock is `skew` off.

    The holder (`signage serve`) takes the floor's lease with a 60 s expiry, so that the mirror
    cannot take it over during the test: whatever the mirror says comes from the fleet's state.
    A room is free, so that a stale mirror would show a free room it knows nothing about.
    """
    (holder_process,) = fleet(1, SIGNAGE_STALE_AFTER=SKEW_STALE_AFTER, SIGNAGE_LEASE_TTL=60.0)
    floor, cred, rooms = setup_floor(sim, holder_process)
    sim.world.set_space(rooms[0], presence=False, health="healthy")
    (on_holder,) = players.add([ws_url(holder_process, cred)], 1, "h")
    players.wait(lambda p: p.state(rooms[0]) == "free", [on_holder], 20, "the holder has data")
    wait_until(
        lambda: holder(redis_url, floor) in worker_pids(holder_process), 15, 0.05, "holder leased"
    )
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew)  # this whole process's clock
    mirror = make_server(
        SIGNAGE_REDIS_URL=redis_url, SIGNAGE_STALE_AFTER=SKEW_STALE_AFTER, SIGNAGE_LEASE_TTL=60.0
    )
    _display, mirror_cred = mirror.add_display(floor)
    (on_mirror,) = players.add([mirror.socket_url(mirror_cred)], 1, "m")
    return holder_process, mirror, on_mirror, floor, rooms


def _unknown_frames(player: Player) -> list[str]:
    """Every room a frame showed unknown, as "seq room"."""
    return [
        f"{frame['seq']} {sid}"
        for _at, frame in player.frames
        for sid, room in (frame.get("rooms") or {}).items()
        if room["state"] == "unknown"
    ]


def test_a_mirror_whose_clock_is_behind_the_holders_still_goes_stale_in_time(
    sim,
    fleet,
    make_server,
    players,
    redis_server,  # noqa: F811
    monkeypatch,
):
    """Freshness is judged on Redis's clock: a dead holder's last word ages as it should."""
    holder_process, mirror, player, floor, rooms = _mirror_with_a_skewed_clock(
        sim, fleet, make_server, players, redis_server.url, monkeypatch, -CLOCK_SKEW
    )
    wait_until(lambda: player.state(rooms[0]) == "free", 15, 0.05, "the mirror relays the fleet")
    (feed,) = [f for f in mirror.svc.cluster.floors() if f.floor_id == floor]
    assert not feed.holding
    fleet_epoch = player.epoch

    dead = worker_pids(holder_process)
    killed_at = time.monotonic()
    os.kill(holder_process.proc.pid, signal.SIGKILL)  # the master first: it respawns nothing
    for pid in dead - {holder_process.proc.pid}:
        os.kill(pid, signal.SIGKILL)

    # The holder's last heartbeat was at most a second old (the simulator refreshes every
    # second); then stale_after, the mirror's grace and a lease round or a tick.
    limit = SKEW_STALE_AFTER + 8.0
    wait_until(
        lambda: all(player.state(sid) == "unknown" for sid in rooms),
        limit,
        0.05,
        f"every room unknown within {limit} s of the holder's death",
    )
    took = time.monotonic() - killed_at
    print(f"mirror 120 s behind the holder: every room unknown {took:.1f} s after its death")
    assert player.epoch != fleet_epoch  # said by the mirror itself, under a local epoch
    assert feed.status()["mode"] == "stale"
    # Nobody took the lease over (that would have brought fresh data): the clock did this.
    assert holder(redis_server.url, floor) in dead


def test_a_mirror_whose_clock_is_ahead_of_the_holders_keeps_fresh_data_fresh(
    sim,
    fleet,
    make_server,
    players,
    redis_server,  # noqa: F811
    monkeypatch,
):
    """A quiet floor (no updates, only the holder's heartbeat) is not called stale by a mirror."""
    _holder, mirror, player, floor, rooms = _mirror_with_a_skewed_clock(
        sim, fleet, make_server, players, redis_server.url, monkeypatch, CLOCK_SKEW
    )
    joined = time.monotonic()
    wait_until(lambda: player.frames, 15, 0.05, "the mirror's snapshot")
    (feed,) = [f for f in mirror.svc.cluster.floors() if f.floor_id == floor]
    assert not feed.holding
    # The room's age came through Redis too: not 120 s older than it is.
    assert player.state(rooms[0]) == "free", _unknown_frames(player)
    assert player.rooms[rooms[0]]["since_s"] < 60

    # Three times stale_after: the mirror would have given up on the heartbeat long before.
    def watched_long_enough() -> bool:
        assert _unknown_frames(player) == [], "a fresh room was shown unknown"
        assert feed.status()["mode"] != "stale", feed.status()
        return time.monotonic() - joined > 3 * SKEW_STALE_AFTER

    wait_until(watched_long_enough, 30, 0.1, "the mirror watched the quiet floor")
    assert feed.local_stale_entries == 0
    assert player.state(rooms[0]) == "free"


def test_heard_and_at_are_stamped_and_read_on_redis_clock(redis_server, monkeypatch):  # noqa: F811
    """The scripts stamp ages with Redis's TIME; a reader's answer is an age, whatever its clock."""
    holder_link, reader = Cluster(redis_server.url), Cluster(redis_server.url)
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    floor = "floor-skew"
    try:
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() - 3600)  # an hour off: must not matter
        assert holder_link.round(floor, None)[0] == 2  # took the free lease
        assert holder_link.init_state(floor, "e1", 0) == ("e1", 0)
        assert holder_link.publish(floor, "e1", 1, "{}", "{}", 2.0) == 1
        seconds, micros = r.time()
        redis_now = seconds + micros / 1e6
        state = r.hgetall(scripts.STATE.format(floor))
        assert abs(redis_now - float(state["at"])) < 1.0
        assert abs(redis_now - 2.0 - float(state["heard"])) < 1.0

        asked = time.monotonic()
        mine, epoch, seq, heard = holder_link.round(floor, 5.0)  # the heartbeat: heard 5 s ago
        assert (mine, epoch, seq) == (1, "e1", 1)
        assert heard is not None and abs(asked - 5.0 - heard) < 1.0

        monkeypatch.setattr(time, "time", lambda: real() + 3600)  # the reader, two hours later
        asked = time.monotonic()
        mine, epoch, seq, heard = reader.round(floor, None)
        assert (mine, epoch, seq) == (0, "e1", 1)  # someone else's lease
        assert heard is not None and abs(asked - 5.0 - heard) < 1.0
        state, at = reader.load_state(floor)
        assert state["epoch"] == "e1" and abs(at - redis_now) < 5.0
    finally:
        holder_link.close()
        reader.close()


# -- attempt limits and down alerts on Redis's clock ---------------------------------------------
HOUR = 3600.0


def _on_host(monkeypatch, skew: float, call):
    """Run `call` as on a host whose wall clock is `skew` seconds off (the others' are not)."""
    real = time.time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real() + skew)
        return call()


def test_attempt_windows_are_the_fleets_whatever_the_hosts_clocks(redis_server, monkeypatch):  # noqa: F811
    """Hosts two hours apart share one window, and Retry-After is never off by their skew."""
    from signage.web.auth import AttemptLimiter

    clusters = [Cluster(redis_server.url) for _ in range(2)]
    try:
        ahead, behind = (c.attempt_limiter("login-ip", AttemptLimiter(3, 60.0)) for c in clusters)

        def on_ahead(call):
            return _on_host(monkeypatch, HOUR, call)

        def on_behind(call):
            return _on_host(monkeypatch, -HOUR, call)

        key = "10.0.0.9"
        assert on_ahead(lambda: ahead.hit(key)) and on_behind(lambda: behind.hit(key))
        assert on_ahead(lambda: ahead.hit(key))
        # Three attempts in the window, from either host: the fourth is refused on both.
        assert not on_ahead(lambda: ahead.hit(key)) and not on_behind(lambda: behind.hit(key))
        assert on_ahead(lambda: ahead.blocked(key)) and on_behind(lambda: behind.blocked(key))
        for limiter, host in ((ahead, on_ahead), (behind, on_behind)):
            assert 55 <= host(lambda limiter=limiter: limiter.retry_after(key)) <= 61

        # A short window frees on time for both hosts, and says so beforehand.
        quick_a, quick_b = (c.attempt_limiter("pair-ip", AttemptLimiter(1, 1.0)) for c in clusters)
        assert on_ahead(lambda: quick_a.hit(key)) and not on_behind(lambda: quick_b.hit(key))
        assert 1 <= on_behind(lambda: quick_b.retry_after(key)) <= 2
        wait_until(lambda: not on_behind(lambda: quick_b.blocked(key)), 10, 0.05, "window freed")
        assert on_behind(lambda: quick_b.retry_after(key)) == 0
        assert on_behind(lambda: quick_b.hit(key)) and not on_ahead(lambda: quick_a.hit(key))
    finally:
        for cluster in clusters:
            cluster.close()


def test_down_alerts_see_displays_held_elsewhere_whatever_the_hosts_clocks(
    redis_server,  # noqa: F811
    monkeypatch,
):
    """A display held on a host an hour off is connected for the others, until it is not."""
    clusters = [Cluster(redis_server.url) for _ in range(2)]
    try:
        ahead, behind = (c.alerts() for c in clusters)
        # Held on the host that is behind: the host ahead must not call it down.
        assert _on_host(monkeypatch, -HOUR, lambda: behind.connected({7}, 20.0)) == {7}
        assert _on_host(monkeypatch, HOUR, lambda: ahead.connected(set(), 20.0)) == {7}
        # Held on the host that is ahead: connected for the host behind too...
        assert _on_host(monkeypatch, HOUR, lambda: ahead.connected({8}, 20.0)) == {7, 8}
        assert _on_host(monkeypatch, -HOUR, lambda: behind.connected(set(), 20.0)) == {7, 8}

        # ...but only while it is seen: once no host holds it, it leaves the horizon on time.
        def gone() -> bool:
            return not _on_host(monkeypatch, -HOUR, lambda: behind.connected(set(), 1.0))

        wait_until(gone, 10, 0.05, "the displays left the 1 s horizon")
    finally:
        for cluster in clusters:
            cluster.close()
