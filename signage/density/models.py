"""Frozen dataclasses built from Density's JSON, tolerant of the shape variants in the notes.

Parsers here never trust the body: a field of the wrong type becomes None (or the entry is
skipped), and only a body that cannot be read at all raises BadResponse/MalformedFrame.
Where Density's reference leaves a shape open, the variants accepted are those listed in
shared/density-api-notes.md; the tests keep a fixture of each.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from .errors import BadResponse, MalformedFrame

__all__ = [
    "HEALTH_STATES",
    "MAX_FRAME_BYTES",
    "Doorway",
    "Occupancy",
    "PresenceHealth",
    "SensorHealth",
    "Space",
    "SpaceUpdate",
    "StreamMessage",
    "normalise_health",
    "parse_count",
    "parse_frame",
    "parse_timestamp",
]

logger = logging.getLogger(__name__)

HEALTH_STATES = ("healthy", "degraded", "offline", "unknown")
UPDATE_TYPES = ("refresh", "live")
MAX_FRAME_BYTES = 1 << 20

_FLAG_KEYS = ("occupied", "presence")
_HEALTH_KEYS = ("space_health_status", "health_status", "health")
_COUNT_KEYS = ("occupancy", "count")


# ---------------------------------------------------------------------------- helpers


def normalise_health(value: Any) -> str:
    """One of healthy/degraded/offline/unknown; anything else is "unknown"."""
    if isinstance(value, str):
        value = value.strip().lower()
        if value in HEALTH_STATES:
            return value
    return "unknown"


def parse_timestamp(value: Any) -> datetime | None:
    """An aware datetime from ISO 8601 (a trailing Z allowed) or epoch seconds/ms; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)  # epoch ms vs s
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Density's timestamps are UTC; a naive one is read as UTC rather than local time.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    """An int from an int, an integral float or a decimal string; bools and the rest are None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
        return int(value.strip())
    return None


_CAPPED_COUNT = re.compile(r"\s*(\d{1,9})\s*\+\s*")


def _whole(value: Any) -> int | None:
    """A non-negative whole number from an int, an integral float or a numeric string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 20:
            return None
        try:
            value = int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int) and value >= 0:
        return value
    return None


def parse_count(
    value: Any, is_capped: Any = None, capped_count_limit: Any = None
) -> tuple[int, bool] | None:
    """A head count and whether it is capped, read the same way on every path; None if unreadable.

    Counts arrive as ints, integral floats (3.0) or numeric strings ("3"); Waffle-backed spaces
    cap them, as "3+" on the socket or with `is_capped` (and `capped_count_limit`) on the
    analytics endpoints. A capped count is the limit, shown "3+": at or above the limit Density
    cannot tell 3 people from 30.
    """
    capped = False
    if isinstance(value, str):
        match = _CAPPED_COUNT.fullmatch(value)
        if match:
            value, capped = match.group(1), True
    count = _whole(value)
    if count is None:
        return None
    if is_capped is True:
        capped = True
    limit = _whole(capped_count_limit)
    if limit is not None and (capped or count >= limit):
        count, capped = limit, True
    return count, capped


def _first(obj: Mapping[str, Any], keys: Iterable[str]) -> tuple[bool, Any]:
    for key in keys:
        if key in obj:
            return True, obj[key]
    return False, None


def unwrap(body: Any, keys: Iterable[str] = ("data",)) -> Any:
    """The payload of a ``{"data": …}`` (or similar) envelope, or the body itself."""
    if isinstance(body, Mapping):
        for key in keys:
            if key in body and isinstance(body[key], Mapping | list):
                return body[key]
    return body


# ---------------------------------------------------------------------------- REST models


@dataclass(frozen=True)
class Space:
    """A node of the space hierarchy (campus, building, floor or space)."""

    id: str
    name: str
    space_type: str | None = None
    parent_id: str | None = None
    children_ids: tuple[str, ...] = ()
    capacity: int | None = None
    function: str | None = None
    time_zone: str | None = None
    counting_mode: str | None = None
    labels: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> Space | None:
        """A Space from one entry of /v3/spaces, or None when it has no usable id."""
        if not isinstance(obj, Mapping):
            return None
        space_id = obj.get("id")
        if not isinstance(space_id, str) or not space_id:
            return None
        children = obj.get("children_ids")
        if not isinstance(children, list):
            # Some answers embed children objects (or their ids) instead of children_ids.
            nested = obj.get("children")
            children = (
                [c.get("id") if isinstance(c, Mapping) else c for c in nested]
                if isinstance(nested, list)
                else []
            )
        labels: list[str] = []
        raw_labels = obj.get("labels")
        if isinstance(raw_labels, list):
            for label in raw_labels:
                if isinstance(label, str):
                    labels.append(label)
                elif isinstance(label, Mapping) and isinstance(label.get("name"), str):
                    labels.append(label["name"])
        capacity = _int(obj.get("capacity"))
        return cls(
            id=space_id,
            name=_str(obj.get("name")) or space_id,
            space_type=_str(obj.get("space_type")),
            parent_id=_str(obj.get("parent_id")),
            children_ids=tuple(c for c in children if isinstance(c, str)),
            capacity=capacity if capacity is None or capacity >= 0 else None,
            function=_str(obj.get("function")),
            time_zone=_str(obj.get("time_zone")),
            counting_mode=_str(obj.get("counting_mode")),
            labels=tuple(labels),
        )

    @classmethod
    def all_from_json(cls, items: Iterable[Any]) -> list[Space]:
        """Every space of a /v3/spaces list, the objects nested under `children` included.

        A nested child without a `parent_id` gets the id of the object it is nested in, so the
        tree (signage/core/directory.py) is the same whichever way Density linked it.
        """
        out: list[Space] = []
        stack: list[tuple[Any, str | None, int]] = [(i, None, 0) for i in reversed(list(items))]
        while stack:
            obj, nested_in, depth = stack.pop()
            space = cls.from_json(obj)
            if space is None:
                continue
            if space.parent_id is None and nested_in is not None:
                space = replace(space, parent_id=nested_in)
            out.append(space)
            nested = obj.get("children")
            if isinstance(nested, list) and depth < 16:  # deeper is a loop, not a building
                stack.extend(
                    (c, space.id, depth + 1) for c in reversed(nested) if isinstance(c, Mapping)
                )
        return out


@dataclass(frozen=True)
class PresenceHealth:
    """Health-aware presence of one space; only "healthy" supports a confident "free"."""

    space_id: str
    occupied: bool | None
    health: str
    timestamp: datetime | None = None

    @classmethod
    def from_json(cls, space_id: str, obj: Any) -> PresenceHealth | None:
        """Accepts the flag as occupied/presence and health under any of the three names."""
        if isinstance(obj, bool):  # the deprecated /presence shape: space_id -> bool
            return cls(space_id=space_id, occupied=obj, health="unknown")
        if not isinstance(obj, Mapping):
            return None
        _, flag = _first(obj, _FLAG_KEYS)
        _, health = _first(obj, _HEALTH_KEYS)
        return cls(
            space_id=space_id,
            occupied=flag if isinstance(flag, bool) else None,
            health=normalise_health(health),
            timestamp=parse_timestamp(obj.get("timestamp")),
        )


@dataclass(frozen=True)
class Occupancy:
    """Current head count of one space (None when Density did not give a number)."""

    space_id: str
    count: int | None
    timestamp: datetime | None = None
    capped: bool = False  # Waffle's "3+": at least `count`

    @classmethod
    def from_json(cls, space_id: str, obj: Any) -> Occupancy | None:
        """Accepts {"count": n} / {"occupancy": n} objects or a bare number ("3", 3.0, "3+")."""
        if isinstance(obj, Mapping):
            _, raw = _first(obj, ("count", "occupancy"))
            read = parse_count(raw, obj.get("is_capped"), obj.get("capped_count_limit"))
            timestamp = parse_timestamp(obj.get("timestamp"))
            if read is None:
                return cls(space_id, None, timestamp)
            return cls(space_id, read[0], timestamp, capped=read[1])
        read = parse_count(obj)
        return None if read is None else cls(space_id, read[0], None, capped=read[1])


@dataclass(frozen=True)
class SensorHealth:
    """Current health of one sensor."""

    serial_number: str
    health: str
    space_id: str | None = None  # the first of `space_ids`
    doorway_id: str | None = None  # an entry sensor may name its doorway instead of a space
    # Every space the sensor names: a doorway counts for "one or more spaces" (a floor and its
    # room), and a room left out would never get a health.
    space_ids: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> SensorHealth | None:
        """A SensorHealth from one sensor entry, or None when it has no serial number."""
        if not isinstance(obj, Mapping):
            return None
        serial = obj.get("serial_number")
        if not isinstance(serial, str) or not serial:
            return None
        _, health = _first(obj, _HEALTH_KEYS)
        space_id = _str(obj.get("space_id"))
        ids = [space_id] if space_id else []
        if isinstance(obj.get("space_ids"), list):
            ids += [s for s in obj["space_ids"] if isinstance(s, str) and s and s not in ids]
        return cls(
            serial_number=serial,
            health=normalise_health(health),
            space_id=ids[0] if ids else None,
            doorway_id=_str(obj.get("doorway_id")),
            space_ids=tuple(ids),
        )


def space_map(body: Any, what: str) -> Mapping[str, Any]:
    """The ``{space_id: …}`` map of an analytics answer, bare or under "data"."""
    payload = unwrap(body)
    if not isinstance(payload, Mapping):
        raise BadResponse(f"{what}: expected a JSON object keyed by space id")
    return payload


def item_list(body: Any, what: str) -> list[Any]:
    """The list of an answer that is a bare list or one under "data"/"results"."""
    payload = unwrap(body, ("data", "results"))
    if not isinstance(payload, list):
        raise BadResponse(f"{what}: expected a JSON list")
    return payload


# ---------------------------------------------------------------------------- socket frames


@dataclass(frozen=True)
class SpaceUpdate:
    """One space's state in a socket message (presence for OA, occupancy for entry)."""

    space_id: str
    counting_mode: str | None
    presence: bool | None
    occupancy: int | None
    # None when the entry carries no health field: it says nothing about the space's health
    # (a channel sets only what it knows), which is not the same as "unknown".
    health: str | None
    timestamp: datetime | None = None
    capped: bool = False  # Waffle's "3+": at least `occupancy`

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict in Density's own field names (no health field when it had none)."""
        out: dict[str, Any] = {
            "space_id": self.space_id,
            "counting_mode": self.counting_mode,
            "presence": self.presence,
            "occupancy": self.occupancy,
        }
        if self.capped:
            out["is_capped"] = True
        if self.health is not None:
            out["space_health_status"] = self.health
        out["timestamp"] = self.timestamp.isoformat() if self.timestamp else None
        return out


@dataclass(frozen=True)
class StreamMessage:
    """A parsed socket message; ``skipped`` counts space entries dropped as malformed."""

    update_type: str
    updates: tuple[SpaceUpdate, ...]
    received_at: float
    skipped: int = 0
    by_space: Mapping[str, SpaceUpdate] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    @property
    def is_refresh(self) -> bool:
        """True for a full snapshot of the floor."""
        return self.update_type == "refresh"


def _space_update(space_id: str, obj: Any) -> SpaceUpdate | None:
    """One entry of a frame's data map, or None when it is malformed."""
    if not isinstance(obj, Mapping):
        return None
    has_flag, flag = _first(obj, _FLAG_KEYS)
    has_count, count = _first(obj, _COUNT_KEYS)
    has_health, health = _first(obj, _HEALTH_KEYS)
    if not (has_flag or has_count or has_health):
        return None  # says nothing about the space
    if has_flag and flag is not None and not isinstance(flag, bool):
        return None
    read: tuple[int, bool] | None = None
    if has_count and count is not None:
        # "3", 3.0 and Waffle's "3+" are counts as much as 3 is (the REST path reads them too).
        read = parse_count(count, obj.get("is_capped"), obj.get("capped_count_limit"))
        if read is None:
            return None
    if has_health and health is not None and not isinstance(health, str):
        return None
    mode = obj.get("counting_mode")
    if mode is not None and not isinstance(mode, str):
        return None
    raw_ts = obj.get("timestamp")
    if raw_ts is not None and (
        isinstance(raw_ts, bool) or not isinstance(raw_ts, str | int | float)
    ):
        return None
    # A timestamp in a format we do not read costs the timestamp, not the presence reading.
    timestamp = parse_timestamp(raw_ts)
    return SpaceUpdate(
        space_id=space_id,
        counting_mode=mode,
        presence=flag if has_flag else None,
        occupancy=None if read is None else read[0],
        health=normalise_health(health) if has_health else None,
        timestamp=timestamp,
        capped=read is not None and read[1],
    )


def parse_frame(
    data: str | bytes | bytearray | memoryview,
    max_bytes: int = MAX_FRAME_BYTES,
    *,
    received_at: float = 0.0,
) -> StreamMessage:
    """Parse one socket frame; raise MalformedFrame for anything but a valid message.

    Bad entries inside an otherwise valid frame are skipped and counted in ``skipped``.
    """
    try:
        if isinstance(data, bytearray | memoryview):
            data = bytes(data)
        if isinstance(data, bytes):
            if len(data) > max_bytes:
                raise MalformedFrame(f"frame of {len(data)} bytes exceeds {max_bytes}")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedFrame("frame is not UTF-8") from None
        elif isinstance(data, str):
            # len() is a lower bound of the UTF-8 size: skip encoding obviously huge frames.
            if len(data) > max_bytes or len(data.encode("utf-8", "surrogatepass")) > max_bytes:
                raise MalformedFrame(f"frame exceeds {max_bytes} bytes")
            text = data
        else:
            raise MalformedFrame(f"frame of type {type(data).__name__}")
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            raise MalformedFrame("frame is not valid JSON") from None
        if not isinstance(body, dict):
            raise MalformedFrame("frame is not a JSON object")
        update_type = body.get("update_type")
        if not isinstance(update_type, str) or update_type not in UPDATE_TYPES:
            raise MalformedFrame("frame has no known update_type")
        payload = body.get("data")
        if not isinstance(payload, dict):
            raise MalformedFrame("frame data is not an object")
        updates: list[SpaceUpdate] = []
        skipped = 0
        for space_id, entry in payload.items():
            update = _space_update(space_id, entry) if space_id else None
            if update is None:
                skipped += 1
            else:
                updates.append(update)
    except MalformedFrame:
        raise
    except Exception as exc:  # a parser bug must not kill the stream: report it as malformed
        logger.exception("unexpected error parsing a frame")
        raise MalformedFrame(f"unparseable frame ({type(exc).__name__})") from exc
    return StreamMessage(
        update_type=update_type,
        updates=tuple(updates),
        received_at=received_at,
        skipped=skipped,
        by_space=MappingProxyType({u.space_id: u for u in updates}),
    )


# ---------------------------------------------------------------------------- doorways


def _ids(value: Any, keys: Iterable[str] = ("id",)) -> tuple[str, ...]:
    """Ids from a list of strings or of objects naming one under ``keys``; order kept, no dups."""
    if not isinstance(value, list):
        return ()
    found: list[str] = []
    for item in value:
        if isinstance(item, Mapping):
            _, item = _first(item, keys)
        if isinstance(item, str) and item and item not in found:
            found.append(item)
    return tuple(found)


@dataclass(frozen=True)
class Doorway:
    """An entry point watched by an entry sensor, and the spaces whose counts it feeds."""

    id: str
    name: str
    space_ids: tuple[str, ...] = ()
    serial_numbers: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Any) -> Doorway | None:
        """A Doorway from one entry of GET /v3/doorways, or None when it has no usable id.

        The reference's sample leaves the object's fields open, so the spaces are read from
        ``space_ids``, ``spaces`` (ids or objects with ``id``/``space_id``) or a single
        ``space_id``, and the sensors from ``sensor_serial_number``, ``serial_number``,
        ``serial_numbers`` or ``sensors`` (objects with ``serial_number``).
        """
        if not isinstance(obj, Mapping):
            return None
        _, doorway_id = _first(obj, ("id", "doorway_id"))
        if not isinstance(doorway_id, str) or not doorway_id:
            return None
        spaces = _ids(obj.get("space_ids")) or _ids(obj.get("spaces"), ("id", "space_id"))
        single = _str(obj.get("space_id"))
        if single and single not in spaces:
            spaces = (*spaces, single)
        serials = list(_ids(obj.get("serial_numbers")))
        serials += _ids(obj.get("sensors"), ("serial_number", "sensor_serial_number"))
        for key in ("sensor_serial_number", "serial_number"):
            value = _str(obj.get(key))
            if value:
                serials.append(value)
        return cls(
            id=doorway_id,
            name=_str(obj.get("name")) or doorway_id,
            space_ids=spaces,
            serial_numbers=tuple(dict.fromkeys(serials)),
        )
