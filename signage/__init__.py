"""signage: a self-hosted wayfinding display server for office lobbies, live from Density."""

from __future__ import annotations

from typing import Any

from flask import Flask

__version__ = "0.1.0"


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app: settings, storage, the Density client, feeds, hub and routes."""
    from signage.services import init_app

    app = Flask(__name__, instance_relative_config=True)
    init_app(app, test_config)
    return app
