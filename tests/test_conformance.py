"""WebSocket protocol conformance: the Autobahn cases 1-7 and 10 through kosoku.

kosoku drives the Autobahn TestSuite case files against an echo route served by the same
stack as the kiosk socket (tests/echo_server.py). Every case must pass with a clean close.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from tests.echo_server import ECHO_PATH
from tests.helpers import free_port, wait_until

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}
CLEAN_CLOSE = {"OK", "INFORMATIONAL"}


def kosoku() -> str:
    found = shutil.which("kosoku") or os.path.join(os.path.dirname(sys.executable), "kosoku")
    if not os.path.exists(found):
        if os.environ.get("CI"):
            pytest.fail("kosoku is not installed (make test installs it)")
        pytest.skip("kosoku is not installed")
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_autobahn_cases_1_to_7_and_10(tmp_path):
    runner = kosoku()
    port = free_port()
    env = {
        **os.environ,
        "SIGNAGE_DATABASE": str(tmp_path / "db.sqlite3"),
        "SIGNAGE_SECRET_KEY": "conformance",
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "DENSITY_API_URL": "http://127.0.0.1:9",  # no Density needed for an echo
    }
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.echo_server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}/healthz"), timeout=30, interval=0.1)
        args = [runner, f"ws://127.0.0.1:{port}{ECHO_PATH}", "-o", str(tmp_path / "reports")]
        for case in CASES:
            args += ["-i", case]
        done = subprocess.run(args, capture_output=True, text=True, timeout=560, cwd=tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=20)
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    results = next(iter(index.values()))
    bad = {
        case: (r["behavior"], r["behaviorClose"])
        for case, r in results.items()
        if r["behavior"] not in GOOD or r["behaviorClose"] not in CLEAN_CLOSE
    }
    assert len(results) > 200, done.stdout[-2000:]
    assert bad == {}, f"{len(bad)} cases failed: {sorted(bad.items())[:20]}"
    assert done.returncode == 0, done.stderr[-2000:]


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
