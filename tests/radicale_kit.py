"""A real CalDAV server for tests: Radicale on a loopback port, stopped by its pid, and
calendars and events created through the `caldav` client, as a calendar app would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import caldav
import httpx

USER = "room-mailbox"
PASSWORD = "r1ght-pa55word"


def _free_port() -> int:
    # Radicale cannot report a port 0 it was given; a port the kernel just handed out is free
    # for the moment it takes Radicale to bind it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Radicale:
    """Radicale in a child process, with one user (htpasswd, plain) and its own storage."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "users").write_text(f"{USER}:{PASSWORD}\n")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Radicale:
        """Start the server and wait until it answers."""
        # fmt: off
        args = [
            sys.executable, "-m", "radicale", "--config", "",
            "--server-hosts", f"127.0.0.1:{self.port}",
            "--auth-type", "htpasswd",
            "--auth-htpasswd-filename", str(self.folder / "users"),
            "--auth-htpasswd-encryption", "plain",
            "--auth-delay", "0",  # a wrong password is answered at once
            "--storage-filesystem-folder", str(self.folder / "collections"),
            "--rights-type", "owner_only",
            "--logging-level", "error",
        ]
        # fmt: on
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.folder
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Radicale exited with {self.process.returncode}")
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("Radicale did not answer in time") from None
                time.sleep(0.05)  # polling a child process's port: nothing to wait on instead

    def stop(self) -> None:
        """Stop the server by its pid (SIGTERM, then SIGKILL)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def client(self, password: str = PASSWORD) -> caldav.DAVClient:
        """A CalDAV client of the server, signed in as the one user."""
        return caldav.DAVClient(url=self.url, username=USER, password=password, timeout=10)

    def make_calendar(self, name: str, *events: str) -> str:
        """A new calendar with the given iCalendar objects (one VCALENDAR each); its URL."""
        with self.client() as client:
            calendar = client.principal().make_calendar(name=name)
            for event in events:
                calendar.add_event(event)
            return str(calendar.url)

    def add_event(self, url: str, event: str) -> None:
        """One more iCalendar object in the calendar at url."""
        with self.client() as client:
            client.calendar(url=url).add_event(event)
