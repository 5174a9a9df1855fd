"""Test helpers: wait for a condition with a deadline, and a real server on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from werkzeug.serving import make_server

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
    raise AssertionError(f"condition not met within {timeout}s: {message or condition} (last: {last!r})")


class ServerThread:
    """The real signage app on 127.0.0.1, port 0, werkzeug's threaded server, in a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def svc(self) -> Any:
        return self.app.extensions["signage"]

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.svc.hub.close_all(1012, "test over")
        self._server.shutdown()
        self._thread.join(timeout=5)
        self.svc.close()

    def add_display(self, floor_id: str, density_display_id: str | None = None, name: str = "Lobby"):
        """Create a display and return (display, kiosk credential)."""
        display = self.svc.store.add_display(name, floor_id, density_display_id)
        return display, self.svc.store.credential(display)

    def socket_url(self, credential: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/kiosk/{credential}"
