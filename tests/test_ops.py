"""Operations: health and readiness, metrics, security headers, log redaction, canary scan."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from websockets.sync.client import connect

from signage import logs
from signage.sim import SimServer, SimSettings
from tests.helpers import wait_until


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
    assert 'signage_feeds{mode="live"} 1.0' in text
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


def test_canary_secret_and_density_tokens_never_leave_the_server(tmp_path, monkeypatch):
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
    with SimServer(SimSettings(client_secret=CANARY), seed=3) as sim:
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
