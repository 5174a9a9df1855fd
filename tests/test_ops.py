"""Operations: health and readiness, metrics, security headers, log redaction, canary scan."""

from __future__ import annotations

import gc
import io
import json
import logging
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signage import logs
from signage.core.protocol import CLOSE_RESTART
from signage.sim import SimServer, SimSettings
from tests.helpers import wait_until
from tests.kiosks import stalled_kiosk
from tests.test_api import make_token


def first_floor(server) -> str:
    return server.svc.directory.floors()[0].id


def test_healthz_and_readyz(server):
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    server.svc.shutting_down = True
    answer = httpx.get(f"{server.url}/readyz")
    assert answer.status_code == 503 and answer.json()["status"] == "shutting down"
    assert httpx.get(f"{server.url}/healthz").status_code == 200  # the process still answers


def test_readyz_stays_ready_while_density_is_unreachable(sim, server):
    floor = first_floor(server)
    _, cred = server.add_display(floor)
    sim.world.set_socket_mode("refuse")
    sim.world.force_429(60, retry_after=1)
    httpx.get(f"{server.url}/api/kiosk/{cred}/state")
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_metrics_report_kiosks_feeds_upstream_and_tokens(sim, server):
    floor = first_floor(server)
    _, cred = server.add_display(floor)
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        ws.recv(timeout=5)
        wait_until(lambda: server.svc.feeds.get(floor).mode == "live", timeout=10)
        room = server.svc.directory.rooms_of(floor)[0].id
        sim.world.set_space(room, presence=not sim.world.space_state(room).presence)
        ws.recv(timeout=5)
        text = httpx.get(f"{server.url}/metrics").text
    assert f'signage_kiosks_connected{{floor="{floor}"}} 1.0' in text
    # Every feed running is live (a kiosk's floor may start its sibling floors' feeds too).
    live = len(server.svc.feeds.feeds())
    assert live >= 1 and f'signage_feeds{{mode="live"}} {live:.1f}' in text
    assert re.search(
        r'signage_upstream_requests_total\{endpoint="[^"]*spaces[^"]*",status="200"\}', text
    )
    assert 'signage_token_requests_total{kind="org"} 1.0' in text
    assert "signage_fanout_seconds_count" in text
    assert re.search(r"signage_fanout_seconds_count (\d+)", text).group(1) != "0"
    assert "signage_kiosk_evictions_total" in text
    assert "signage_upstream_malformed_frames_total" in text


def test_metrics_token(make_server):
    server = make_server(SIGNAGE_METRICS_TOKEN="scrape-me")
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    ok = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert ok.status_code == 200


def test_security_headers(sim, server):
    _, cred = server.add_display(first_floor(server))
    page = httpx.get(f"{server.url}/kiosk/{cred}")
    csp = page.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert f"ws://127.0.0.1:{server.port}" in directives["connect-src"]
    assert page.headers["Referrer-Policy"] == "no-referrer"  # kiosk URLs carry credentials
    for url in (f"{server.url}/api/kiosk/{cred}/state", f"{server.url}/healthz"):
        assert httpx.get(url).headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "text,hidden",
    [
        ('"GET /ws/kiosk/12.0123456789abcdef0123456789abcdef HTTP/1.1" 101', "0123456789abcdef"),
        ("GET /api/kiosk/3.deadbeefdeadbeef/state", "deadbeefdeadbeef"),
        # A console preview's credential (actions/preview.py): p<id>.<expiry>.<32 hex of MAC>.
        ("GET /kiosk/p7.1765000000." + "c0ffee" * 5 + "00 HTTP/1.1", "c0ffee"),
        ("GET /ws/kiosk/p7.1765000000." + "c0ffee" * 5 + "00 HTTP/1.1", "c0ffee"),
        ("GET /api/kiosk/p7.1765000000." + "c0ffee" * 5 + "00/state", "c0ffee"),
        ("Set-Cookie: signage_display=4." + "ab12" * 8 + "; HttpOnly", "ab12ab12"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("token tok_live_123456 refused", "tok_live_123456"),
        ("jwt eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl expired", "eyJhbGciOi"),
        ("grant_type=client_credentials&client_secret=hunter22&x=1", "hunter22"),
    ],
)
def test_redact(text, hidden):
    assert hidden not in logs.redact(text)


def test_redacting_handler_masks_configured_secrets_and_exceptions():
    stream = io.StringIO()
    handler = logs.configure("DEBUG", "json", secrets=["s3cret-value"], stream=stream)
    try:
        log = logging.getLogger("signage.test")
        log.info("connecting with %s", "s3cret-value", extra={"floor": "spc_1"})
        try:
            raise RuntimeError("failed for Bearer abcdefgh")
        except RuntimeError:
            log.exception("upstream failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "connecting with ***" and lines[0]["floor"] == "spc_1"
    assert "abcdefgh" not in stream.getvalue()


# -- canary scan ---------------------------------------------------------------------------------
CANARY = "canary-7d1e4f0a9b2c-client-secret"


def test_canary_secret_and_density_tokens_never_leave_the_server(tmp_path, monkeypatch, sim_shape):
    """Every route, error, static file, kiosk frame and log line: no secret, no Density token."""
    from signage import create_app
    from tests.conftest import server_config
    from tests.helpers import ServerThread

    stream = io.StringIO()
    handler = logs.configure("DEBUG", "text", secrets=[CANARY], stream=stream)
    # A handler ahead of ours sees records before the filter masks them: our code must not log
    # the canary or a token at all (request paths with credentials are masked by the filter).
    raw_logs = io.StringIO()
    raw = logging.StreamHandler(raw_logs)
    raw.setLevel(logging.DEBUG)
    logging.getLogger().handlers.insert(0, raw)
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    captured: list[str] = []
    with SimServer(SimSettings(client_secret=CANARY, shape=sim_shape), seed=3) as sim:
        config = server_config(sim, tmp_path, DENSITY_CLIENT_SECRET=CANARY)
        server = ServerThread(create_app(config)).start()
        try:
            floors = server.svc.directory.floors()
            displays = {}
            for display_id, floor_id in sorted(sim.world.displays.items()):
                displays.setdefault(floor_id, display_id)
            creds = [
                server.add_display(f.id, displays.get(f.id), name=f"Lobby {i}")[1]
                for i, f in enumerate(floors)
            ]
            # Every kiosk socket frame, through a fault and a recovery.
            with connect(server.socket_url(creds[0]), open_timeout=5) as ws:
                captured.append(ws.recv(timeout=5))
                sim.world.drop_sockets()
                room = server.svc.directory.rooms_of(floors[0].id)[0].id
                sim.world.set_space(room, presence=True, health="offline")
                deadline_frames = 0
                while deadline_frames < 5:
                    try:
                        captured.append(ws.recv(timeout=3))
                    except TimeoutError:
                        break
                    deadline_frames += 1
            # Every route of the app, with a real credential where it takes one.
            urls = set()
            for rule in server.app.url_map.iter_rules():
                if "GET" not in rule.methods:
                    continue
                path = rule.rule
                for name in rule.arguments:
                    value = creds[0] if "cred" in name else "nonexistent"
                    path = path.replace(f"<{name}>", value).replace(f"<path:{name}>", value)
                    path = re.sub(r"<[^>]*:" + name + ">", value, path)
                urls.add(path)
            urls |= {"/does-not-exist", "/kiosk/1.0000", "/api/kiosk/999.abc/state", "/static/x"}
            with httpx.Client(base_url=server.url, timeout=10) as http:
                for path in sorted(urls):
                    if path.startswith("/ws/"):
                        continue
                    answer = http.get(path)
                    captured.append(f"{path} {answer.status_code} {answer.headers} {answer.text}")
                answer = http.post("/healthz")  # 405
                captured.append(answer.text)
            issued = list(sim.world._tokens)
        finally:
            server.stop()
            logging.getLogger().removeHandler(handler)
            logging.getLogger().removeHandler(raw)
    assert len(captured) > 10
    assert issued, "the simulator issued no token: the scan would prove nothing"
    everything = "\n".join(captured) + stream.getvalue() + raw_logs.getvalue()
    assert CANARY not in everything
    for token in issued:
        assert token not in everything
    # werkzeug's request lines name credential paths: the unfiltered handler saw them...
    assert any(cred in raw_logs.getvalue() for cred in creds)
    for cred in creds:  # ...and the filter masked every one on the way out
        assert cred not in stream.getvalue()
    frames = sum(1 for c in captured if c.startswith("{"))
    print(
        f"canary scan: {len(urls)} GET routes, {frames} kiosk frames, "
        f"{len(stream.getvalue().splitlines())} log lines, {len(issued)} Density tokens"
    )


def test_healthz_is_readable_cross_origin_and_never_cached(server):
    answer = httpx.get(f"{server.url}/healthz")
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Cache-Control"] == "no-store"


def test_behind_a_proxy_the_forwarded_host_is_our_own_origin(sim, make_server):
    server = make_server(SIGNAGE_PROXY_COUNT=1)
    _, cred = server.add_display(first_floor(server))
    headers = {"X-Forwarded-Host": "signs.example.com", "X-Forwarded-Proto": "https"}
    with connect(
        server.socket_url(cred),
        open_timeout=5,
        origin="https://signs.example.com",
        additional_headers=headers,
    ) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"


# -- every metric moves ---------------------------------------------------------------------------
def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed (name, sorted labels)."""
    text = httpx.get(f"{server.url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(server, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series is absent."""
    return scrape(server).get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_feed_modes_429s_renewals_and_malformed_frames(sim, make_server):
    sim.world.update_settings(token_lifetime=3)  # renewed while the test runs
    server = make_server()
    floor = first_floor(server)
    _, cred = server.add_display(floor)
    assert sample(server, "signage_kiosks_connected", floor=floor) == 0
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        ws.recv(timeout=5)
        wait_until(lambda: sample(server, "signage_kiosks_connected", floor=floor) == 1)
        # Count the feeds running (a kiosk's floor may start its sibling floors' feeds too).
        feeds = lambda: len(server.svc.feeds.feeds())  # noqa: E731
        wait_until(lambda: sample(server, "signage_feeds", mode="live") == feeds(), timeout=10)
        live = sample(server, "signage_feeds", mode="live")
        assert sample(server, "signage_upstream_malformed_frames_total") == 0
        # One frame per socket of the floor: two when it has entry rooms (their counts socket).
        sent = sim.world.send_raw("not json", floor)
        assert sent >= 1
        wait_until(lambda: sample(server, "signage_upstream_malformed_frames_total") == sent)

        sim.world.set_socket_mode("refuse")
        sim.world.drop_sockets(floor)
        wait_until(lambda: sample(server, "signage_feeds", mode="polling") >= 1, timeout=10)
        assert sample(server, "signage_feeds", mode="live") < live
        # Polling every 0.5 s on 3 s tokens: renewed, and the renewals counted.
        wait_until(lambda: sample(server, "signage_token_renewals_total") >= 1, timeout=10)
        assert sample(server, "signage_upstream_429_total") == 0
        sim.world.force_429(6, retry_after=1)  # longer than the stale limit (4 s here)
        wait_until(lambda: sample(server, "signage_upstream_429_total") >= 1, timeout=5)
        wait_until(lambda: sample(server, "signage_feeds", mode="stale") >= 1, timeout=10)
        samples = scrape(server)
        by_status = {
            dict(labels)["status"]
            for (name, labels), value in samples.items()
            if name == "signage_upstream_requests_total" and value
        }
        assert {"200", "429"} <= by_status
        sim.world.set_socket_mode("normal")
        wait_until(lambda: sample(server, "signage_feeds", mode="live") == feeds(), timeout=15)
    wait_until(lambda: sample(server, "signage_kiosks_connected", floor=floor) == 0, timeout=5)
    # The feed ends a while after its last kiosk; the frames it skipped stay counted.
    wait_until(lambda: server.svc.feeds.get(floor) is None, timeout=10, message="feed stopped")
    assert sample(server, "signage_upstream_malformed_frames_total") == sent
    gc.collect()  # a stopped feed's count moves into the total when the feed is collected
    assert sample(server, "signage_upstream_malformed_frames_total") == sent


def test_eviction_metric_moves_when_a_kiosk_stops_reading(sim, make_server):
    server = make_server(SIGNAGE_KIOSK_QUEUE=4, SIGNAGE_KIOSK_SEND_TIMEOUT=1.0)
    floor = first_floor(server)
    display, cred = server.add_display(floor)
    stalled = stalled_kiosk(server.port, f"/ws/kiosk/{cred}")
    try:
        wait_until(lambda: server.svc.hub.count(floor) == 1, timeout=5)
        before = sample(server, "signage_kiosk_evictions_total", reason="outbox_full") + sample(
            server, "signage_kiosk_evictions_total", reason="send_stuck"
        )
        assert before == 0
        # Half a megabyte a message: the socket's buffers fill after a few, then the outbox.
        big = json.dumps({"type": "command", "command": "identify", "pad": "x" * 500_000})
        for _ in range(40):
            if server.svc.hub.count(floor) == 0:
                break
            server.svc.hub.command(display.id, big)
        wait_until(lambda: server.svc.hub.count(floor) == 0, timeout=10, message="cut")
    finally:
        stalled.close()
    after = {
        reason: sample(server, "signage_kiosk_evictions_total", reason=reason)
        for reason in ("outbox_full", "send_stuck")
    }
    assert sum(after.values()) == 1, after


@pytest.mark.slow
def test_readyz_stays_ready_while_the_database_is_unreachable(sim, make_server):
    """A database outage is shown in logs and fleet health; the server stays ready for kiosks."""
    from tests.pg_server import PgServer

    pg = PgServer().start()
    try:
        server = make_server(SIGNAGE_DATABASE=pg.create_database())
        _, cred = server.add_display(first_floor(server))
        assert httpx.get(f"{server.url}/readyz").status_code == 200
        pg.stop()
        # A request that reads the store: the first to find the database gone waits for a
        # connection for up to 5 s (signage/store/db.py WAIT), as long as httpx's default timeout.
        first = httpx.get(f"{server.url}/api/kiosk/{cred}/state", timeout=30)
        assert first.status_code == 503, first.text
        wait_until(
            lambda: server.svc.store._db._down_since is not None,
            timeout=20,
            message="the store noticed the outage",
        )
        answer = httpx.get(f"{server.url}/readyz")
        assert answer.status_code == 200 and answer.json()["status"] == "ready"
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        pg.start()
        wait_until(
            lambda: httpx.get(f"{server.url}/api/kiosk/{cred}/state").status_code == 200,
            timeout=40,
            interval=0.25,
            message="the store is back",
        )
        assert httpx.get(f"{server.url}/readyz").status_code == 200
    finally:
        pg.remove()


# -- one structured log line per state change --------------------------------------------------
@pytest.fixture
def json_log():
    """Every log record from here on, as the JSON lines SIGNAGE_LOG_FORMAT=json writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RedactingFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def test_one_structured_line_per_feed_and_display_state_change(sim, server, json_log):
    floor = first_floor(server)
    display, cred = server.add_display(floor)
    client = server.app.test_client()
    headers = make_token(server.svc)

    def events(kind: str, **match) -> list[dict]:
        return [
            e
            for e in json_log()
            if e.get("event") == kind and all(e.get(k) == v for k, v in match.items())
        ]

    def feed_modes() -> list[str]:
        return [e["mode"] for e in events("feed", floor_id=floor)]

    with connect(server.socket_url(cred), open_timeout=5) as ws:
        ws.recv(timeout=5)
        wait_until(lambda: server.svc.feeds.get(floor).mode == "live", timeout=10)
        assert len(events("display", display_id=display.id, state="connected")) == 1
        start = len(feed_modes())
        assert feed_modes()[-1] == "live"
        sim.world.set_socket_mode("refuse")
        sim.world.drop_sockets(floor)
        wait_until(lambda: feed_modes()[start:] == ["polling"], timeout=10)
        sim.world.force_429(6, retry_after=1)  # past the stale limit (4 s here)
        wait_until(lambda: feed_modes()[start:] == ["polling", "stale"], timeout=10)
        sim.world.set_socket_mode("normal")
        wait_until(lambda: feed_modes()[start:][-1:] == ["live"], timeout=20)
        # Each change once: no line repeated while a mode holds, however often it is polled.
        changes = feed_modes()[start:]
        assert changes == ["polling", "stale", "polling", "live"], changes
        last = [e for e in events("feed", floor_id=floor)][-1]
        assert last["previous"] == "polling" and last["level"] == "info"

        patched = client.patch(
            f"/api/admin/displays/{display.id}", json={"theme": "dark"}, headers=headers
        )
        assert patched.status_code == 200
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
    wait_until(lambda: events("display", display_id=display.id, state="disconnected"), timeout=5)
    assert len(events("display", display_id=display.id, state="reconfigured")) == 1
    (gone,) = events("display", display_id=display.id, state="disconnected")
    assert gone["close_code"] == 4003 and gone["floor_id"] == floor

    with connect(server.socket_url(cred), open_timeout=5) as ws:
        ws.recv(timeout=5)
        revoked = client.post(f"/api/admin/displays/{display.id}/revoke", headers=headers)
        assert revoked.status_code == 200
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
    wait_until(
        lambda: len(events("display", display_id=display.id, state="disconnected")) == 2,
        timeout=5,
    )
    assert len(events("display", display_id=display.id, state="revoked")) == 1
    assert events("display", display_id=display.id, state="disconnected")[-1]["close_code"] == 4401
    assert len(events("display", display_id=display.id, state="connected")) == 2
    assert cred not in json.dumps(json_log())  # the credential is in no line


@pytest.mark.slow
def test_the_production_stack_logs_no_credential_or_secret(sim, tmp_path):
    """`signage serve` (gunicorn) at DEBUG: every line it writes, across kiosk traffic."""
    from tests.helpers import ServeProcess, serve_env

    settings = SimSettings()
    env = serve_env(
        sim,
        tmp_path,
        SIGNAGE_SECRET_KEY="serve-log-secret-key",
        SIGNAGE_LOG_LEVEL="DEBUG",
        SIGNAGE_LOG_FORMAT="json",
    )
    log_path = tmp_path / "serve.log"
    proc = ServeProcess(env)
    floor = next(iter(sim.world.state()["floors"]))
    added = json.loads(proc.cli("displays", "add", "--name", "Lobby", "--floor", floor, "--json"))
    cred = added["kiosk_url"].rsplit("/", 1)[1]
    proc.start(log_path)
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as http:
            assert http.get(f"/kiosk/{cred}").status_code == 200
            assert http.get(f"/api/kiosk/{cred}/state").status_code in (200, 503)
            assert http.get(f"/kiosk/{cred[:-4]}beef").status_code == 404
        with connect(f"ws://127.0.0.1:{proc.port}/ws/kiosk/{cred}", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    finally:
        proc.stop()
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line.get("state") == "connected" for line in lines)  # the log was written
    secret = cred.split(".", 1)[1]
    for hidden in (secret, settings.client_secret, "serve-log-secret-key"):
        assert hidden not in text
    assert not any(token in text for token in sim.world._tokens)  # Density's tokens neither


def test_every_route_serving_an_uploaded_plan_sends_its_strict_policy(sim, server):
    """Found from the URL map, so a plan route added later is checked too."""
    from signage.store import plans
    from tests.admin_helpers import Console, make_admin

    floor = first_floor(server)
    display, cred = server.add_display(floor)
    headers = make_token(server.svc)
    client = server.app.test_client()
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="5"/></svg>'
    stored = client.put(
        f"/api/admin/floors/{floor}/plan",
        data=svg,
        headers={**headers, "Content-Type": "image/svg+xml"},
    )
    assert stored.status_code == 200, stored.json
    make_admin(server.svc)
    console = Console(server.app)
    console.login()
    values = {"floor_id": floor}
    phone = server.svc.store.phone_credential(display)
    urls = []
    for rule in server.app.url_map.iter_rules():
        if "GET" not in rule.methods or not re.search(r"/plan(s/<[^>]+>/file)?$", rule.rule):
            continue
        path = rule.rule
        for name in rule.arguments:
            value = values.get(name) or (phone if path.startswith("/phone") else cred)
            path = re.sub(r"<(?:[^>:]+:)?" + name + ">", value, path)
        urls.append(path)
    assert len(urls) >= 4, urls  # kiosk, phone, console and API at least
    for url in urls:
        answer = console.get(url, headers=headers if url.startswith("/api/") else {})
        assert answer.status_code == 200, url
        assert answer.headers["Content-Security-Policy"] == plans.PLAN_CSP, url
        assert answer.headers["X-Content-Type-Options"] == "nosniff", url


# -- a restart is not a thundering herd --------------------------------------------------------
# Records each delay the page gives setTimeout for its socket's `connect` (kiosk.js).
RECORD_RECONNECTS = """
window.__reconnects = [];
const schedule = window.setTimeout;
window.setTimeout = function (fn, delay, ...rest) {
  if (typeof fn === "function" && fn.name === "connect") window.__reconnects.push(delay);
  return schedule.call(this, fn, delay, ...rest);
};
"""


@pytest.mark.browser
def test_kiosk_pages_come_back_after_a_restart_at_spread_out_times(sim, server, browser):
    """On SIGTERM the server closes every kiosk with 1012; pages must not return in lock step."""
    floor = first_floor(server)
    _, cred = server.add_display(floor)
    context = browser.new_context()
    context.add_init_script(RECORD_RECONNECTS)
    try:
        pages = [context.new_page() for _ in range(10)]
        for page in pages:
            page.goto(f"{server.url}/kiosk/{cred}")
        wait_until(lambda: server.svc.hub.count(floor) == 10, timeout=30, message="10 kiosks")
        assert all(page.evaluate("() => window.__reconnects.length") == 0 for page in pages)
        server.svc.hub.close_all(CLOSE_RESTART, "server restarting")  # as on SIGTERM
        for page in pages:
            page.wait_for_function("() => window.__reconnects.length > 0", timeout=10_000)
        delays = [page.evaluate("() => window.__reconnects[0]") for page in pages]
        assert all(300 <= d <= 3000 for d in delays), delays  # 0.3-3 s, as kiosk.js says
        # Ten independent draws from 2.7 s: a range under 0.6 s has odds of about 1 in 100,000.
        assert max(delays) - min(delays) >= 600, delays
        # No two pages drew the same delay (rounded to whole ms, 10 draws collide 1 run in 60).
        assert len(set(delays)) == len(delays), delays
        wait_until(lambda: server.svc.hub.count(floor) == 10, timeout=15, message="all back")
    finally:
        context.close()


def test_only_a_plain_origin_of_a_logo_enters_a_page_policy():
    from signage.web.security import image_origin

    assert image_origin("https://cdn.example.com/a.png") == "https://cdn.example.com"
    assert image_origin("http://127.0.0.1:8080/x.svg?v=2") == "http://127.0.0.1:8080"
    for bad in (
        "/static/logo.svg",
        "data:image/png;base64,AAAA",
        "javascript:alert(1)",
        "https://user:pass@host.example/x.png",
        "https://host.example;script-src */x",
        "https:///nohost",
    ):
        assert image_origin(bad) is None, bad
