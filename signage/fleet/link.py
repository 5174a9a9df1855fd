"""This process's link to the fleet: the Redis connection, leases, the update stream, commands.

A floor's upstream socket is held by exactly one process of the fleet: the holder of the
floor's lease (a Redis key set with NX and a short expiry, renewed while held). Every process
with kiosks on a floor tries to take a free lease each round, so a dead holder is replaced
once its lease expires. Two threads, started after gunicorn's fork: the lease rounds (which
also send this process's report) and the listener for updates, display commands and nudges:
a display's kiosks may be connected to any process, so the hub (`ClusterHub`) broadcasts them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from signage.core.feeds import FeedSettings
from signage.core.hub import Hub
from signage.core.protocol import dumps
from signage.density.client import DensityClient
from signage.density.models import Space
from signage.fleet import scripts
from signage.fleet.feed import ClusterFeed
from signage.fleet.shared import RedisAttemptLimiter, RedisBudget, RedisTokens
from signage.fleet.view import FleetAlerts, FleetView, process_report, read_view

logger = logging.getLogger(__name__)

T = TypeVar("T")


def check_url(url: str) -> str | None:
    """Why a SIGNAGE_REDIS_URL cannot work, or None (never quoting it: it may hold a password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "SIGNAGE_REDIS_URL is not a valid URL"
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "SIGNAGE_REDIS_URL must start with redis://, rediss:// or unix://"
    if parts.scheme != "unix" and not parts.hostname:
        return "SIGNAGE_REDIS_URL has no host (redis://host:6379/0)"
    return None


class ClusterHub(Hub):
    """The hub, with display commands (reload, identify, revoke) sent to every process."""

    # Commands an admin gives a display (reload, identify) go to every process. Others, such as
    # announcements, are sent by a service that runs in each process for its own kiosks: sent
    # on, they would arrive twice.
    FLEET_COMMANDS = frozenset({"reload", "identify"})

    def __init__(self, cluster: Cluster, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cluster = cluster

    def close_display(self, display_id: int, code: int, reason: str) -> int:
        """Close the display's sockets here and on every other process of the fleet."""
        closed = super().close_display(display_id, code, reason)
        self.cluster.broadcast_display("close", display_id, code=code, reason=reason)
        return closed

    def command(self, display_id: int, text: str) -> int:
        """Queue a command for the display's sockets here (and, for admin's, everywhere)."""
        queued = super().command(display_id, text)
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind in self.FLEET_COMMANDS:
            self.cluster.broadcast_display("command", display_id, text=text)
        return queued

    def on_fleet_command(self, message: dict[str, Any]) -> None:
        """Apply a display command another process broadcast, to this process's sockets only."""
        display_id = message.get("display_id")
        if not isinstance(display_id, int):
            return
        if message.get("op") == "close":
            super().close_display(display_id, int(message["code"]), str(message["reason"]))
        elif message.get("op") == "command":
            super().command(display_id, str(message["text"]))


class Cluster:
    """This process's link to the fleet: leases, the update stream, shared tokens and budget."""

    def __init__(
        self,
        url: str,
        *,
        lease_ttl: float = 5.0,
        lease_renew: float = 1.5,
        stale_after: float = 120.0,
        timeout: float = 1.0,
    ) -> None:
        self.lease_ttl, self.lease_renew, self.stale_after = lease_ttl, lease_renew, stale_after
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        # No retries inside redis-py: a round that fails is simply the next round's business,
        # and a silent Redis must not hold a lease renewal (or a request) for long.
        self.redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            health_check_interval=0,
        )
        self.lua = scripts.Scripts(self.redis)
        self.hub: ClusterHub | None = None
        self._floors: dict[str, ClusterFeed] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.reachable: bool | None = None  # for logs on change, and /metrics
        self.tokens = RedisTokens(self)
        self.budget = RedisBudget(self)
        self.takeovers = 0  # leases this process took (metrics, tests)
        # Things each process serves from the database (announcements): when one process
        # changes them, the others are told to look again now rather than at their next check.
        self.on_nudge: dict[str, Callable[[], Any]] = {}
        self.leaving = False  # shutting down: take no more leases
        # What this process holds, reported for the fleet page of every process: a key with an
        # expiry of three reports, so a process that dies drops out of the fleet on its own.
        self.report_interval = max(2.0, 2 * lease_renew)
        self.report_ttl = 3 * self.report_interval
        self._reported_at: float | None = None  # monotonic time of the last report sent
        # Closed: no report may follow close()'s delete (a lease thread can outlive its join).
        self._closed = False
        self._report_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Cluster:
        """The cluster link for the app's settings."""
        problem = check_url(config["SIGNAGE_REDIS_URL"])
        if problem is not None:
            raise ValueError(problem)
        return cls(
            config["SIGNAGE_REDIS_URL"],
            lease_ttl=config["SIGNAGE_LEASE_TTL"],
            lease_renew=config["SIGNAGE_LEASE_RENEW"],
            stale_after=config["SIGNAGE_STALE_AFTER"],
        )

    # -- reachability --------------------------------------------------------------------------
    def note(self, ok: bool, error: BaseException | None = None) -> None:
        """Log when Redis becomes unreachable or reachable again (not on every failure)."""
        if ok == self.reachable:
            return
        previous, self.reachable = self.reachable, ok
        if not ok:
            logger.warning(
                "redis unreachable (%s): kiosks keep what they have", type(error).__name__
            )
        elif previous is not None:
            logger.info("redis reachable again")

    def call(self, request: Callable[[], T], failed: T) -> T:
        """`request()`'s answer, or `failed` when Redis cannot be reached (noted for the logs)."""
        try:
            return request()
        except RedisError as exc:
            self.note(False, exc)
            return failed

    # -- what signage/services.py builds on the link -------------------------------------------
    def hub_factory(self, **kwargs: Any) -> ClusterHub:
        """A hub whose display commands reach every process of the fleet."""
        self.hub = ClusterHub(self, **kwargs)
        return self.hub

    def feed_factory(
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
    ) -> ClusterFeed:
        """FeedManager's feed for a floor in Redis mode (FloorFeed's arguments, epoch unused)."""
        args = (floor_id, client, floor, list(rooms), settings, publish, token_display_id)
        return ClusterFeed(self, *args, seq_start)

    def alerts(self) -> FleetAlerts:
        """The fleet's side of the "down for N minutes" watcher."""
        return FleetAlerts(self)

    def attempt_limiter(self, name: str, local: Any) -> RedisAttemptLimiter:
        """Sign-in or pairing attempts counted fleet-wide; `local` counts while Redis is away."""
        return RedisAttemptLimiter(self, name, local)

    # -- the feeds this process mirrors --------------------------------------------------------
    def register(self, feed: ClusterFeed) -> None:
        """Take part in the floor's lease rounds and receive its updates."""
        with self._lock:
            self._floors[feed.floor_id] = feed
            self._ensure_threads()
        self._wake.set()

    def unregister(self, feed: ClusterFeed) -> None:
        """Leave the floor's lease rounds (its feed stopped)."""
        with self._lock:
            if self._floors.get(feed.floor_id) is feed:
                del self._floors[feed.floor_id]

    def floors(self) -> list[ClusterFeed]:
        """The floors this process mirrors now."""
        with self._lock:
            return list(self._floors.values())

    def wake(self) -> None:
        """Run a lease round now (a holder lost its right to publish)."""
        self._wake.set()

    def _ensure_threads(self) -> None:
        # Threads start with the first floor in use, after gunicorn has forked (lock held).
        if self._threads and all(t.is_alive() for t in self._threads):
            return
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._lease_loop, name="cluster-leases", daemon=True),
            threading.Thread(target=self._listen_loop, name="cluster-listen", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _lease_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            for feed in self.floors():
                try:
                    feed.lease_round()
                except Exception:  # one floor's misfortune must not end the fleet's leases
                    logger.exception("lease round for floor %s failed", feed.floor_id)
            self._report_if_due()
            self._wake.wait(max(0.05, self.lease_renew - (time.monotonic() - started)))
            self._wake.clear()

    def _listen_loop(self) -> None:
        """Receive every floor's updates and display commands; reconnect when Redis drops."""
        delay = 0.2
        while not self._stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(f"{scripts.UPDATES}*")
                pubsub.subscribe(scripts.DISPLAY_CHANNEL)
                delay = 0.2
                for feed in self.floors():  # what was published while we were away
                    feed.resync_from_redis()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except (RedisError, OSError) as exc:
                self.note(False, exc)
                self._stop.wait(delay)
                delay = min(2.0, delay * 2)
            except Exception:
                logger.exception("cluster listener failed")
                self._stop.wait(delay)
            finally:
                with suppress(RedisError, OSError):
                    pubsub.close()

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel, data = message.get("channel") or "", message.get("data")
        if data is None or message.get("type") not in ("message", "pmessage"):
            return
        if channel == scripts.DISPLAY_CHANNEL:
            self._on_display(data)
            return
        with self._lock:
            feed = self._floors.get(channel[len(scripts.UPDATES) :])
        if feed is not None:
            feed.on_fleet_update(data)

    # -- display commands and nudges across the fleet ------------------------------------------
    def _tell_others(self, op: str, **fields: Any) -> bool:
        """Publish a message for the other processes; False when Redis is away."""
        payload = dumps({"origin": self.id, "op": op, **fields})
        publish = self.redis.publish
        return self.call(lambda: publish(scripts.DISPLAY_CHANNEL, payload) is not None, False)

    def broadcast_display(self, op: str, display_id: int, **fields: Any) -> None:
        """Tell the other processes to close or command a display's kiosks."""
        if not self._tell_others(op, display_id=display_id, **fields):
            logger.warning("display %s: %s not sent to the other processes", display_id, op)

    def nudge(self, topic: str) -> None:
        """Tell the other processes that `topic` changed in the database (best effort)."""
        self._tell_others("nudge", topic=topic)  # else they see it at their next check

    def _on_display(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        hub = self.hub
        if not isinstance(message, dict) or message.get("origin") == self.id or hub is None:
            return
        if message.get("op") != "nudge":
            hub.on_fleet_command(message)
            return
        handler = self.on_nudge.get(str(message.get("topic")))
        if handler is not None:
            try:
                handler()
            except Exception:  # the listener thread must outlive a handler's failure
                logger.exception("nudge %s failed", message.get("topic"))

    # -- the Redis calls feeds make ------------------------------------------------------------
    def round(
        self, floor_id: str, heard_age: float | None
    ) -> tuple[int, str | None, int, float | None]:
        """Renew or take the floor's lease; (0 none / 1 held / 2 taken now, epoch, seq, heard).

        `heard_age` is how long ago the holder heard from Density; the answer's heard is the
        fleet's, as a local monotonic time (the age on Redis's clock, at the round's start).
        """
        asked = time.monotonic()
        want = "0" if self.leaving else "1"
        mine, epoch, seq, heard, redis_now = self.lua.round(
            keys=self._floor_keys(floor_id),
            args=[self.id, int(self.lease_ttl * 1000), scripts.age_arg(heard_age), want],
        )
        heard_s = scripts.age(heard, float(redis_now))
        heard_at = None if heard_s is None else asked - heard_s
        return int(mine), epoch, int(seq) if seq is not None else 0, heard_at

    def init_state(self, floor_id: str, epoch: str, seq: int) -> tuple[str, int] | None:
        """The floor's epoch and seq, created when Redis has none; None without the lease."""
        result = self.lua.init(keys=self._floor_keys(floor_id), args=[self.id, epoch, seq])
        if not result or int(result[0]) != 1:
            return None
        return result[1] or epoch, int(result[2])

    def publish(
        self,
        floor_id: str,
        epoch: str,
        seq: int,
        snapshot: str,
        update: str,
        heard_age: float | None,
    ) -> int:
        """Publish one update if we hold the lease: 1, or -1 lease lost, -2/-3 superseded."""
        channel, heard = scripts.UPDATES + floor_id, scripts.age_arg(heard_age)
        args = [self.id, epoch, seq, snapshot, update, channel, heard]
        return int(self.lua.publish(keys=self._floor_keys(floor_id), args=args))

    def load_state(self, floor_id: str) -> tuple[dict[str, str], float]:
        """The floor's fleet state as Redis has it (empty when none), and Redis's time then."""
        pipe = self.redis.pipeline(transaction=True)  # one moment: the stamps age from there
        pipe.hgetall(scripts.STATE.format(floor_id))
        pipe.time()
        state, (seconds, micros) = pipe.execute()
        return state, seconds + micros / 1_000_000

    @staticmethod
    def _floor_keys(floor_id: str) -> list[str]:
        return [scripts.LEASE.format(floor_id), scripts.STATE.format(floor_id)]

    def release(self, floor_id: str) -> None:
        """Give the floor's lease back at once (a clean stop): another process takes over."""
        with suppress(RedisError):  # else it expires on its own
            self.lua.release(keys=[scripts.LEASE.format(floor_id)], args=[self.id])

    def leave(self) -> None:
        """Stop holding any floor and give the leases back (SIGTERM: a rolling restart).

        The other processes take the floors over at their next round instead of waiting for
        the leases to expire; this process keeps relaying to its kiosks until it exits.
        """
        self.leaving = True
        for feed in self.floors():
            feed.give_up()

    # -- fleet health: what each process holds (fleet/view.py) ---------------------------------
    def start_reports(self) -> None:
        """Make sure this process reports to the fleet, kiosks or not (after gunicorn's fork)."""
        if self._closed:
            return
        with self._lock:
            self._ensure_threads()

    def _report_if_due(self) -> None:
        """Send this process's report when the last one is an interval old (lease loop)."""
        last = self._reported_at
        if self._closed or (last is not None and time.monotonic() - last < self.report_interval):
            return
        try:
            self.send_report()
        except Exception:  # a report must never end the lease loop
            logger.exception("fleet report failed")

    def send_report(self) -> bool:
        """Store this process's report in Redis, with an expiry; False when Redis is away."""
        payload = dumps(process_report(self))
        with self._report_lock:  # close() deletes the report under this lock, after this check
            if self._closed:
                return False
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(scripts.REPORT.format(self.id), payload, px=int(self.report_ttl * 1000))
                pipe.zadd(scripts.PROCS, {self.id: time.time()})
                # The index only says where to look: readers drop the ids whose report expired
                # (no host's clock decides), and it vanishes a day after the last report.
                pipe.pexpire(scripts.PROCS, 86_400_000)
                pipe.execute()
            except RedisError as exc:
                self.note(False, exc)
                return False
            self._reported_at = time.monotonic()
        self.note(True)
        return True

    def fleet_view(self, leases: bool = True) -> FleetView:
        """Every live process's report (this one's from memory) and each floor's lease holder.

        With Redis away the view holds this process alone and says so (`reachable` False).
        """
        self.start_reports()
        return read_view(self, leases)

    def live_processes(self) -> int | None:
        """Processes with a live report, this one included; None when Redis is away.

        For /metrics on every scrape: one EXISTS over the reports' keys, none read or parsed.
        """
        self.start_reports()
        try:
            ids = self.redis.zrange(scripts.PROCS, 0, -1)
            others = [scripts.REPORT.format(i) for i in ids if i != self.id]
            live = int(self.redis.exists(*others)) if others else 0
        except RedisError as exc:
            self.note(False, exc)
            return None
        self.note(True)
        return live + 1

    def close(self) -> None:
        """Stop the threads and close the connections (feeds are stopped by FeedManager)."""
        self._closed = True
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=3)
        with self._report_lock:  # a report in flight finishes first; none is sent after
            if self._reported_at is not None:
                with suppress(RedisError):  # off the fleet page now, not when it expires
                    self.redis.delete(scripts.REPORT.format(self.id))
                    self.redis.zrem(scripts.PROCS, self.id)
        with suppress(RedisError):
            self.redis.close()
