"""The kiosk protocol in one place: messages, room dicts, states and reasons, close codes, encoding.

docs/protocol.md describes the messages. Every module that builds one for a kiosk builds it
here (the envelope, a room, a floor) and encodes it with `dumps`, so the bytes on the wire have
one definition and a state or reason is spelled once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from signage.density.models import Space

# Message types that carry the floor's envelope (docs/protocol.md "The socket").
SNAPSHOT = "snapshot"
UPDATE = "update"
HEARTBEAT = "heartbeat"
FLOORS = "floors"
# Sent to a display's sockets, without the floor's envelope.
ANNOUNCEMENTS = "announcements"
RELOAD = "reload"
IDENTIFY = "identify"

# How the server hears from Density for a floor: a message's `feed`, a feed's mode.
LIVE = "live"
POLLING = "polling"
STALE = "stale"
FEED_MODES = (LIVE, POLLING, STALE)

# A room's `state`: the only field a player must read.
FREE = "free"
OCCUPIED = "occupied"
UNKNOWN = "unknown"
ROOM_STATES = (FREE, OCCUPIED, UNKNOWN)

# Why a room is `unknown` (its `reason`).
NO_DATA = "no_data"  # Density has not spoken of the room yet
STALE_DATA = "stale"  # nothing fresh from Density within stale_after
SENSOR_OFFLINE = "sensor_offline"
SENSOR_DEGRADED = "sensor_degraded"
NOT_VERIFIED = "not_verified"  # the room's health is unknown
UNKNOWN_REASONS = (NO_DATA, STALE_DATA, SENSOR_OFFLINE, SENSOR_DEGRADED, NOT_VERIFIED)

# Close codes a kiosk can act on (docs/protocol.md).
CLOSE_RESTART = 1012  # server restarting: come back (after a jittered delay)
CLOSE_POLICY = 1008  # sent too much, too fast
CLOSE_TOO_SLOW = 4001  # outbox overflowed: reconnect and take a fresh snapshot
CLOSE_STALLED = 4002  # data stayed unsent longer than the send timeout
CLOSE_RELOAD = 4003  # the display's configuration changed: reconnect for a new snapshot
CLOSE_UNAUTHORIZED = 4401  # unknown or revoked credential: back to pairing
CLOSE_EXPIRED = 4410  # a console preview's credential ran out: stop (never back to pairing)


def dumps(message: dict[str, Any]) -> str:
    """A protocol message as compact JSON text (no spaces: a floor's state goes to every kiosk)."""
    return json.dumps(message, separators=(",", ":"))


def canonical(value: Any) -> str:
    """Compact JSON with sorted keys: equal values give equal text (for digests and ETags)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def server_time(wall: float) -> str:
    """`server_time` from a wall-clock time in seconds."""
    moment = datetime.fromtimestamp(wall, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def envelope(
    kind: str,
    *,
    epoch: str,
    seq: int,
    floor_id: str,
    feed: str,
    feed_reason: str | None,
    heard_age_s: float | None,
    wall: float,
) -> dict[str, Any]:
    """The fields every message of a floor's feed opens with (docs/protocol.md)."""
    return {
        "type": kind,
        "epoch": epoch,
        "seq": seq,
        "floor_id": floor_id,
        "feed": feed,
        "feed_reason": feed_reason if feed != LIVE else None,
        "heard_age_s": heard_age_s,
        "server_time": server_time(wall),
    }


def floor_info(floor_id: str, floor: Space | None) -> dict[str, Any]:
    """The `floor` of a snapshot."""
    return {
        "id": floor_id,
        "name": floor.name if floor else floor_id,
        "time_zone": floor.time_zone if floor else None,
    }


def room_dict(
    space: Space,
    *,
    state: str,
    reason: str | None,
    last_known: str | None,
    occupied: bool | None,
    count: int | None,
    capped: bool,
    health: str,
    since_s: float | None,
    source: str | None,
) -> dict[str, Any]:
    """A room as kiosks receive it (docs/protocol.md "A room")."""
    return {
        "id": space.id,
        "name": space.name,
        "function": space.function,
        "capacity": space.capacity,
        "counting_mode": space.counting_mode or "oa",
        "state": state,
        "reason": reason,
        "last_known": last_known,
        "occupied": occupied,
        "count": count,
        "capped": capped,
        "health": health,
        "since_s": since_s,
        "source": source,
    }
