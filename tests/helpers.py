"""Test helpers: wait for a condition with a deadline, and a real server on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from werkzeug.serving import make_server

from signage.sim import SimSettings

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], timeout: float = 5.0, interval: float = 0.02, message: str = ""
) -> T:
    """Return the condition's first truthy value; fail the test when the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"condition not met within {timeout}s: {message or condition} (last: {last!r})"
    )


class ServerThread:
    """The real signage app on 127.0.0.1, port 0, werkzeug's threaded server, in a thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def svc(self) -> Any:
        return self.app.extensions["signage"]

    def start(self, spaces_wait: float = 15.0) -> ServerThread:
        self._thread.start()
        # The space tree arrives in the background (no request waits for it): tests that read
        # floors at once wait here for it, or for its first failure in an outage test.
        self.svc.directory.wait_settled(spaces_wait)
        return self

    def stop(self) -> None:
        self.svc.hub.close_all(1012, "test over")
        self._server.shutdown()
        self._server.server_close()  # a stopped server refuses connections, as a dead one does
        self._thread.join(timeout=5)
        self.svc.close()

    def add_display(
        self, floor_id: str, density_display_id: str | None = None, name: str = "Lobby"
    ):
        """Create a display and return (display, kiosk credential)."""
        display = self.svc.store.add_display(name, floor_id, density_display_id)
        return display, self.svc.store.credential(display)

    def socket_url(self, credential: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/kiosk/{credential}"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """`signage serve` in a subprocess (the production stack), stopped by process id."""

    def __init__(self, env: dict[str, str], port: int | None = None, server: str = "gunicorn"):
        import os
        import sys

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "SIGNAGE_PUBLIC_URL": self.url}
        self.server = server
        self.args = [sys.executable, "-m", "signage", "serve", "--host", "127.0.0.1"]
        self.proc = None
        self.log_path = None

    def cli(self, *args: str) -> str:
        """Run another `signage` command with the same settings; returns its stdout."""
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-m", "signage", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, log_path=None) -> ServeProcess:
        import subprocess

        import httpx

        self.log_path = log_path
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [*self.args, "--port", str(self.port), "--server", self.server],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
        )

        def up() -> bool:
            assert self.proc.poll() is None, "server exited"
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=30, interval=0.1, message="server up")
        return self

    def stop(self, sig: int | None = None, timeout: float = 20) -> int | None:
        import signal
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig or signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)


def serve_env(sim: Any, tmp_path: Any, **extra: Any) -> dict[str, str]:
    """The environment of a `signage serve` process (or its CLI) that talks to simulator `sim`.

    `extra` adds settings or replaces these (values are turned into strings).
    """
    settings = SimSettings()
    env = {
        "DENSITY_API_URL": sim.url,
        "DENSITY_CLIENT_ID": settings.client_id,
        "DENSITY_CLIENT_SECRET": settings.client_secret,
        "DENSITY_API_TOKEN": "",
        "SIGNAGE_DATABASE": str(tmp_path / "signage.sqlite3"),
        "SIGNAGE_SECRET_KEY": "serve-test-key",
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env
