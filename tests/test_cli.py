"""The `signage` command line: check, init-db, displays, sim (each in a subprocess).

`check` walks what `serve` needs from Density and prints a table (step, result, reason).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import httpx
import pytest

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


def oauth_env(tmp_path, sim) -> dict:
    settings = SimSettings()
    return base_env(tmp_path, sim) | {
        "DENSITY_CLIENT_ID": settings.client_id,
        "DENSITY_CLIENT_SECRET": settings.client_secret,
    }


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The check table as {step: (result, reason)}."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^(\S.*?|  floor .*?)\s{2,}(ok|FAIL|warn|skip)\b\s*(.*)$", line)
        if match:
            found[match.group(1).strip()] = (match.group(2), match.group(3))
    return found


def add_display(env: dict, floor_id: str, density_display_id: str | None = None) -> None:
    args = ["displays", "add", "--name", f"Lobby {floor_id}", "--floor", floor_id]
    if density_display_id:
        args += ["--density-display-id", density_display_id]
    done = run(env, *args)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("sim_shape", ["simulator", "reference"], indirect=True)
def test_check_walks_what_serve_needs(sim, tmp_path, sim_shape):
    settings = SimSettings()
    env = oauth_env(tmp_path, sim)
    assert run(env, "init-db").returncode == 0
    display_id, floor_id = sorted(sim.world.displays.items())[0]
    add_display(env, floor_id, display_id)
    extra = sorted(d for d, f in sim.world.displays.items() if f != floor_id)[0]
    done = run(env, "check", "--display-id", extra)
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert done.stdout.splitlines()[1].split() == ["step", "result", "reason"]
    for step in (
        "configured displays",
        "organisation token",
        "space tree",
        f"display token {display_id}",
        f"display token {extra}",
        "presence-health",
        "floor socket",
        "entry occupancy",
        "occupancy socket",
        "sensor health",
    ):
        assert table[step][0] == "ok", (step, table.get(step))
    # Every entry room asked was counted, and the counts' own socket sent its first frame (the
    # reference's counts for the floor and each space under it).
    counted = re.match(r".*: (\d+) of (\d+) entry room", table["entry occupancy"][1])
    assert counted and counted[1] == counted[2] and int(counted[1]) > 0, table["entry occupancy"]
    assert "first refresh frame" in table["occupancy socket"][1]
    # Rooms counted per floor, whatever shape the spaces came in (the reference has no
    # parent_id: counting through it alone gave every floor 0 rooms).
    floors = {k: v for k, v in table.items() if k.startswith("floor ") and k != "floor socket"}
    assert len(floors) == 3, table
    for result, reason in floors.values():
        assert result == "ok" and int(reason.split()[0]) > 0, reason
    assert "first refresh frame" in table["floor socket"][1]
    assert "check passed" in done.stdout
    assert settings.client_secret not in done.stdout + done.stderr


@pytest.mark.parametrize("sim_shape", ["simulator", "reference"], indirect=True)
def test_check_fails_and_names_the_socket_steps_when_sockets_are_refused(sim, tmp_path, sim_shape):
    env = oauth_env(tmp_path, sim)
    httpx.post(f"{sim.url}/_sim/sockets", json={"mode": "refuse"}).raise_for_status()
    done = run(env, "check")
    assert done.returncode == 1, done.stdout + done.stderr
    table = rows(done.stdout)
    assert table["floor socket"] == ("FAIL", "presence socket refused: HTTP 503")
    assert table["occupancy socket"] == ("FAIL", "occupancy socket refused: HTTP 503")
    assert table["presence-health"][0] == "ok"  # the rest of the walk still ran
    assert table["entry occupancy"][0] == "ok"
    assert "check failed: floor socket, occupancy socket" in done.stderr


def test_check_fails_for_a_displays_floor_that_density_does_not_list(sim, tmp_path):
    env = oauth_env(tmp_path, sim)
    assert run(env, "init-db").returncode == 0
    add_display(env, "spc_gone")
    done = run(env, "check")
    assert done.returncode == 1
    assert rows(done.stdout)["floor spc_gone"][0] == "FAIL"
    assert "floor spc_gone" in done.stderr


def test_check_with_a_static_token_skips_display_tokens(sim, tmp_path):
    env = base_env(tmp_path, sim) | {"DENSITY_API_TOKEN": SimSettings().static_token}
    done = run(env, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    table = rows(done.stdout)
    assert table["organisation token"][0] == "ok"
    assert table["organisation token"][1].startswith("static API token")
    assert table["display tokens"][0] == "skip"


def test_check_explains_each_failure_without_the_secret(sim, tmp_path):
    canary = "canary-secret-5f3a9c"
    env = base_env(tmp_path, sim) | {
        "DENSITY_CLIENT_ID": SimSettings().client_id,
        "DENSITY_CLIENT_SECRET": canary,
    }
    refused = run(env, "check")
    assert refused.returncode != 0
    result, reason = rows(refused.stdout)["organisation token"]
    assert result == "FAIL" and "refused by Density" in reason and "check the credentials" in reason
    assert rows(refused.stdout)["space tree"][0] == "skip"
    assert "check failed: organisation token" in refused.stderr
    assert canary not in refused.stdout + refused.stderr

    nothing = run(base_env(tmp_path, sim), "check")
    assert nothing.returncode != 0 and "no credentials" in nothing.stderr

    unreachable = run(
        base_env(tmp_path)
        | {"DENSITY_API_URL": f"http://127.0.0.1:{free_port()}", "DENSITY_API_TOKEN": "tok_x"},
        "check",
    )
    assert unreachable.returncode != 0
    assert "unreachable" in rows(unreachable.stdout)["organisation token"][1]


def test_check_answers_promptly_through_an_outage(sim, tmp_path):
    """Every call 503: the walk fails at its first step within seconds, not minutes."""
    env = oauth_env(tmp_path, sim)
    httpx.post(f"{sim.url}/_sim/outage", json={"seconds": 120}).raise_for_status()
    began = time.monotonic()
    done = run(env, "check")
    assert done.returncode == 1
    assert time.monotonic() - began < 30
    assert rows(done.stdout)["organisation token"][0] == "FAIL"
    # One retry budget: the token call and its two retries, nothing more.
    calls = httpx.get(f"{sim.url}/_sim/calls").json()
    assert sum(calls["calls"].values()) <= 3, calls


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


class QuietStream:
    """A socket stand-in that opens and stays quiet (check's socket steps then warn)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def connect(self) -> None:
        pass

    def wait_first(self, timeout: float) -> None:
        return None

    def close(self) -> None:
        pass


def test_check_reads_doorways_when_a_sensor_names_one(capsys):
    """A sensor serving a doorway rather than a space: check reads /v3/doorways as serve does.

    The simulator's sensors always name a space, so this edge runs on MockTransport, with a
    stand-in for the socket (its step is not what this test is about).
    """

    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        path = request.url.path
        if path == "/v3/hello-world":
            return httpx.Response(200, text="hi")
        if path == "/v3/spaces":
            return httpx.Response(
                200,
                json=[
                    {"id": "spc_f", "name": "Floor", "space_type": "floor",
                     "children_ids": ["spc_r"]},
                    {"id": "spc_r", "name": "Room", "space_type": "space"},
                ],
            )  # fmt: skip
        if path == "/v3/analytics/presence-health":
            return httpx.Response(200, json={"spc_r": {"presence": False, "health": "healthy"}})
        if path == "/v3/sensors/health/current":
            return httpx.Response(
                200, json=[{"serial_number": "E1", "health_status": "healthy", "doorway_id": "d"}]
            )
        if path == "/v3/doorways":
            return httpx.Response(200, json=[{"id": "d", "space_ids": ["spc_r"]}])
        return httpx.Response(404)

    table = _check_against(handler)
    assert table["sensor health"] == (
        "ok",
        "1 sensor(s), 0 not healthy; 1 name a doorway, 1 doorway(s) read",
    )
    assert "/v3/doorways" in asked
    # A socket that opens but stays quiet is worth a look, not a failure.
    assert table["floor socket"][0] == "warn"
    assert "FAIL" not in {result for result, _ in table.values()}


def _check_against(handler) -> dict[str, tuple[str, str]]:
    """`check`'s steps after the database against a MockTransport Density: {step: row}."""
    from signage.cli.check import _check_with, _CheckRun
    from signage.core.directory import build_tree
    from signage.density.client import DensityClient

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = DensityClient("https://density.test", api_token="tok_x", http=http)
    run = _CheckRun()
    _check_with(client, run, {"DENSITY_API_TOKEN": "tok_x"}, [], None, QuietStream, build_tree)
    return {step.strip(): (result, reason) for step, result, reason in run.rows}


def test_check_says_what_it_could_not_check_rather_than_ok(capsys):
    """Entry rooms Density does not count fail the step ("0 of 2" was "ok"); some uncounted,
    or no sensor in the answer, is worth a look; a floor of doorway counters has no presence
    to poll and no presence socket, so those steps are skipped, saying why."""
    counted: dict[str, dict] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v3/hello-world":
            return httpx.Response(200, text="hi")
        if path == "/v3/spaces":
            return httpx.Response(
                200,
                json=[
                    {"id": "spc_f", "name": "Floor", "space_type": "floor",
                     "children_ids": ["spc_a", "spc_b"]},
                    {"id": "spc_a", "name": "A", "space_type": "space", "counting_mode": "entry"},
                    {"id": "spc_b", "name": "B", "space_type": "space", "counting_mode": "entry"},
                ],
            )  # fmt: skip
        if path == "/v3/analytics/occupancy/current":
            return httpx.Response(200, json=counted)
        if path == "/v3/sensors/health/current":
            return httpx.Response(200, json=[])
        return httpx.Response(404)

    table = _check_against(handler)
    assert table["entry occupancy"] == (
        "FAIL",
        "Floor: 0 of 2 entry room(s) counted: every entry room would show unknown",
    )
    assert table["presence-health"] == ("skip", "Floor has no presence-counted rooms")
    assert table["floor socket"] == ("skip", "Floor has no presence-counted rooms")
    assert table["occupancy socket"][0] == "warn"  # opened, but quiet
    assert table["sensor health"] == ("warn", "Density reported no sensor for the 2 room(s) asked")

    counted["spc_a"] = {"count": 3, "timestamp": "2026-01-01T10:00:00Z"}
    table = _check_against(handler)
    assert table["entry occupancy"] == (
        "warn",
        "Floor: 1 of 2 entry room(s) counted: the others would show unknown",
    )
    counted["spc_b"] = {"count": 0, "timestamp": "2026-01-01T10:00:00Z"}
    assert _check_against(handler)["entry occupancy"] == (
        "ok",
        "Floor: 2 of 2 entry room(s) counted",
    )
