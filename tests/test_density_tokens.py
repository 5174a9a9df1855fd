"""Token economy: many threads, short lifetimes, one token request per lifetime, none expired.

`hammer` is shared with test_density_sim.py, which runs the same check against the simulator.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import pytest

from signage.density import (
    DensityClient,
    RateLimiter,
    Unavailable,
)
from signage.density.tokens import Token, TokenCache, TokenGrant


@dataclass
class HammerResult:
    calls: int = 0
    errors: list[BaseException] = field(default_factory=list)
    elapsed: float = 0.0


def hammer(
    call: Callable[[], object], *, threads: int, duration: float, pause: float = 0.005
) -> HammerResult:
    """Run `call` from `threads` threads until `duration` has passed; collect failures."""
    result = HammerResult()
    lock = threading.Lock()
    start_line = threading.Barrier(threads)
    stop_at: list[float] = []

    def worker() -> None:
        start_line.wait(10)
        with lock:
            if not stop_at:
                stop_at.append(time.monotonic() + duration)
        while time.monotonic() < stop_at[0]:
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - every failure is reported
                with lock:
                    result.errors.append(exc)
                return
            with lock:
                result.calls += 1
            time.sleep(pause)

    began = time.monotonic()
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(duration + 30)
        assert not w.is_alive(), "a worker hung"
    result.elapsed = time.monotonic() - began
    return result


class TokenServer:
    """A MockTransport handler that issues short-lived tokens and refuses expired ones."""

    def __init__(self, lifetime: float, *, delay: float = 0.02) -> None:
        self.lifetime = lifetime
        self.delay = delay
        self.lock = threading.Lock()
        self.issued: dict[str, float] = {}  # token -> expiry, on the server's clock
        self.token_requests: list[float] = []
        self.expired_uses = 0
        self.unknown_uses = 0
        self.data_requests = 0
        self.concurrent = 0
        self.max_concurrent = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/wayfinding/token":
            with self.lock:
                self.concurrent += 1
                self.max_concurrent = max(self.max_concurrent, self.concurrent)
            # Slow enough that a cache without single flight would let many threads in.
            time.sleep(self.delay)
            form = parse_qs(request.content.decode())
            assert form["client_secret"] == ["s3cr3t"]
            with self.lock:
                self.concurrent -= 1
                token = f"eyJ{form['display_id'][0]}.{len(self.token_requests)}"
                self.token_requests.append(time.monotonic())
                self.issued[token] = time.monotonic() + self.lifetime
            return httpx.Response(
                200,
                json={"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"},
            )
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.data_requests += 1
            expiry = self.issued.get(token)
            if expiry is None:
                self.unknown_uses += 1
                return httpx.Response(401, json={"code": 401, "message": "unknown token"})
            if time.monotonic() >= expiry:
                self.expired_uses += 1
                return httpx.Response(401, json={"code": 401, "message": "expired token"})
        return httpx.Response(200, json={"data": {}})


@pytest.mark.parametrize("lifetime", [1.0, 2.0])
def test_fifty_threads_one_token_request_per_lifetime(lifetime: float) -> None:
    server = TokenServer(lifetime)
    http = httpx.Client(transport=httpx.MockTransport(server))
    # A generous limiter: this test is about tokens, not pacing.
    limiter = RateLimiter(rate=5000, burst=5000)
    with DensityClient(
        "https://density.test", client_id="cid", client_secret="s3cr3t", http=http, limiter=limiter
    ) as client:
        result = hammer(
            lambda: client.presence_health(["spc_1"], display_id="dsp_1"),
            threads=50,
            duration=3 * lifetime,
        )
        assert result.errors == []
        assert server.expired_uses == 0 and server.unknown_uses == 0
        # Three lifetimes: at most one token per lifetime, plus one.
        assert len(server.token_requests) <= 3 + 1, server.token_requests
        assert server.max_concurrent == 1  # single flight
        assert client.tokens.renewals.get("dsp_1", 0) == len(server.token_requests) - 1
        assert result.calls > 100  # the threads really did run concurrently
        assert client.stats["auth_refreshes"] == 0
    http.close()


def test_distinct_displays_get_distinct_tokens_concurrently() -> None:
    server = TokenServer(60.0, delay=0.05)
    http = httpx.Client(transport=httpx.MockTransport(server))
    client = DensityClient(
        "https://density.test",
        client_id="cid",
        client_secret="s3cr3t",
        http=http,
        limiter=RateLimiter(rate=5000, burst=5000),
    )
    displays = [f"dsp_{n}" for n in range(5)]
    counter = iter(range(10_000))
    lock = threading.Lock()

    def call() -> None:
        with lock:
            display = displays[next(counter) % len(displays)]
        client.presence_health(display_id=display)

    result = hammer(call, threads=25, duration=0.5)
    assert result.errors == []
    assert len(server.token_requests) == len(displays)
    # Per-key locks: the five displays' fetches overlapped instead of queueing behind one lock.
    assert server.max_concurrent > 1
    assert {client.token_expiry(d) is not None for d in displays} == {True}
    assert client.token_expiry("dsp_unknown") is None


# --------------------------------------------------------------------------- TokenCache unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_renew_margin_is_proportionate() -> None:
    cache = TokenCache(lambda key: TokenGrant("x", 1), margin=60)
    assert cache.renew_margin(3600) == pytest.approx(360)  # 10% beats 60 s
    assert cache.renew_margin(300) == pytest.approx(60)  # the configured margin
    assert cache.renew_margin(2) == pytest.approx(0.4)  # a fifth of a short lifetime
    assert cache.renew_margin(6) == pytest.approx(1.2)


def test_cache_renews_before_expiry_and_never_hands_out_a_stale_token() -> None:
    clock = FakeClock()
    grants = iter(range(1000))
    cache = TokenCache(lambda key: TokenGrant(f"t{next(grants)}", 10.0), margin=60, clock=clock)
    seen = []
    for _ in range(200):
        token = cache.get("dsp")
        # Whatever the clock says, the token handed out has more than its margin left.
        assert token.remaining(clock.now) > cache.renew_margin(token.lifetime)
        seen.append(token.access_token)
        clock.now += 0.37
    # 74 s of use, a 10 s token renewed with 2 s left: one per 8 s.
    assert len(set(seen)) == math.ceil(200 * 0.37 / 8.0)
    assert cache.renewals["dsp"] == len(set(seen)) - 1
    assert cache.fetches["dsp"] == len(set(seen))


def test_expiry_is_pinned_to_when_the_request_left() -> None:
    clock = FakeClock()

    def slow_fetch(key: object) -> TokenGrant:
        clock.now += 3.0  # the token endpoint took 3 s to answer
        return TokenGrant("t", 10.0)

    cache = TokenCache(slow_fetch, clock=clock)
    token = cache.get("dsp")
    assert token.remaining(clock.now) == pytest.approx(7.0)


def test_single_flight_failure_is_shared_not_repeated() -> None:
    calls = []
    gate = threading.Event()

    def failing_fetch(key: object) -> TokenGrant:
        calls.append(key)
        gate.wait(5)
        raise Unavailable("token endpoint down", status=503)

    cache = TokenCache(failing_fetch)
    errors: list[BaseException] = []

    def get() -> None:
        try:
            cache.get("dsp")
        except Unavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=get) for _ in range(20)]
    for t in threads:
        t.start()
    # One thread is in the fetch; wait (with a deadline) until the other nineteen queue behind it.
    deadline = time.monotonic() + 5
    while not (calls and cache.waiting("dsp") == 19) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert cache.waiting("dsp") == 19
    gate.set()
    for t in threads:
        t.join(5)
    assert len(errors) == 20
    assert len(calls) == 1
    assert all(e.status == 503 for e in errors)
    # The next caller, after the failure, tries again.
    gate.set()
    with pytest.raises(Unavailable):
        cache.get("dsp")
    assert len(calls) == 2


def test_a_failed_early_renewal_keeps_the_live_token_and_waits_before_trying_again() -> None:
    """Token endpoint down: the current token serves while it lives, renewal is retried every
    30 s (not on every call), and only a token about to die is refused."""
    clock = FakeClock()
    down = {"now": False}
    fetched: list[float] = []

    def fetch(key: object) -> TokenGrant:
        fetched.append(clock.now)
        if down["now"]:
            raise Unavailable("token endpoint down", status=503)
        return TokenGrant(f"t{len(fetched)}", 300.0)

    cache = TokenCache(fetch, margin=60, clock=clock)
    first = cache.get("org")  # issued at 50, lives until 350, renewed from 290 on
    down["now"] = True
    clock.now = 291.0
    assert cache.get("org") is first  # renewal failed: the token still has 59 s
    assert fetched == [50.0, 291.0]
    for _ in range(100):  # calls in the next 29 s do not ask again
        clock.now += 0.29
        assert cache.get("org") is first
    assert len(fetched) == 2
    clock.now = 321.5  # 30 s on: one more try
    assert cache.get("org") is first
    assert fetched[-1] == 321.5 and len(fetched) == 3
    # Tries then come every half of what is left, and a token about to die is not used.
    clock.now = 349.5
    with pytest.raises(Unavailable):
        cache.get("org")
    # Density back: a fresh token at once.
    down["now"] = False
    clock.now = 351.0
    assert cache.get("org").access_token == f"t{len(fetched)}"


def test_a_failed_renewal_after_invalidate_is_an_error() -> None:
    """A token Density rejected (401) is never handed out again, whatever renewal does."""
    clock = FakeClock()
    answers = iter([TokenGrant("t1", 300.0)])

    def fetch(key: object) -> TokenGrant:
        try:
            return next(answers)
        except StopIteration:
            raise Unavailable("token endpoint down", status=503) from None

    cache = TokenCache(fetch, clock=clock)
    first = cache.get("org")
    assert cache.invalidate("org", first.access_token)
    with pytest.raises(Unavailable):
        cache.get("org")


def test_invalidate_is_compare_and_drop() -> None:
    grants = iter(range(100))
    cache = TokenCache(lambda key: TokenGrant(f"t{next(grants)}", 600.0))
    first = cache.get("dsp")
    assert cache.invalidate("dsp", first.access_token)
    second = cache.get("dsp")
    assert second.access_token != first.access_token
    # A late 401 on the old token must not drop the new one.
    assert not cache.invalidate("dsp", first.access_token)
    assert cache.get("dsp") is second
    assert not cache.invalidate("other")


def test_token_repr_and_str_hide_the_secret() -> None:
    token = Token(access_token="eyJSECRET", expires_at=10.0, scope="display", token_type="Bearer")
    assert "eyJSECRET" not in repr(token) and "eyJSECRET" not in str(token)
    assert "eyJSECRET" not in repr(TokenGrant("eyJSECRET", 1.0))
    assert copy.copy(token) == token


def test_the_oauth_settings_reach_the_client(tmp_path, monkeypatch) -> None:
    """DENSITY_OAUTH_AUDIENCE and DENSITY_TOKEN_DURATION are read from the environment."""
    from signage import create_app

    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("DENSITY_OAUTH_AUDIENCE", "https://api.density.io")
    monkeypatch.setenv("DENSITY_TOKEN_DURATION", "900")
    app = create_app(
        {
            "TESTING": True,
            "SIGNAGE_DATABASE": str(tmp_path / "signage.sqlite3"),
            "SIGNAGE_SECRET_KEY": "test",
        }
    )
    svc = app.extensions["signage"]
    try:
        assert svc.client.audience == "https://api.density.io"
        assert svc.client.token_duration == 900
    finally:
        svc.close()
