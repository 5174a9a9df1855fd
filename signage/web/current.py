"""The services of the app handling the current request (Flask's `current_app`)."""

from __future__ import annotations

from flask import current_app

from signage.services import Services


def services() -> Services:
    """The current app's services."""
    return current_app.extensions["signage"]
