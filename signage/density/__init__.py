"""Client library for Density's public API: REST calls, tokens, rate limit, live sockets.

Knows HTTP and WebSocket only: it never imports Flask or the simulator.
"""

from __future__ import annotations

from .backoff import Backoff
from .client import DEFAULT_TIMEOUT, PATHS, DensityClient
from .errors import (
    AuthError,
    BadRequest,
    BadResponse,
    DensityError,
    MalformedFrame,
    NotFound,
    RateLimited,
    StreamClosed,
    Unavailable,
)
from .models import (
    HEALTH_STATES,
    Doorway,
    Occupancy,
    PresenceHealth,
    SensorHealth,
    Space,
    SpaceUpdate,
    StreamMessage,
    parse_frame,
)
from .ratelimit import RateLimiter
from .stream import PresenceStream
from .tokens import ORG_KEY, Token, TokenCache, TokenGrant

__all__ = [
    "DEFAULT_TIMEOUT",
    "HEALTH_STATES",
    "ORG_KEY",
    "PATHS",
    "AuthError",
    "Backoff",
    "BadRequest",
    "BadResponse",
    "DensityClient",
    "DensityError",
    "Doorway",
    "MalformedFrame",
    "NotFound",
    "Occupancy",
    "PresenceHealth",
    "PresenceStream",
    "RateLimited",
    "RateLimiter",
    "SensorHealth",
    "Space",
    "SpaceUpdate",
    "StreamClosed",
    "StreamMessage",
    "Token",
    "TokenCache",
    "TokenGrant",
    "Unavailable",
    "parse_frame",
]
