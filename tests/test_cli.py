"""The `signage` command line: check, init-db, displays, sim (each in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from signage.sim import SimSettings
from tests.helpers import free_port, wait_until


def run(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signage", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def base_env(tmp_path, sim=None) -> dict:
    env = {
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3"),
        "SIGNAGE_SECRET_KEY": "cli-test",
        "DENSITY_API_TOKEN": "",
        "DENSITY_CLIENT_ID": "",
        "DENSITY_CLIENT_SECRET": "",
    }
    if sim is not None:
        env["DENSITY_API_URL"] = sim.url
    return env


def test_check_with_good_credentials_lists_floors(sim, tmp_path):
    settings = SimSettings()
    display_id = sorted(sim.world.displays)[0]
    env = base_env(tmp_path, sim) | {
        "DENSITY_CLIENT_ID": settings.client_id,
        "DENSITY_CLIENT_SECRET": settings.client_secret,
    }
    done = run(env, "check", "--display-id", display_id)
    assert done.returncode == 0, done.stderr
    assert f"ok  display token for {display_id}" in done.stdout
    assert "3 floor(s)" in done.stdout
    assert settings.client_secret not in done.stdout + done.stderr


def test_check_explains_each_failure_without_the_secret(sim, tmp_path):
    canary = "canary-secret-5f3a9c"
    env = base_env(tmp_path, sim) | {
        "DENSITY_CLIENT_ID": SimSettings().client_id,
        "DENSITY_CLIENT_SECRET": canary,
    }
    refused = run(env, "check")
    assert refused.returncode != 0
    assert "refused by Density" in refused.stderr and "Check the credentials" in refused.stderr
    assert canary not in refused.stdout + refused.stderr

    nothing = run(base_env(tmp_path, sim), "check")
    assert nothing.returncode != 0 and "no credentials" in nothing.stderr

    unreachable = run(
        base_env(tmp_path)
        | {"DENSITY_API_URL": f"http://127.0.0.1:{free_port()}", "DENSITY_API_TOKEN": "tok_x"},
        "check",
    )
    assert unreachable.returncode != 0 and "unreachable" in unreachable.stderr


def test_init_db_and_displays(tmp_path):
    env = base_env(tmp_path) | {"SIGNAGE_PUBLIC_URL": "https://signs.example.com"}
    done = run(env, "init-db")
    assert done.returncode == 0 and "schema version" in done.stdout
    added = run(env, "displays", "add", "--name", "Lobby", "--floor", "spc_1", "--json")
    display = json.loads(added.stdout)
    assert display["kiosk_url"].startswith("https://signs.example.com/kiosk/")
    assert display["socket_url"].startswith("wss://signs.example.com/ws/kiosk/")
    blank = run(env, "displays", "add", "--name", " ", "--floor", "spc_1")
    assert blank.returncode != 0 and "needs a name" in blank.stderr
    listed = run(env, "displays", "list")
    assert "Lobby" in listed.stdout


def test_sim_command_serves_until_terminated(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "signage", "sim", "--port", str(port), "--scenario", "quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: _answers(f"http://127.0.0.1:{port}/version"), timeout=20, message="sim up"
        )
        token = SimSettings().static_token
        version = httpx.get(
            f"http://127.0.0.1:{port}/version", headers={"Authorization": f"Bearer {token}"}
        )
        assert version.text.strip() == "1.0.2"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}" in output


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code in (200, 401)  # 401: up, no token
    except httpx.HTTPError:
        return False
