"""The Density client against the built-in simulator over loopback: tokens, calls, sockets, 429s."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from websockets.sync.client import connect as ws_connect

from signage.core.directory import build_tree
from signage.density import (
    AuthError,
    BadRequest,
    DensityClient,
    DensityError,
    MalformedFrame,
    NotFound,
    PresenceStream,
    RateLimited,
    RateLimiter,
    StreamClosed,
)
from signage.sim import SimServer, SimSettings
from tests.helpers import wait_until
from tests.test_density_tokens import hammer

pytestmark = pytest.mark.timeout(60)

CREDS = SimSettings()


@contextlib.contextmanager
def simulator(**settings: Any) -> Iterator[SimServer]:
    with SimServer(SimSettings(**settings), seed=1) as sim:
        yield sim


@pytest.fixture
def sim(sim_shape: str) -> Iterator[SimServer]:
    with simulator(shape=sim_shape) as server:
        yield server


def make_client(sim: SimServer, kind: str = "all", **kwargs: Any) -> DensityClient:
    creds: dict[str, Any] = {}
    if kind in ("static", "all"):
        creds["api_token"] = CREDS.static_token
    if kind in ("oauth", "all"):
        creds.update(client_id=CREDS.client_id, client_secret=CREDS.client_secret)
    return DensityClient(sim.url, **creds, **kwargs)


def floor_with_display(sim: SimServer) -> tuple[str, str]:
    display_id, floor_id = next(iter(sim.world.displays.items()))
    return floor_id, display_id


def rooms(sim: SimServer, floor_id: str, mode: str) -> list[str]:
    portfolio = sim.world.portfolio
    return [r for r in portfolio.rooms_under(floor_id) if portfolio.spaces[r].counting_mode == mode]


def calls(sim: SimServer, key: str) -> int:
    return sim.calls()["calls"].get(key, 0)


# --------------------------------------------------------------------------- tokens and calls


def test_three_kinds_of_token(sim: SimServer) -> None:
    floor_id, display_id = floor_with_display(sim)
    with make_client(sim, "static") as static:
        assert static.org_token() == CREDS.static_token
        assert "try" in static.hello_world()
        # A display id without client credentials falls back to the organisation token.
        assert static.presence_health(display_id=display_id)
    with make_client(sim, "oauth") as oauth:
        token = oauth.org_token()
        assert token.startswith("eyJ") and oauth.org_token() == token
        assert oauth.token_expiry("org") == pytest.approx(CREDS.token_lifetime, abs=5)
        assert oauth.hello_world()
        display = oauth.display_token(display_id)
        assert display.access_token.startswith("eyJ") and display.access_token != token
        assert oauth.presence_health(display_id=display_id)
        assert oauth.token_expiry(display_id) is not None
    counted = sim.calls()
    assert counted["calls"]["POST /v3/oauth/token"] == 1
    assert counted["calls"]["POST /v3/wayfinding/token"] == 1
    assert counted["expired_token_uses"] == 0


def test_every_call(sim: SimServer) -> None:
    floor_id, display_id = floor_with_display(sim)
    oa = rooms(sim, floor_id, "oa")
    entry = rooms(sim, floor_id, "entry")
    with make_client(sim) as client:
        assert client.version() == "1.0.2"
        spaces = client.spaces()
        by_id = {s.id: s for s in spaces}
        assert floor_id in by_id and by_id[floor_id].space_type == "floor"
        assert set(oa) <= set(by_id) and by_id[oa[0]].counting_mode == "oa"
        # In either shape (parent_id, or children only) the listing places the room on its floor.
        assert build_tree(spaces).parent_of(oa[0]).id == floor_id

        health = client.presence_health(oa, display_id=display_id)
        assert set(health) == set(oa)
        assert all(h.health == "healthy" and h.occupied is not None for h in health.values())
        assert all(h.timestamp is not None for h in health.values())
        state = sim.world.space_state(oa[0])
        assert health[oa[0]].occupied == state.presence

        presence = client.presence(oa)
        assert presence == {sid: h.occupied for sid, h in health.items()}

        occupancy = client.current_occupancy(entry, display_id=display_id)
        assert occupancy[entry[0]].count == sim.world.space_state(entry[0]).occupancy

        sensors = client.sensor_health(space_ids=oa)
        assert sensors and {s.space_id for s in sensors} <= set(oa)
        serial = sensors[0].serial_number
        assert [s.serial_number for s in client.sensor_health(serial_numbers=[serial])] == [serial]
        with pytest.raises(ValueError):
            client.sensor_health(space_ids=oa, serial_numbers=[serial])

        points = client.short_term([floor_id], 3)
        assert len(points) >= 3 and all("timestamp" in p for p in points)
        assert client.presence_ws_url(floor_id, display_id=display_id).startswith("ws://")
        assert client.occupancy_ws_url(entry[0]).startswith("ws://")

        # The simulator's validation rules come back as the matching errors.
        with pytest.raises(NotFound):
            client.presence_ws_url("spc_does_not_exist")
        other_floor = next(f for f in sim.world.portfolio.floor_ids if f != floor_id)
        with pytest.raises(AuthError) as info:
            client.presence_ws_url(other_floor, display_id=display_id)
        assert info.value.status == 403
        with pytest.raises(BadRequest):
            client.display_token("dsp_unknown")

        sim.world.update_settings(spaces_envelope=True)
        assert [s.id for s in client.spaces()] == [s.id for s in spaces]
    assert sim.calls()["expired_token_uses"] == 0


def test_bad_credentials_are_auth_errors_without_the_secret(sim: SimServer) -> None:
    canary = "CANARY-sim-secret-42"
    floor_id, display_id = floor_with_display(sim)
    client = DensityClient(sim.url, client_id=CREDS.client_id, client_secret=canary)
    with client:
        for call in (client.hello_world, lambda: client.presence_health(display_id=display_id)):
            with pytest.raises(AuthError) as info:
                call()
            assert info.value.status == 401
            assert canary not in str(info.value) and canary not in repr(info.value)
    with DensityClient(sim.url, api_token="tok_wrong") as wrong:
        with pytest.raises(AuthError):
            wrong.spaces()


def test_token_economy_against_the_simulator() -> None:
    lifetime = 2.0
    # Rate limits off on both sides: this test is about tokens (pacing has its own tests), and
    # fifty threads queued at 12/s would keep calling for seconds after the three lifetimes.
    with simulator(token_lifetime=lifetime, rate_limit=0) as sim:
        floor_id, display_id = floor_with_display(sim)
        limiter = RateLimiter(rate=10_000, burst=10_000)
        with make_client(sim, "oauth", limiter=limiter) as client:
            result = hammer(
                lambda: client.presence_health(display_id=display_id),
                threads=50,
                duration=3 * lifetime,
                pause=0.01,
            )
            assert result.errors == []
            assert result.elapsed < 3 * lifetime + 1.0
            counted = sim.calls()
            assert counted["expired_token_uses"] == 0
            assert counted["status"].get("401", 0) == 0
            assert counted["status"].get("429", 0) == 0
            # Three lifetimes: at most one token request per lifetime, plus one.
            assert 2 <= counted["calls"]["POST /v3/wayfinding/token"] <= 3 + 1
            assert result.calls >= 500  # the threads really ran concurrently


def test_a_429_period_is_not_amplified() -> None:
    run_429_period(period=3.0, retry_after=1)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_minute_of_429s_is_not_amplified() -> None:
    """The issue's case as it is: Density answers 429 for a whole minute."""
    run_429_period(period=60.0, retry_after=2)


def run_429_period(period: float, retry_after: int) -> None:
    """Six callers on two clients through a 429 period: paced, counted, recovered."""
    with simulator() as sim:
        floor_id, display_id = floor_with_display(sim)
        limiter = RateLimiter()
        # Two clients sharing one limiter, as the app's floor feeds share the server's.
        clients = [make_client(sim, "static", limiter=limiter, max_retries=2) for _ in range(2)]
        for client in clients:
            client.hello_world()  # warm up: the rest of the test is the 429 period
        sim.world.force_429(period, retry_after=retry_after)
        started = time.monotonic()
        outcomes: list[str] = []
        lock = threading.Lock()

        def caller(client: DensityClient) -> None:
            while time.monotonic() < started + period + 1.5:
                try:
                    client.presence_health(display_id=display_id)
                    outcome = "ok"
                except RateLimited as exc:
                    assert exc.retry_after >= retry_after
                    outcome = "429"
                with lock:
                    outcomes.append(outcome)

        threads = [
            threading.Thread(target=caller, args=(clients[n % 2],), daemon=True) for n in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(period + 20)
            assert not t.is_alive()

        counted = sim.calls()
        received = sum(counted["calls"].values())
        attempted = sum(sum(s.values()) for c in clients for s in c.stats["requests"].values())
        assert received == attempted  # no request the client did not count
        # Every caller waits out each Retry-After together: about one request per caller per
        # second of 429s, not a retry storm (without the shared pause it would be hundreds).
        too_many = counted["status"].get("429", 0)
        assert too_many <= 6 * (period / retry_after + 2), counted
        assert "ok" in outcomes  # it recovered once the period ended
        assert limiter.pauses >= 1
        for client in clients:
            client.close()


# --------------------------------------------------------------------------- the presence stream


def stream_for(
    client: DensityClient, sim: SimServer, **kwargs: Any
) -> tuple[PresenceStream, str, str]:
    floor_id, display_id = floor_with_display(sim)
    options: dict[str, Any] = {"display_id": display_id, "silence_timeout": 10.0}
    options.update(kwargs)
    return PresenceStream(client, floor_id, **options), floor_id, display_id


def test_refresh_on_connect_then_live(sim: SimServer) -> None:
    with make_client(sim) as client:
        stream, floor_id, _ = stream_for(client, sim)
        with stream:
            first = stream.wait_first(5.0)
            assert first is not None and first.update_type == "refresh"
            assert not stream.needs_snapshot
            oa = rooms(sim, floor_id, "oa")
            assert set(first.by_space) == set(oa)
            assert all(u.health == "healthy" for u in first.updates)
            room = oa[0]
            was = first.by_space[room].presence
            sim.world.set_space(room, presence=not was)
            live = next(iter(stream))
            assert live.update_type == "live"
            assert live.by_space[room].presence is (not was)
            sim.world.set_space(room, health="degraded")
            assert next(iter(stream)).by_space[room].health == "degraded"
            assert sim.sockets_open(floor_id) == 1
        wait_until(lambda: sim.sockets_open(floor_id) == 0, message="socket closed")


def test_occupancy_stream(sim: SimServer) -> None:
    with make_client(sim) as client:
        floor_id, _ = floor_with_display(sim)
        entry = rooms(sim, floor_id, "entry")[0]
        with PresenceStream(client, entry, kind="occupancy", silence_timeout=10) as stream:
            first = stream.wait_first(5.0)
            assert first is not None and first.by_space[entry].occupancy is not None
            sim.world.set_space(entry, occupancy=first.by_space[entry].occupancy + 2)
            live = next(iter(stream))
            assert live.by_space[entry].occupancy == first.by_space[entry].occupancy + 2
            assert live.by_space[entry].presence is None


def test_no_refresh_on_connect_means_a_rest_snapshot(sim: SimServer) -> None:
    sim.world.update_settings(refresh_on_connect=False)
    with make_client(sim) as client:
        stream, floor_id, display_id = stream_for(client, sim)
        with stream:
            assert stream.wait_first(0.5) is None
            assert stream.needs_snapshot and stream.connected
            # What the floor feed does: take the snapshot by REST, then apply live messages.
            snapshot = client.presence_health(rooms(sim, floor_id, "oa"), display_id=display_id)
            assert snapshot
            room = next(iter(snapshot))
            sim.world.set_space(room, presence=not snapshot[room].occupied)
            live = next(iter(stream))
            assert live.update_type == "live" and stream.needs_snapshot


def test_every_connect_asks_for_a_fresh_ws_url(sim: SimServer) -> None:
    with make_client(sim) as client:
        stream, floor_id, _ = stream_for(client, sim)
        for _ in range(3):
            stream.connect()
            assert stream.wait_first(5.0) is not None
        stream.close()
        assert calls(sim, "POST /v3/analytics/ws/floor/{floor_id}/presence") == 3
        assert sim.calls()["sockets_opened"][floor_id] == 3
        wait_until(lambda: sim.sockets_open(floor_id) == 0, message="old sockets closed")
        with pytest.raises(StreamClosed):
            stream.connect()  # closed for good


def test_dropped_socket_is_detected(sim: SimServer) -> None:
    with make_client(sim) as client:
        stream, floor_id, _ = stream_for(client, sim)
        with stream:
            assert stream.wait_first(5.0) is not None
            sim.world.drop_sockets(floor_id)
            started = time.monotonic()
            with pytest.raises(StreamClosed) as info:
                for _ in stream:
                    pass
            assert info.value.reason == "closed"
            assert time.monotonic() - started < 3.0
            assert not stream.connected


def test_silent_socket_is_detected(sim: SimServer) -> None:
    with make_client(sim) as client:
        stream, _, _ = stream_for(client, sim, silence_timeout=1.0)
        sim.world.set_socket_mode("silent")
        with stream:
            started = time.monotonic()
            with pytest.raises(StreamClosed) as info:
                for _ in stream:
                    pass
            assert info.value.reason == "silent"
            assert 0.9 <= time.monotonic() - started < 3.0


def test_refused_handshake(sim: SimServer) -> None:
    sim.world.set_socket_mode("refuse")
    with make_client(sim) as client:
        stream, _, _ = stream_for(client, sim)
        with pytest.raises(StreamClosed) as info:
            stream.connect()
        assert info.value.reason == "refused" and info.value.status == 503
        assert "ws://" not in str(info.value)  # the single-use URL is not logged


def test_malformed_frames_are_counted_not_fatal(sim: SimServer) -> None:
    seen: list[MalformedFrame] = []
    with make_client(sim) as client:
        stream, floor_id, _ = stream_for(
            client, sim, max_frame_bytes=4096, on_malformed=seen.append
        )
        with stream:
            first = stream.wait_first(5.0)
            assert first is not None
            sim.world.send_raw("{not json", floor_id)
            sim.world.send_raw(json.dumps({"update_type": "gossip", "data": {}}), floor_id)
            sim.world.send_raw(json.dumps({"update_type": "live", "data": {"x": "y" * 8000}}))
            sim.world.send_raw(
                json.dumps({"update_type": "live", "data": {"spc_x": 1, "spc_y": {"presence": 1}}})
            )
            room = rooms(sim, floor_id, "oa")[0]
            sim.world.set_space(room, presence=not first.by_space[room].presence)
            messages = iter(stream)
            empty = next(messages)  # the frame whose two entries were both bad
            assert empty.updates == () and empty.skipped == 2
            live = next(messages)
            assert live.by_space[room].presence is (not first.by_space[room].presence)
            assert stream.malformed_frames == 3 and len(seen) == 3
            assert stream.skipped_entries == 2
            assert stream.connected


def test_oversized_message_costs_only_the_connection(sim: SimServer) -> None:
    with make_client(sim) as client:
        stream, floor_id, _ = stream_for(client, sim, max_frame_bytes=4096, max_message_bytes=8192)
        with stream:
            assert stream.wait_first(5.0) is not None
            sim.world.send_raw("x" * 6000, floor_id)  # over the parser's limit: skipped
            sim.world.send_raw("x" * 20_000, floor_id)  # over the socket's: the connection goes
            with pytest.raises(StreamClosed) as info:
                for _ in stream:
                    pass
            assert info.value.reason == "closed"
            assert stream.malformed_frames == 1


def test_close_from_another_thread_unblocks_the_reader(sim: SimServer) -> None:
    with make_client(sim) as client:
        stream, floor_id, _ = stream_for(client, sim, silence_timeout=60)
        stream.connect()
        got: list[Any] = []
        outcome: list[str] = []

        def reader() -> None:
            try:
                for message in stream:
                    got.append(message)
                outcome.append("ended")
            except DensityError as exc:  # pragma: no cover - reported by the assertion below
                outcome.append(f"error: {exc!r}")

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        wait_until(lambda: got, message="first message")
        started = time.monotonic()
        stream.close()
        thread.join(3)
        assert not thread.is_alive()
        assert time.monotonic() - started < 2.0
        assert outcome == ["ended"]
        wait_until(lambda: sim.sockets_open(floor_id) == 0, message="socket closed")


# --------------------------------------------------------------------------- ping timeout


class FreezableProxy:
    """A TCP proxy in front of the simulator that can stop forwarding (a half-open link)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = threading.Event()
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._spawn(self._accept)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._socks += [client, upstream]
            self._spawn(self._pump, client, upstream)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        # close() shuts the sockets under this loop: any error just ends it.
        with contextlib.suppress(OSError, ValueError):
            while not self.stopped.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.05)
                if self.frozen.is_set():
                    continue  # hold everything: nothing in, nothing out, no FIN, no RST
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))

    def close(self) -> None:
        self.stopped.set()
        self._listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(2)


def test_unanswered_ping_is_detected(sim: SimServer) -> None:
    proxy = FreezableProxy(sim.port)
    try:
        with make_client(sim) as client:

            def via_proxy(url: str, **kwargs: Any) -> Any:
                return ws_connect(proxy.rewrite(url), **kwargs)

            stream, _, _ = stream_for(
                client,
                sim,
                ping_interval=0.3,
                ping_timeout=0.5,
                silence_timeout=30.0,
                close_timeout=0.5,
                connect_fn=via_proxy,
            )
            with stream:
                assert stream.wait_first(5.0) is not None
                proxy.frozen.set()
                started = time.monotonic()
                with pytest.raises(StreamClosed) as info:
                    for _ in stream:
                        pass
                assert info.value.reason == "ping timeout"
                assert time.monotonic() - started < 5.0
    finally:
        proxy.close()
