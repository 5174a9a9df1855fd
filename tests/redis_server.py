"""A real `redis-server` for tests: a free loopback port, no persistence, stopped by process id.

`redis-server --port 0` turns TCP off rather than choosing a port, so a free port is
picked first. `restart()` stops the server and starts a new one on the same port with no data,
as a crashed Redis without persistence comes back.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

REDIS_SERVER = os.environ.get("SIGNAGE_REDIS_SERVER") or shutil.which("redis-server")


class RedisServer:
    """One redis-server process on 127.0.0.1 in its own folder."""

    def __init__(self, folder: Path, port: int | None = None, password: str | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (scripts/ensure-services.sh)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.folder / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--protected-mode",
                "yes",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
        )
        log.close()
        self.starts += 1
        wait_until(self.ping, timeout=15, interval=0.05, message="redis-server answers PING")
        return self

    def ping(self) -> bool:
        """True when the server answers PING on its port."""
        assert self.proc is not None and self.proc.poll() is None, "redis-server exited"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    if not s.recv(16).startswith(b"+OK"):
                        return False
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server by its process id (SIGKILL for a crash)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def restart(self, down_for: float = 0.0) -> None:
        """Kill the server, stay down for `down_for` seconds, start afresh on the same port."""
        self.stop(signal.SIGKILL)
        if down_for > 0:
            time.sleep(down_for)  # the outage itself is what is being tested, not a wait
        self.start()


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test, stopped at the end."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (scripts/ensure-services.sh installs it)")
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()
