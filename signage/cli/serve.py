"""`signage serve`, `sim` and `demo`: the server under gunicorn or waitress, the simulator."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import click
import httpx
import waitress
from gunicorn.app.base import BaseApplication

from signage import config as settings
from signage import logs
from signage.cli.common import configure_logging, default_public_url, make_app
from signage.config import __version__
from signage.core.demo import HERE, demo_floor
from signage.core.protocol import CLOSE_RESTART
from signage.store import plans
from signage.web import auth

logger = logging.getLogger(__name__)


# -- serve -------------------------------------------------------------------------------------
def run_gunicorn(
    host: str,
    port: int,
    max_kiosks: int,
    worker_class: str = "gthread",
    app_factory: Any = None,
    workers: int = 1,
) -> None:
    """Serve the app with gunicorn: one gthread worker holds every feed and kiosk socket.

    With Redis (`workers` > 1), each worker builds its own services after the fork and the
    workers share floors, tokens and the rate budget through Redis (signage/fleet/).
    """

    class _Server(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                # The feeds and the hub live in memory: one worker, threads for every kiosk
                # socket (each holds a handler thread) plus headroom for plain HTTP. More
                # workers only with Redis, which makes them one fleet.
                "workers": workers,
                "worker_class": worker_class,
                "threads": max_kiosks + 64,
                # Above the thread count, so idle keep-alive HTTP connections have room too.
                "worker_connections": max_kiosks + 128,
                "timeout": 60,
                "graceful_timeout": 10,
                "keepalive": 5,
                "preload_app": False,  # threads started before a fork would not survive it
                "accesslog": None,
                "post_worker_init": post_worker_init,
                # gunicorn 25.1+ otherwise opens a control socket in $XDG_RUNTIME_DIR or
                # ~/.gunicorn/, outside the instance and shared by every server of the user
                # (the last one started takes it over). Nothing of ours uses it.
                "control_socket_disable": True,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return (app_factory or make_app)()

    def post_worker_init(worker) -> None:
        """On SIGTERM, tell kiosks to come back (CLOSE_RESTART) before gunicorn's graceful stop.

        Without this, gunicorn holds sockets for the graceful timeout and then drops them with
        no close frame (browsers see 1006), and every screen shows an error at once.
        """
        previous = signal.getsignal(signal.SIGTERM)
        app = worker.wsgi
        secrets = settings.secret_values(app.extensions["signage"].config)
        logs.protect_handlers(("gunicorn.error", "gunicorn.access"), secrets)

        def on_term(signum, frame):
            app.extensions["signage"].shutting_down = True
            app.extensions["signage"].hub.close_all(CLOSE_RESTART, "server restarting")
            cluster = app.extensions["signage"].cluster
            if cluster is not None:  # hand our floors to the fleet now, not at lease expiry
                cluster.leave()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, on_term)
        # Now that this worker has forked: a server no screen has reached yet must still
        # report the displays that are down (the watcher otherwise starts on a first request).
        app.extensions["signage"].alerts.ensure_started()
        app.extensions["signage"].directory.start()  # the space tree, fetched in the background
        cluster = app.extensions["signage"].cluster
        if cluster is not None:  # in the fleet page of every process, kiosks or none
            cluster.start_reports()

    _Server().run()


def _is_loopback(host: str) -> bool:
    """Whether `serve --host` keeps the server to this machine (a proxy's upstream)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def _proxy_exposure_warning(host: str, proxy_count: int) -> str | None:
    """The start-up warning for trusting X-Forwarded-For on an address others can reach."""
    if proxy_count < 1 or _is_loopback(host):
        return None
    # A client that reaches this port without passing the proxy writes the header itself, and
    # its made-up address dodges every per-address limit (sign-in, pairing).
    return (
        f"serving on {host} with SIGNAGE_PROXY_COUNT={proxy_count}: each client's address is"
        " taken from X-Forwarded-For, which a client reaching this port directly can write"
        " itself: make sure only your proxy can reach this port (a firewall rule, or serve on"
        " 127.0.0.1 behind nginx)."
    )


def _raise_file_limit(wanted: int) -> None:
    """Each kiosk socket is a file descriptor: raise the soft limit towards what we need."""
    try:
        import resource  # Unix only: elsewhere there is no limit to raise

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = min(hard, max(soft, wanted))
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            click.echo(
                f"warning: open-file limit {target} is below the {wanted} kiosks need", err=True
            )
    except (ImportError, ValueError, OSError):
        pass


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--server",
    type=click.Choice(["gunicorn", "waitress"]),
    default="gunicorn",
    show_default=True,
    help="waitress serves without WebSockets: kiosks use the HTTP fallback.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="gunicorn worker processes; more than one needs SIGNAGE_REDIS_URL.",
)
def serve(host: str, port: int, server: str, workers: int) -> None:
    """Serve kiosks and the admin console."""
    os.environ.setdefault("SIGNAGE_PUBLIC_URL", default_public_url(host, port))
    values = settings.load(settings.instance_dir())
    configure_logging(values)
    conflict = settings.mode_conflict(values)
    if conflict is not None:
        raise click.UsageError(conflict)
    if workers > 1 and not values["SIGNAGE_REDIS_URL"]:
        raise click.UsageError(
            "--workers above 1 needs SIGNAGE_REDIS_URL: without Redis each worker would open its"
            " own upstream sockets and kiosks would see different states (docs/scale-out.md)"
        )
    if values["SIGNAGE_REDIS_URL"]:
        from signage.fleet import check_url  # lazy: redis is an optional dependency (scale)

        problem = check_url(values["SIGNAGE_REDIS_URL"])
        if problem is not None:
            raise click.UsageError(problem)
    if workers > 1 and server == "waitress":
        raise click.UsageError("--workers is for gunicorn; waitress serves in one process")
    if values["SIGNAGE_PROXY_COUNT"] == 0 and not _is_loopback(host):
        # Reachable directly: slow clients can hold every connection (300 sending a header line
        # every 3 s made /healthz time out); nginx buffers them and keeps them off the workers.
        logger.warning(
            "serving on %s with SIGNAGE_PROXY_COUNT=0, reachable without a reverse proxy: slow"
            " or many clients can take every connection. Put nginx in front (serve on 127.0.0.1,"
            " deploy/nginx-signage.conf) and set SIGNAGE_PROXY_COUNT=1.",
            host,
        )
    exposed = _proxy_exposure_warning(host, values["SIGNAGE_PROXY_COUNT"])
    if exposed is not None:
        logger.warning("%s", exposed)
    max_kiosks = values["SIGNAGE_MAX_KIOSKS"]
    _raise_file_limit(max_kiosks * 2 + 256)  # per process: each worker inherits it
    click.echo(f"signage {__version__} serving on http://{host}:{port} ({server})")
    if server == "waitress":
        app = make_app()
        app.extensions["signage"].directory.start()  # before the first kiosk asks for a floor
        cluster = app.extensions["signage"].cluster
        if cluster is not None:  # no fork here: report to the fleet from the start
            cluster.start_reports()
        waitress.serve(app, host=host, port=port, threads=16)
    else:
        run_gunicorn(host, port, max_kiosks, values["SIGNAGE_WORKER_CLASS"], workers=workers)


# -- sim ---------------------------------------------------------------------------------------
@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--scenario", type=click.Choice(["quiet", "day"]), default="day", show_default=True)
@click.option("--speed", default=1.0, show_default=True, type=float, help="Speed-up of the day.")
@click.option(
    "--shape",
    type=click.Choice(["simulator", "reference"]),
    default="simulator",
    show_default=True,
    help="reference: spaces and maps exactly as Density's reference samples show them.",
)
def sim(host: str, port: int, seed: int, scenario: str, speed: float, shape: str) -> None:
    """Run the built-in Density simulator alone (point any Density client at it)."""
    # Lazy, here and in `demo`: the simulator is a Flask app of its own, with its world and
    # scenarios, that no other command needs; loading it would slow every command's start.
    from signage.sim import SimSettings
    from signage.sim.server import run_forever

    configure_logging()
    shaped = SimSettings(shape=shape)
    run_forever(host=host, port=port, seed=seed, scenario=scenario, speed=speed, settings=shaped)


# -- demo --------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--speed", default=30.0, show_default=True, type=float, help="Simulated day speed-up."
)
@click.option("--instance", default="instance/demo", show_default=True, help="Demo data folder.")
def demo(host: str, port: int, speed: float, instance: str) -> None:
    """The whole product on the built-in simulator: no Density account needed."""
    from signage.sim import SimSettings  # lazy: see `sim`

    configure_logging()
    sim_port = _free_port()
    sim_proc = subprocess.Popen(
        [sys.executable, "-m", "signage", "sim", "--port", str(sim_port), "--speed", str(speed)],
        stdout=subprocess.DEVNULL,
    )
    try:
        sim_url = f"http://127.0.0.1:{sim_port}"
        if not _wait_for(f"{sim_url}/version", 30):
            raise click.ClickException("the simulator did not start")
        defaults = SimSettings()
        instance = os.path.abspath(instance)
        os.makedirs(instance, exist_ok=True)
        public_url = default_public_url(host, port)
        env = {
            # The demo's own instance: its database, secret key and plans (not the real one's).
            "SIGNAGE_INSTANCE": instance,
            "DENSITY_API_URL": sim_url,
            "DENSITY_CLIENT_ID": defaults.client_id,
            "DENSITY_CLIENT_SECRET": defaults.client_secret,
            "DENSITY_API_TOKEN": defaults.static_token,
            "SIGNAGE_DATABASE": os.path.join(instance, "signage.sqlite3"),
            "SIGNAGE_PUBLIC_URL": public_url,
            # Its Density is the simulator on this machine: test knobs are safe to try here.
            "SIGNAGE_TEST_MODE": "1",
        }
        os.environ.update(env)
        app = make_app()
        svc = app.extensions["signage"]
        state = httpx.get(f"{sim_url}/_sim/state", timeout=5).json()
        floor_displays: dict[str, str] = {}
        for display_id, floor_id in sorted(state["displays"].items()):
            floor_displays.setdefault(floor_id, display_id)
        existing = {d.floor_id for d in svc.store.list_displays()}
        svc.directory.wait_settled(30)  # the CLI may wait; requests never do
        for floor in svc.directory.floors():
            if floor.id not in existing:
                svc.store.add_display(
                    f"Lobby – {floor.name}", floor.id, floor_displays.get(floor.id)
                )
        _demo_drawn_floor(svc)
        _demo_calendars(svc, sim_url)
        click.echo("")
        click.echo(f"signage demo: Density simulator at {sim_url}")
        for display in svc.store.list_displays():
            click.echo(f"  kiosk  {display.name:<24} {svc.kiosk_url(display)}")
        click.echo(f"  server {public_url}/")
        admin_name, admin_password = _demo_admin(svc)
        click.echo(f"  admin  {public_url}/admin/  user {admin_name}  password {admin_password}")
        click.echo("Press Ctrl+C to stop.\n")
        svc.close()
        run_gunicorn(host, port, 200)
    finally:
        sim_proc.terminate()
        try:
            sim_proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            sim_proc.kill()


def _demo_calendars(svc, sim_url: str) -> None:
    """Each meeting room's calendar from the simulator, which books them as its day plays
    (signage/sim/calendars.py): booked and held, booked and empty, held unbooked."""
    for space in svc.directory.all():
        if space.function == "meeting_room":
            svc.calendars.put(space.id, f"{sim_url}/_sim/calendars/{space.id}.ics")


def _demo_drawn_floor(svc) -> None:
    """Give the first display's floor a plan, outlines, corridors and "you are here", as an
    admin would draw them in the floor editor (once: an admin's own drawing is kept)."""
    displays = svc.store.list_displays()
    if not displays:
        return
    display = min(displays, key=lambda d: d.id)
    floor_id = display.floor_id
    if svc.store.get_plan(floor_id) is not None or svc.store.get_layout(floor_id) is not None:
        return
    svg, layout = demo_floor(svc.directory.rooms_of(floor_id))
    plans.store_plan(svc.store, svc.config, floor_id, svg, "demo")
    svc.store.put_layout(floor_id, layout, "demo")
    svc.store.update_display_settings(display.id, {**display.settings, "here": HERE})


def _demo_admin(svc) -> tuple[str, str]:
    """The demo's admin account, with a fresh password each run (printed, demo data only)."""
    name = "demo"
    password = secrets.token_urlsafe(12)
    existing = svc.store.admin_by_username(name)
    if existing is None:
        svc.store.add_admin(name, auth.hash_password(password), "owner")
    else:
        svc.store.set_admin_password(existing.id, auth.hash_password(password), sign_out=True)
    return name, password
