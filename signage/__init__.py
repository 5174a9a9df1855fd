"""signage: a self-hosted wayfinding display server for office lobbies, live from Density."""

from __future__ import annotations

from typing import Any

from flask import Flask

__version__ = "0.1.0"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app: settings, storage, the Density client, feeds, hub and routes."""
    from signage.config import instance_dir
    from signage.services import init_app

    # The instance folder is SIGNAGE_INSTANCE or ./instance, never Flask's default (inside the
    # installed package): every command must find the same config, database and key.
    app = Flask(
        __name__,
        instance_path=str(instance_dir(overrides=test_config)),
        instance_relative_config=True,
    )
    init_app(app, test_config)
    return app
