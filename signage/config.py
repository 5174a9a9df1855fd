"""Settings: defaults, then an instance config file, then the environment, then test overrides.

Every setting the app reads is declared once in SETTINGS, with its type and a description; the
README's settings table is checked against this list by a test, so a new setting cannot ship
undocumented.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

# The package's version, as pyproject.toml gives it. Here rather than in signage/__init__.py so
# any layer can read it without importing the app factory (and through it every layer).
__version__ = "0.1.0"

DENSITY_PRODUCTION_URL = "https://api.density.io"

# SIGNAGE_DATABASE: a PostgreSQL URL, else the path of an SQLite file.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(url: str) -> bool:
    """Whether SIGNAGE_DATABASE names a PostgreSQL database rather than an SQLite file."""
    return url.strip().lower().startswith(POSTGRES_SCHEMES)


def url_passwords(url: str) -> list[str]:
    """The password in a postgresql:// URL as written and percent-decoded (for redaction)."""
    if not is_postgres(url):
        return []
    try:
        password = urlsplit(url.strip()).password
    except ValueError:
        return []
    return list(dict.fromkeys([password, unquote(password)])) if password else []


@dataclass(frozen=True)
class Setting:
    """One setting: its name (also its environment variable), type, default and meaning."""

    name: str
    type: type
    default: Any
    help: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    # Density credentials: the names a Density user already knows.
    Setting("DENSITY_API_URL", str, DENSITY_PRODUCTION_URL, "Base URL of Density's API."),
    Setting("DENSITY_CLIENT_ID", str, "", "OAuth client id (for display-scoped tokens)."),
    Setting(
        "DENSITY_CLIENT_SECRET", str, "", "OAuth client secret. Never leaves the server.", True
    ),
    Setting(
        "DENSITY_API_TOKEN",
        str,
        "",
        "Static API token (`tok_…`) for organisation calls; OAuth is used when unset.",
        True,
    ),
    Setting(
        "DENSITY_OAUTH_AUDIENCE",
        str,
        "",
        "`audience` sent with the OAuth token request (Density's default when unset).",
    ),
    Setting(
        "DENSITY_TOKEN_DURATION",
        int,
        0,
        "Seconds an OAuth token should live (`token_duration`); 0: Density's default. A token"
        " answer without `expires_in` is trusted for 300 s, or this if shorter.",
    ),
    # The app's own settings.
    Setting(
        "SIGNAGE_INSTANCE",
        str,
        "",
        "Instance folder: `signage.toml`, the SQLite database, the generated secret key, plans"
        " (default: `instance/` in the working directory). Environment only.",
    ),
    Setting(
        "SIGNAGE_DATABASE",
        str,
        "",
        "SQLite file for displays and settings (default: `instance/signage.sqlite3`), or a"
        " `postgresql://user:password@host/db` URL to share them between hosts.",
    ),
    Setting(
        "SIGNAGE_SECRET_KEY",
        str,
        "",
        "Signs session cookies and kiosk credentials. Generated when unset and kept beside the"
        " SQLite database (`secret_key`; in the instance folder with PostgreSQL).",
        True,
    ),
    Setting(
        "SIGNAGE_PUBLIC_URL",
        str,
        "",
        "URL kiosks reach the server at (default: the address `serve` listens on).",
    ),
    Setting(
        "SIGNAGE_PHONE_URL",
        str,
        "",
        "Base URL phones open from a kiosk's QR code (guest Wi-Fi); default: the public URL.",
    ),
    Setting(
        "SIGNAGE_PROXY_COUNT",
        int,
        0,
        "Reverse proxies in front (nginx: 1): trust that many X-Forwarded-For/Proto/Host.",
    ),
    Setting(
        "SIGNAGE_ALLOWED_ORIGINS",
        str,
        "",
        "Extra origins (comma-separated) allowed to open kiosk sockets.",
    ),
    Setting("SIGNAGE_LOG_LEVEL", str, "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."),
    Setting(
        "SIGNAGE_TEST_MODE",
        bool,
        False,
        "Honour test knobs in kiosk and phone URLs (`no_contact_s`, `clock`, `tz`). Only with a"
        " loopback DENSITY_API_URL (the simulator): `serve` refuses it with Density's real"
        " API. `demo` turns it on.",
    ),
    Setting(
        "SIGNAGE_LOG_FORMAT", str, "text", "Log lines as `text` or `json` (one object a line)."
    ),
    Setting(
        "SIGNAGE_PLANS_DIR",
        str,
        "",
        "Folder for uploaded floor plans (default: `plans/` beside the database).",
    ),
    Setting(
        "SIGNAGE_PLAN_MAX_BYTES",
        int,
        5_000_000,
        "Largest floor plan upload accepted, in bytes.",
    ),
    Setting(
        "SIGNAGE_METRICS_TOKEN",
        str,
        "",
        "When set, `/metrics` needs `Authorization: Bearer <token>`.",
        True,
    ),
    # Upstream budget and timeouts.
    Setting(
        "SIGNAGE_UPSTREAM_RATE",
        float,
        12.0,
        "Requests per second to Density for the whole process (Density allows 15).",
    ),
    Setting(
        "SIGNAGE_UPSTREAM_BURST",
        int,
        50,
        "Burst allowance of the upstream rate limiter (Density allows 100).",
    ),
    Setting("SIGNAGE_HTTP_TIMEOUT", float, 10.0, "Timeout in seconds for each call to Density."),
    # Floor feed intervals (seconds). Settings so that tests run in seconds, not minutes.
    Setting("SIGNAGE_PING_INTERVAL", float, 10.0, "Ping the upstream socket this often."),
    Setting("SIGNAGE_PING_TIMEOUT", float, 5.0, "An upstream ping unanswered this long is dead."),
    Setting(
        "SIGNAGE_SILENCE_TIMEOUT",
        float,
        90.0,
        "No upstream message for this long means a dead socket (Density refreshes each minute).",
    ),
    Setting(
        "SIGNAGE_SNAPSHOT_WAIT",
        float,
        3.0,
        "Wait this long for a `refresh` after connecting before taking a REST snapshot.",
    ),
    Setting("SIGNAGE_POLL_INTERVAL", float, 15.0, "Presence-health poll period while on fallback."),
    Setting(
        "SIGNAGE_STALE_AFTER",
        float,
        120.0,
        "Nothing heard from Density for this long: the floor is stale, rooms unknown.",
    ),
    Setting("SIGNAGE_BACKOFF_BASE", float, 1.0, "First reconnect delay for the upstream socket."),
    Setting("SIGNAGE_BACKOFF_MAX", float, 60.0, "Longest reconnect delay for the upstream socket."),
    Setting(
        "SIGNAGE_SENSOR_HEALTH_INTERVAL",
        float,
        300.0,
        "Refresh per-sensor health from Density this often.",
    ),
    Setting(
        "SIGNAGE_FEED_LINGER",
        float,
        60.0,
        "Keep a floor's feed running this long after its last kiosk leaves.",
    ),
    # Kiosk sockets.
    Setting("SIGNAGE_HEARTBEAT_INTERVAL", float, 15.0, "Server heartbeat to kiosks, in seconds."),
    Setting(
        "SIGNAGE_KIOSK_PING_INTERVAL",
        float,
        25.0,
        "WebSocket ping to kiosks, keeps proxies from cutting idle sockets.",
    ),
    Setting("SIGNAGE_KIOSK_QUEUE", int, 64, "Messages queued per kiosk before it is evicted."),
    Setting(
        "SIGNAGE_KIOSK_SEND_TIMEOUT",
        float,
        5.0,
        "A send to a kiosk stuck this long is cut.",
    ),
    Setting(
        "SIGNAGE_KIOSK_MAX_MESSAGE",
        int,
        4096,
        "Largest message a kiosk may send, in bytes.",
    ),
    Setting(
        "SIGNAGE_KIOSK_MAX_RATE",
        float,
        5.0,
        "Messages per second a kiosk may send on average before it is closed.",
    ),
    Setting(
        "SIGNAGE_KIOSK_MAX_PER_DISPLAY",
        int,
        100,
        "Kiosk sockets one display's credential may hold at once, per server process (a leaked"
        " kiosk URL cannot take every slot).",
    ),
    Setting(
        "SIGNAGE_KIOSK_MAX_PER_ADDRESS",
        int,
        500,
        "Kiosk sockets one client address may hold at once, per server process: a building's"
        " screens behind one NAT address must fit.",
    ),
    Setting(
        "SIGNAGE_WORKER_CLASS",
        str,
        "gthread",
        "gunicorn worker for `serve`: gthread, or gevent (needs the gevent package).",
    ),
    Setting(
        "SIGNAGE_MAX_KIOSKS",
        int,
        1200,
        "Kiosk sockets one server process is sized for (threads and connections).",
    ),
    # Fan-out through Redis (signage/fleet/, docs/scale-out.md).
    Setting(
        "SIGNAGE_REDIS_URL",
        str,
        "",
        "`redis://host:6379/0`: run several processes or hosts as one fleet (docs/scale-out.md).",
        True,
    ),
    Setting(
        "SIGNAGE_LEASE_TTL",
        float,
        5.0,
        "With Redis: a floor's upstream socket moves to another process this long after its"
        " holder stops renewing.",
    ),
    Setting(
        "SIGNAGE_LEASE_RENEW",
        float,
        1.5,
        "With Redis: renew held leases (and look for free ones) this often, in seconds.",
    ),
    # "Down for N minutes" alerts (signage/actions/alerts.py).
    Setting(
        "SIGNAGE_ALERT_WEBHOOK",
        str,
        "",
        "URL that gets a JSON POST when a display or floor feed goes down and recovers. Secret.",
        True,
    ),
    Setting(
        "SIGNAGE_ALERT_AFTER",
        float,
        10.0,
        "Minutes a display has no screen connected (or a feed is not live) before it is down.",
    ),
    Setting(
        "SIGNAGE_ALERT_INTERVAL",
        float,
        15.0,
        "Seconds between two looks for down displays and feeds.",
    ),
    Setting(
        "SIGNAGE_SPACES_TTL",
        float,
        600.0,
        "Seconds the space tree is kept before it is fetched again in the background.",
    ),
    Setting(
        "SIGNAGE_CALENDAR_REFRESH",
        float,
        300.0,
        "Seconds between two fetches of each room's calendar (in the background); bookings older"
        " than this plus a margin are not shown.",
    ),
    # The audit trail (signage/actions/audit.py).
    Setting(
        "SIGNAGE_AUDIT_DAYS",
        float,
        365.0,
        "Days the audit trail keeps each change (pruned in the background); 0 keeps them all.",
    ),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
CONFIG_FILE_NAME = "signage.toml"


def _coerce(setting: Setting, value: Any) -> Any:
    """Turn a value from a file or the environment into the setting's type, or say why not."""
    if setting.type is bool:
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in {"1", "true", "yes", "on"}
    try:
        return setting.type(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{setting.name}: expected {setting.type.__name__}, got {value!r}"
        ) from exc


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` names this machine (the built-in simulator), not a real Density."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name may resolve anywhere: treat it as production


def mode_conflict(config: Mapping[str, Any]) -> str | None:
    """Why SIGNAGE_TEST_MODE may not be on with these settings, or None when it may.

    Test knobs let a URL keep rooms "free" after the server is gone; that is a test's tool,
    and with Density's real API behind it, a lie a kiosk could be made to tell.
    """
    if not config.get("SIGNAGE_TEST_MODE"):
        return None
    url = str(config.get("DENSITY_API_URL") or "")
    if is_loopback_url(url):
        return None
    return (
        f"SIGNAGE_TEST_MODE is on while DENSITY_API_URL is {url or 'unset'}: test knobs"
        " (no_contact_s, clock, tz in kiosk URLs) are for the simulator on this machine only."
        " Unset SIGNAGE_TEST_MODE, or point DENSITY_API_URL at a loopback simulator."
    )


def knobs_allowed(config: Mapping[str, Any]) -> bool:
    """Whether kiosk and phone pages honour test knobs: test mode on, and no real Density."""
    return bool(config.get("SIGNAGE_TEST_MODE")) and mode_conflict(config) is None


def defaults() -> dict[str, Any]:
    """Every setting at its default."""
    return {s.name: s.default for s in SETTINGS}


def instance_dir(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Path:
    """The instance folder every command uses: SIGNAGE_INSTANCE, else `./instance`.

    Never the installed package's folder: that is read-only under the systemd unit and shared by
    every server run from the same install. `serve`, `demo`, `backup`, `restore` and the other
    commands all resolve it here, so they read and write the same files.
    """
    environ = os.environ if environ is None else environ
    configured = (overrides or {}).get("SIGNAGE_INSTANCE") or environ.get("SIGNAGE_INSTANCE")
    folder = Path(configured).expanduser() if configured else Path.cwd() / "instance"
    return Path(os.path.abspath(folder))


def asset_dir(name: str) -> Path:
    """`static` or `templates`: inside the package from a wheel, else beside it (a checkout)."""
    # The wheel maps the top-level folders into the package (pyproject.toml); a checkout and an
    # editable install import signage/ from the repository, where they sit beside it.
    package = Path(__file__).resolve().parent
    inside = package / name
    return inside if inside.is_dir() else package.parent / name


def load(
    instance_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Layer defaults, `<instance>/signage.toml` (or `SIGNAGE_CONFIG`), environment, overrides."""
    environ = os.environ if environ is None else environ
    if instance_path is None:
        instance_path = instance_dir(environ, overrides)
    values = defaults()

    file = Path(environ.get("SIGNAGE_CONFIG") or Path(instance_path) / CONFIG_FILE_NAME)
    if file.is_file():
        with file.open("rb") as fh:
            from_file = tomllib.load(fh)
        for key, value in from_file.items():
            setting = SETTINGS_BY_NAME.get(key.upper())
            if setting is None:
                logger.warning("config file %s: unknown setting %s ignored", file, key)
                continue
            values[setting.name] = _coerce(setting, value)

    for setting in SETTINGS:
        if setting.name in environ:
            values[setting.name] = _coerce(setting, environ[setting.name])

    for key, value in (overrides or {}).items():
        setting = SETTINGS_BY_NAME.get(key)
        values[key] = _coerce(setting, value) if setting else value

    # The folder actually used (a file cannot move the folder it is read from).
    values["SIGNAGE_INSTANCE"] = os.path.abspath(instance_path)
    if not values["SIGNAGE_DATABASE"]:
        values["SIGNAGE_DATABASE"] = str(Path(instance_path) / "signage.sqlite3")
    return values


def allowed_origins(config: Mapping[str, Any]) -> set[str]:
    """Origins allowed to open kiosk sockets besides the server's own address."""
    extra = {o.strip().rstrip("/") for o in config.get("SIGNAGE_ALLOWED_ORIGINS", "").split(",")}
    public = config.get("SIGNAGE_PUBLIC_URL", "").rstrip("/")
    return {o for o in extra | {public} if o}


def secret_values(config: Mapping[str, Any]) -> list[str]:
    """The configured values of secret settings, for log redaction."""
    values = [str(config[s.name]) for s in SETTINGS if s.secret and config.get(s.name)]
    # A PostgreSQL URL is not a secret, but the password in it is.
    return [*values, *url_passwords(str(config.get("SIGNAGE_DATABASE") or ""))]
