"""One feed per floor: Density's socket first, presence-health polling when it fails, merged state.

A `FloorFeed` holds a channel for the floor's presence socket and, where the floor has
entry-counted spaces, one for its occupancy socket. Each channel runs in its own thread: it
connects (a fresh `ws_url` every time), applies `refresh`/`live` messages, and when the socket
closes, is refused or goes silent, polls REST while reconnecting with jittered backoff.

The feed turns what Density says into what a kiosk may show. A room is `free` only when Density
says it is unoccupied, its space health is `healthy` and the channel that serves it heard from
Density within `stale_after`; `occupied` when occupied with healthy data; `unknown` otherwise,
always with a reason. Ages are computed here, on the server, because a Raspberry Pi kiosk may
have no real-time clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signage.density.backoff import Backoff
from signage.density.client import DensityClient
from signage.density.errors import DensityError
from signage.density.models import Space, SpaceUpdate
from signage.density.stream import PresenceStream
from signage.directory import SpaceDirectory  # noqa: F401  (importable from here)

logger = logging.getLogger(__name__)

FEED_MODES = ("live", "polling", "stale")
UNHEALTHY_REASONS = {
    "offline": "sensor_offline",
    "degraded": "sensor_degraded",
    "unknown": "not_verified",
}


@dataclass(frozen=True)
class FeedSettings:
    """Every interval a feed uses, in seconds (small in tests, Density-sized in production)."""

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

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FeedSettings:
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
        )


@dataclass
class Room:
    """What the feed knows of one room, and since when."""

    space: Space
    occupied: bool | None = None  # oa spaces
    count: int | None = None  # entry spaces
    health: str = "unknown"
    changed_at: float | None = None  # monotonic time occupancy last changed
    source: str | None = None  # "socket" or "poll"
    sensors: tuple[tuple[str, str], ...] = ()  # (serial, health) from sensor health

    @property
    def entry(self) -> bool:
        return self.space.counting_mode == "entry"

    def last_known(self) -> str | None:
        """Free or occupied by Density's last word, whatever its health or age."""
        if self.entry:
            return None if self.count is None else ("occupied" if self.count > 0 else "free")
        return None if self.occupied is None else ("occupied" if self.occupied else "free")

    def classify(self, fresh: bool) -> tuple[str, str | None]:
        """The state a kiosk may show, with the reason when it is `unknown`."""
        known = self.last_known()
        if known is None:
            return "unknown", "no_data"
        if not fresh:
            return "unknown", "stale"
        if self.health != "healthy":
            return "unknown", UNHEALTHY_REASONS.get(self.health, "not_verified")
        return known, None


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Channel:
    """One upstream socket (presence or occupancy) with its polling fallback, in a thread."""

    def __init__(self, feed: FloorFeed, kind: str) -> None:
        self.feed = feed
        self.kind = kind  # "presence" or "occupancy"
        self.mode = "starting"  # starting, live, polling
        self.last_heard: float | None = None
        self.started_at = time.monotonic()
        self.messages = 0
        self.polls = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self._stream: PresenceStream | None = None
        self._got_message = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"feed-{kind}-{feed.floor_id}", daemon=True
        )

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self.feed.stopped.is_set()

    def fresh(self, now: float) -> bool:
        """Heard from Density (socket or poll) within `stale_after`."""
        return (
            self.last_heard is not None and now - self.last_heard <= self.feed.settings.stale_after
        )

    # -- the loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        settings = self.feed.settings
        backoff = Backoff(base=settings.backoff_base, cap=settings.backoff_max)
        # A REST snapshot first, so a kiosk joining now sees data without waiting for the socket.
        self._poll()
        while not self.stopping:
            try:
                self._hold_socket()
            except DensityError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug here must not end the floor's feed for good
                logger.exception(
                    "floor %s %s socket failed unexpectedly", self.feed.floor_id, self.kind
                )
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._stream = None
            if self.stopping:
                break
            if self._got_message.is_set():
                backoff.reset()
            self._set_mode("polling", self.last_error)
            self.reconnects += 1
            self._fallback_until(time.monotonic() + backoff.next())

    def _hold_socket(self) -> None:
        """Connect and apply messages until the socket closes, goes silent or is refused."""
        settings = self.feed.settings
        self._got_message.clear()
        stream = PresenceStream(
            self.feed.client,
            self.feed.floor_id,
            kind=self.kind,
            display_id=self.feed.token_display_id(),
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout,
            silence_timeout=settings.silence_timeout,
            open_timeout=min(10.0, settings.silence_timeout),
            on_malformed=self.feed.count_malformed,
        )
        self._stream = stream
        if self.stopping:
            return
        stream.connect()
        # Density does not promise a refresh on connect: take a REST snapshot if none comes.
        timer = threading.Timer(settings.snapshot_wait, self._snapshot_if_quiet)
        timer.daemon = True
        timer.start()
        try:
            for message in stream:
                self._got_message.set()
                self.messages += 1
                self.last_heard = time.monotonic()
                self.feed.apply(message.updates, source="socket", channel=self)
                self._set_mode("live")
        finally:
            timer.cancel()
            stream.close()

    def _snapshot_if_quiet(self) -> None:
        if not self._got_message.is_set() and not self.stopping and self._stream is not None:
            if self._poll():
                self._set_mode("live")

    def _fallback_until(self, deadline: float) -> None:
        """Poll every `poll_interval` until it is time to try the socket again."""
        poll_interval = self.feed.settings.poll_interval
        next_poll = time.monotonic()
        while not self.stopping:
            now = time.monotonic()
            if now >= deadline:
                return
            if now >= next_poll:
                self._poll()
                next_poll = time.monotonic() + poll_interval
            self.feed.tick()
            self.feed.stopped.wait(max(0.05, min(deadline, next_poll) - time.monotonic()))

    def _poll(self) -> bool:
        """One REST read of this channel's rooms; True when Density answered."""
        space_ids = self.feed.space_ids(entry=self.kind == "occupancy")
        if not space_ids:
            return False
        client, display_id = self.feed.client, self.feed.token_display_id()
        try:
            if self.kind == "presence":
                result = client.presence_health(space_ids, display_id=display_id)
                updates = [
                    SpaceUpdate(
                        space_id=sid,
                        counting_mode="oa",
                        presence=ph.occupied,
                        occupancy=None,
                        health=ph.health,
                        timestamp=ph.timestamp,
                    )
                    for sid, ph in result.items()
                ]
            else:
                result = client.current_occupancy(space_ids, display_id=display_id)
                updates = [
                    SpaceUpdate(
                        space_id=sid,
                        counting_mode="entry",
                        presence=None,
                        occupancy=occ.count,
                        health=None,
                        timestamp=occ.timestamp,
                    )
                    for sid, occ in result.items()
                ]
        except DensityError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.feed.tick()
            return False
        self.polls += 1
        self.last_heard = time.monotonic()
        self.feed.apply(updates, source="poll", channel=self)
        return True

    def _set_mode(self, mode: str, reason: str | None = None) -> None:
        if mode != self.mode:
            previous, self.mode = self.mode, mode
            if mode == "polling":
                logger.warning(
                    "floor %s %s socket down (%s): polling", self.feed.floor_id, self.kind, reason
                )
            elif previous != "starting":
                logger.info("floor %s %s socket live again", self.feed.floor_id, self.kind)
            else:
                logger.info("floor %s %s socket live", self.feed.floor_id, self.kind)
        self.feed.tick()


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
        self._publish = publish
        self.token_display_id = token_display_id
        self.epoch = epoch
        self.seq = seq_start
        # Set when kiosks may hold another process's state (Redis fan-out, signage/cluster.py):
        # the next update then carries every room, not only those this feed saw change.
        self.publish_all_next = False
        self.malformed_frames = 0
        self.stopped = threading.Event()
        self.has_data = threading.Event()  # set once Density has answered at least once
        self._lock = threading.RLock()
        self.rooms: dict[str, Room] = {s.id: Room(space=s) for s in rooms}
        self.mode = "stale"
        self.mode_reason: str | None = "starting"
        self.started_at = time.monotonic()
        self.channels = [Channel(self, "presence")]
        if any(r.entry for r in self.rooms.values()):
            self.channels.append(Channel(self, "occupancy"))

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> FloorFeed:
        logger.info("floor %s feed starting (%d rooms)", self.floor_id, len(self.rooms))
        for channel in self.channels:
            channel.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        for channel in self.channels:
            channel.stop()
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
        if room.entry and len(self.channels) > 1:
            return self.channels[1]
        return self.channels[0]

    # -- applying what Density says ----------------------------------------------------------
    def apply(self, updates: Iterable[SpaceUpdate], source: str, channel: Channel) -> None:
        """Merge updates; publish the rooms whose public state changed."""
        now = time.monotonic()
        self.has_data.set()
        with self._lock:
            before_mode = self.mode
            new_mode, reason = self._compute_mode(now)
            changed: dict[str, dict[str, Any]] = {}
            for update in updates:
                room = self.rooms.get(update.space_id)
                if room is None:
                    continue  # a space that is not a room of this floor (or not yet known)
                before = self._room_public(room, now, new_mode)
                if room.entry:
                    if update.occupancy is not None and update.occupancy != room.count:
                        room.count = update.occupancy
                        room.changed_at = now
                elif update.presence is not None and update.presence != room.occupied:
                    room.occupied = update.presence
                    room.changed_at = now
                if update.health:
                    room.health = update.health
                room.source = source
                after = self._room_public(room, now, new_mode)
                if _differs(before, after):
                    changed[room.space.id] = after
            if new_mode != before_mode:
                self._set_mode(new_mode, reason)
                self._publish_update(now, self._all_rooms_public(now))
            elif changed:
                self._publish_update(now, changed)

    def tick(self) -> None:
        """Re-derive the feed's mode from the channels and the clock; publish a change."""
        now = time.monotonic()
        with self._lock:
            mode, reason = self._compute_mode(now)
            if mode != self.mode:
                self._set_mode(mode, reason)
                self._publish_update(now, self._all_rooms_public(now))

    def _compute_mode(self, now: float) -> tuple[str, str | None]:
        if any(not c.fresh(now) for c in self.channels):
            never = all(c.last_heard is None for c in self.channels)
            return (
                "stale",
                "starting"
                if never and now - self.started_at < self.settings.stale_after
                else "unreachable",
            )
        if any(c.mode != "live" for c in self.channels):
            return "polling", next((c.last_error for c in self.channels if c.last_error), None)
        return "live", None

    def _set_mode(self, mode: str, reason: str | None) -> None:
        if mode == self.mode:
            return
        log = logger.warning if mode == "stale" and reason != "starting" else logger.info
        # Fields as well as words: one structured line per change (SIGNAGE_LOG_FORMAT=json).
        event = {"event": "feed", "floor_id": self.floor_id, "mode": mode, "previous": self.mode}
        log("floor %s feed %s -> %s", self.floor_id, self.mode, mode, extra=event)
        self.mode, self.mode_reason = mode, reason

    # -- what kiosks receive -----------------------------------------------------------------
    def _room_public(self, room: Room, now: float, mode: str) -> dict[str, Any]:
        fresh = mode != "stale" and self._channel_for(room).fresh(now)
        state, reason = room.classify(fresh)
        space = room.space
        return {
            "id": space.id,
            "name": space.name,
            "function": space.function,
            "capacity": space.capacity,
            "counting_mode": space.counting_mode or "oa",
            "state": state,
            "reason": reason,
            "last_known": room.last_known(),
            "occupied": room.occupied,
            "count": room.count,
            "health": room.health,
            "since_s": None if room.changed_at is None else round(now - room.changed_at, 1),
            "source": room.source,
        }

    def _all_rooms_public(self, now: float) -> dict[str, dict[str, Any]]:
        return {sid: self._room_public(r, now, self.mode) for sid, r in self.rooms.items()}

    def _heard_age(self, now: float) -> float | None:
        heard = [c.last_heard for c in self.channels if c.last_heard is not None]
        return None if not heard else round(now - min(heard), 1)

    def _envelope(self, kind: str, now: float) -> dict[str, Any]:
        return {
            "type": kind,
            "epoch": self.epoch,
            "seq": self.seq,
            "floor_id": self.floor_id,
            "feed": self.mode,
            "feed_reason": self.mode_reason if self.mode != "live" else None,
            "heard_age_s": self._heard_age(now),
            "server_time": _iso_now(),
        }

    def _publish_update(self, now: float, rooms: dict[str, dict[str, Any]]) -> None:
        self.seq += 1
        if self.publish_all_next:
            rooms, self.publish_all_next = self._all_rooms_public(now), False
        message = self._envelope("update", now)
        message["rooms"] = rooms
        self._publish(self.floor_id, self.seq, json.dumps(message, separators=(",", ":")))

    def wait_for_data(self, timeout: float) -> bool:
        """Wait (briefly) for the first answer from Density after the feed started."""
        return self.has_data.wait(timeout)

    def snapshot(self) -> dict[str, Any]:
        """Every room and the feed's state now, from memory (no upstream call)."""
        now = time.monotonic()
        with self._lock:
            mode, reason = self._compute_mode(now)
            if mode != self.mode:
                self._set_mode(mode, reason)
                self._publish_update(now, self._all_rooms_public(now))
            message = self._envelope("snapshot", now)
            message["rooms"] = self._all_rooms_public(now)
            message["floor"] = {
                "id": self.floor_id,
                "name": self.floor.name if self.floor else self.floor_id,
                "time_zone": self.floor.time_zone if self.floor else None,
            }
            return message

    def heartbeat(self) -> dict[str, Any]:
        """The small message a quiet kiosk gets so it can tell a quiet floor from a dead link."""
        now = time.monotonic()
        with self._lock:
            return self._envelope("heartbeat", now)

    def send_in_order(self, kind: str, fields: dict[str, Any], send: Callable[[str], Any]) -> None:
        """Queue a message outside the floor's sequence, in order with its updates.

        The message carries the floor's envelope (seq, feed) like a heartbeat; queueing it under
        the lock the updates are published under keeps that seq from overtaking an update.
        """
        with self._lock:
            message = self._envelope(kind, time.monotonic())
            message.update(fields)
            send(json.dumps(message, separators=(",", ":")))

    def status(self) -> dict[str, Any]:
        """For fleet health and metrics."""
        now = time.monotonic()
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

    def set_sensor_health(self, by_space: dict[str, list[tuple[str, str]]]) -> None:
        """Record each room's sensors and their health (informational: shown to admins)."""
        with self._lock:
            for sid, sensors in by_space.items():
                room = self.rooms.get(sid)
                if room is not None:
                    room.sensors = tuple(sensors)


def _differs(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a kiosk needs to hear about this room: ages alone do not count."""
    return any(before[key] != after[key] for key in before if key != "since_s")


@dataclass
class _Entry:
    feed: FloorFeed
    users: int = 0
    idle_since: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
        feed_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.client = client
        # Builds a floor's feed with FloorFeed's arguments; Redis fan-out passes its own
        # (signage/cluster.py: the upstream socket only where this process holds the lease).
        self.feed_factory = feed_factory or FloorFeed
        self.directory = directory
        self.settings = settings
        self.publish = publish
        self.token_display_for_floor = token_display_for_floor
        self.epoch = epoch
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
        # lock: a listener must only take note (signage/building.py marks the floor changed).
        self.listeners: list[Callable[[str], None]] = []

    def acquire(self, floor_id: str) -> FloorFeed:
        """The floor's feed, started if needed; the caller must `release` it."""
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
                entry.idle_since = time.monotonic()

    def touch(self, floor_id: str, wait: float = 0.5) -> FloorFeed:
        """Use a feed without holding it (a page load, an HTTP poll): it lingers from now.

        Only a request that starts the feed waits, up to `wait` seconds, for Density's first
        answer, so a page's first paint shows rooms rather than "unknown" while the feed warms
        up. Every other request answers from memory at once: during an outage the feed never
        has data, and a kiosk page must still answer within a second.
        """
        with self._lock:
            starting = floor_id not in self._feeds
        feed = self.acquire(floor_id)
        self.release(floor_id)
        if starting:
            feed.wait_for_data(wait)
        return feed

    def get(self, floor_id: str) -> FloorFeed | None:
        with self._lock:
            entry = self._feeds.get(floor_id)
            return entry.feed if entry else None

    def feeds(self) -> list[FloorFeed]:
        with self._lock:
            return [e.feed for e in self._feeds.values()]

    def _new_feed(self, floor_id: str) -> FloorFeed:
        # The directory's cached tree, never a call to Density: a floor it does not know yet
        # starts with no rooms, and `respace` rebuilds it when the tree arrives.
        tree = self.directory.tree()
        floor = tree.get(floor_id)
        if floor is None:
            self.directory.request_refresh()
        rooms = tree.rooms_of(floor_id) if floor else []
        if floor is not None and not floor.time_zone:
            floor = _with_time_zone(floor, tree.time_zone(floor_id))
        return self.feed_factory(
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
        while not self._stop.wait(1.0):
            try:
                self._housekeep_once()
            except Exception:
                logger.exception("feed housekeeping failed")

    def _housekeep_once(self) -> None:
        now = time.monotonic()
        expired: list[FloorFeed] = []
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

    def _refresh_sensor_health(self, feeds: list[FloorFeed]) -> None:
        try:
            self._read_sensor_health(feeds)
        except Exception:  # its own thread: log, never let it escape
            logger.exception("sensor health refresh failed")

    def _read_sensor_health(self, feeds: list[FloorFeed]) -> None:
        space_ids = [sid for feed in feeds for sid in feed.rooms]
        if not space_ids:
            return
        try:
            sensors = self.client.sensor_health(space_ids=space_ids)
        except DensityError as exc:
            logger.info("sensor health not refreshed: %s", exc)
            return
        by_space: dict[str, list[tuple[str, str]]] = {}
        for sensor in sensors:
            if sensor.space_id:
                by_space.setdefault(sensor.space_id, []).append(
                    (sensor.serial_number, sensor.health)
                )
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
        if self._housekeeper is not None:
            self._housekeeper.join(timeout=3)


def _with_time_zone(space: Space, time_zone: str | None) -> Space:
    from dataclasses import replace

    return replace(space, time_zone=time_zone)
