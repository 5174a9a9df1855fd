"""The composition root: every shared object of the server, built once from the settings.

`build(config, instance_path)` makes the store, the Density client, the space directory, the
kiosk hub, the floor feeds and the services around them, wires each to what it needs through
its constructor, and returns them as one `Services`. No Flask here: the web layer (signage/web/)
puts the result in `app.extensions["signage"]`, and the CLI uses it as it is.

No thread starts here: a floor feed starts when its first kiosk arrives, so building the
services (in tests, in the CLI, before gunicorn forks) costs nothing but opening the database.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from signage import config as settings
from signage.actions.alerts import AlertWatcher
from signage.actions.announcements import Announcer
from signage.actions.audit import AuditPruner
from signage.calendars import Source
from signage.core.bookings import Bookings
from signage.core.building import EmergencyFloors, OtherFloors
from signage.core.clock import SYSTEM_CLOCK, Clock
from signage.core.directory import SpaceDirectory
from signage.core.feeds import FeedManager, FeedSettings
from signage.core.hub import Hub
from signage.core.protocol import CLOSE_RESTART
from signage.density.client import DensityClient
from signage.density.ratelimit import RateLimiter
from signage.store import Display, Store
from signage.store.calendars import CalendarSources
from signage.store.db import StoreUnavailable, is_postgres

if TYPE_CHECKING:
    from signage.fleet import Cluster

logger = logging.getLogger(__name__)

# The package's own folder: older versions kept a generated secret key beside it.
PACKAGE_ROOT = Path(__file__).resolve().parent


class FloorTokens:
    """Which Density display's token opens a floor's feed (None: the organisation's token).

    Asked by the feed manager each time a floor's feed (re)connects. While the database is
    unreachable the answer last read is used: a feed reconnecting during a PostgreSQL outage
    must not die for want of it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._last: dict[str, str | None] = {}

    def display_for(self, floor_id: str) -> str | None:
        """The Density display id of the first display on the floor that names one."""
        try:
            displays = self.store.list_displays(floor_id)
        except StoreUnavailable:
            return self._last.get(floor_id)
        chosen = next((d.density_display_id for d in displays if d.density_display_id), None)
        self._last[floor_id] = chosen
        return chosen


@dataclass
class Services:
    """Everything a request handler or a CLI command needs, in one place."""

    config: dict[str, Any]
    store: Store
    client: DensityClient
    directory: SpaceDirectory
    hub: Hub
    feeds: FeedManager
    floor_tokens: FloorTokens
    building: OtherFloors  # free now on other floors
    announcer: Announcer  # banners and emergencies on screens
    alerts: AlertWatcher  # "down for N minutes"
    epoch: str
    cluster: Cluster | None = None  # a fleet sharing floors through Redis (SIGNAGE_REDIS_URL)
    calendars: CalendarSources | None = None  # each room's calendar link (a secret)
    bookings: Bookings | None = None  # the calendars, fetched in the background
    audit: AuditPruner | None = None  # forgets audit entries past SIGNAGE_AUDIT_DAYS
    state: dict[str, Any] = field(default_factory=dict)
    shutting_down: bool = False
    ready: bool = False  # set once the app is built; /readyz answers 503 until then
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- URLs a display is reached at ------------------------------------------------------
    def public_url(self) -> str:
        """The server's address as kiosks and phones reach it (SIGNAGE_PUBLIC_URL)."""
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
        """The Density display id whose token a floor's feed uses (None: organisation token)."""
        return self.floor_tokens.display_for(floor_id)

    def token_expiry(self, key: str) -> float | None:
        """Seconds left on the cached Density token for a Density display id or "org" (None:
        none cached), so that views and use cases never reach the client themselves."""
        return self.client.token_expiry(key)

    def close(self) -> None:
        """Stop feeds and threads, close the client (tests and shutdown)."""
        self.building.stop()
        self.directory.stop()
        self.announcer.stop()
        self.alerts.stop()
        if self.audit is not None:
            self.audit.stop()
        if self.bookings is not None:
            self.bookings.stop()
        self.feeds.stop()
        if self.cluster is not None:
            self.cluster.close()
        self.hub.stop()
        self.client.close()
        self.store.close()


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
        import psycopg  # optional: only a PostgreSQL installation has it (signage[postgres])
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


def build(
    config: dict[str, Any], instance_path: Path | None = None, clock: Clock = SYSTEM_CLOCK
) -> Services:
    """Create the store, client, directory, hub, feeds and the services around them.

    `clock` is the time core and the Density client read (a `FakeClock` in outage tests).
    """
    if instance_path is not None:
        config.setdefault("SIGNAGE_INSTANCE", str(instance_path))
    secret = _secret_key(config)
    config["SIGNAGE_SECRET_KEY"] = secret
    store = Store(config["SIGNAGE_DATABASE"], secret)
    store.migrate()
    cluster = _cluster(config)
    limiter = RateLimiter(
        rate=config["SIGNAGE_UPSTREAM_RATE"],
        burst=config["SIGNAGE_UPSTREAM_BURST"],
        clock=clock.monotonic,
        sleep=clock.sleep,
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
        shared_tokens=cluster.tokens if cluster else None,
        clock=clock.monotonic,
        sleep=clock.sleep,
    )
    hub = (cluster.hub_factory if cluster else Hub)(
        queue_size=config["SIGNAGE_KIOSK_QUEUE"], send_timeout=config["SIGNAGE_KIOSK_SEND_TIMEOUT"]
    )
    # The tree a past run kept in the store is read now; Density is asked only by the
    # directory's own thread, started by `serve` and by the first request (after any fork).
    directory = SpaceDirectory(
        client,
        ttl=config["SIGNAGE_SPACES_TTL"],
        store=store,
        floor_order=store.floor_orders,
        clock=clock,
    )
    epoch = secrets.token_hex(4)
    floor_tokens = FloorTokens(store)
    calendars = CalendarSources(store, secret)
    bookings = Bookings(
        lambda: calendar_sources(calendars),
        refresh=config["SIGNAGE_CALENDAR_REFRESH"],
        timeout=config["SIGNAGE_HTTP_TIMEOUT"],
        zone_of=directory.time_zone,
        clock=clock,
        # `feeds` is bound below, before the worker's thread can start.
        wanted=lambda space_id: fetches_here(cluster, feeds, directory, space_id),
    )
    feeds = FeedManager(
        client,
        directory,
        replace(FeedSettings.from_config(config, clock), bookings=bookings.room_fields),
        hub.publish,
        floor_tokens.display_for,
        epoch,
        feed_factory=cluster.feed_factory if cluster else None,
    )
    announcer = Announcer(store, hub, epoch)
    if cluster is not None:  # an announcement made on one process shows on every process's kiosks
        announcer.on_change = lambda: cluster.nudge("announcements")
        cluster.on_nudge["announcements"] = announcer.push
    alerts = AlertWatcher(
        store,
        hub,
        feeds,
        webhook=config["SIGNAGE_ALERT_WEBHOOK"],
        after=config["SIGNAGE_ALERT_AFTER"] * 60,
        interval=config["SIGNAGE_ALERT_INTERVAL"],
        clock=clock.monotonic,  # it ages the feeds' own start times
        wall=clock.time,  # first and last screens' stamps, which fleet health ages on it
        fleet=cluster.alerts() if cluster is not None else None,
    )
    building = OtherFloors(directory, feeds, hub, emergencies=EmergencyFloors(store))
    feeds.listeners.append(building.on_publish)
    directory.listeners.append(lambda _tree: _respace(feeds, hub))
    return Services(
        config=config,
        store=store,
        client=client,
        directory=directory,
        hub=hub,
        feeds=feeds,
        floor_tokens=floor_tokens,
        building=building,
        announcer=announcer,
        alerts=alerts,
        epoch=epoch,
        cluster=cluster,
        calendars=calendars,
        bookings=bookings,
        audit=AuditPruner(store, config["SIGNAGE_AUDIT_DAYS"]),
    )


def calendar_sources(calendars: CalendarSources) -> dict[str, Source]:
    """The store's calendar sources as the bookings worker reads them; a seal this server's key
    cannot open becomes kind "unreadable", which fails with a message saying to set it again."""
    return {
        space_id: Source(row.kind, row.url, row.username, row.password)
        if row.readable
        else Source("unreadable")
        for space_id, row in calendars.sources().items()
    }


def room_floor(directory: SpaceDirectory, space_id: str) -> str | None:
    """The id of the floor a room is on (its nearest floor ancestor), or None."""
    ancestors = directory.tree().ancestors(space_id)
    return next((a.id for a in ancestors if a.space_type == "floor"), None)


def fetches_here(
    cluster: Cluster | None, feeds: FeedManager, directory: SpaceDirectory, space_id: str
) -> bool:
    """Whether this process fetches a room's calendar: always on its own; in a Redis fleet only
    while it holds the lease of the room's floor (its feed builds the rooms every process
    mirrors, so one fetch per room serves the fleet)."""
    if cluster is None:
        return True
    floor_id = room_floor(directory, space_id)
    feed = feeds.get(floor_id) if floor_id else None
    return bool(getattr(feed, "holding", False))


def _cluster(config: dict[str, Any]) -> Cluster | None:
    """The Redis link of a fleet (leases, the update stream, tokens, the rate budget), or None
    for a server on its own (SIGNAGE_REDIS_URL unset)."""
    if not config["SIGNAGE_REDIS_URL"]:
        return None
    try:
        from signage.fleet import Cluster  # here: redis is optional (signage[scale]), fleets only
    except ImportError as exc:
        raise RuntimeError(
            "SIGNAGE_REDIS_URL needs the redis package: pip install 'signage[scale]'"
        ) from exc
    return Cluster.from_config(config)


def _respace(feeds: FeedManager, hub: Hub) -> None:
    """The space tree changed: rebuild the feeds it changes, and have their kiosks reconnect."""
    for floor_id in feeds.respace():
        for sub in hub.subscribers(floor_id):
            sub.close(CLOSE_RESTART, "the floor's spaces changed")
