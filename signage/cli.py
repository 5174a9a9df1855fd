"""The `signage` command: demo, serve, sim, check, init-db, displays and admin."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import click
import httpx

from signage import __version__

logger = logging.getLogger(__name__)


def _configure_logging(values: dict[str, Any] | None = None) -> None:
    """Log to stderr, as text or JSON, with every configured secret masked."""
    from signage import config as settings
    from signage import logs

    values = values or settings.load(settings.instance_dir())
    logs.configure(
        values["SIGNAGE_LOG_LEVEL"], values["SIGNAGE_LOG_FORMAT"], settings.secret_values(values)
    )


def _app(**overrides: Any):
    from signage import create_app

    return create_app(overrides or None)


def _default_public_url(host: str, port: int) -> str:
    """The address `serve` listens on, as a kiosk elsewhere on the network would reach it."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn() or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@click.group()
@click.version_option(__version__, prog_name="signage")
def main() -> None:
    """Self-hosted wayfinding displays, live from Density's occupancy sensors."""


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
    workers share floors, tokens and the rate budget through Redis (signage/fleet/cluster.py).
    """
    from gunicorn.app.base import BaseApplication

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
            from signage import create_app

            return (app_factory or create_app)()

    def post_worker_init(worker) -> None:
        """On SIGTERM, tell kiosks to come back (1012) before gunicorn's graceful stop.

        Without this, gunicorn holds sockets for the graceful timeout and then drops them with
        no close frame (browsers see 1006), and every screen shows an error at once.
        """
        import signal

        from signage import config as settings
        from signage import logs

        previous = signal.getsignal(signal.SIGTERM)
        app = worker.wsgi
        secrets = settings.secret_values(app.extensions["signage"].config)
        logs.protect_handlers(("gunicorn.error", "gunicorn.access"), secrets)

        def on_term(signum, frame):
            app.extensions["signage"].shutting_down = True
            app.extensions["signage"].hub.close_all(1012, "server restarting")
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
    import ipaddress

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
        import resource

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


@main.command()
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
    from signage import config as settings

    os.environ.setdefault("SIGNAGE_PUBLIC_URL", _default_public_url(host, port))
    values = settings.load(settings.instance_dir())
    _configure_logging(values)
    conflict = settings.mode_conflict(values)
    if conflict is not None:
        raise click.UsageError(conflict)
    if workers > 1 and not values["SIGNAGE_REDIS_URL"]:
        raise click.UsageError(
            "--workers above 1 needs SIGNAGE_REDIS_URL: without Redis each worker would open its"
            " own upstream sockets and kiosks would see different states (docs/scale-out.md)"
        )
    if values["SIGNAGE_REDIS_URL"]:
        from signage.fleet import check_url

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
        import waitress

        app = _app()
        app.extensions["signage"].directory.start()  # before the first kiosk asks for a floor
        cluster = app.extensions["signage"].cluster
        if cluster is not None:  # no fork here: report to the fleet from the start
            cluster.start_reports()
        waitress.serve(app, host=host, port=port, threads=16)
    else:
        run_gunicorn(host, port, max_kiosks, values["SIGNAGE_WORKER_CLASS"], workers=workers)


# -- sim ---------------------------------------------------------------------------------------
@main.command()
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
    from signage.sim import SimSettings
    from signage.sim.server import run_forever

    _configure_logging()
    settings = SimSettings(shape=shape)
    run_forever(host=host, port=port, seed=seed, scenario=scenario, speed=speed, settings=settings)


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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--speed", default=30.0, show_default=True, type=float, help="Simulated day speed-up."
)
@click.option("--instance", default="instance/demo", show_default=True, help="Demo data folder.")
def demo(host: str, port: int, speed: float, instance: str) -> None:
    """The whole product on the built-in simulator: no Density account needed."""
    from signage.sim import SimSettings

    _configure_logging()
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
        public_url = _default_public_url(host, port)
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
        app = _app()
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


def _demo_drawn_floor(svc) -> None:
    """Give the first display's floor a plan, outlines, corridors and "you are here", as an
    admin would draw them in the floor editor (once: an admin's own drawing is kept)."""
    from signage.core.demo import HERE, demo_floor
    from signage.store import plans

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
    import secrets

    from signage.web import auth

    name = "demo"
    password = secrets.token_urlsafe(12)
    existing = svc.store.admin_by_username(name)
    if existing is None:
        svc.store.add_admin(name, auth.hash_password(password), "owner")
    else:
        svc.store.set_admin_password(existing.id, auth.hash_password(password), sign_out=True)
    return name, password


# -- check -------------------------------------------------------------------------------------
CHECK_SOCKET_WAIT_S = 10.0  # how long `check` waits for the first frame on the floor's socket


class _CheckProblem(Exception):
    """A step's answer that is not an error from Density but still fails the step."""


class _CheckWarning(Exception):
    """A step's answer worth a look that serve copes with: a warning, not a failure."""


class _CheckRun:
    """The rows of one `signage check`, printed as they complete."""

    WIDTH = 34

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []  # (step, ok/FAIL/warn/skip, reason)
        click.echo(f"{'step':<{self.WIDTH}} {'result':<6} reason")

    def add(self, step: str, result: str, reason: str = "") -> None:
        self.rows.append((step, result, reason))
        click.echo(f"{step:<{self.WIDTH}} {result:<6} {reason}".rstrip())

    def attempt(self, step: str, action: Callable[[], Any], describe: Callable[[Any], str]) -> Any:
        """Run one step against Density: its result, or None when it failed (row added)."""
        from signage.density.errors import (
            AuthError,
            DensityError,
            RateLimited,
            StreamClosed,
            Unavailable,
        )

        try:
            result = action()
        except AuthError as exc:
            self.add(step, "FAIL", f"refused by Density ({exc}); check the credentials")
        except RateLimited as exc:
            self.add(step, "FAIL", f"rate limited by Density ({exc}); try again shortly")
        except StreamClosed as exc:
            self.add(step, "FAIL", f"{exc}")
        except Unavailable as exc:
            self.add(
                step, "FAIL", f"Density unreachable ({exc}); check DENSITY_API_URL and the network"
            )
        except DensityError as exc:
            self.add(step, "FAIL", f"unexpected answer from Density ({exc})")
        except _CheckProblem as exc:
            self.add(step, "FAIL", str(exc))
        except _CheckWarning as exc:
            self.add(step, "warn", str(exc))
        else:
            self.add(step, "ok", describe(result))
            return result
        return None

    @property
    def failed(self) -> list[str]:
        return [step.strip() for step, result, _ in self.rows if result == "FAIL"]


def _configured_displays(values: dict[str, Any], run: _CheckRun) -> list[Any]:
    """The displays serve would run, read without creating or migrating the database."""
    from signage.store import Store
    from signage.store.db import is_postgres

    database = values["SIGNAGE_DATABASE"]
    if not is_postgres(database) and not os.path.exists(database):
        run.add("configured displays", "skip", f"no database yet at {database}")
        return []
    try:
        store = Store(database, "check")  # the key signs credentials; nothing is signed here
        try:
            displays = store.list_displays()
        finally:
            store.close()
    except Exception as exc:  # a missing table, an unreachable PostgreSQL: say so, go on
        run.add("configured displays", "FAIL", f"cannot read the database ({type(exc).__name__})")
        return []
    run.add("configured displays", "ok", f"{len(displays)} display(s)")
    return displays


@main.command()
@click.option("--display-id", default=None, help="Also check this Density display id's token.")
def check(display_id: str | None) -> None:
    """Walk what `serve` needs from Density, print a table, and exit 1 when anything fails.

    The organisation token; a display token for each configured display, used for a real
    call; the space tree and the rooms of each floor; presence-health for one floor; a
    ws_url and the floor socket's first frame; occupancy of entry-counted rooms; sensor health.
    """
    from signage import config as settings
    from signage.core.directory import build_tree
    from signage.density.client import DensityClient
    from signage.density.stream import PresenceStream

    values = settings.load(settings.instance_dir())
    url = values["DENSITY_API_URL"]
    has_token = bool(values["DENSITY_API_TOKEN"])
    has_oauth = bool(values["DENSITY_CLIENT_ID"] and values["DENSITY_CLIENT_SECRET"])
    click.echo(f"Density API: {url}")
    if not (has_token or has_oauth):
        raise click.ClickException(
            "no credentials: set DENSITY_API_TOKEN, or DENSITY_CLIENT_ID and DENSITY_CLIENT_SECRET"
        )
    if display_id and not has_oauth:
        raise click.ClickException(
            "--display-id needs DENSITY_CLIENT_ID and DENSITY_CLIENT_SECRET (display tokens"
            " come from client credentials)"
        )
    run = _CheckRun()
    displays = _configured_displays(values, run)
    timeout = values["SIGNAGE_HTTP_TIMEOUT"]
    with DensityClient(
        url,
        api_token=values["DENSITY_API_TOKEN"] or None,
        client_id=values["DENSITY_CLIENT_ID"] or None,
        client_secret=values["DENSITY_CLIENT_SECRET"] or None,
        audience=values["DENSITY_OAUTH_AUDIENCE"] or None,
        token_duration=values["DENSITY_TOKEN_DURATION"] or None,
        timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
    ) as client:
        _check_with(client, run, values, displays, display_id, PresenceStream, build_tree)
    failed = run.failed
    if failed:
        click.echo(f"check failed: {', '.join(failed)}", err=True)
        raise SystemExit(1)
    click.echo("check passed: serve has what it needs from Density")


def _check_with(client, run: _CheckRun, values, displays, extra_display, stream_cls, build_tree):
    """The steps of `check` after the database: each adds its row; later ones skip when an
    earlier one they need failed."""

    def org() -> str:
        kind = "static API token" if values["DENSITY_API_TOKEN"] else "OAuth token"
        client.org_token()
        client.hello_world(retries=0)  # the token works for a real call, not only exists
        left = client.token_expiry("org")
        return kind + (f", valid {left:.0f} s" if left is not None else "") + ", hello-world ok"

    if run.attempt("organisation token", org, lambda text: text) is None:
        for step in ("display tokens", "space tree", "presence-health", "floor socket",
                     "entry occupancy", "sensor health"):  # fmt: skip
            run.add(step, "skip", "needs the organisation token")
        return

    tree = run.attempt(
        "space tree",
        lambda: build_tree(client.spaces()),
        lambda t: f"{len(t)} spaces, {len(t.floors())} floor(s)",
    )
    floors = tree.floors() if tree is not None else []
    display_floors = {d.floor_id for d in displays}
    for floor in floors:
        rooms = tree.rooms_of(floor.id)
        needed = floor.id in display_floors
        # A floor without rooms shows an empty kiosk: an error where a display is configured.
        result = "ok" if rooms else ("FAIL" if needed else "warn")
        building = tree.building_of(floor.id)
        where = f"{building.name} / " if building else ""
        reason = f"{len(rooms)} room(s)" + ("" if rooms else ": the kiosk would show no room")
        run.add(f"  floor {where}{floor.name}", result, reason)
    if tree is not None and not floors:
        run.add("floors", "FAIL", "no space of type floor: kiosks would have nothing to show")
    for floor_id in sorted(display_floors - {f.id for f in floors}):
        if tree is not None:
            run.add(
                f"  floor {floor_id}", "FAIL", "a display shows it but Density does not list it"
            )

    # The floor the next steps use: the first display's, else the first floor with rooms.
    floor = None
    if tree is not None:
        by_id = {f.id: f for f in floors}
        floor = next((by_id[d.floor_id] for d in displays if d.floor_id in by_id), None)
        floor = floor or next((f for f in floors if tree.rooms_of(f.id)), None)
    rooms = tree.rooms_of(floor.id) if floor is not None else []
    room_ids = [r.id for r in rooms if r.counting_mode != "entry"] or [r.id for r in rooms]

    # Display tokens: each configured display's, then one real call made with it.
    wanted = list(dict.fromkeys([d.density_display_id for d in displays if d.density_display_id]))
    if extra_display and extra_display not in wanted:
        wanted.append(extra_display)
    if not wanted:
        run.add("display tokens", "skip", "no display has a Density display id: serve uses the"
                " organisation token")  # fmt: skip
    elif not client.has_client_credentials:
        run.add("display tokens", "FAIL", "displays name Density display ids, but display tokens"
                " need DENSITY_CLIENT_ID and DENSITY_CLIENT_SECRET")  # fmt: skip
    for density_id in wanted if client.has_client_credentials else []:
        # Its own floor's rooms; one not configured (--display-id) is asked for all it may see.
        floor_of = next((d.floor_id for d in displays if d.density_display_id == density_id), None)
        own = [r.id for r in tree.rooms_of(floor_of)] if tree is not None and floor_of else []

        def display_call(density_id: str = density_id, own: list[str] = own) -> int:
            client.display_token(density_id)
            return len(client.presence_health(own or None, display_id=density_id, retries=0))

        run.attempt(
            f"display token {density_id}",
            display_call,
            lambda n: f"token issued; presence-health with it answered for {n} space(s)",
        )

    token_display = next(
        (d.density_display_id for d in displays
         if floor is not None and d.floor_id == floor.id and d.density_display_id),
        None,
    )  # fmt: skip
    if not client.has_client_credentials:
        token_display = None
    if floor is None:
        for step in ("presence-health", "floor socket", "entry occupancy", "sensor health"):
            run.add(step, "skip", "no floor with rooms to check")
        return

    def presence() -> str:
        answer = client.presence_health(room_ids, display_id=token_display, retries=0)
        healthy = sum(1 for p in answer.values() if p.health == "healthy")
        if not answer:
            raise _CheckProblem(f"no room of {floor.name} in the answer")
        return f"{floor.name}: {len(answer)} room(s), {healthy} healthy"

    run.attempt("presence-health", presence, lambda text: text)

    def socket() -> str:
        stream = stream_cls(client, floor.id, display_id=token_display, ping_interval=None)
        try:
            stream.connect()
            message = stream.wait_first(CHECK_SOCKET_WAIT_S)
        finally:
            stream.close()
        if message is None:
            # Whether Density sends a refresh on connect is not documented; serve takes a REST
            # snapshot until the first frame, so a quiet start is worth a look, not a failure.
            raise _CheckWarning(
                f"ws_url issued and the socket opened, but no frame within"
                f" {CHECK_SOCKET_WAIT_S:.0f} s (serve polls until one comes)"
            )
        return (
            f"{floor.name}: ws_url, socket open, first {message.update_type} frame"
            f" ({len(message.updates)} space(s))"
        )

    run.attempt("floor socket", socket, lambda text: text)

    # Entry-counted rooms: this floor's, else those of the first floor that has any, each
    # read with the token serve would use for that floor (a display token sees its floor only).
    entry_floor = floor
    entry = [r.id for r in rooms if r.counting_mode == "entry"]
    for other in floors if not entry else []:
        entry = [r.id for r in tree.rooms_of(other.id) if r.counting_mode == "entry"]
        if entry:
            entry_floor = other
            break
    entry_display = next(
        (d.density_display_id for d in displays
         if d.floor_id == entry_floor.id and d.density_display_id),
        None,
    ) if client.has_client_credentials else None  # fmt: skip
    if not entry:
        run.add("entry occupancy", "skip", "no entry-counted rooms")
    else:
        run.attempt(
            "entry occupancy",
            lambda: client.current_occupancy(entry, display_id=entry_display, retries=0),
            lambda counts: (
                f"{entry_floor.name}: {len(counts)} of {len(entry)} entry room(s) counted"
            ),
        )

    def sensors() -> str:
        found = client.sensor_health(space_ids=[r.id for r in rooms], retries=0)
        unwell = sum(1 for s in found if s.health != "healthy")
        text = f"{len(found)} sensor(s), {unwell} not healthy"
        unplaced = sum(1 for s in found if not s.space_id)
        if unplaced:
            # Serve maps a sensor that names a doorway to its spaces through GET /v3/doorways.
            doorways = client.doorways(retries=0)
            text += f"; {unplaced} name a doorway, {len(doorways)} doorway(s) read"
        return text

    run.attempt("sensor health", sensors, lambda text: text)


# -- init-db -----------------------------------------------------------------------------------
@main.command("init-db")
def init_db() -> None:
    """Create the database or bring its schema up to date."""
    app = _app()
    svc = app.extensions["signage"]
    version = svc.store.migrate()
    click.echo(f"database {svc.store.path} at schema version {version}")


# -- displays ----------------------------------------------------------------------------------
@main.group()
def displays() -> None:
    """Add, list, pair, revoke and remove displays."""


def phone_url(svc, display) -> str:
    """The display's phone link, as the console shows it."""
    from signage.web.admin import phone_url as console_phone_url

    return console_phone_url(svc, display)


def _display_json(svc, display) -> dict[str, Any]:
    return {
        "id": display.id,
        "name": display.name,
        "floor_id": display.floor_id,
        "density_display_id": display.density_display_id,
        "kiosk_url": svc.kiosk_url(display),
        "socket_url": svc.socket_url(display),
        "state_url": svc.state_url(display),
        "phone_url": phone_url(svc, display),
    }


@displays.command("add")
@click.option("--name", required=True)
@click.option("--floor", "floor_id", required=True, help="Density floor id (spc_…).")
@click.option("--density-display-id", default=None, help="Density display id, for its token.")
@click.option("--json", "as_json", is_flag=True, help="Print the display as JSON.")
def displays_add(name: str, floor_id: str, density_display_id: str | None, as_json: bool) -> None:
    """Add a display for a floor."""
    from signage.store import StoreError

    svc = _app().extensions["signage"]
    try:
        display = svc.store.add_display(name, floor_id, density_display_id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(_display_json(svc, display)))
    else:
        click.echo(f"display {display.id} added: {svc.kiosk_url(display)}")


@displays.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the displays as JSON.")
def displays_list(as_json: bool) -> None:
    """List displays with their kiosk URLs."""
    svc = _app().extensions["signage"]
    rows = [_display_json(svc, d) for d in svc.store.list_displays()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['id']:>4}  {row['name']:<24} {row['floor_id']:<20} {row['kiosk_url']}")


@displays.command("remove")
@click.argument("display_id", type=int)
def displays_remove(display_id: int) -> None:
    """Delete a display (its screens lose their credential)."""
    svc = _app().extensions["signage"]
    if not svc.store.remove_display(display_id):
        raise click.ClickException(f"no display {display_id}")
    click.echo(f"display {display_id} removed")


@displays.command("revoke")
@click.argument("display_id", type=int)
@click.option(
    "--phone", is_flag=True, help="Revoke only the phone link (QR code); screens stay paired."
)
def displays_revoke(display_id: int, phone: bool) -> None:
    """Issue a new credential for a display; screens holding the old one return to pairing."""
    from signage.store import StoreError

    svc = _app().extensions["signage"]
    if phone and svc.store.get_display(display_id) is None:
        raise click.ClickException(f"no display {display_id}")
    try:
        if phone:
            display = svc.store.revoke_phone_link(display_id)
        else:
            display = svc.store.revoke_display(display_id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if phone:
        # This process cannot reach a running server's screens: they show the new code when
        # their page next loads (at once with the console's or the API's revoke, or Reload).
        click.echo(f"display {display_id} phone link revoked; new: {phone_url(svc, display)}")
        click.echo("screens show the new QR code after their next reload", err=True)
        return
    click.echo(f"display {display_id} revoked; its new kiosk URL: {svc.kiosk_url(display)}")


@displays.command("pair")
@click.argument("code")
@click.argument("display_id", type=int)
def displays_pair(code: str, display_id: int) -> None:
    """Give the screen showing CODE the display DISPLAY_ID."""
    from signage.web.pairing import PairingRefused, claim_code

    svc = _app().extensions["signage"]
    if svc.store.get_display(display_id) is None:
        raise click.ClickException(f"no display {display_id}")
    try:
        display = claim_code(svc, code, display_id)
    except PairingRefused as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"paired: the screen becomes display {display.id} ({display.name}) within seconds")


# -- admin -------------------------------------------------------------------------------------
@main.group()
def admin() -> None:
    """Admin console accounts and API tokens."""


def _read_password(password_stdin: bool) -> str:
    """A new password: the first line of stdin (scripts), else prompted twice (people)."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@admin.command("create")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["owner", "admin"]),
    default=None,
    help="Default: owner for the first admin, admin after.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def admin_create(username: str, role: str | None, password_stdin: bool) -> None:
    """Create an admin account (the first one is the owner)."""
    import re

    from signage.store import StoreError
    from signage.web import auth

    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", username):
        raise click.ClickException("a username has 1-64 letters, digits or _ . @ -")
    svc = _app().extensions["signage"]
    password = _read_password(password_stdin)
    try:
        created = svc.store.add_admin(username, auth.hash_password(password), role)
    except (auth.PasswordError, StoreError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"admin {created.username} created ({created.role})")


@admin.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def admin_password(username: str, password_stdin: bool) -> None:
    """Set an admin's password (signs out all their sessions)."""
    from signage.web import auth

    svc = _app().extensions["signage"]
    found = svc.store.admin_by_username(username)
    if found is None:
        raise click.ClickException(f"no admin {username}")
    try:
        svc.store.set_admin_password(
            found.id, auth.hash_password(_read_password(password_stdin)), sign_out=True
        )
    except auth.PasswordError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {found.username} changed")


@admin.command("list")
def admin_list() -> None:
    """List admin accounts."""
    svc = _app().extensions["signage"]
    for a in svc.store.list_admins():
        click.echo(f"{a.id:>4}  {a.username:<24} {a.role:<6} {a.created_at}")


@admin.command("remove")
@click.argument("username")
def admin_remove(username: str) -> None:
    """Remove an admin account (never the last owner)."""
    from signage.store import StoreError

    svc = _app().extensions["signage"]
    found = svc.store.admin_by_username(username)
    if found is None:
        raise click.ClickException(f"no admin {username}")
    try:
        svc.store.remove_admin(found.id)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"admin {found.username} removed")


@admin.group("token")
def admin_token() -> None:
    """API tokens for automation (Authorization: Bearer …)."""


@admin_token.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The token may read but not change anything.")
def admin_token_create(name: str, read_only: bool) -> None:
    """Create an API token and print it (once: only its hash is kept)."""
    from signage.store import StoreError
    from signage.web import auth

    svc = _app().extensions["signage"]
    token = auth.new_api_token()
    try:
        record = svc.store.add_api_token(
            name, auth.token_hash(token), "viewer" if read_only else "admin"
        )
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"token {record.id} ({record.name}, {record.role}); shown only now:", err=True)
    click.echo(token)


@admin_token.command("list")
def admin_token_list() -> None:
    """List API tokens (never their values)."""
    svc = _app().extensions["signage"]
    for t in svc.store.list_api_tokens():
        click.echo(f"{t.id:>4}  {t.name:<24} {t.role:<6} {t.created_at}")


@admin_token.command("revoke")
@click.argument("token_id", type=int)
def admin_token_revoke(token_id: int) -> None:
    """Delete an API token."""
    svc = _app().extensions["signage"]
    if not svc.store.remove_api_token(token_id):
        raise click.ClickException(f"no token {token_id}")
    click.echo(f"token {token_id} revoked")


# -- backup and restore ------------------------------------------------------------------------
@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def backup(file: str) -> None:
    """Write a consistent copy of the database and the floor plans to FILE (a .tar.gz)."""
    from signage import config as settings
    from signage.store.backup import BackupError, create_backup

    values = settings.load(settings.instance_dir())
    try:
        manifest = create_backup(values, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written to {file} ({len(manifest['plans'])} plan file(s))")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--keep-credentials",
    is_flag=True,
    help="Keep the backup's kiosk credentials, phone links and sessions, including any revoked"
    " since it was taken.",
)
@click.option(
    "--create",
    is_flag=True,
    help="Create the database if there is none yet (a new server); without it, restore only"
    " replaces an existing one.",
)
def restore(file: str, yes: bool, keep_credentials: bool, create: bool) -> None:
    """Replace the database and floor plans with those in FILE. Stop the server first.

    Every display gets a new credential, so every screen shows a pairing code and must be
    paired again, and admins sign in again: a credential revoked after the backup was taken
    must not work again. --keep-credentials keeps the backup's credentials instead (when none
    has leaked, for example after losing the disk).
    """
    from signage import config as settings
    from signage.store.backup import BackupError, restore_backup
    from signage.store.db import is_postgres, redact_url

    values = settings.load(settings.instance_dir())
    database = values["SIGNAGE_DATABASE"]
    # The URL of a PostgreSQL database may carry its password.
    target = redact_url(database) if is_postgres(database) else os.path.abspath(database)
    click.echo(f"database: {target}")
    if not is_postgres(database) and not os.path.exists(database) and not create:
        # Run from another folder, restore wrote a database that serve never reads.
        raise click.ClickException(
            f"there is no database at {target}: run restore where the server runs, or set"
            " SIGNAGE_INSTANCE or SIGNAGE_DATABASE as the server has them; --create starts a"
            " new database there"
        )
    if not yes:
        click.confirm(f"Replace {target} and its plans with the backup?", abort=True)
    try:
        manifest = restore_backup(values, file, keep_credentials=keep_credentials)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"restored the backup of {manifest.get('created_at', '?')}; start the server again")
    if not keep_credentials:
        click.echo(
            "every display has a new credential: pair each screen again (it shows a code), and"
            " sign in to the console again"
        )
