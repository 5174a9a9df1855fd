"""Settings of the Density simulator: every interval it uses, changeable while it runs."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# "simulator": the shapes this simulator always spoke (spaces carry `parent_id`, analytics
# maps wrapped in `data`). "reference": exactly as the reference's own samples show them
# (spaces with nested `children` and `children_ids` and no `parent_id`, bare maps).
SHAPES = ("simulator", "reference")
# Settings that take one of a few words rather than any string.
CHOICES: dict[str, tuple[str, ...]] = {"shape": SHAPES}


@dataclass(frozen=True)
class SimSettings:
    """Every knob of the simulator; intervals in seconds so tests can shrink them."""

    token_lifetime: float = 3600.0
    refresh_interval: float = 60.0
    refresh_on_connect: bool = True
    rate_limit: float = 15.0  # requests per second; 0 turns the limiter off
    rate_burst: int = 100
    ws_url_ttl: float = 30.0
    spaces_envelope: bool = False
    shape: str = "simulator"
    static_token: str = "tok_sim_static"
    client_id: str = "sim_client_id"
    client_secret: str = "sim_client_secret"

    def __post_init__(self) -> None:
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}")

    def to_json(self) -> dict[str, Any]:
        """The settings as the control API shows them."""
        return dataclasses.asdict(self)

    def updated(self, changes: dict[str, Any]) -> SimSettings:
        """A copy with `changes` applied; ValueError names the first bad key or value."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in fields:
                raise ValueError(f"unknown setting {key!r}")
            clean[key] = _coerce(key, getattr(self, key), value)
        return dataclasses.replace(self, **clean)


def _coerce(key: str, current: Any, value: Any) -> Any:
    # The type of the default decides what a setting accepts; bool is checked first
    # because bool is a subclass of int and must not pass for a number.
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ValueError(f"{key} must be one of {', '.join(CHOICES[key])}")
        return value
    if isinstance(current, str):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{key} must be a non-empty string")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if value < 0:
        raise ValueError(f"{key} must not be negative")
    if isinstance(current, int) and not isinstance(current, float):
        if int(value) != value:
            raise ValueError(f"{key} must be a whole number")
        return int(value)
    return float(value)
