"""The app's shared objects, built once per app and kept in `app.extensions["signage"]`.

No thread starts here: a floor feed starts when its first kiosk arrives, so building the app
(in tests, in the CLI, before gunicorn forks) costs nothing but opening the database.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask import Flask, current_app

from signage import config as settings
from signage.actions.alerts import AlertWatcher
from signage.actions.announcements import Announcer
from signage.core.building import EmergencyFloors, OtherFloors
from signage.core.directory import SpaceDirectory
from signage.core.feeds import FeedManager, FeedSettings
from signage.core.hub import Hub
from signage.density.client import DensityClient
from signage.density.ratelimit import RateLimiter
from signage.store import Display, Store
from signage.store.db import StoreUnavailable, is_postgres

logger = logging.getLogger(__name__)

PACKAGE_ROOT = Path(__file__).resolve().parent


@dataclass
class Services:
    """Everything a request handler or a CLI command needs, in one place."""

    config: dict[str, Any]
    store: Store
    client: DensityClient
    directory: SpaceDirectory
    hub: Hub
    feeds: FeedManager
    epoch: str
    building: OtherFloors | None = None  # free now on other floors (signage/core/building.py)
    announcer: Announcer | None = None  # banners and emergencies on screens
    alerts: AlertWatcher | None = None  # "down for N minutes" (signage/actions/alerts.py)
    cluster: Any = None  # signage.fleet.Cluster when SIGNAGE_REDIS_URL is set
    state: dict[str, Any] = field(default_factory=dict)
    shutting_down: bool = False
    ready: bool = False  # set once the app is built; /readyz answers 503 until then
    metrics_registry: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _token_displays: dict[str, str | None] = field(default_factory=dict, repr=False)

    # -- URLs a display is reached at ------------------------------------------------------
    def public_url(self) -> str:
        return (self.config.get("SIGNAGE_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")

    def kiosk_url(self, display: Display) -> str:
        """The page a screen opens; carries the display's revocable credential."""
        return f"{self.public_url()}/kiosk/{self.store.credential(display)}"

    def socket_url(self, display: Display) -> str:
        """The kiosk socket; works on its own (the URL authenticates)."""
        parts = urlsplit(self.public_url())
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path}/ws/kiosk/{self.store.credential(display)}"

    def state_url(self, display: Display) -> str:
        """The HTTP fallback: the same state as JSON."""
        return f"{self.public_url()}/api/kiosk/{self.store.credential(display)}/state"

    def token_display_for_floor(self, floor_id: str) -> str | None:
        """The Density display id whose token a floor's feed uses (None: organisation token).

        While the database is unreachable the answer last read is used: a feed reconnecting
        during a PostgreSQL outage must not die for want of it.
        """
        try:
            displays = self.store.list_displays(floor_id)
        except StoreUnavailable:
            return self._token_displays.get(floor_id)
        chosen = next((d.density_display_id for d in displays if d.density_display_id), None)
        self._token_displays[floor_id] = chosen
        return chosen

    def token_expiry(self, key: str) -> float | None:
        """Seconds left on the cached Density token for a Density display id or "org" (None:
        none cached), so that views and use cases never reach the client themselves."""
        return self.client.token_expiry(key)

    def close(self) -> None:
        """Stop feeds and threads, close the client (tests and shutdown)."""
        if self.building is not None:
            self.building.stop()
        self.directory.stop()
        for service in (self.announcer, self.alerts):
            if service is not None:
                service.stop()
        self.feeds.stop()
        if self.cluster is not None:
            self.cluster.close()
        self.hub.stop()
        self.client.close()
        self.store.close()


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["signage"]


def secret_key_path(config: dict[str, Any]) -> Path:
    """Where a generated secret key is kept: beside the SQLite database it signs for (each
    database its own key, whatever the working directory), else in the instance folder."""
    database = str(config.get("SIGNAGE_DATABASE") or "")
    if database and database != ":memory:" and not is_postgres(database):
        return Path(os.path.abspath(database)).parent / "secret_key"
    return Path(config.get("SIGNAGE_INSTANCE") or settings.instance_dir()) / "secret_key"


def _legacy_secret_keys() -> list[Path]:
    """Where versions before the one-instance-folder change kept a generated key: Flask's
    default instance folder, inside the checkout or the virtualenv."""
    import sys

    return [
        PACKAGE_ROOT.parent / "instance" / "secret_key",
        Path(sys.prefix) / "var" / "signage-instance" / "secret_key",
    ]


def _existing_database(database: str) -> bool:
    """Whether SIGNAGE_DATABASE holds an installation already: an SQLite file, or a PostgreSQL
    database with the schema in it (a server that cannot be reached counts as new: opening the
    store then says why)."""
    if not is_postgres(database):
        return Path(database).is_file()
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(database.strip(), connect_timeout=5) as conn:
            if conn.execute("SELECT to_regclass('signage_schema') IS NOT NULL").fetchone()[0]:
                row = conn.execute("SELECT max(version) FROM signage_schema").fetchone()
                return bool(row and row[0])
    except psycopg.Error as exc:
        logger.debug("could not look into the database for a schema: %s", type(exc).__name__)
    return False


def _secret_key(config: dict[str, Any]) -> str:
    """The configured secret key, else one generated once and kept beside the database."""
    configured = config.get("SIGNAGE_SECRET_KEY") or ""
    if configured:
        return configured
    path = secret_key_path(config)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    if _existing_database(str(config.get("SIGNAGE_DATABASE") or "")):
        # An existing installation whose key an older version kept in the package's folder:
        # adopt that key, or every paired screen's credential would change with the upgrade.
        # A new database never adopts one: unrelated servers must not share a key.
        legacy = next((p for p in _legacy_secret_keys() if p != path and p.is_file()), None)
        if legacy is not None:
            key = legacy.read_text().strip() or key
            logger.warning("secret key moved from %s to %s, beside the database", legacy, path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def build_services(config: dict[str, Any], instance_path: Path | None = None) -> Services:
    """Create the store, client, directory, hub and feed manager from settings."""
    if instance_path is not None:
        config.setdefault("SIGNAGE_INSTANCE", str(instance_path))
    secret = _secret_key(config)
    config["SIGNAGE_SECRET_KEY"] = secret
    store = Store(config["SIGNAGE_DATABASE"], secret)
    store.migrate()
    cluster = None
    if config["SIGNAGE_REDIS_URL"]:
        # A fleet: leases, the update stream, tokens and the rate budget go through Redis.
        try:
            from signage.fleet import Cluster
        except ImportError as exc:
            raise RuntimeError(
                "SIGNAGE_REDIS_URL needs the redis package: pip install 'signage[scale]'"
            ) from exc
        cluster = Cluster.from_config(config)
    limiter = RateLimiter(
        rate=config["SIGNAGE_UPSTREAM_RATE"],
        burst=config["SIGNAGE_UPSTREAM_BURST"],
        shared=cluster.budget if cluster else None,
    )
    client = DensityClient(
        config["DENSITY_API_URL"],
        api_token=config["DENSITY_API_TOKEN"] or None,
        client_id=config["DENSITY_CLIENT_ID"] or None,
        client_secret=config["DENSITY_CLIENT_SECRET"] or None,
        audience=config["DENSITY_OAUTH_AUDIENCE"] or None,
        token_duration=config["DENSITY_TOKEN_DURATION"] or None,
        limiter=limiter,
        timeout=httpx.Timeout(
            config["SIGNAGE_HTTP_TIMEOUT"], connect=min(5.0, config["SIGNAGE_HTTP_TIMEOUT"])
        ),
    )
    if cluster is not None:
        client.tokens.shared = cluster.tokens
    hub = (cluster.hub_factory if cluster else Hub)(
        queue_size=config["SIGNAGE_KIOSK_QUEUE"], send_timeout=config["SIGNAGE_KIOSK_SEND_TIMEOUT"]
    )
    # The tree a past run kept in the store is read now; Density is asked only by the
    # directory's own thread, started by `serve` and by the first request (after any fork).
    directory = SpaceDirectory(client, ttl=config["SIGNAGE_SPACES_TTL"], store=store)
    epoch = secrets.token_hex(4)
    svc_holder: dict[str, Services] = {}
    feeds = FeedManager(
        client,
        directory,
        FeedSettings.from_config(config),
        hub.publish,
        lambda floor_id: svc_holder["svc"].token_display_for_floor(floor_id),
        epoch,
        feed_factory=cluster.feed_factory if cluster else None,
    )
    svc = Services(config, store, client, directory, hub, feeds, epoch)
    svc.cluster = cluster
    svc_holder["svc"] = svc
    svc.announcer = Announcer(store, hub, epoch)
    if cluster is not None:  # an announcement made on one process shows on every process's kiosks
        svc.announcer.on_change = lambda: cluster.nudge("announcements")
        cluster.on_nudge["announcements"] = svc.announcer.push
    svc.alerts = AlertWatcher(
        store,
        hub,
        feeds,
        webhook=config["SIGNAGE_ALERT_WEBHOOK"],
        after=config["SIGNAGE_ALERT_AFTER"] * 60,
        interval=config["SIGNAGE_ALERT_INTERVAL"],
        fleet=cluster.alerts() if cluster is not None else None,
    )
    from signage.core import floormap

    svc.building = OtherFloors(
        directory,
        feeds,
        hub,
        floormap.GROUP_ORDER,
        floormap.group_of,
        emergencies=EmergencyFloors(store),
    )
    feeds.listeners.append(svc.building.on_publish)
    directory.listeners.append(lambda _tree: _respace(svc))
    from signage.web.metrics import create_registry

    svc.metrics_registry, fanout = create_registry(svc)
    hub.on_fanout = fanout.observe
    return svc


def _respace(svc: Services) -> None:
    """The space tree changed: rebuild the feeds it changes, and have their kiosks reconnect."""
    for floor_id in svc.feeds.respace():
        for sub in svc.hub.subscribers(floor_id):
            sub.close(1012, "the floor's spaces changed")


def init_app(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Layer the settings onto the app, build its services and register its routes."""
    app.template_folder = str(settings.asset_dir("templates"))
    app.static_folder = str(settings.asset_dir("static"))
    config = settings.load(app.instance_path, overrides=test_config)
    app.config.update(config)
    app.testing = bool(config.get("TESTING", False))
    svc = build_services(config, Path(app.instance_path))
    if config["SIGNAGE_PROXY_COUNT"] == 0:
        app.before_request(_warn_forwarded_without_proxy_count)
    if config["SIGNAGE_PROXY_COUNT"] > 0:
        # Behind nginx: the client's address (pairing and login limits), scheme (Secure
        # cookies) and host (the socket origin check) come from the proxy's headers.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = config["SIGNAGE_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.config["SIGNAGE_SECRET_KEY"] = config["SIGNAGE_SECRET_KEY"]
    app.config["SECRET_KEY"] = config["SIGNAGE_SECRET_KEY"]
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": config["SIGNAGE_KIOSK_PING_INTERVAL"],
        "max_message_size": config["SIGNAGE_KIOSK_MAX_MESSAGE"],
    }
    app.extensions["signage"] = svc
    logging.getLogger("signage").setLevel(config["SIGNAGE_LOG_LEVEL"].upper())

    # editor adds the floor editor's routes to admin.bp, so it is imported before registering.
    from signage.web import admin, api, auth, editor, kiosk, ops, pairing, security, sockets  # noqa: F401

    # Before any route is added: ids in URLs stop at 64 bits (a longer one is a 404, not a 500).
    app.url_map.converters["int"] = ops.IdConverter
    app.register_blueprint(kiosk.bp)
    app.register_blueprint(ops.bp)
    auth.init_app(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pairing.bp)
    sockets.init_app(app)
    # The alert watcher starts with the first request (threads must start after gunicorn forks).
    app.before_request(svc.alerts.ensure_started)
    # The space tree refreshes in its own thread (also restarted after a fork); no request
    # ever waits for it. `serve` starts it before the first request too.
    app.before_request(svc.directory.start)
    security.init_app(app)
    app.register_error_handler(StoreUnavailable, _database_unavailable)
    svc.ready = True


def _warn_forwarded_without_proxy_count() -> None:
    """A proxy on this machine forwards requests, but SIGNAGE_PROXY_COUNT=0 ignores its headers:
    every client is 127.0.0.1, so the sign-in and pairing limits hit everyone at once. Said
    once per process, on the first such request."""
    from flask import request

    svc = services()
    if svc.state.get("warned_forwarded") or "HTTP_X_FORWARDED_FOR" not in request.environ:
        return
    import ipaddress

    try:
        loopback = ipaddress.ip_address(request.environ.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        svc.state["warned_forwarded"] = True
        logger.warning(
            "requests from %s carry X-Forwarded-For, but SIGNAGE_PROXY_COUNT is 0: every client"
            " looks like the proxy, and sign-in and pairing limits hit all of them at once. Set"
            " SIGNAGE_PROXY_COUNT=1 behind nginx.",
            request.environ.get("REMOTE_ADDR"),
        )


def _database_unavailable(_exc: StoreUnavailable) -> Any:
    """PostgreSQL down: a 503 that says so and when to retry, not a 500 (kiosk sockets and
    feeds keep running on what they have)."""
    from flask import jsonify, request

    message = "the database cannot be reached right now; try again in a moment"
    if request.path.startswith("/api/"):
        response = jsonify(error="database_unavailable", message=message)
    else:
        response = current_app.response_class(message, mimetype="text/plain")
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response
