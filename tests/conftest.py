"""Shared fixtures: the simulator and the real server over loopback, and the browser launch."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from signage.sim import SimServer, SimSettings
from tests.helpers import ServerThread

# Intervals shrunk so that failure-and-recovery tests run in seconds, not minutes.
FAST = {
    "SIGNAGE_PING_INTERVAL": 1.0,
    "SIGNAGE_PING_TIMEOUT": 1.0,
    "SIGNAGE_SILENCE_TIMEOUT": 2.0,
    "SIGNAGE_SNAPSHOT_WAIT": 0.5,
    "SIGNAGE_POLL_INTERVAL": 0.5,
    "SIGNAGE_STALE_AFTER": 4.0,
    "SIGNAGE_BACKOFF_BASE": 0.2,
    "SIGNAGE_BACKOFF_MAX": 1.0,
    "SIGNAGE_FEED_LINGER": 1.0,
    "SIGNAGE_HEARTBEAT_INTERVAL": 1.0,
    "SIGNAGE_UPSTREAM_RATE": 50.0,
    "SIGNAGE_UPSTREAM_BURST": 100,
}


# -- the simulator, in both shapes ---------------------------------------------------------------
# Every test that uses the simulator runs twice: against the simulator's own shapes (spaces with
# parent_id, maps under "data") and against the shapes of the reference's samples (nested
# children, no parent_id, bare maps), since the reference is the truth and the simulator only
# one reading of it. A test marked `one_shape` runs in the default shape only: the simulator's
# own tests of its default answers, and tests whose subject is not Density's data (say why at
# the mark). `--sim-shape` forces one shape, or both, for a whole run.
SIM_SHAPES = ("simulator", "reference")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sim-shape",
        choices=(*SIM_SHAPES, "both"),
        default=None,
        help="run every simulator test in this shape (both: even tests marked one_shape)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "one_shape: a simulator test run in the default shape only (say why)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_shape" not in metafunc.fixturenames:
        return
    own = any(
        "sim_shape" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")
    )
    if own:  # the test names its shapes itself
        return
    forced = metafunc.config.getoption("--sim-shape")
    one = metafunc.definition.get_closest_marker("one_shape") is not None
    if forced == "both" or (forced is None and not one):
        metafunc.parametrize("sim_shape", SIM_SHAPES, indirect=True)


@pytest.fixture
def sim_shape(request: pytest.FixtureRequest) -> str:
    """The shape the simulator answers in: a parameter, `--sim-shape`, else "simulator"."""
    forced = request.config.getoption("--sim-shape")
    return getattr(request, "param", forced if forced in SIM_SHAPES else "simulator")


@pytest.fixture
def sim(sim_shape: str) -> Iterator[SimServer]:
    """A fresh simulator (quiet scenario) on a loopback port, in the test's shape.

    It refreshes every second: the tests' silence timeout is 2 s, and Density's own minute
    between refreshes would read as a dead socket.
    """
    with SimServer(SimSettings(refresh_interval=1.0, shape=sim_shape), seed=1) as server:
        yield server


def server_config(sim: SimServer, tmp_path, **overrides) -> dict:
    """Settings for a test server that talks to `sim`."""
    settings = SimSettings()
    config = {
        "TESTING": True,
        "DENSITY_API_URL": sim.url,
        "DENSITY_CLIENT_ID": settings.client_id,
        "DENSITY_CLIENT_SECRET": settings.client_secret,
        "DENSITY_API_TOKEN": "",
        "SIGNAGE_DATABASE": str(tmp_path / "signage.sqlite3"),
        "SIGNAGE_SECRET_KEY": "test-secret-key",
        # The browser tests' knobs (?no_contact_s=, window.__SIGNAGE_TEST__) need test mode.
        "SIGNAGE_TEST_MODE": True,
        **FAST,
    }
    config.update(overrides)
    return config


@pytest.fixture
def make_server(sim, tmp_path, monkeypatch) -> Iterator:
    """Build and start real servers against the simulator; all stopped at the end."""
    from signage import create_app

    # The instance folder would otherwise be the repository's: keep tests out of it.
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    started: list[ServerThread] = []

    def factory(**overrides) -> ServerThread:
        app = create_app(server_config(sim, tmp_path, **overrides))
        server = ServerThread(app).start()
        server.svc.config["SIGNAGE_PUBLIC_URL"] = server.url
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server) -> ServerThread:
    """One real server against the simulator."""
    return make_server()


# -- browser: the system's Chromium through Playwright ------------------------------------------
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str | None:
    """SIGNAGE_CHROMIUM, else a chromium on the PATH, else Playwright's own (None)."""
    path = os.environ.get("SIGNAGE_CHROMIUM")
    if path:
        return path
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = {**browser_type_launch_args, "args": CHROMIUM_ARGS}
    path = chromium_path()
    if path:
        args["executable_path"] = path
    return args


@pytest.fixture
def contexts(browser):
    """Fresh browser contexts (no shared localStorage or service workers), closed at the end.

    A context per test keeps pages from sharing `localStorage` and service workers.
    """
    made = []

    def new(width=1920, height=1080, init: str | None = None, **kw):
        ctx = browser.new_context(viewport={"width": width, "height": height}, **kw)
        if init:
            ctx.add_init_script(init)
        made.append(ctx)
        return ctx

    yield new
    for ctx in made:
        ctx.close()


@pytest.fixture
def console(server):
    """The admin console of the `server` fixture, signed in as a fresh admin."""
    from tests.admin_helpers import Console, make_admin

    make_admin(server.svc)
    c = Console(server.app)
    assert c.login().status_code == 302
    return c
