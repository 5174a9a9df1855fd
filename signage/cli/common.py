"""What several `signage` commands share: logging set-up, the app, the public address."""

from __future__ import annotations

import logging
import socket
from typing import Any

from flask import Flask

from signage import config as settings
from signage import create_app, logs

logger = logging.getLogger(__name__)


def configure_logging(values: dict[str, Any] | None = None) -> None:
    """Log to stderr, as text or JSON, with every configured secret masked."""
    values = values or settings.load(settings.instance_dir())
    logs.configure(
        values["SIGNAGE_LOG_LEVEL"], values["SIGNAGE_LOG_FORMAT"], settings.secret_values(values)
    )


def make_app(**overrides: Any) -> Flask:
    """The app as `serve` builds it, with these settings on top (none: the configured ones)."""
    return create_app(overrides or None)


def default_public_url(host: str, port: int) -> str:
    """The address `serve` listens on, as a kiosk elsewhere on the network would reach it."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn() or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
