"""A floor as each process of the fleet sees it: the stream mirrored, the FloorFeed run if leased.

The lease holder runs the ordinary `FloorFeed` and publishes each update through a script that
checks the lease (no two writers) and stores the floor's snapshot, epoch and seq in a Redis
hash. Every process hands each update's text unchanged to its hub and answers joining kiosks
from the mirror. A new holder carries the seq on from Redis; when Redis lost it, a new epoch
starts and kiosks resync. When nobody has heard from Density for `stale_after` (Redis away, no
holder), the process itself tells its kiosks every room is unknown (core/rooms.py's rules),
under a local epoch so that they resync when fresh data returns.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from signage.core.feeds import FeedSettings, FloorFeed
from signage.core.protocol import (
    CLOSE_RESTART,
    FREE,
    HEARTBEAT,
    OCCUPIED,
    SNAPSHOT,
    STALE,
    UPDATE,
    dumps,
    envelope,
    floor_info,
)
from signage.core.rooms import Room, aged, unknown
from signage.density.client import DensityClient
from signage.density.models import Space
from signage.fleet.scripts import age

if TYPE_CHECKING:
    from signage.core.polls import Doorways, SharedPolls
    from signage.fleet.link import Cluster

logger = logging.getLogger(__name__)


class ClusterFeed:
    """One floor as this process sees the fleet's stream; runs the FloorFeed when leased.

    Core's `Feed`, as `FloorFeed` is: the feed manager and the views cannot tell them apart.
    """

    def __init__(
        self,
        cluster: Cluster,
        floor_id: str,
        client: DensityClient,
        floor: Space | None,
        spaces: list[Space],
        settings: FeedSettings,
        publish: Callable[[str, int, str], Any],
        token_display_id: Callable[[], str | None],
        seq_start: int,
    ) -> None:
        self.cluster = cluster
        self.floor_id = floor_id
        self.floor = floor
        self.settings = settings
        self._deliver_text = publish
        # The FloorFeed this process runs while it holds the lease, but for its epoch and seq.
        self._new_inner = partial(
            FloorFeed, floor_id, client, floor, spaces, settings, self._holder_publish
        )
        self._token_display_id = token_display_id
        self.clock = settings.clock
        self.started_at = self.clock.monotonic()
        # Queues to the hub happen under this lock (signage/core/building.py relies on it).
        self._lock = threading.RLock()
        self.has_data = threading.Event()
        self.rooms: dict[str, Room] = {s.id: Room(space=s) for s in spaces}
        # Set by the feed manager before start, handed on to the FloorFeed held here.
        self.shared_polls: SharedPolls | None = None
        self.doorways: Doorways | None = None
        self._inner: FloorFeed | None = None
        self._lost = threading.Event()  # the holder's publish was refused: stop at once
        self._stopped = False
        # Starting and stopping the upstream socket (lease rounds, stop, give_up): one at a
        # time, so that a round cannot start a feed just after the floor was stopped.
        self._life = threading.Lock()
        # The mirror: what the fleet last said, with the local clock of each room's since_s.
        # Until the fleet says anything, every room is as a starting FloorFeed shows it.
        self.fleet_epoch: str = secrets.token_hex(4)
        self.seq: int = seq_start
        self._high_seq = 0  # the highest seq any kiosk here was given (a new epoch starts above)
        self._feed = STALE
        self._feed_reason: str | None = "starting"
        self._floor_info = floor_info(floor_id, floor)
        now = self.clock.monotonic()
        self._rooms: dict[str, tuple[dict[str, Any], float]] = {
            sid: (room.public(now, fresh=False), now) for sid, room in self.rooms.items()
        }
        self._heard: float | None = None  # monotonic time the fleet last heard from Density
        self._local_stale = False
        self._local_epoch = ""
        self.local_stale_entries = 0

    # -- life cycle (FeedManager) --------------------------------------------------------------
    def start(self) -> ClusterFeed:
        """Load the floor from Redis, take the lease if it is free, join the lease rounds."""
        logger.info("floor %s mirrored from the fleet (%d rooms)", self.floor_id, len(self.rooms))
        self.resync_from_redis()
        try:
            self.lease_round()
        except Exception:
            logger.exception("first lease round for floor %s failed", self.floor_id)
        self.cluster.register(self)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the upstream socket if held, give the lease back, leave the rounds."""
        with self._life:
            self._stopped = True
            inner, self._inner = self._inner, None
        self.cluster.unregister(self)
        if inner is not None:
            inner.stop(timeout)
            self.cluster.release(self.floor_id)
        logger.info("floor %s no longer mirrored", self.floor_id)

    def give_up(self) -> None:
        """Stop the upstream socket and release the lease, but keep mirroring the floor."""
        with self._life:
            if self._inner is not None:
                self._drop("this process is stopping")
                self.cluster.release(self.floor_id)

    @property
    def holding(self) -> bool:
        """Whether this process holds the floor's upstream socket now."""
        return self._inner is not None

    @property
    def epoch(self) -> str:
        """The epoch kiosks are told: the fleet's, or a local one while shown stale here."""
        return self._local_epoch if self._local_stale else self.fleet_epoch

    @property
    def malformed_frames(self) -> int:
        """Upstream frames the held FloorFeed could not parse (0 when not held here)."""
        inner = self._inner
        return inner.malformed_frames if inner is not None else 0

    def wait_for_data(self, timeout: float) -> bool:
        """Wait (briefly) for the fleet's first word on this floor."""
        return self.has_data.wait(timeout)

    # -- the lease -----------------------------------------------------------------------------
    def lease_round(self) -> None:
        """Renew or take the lease; start or stop the upstream socket; check the mirror."""
        with self._life:
            if not self._stopped:
                self._lease_round()
        self.check_stale()

    def _lease_round(self) -> None:
        inner = self._inner
        if inner is not None and self._lost.is_set():
            self._drop("a publish was refused")
            inner = None
        heard_age = None if inner is None else inner.heard_age_s
        try:
            mine, epoch, seq, heard_at = self.cluster.round(self.floor_id, heard_age)
        except RedisError as exc:
            self.cluster.note(False, exc)
            if inner is not None:
                self._drop("redis unreachable")
            return
        self.cluster.note(True)
        if inner is not None and mine == 0:
            self._drop("lease lost")
        elif inner is not None and mine == 2:
            # Our lease was gone and we took it afresh: Redis restarted between two rounds
            # and lost the floor's state with it. Start over, in a new epoch.
            self._drop("redis lost its data")
            self._take_over(epoch, seq)
        elif inner is None and mine in (1, 2):
            if self.cluster.leaving:
                self.cluster.release(self.floor_id)
            else:
                self._take_over(epoch, seq)
        self._sync(epoch, seq, heard_at)

    def _take_over(self, epoch: str | None, seq: int) -> None:
        try:
            if epoch is None:
                # No fleet state: first use, or Redis came back empty. A new epoch makes kiosks
                # resync; the seq continues from ours, since the hub's seqs never go back.
                with self._lock:
                    start = max(self._high_seq, self.seq)
                state = self.cluster.init_state(self.floor_id, secrets.token_hex(4), start)
                if state is None:
                    return
                epoch, seq = state
        except RedisError as exc:
            self.cluster.note(False, exc)
            return
        inner = self._new_inner(self._token_display_id, epoch, seq_start=seq)
        inner.shared_polls, inner.doorways = self.shared_polls, self.doorways
        inner.publish_all_next = True  # kiosks hold another holder's state: replace it whole
        self._lost.clear()
        self._inner = inner
        self.cluster.takeovers += 1
        logger.info("floor %s: this process holds the upstream socket (seq %d)", self.floor_id, seq)
        inner.start()

    def _drop(self, reason: str) -> None:
        """Stop the upstream socket now; joining its threads happens in the background."""
        inner, self._inner = self._inner, None
        if inner is None:
            return
        logger.warning("floor %s: upstream socket stopped here (%s)", self.floor_id, reason)
        inner.halt()
        threading.Thread(target=inner.stop, args=(5.0,), daemon=True).start()

    # -- the holder's side: publish through Redis ----------------------------------------------
    def _holder_publish(self, floor_id: str, seq: int, text: str) -> None:
        """The inner FloorFeed's publish: through Redis (lease checked), then to our kiosks."""
        inner = self._inner
        if inner is None or self._lost.is_set():
            return
        message = json.loads(text)
        with self._lock:
            snapshot = self._snapshot_after(message)
        try:
            result = self.cluster.publish(
                floor_id, message["epoch"], seq, dumps(snapshot), text, message.get("heard_age_s")
            )
        except RedisError as exc:
            self.cluster.note(False, exc)
            result = 0
        if result != 1:
            # Lost the lease (or Redis): never two writers. The lease round stops the socket.
            self._lost.set()
            inner.halt(close_sockets=False)  # we are inside its publish: its loop closes them
            self.cluster.wake()
            return
        self._accept(message, text)

    def _snapshot_after(self, message: dict[str, Any]) -> dict[str, Any]:
        """The floor's snapshot once `message` is applied (lock held), as stored in Redis."""
        rooms = self._aged_rooms(self.clock.monotonic())
        rooms.update(message.get("rooms") or {})
        snapshot = {k: v for k, v in message.items() if k != "rooms"}
        return {**snapshot, "type": SNAPSHOT, "rooms": rooms, "floor": self._floor_info}

    # -- the mirror: every process's side ------------------------------------------------------
    def on_fleet_update(self, text: str) -> None:
        """An update from the floor's channel (the holder's, ours included)."""
        try:
            message = json.loads(text)
        except ValueError:
            logger.warning("floor %s: unreadable message on the fleet channel", self.floor_id)
            return
        if isinstance(message, dict) and message.get("type") == UPDATE:
            self._accept(message, text)

    def _accept(self, message: dict[str, Any], text: str) -> None:
        """Apply one fleet update and hand its text to our hub (each seq once, in order)."""
        epoch, seq = message.get("epoch"), message.get("seq")
        if not isinstance(epoch, str) or not isinstance(seq, int):
            return
        with self._lock:
            if epoch == self.fleet_epoch and seq <= self.seq:
                return  # had it (our own publish, echoed by Redis)
            now = self.clock.monotonic()
            rooms = message.get("rooms") or {}
            if epoch != self.fleet_epoch or seq != self.seq + 1:
                # A gap, or a new epoch: the hash holds the whole state at least this new.
                if not self._load(epoch, seq):
                    self._apply_gap(epoch, seq, rooms, now)
            else:
                for sid, room in rooms.items():
                    self._apply_room(sid, room, now)
                self.seq = seq
            self._feed = message.get("feed", self._feed)
            self._feed_reason = message.get("feed_reason")
            heard_age = message.get("heard_age_s")
            if isinstance(heard_age, int | float):
                self._note_heard(now - heard_age)
            self.has_data.set()
            self._local_stale = False
            self._to_hub(seq, text)

    def _apply_room(self, sid: str, room: dict[str, Any], now: float) -> None:
        self._rooms[sid] = (room, now)
        known = self.rooms.get(sid)
        if known is not None:
            known.follow(room)

    def _apply_gap(self, epoch: str, seq: int, rooms: dict[str, Any], now: float) -> None:
        """No state in Redis to fill a gap: keep only what this message says, rest unknown."""
        for sid, (room, _at) in list(self._rooms.items()):
            if sid not in rooms:
                self._rooms[sid] = (unknown(room), now)
        for sid, room in rooms.items():
            self._apply_room(sid, room, now)
        self.fleet_epoch, self.seq = epoch, seq

    def _to_hub(self, seq: int, text: str) -> None:
        """Hand an update to our kiosks (lock held)."""
        self._reconnect_ahead(seq - 1)
        self._high_seq = max(self._high_seq, seq)
        self._deliver_text(self.floor_id, seq, text)

    def _reconnect_ahead(self, seq: int) -> None:
        """Close kiosks that were sent a seq above `seq` (only after a new epoch went back).

        The hub never sends a kiosk a seq at or below one it has sent it, so they would hear
        nothing more; reconnecting (1012) gives each a fresh snapshot.
        """
        hub = self.cluster.hub
        if hub is None or seq >= self._high_seq:
            return
        for sub in hub.subscribers(self.floor_id):
            if sub.last_seq > seq:
                sub.close(CLOSE_RESTART, "fleet restarted")

    def _load(self, epoch: str | None = None, seq: int = 0) -> bool:
        """Adopt the floor's state from Redis when it is at least (epoch, seq); lock held."""
        asked = self.clock.monotonic()
        try:
            state, redis_now = self.cluster.load_state(self.floor_id)
        except RedisError as exc:
            self.cluster.note(False, exc)
            return False
        if not state.get("snapshot") or not state.get("epoch"):
            return False
        stored_seq = int(state.get("seq") or 0)
        if epoch is not None and (state["epoch"] != epoch or stored_seq < seq):
            return False
        try:
            snapshot = json.loads(state["snapshot"])
        except ValueError:
            return False
        now = self.clock.monotonic()
        stored_age = age(state.get("at"), redis_now) or 0.0  # since the snapshot was stored
        self._rooms = {}
        for sid, room in (snapshot.get("rooms") or {}).items():
            if isinstance(room.get("since_s"), int | float):
                room["since_s"] = round(room["since_s"] + stored_age, 1)
            self._apply_room(sid, room, now)
        self.fleet_epoch, self.seq = state["epoch"], stored_seq
        self._feed = snapshot.get("feed", STALE)
        self._feed_reason = snapshot.get("feed_reason")
        if isinstance(snapshot.get("floor"), dict):
            self._floor_info = snapshot["floor"]
        heard_age = age(state.get("heard"), redis_now)
        if heard_age is not None:
            self._note_heard(asked - heard_age)
        self.has_data.set()
        return True

    def resync_from_redis(self) -> None:
        """Catch up with the fleet (on start, and when the listener reconnects)."""
        with self._lock:
            before = (self.fleet_epoch, self.seq)
            if self._load() and (self.fleet_epoch, self.seq) != before:
                self._after_jump()

    def _sync(self, epoch: str | None, seq: int, heard: float | None) -> None:
        """A lease round's view of the fleet state (heard: monotonic): fill missed updates."""
        with self._lock:
            if epoch is None:
                return
            if (epoch != self.fleet_epoch or seq > self.seq) and self._load(epoch, seq):
                self._after_jump()
            # The holder's heartbeat speaks for the state we have, not for one we lack (a new
            # holder notes its heard time a moment before its first update reaches Redis).
            if heard is not None and epoch == self.fleet_epoch and seq <= self.seq:
                self._note_heard(heard)

    def _after_jump(self) -> None:
        """The mirror moved on without an update in hand: have our kiosks resync (lock held)."""
        self._local_stale = False
        self._reconnect_ahead(self.seq)
        self._high_seq = max(self._high_seq, self.seq)
        self._notify(self._envelope(HEARTBEAT, self.clock.monotonic()))

    def _note_heard(self, at: float) -> None:
        if self._heard is None or at > self._heard:
            self._heard = at

    def _notify(self, message: dict[str, Any]) -> None:
        """Send a message outside the floor's seq to our kiosks of the floor (lock held)."""
        hub = self.cluster.hub
        if hub is not None:
            hub.notify(self.floor_id, dumps(message))

    def check_stale(self) -> None:
        """Nobody heard from Density for this floor for too long: say so to our kiosks."""
        with self._lock:
            now = self.clock.monotonic()
            grace = min(1.0, self.settings.stale_after / 4)
            fresh = self._heard is not None and now - self._heard <= self.settings.stale_after
            if fresh:
                if self._local_stale:
                    # Fresh again without an update (the holder heartbeat): kiosks resync.
                    self._local_stale = False
                    self._notify(self._envelope(HEARTBEAT, now))
                return
            too_old = self._heard is None or now - self._heard > self.settings.stale_after + grace
            if self._local_stale or not too_old:
                return
            shows = any(room.get("state") in (FREE, OCCUPIED) for room, _ in self._rooms.values())
            if not shows and self._feed == STALE:
                return  # the fleet said stale itself: nothing to correct
            self._local_stale = True
            self._local_epoch = secrets.token_hex(4)
            self.local_stale_entries += 1
            logger.warning(
                "floor %s: no fresh data from the fleet: rooms shown unknown", self.floor_id
            )
            message = self._envelope(UPDATE, now)
            message["rooms"] = self._public_rooms(now)
            self._notify(message)

    # -- what kiosks receive (FloorFeed's interface, by the rules in core/rooms.py) ------------
    def _aged_rooms(self, now: float) -> dict[str, dict[str, Any]]:
        """The mirror's rooms with their ages as of `now` (lock held)."""
        return {sid: aged(room, at, now) for sid, (room, at) in self._rooms.items()}

    def _public_rooms(self, now: float) -> dict[str, dict[str, Any]]:
        rooms = self._aged_rooms(now)
        if self._local_stale:
            rooms = {sid: unknown(room) for sid, room in rooms.items()}
        return rooms

    def _state(self, now: float) -> tuple[str, str | None, float | None]:
        """(feed, reason, heard age) as kiosks are told them now (lock held)."""
        heard_age = None if self._heard is None else round(now - self._heard, 1)
        if self._local_stale:
            return STALE, "no fresh data from the fleet", heard_age
        return self._feed, self._feed_reason, heard_age

    def _envelope(self, kind: str, now: float) -> dict[str, Any]:
        feed, reason, heard_age = self._state(now)
        return envelope(
            kind,
            epoch=self.epoch,
            seq=self.seq,
            floor_id=self.floor_id,
            feed=feed,
            feed_reason=reason,
            heard_age_s=heard_age,
            wall=self.clock.time(),
        )

    def snapshot(self) -> dict[str, Any]:
        """Every room and the floor's state, from the mirror (never older than it admits)."""
        self.check_stale()
        now = self.clock.monotonic()
        with self._lock:
            message = self._envelope(SNAPSHOT, now)
            self._high_seq = max(self._high_seq, self.seq)  # a kiosk may now hold this seq
            message["rooms"] = self._public_rooms(now)
            message["floor"] = dict(self._floor_info)
            return message

    def heartbeat(self) -> dict[str, Any]:
        """The small message a quiet kiosk gets: seq and feed, no rooms."""
        self.check_stale()
        with self._lock:
            return self._envelope(HEARTBEAT, self.clock.monotonic())

    def send_in_order(self, kind: str, fields: dict[str, Any], send: Callable[[str], Any]) -> None:
        """As FloorFeed.send_in_order: the floor's envelope, queued in order with its updates."""
        with self._lock:
            message = self._envelope(kind, self.clock.monotonic())
            message.update(fields)
            send(dumps(message))

    def tick(self) -> None:
        """Housekeeping each second: the holder's own tick, and the mirror's honesty check."""
        inner = self._inner
        if inner is not None:
            inner.tick()
        self.check_stale()

    def status(self) -> dict[str, Any]:
        """For fleet health and metrics: the holder's channels when held here."""
        inner = self._inner
        channels = inner.status()["channels"] if inner is not None else []
        with self._lock:
            feed, reason, heard_age = self._state(self.clock.monotonic())
            return {
                "floor_id": self.floor_id,
                "mode": feed,
                "reason": reason,
                "heard_age_s": heard_age,
                "malformed_frames": self.malformed_frames,
                "channels": channels,
                "holder": inner is not None,
            }

    def set_sensor_health(self, by_space: dict[str, list[tuple[str, str]]]) -> None:
        """Record each room's sensors (shown to admins); the held FloorFeed publishes their
        effect (an entry room's health) to the fleet."""
        with self._lock:
            for sid, sensors in by_space.items():
                room = self.rooms.get(sid)
                if room is not None:
                    room.apply_sensors(sensors)
        inner = self._inner
        if inner is not None:
            inner.set_sensor_health(by_space)
