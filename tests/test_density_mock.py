"""DensityClient error edges through httpx.MockTransport: no network, a fake clock, no waiting."""

from __future__ import annotations

import json
import random
import threading
import traceback
from collections.abc import Callable
from urllib.parse import parse_qs

import httpx
import pytest

from signage.density import (
    AuthError,
    Backoff,
    BadRequest,
    BadResponse,
    DensityClient,
    DensityError,
    NotFound,
    PresenceHealth,
    RateLimited,
    RateLimiter,
    Space,
    Unavailable,
)
from signage.density.tokens import Token

BASE = "https://density.test"
CANARY_SECRET = "CANARY-secret-5f1e9c7d"
CANARY_TOKEN = "tok_CANARY-static-8a7b6c"
CANARY_OAUTH = "eyJCANARY-oauth-3d2c1b"


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += max(seconds, 0.0)


Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """Wraps a routing handler and records every request with the fake time it arrived."""

    def __init__(self, handler: Handler, clock: FakeClock | None = None) -> None:
        self.handler = handler
        self.clock = clock
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(self.clock() if self.clock else 0.0)
        return self.handler(request)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def make_client(
    handler: Handler,
    clock: FakeClock | None = None,
    **kwargs: object,
) -> tuple[DensityClient, Recorder, FakeClock]:
    clock = clock or FakeClock()
    recorder = Recorder(handler, clock)
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    options: dict[str, object] = {"api_token": CANARY_TOKEN}
    options.update(kwargs)
    client = DensityClient(
        BASE,
        http=http,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
        **options,  # type: ignore[arg-type]
    )
    return client, recorder, clock


def token_json(token: str, expires_in: object = 3600) -> httpx.Response:
    return httpx.Response(
        200,
        json={"access_token": token, "expires_in": expires_in, "token_type": "Bearer"},
    )


def oauth_handler(data: Handler, *, expires_in: object = "3600") -> Callable[..., httpx.Response]:
    """Routes the two token endpoints and hands everything else to `data`."""
    issued: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/oauth/token":
            issued.append(f"eyJorg{len(issued)}")
            return token_json(issued[-1], expires_in)
        if request.url.path == "/v3/wayfinding/token":
            form = parse_qs(request.content.decode())
            issued.append(f"eyJdsp-{form['display_id'][0]}-{len(issued)}")
            return token_json(issued[-1], 600)
        return data(request)

    handler.issued = issued  # type: ignore[attr-defined]
    return handler


def every_text(exc: BaseException) -> str:
    """Everything an exception could show: str, repr, the formatted chain."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


# --------------------------------------------------------------------------- basic calls


def test_hello_world_and_version_send_the_static_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {CANARY_TOKEN}"
        if request.url.path == "/v3/hello-world":
            return httpx.Response(200, text="Do… or do not. There is no try. - Yoda\n")
        return httpx.Response(200, text="1.0.2")

    client, rec, _ = make_client(handler)
    assert client.hello_world().startswith("Do")
    assert client.version() == "1.0.2"
    assert rec.paths() == ["/v3/hello-world", "/version"]
    assert client.stats["requests"] == {"hello_world": {"200": 1}, "version": {"200": 1}}


def test_every_request_carries_an_explicit_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        timeout = request.extensions["timeout"]
        assert timeout["connect"] == 5.0 and timeout["read"] == 10.0
        return httpx.Response(200, text="ok")

    client, _, _ = make_client(handler)
    assert client.hello_world() == "ok"


def test_oauth_token_is_fetched_once_with_json_and_string_expires_in() -> None:
    def data(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[])

    handler = oauth_handler(data, expires_in="3600")
    client, rec, clock = make_client(
        handler, api_token=None, client_id="cid", client_secret=CANARY_SECRET
    )
    assert client.spaces() == []
    assert client.spaces() == []
    token_requests = [r for r in rec.requests if r.url.path == "/v3/oauth/token"]
    assert len(token_requests) == 1
    body = json.loads(token_requests[0].content)
    assert body == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": CANARY_SECRET,
    }
    assert "Authorization" not in token_requests[0].headers
    assert rec.requests[-1].headers["Authorization"] == "Bearer eyJorg0"
    assert client.token_expiry("org") == pytest.approx(3600)
    # Past the renewal margin (10% of 3600 s) the token is renewed before use.
    clock.now += 3600 - 300
    client.spaces()
    assert client.tokens.renewals == {"org": 1}
    assert rec.requests[-1].headers["Authorization"] == "Bearer eyJorg1"


@pytest.mark.parametrize(
    "body",
    [
        [
            {
                "id": "dwy_1",
                "name": "Cafe door",
                "space_ids": ["spc_cafe"],
                "sensor_serial_number": "E1",
            },
            {
                "id": "dwy_2",
                "spaces": [{"id": "spc_cafe"}, {"space_id": "spc_hall"}],
                "sensors": [{"serial_number": "E2"}],
            },
            {"doorway_id": "dwy_3", "space_id": "spc_hall", "serial_numbers": ["E3"]},
            {"name": "no id"},
            "junk",
        ],
        {"data": []},
        {"results": []},
    ],
)
def test_doorways_are_read_from_every_shape(body: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET" and request.url.path == "/v3/doorways"
        assert request.headers["Authorization"] == f"Bearer {CANARY_TOKEN}"
        return httpx.Response(200, json=body)

    client, _, _ = make_client(handler)
    doorways = client.doorways()
    if not isinstance(body, list):
        assert doorways == []
        return
    assert [(d.id, d.name, d.space_ids, d.serial_numbers) for d in doorways] == [
        ("dwy_1", "Cafe door", ("spc_cafe",), ("E1",)),
        ("dwy_2", "dwy_2", ("spc_cafe", "spc_hall"), ("E2",)),
        ("dwy_3", "dwy_3", ("spc_hall",), ("E3",)),
    ]


def test_doorways_rejects_a_body_that_is_not_a_list() -> None:
    client, _, _ = make_client(lambda request: httpx.Response(200, json={"id": "dwy_1"}))
    with pytest.raises(BadResponse):
        client.doorways()


def test_display_calls_use_a_form_encoded_display_token() -> None:
    def data(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {}})

    handler = oauth_handler(data)
    client, rec, _ = make_client(handler, client_id="cid", client_secret=CANARY_SECRET)
    client.presence_health(["spc_1"], display_id="dsp_1")
    client.presence_health(["spc_1"], display_id="dsp_1")
    client.presence_health(["spc_1"])  # organisation call: the static token
    token_requests = [r for r in rec.requests if r.url.path == "/v3/wayfinding/token"]
    assert len(token_requests) == 1
    assert token_requests[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_requests[0].content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": [CANARY_SECRET],
        "display_id": ["dsp_1"],
    }
    auths = [r.headers["Authorization"] for r in rec.requests if r.url.path.startswith("/v3/an")]
    assert auths == ["Bearer eyJdsp-dsp_1-0"] * 2 + [f"Bearer {CANARY_TOKEN}"]
    token = client.display_token("dsp_1")
    assert isinstance(token, Token) and token.scope is None
    assert "eyJ" not in repr(token)


def test_display_id_without_client_credentials_falls_back_to_org_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path != "/v3/wayfinding/token"
        return httpx.Response(200, json={"spc_1": {"occupied": True}})

    client, rec, _ = make_client(handler)
    assert client.presence_health(display_id="dsp_1")["spc_1"].occupied is True
    assert rec.requests[0].headers["Authorization"] == f"Bearer {CANARY_TOKEN}"
    with pytest.raises(AuthError):
        client.display_token("dsp_1")


def test_no_credentials_is_an_auth_error_at_call_time() -> None:
    client, rec, _ = make_client(lambda r: httpx.Response(200), api_token=None)
    with pytest.raises(AuthError):
        client.hello_world()
    assert rec.requests == []


# --------------------------------------------------------------------------- status codes


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequest),
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (422, BadRequest),
        (302, BadResponse),
    ],
)
def test_status_codes_are_translated(status: int, error: type[DensityError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"code": status, "message": "nope"})

    client, rec, _ = make_client(handler)
    with pytest.raises(error) as info:
        client.spaces()
    assert info.value.status == status
    assert "spaces" in str(info.value)
    assert len(rec.requests) == 1  # none of these is retried with a static token


def test_401_renews_a_cached_token_once_and_retries() -> None:
    dead = {"eyJorg0"}

    def data(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        if token in dead:
            return httpx.Response(401, json={"code": 401, "message": "token expired"})
        return httpx.Response(200, json=[{"id": "spc_1", "name": "Lobby"}])

    handler = oauth_handler(data)
    client, rec, _ = make_client(handler, api_token=None, client_id="c", client_secret="s3cr3t")
    assert [s.id for s in client.spaces()] == ["spc_1"]
    assert rec.paths() == ["/v3/oauth/token", "/v3/spaces", "/v3/oauth/token", "/v3/spaces"]
    assert client.stats["auth_refreshes"] == 1


def test_401_twice_gives_up_after_one_renewal() -> None:
    def data(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"code": 401, "message": "no"})

    handler = oauth_handler(data)
    client, rec, _ = make_client(handler, api_token=None, client_id="c", client_secret="s3cr3t")
    with pytest.raises(AuthError) as info:
        client.spaces()
    assert info.value.status == 401
    assert rec.paths().count("/v3/spaces") == 2
    assert rec.paths().count("/v3/oauth/token") == 2


def test_bad_client_credentials_are_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"code": 401, "message": "invalid credentials"})

    client, rec, _ = make_client(handler, api_token=None, client_id="c", client_secret="s3cr3t")
    with pytest.raises(AuthError):
        client.org_token()
    assert rec.paths() == ["/v3/oauth/token"]


# --------------------------------------------------------------------------- 429


def test_429_honours_retry_after_and_pauses_the_shared_limiter() -> None:
    answers = [429, 429, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0)
        if status == 429:
            return httpx.Response(429, headers={"Retry-After": "3"})
        return httpx.Response(200, json=[])

    client, rec, clock = make_client(handler)
    assert client.spaces() == []
    gaps = [b - a for a, b in zip(rec.times, rec.times[1:], strict=False)]
    assert len(gaps) == 2 and all(gap >= 3.0 for gap in gaps), gaps
    # Every other caller of the shared limiter is held too, not just the one that got the 429.
    assert client.limiter.pauses == 2
    assert client.stats["requests"]["spaces"] == {"200": 1, "429": 2}


def test_429_without_retry_after_waits_one_second() -> None:
    answers = [429, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), json=[])

    client, rec, _ = make_client(handler)
    client.spaces()
    assert rec.times[1] - rec.times[0] >= 1.0


def test_429_retry_after_as_http_date_is_understood() -> None:
    answers = [429, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        # A date in the past means "now": the fallback is at least not faster than 0 s.
        headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
        return httpx.Response(answers.pop(0), json=[], headers=headers)

    client, rec, _ = make_client(handler)
    client.spaces()
    assert len(rec.requests) == 2


def test_429_forever_raises_rate_limited_after_max_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "2"})

    client, rec, _ = make_client(handler, max_retries=3)
    with pytest.raises(RateLimited) as info:
        client.spaces()
    assert info.value.retry_after == 2.0
    assert len(rec.requests) == 4
    gaps = [b - a for a, b in zip(rec.times, rec.times[1:], strict=False)]
    assert all(gap >= 2.0 for gap in gaps), gaps


def test_a_pause_holds_other_callers_of_the_same_limiter() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=5, clock=clock, sleep=clock.sleep)
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "5"})
        return httpx.Response(200, text="ok")

    client_a, rec_a, _ = make_client(handler, clock=clock, limiter=limiter, max_retries=0)
    with pytest.raises(RateLimited):
        client_a.hello_world()
    t_429 = clock.now
    # A second client sharing the limiter (another feed) must wait out the same Retry-After.
    client_b, rec_b, _ = make_client(handler, clock=clock, limiter=limiter)
    assert client_b.hello_world() == "ok"
    assert rec_b.times[0] >= t_429 + 5.0


# --------------------------------------------------------------------------- 5xx, transport


def test_5xx_is_retried_with_capped_backoff_then_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"code": 503, "message": "down"})

    client, rec, clock = make_client(handler, max_retries=4, backoff_cap=3.0)
    with pytest.raises(Unavailable) as info:
        client.spaces()
    assert info.value.status == 503
    assert len(rec.requests) == 5
    backoff = Backoff(base=0.5, cap=3.0)
    assert len(clock.sleeps) == 4  # the limiter had slots to spare: every sleep is a backoff
    for attempt, slept in enumerate(clock.sleeps):
        assert 0 <= slept <= backoff.ceiling(attempt)
    assert client.stats["retries"] == 4


def test_5xx_then_success() -> None:
    answers = [500, 502, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), json=[{"id": "spc_1"}])

    client, rec, _ = make_client(handler)
    assert [s.id for s in client.spaces()] == ["spc_1"]
    assert len(rec.requests) == 3


def test_503_retry_after_is_respected() -> None:
    answers = [503, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), text="ok", headers={"Retry-After": "4"})

    client, rec, _ = make_client(handler)
    assert client.hello_world() == "ok"
    assert rec.times[1] - rec.times[0] >= 4.0


def test_a_503_asking_for_a_long_wait_fails_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="down", headers={"Retry-After": "7"})

    client, rec, clock = make_client(handler)
    with pytest.raises(Unavailable):
        client.hello_world()
    assert len(rec.requests) == 1 and clock.sleeps == []  # the caller was not held for 7 s


# --------------------------------------------------------------------------- the retry budget


def always(status: int, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"code": status, "message": "x"}, headers=headers)

    return handler


def test_a_logical_call_is_retried_at_most_twice_by_default() -> None:
    client, rec, clock = make_client(always(503))
    with pytest.raises(Unavailable):
        client.presence_health(["spc_1"])
    assert len(rec.requests) == 3
    assert len(clock.sleeps) == 2  # jittered backoff between the three
    backoff = Backoff(base=0.5, cap=30.0)
    assert all(0 <= slept <= backoff.ceiling(n) for n, slept in enumerate(clock.sleeps))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.hello_world(retries=0),
        lambda c: c.version(retries=0),
        lambda c: c.spaces(retries=0),
        lambda c: c.doorways(retries=0),
        lambda c: c.presence_health(["spc_1"], retries=0),
        lambda c: c.presence(["spc_1"], retries=0),
        lambda c: c.current_occupancy(["spc_1"], retries=0),
        lambda c: c.sensor_health(space_ids=["spc_1"], retries=0),
        lambda c: c.short_term(["spc_1"], retries=0),
        lambda c: c.presence_ws_url("spc_floor", retries=0),
        lambda c: c.occupancy_ws_url("spc_1", retries=0),
    ],
)
def test_retries_zero_sends_each_call_exactly_once(call: Callable[[DensityClient], object]) -> None:
    for handler in (always(503), always(429, **{"Retry-After": "1"})):
        client, rec, clock = make_client(handler)
        with pytest.raises((Unavailable, RateLimited)):
            call(client)
        assert len(rec.requests) == 1
        assert clock.sleeps == []


def test_a_ws_url_is_asked_for_once_unless_retries_are_asked_for() -> None:
    """The socket's reconnect loop is the retry: a ws_url call is not retried underneath it."""
    client, rec, _ = make_client(always(503))
    with pytest.raises(Unavailable):
        client.presence_ws_url("spc_floor")
    with pytest.raises(Unavailable):
        client.occupancy_ws_url("spc_1")
    assert len(rec.requests) == 2
    with pytest.raises(Unavailable):
        client.presence_ws_url("spc_floor", retries=2)
    assert len(rec.requests) == 2 + 3


def test_retries_one_allows_exactly_one_retry() -> None:
    client, rec, _ = make_client(always(502))
    with pytest.raises(Unavailable):
        client.spaces(retries=1)
    assert len(rec.requests) == 2


def test_the_token_fetch_draws_from_the_calls_budget() -> None:
    """A call whose token cannot be fetched costs 1 + retries requests, not (1 + retries)²."""
    client, rec, _ = make_client(
        always(503), api_token=None, client_id="cid", client_secret=CANARY_SECRET
    )
    with pytest.raises(Unavailable):
        client.presence_health(["spc_1"])
    assert rec.paths() == ["/v3/oauth/token"] * 3
    client2, rec2, _ = make_client(
        always(503), api_token=None, client_id="cid", client_secret=CANARY_SECRET
    )
    with pytest.raises(Unavailable):
        client2.presence_health(["spc_1"], display_id="dsp_1", retries=0)
    assert rec2.paths() == ["/v3/wayfinding/token"]


def test_a_token_retry_leaves_the_rest_of_the_budget_to_the_call() -> None:
    answers = [503, 200]  # the token endpoint fails once, then answers

    def data(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"code": 503, "message": "down"})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/oauth/token":
            if answers.pop(0) == 503:
                return httpx.Response(503)
            return token_json("eyJorg0")
        return data(request)

    client, rec, _ = make_client(handler, api_token=None, client_id="c", client_secret="s")
    with pytest.raises(Unavailable):
        client.spaces()
    # 2 retries in all: one spent on the token, one on the data call.
    assert rec.paths() == ["/v3/oauth/token", "/v3/oauth/token", "/v3/spaces", "/v3/spaces"]


def test_pages_of_spaces_share_one_budget() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if request.url.params.get("page") is None:
            return httpx.Response(
                200, json={"results": [{"id": "spc_1", "name": "A"}], "next": "/v3/spaces?page=2"}
            )
        return httpx.Response(503)

    client, rec, _ = make_client(handler)
    with pytest.raises(Unavailable):
        client.spaces()
    assert len(rec.requests) == 1 + 3


def test_the_budget_is_per_call_not_per_client() -> None:
    answers = [503, 503, 200, 503, 503, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0), text="ok")

    client, rec, _ = make_client(handler)
    assert client.hello_world() == "ok"
    assert client.hello_world() == "ok"  # the second call starts with a full budget
    assert len(rec.requests) == 6


def test_a_long_retry_after_is_handed_to_the_caller_not_sat_out() -> None:
    client, rec, clock = make_client(always(429, **{"Retry-After": "30"}))
    with pytest.raises(RateLimited) as info:
        client.presence_health(["spc_1"])
    assert info.value.retry_after == 30.0
    assert len(rec.requests) == 1 and clock.sleeps == []
    # Inside the pause, calls fail at once without a request: a loop waits it out itself.
    clock.now += 20
    with pytest.raises(RateLimited) as info:
        client.presence_health(["spc_1"])
    assert info.value.retry_after == pytest.approx(10.0)
    assert len(rec.requests) == 1 and clock.sleeps == []
    assert client.stats["held"] == 1
    # Once the pause is nearly over, a call waits the rest out and goes through.
    clock.now += 8
    with pytest.raises(RateLimited):
        client.presence_health(["spc_1"])
    assert len(rec.requests) == 2
    assert rec.times[1] >= 1030.0


def test_max_retry_wait_is_a_setting() -> None:
    client, rec, _ = make_client(always(429, **{"Retry-After": "30"}), max_retry_wait=60)
    with pytest.raises(RateLimited):
        client.hello_world()
    assert len(rec.requests) == 3  # 30 s is short enough now: both retries waited it out
    assert rec.times[2] - rec.times[0] >= 60.0


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.PoolTimeout("pool timed out"),
    ],
)
def test_transport_errors_are_retried_then_unavailable(exc: httpx.HTTPError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client, rec, _ = make_client(handler, max_retries=2)
    with pytest.raises(Unavailable) as info:
        client.spaces()
    assert info.value.__cause__ is exc
    assert len(rec.requests) == 3
    if isinstance(exc, httpx.TimeoutException):
        assert "timed out" in str(info.value)
        assert client.stats["requests"]["spaces"] == {"timeout": 3}


def test_transport_error_then_success() -> None:
    answers: list[object] = [httpx.ConnectError("refused"), httpx.Response(200, text="1.0.2")]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    client, _, _ = make_client(handler)
    assert client.version() == "1.0.2"


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe\x00garbage", b"", b"<html>502 Bad Gateway</html>"],
)
def test_malformed_json_is_bad_response(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    client, _, _ = make_client(handler)
    for call in (client.spaces, client.presence_health, client.current_occupancy):
        with pytest.raises(BadResponse):
            call()
    with pytest.raises(BadResponse):
        client.sensor_health()


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "eyJx", "expires_in": "soon"},
        {"access_token": "eyJx", "expires_in": 0},
        {"access_token": "eyJx", "expires_in": True},
        {"expires_in": 60},
        ["eyJx"],
    ],
)
def test_bad_token_bodies_are_bad_response(body: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    client, _, _ = make_client(handler, api_token=None, client_id="c", client_secret="s3cr3t")
    with pytest.raises(BadResponse):
        client.org_token()


@pytest.mark.parametrize("body", [{}, {"expires_in": None}, {"expires_in": " "}])
def test_a_token_without_expires_in_gets_a_short_default_lifetime(body: dict) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/oauth/token":
            return httpx.Response(200, json={"access_token": "eyJorg", **body})
        return httpx.Response(200, json=[])

    client, rec, clock = make_client(handler, api_token=None, client_id="c", client_secret="s")
    assert client.spaces() == []
    assert client.token_expiry("org") == pytest.approx(300)
    # It is renewed before those 300 s run out, as any token would be.
    clock.now += 290
    client.spaces()
    assert rec.paths().count("/v3/oauth/token") == 2


def test_audience_and_token_duration_are_sent_when_set() -> None:
    def data(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [] if request.url.path == "/v3/spaces" else {}})

    handler = oauth_handler(data)
    client, rec, _ = make_client(
        handler,
        api_token=None,
        client_id="cid",
        client_secret="s",
        audience="https://api.density.io",
        token_duration=900,
    )
    client.spaces()
    client.presence_health(["spc_1"], display_id="dsp_1")
    body = json.loads(rec.requests[0].content)
    assert body["audience"] == "https://api.density.io"
    assert body["token_duration"] == 900
    # The display-token form has neither field.
    form = parse_qs(rec.requests[2].content.decode())
    assert set(form) == {"grant_type", "client_id", "client_secret", "display_id"}
    # Unset, neither is sent: Density's own defaults apply.
    plain, rec2, _ = make_client(
        oauth_handler(data), api_token=None, client_id="c", client_secret="s"
    )
    plain.spaces()
    assert set(json.loads(rec2.requests[0].content)) == {
        "grant_type",
        "client_id",
        "client_secret",
    }


def test_a_short_token_duration_caps_the_assumed_lifetime() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/oauth/token":
            return httpx.Response(200, json={"access_token": "eyJorg"})
        return httpx.Response(200, json=[])

    client, _, _ = make_client(
        handler, api_token=None, client_id="c", client_secret="s", token_duration=120
    )
    client.spaces()
    assert client.token_expiry("org") == pytest.approx(120)


@pytest.mark.parametrize("duration", [-5, 1.5, True])
def test_a_bad_token_duration_is_refused(duration: object) -> None:
    with pytest.raises(ValueError):
        DensityClient(BASE, client_id="c", client_secret="s", token_duration=duration)  # type: ignore[arg-type]


def test_expires_in_accepts_numeric_strings_and_numbers() -> None:
    for value, expected in (("120", 120.0), (" 90 ", 90.0), (45, 45.0), (30.5, 30.5)):
        handler = oauth_handler(lambda r: httpx.Response(200), expires_in=value)
        client, _, _ = make_client(handler, api_token=None, client_id="c", client_secret="s")
        client.org_token()
        assert client.token_expiry("org") == pytest.approx(expected)


SPACE_FIXTURE = {
    "id": "spc_1",
    "name": "Boardroom",
    "space_type": "space",
    "parent_id": "spc_floor",
    "children_ids": [],
    "capacity": 12,
    "function": "meeting_room",
    "time_zone": "Europe/London",
    "counting_mode": "oa",
    "labels": [{"id": "lbl_1", "name": "video"}, "quiet"],
}


def test_spaces_bare_list() -> None:
    client, _, _ = make_client(lambda r: httpx.Response(200, json=[SPACE_FIXTURE, "junk", {}]))
    (space,) = client.spaces()
    assert space == Space(
        id="spc_1",
        name="Boardroom",
        space_type="space",
        parent_id="spc_floor",
        children_ids=(),
        capacity=12,
        function="meeting_room",
        time_zone="Europe/London",
        counting_mode="oa",
        labels=("video", "quiet"),
    )


def test_spaces_results_envelope_follows_next() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json={"results": [{"id": "spc_2"}], "next": None})
        if request.url.params.get("page") == "3":
            raise AssertionError("followed too far")
        return httpx.Response(
            200, json={"results": [{"id": "spc_1", "capacity": None}], "next": "/v3/spaces?page=2"}
        )

    client, rec, _ = make_client(handler)
    spaces = client.spaces()
    assert [s.id for s in spaces] == ["spc_1", "spc_2"]
    assert spaces[0].capacity is None and spaces[0].name == "spc_1"
    assert all(r.headers["Authorization"] == f"Bearer {CANARY_TOKEN}" for r in rec.requests)


def test_spaces_absolute_next_on_another_host_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [], "next": "https://evil.test/v3/spaces"})

    client, rec, _ = make_client(handler)
    with pytest.raises(BadResponse):
        client.spaces()
    assert {r.url.host for r in rec.requests} == {"density.test"}


def test_spaces_pagination_loop_is_detected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [], "next": f"{BASE}/v3/spaces?page=2"})

    client, rec, _ = make_client(handler)
    with pytest.raises(BadResponse):
        client.spaces()
    assert len(rec.requests) == 2  # page 2 asked for page 2 again


@pytest.mark.parametrize(
    "body",
    [
        {
            "spc_1": {
                "occupied": True,
                "space_health_status": "healthy",
                "timestamp": "2026-11-25T10:00:00Z",
            }
        },
        {
            "data": {
                "spc_1": {"presence": True, "health_status": "healthy", "timestamp": 1795600800}
            }
        },
        {
            "data": {
                "spc_1": {
                    "occupied": True,
                    "health": "HEALTHY",
                    "timestamp": "2026-11-25T10:00:00+00:00",
                }
            }
        },
    ],
)
def test_presence_health_variants(body: dict[str, object]) -> None:
    client, rec, _ = make_client(lambda r: httpx.Response(200, json=body))
    result = client.presence_health(["spc_1"])
    assert set(result) == {"spc_1"}
    ph = result["spc_1"]
    assert ph.occupied is True and ph.health == "healthy" and ph.timestamp is not None
    assert json.loads(rec.requests[0].content) == {"space_ids": ["spc_1"]}


def test_presence_health_odd_values_become_unknown() -> None:
    body = {
        "data": {
            "spc_1": {"occupied": "yes", "space_health_status": "on fire"},
            "spc_2": {"presence": False},
            "spc_3": "garbage",
        }
    }
    client, rec, _ = make_client(lambda r: httpx.Response(200, json=body))
    result = client.presence_health()
    assert result == {
        "spc_1": PresenceHealth("spc_1", None, "unknown", None),
        "spc_2": PresenceHealth("spc_2", False, "unknown", None),
    }
    assert json.loads(rec.requests[0].content) == {}


def test_presence_health_wrong_shape_is_bad_response() -> None:
    client, _, _ = make_client(lambda r: httpx.Response(200, json=[1, 2]))
    with pytest.raises(BadResponse):
        client.presence_health()


def test_deprecated_presence() -> None:
    body = {"spc_1": True, "spc_2": False, "spc_3": "maybe"}
    client, _, _ = make_client(lambda r: httpx.Response(200, json=body))
    assert client.presence("spc_1") == {"spc_1": True, "spc_2": False}


@pytest.mark.parametrize("wrap", [lambda x: x, lambda x: {"data": x}, lambda x: {"results": x}])
def test_sensor_health_envelopes(wrap: Callable[[object], object]) -> None:
    sensors = [
        {"serial_number": "A1", "health_status": "healthy", "space_id": "spc_1"},
        {"serial_number": "B2", "health_status": "weird"},
        {"health_status": "healthy"},
    ]
    client, rec, _ = make_client(lambda r: httpx.Response(200, json=wrap(sensors)))
    result = client.sensor_health(serial_numbers=["A1", "B2"])
    assert [(s.serial_number, s.health, s.space_id) for s in result] == [
        ("A1", "healthy", "spc_1"),
        ("B2", "unknown", None),
    ]
    assert json.loads(rec.requests[0].content) == {"serial_numbers": ["A1", "B2"]}


def test_sensor_health_rejects_both_filters_before_sending() -> None:
    client, rec, _ = make_client(lambda r: httpx.Response(200, json=[]))
    with pytest.raises(ValueError):
        client.sensor_health(space_ids=["spc_1"], serial_numbers=["A1"])
    assert rec.requests == []


def test_short_term_and_its_range() -> None:
    body = {
        "data": [{"space_id": "spc_1", "timestamp": "2026-11-25T10:00:00Z", "presence": True}, 3]
    }
    client, rec, _ = make_client(lambda r: httpx.Response(200, json=body))
    assert client.short_term(["spc_1"], 5) == [body["data"][0]]  # type: ignore[index]
    assert json.loads(rec.requests[0].content) == {"space_ids": ["spc_1"], "minutes_lookback": 5}
    with pytest.raises(ValueError):
        client.short_term(["spc_1"], 241)
    assert len(rec.requests) == 1


def test_current_occupancy() -> None:
    body = {
        "data": {
            "spc_1": {"count": 4, "timestamp": "2026-11-25T10:00:00Z"},
            "spc_2": {"count": "x"},
        }
    }
    client, _, _ = make_client(lambda r: httpx.Response(200, json=body))
    result = client.current_occupancy(["spc_1", "spc_2"])
    assert result["spc_1"].count == 4 and result["spc_2"].count is None


def test_ws_urls_use_the_path_table() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ws_url": f"wss://ws.density.test{request.url.path}?t=1"})

    client, rec, _ = make_client(handler)
    assert client.presence_ws_url("spc_f/1").startswith("wss://")
    assert client.occupancy_ws_url("spc_2").startswith("wss://")
    assert rec.requests[0].url.raw_path == b"/v3/analytics/ws/floor/spc_f%2F1/presence"
    assert rec.paths()[1] == "/v3/analytics/ws/space/spc_2/occupancy"
    assert all(r.method == "POST" for r in rec.requests)

    org, rec2, _ = make_client(
        handler, paths={"ws_floor_presence": "/v3/org_1/analytics/ws/floor/{floor_id}/presence"}
    )
    org.presence_ws_url("spc_f")
    assert rec2.paths() == ["/v3/org_1/analytics/ws/floor/spc_f/presence"]


@pytest.mark.parametrize("body", [{}, {"ws_url": 3}, {"ws_url": "http://x"}, []])
def test_bad_ws_url_is_bad_response(body: object) -> None:
    client, _, _ = make_client(lambda r: httpx.Response(200, json=body))
    with pytest.raises(BadResponse):
        client.presence_ws_url("spc_f")


# --------------------------------------------------------------------------- secrets


def test_no_secret_or_token_in_any_error_or_repr() -> None:
    """A canary secret, a static token and an OAuth token never surface in errors."""
    echo = f"bad client_secret {CANARY_SECRET} for token {CANARY_OAUTH} / {CANARY_TOKEN}"
    plan: list[object] = [
        httpx.Response(401, json={"code": 401, "message": echo}),
        httpx.Response(403, json={"code": 403, "message": echo}),
        httpx.Response(404, json={"code": 404, "message": echo}),
        httpx.Response(400, json={"code": 400, "message": echo}),
        httpx.Response(500, json={"code": 500, "message": echo}),
        httpx.Response(429, json={"code": 429, "message": echo}),
        httpx.Response(200, content=echo.encode()),
        httpx.ConnectError(echo),
        httpx.ReadTimeout(echo),
    ]
    texts: list[str] = []
    for answer in plan:

        def data(request: httpx.Request, answer: object = answer) -> httpx.Response:
            if request.url.path == "/v3/oauth/token":
                return token_json(CANARY_OAUTH)
            if isinstance(answer, Exception):
                raise answer
            return answer  # type: ignore[return-value]

        for kwargs in (
            {"api_token": CANARY_TOKEN, "client_id": "cid", "client_secret": CANARY_SECRET},
            {"api_token": None, "client_id": "cid", "client_secret": CANARY_SECRET},
        ):
            client, _, _ = make_client(data, max_retries=0, **kwargs)
            with pytest.raises(DensityError) as info:
                client.spaces()
            # The chain's own messages (httpx's) are what a handler chose; ours must be clean.
            texts += [str(info.value), repr(info.value), repr(client), repr(client.stats)]
            texts += [repr(client.tokens.peek("org")), str(client.tokens.peek("org"))]
    blob = "\n".join(texts)
    for secret in (CANARY_SECRET, CANARY_OAUTH, CANARY_TOKEN):
        assert secret not in blob, blob


def test_realistic_failures_keep_secrets_out_of_the_whole_traceback() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3/oauth/token":
            return token_json(CANARY_OAUTH)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    client, _, _ = make_client(handler, api_token=None, client_id="c", client_secret=CANARY_SECRET)
    with pytest.raises(Unavailable) as info:
        client.spaces()
    blob = every_text(info.value)
    assert CANARY_SECRET not in blob and CANARY_OAUTH not in blob


# --------------------------------------------------------------------------- life cycle


def test_close_closes_only_what_the_client_created() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with DensityClient(BASE, api_token="tok_x", http=http):
        pass
    assert not http.is_closed
    own = DensityClient(BASE, api_token="tok_x")
    own.close()
    assert own._http.is_closed  # noqa: SLF001 - the point of the test
    with pytest.raises(DensityError):
        own.version()


# --------------------------------------------------------------------------- limiter, backoff


def test_limiter_allows_a_burst_then_paces() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=5, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(15):
        limiter.acquire()
        times.append(clock.now - 1000.0)
    assert times[:5] == [0.0] * 5
    assert times[-1] == pytest.approx(1.0, abs=1e-6)  # 10 more at 10/s
    for a, b in zip(times[5:], times[6:], strict=False):
        assert b - a == pytest.approx(0.1, abs=1e-6)


def test_limiter_pause_until_and_timeout() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10, burst=5, clock=clock, sleep=clock.sleep)
    limiter.pause_for(4.0)
    assert not limiter.try_acquire()
    with pytest.raises(RateLimited):
        limiter.acquire(timeout=1.0)
    assert clock.now == 1000.0  # gave up without sleeping: the pause is longer than the timeout
    limiter.acquire()
    assert clock.now >= 1004.0
    # A shorter pause never shortens a longer one.
    limiter.pause_until(clock.now + 10)
    limiter.pause_until(clock.now + 1)
    assert limiter.paused_until == pytest.approx(clock.now + 10)


def test_limiter_holds_across_threads_with_a_real_clock() -> None:
    import time

    limiter = RateLimiter(rate=100, burst=5)
    start = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [limiter.acquire() for _ in range(5)]) for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - start
    assert limiter.acquired == 25
    assert elapsed >= (25 - 5) / 100 * 0.9


def test_backoff_is_capped_full_jitter() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    assert [backoff.ceiling(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.ceiling(10_000) == 8.0
    delays = [backoff.next() for _ in range(50)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 40  # jittered
    assert backoff.attempt == 50
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next() <= 1.0
    fixed = Backoff(base=0.5, cap=2.0, jitter=False)
    assert [fixed.next() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
