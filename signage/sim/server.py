"""Serving the simulator: in a thread for tests, or in the foreground for `signage sim`."""

from __future__ import annotations

import logging
import signal
import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from signage.sim.app import create_app
from signage.sim.settings import SimSettings
from signage.sim.world import Simulator

logger = logging.getLogger(__name__)


class _QuietHandler(WSGIRequestHandler):
    # Tests make thousands of requests; one log line each would bury their output.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s", self.requestline, code)


class _Server(ThreadedWSGIServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A socket cut on purpose makes werkzeug's late write fail; that is expected here.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class SimServer:
    """The simulator on a real port (0: any free one), served from a daemon thread."""

    def __init__(
        self,
        settings: SimSettings | None = None,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: str = "quiet",
        speed: float = 1.0,
        log_requests: bool = False,
    ) -> None:
        self.world = Simulator(settings, seed=seed)
        self.sim = self.world
        self.host = host
        self._requested_port = port
        self._scenario = scenario
        self._speed = speed
        self._log_requests = log_requests
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        if self._server is None:
            raise RuntimeError("SimServer is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        """Base URL of the simulated API, e.g. http://127.0.0.1:41234."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> SimServer:
        """Bind, start serving and start the scenario; returns self."""
        handler = WSGIRequestHandler if self._log_requests else _QuietHandler
        self._server = _Server(self.host, self._requested_port, create_app(self.world), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sim-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self.world.start_scenario(self._scenario, self._speed)
        logger.info("Density simulator serving on %s", self.url)
        return self

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the scenario, close every socket, stop serving and join the threads."""
        self.world.stop_scenario()
        self.world.close_all_sockets(timeout)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        self._server, self._thread = None, None

    def calls(self) -> dict[str, Any]:
        """The counters, as `GET /_sim/calls` shows them."""
        return self.world.calls()

    def sockets_open(self, floor_id: str | None = None, kind: str | None = None) -> int:
        """Open sockets on a floor (all when None), of one kind (presence/occupancy) or both."""
        return self.world.sockets_open(floor_id, kind)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_forever(
    host: str = "127.0.0.1",
    port: int = 8765,
    seed: int = 1,
    scenario: str = "quiet",
    speed: float = 1.0,
    settings: SimSettings | None = None,
) -> None:
    """Serve the simulator until Ctrl-C or SIGTERM, printing how to reach it."""
    server = SimServer(settings, seed=seed, host=host, port=port, scenario=scenario, speed=speed)
    server.start()
    stopping = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    s = server.world.settings
    print(
        f"Density simulator on {server.url} "
        f"(seed {seed}, scenario {scenario}, speed {speed}, shape {s.shape})"
    )
    print(f"  DENSITY_API_URL={server.url}")
    print(f"  static token:  {s.static_token}")
    print(f"  client id:     {s.client_id}")
    print(f"  client secret: {s.client_secret}")
    floors = server.world.portfolio.spaces
    for display_id, floor_id in server.world.displays.items():
        print(f"  display {display_id} -> {floors[floor_id].name} ({floor_id})")
    print("Control API: GET /_sim/state, /_sim/calls; Ctrl-C to stop", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
