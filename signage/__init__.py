"""signage: a self-hosted wayfinding display server for office lobbies, live from Density."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signage import config
from signage.config import __version__

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["__version__", "create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app: settings, then the services, then the web layer on top of them."""
    # Imported here, not above: `import signage.density` (the client on its own, the simulator)
    # must not load Flask and every layer of the server for nothing.
    from flask import Flask  # deferred: see above

    from signage import services, web  # deferred: see above

    # The instance folder is SIGNAGE_INSTANCE or ./instance, never Flask's default (inside the
    # installed package): every command must find the same config, database and key.
    instance = config.instance_dir(overrides=test_config)
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    settings = config.load(app.instance_path, overrides=test_config)
    svc = services.build(settings, instance)
    web.init_app(app, svc)
    return app
