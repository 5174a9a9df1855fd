"""Behind a proxy or not: the settings that say so, and the warnings when they look wrong."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import free_port, serve_env

REPO = Path(__file__).resolve().parent.parent
WARNING = "X-Forwarded-For"


def _env_file(name: str) -> dict[str, str]:
    values = {}
    for line in (REPO / "deploy" / name).read_text().splitlines():
        if re.match(r"^[A-Z_]+=", line):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_the_nginx_environment_example_trusts_one_proxy():
    # Without it every client is 127.0.0.1: 20 bad sign-ins lock every admin out, and 20
    # /pair requests block pairing for the whole building.
    assert _env_file("signage.env.example")["SIGNAGE_PROXY_COUNT"] == "1"
    assert _env_file("signage-fleet.env.example")["SIGNAGE_PROXY_COUNT"] == "1"


def test_forwarded_requests_from_loopback_without_a_proxy_count_are_warned_about_once(
    make_server, caplog
):
    server = make_server(SIGNAGE_PROXY_COUNT=0)
    with caplog.at_level(logging.WARNING, logger="signage"):
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert not [r for r in caplog.records if WARNING in r.getMessage()]
        for _ in range(3):
            response = httpx.get(f"{server.url}/healthz", headers={"X-Forwarded-For": "10.1.2.3"})
            assert response.status_code == 200
    warned = [r for r in caplog.records if WARNING in r.getMessage()]
    assert len(warned) == 1
    assert "SIGNAGE_PROXY_COUNT" in warned[0].getMessage()


def test_forwarded_requests_with_a_proxy_count_are_not_warned_about(make_server, caplog):
    server = make_server(SIGNAGE_PROXY_COUNT=1)
    with caplog.at_level(logging.WARNING, logger="signage"):
        response = httpx.get(f"{server.url}/healthz", headers={"X-Forwarded-For": "10.1.2.3"})
        assert response.status_code == 200
    assert not [r for r in caplog.records if WARNING in r.getMessage()]


def _serve_stderr(sim, tmp_path, host: str, **extra) -> str:
    """`signage serve` on `host`; 192.0.2.1 (TEST-NET-1) is no address of this machine, so the
    server stops at its bind: nothing is exposed, and the start-up warning has been written."""
    env = {**os.environ, **serve_env(sim, tmp_path, **extra)}
    done = subprocess.run(
        [sys.executable, "-m", "signage", "serve", "--server", "waitress", "--host", host]
        + ["--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0  # the bind failed, as intended
    return done.stderr


def test_serve_on_a_public_address_without_a_proxy_count_warns_at_start_up(sim, tmp_path):
    stderr = _serve_stderr(sim, tmp_path, "192.0.2.1")
    assert "SIGNAGE_PROXY_COUNT" in stderr and "nginx" in stderr, stderr[-2000:]
    behind_nginx = _serve_stderr(sim, tmp_path, "192.0.2.1", SIGNAGE_PROXY_COUNT=1)
    assert "without a reverse proxy" not in behind_nginx, behind_nginx[-2000:]


def test_serve_on_a_public_address_with_a_proxy_count_warns_that_only_the_proxy_may_reach_it(
    sim, tmp_path
):
    """Issue 15 review: the fleet serves on a public address behind haproxy with
    SIGNAGE_PROXY_COUNT=1; a client that reaches a backend directly writes its own
    X-Forwarded-For and dodges every per-address limit. Nothing said so."""
    stderr = _serve_stderr(sim, tmp_path, "192.0.2.1", SIGNAGE_PROXY_COUNT=1)
    assert "make sure only your proxy can reach this port" in stderr, stderr[-2000:]
    assert "X-Forwarded-For" in stderr
    no_proxy = _serve_stderr(sim, tmp_path, "192.0.2.1", SIGNAGE_PROXY_COUNT=0)
    assert "make sure only your proxy" not in no_proxy  # that case has its own warning
    from signage.cli.serve import _proxy_exposure_warning

    assert _proxy_exposure_warning("127.0.0.1", 1) is None  # only the local proxy reaches it
    assert _proxy_exposure_warning("::1", 2) is None
    assert _proxy_exposure_warning("0.0.0.0", 0) is None
    assert "make sure only your proxy" in (_proxy_exposure_warning("0.0.0.0", 1) or "")
