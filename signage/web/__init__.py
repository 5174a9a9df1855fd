"""The web layer: the Flask app's settings, every blueprint and the hooks around them.

`init_app(app, svc)` is the one place routes come from: each blueprint is registered here by
name, so a route exists because this file says so, not because some module was imported.
Views reach the services through `signage.web.current.services()`.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from signage.config import asset_dir
from signage.services import Services
from signage.store.db import StoreUnavailable
from signage.web import (
    admin,
    api,
    api_drafts,
    auth,
    branding,
    calendars,
    kiosk,
    metrics,
    names,
    ops,
    pairing,
    security,
    sockets,
)
from signage.web.current import services

logger = logging.getLogger(__name__)


def init_app(app: Flask, svc: Services) -> None:
    """Give the app its settings, its services and every route, hook and error page."""
    app.template_folder = str(asset_dir("templates"))
    app.static_folder = str(asset_dir("static"))
    config = svc.config
    app.config.update(config)
    app.testing = bool(config.get("TESTING", False))
    app.config["SECRET_KEY"] = config["SIGNAGE_SECRET_KEY"]
    app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": config["SIGNAGE_KIOSK_PING_INTERVAL"],
        "max_message_size": config["SIGNAGE_KIOSK_MAX_MESSAGE"],
    }
    hops = config["SIGNAGE_PROXY_COUNT"]
    if hops > 0:
        # Behind nginx: the client's address (pairing and login limits), scheme (Secure
        # cookies) and host (the socket origin check) come from the proxy's headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    else:
        app.before_request(_warn_forwarded_without_proxy_count)
    app.extensions["signage"] = svc
    logging.getLogger("signage").setLevel(config["SIGNAGE_LOG_LEVEL"].upper())

    # Before any route is added: ids in URLs stop at 64 bits (a longer one is a 404, not a 500).
    app.url_map.converters["int"] = ops.IdConverter
    app.register_blueprint(kiosk.bp)
    app.register_blueprint(ops.bp)
    auth.init_app(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_drafts.bp)  # a floor's draft and versions (API)
    app.register_blueprint(calendars.bp)
    app.register_blueprint(admin.audit.api_bp)  # GET /api/admin/audit (the page is on admin.bp)
    app.register_blueprint(names.bp)  # display names of floors and rooms (API)
    app.register_blueprint(branding.bp)  # uploaded logos, served from our origin
    app.register_blueprint(branding.api_bp)  # a display's logo (API)
    app.register_blueprint(pairing.bp)
    sockets.init_app(app)
    metrics.init_app(app, svc)
    # The alert watcher starts with the first request (threads must start after gunicorn forks).
    app.before_request(svc.alerts.ensure_started)
    # The space tree refreshes in its own thread (also restarted after a fork); no request
    # ever waits for it. `serve` starts it before the first request too.
    app.before_request(svc.directory.start)
    if svc.bookings is not None:  # room calendars: their own thread, as the space tree
        app.before_request(svc.bookings.start)
    if svc.audit is not None:  # old audit entries are pruned in a thread, never on a request
        app.before_request(svc.audit.ensure_started)
    names.init_app(app)  # display names: read now, handed to the hub, kept current
    security.init_app(app)
    app.register_error_handler(StoreUnavailable, _database_unavailable)
    # An address no route matches (or a GET to a POST-only one) reaches no blueprint's handler:
    # under /admin/ it gets the console's error page, not Werkzeug's bare one.
    app.register_error_handler(404, _unrouted)
    app.register_error_handler(405, _unrouted)
    svc.ready = True


def _unrouted(exc: HTTPException) -> Any:
    """A 404/405 raised before any blueprint: the console's page under /admin/, JSON under
    /api/admin/ (a code's handler outranks api's HTTPException one, so it is asked here), and
    the usual page elsewhere."""
    if request.path == "/admin" or request.path.startswith("/admin/"):
        # The console's guard did not run (no route): who is signed in decides the menu.
        auth.load_principal(allow_token=False)
        return admin.base._error_page(exc)
    return api._json_errors(exc)


def _warn_forwarded_without_proxy_count() -> None:
    """A proxy on this machine forwards requests, but SIGNAGE_PROXY_COUNT=0 ignores its headers:
    every client is 127.0.0.1, so the sign-in and pairing limits hit everyone at once. Said
    once per process, on the first such request."""
    svc = services()
    if svc.state.get("warned_forwarded") or "HTTP_X_FORWARDED_FOR" not in request.environ:
        return
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
    message = "the database cannot be reached right now; try again in a moment"
    response: Response
    if request.path.startswith("/api/"):
        response = jsonify(error="database_unavailable", message=message)
    else:
        response = current_app.response_class(message, mimetype="text/plain")
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response
