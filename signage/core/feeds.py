"""One feed per floor: Density's socket first, presence-health polling when it fails, merged state.

`Feed` is what the rest of the server uses of a floor's feed (the kiosk views, the building's
other-floors panel, alerts and metrics); `FloorFeed` implements it from Density, and the fleet's
`ClusterFeed` (signage/fleet/) from the Redis mirror of another process's `FloorFeed`.
`FeedManager` starts a floor's feed when its first kiosk arrives and stops it a while after the
last one left.

A `FloorFeed` holds a channel (core/channel.py) for the floor's presence socket and, where the
floor has entry-counted spaces, one for its occupancy socket; while a socket is down, its
channel polls REST through the polls floors share (core/polls.py).

The feed turns what Density says into what a kiosk may show, by the room rules in
core/rooms.py (shared with the fleet's Redis mirror): a room is `free` only
when Density says it is unoccupied, its space health is `healthy` and the channel that serves it
heard from Density within `stale_after`; `unknown` otherwise, always with a reason; each channel
sets only what it knows. Ages are computed here, on the server, because a Raspberry Pi kiosk may
have no real-time clock; they are read from `FeedSettings.clock`, so tests can move time on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Self, runtime_checkable

from signage.core.channel import Channel
from signage.core.clock import SYSTEM_CLOCK, Clock
from signage.core.directory import SpaceDirectory
from signage.core.errors import FeedUnavailable
from signage.core.polls import Doorways, SharedPolls, read_sensor_health
from signage.core.protocol import (
    HEARTBEAT,
    LIVE,
    POLLING,
    SNAPSHOT,
    STALE,
    UPDATE,
    dumps,
    envelope,
    floor_info,
)
from signage.core.rooms import Room, differs, needs_doorways, sensors_by_space
from signage.density.client import DensityClient
from signage.density.errors import DensityError
from signage.density.models import Space, SpaceUpdate

__all__ = [
    "Doorways",
    "Feed",
    "FeedFactory",
    "FeedManager",
    "FeedSettings",
    "FloorFeed",
    "SharedPolls",
    "read_sensor_health",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedSettings:
    """Every interval a feed uses, in seconds (small in tests, Density-sized in production).

    `clock` is what feeds, their channels and the feed manager read time from: the real clock
    unless a test passes a `FakeClock` to run an outage in a moment.
    """

    ping_interval: float = 10.0
    ping_timeout: float = 5.0
    silence_timeout: float = 90.0
    snapshot_wait: float = 3.0
    poll_interval: float = 15.0
    stale_after: float = 120.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    sensor_health_interval: float = 300.0
    linger: float = 60.0
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False, repr=False)
    # A room's booking fields by space id (core/bookings.py, from memory): none without it.
    bookings: Callable[[str], dict[str, Any]] | None = field(default=None, compare=False)

    @classmethod
    def from_config(cls, config: dict[str, Any], clock: Clock = SYSTEM_CLOCK) -> FeedSettings:
        """Read the SIGNAGE_* feed settings."""
        return cls(
            ping_interval=config["SIGNAGE_PING_INTERVAL"],
            ping_timeout=config["SIGNAGE_PING_TIMEOUT"],
            silence_timeout=config["SIGNAGE_SILENCE_TIMEOUT"],
            snapshot_wait=config["SIGNAGE_SNAPSHOT_WAIT"],
            poll_interval=config["SIGNAGE_POLL_INTERVAL"],
            stale_after=config["SIGNAGE_STALE_AFTER"],
            backoff_base=config["SIGNAGE_BACKOFF_BASE"],
            backoff_max=config["SIGNAGE_BACKOFF_MAX"],
            sensor_health_interval=config["SIGNAGE_SENSOR_HEALTH_INTERVAL"],
            linger=config["SIGNAGE_FEED_LINGER"],
            clock=clock,
        )


@runtime_checkable
class Feed(Protocol):
    """What the server uses of a floor's feed: `FloorFeed`, or the fleet's `ClusterFeed`.

    The kiosk views read `snapshot` and `heartbeat`; the other-floors panel queues through
    `send_in_order`; alerts, metrics and the admin pages read `status`, `rooms` and
    `malformed_frames`; the `FeedManager` drives the rest. Runtime-checkable, so a test can
    hold both implementations to it.
    """

    floor_id: str
    seq: int  # the floor's sequence number in its epoch: never goes back
    started_at: float  # monotonic time on the settings' clock
    # Handed over by the feed manager before `start`: shared by every floor's feed.
    shared_polls: SharedPolls | None
    doorways: Doorways | None

    @property
    def floor(self) -> Space | None:
        """The floor in Density's space tree (None while the tree does not know it)."""
        ...

    @property
    def rooms(self) -> Mapping[str, Room]:
        """The floor's rooms by space id (their sensors and health, for the admin pages)."""
        ...

    @property
    def malformed_frames(self) -> int:
        """Upstream frames that could not be parsed (metrics)."""
        ...

    def start(self) -> Self:
        """Start hearing from Density (or the fleet); returns the feed."""
        ...

    def stop(self, timeout: float = 5.0) -> None:
        """Stop, waiting up to `timeout` seconds for its threads."""
        ...

    def tick(self) -> None:
        """Housekeeping each second: turn a silent floor stale on time."""
        ...

    def wait_for_data(self, timeout: float) -> bool:
        """Wait (briefly) for the first answer after the feed started."""
        ...

    def set_sensor_health(self, by_space: dict[str, list[tuple[str, str]]]) -> None:
        """Record each room's sensors and their health."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """Every room and the feed's state now, from memory (docs/protocol.md `snapshot`)."""
        ...

    def heartbeat(self) -> dict[str, Any]:
        """The envelope alone, for a quiet kiosk (docs/protocol.md `heartbeat`)."""
        ...

    def send_in_order(self, kind: str, fields: dict[str, Any], send: Callable[[str], Any]) -> None:
        """Hand `send` a message with the floor's envelope, in order with its updates."""
        ...

    def status(self) -> dict[str, Any]:
        """Mode, reason, ages and channels, for fleet health and metrics."""
        ...


class FeedFactory(Protocol):
    """Builds a floor's feed from `FloorFeed`'s arguments (the fleet passes its own)."""

    def __call__(
        self,
        floor_id: str,
        client: DensityClient,
        floor: Space | None,
        rooms: Iterable[Space],
        settings: FeedSettings,
        publish: Callable[[str, int, str], Any],
        token_display_id: Callable[[], str | None],
        epoch: str,
        seq_start: int = 0,
    ) -> Feed: ...


class FloorFeed:
    """The merged, honest state of one floor, kept current from Density."""

    def __init__(
        self,
        floor_id: str,
        client: DensityClient,
        floor: Space | None,
        rooms: Iterable[Space],
        settings: FeedSettings,
        publish: Callable[[str, int, str], Any],
        token_display_id: Callable[[], str | None],
        epoch: str,
        seq_start: int = 0,
    ) -> None:
        self.floor_id = floor_id
        self.client = client
        self.floor = floor
        self.settings = settings
        self.clock = settings.clock
        self._publish = publish
        self.token_display_id = token_display_id
        self.epoch = epoch
        self.seq = seq_start
        # Set when kiosks may hold another process's state (Redis fan-out, fleet/feed.py):
        # the next update then carries every room, not only those this feed saw change.
        self.publish_all_next = False
        # Given by the feed manager before start (signage/fleet/feed.py hands them on): the
        # presence-health poll floors on fallback share, and the doorways cache. Without a
        # manager the feed polls on its own and reads doorways itself.
        self.shared_polls: SharedPolls | None = None
        self.doorways: Doorways | None = None
        self.malformed_frames = 0
        self._bookings_seen: dict[str, dict[str, Any]] = {}  # what kiosks last heard of bookings
        self.stopped = threading.Event()
        # Set once every channel's first answer is in the rooms (see `answered`).
        self.has_data = threading.Event()
        self._lock = threading.RLock()
        self.rooms: dict[str, Room] = {s.id: Room(space=s) for s in rooms}
        self.mode = STALE
        self.mode_reason: str | None = "starting"
        self.started_at = self.clock.monotonic()
        self._aged: set[str] = set()  # entry rooms whose health is too old (see _follow_mode)
        # A channel only for rooms it serves: a floor of doorway counters has no presence
        # socket to hear from (Density offers it only for OA/Waffle spaces), and a channel
        # never heard would read the floor stale while every count answers.
        entry = any(r.entry for r in self.rooms.values())
        oa = any(not r.entry for r in self.rooms.values())
        self.channels: list[Channel] = []
        if oa or not entry:  # a floor not known yet (no rooms) listens on its presence socket
            self.channels.append(Channel(self, "presence"))
        if entry:
            self.channels.append(Channel(self, "occupancy"))

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> FloorFeed:
        logger.info("floor %s feed starting (%d rooms)", self.floor_id, len(self.rooms))
        for channel in self.channels:
            channel.start()
        return self

    def halt(self, close_sockets: bool = True) -> None:
        """Stop talking to Density now, without waiting for the channels' threads.

        From inside the feed's own publish (a refused Redis publish), `close_sockets=False`:
        the channel's loop sees the stop and closes its socket itself.
        """
        self.stopped.set()
        if close_sockets:
            for channel in self.channels:
                channel.stop()

    def stop(self, timeout: float = 5.0) -> None:
        self.halt()
        for channel in self.channels:
            channel.join(timeout)
        logger.info("floor %s feed stopped", self.floor_id)

    def count_malformed(self, *_args: Any) -> None:
        with self._lock:
            self.malformed_frames += 1

    def space_ids(self, entry: bool) -> list[str]:
        """The rooms one channel serves: entry-counted ones, or the others."""
        return [sid for sid, r in self.rooms.items() if r.entry == entry]

    def _channel_for(self, room: Room) -> Channel:
        kind = "occupancy" if room.entry else "presence"
        return next(c for c in self.channels if c.kind == kind)

    # -- applying what Density says ----------------------------------------------------------
    def apply(self, updates: Iterable[SpaceUpdate], source: str, channel: Channel) -> None:
        """Merge updates (each sets only what it carries); publish rooms whose state changed."""
        now = self.clock.monotonic()
        self._edit_rooms(
            now,
            ((u.space_id, lambda room, u=u: room.apply(u, now, source)) for u in updates),
        )

    def answered(self, channel: Channel) -> None:
        """A channel's whole answer (an entry poll's sensor health included) is in the rooms.

        The feed has data once every channel has answered: a page that waited for the first
        answer would otherwise read the floor stale (a channel not heard yet makes it so), or
        read the rooms before they took the answer.
        """
        channel.answered = True
        if all(c.answered for c in self.channels):
            self.has_data.set()

    def set_sensor_health(self, by_space: dict[str, list[tuple[str, str]]]) -> None:
        """Record each room's sensors and their health; entry rooms take their health from them."""
        now = self.clock.monotonic()
        edits = (
            (sid, lambda room, s=found: room.apply_sensors(s, now))
            for sid, found in by_space.items()
        )
        self._edit_rooms(now, edits)

    def unreported(self, channel: Channel, reported: set[str]) -> None:
        """Rooms of `channel` that a whole answer left out: unknown until Density lists them."""
        entry = channel.kind == "occupancy"
        missing = [
            sid
            for sid, room in self.rooms.items()
            if room.entry == entry and sid not in reported and room.reported
        ]
        if missing:
            logger.info("floor %s: Density left out %s", self.floor_id, ", ".join(missing))
            edits = ((sid, lambda room: setattr(room, "reported", False)) for sid in missing)
            self._edit_rooms(self.clock.monotonic(), edits)

    def read_entry_health(self, space_ids: list[str], retries: int | None = None) -> bool:
        """Sensor health for entry rooms (no count carries it); True when Density answered."""
        if self.doorways is None:
            self.doorways = Doorways(self.client, self.clock)
        by_space = read_sensor_health(self.client, space_ids, self.doorways, retries=retries)
        if by_space is not None:
            self.set_sensor_health(by_space)
        return by_space is not None

    def _edit_rooms(self, now: float, edits: Iterable[tuple[str, Callable[[Room], Any]]]) -> None:
        """Edit rooms; publish those whose public state changed (all, when the mode changed)."""
        with self._lock:
            before_mode = self.mode
            new_mode, reason = self._compute_mode(now)
            changed: dict[str, dict[str, Any]] = {}
            for space_id, edit in edits:
                room = self.rooms.get(space_id)
                if room is None:
                    continue  # a space that is not a room of this floor (or not yet known)
                before = self._room_public(room, now, new_mode)
                edit(room)
                after = self._room_public(room, now, new_mode)
                if differs(before, after):
                    changed[room.space.id] = after
            if new_mode != before_mode:
                self._set_mode(new_mode, reason)
                self._publish_update(now, self._all_rooms_public(now))
            elif changed or reason != self.mode_reason:
                self.mode_reason = reason
                self._publish_update(now, changed)

    def tick(self) -> None:
        """Re-derive the feed's mode from the channels and the clock; publish a change."""
        now = self.clock.monotonic()
        with self._lock:
            self._follow_mode(now)

    def _follow_mode(self, now: float) -> None:
        """Take the mode (and its reason) the channels and the clock give; kiosks hear of it.

        A reason can change while the mode stays: a feed that started inside an outage is
        stale "starting", then stale "unreachable", and its pages must stop saying "waiting".
        """
        mode, reason = self._compute_mode(now)
        # Entry rooms whose health just grew too old: kiosks hear of them like of a change.
        expired = self._expired_health(now)
        aged = {sid: self._room_public(self.rooms[sid], now, mode) for sid in expired - self._aged}
        self._aged = expired
        aged.update(self._booking_changes(now, mode))
        if mode != self.mode:
            self._set_mode(mode, reason)
            self._publish_update(now, self._all_rooms_public(now))
        elif reason != self.mode_reason or aged:
            self.mode_reason = reason
            self._publish_update(now, aged)

    def _booking_changes(self, now: float, mode: str) -> dict[str, dict[str, Any]]:
        """Rooms whose booking fields changed on their own (a calendar was read again, or its
        data grew too old to show): kiosks hear of them like of a sensor's change."""
        lookup = self.settings.bookings
        if lookup is None:
            return {}
        changed = {}
        for space_id, room in self.rooms.items():
            fields = lookup(space_id)
            if fields != self._bookings_seen.get(space_id, {}):
                self._bookings_seen[space_id] = fields
                changed[space_id] = self._room_public(room, now, mode)
        return changed

    def _compute_mode(self, now: float) -> tuple[str, str | None]:
        behind = [c for c in self.channels if not c.fresh(now)]
        if behind:
            # Still starting while the channels not fresh have never been heard and the feed
            # is younger than `stale_after`: one channel answering first is no outage.
            never = all(c.last_heard is None for c in behind)
            return (
                STALE,
                "starting"
                if never and now - self.started_at < self.settings.stale_after
                else "unreachable",
            )
        if any(c.mode != "live" for c in self.channels):
            return POLLING, next((c.last_error for c in self.channels if c.last_error), None)
        return LIVE, None

    def _set_mode(self, mode: str, reason: str | None) -> None:
        if mode == self.mode:
            return
        log = logger.warning if mode == STALE and reason != "starting" else logger.info
        # Fields as well as words: one structured line per change (SIGNAGE_LOG_FORMAT=json).
        event = {"event": "feed", "floor_id": self.floor_id, "mode": mode, "previous": self.mode}
        log("floor %s feed %s -> %s", self.floor_id, self.mode, mode, extra=event)
        self.mode, self.mode_reason = mode, reason

    # -- what kiosks receive -----------------------------------------------------------------
    def _health_max_age(self) -> float:
        # An entry room's health is read every `sensor_health_interval` (no count carries it):
        # two reads missed, or older than `stale_after`, and it vouches for nothing.
        s = self.settings
        return max(s.stale_after, 2 * s.sensor_health_interval)

    def _room_public(self, room: Room, now: float, mode: str) -> dict[str, Any]:
        fresh = mode != STALE and self._channel_for(room).fresh(now)
        public = room.public(now, fresh=fresh, health_max_age=self._health_max_age())
        if self.settings.bookings is not None:
            public.update(self.settings.bookings(room.space.id))
        return public

    def _expired_health(self, now: float) -> set[str]:
        age = self._health_max_age()
        return {
            sid
            for sid, r in self.rooms.items()
            if r.entry and r.health_at is not None and now - r.health_at > age
        }

    def _all_rooms_public(self, now: float) -> dict[str, dict[str, Any]]:
        return {sid: self._room_public(r, now, self.mode) for sid, r in self.rooms.items()}

    def _heard_age(self, now: float) -> float | None:
        heard = [c.last_heard for c in self.channels if c.last_heard is not None]
        return None if not heard else round(now - min(heard), 1)

    def _envelope(self, kind: str, now: float) -> dict[str, Any]:
        return envelope(
            kind,
            epoch=self.epoch,
            seq=self.seq,
            floor_id=self.floor_id,
            feed=self.mode,
            feed_reason=self.mode_reason,
            heard_age_s=self._heard_age(now),
            wall=self.clock.time(),
        )

    def _publish_update(self, now: float, rooms: dict[str, dict[str, Any]]) -> None:
        self.seq += 1
        if self.publish_all_next:
            rooms, self.publish_all_next = self._all_rooms_public(now), False
        message = self._envelope(UPDATE, now)
        message["rooms"] = rooms
        self._publish(self.floor_id, self.seq, dumps(message))

    def wait_for_data(self, timeout: float) -> bool:
        """Wait (briefly) for the first answer from Density after the feed started."""
        return self.has_data.wait(timeout)

    def snapshot(self) -> dict[str, Any]:
        """Every room and the feed's state now, from memory (no upstream call)."""
        now = self.clock.monotonic()
        with self._lock:
            self._follow_mode(now)
            message = self._envelope(SNAPSHOT, now)
            message["rooms"] = self._all_rooms_public(now)
            message["floor"] = floor_info(self.floor_id, self.floor)
            return message

    def heartbeat(self) -> dict[str, Any]:
        """The small message a quiet kiosk gets so it can tell a quiet floor from a dead link."""
        now = self.clock.monotonic()
        with self._lock:
            return self._envelope(HEARTBEAT, now)

    def send_in_order(self, kind: str, fields: dict[str, Any], send: Callable[[str], Any]) -> None:
        """Queue a message outside the floor's sequence, in order with its updates.

        The message carries the floor's envelope (seq, feed) like a heartbeat; queueing it under
        the lock the updates are published under keeps that seq from overtaking an update.
        """
        with self._lock:
            message = self._envelope(kind, self.clock.monotonic())
            message.update(fields)
            send(dumps(message))

    @property
    def heard_age_s(self) -> float | None:
        """Seconds since any channel last heard from Density; None before its first word."""
        with self._lock:
            return self._heard_age(self.clock.monotonic())

    def status(self) -> dict[str, Any]:
        """For fleet health and metrics."""
        now = self.clock.monotonic()
        with self._lock:
            return {
                "floor_id": self.floor_id,
                "mode": self.mode,
                "reason": self.mode_reason,
                "heard_age_s": self._heard_age(now),
                "malformed_frames": self.malformed_frames,
                "channels": [
                    {
                        "kind": c.kind,
                        "mode": c.mode,
                        "messages": c.messages,
                        "polls": c.polls,
                        "reconnects": c.reconnects,
                        "last_error": c.last_error,
                    }
                    for c in self.channels
                ],
            }


@dataclass
class _Entry:
    feed: Feed
    users: int = 0
    idle_since: float | None = None


class FeedManager:
    """Starts a floor's feed when its first kiosk arrives and stops it a while after the last."""

    def __init__(
        self,
        client: DensityClient,
        directory: SpaceDirectory,
        settings: FeedSettings,
        publish: Callable[[str, int, str], Any],
        token_display_for_floor: Callable[[str], str | None],
        epoch: str,
        feed_factory: FeedFactory | None = None,
    ) -> None:
        self.client = client
        # Builds a floor's feed with FloorFeed's arguments; Redis fan-out passes its own
        # (signage/fleet/: the upstream socket only where this process holds the lease).
        self._factory: FeedFactory = feed_factory or FloorFeed
        self.directory = directory
        self.settings = settings
        self.publish = publish
        self.token_display_for_floor = token_display_for_floor
        self.epoch = epoch
        self.clock = settings.clock
        # Shared by every floor's feed: one presence-health poll per interval for the floors
        # on fallback, and the doorways (read only where a sensor names one).
        self.doorways = Doorways(client, self.clock)
        self.shared_polls = SharedPolls(client, settings, self.doorways)
        self._lock = threading.Lock()
        self._feeds: dict[str, _Entry] = {}
        self._seq: dict[str, int] = {}  # kept across a feed's restarts: seq never goes back
        self.feeds_started = 0
        self._stop = threading.Event()
        self._housekeeper: threading.Thread | None = None
        self._sensor_health: threading.Thread | None = None
        self._closed = False
        self._next_sensor_health = 0.0
        # Called with a floor id after each of its updates is published, under that floor's
        # lock: a listener must only take note (signage/core/building.py marks the floor changed).
        self.listeners: list[Callable[[str], None]] = []

    def acquire(self, floor_id: str) -> Feed:
        """The floor's feed, started if needed; the caller must `release` it.

        Raises FeedUnavailable when the feed cannot be built (Density's error as its cause).
        """
        try:
            return self._acquire(floor_id)
        except DensityError as exc:
            raise FeedUnavailable(str(exc) or type(exc).__name__) from exc

    def _acquire(self, floor_id: str) -> Feed:
        with self._lock:
            if self._closed:
                # Shutting down: a late caller (a kiosk mid-handshake) gets a feed that never
                # starts, so no feed thread outlives stop().
                return self._new_feed(floor_id)
            entry = self._feeds.get(floor_id)
            if entry is None:
                entry = _Entry(self._new_feed(floor_id).start())
                self._feeds[floor_id] = entry
                self.feeds_started += 1
            entry.users += 1
            entry.idle_since = None
            self._ensure_housekeeper()
            return entry.feed

    def release(self, floor_id: str) -> None:
        """One user fewer; the feed lingers for a while after its last user."""
        with self._lock:
            entry = self._feeds.get(floor_id)
            if entry is None:
                return
            entry.users = max(0, entry.users - 1)
            if entry.users == 0:
                entry.idle_since = self.clock.monotonic()

    def touch(self, floor_id: str, wait: float = 0.75) -> Feed:
        """Use a feed without holding it (a page load, an HTTP poll): it lingers from now.

        Only a request that starts the feed waits, up to `wait` seconds, for Density's first
        answer, so a page's first paint shows rooms rather than "unknown" while the feed warms
        up. Every other request answers from memory at once: during an outage the feed never
        has data, and a kiosk page must still answer within a second. Raises FeedUnavailable
        as `acquire` does.
        """
        with self._lock:
            starting = floor_id not in self._feeds
        feed = self.acquire(floor_id)
        self.release(floor_id)
        if starting and self.directory.status()["state"] == "ok":
            # Only while Density answered the directory's last fetch in this process: not in a
            # known outage, nor on a tree kept from before a restart (the wait could only run
            # out, and a page must answer within a second).
            feed.wait_for_data(wait)
        return feed

    def get(self, floor_id: str) -> Feed | None:
        with self._lock:
            entry = self._feeds.get(floor_id)
            return entry.feed if entry else None

    def feeds(self) -> list[Feed]:
        with self._lock:
            return [e.feed for e in self._feeds.values()]

    def _new_feed(self, floor_id: str) -> Feed:
        # The directory's cached tree, never a call to Density: a floor it does not know yet
        # starts with no rooms, and `respace` rebuilds it when the tree arrives.
        tree = self.directory.tree()
        floor = tree.get(floor_id)
        if floor is None:
            self.directory.request_refresh()
        rooms = tree.rooms_of(floor_id) if floor else []
        if floor is not None and not floor.time_zone:
            floor = replace(floor, time_zone=tree.time_zone(floor_id))
        return self._build_feed(
            floor_id,
            self.client,
            floor,
            rooms,
            self.settings,
            self._publish_and_count,
            lambda: self.token_display_for_floor(floor_id),
            self.epoch,
            seq_start=self._seq.get(floor_id, 0),
        )

    def respace(self) -> list[str]:
        """Rebuild running feeds whose floor or rooms differ from the directory's tree now.

        Called from the directory's refresh thread after the tree changed (a server started
        inside an outage with no tree, a room added in Density). Returns the floors rebuilt:
        their kiosks hold the old feed and must reconnect to see the new rooms.
        """
        tree = self.directory.tree()
        rebuilt: list[str] = []
        with self._lock:
            entries = [] if self._closed else list(self._feeds.items())
        for floor_id, entry in entries:
            old = entry.feed
            floor = tree.get(floor_id)
            rooms = {s.id for s in tree.rooms_of(floor_id)} if floor else set()
            if (old.floor is None) == (floor is None) and set(old.rooms) == rooms:
                continue
            new = self._new_feed(floor_id)
            with self._lock:
                if self._closed or self._feeds.get(floor_id) is not entry:
                    continue
                entry.feed = new.start()
            logger.info("floor %s rebuilt with %d rooms from the space tree", floor_id, len(rooms))
            old.stop()
            rebuilt.append(floor_id)
        return rebuilt

    def _build_feed(self, *args: Any, **kwargs: Any) -> Feed:
        """A floor's feed (FloorFeed's arguments), handed the polls and doorways floors share."""
        feed = self._factory(*args, **kwargs)
        feed.shared_polls, feed.doorways = self.shared_polls, self.doorways
        return feed

    def _publish_and_count(self, floor_id: str, seq: int, text: str) -> Any:
        self._seq[floor_id] = seq
        delivered = self.publish(floor_id, seq, text)
        for listener in self.listeners:
            listener(floor_id)
        return delivered

    # -- housekeeping: stale ticks, lingering feeds, sensor health ---------------------------
    def _ensure_housekeeper(self) -> None:
        if self._housekeeper is None or not self._housekeeper.is_alive():
            self._stop.clear()
            self._housekeeper = threading.Thread(
                target=self._housekeep, name="feed-housekeeper", daemon=True
            )
            self._housekeeper.start()

    def _housekeep(self) -> None:
        while not self.clock.wait(self._stop, 1.0):
            try:
                self._housekeep_once()
            except Exception:
                logger.exception("feed housekeeping failed")

    def _housekeep_once(self) -> None:
        now = self.clock.monotonic()
        expired: list[Feed] = []
        with self._lock:
            for floor_id, entry in list(self._feeds.items()):
                if entry.idle_since is not None and now - entry.idle_since > self.settings.linger:
                    expired.append(entry.feed)
                    del self._feeds[floor_id]
            feeds = [e.feed for e in self._feeds.values()]
        for feed in expired:
            feed.stop()
        for feed in feeds:
            feed.tick()
        if feeds and now >= self._next_sensor_health:
            self._next_sensor_health = now + self.settings.sensor_health_interval
            # On its own thread: a call to Density can take many seconds (429s, retries), and
            # the ticks above are what turn a silent floor stale on time.
            if self._sensor_health is None or not self._sensor_health.is_alive():
                self._sensor_health = threading.Thread(
                    target=self._refresh_sensor_health,
                    args=(feeds,),
                    name="sensor-health",
                    daemon=True,
                )
                self._sensor_health.start()

    def _refresh_sensor_health(self, feeds: list[Feed]) -> None:
        try:
            self._read_sensor_health(feeds)
        except Exception:  # its own thread: log, never let it escape
            logger.exception("sensor health refresh failed")

    def _read_sensor_health(self, feeds: list[Feed]) -> None:
        space_ids = [sid for feed in feeds for sid in feed.rooms]
        if not space_ids:
            return
        try:
            sensors = self.client.sensor_health(space_ids=space_ids)
        except DensityError as exc:
            logger.info("sensor health not refreshed: %s", exc)
            return
        doorways = self.doorways.get() if needs_doorways(sensors) else []
        by_space = sensors_by_space(sensors, doorways)
        for sid in space_ids:  # asked and not answered: no sensor now (see read_sensor_health)
            by_space.setdefault(sid, [])
        for feed in feeds:
            feed.set_sensor_health(by_space)

    def stop(self) -> None:
        """Stop every feed and the housekeeper."""
        self._stop.set()
        with self._lock:
            self._closed = True
            feeds = [e.feed for e in self._feeds.values()]
            self._feeds.clear()
        for feed in feeds:
            feed.stop()
        self.shared_polls.stop()
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=3)
