"""Fan-out through Redis: several server processes (or hosts) serve one fleet of kiosks.

With `SIGNAGE_REDIS_URL` set, a floor's upstream socket is held by exactly one process of the
fleet: the holder of the floor's lease (a Redis key set with NX and a short expiry, renewed
while held). The holder runs the ordinary `FloorFeed` and publishes each update through a Lua
script that checks the lease first (a process that lost it cannot publish: no two writers)
and, in the same step, stores the floor's snapshot, epoch and sequence number in a Redis hash.
Every process, holder included, mirrors each floor its kiosks use from that stream
(`ClusterFeed`): it hands each update's text unchanged to its own hub, and answers joining
kiosks from the mirror, which is loaded from Redis and kept current by the stream.

Failover: every process with kiosks on a floor tries to take a free lease each round, so a
dead holder is replaced once its lease expires. The new holder carries the sequence number on
from Redis; when Redis lost it (restarted without persistence) a new epoch starts, and kiosks
resync. A process that cannot renew its lease stops its upstream socket at once.

Honesty: the mirror knows when the fleet last heard from Density for the floor (from each
update and from the holder's heartbeat in the hash, stamped and aged on Redis's clock: hosts'
clocks need not agree). When nobody has heard for
`stale_after` (Redis away, no holder), the process tells its kiosks itself: every room
unknown, under a local epoch so that they resync when fresh data returns.

Also here, injected by signage/services.py: the token store and rate budget the Density client
shares with the fleet (so one process renews each token, and the 15 req/s budget is the
fleet's), and a hub whose display commands (reload, identify, close) reach every process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from signage.core.feeds import Doorways, FeedSettings, FloorFeed, SharedPolls
from signage.core.hub import Hub
from signage.core.protocol import CLOSE_RESTART
from signage.core.rooms import Room, aged, envelope, floor_info, unknown
from signage.density.client import DensityClient
from signage.density.models import Space
from signage.density.tokens import TokenGrant

logger = logging.getLogger(__name__)

PREFIX = "signage:"

# A screen in a process's fleet report: a list in this order (a report holds up to a process's
# thousand-odd kiosks every few seconds, so no key names). Times are ages in seconds when the
# report was written: hosts' clocks may disagree, so no wall clock time is compared.
SCREEN_FIELDS = (
    "display_id",
    "connected_s",
    "heartbeat_age_s",
    "screen",
    "version",
    "uptime_s",
    "heap",
)

# Times in the state hash ('heard', 'at') are on Redis's clock, never a host's: hosts' clocks
# may be minutes apart (a Pi after a boot without network), and a mirror comparing a holder's
# wall clock with its own would call dead data fresh, or fresh data stale. Writers send ages,
# the scripts stamp them with TIME; readers get TIME with the stamp and keep the age.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: lease, state hash. ARGV: holder id, ttl ms, heard age (s, or ""), want ("1"/"0").
# Renews a lease we hold (and records when the holder last heard from Density), takes a free
# one, and answers the floor's fleet state with Redis's time, in one round trip.
_ROUND = (
    _NOW
    + """
local cur = redis.call('GET', KEYS[1])
local mine = 0
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  mine = 1
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[2], 'heard', tostring(now - tonumber(ARGV[3])))
  end
elseif not cur and ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  mine = 2
end
local st = redis.call('HMGET', KEYS[2], 'epoch', 'seq', 'heard')
return {mine, st[1], st[2], st[3], tostring(now)}
"""
)

# KEYS: lease, state hash. ARGV: holder id, epoch, seq. The holder starts a new epoch when
# Redis has none for the floor (first use, or Redis restarted without its data).
_INIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local st = redis.call('HMGET', KEYS[2], 'epoch', 'seq')
if st[1] then return {1, st[1], st[2]} end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', ARGV[3])
return {1, ARGV[2], ARGV[3]}
"""

# KEYS: lease, state hash. ARGV: holder id, epoch, seq, snapshot, update text, channel, heard
# age (s, or ""). Fencing: only the lease holder publishes, in its epoch, with a higher seq.
_PUBLISH = (
    _NOW
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local st = redis.call('HMGET', KEYS[2], 'epoch', 'seq')
if st[1] and st[1] ~= ARGV[2] then return -2 end
if st[2] and tonumber(st[2]) >= tonumber(ARGV[3]) then return -3 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', ARGV[3], 'snapshot', ARGV[4],
  'at', tostring(now))
if ARGV[7] ~= '' then redis.call('HSET', KEYS[2], 'heard', tostring(now - tonumber(ARGV[7]))) end
redis.call('PUBLISH', ARGV[6], ARGV[5])
return 1
"""
)

# KEYS: a key. ARGV: expected value. Compare-and-delete (a lease, a lock).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: token hash. ARGV: access token. Drop the shared token only if it is still that one.
_DROP_TOKEN = """
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: bucket hash, pause key. ARGV: rate (per s), burst. Answers 0 (slot taken) or the
# milliseconds to wait. Redis's own clock, so hosts with skewed clocks share one bucket.
_TAKE = """
local p = redis.call('PTTL', KEYS[2])
local rate = tonumber(ARGV[1]) / 1000.0
if p > 0 then return p + math.ceil(1 / rate) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
local wait = 0
if tokens >= 0.999999 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], 600000)
return wait
"""

# Sign-in and pairing attempts, counted fleet-wide (a sorted set of Redis times per key):
# KEYS[1] the key; ARGV window (s), limit, "hit" or "peek", a unique member. Times are Redis's
# (hosts' clocks may be minutes apart, and each would see a window of its own).
# Returns {events in the window before this call, seconds until the oldest leaves it or -1,
# 1 if counted}.
_ATTEMPT = (
    _NOW
    + """
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
local frees = oldest and tostring(window - (now - tonumber(oldest))) or '-1'
if ARGV[3] == 'hit' and n < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], tostring(now), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return {n, frees, 1}
end
return {n, frees, 0}
"""
)

# KEYS: the seen set. ARGV: horizon (s), then the display ids held here. Stamps them with
# Redis's time and answers the ids seen within the horizon, so no host's clock is compared.
_SEEN = (
    _NOW
    + """
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], tostring(now), ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 86400)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""
)

# KEYS: bucket hash, pause key. ARGV: milliseconds. Every process waits; the bucket restarts
# empty when the pause ends, as the local limiter does.
_PAUSE = """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[2]) >= ms then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'tokens', '0', 'ts', tostring(now + ms))
redis.call('PEXPIRE', KEYS[1], 600000)
return 1
"""


def check_url(url: str) -> str | None:
    """Why a SIGNAGE_REDIS_URL cannot work, or None (never quoting it: it may hold a password)."""
    from urllib.parse import urlsplit

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


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _age(stamp: Any, redis_now: float) -> float | None:
    """Seconds from a stamp in the state hash to Redis's `redis_now`; None without a stamp."""
    try:
        return max(0.0, redis_now - float(stamp)) if stamp not in (None, "") else None
    except (TypeError, ValueError):
        return None  # not a time: as if never heard


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
        self.lease_ttl = lease_ttl
        self.lease_renew = lease_renew
        self.stale_after = stale_after
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
        self._round = self.redis.register_script(_ROUND)
        self._init = self.redis.register_script(_INIT)
        self._publish = self.redis.register_script(_PUBLISH)
        self._release = self.redis.register_script(_RELEASE)
        self._drop_token = self.redis.register_script(_DROP_TOKEN)
        self._take = self.redis.register_script(_TAKE)
        self._pause = self.redis.register_script(_PAUSE)
        self._attempt = self.redis.register_script(_ATTEMPT)
        self.hub: Hub | None = None
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

    # -- keys ----------------------------------------------------------------------------------
    @staticmethod
    def lease_key(floor_id: str) -> str:
        return f"{PREFIX}lease:{floor_id}"

    @staticmethod
    def state_key(floor_id: str) -> str:
        return f"{PREFIX}floor:{floor_id}"

    @staticmethod
    def channel(floor_id: str) -> str:
        return f"{PREFIX}u:{floor_id}"

    DISPLAY_CHANNEL = f"{PREFIX}display"

    # -- reachability --------------------------------------------------------------------------
    def alerts(self) -> FleetAlerts:
        """The fleet's side of the "down for N minutes" watcher."""
        return FleetAlerts(self)

    def attempt_limiter(self, name: str, local: Any) -> RedisAttemptLimiter:
        """Sign-in or pairing attempts counted fleet-wide; `local` counts while Redis is away."""
        return RedisAttemptLimiter(self, name, local)

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

    # -- the feeds this process mirrors --------------------------------------------------------
    def hub_factory(self, **kwargs: Any) -> ClusterHub:
        """A hub whose display commands reach every process of the fleet."""
        hub = ClusterHub(**kwargs)
        hub.cluster = self
        self.hub = hub
        return hub

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
        """FeedManager's feed for a floor in Redis mode (FloorFeed's arguments)."""
        return ClusterFeed(
            self,
            floor_id,
            client,
            floor,
            list(rooms),
            settings,
            publish,
            token_display_id,
            seq_start,
        )

    def register(self, feed: ClusterFeed) -> None:
        with self._lock:
            self._floors[feed.floor_id] = feed
            self._ensure_threads()
        self._wake.set()

    def unregister(self, feed: ClusterFeed) -> None:
        with self._lock:
            if self._floors.get(feed.floor_id) is feed:
                del self._floors[feed.floor_id]

    def floors(self) -> list[ClusterFeed]:
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
                pubsub.psubscribe(f"{PREFIX}u:*")
                pubsub.subscribe(self.DISPLAY_CHANNEL)
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
                try:
                    pubsub.close()
                except (RedisError, OSError):
                    pass

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = _text(message.get("channel")) or ""
        data = _text(message.get("data"))
        if data is None or message.get("type") not in ("message", "pmessage"):
            return
        if channel == self.DISPLAY_CHANNEL:
            self._on_display(data)
            return
        floor_id = channel[len(f"{PREFIX}u:") :]
        with self._lock:
            feed = self._floors.get(floor_id)
        if feed is not None:
            feed.on_fleet_update(data)

    # -- display commands across the fleet -----------------------------------------------------
    def broadcast_display(self, op: str, display_id: int, **fields: Any) -> None:
        """Tell the other processes to close or command a display's kiosks."""
        payload = _dumps({"origin": self.id, "op": op, "display_id": display_id, **fields})
        try:
            self.redis.publish(self.DISPLAY_CHANNEL, payload)
        except RedisError as exc:
            self.note(False, exc)
            logger.warning("display %s: %s not sent to the other processes", display_id, op)

    def nudge(self, topic: str) -> None:
        """Tell the other processes that `topic` changed in the database (best effort)."""
        payload = _dumps({"origin": self.id, "op": "nudge", "topic": topic})
        try:
            self.redis.publish(self.DISPLAY_CHANNEL, payload)
        except RedisError as exc:
            self.note(False, exc)  # they still see it at their next check of the database

    def _on_display(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        hub = self.hub
        if not isinstance(message, dict) or message.get("origin") == self.id or hub is None:
            return
        if message.get("op") == "nudge":
            handler = self.on_nudge.get(str(message.get("topic")))
            if handler is not None:
                try:
                    handler()
                except Exception:  # the listener thread must outlive a handler's failure
                    logger.exception("nudge %s failed", message.get("topic"))
            return
        display_id = message.get("display_id")
        if not isinstance(display_id, int):
            return
        if message.get("op") == "close":
            Hub.close_display(hub, display_id, int(message["code"]), str(message["reason"]))
        elif message.get("op") == "command":
            Hub.command(hub, display_id, str(message["text"]))

    # -- the Redis calls feeds make ------------------------------------------------------------
    def round(
        self, floor_id: str, heard_age: float | None
    ) -> tuple[int, str | None, int, float | None]:
        """Renew or take the floor's lease; (0 none / 1 held / 2 taken now, epoch, seq, heard).

        `heard_age` is how long ago the holder heard from Density; the answer's heard is the
        fleet's, as a local monotonic time (the age on Redis's clock, at the round's start).
        """
        asked = time.monotonic()
        mine, epoch, seq, heard, redis_now = self._round(
            keys=[self.lease_key(floor_id), self.state_key(floor_id)],
            args=[
                self.id,
                int(self.lease_ttl * 1000),
                "" if heard_age is None else repr(max(0.0, float(heard_age))),
                "0" if self.leaving else "1",
            ],
        )
        age = _age(heard, float(redis_now))
        return (
            int(mine),
            _text(epoch),
            int(seq) if seq is not None else 0,
            None if age is None else asked - age,
        )

    def init_state(self, floor_id: str, epoch: str, seq: int) -> tuple[str, int] | None:
        """The floor's epoch and seq, created when Redis has none; None without the lease."""
        result = self._init(
            keys=[self.lease_key(floor_id), self.state_key(floor_id)],
            args=[self.id, epoch, seq],
        )
        if not result or int(result[0]) != 1:
            return None
        return _text(result[1]) or epoch, int(result[2])

    def publish(
        self,
        floor_id: str,
        epoch: str,
        seq: int,
        snapshot: str,
        text: str,
        heard_age: float | None,
    ) -> int:
        """Publish one update if we hold the lease: 1, or -1 lease lost, -2/-3 superseded."""
        return int(
            self._publish(
                keys=[self.lease_key(floor_id), self.state_key(floor_id)],
                args=[
                    self.id,
                    epoch,
                    seq,
                    snapshot,
                    text,
                    self.channel(floor_id),
                    "" if heard_age is None else repr(max(0.0, float(heard_age))),
                ],
            )
        )

    def load_state(self, floor_id: str) -> tuple[dict[str, str], float]:
        """The floor's fleet state as Redis has it (empty when none), and Redis's time then."""
        pipe = self.redis.pipeline(transaction=True)  # one moment: the stamps age from there
        pipe.hgetall(self.state_key(floor_id))
        pipe.time()
        state, (seconds, micros) = pipe.execute()
        return state, seconds + micros / 1_000_000

    def release(self, floor_id: str) -> None:
        """Give the floor's lease back at once (a clean stop): another process takes over."""
        try:
            self._release(keys=[self.lease_key(floor_id)], args=[self.id])
        except RedisError:
            pass  # it expires on its own

    def leave(self) -> None:
        """Stop holding any floor and give the leases back (SIGTERM: a rolling restart).

        The other processes take the floors over at their next round instead of waiting for
        the leases to expire; this process keeps relaying to its kiosks until it exits.
        """
        self.leaving = True
        for feed in self.floors():
            feed.give_up()

    # -- fleet health: what each process holds -------------------------------------------------
    PROCS = f"{PREFIX}procs"  # sorted set: every process that reported lately (ids only)

    @staticmethod
    def report_key(process_id: str) -> str:
        return f"{PREFIX}proc:{process_id}"

    def start_reports(self) -> None:
        """Make sure this process reports to the fleet, kiosks or not (after gunicorn's fork)."""
        if self._closed:
            return
        with self._lock:
            self._ensure_threads()

    def report(self) -> dict[str, Any]:
        """What this process holds, from memory: its screens and the floors it mirrors.

        Display ids, floor ids and what pages said of themselves: never a credential or token.
        Times are ages (seconds) now: readers on other hosts add how long ago it was written.
        """
        now = time.monotonic()

        def age(monotonic: Any) -> float | None:
            return round(max(0.0, now - monotonic), 1) if isinstance(monotonic, float) else None

        screens: list[list[Any]] = []
        kiosks: dict[str, int] = {}
        hub = self.hub
        if hub is not None:
            for sub in hub.subscribers():
                info = sub.info  # replaced whole by the socket's thread, never changed in place
                screens.append(
                    [
                        sub.display_id,
                        age(sub.connected_at),
                        age(info.get("received_at")),
                        *(info.get(name) for name in SCREEN_FIELDS[3:]),
                    ]
                )
            kiosks = hub.counts_by_floor()
        floors = []
        for feed in self.floors():
            status = feed.status()
            heard = status["heard_age_s"]
            floors.append(
                {
                    "id": feed.floor_id,
                    "holder": feed.holding,
                    "mode": status["mode"],
                    "reason": status["reason"],
                    "heard_age_s": None if heard is None else round(heard, 1),
                    "kiosks": kiosks.get(feed.floor_id, 0),
                }
            )
        host, pid, _ = self.id.rsplit(":", 2)
        return {
            "id": self.id,
            "host": host,
            "pid": int(pid),
            "ttl": self.report_ttl,  # readers tell the report's age from the key's time to live
            "screens": screens,
            "floors": floors,
        }

    def _report_if_due(self) -> None:
        """Send this process's report when the last one is an interval old (lease loop)."""
        now = time.monotonic()
        if self._closed:
            return
        if self._reported_at is not None and now - self._reported_at < self.report_interval:
            return
        try:
            self.send_report()
        except Exception:  # a report must never end the lease loop
            logger.exception("fleet report failed")

    def send_report(self) -> bool:
        """Store this process's report in Redis, with an expiry; False when Redis is away."""
        payload = _dumps(self.report())
        with self._report_lock:  # close() deletes the report under this lock, after this check
            if self._closed:
                return False
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(self.report_key(self.id), payload, px=int(self.report_ttl * 1000))
                pipe.zadd(self.PROCS, {self.id: time.time()})
                # The index only says where to look: readers drop the ids whose report expired
                # (no host's clock decides), and it vanishes a day after the last report.
                pipe.pexpire(self.PROCS, 86_400_000)
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
        mine = _normalise(self.report())
        assert mine is not None
        mine["age_s"] = 0.0
        try:
            ids = [_text(i) or "" for i in self.redis.zrange(self.PROCS, 0, -1)]
            keys = [self.report_key(i) for i in ids]
            values: list[Any] = []
            ttls: list[Any] = []
            if ids:
                # Each report with its time to live, from the same moment (MULTI): how long ago
                # it was written is the sender's expiry minus what is left, on Redis's clock.
                pipe = self.redis.pipeline(transaction=True)
                pipe.mget(keys)
                for key in keys:
                    pipe.pttl(key)
                values, *ttls = pipe.execute()
            reports: dict[str, dict[str, Any]] = {}
            for value, ttl in zip(values, ttls, strict=True):
                report = _parse_report(value)
                if report is not None and report["id"] != self.id:
                    reports[report["id"]] = _aged(report, _written_ago(report, ttl))
            reports[self.id] = mine
            gone = [pid for pid, value in zip(ids, values, strict=True) if value is None]
            if gone:  # expired with their process: out of the index
                self.redis.zrem(self.PROCS, *gone)
            holders: dict[str, str | None] = {}
            if leases:
                floor_ids = sorted({f["id"] for r in reports.values() for f in r["floors"]})
                pipe = self.redis.pipeline(transaction=False)
                for floor_id in floor_ids:
                    pipe.get(self.lease_key(floor_id))
                holders = {f: _text(v) for f, v in zip(floor_ids, pipe.execute(), strict=True)}
        except RedisError as exc:
            self.note(False, exc)
            holding = {f["id"]: self.id if f["holder"] else None for f in mine["floors"]}
            return FleetView(self.id, False, {self.id: mine}, holding)
        self.note(True)
        return FleetView(self.id, True, reports, holders)

    def live_processes(self) -> int | None:
        """Processes with a live report, this one included; None when Redis is away.

        For /metrics on every scrape: one EXISTS over the reports' keys, none read or parsed.
        """
        self.start_reports()
        try:
            ids = [_text(i) or "" for i in self.redis.zrange(self.PROCS, 0, -1)]
            others = [self.report_key(i) for i in ids if i != self.id]
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
                try:  # leave the fleet page now rather than when the report expires
                    self.redis.delete(self.report_key(self.id))
                    self.redis.zrem(self.PROCS, self.id)
                except RedisError:
                    pass
        try:
            self.redis.close()
        except RedisError:
            pass


class ClusterHub(Hub):
    """The hub, with display commands (reload, identify, revoke) sent to every process."""

    cluster: Cluster | None = None

    def close_display(self, display_id: int, code: int, reason: str) -> int:
        """Close the display's sockets here and on every other process of the fleet."""
        closed = super().close_display(display_id, code, reason)
        if self.cluster is not None:
            self.cluster.broadcast_display("close", display_id, code=code, reason=reason)
        return closed

    # Commands an admin gives a display (reload, identify) go to every process. Others, such as
    # announcements, are sent by a service that runs in each process for its own kiosks: sent
    # on, they would arrive twice.
    FLEET_COMMANDS = frozenset({"reload", "identify"})

    def command(self, display_id: int, text: str) -> int:
        """Queue a command for the display's sockets here (and, for admin's, everywhere)."""
        queued = super().command(display_id, text)
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if self.cluster is not None and kind in self.FLEET_COMMANDS:
            self.cluster.broadcast_display("command", display_id, text=text)
        return queued


class ClusterFeed:
    """One floor as this process sees the fleet's stream; runs the FloorFeed when leased."""

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
        self.client = client
        self.floor = floor
        self.spaces = spaces
        self.settings = settings
        self._deliver_text = publish
        self.token_display_id = token_display_id
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
        self._feed = "stale"
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

    def _blank_feed(self, epoch: str, seq: int) -> FloorFeed:
        feed = FloorFeed(
            self.floor_id,
            self.client,
            self.floor,
            self.spaces,
            self.settings,
            self._holder_publish,
            self.token_display_id,
            epoch,
            seq_start=seq,
        )
        feed.shared_polls, feed.doorways = self.shared_polls, self.doorways
        return feed

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
        return self._local_epoch if self._local_stale else self.fleet_epoch

    @property
    def malformed_frames(self) -> int:
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
        heard_age = None if inner is None else inner.status()["heard_age_s"]
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
        inner = self._blank_feed(epoch, seq)
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
                floor_id, message["epoch"], seq, _dumps(snapshot), text, message.get("heard_age_s")
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
        now = self.clock.monotonic()
        rooms = {sid: aged(room, at, now) for sid, (room, at) in self._rooms.items()}
        rooms.update(message.get("rooms") or {})
        snapshot = {k: v for k, v in message.items() if k != "rooms"}
        snapshot["type"] = "snapshot"
        snapshot["rooms"] = rooms
        snapshot["floor"] = self._floor_info
        return snapshot

    # -- the mirror: every process's side ------------------------------------------------------
    def on_fleet_update(self, text: str) -> None:
        """An update from the floor's channel (the holder's, ours included)."""
        try:
            message = json.loads(text)
        except ValueError:
            logger.warning("floor %s: unreadable message on the fleet channel", self.floor_id)
            return
        if isinstance(message, dict) and message.get("type") == "update":
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
            age = message.get("heard_age_s")
            if isinstance(age, int | float):
                self._note_heard(now - age)
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
        aged = _age(state.get("at"), redis_now) or 0.0  # since the snapshot was stored
        self._rooms = {}
        for sid, room in (snapshot.get("rooms") or {}).items():
            if isinstance(room.get("since_s"), int | float):
                room["since_s"] = round(room["since_s"] + aged, 1)
            self._apply_room(sid, room, now)
        self.fleet_epoch, self.seq = state["epoch"], stored_seq
        self._feed = snapshot.get("feed", "stale")
        self._feed_reason = snapshot.get("feed_reason")
        if isinstance(snapshot.get("floor"), dict):
            self._floor_info = snapshot["floor"]
        heard_age = _age(state.get("heard"), redis_now)
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
        self._notify(self._envelope("heartbeat", self.clock.monotonic()))

    def _note_heard(self, at: float) -> None:
        if self._heard is None or at > self._heard:
            self._heard = at

    def _notify(self, message: dict[str, Any]) -> None:
        """Send a message outside the floor's seq to our kiosks of the floor (lock held)."""
        hub = self.cluster.hub
        if hub is None:
            return
        text = _dumps(message)
        notify = getattr(hub, "notify", None)
        if notify is not None:
            notify(self.floor_id, text)
            return
        for sub in hub.subscribers(self.floor_id):
            hub.send(sub, text)

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
                    self._notify(self._envelope("heartbeat", now))
                return
            too_old = self._heard is None or now - self._heard > self.settings.stale_after + grace
            if self._local_stale or not too_old:
                return
            shows = any(
                room.get("state") in ("free", "occupied") for room, _ in self._rooms.values()
            )
            if not shows and self._feed == "stale":
                return  # the fleet said stale itself: nothing to correct
            self._local_stale = True
            self._local_epoch = secrets.token_hex(4)
            self.local_stale_entries += 1
            logger.warning(
                "floor %s: no fresh data from the fleet: rooms shown unknown", self.floor_id
            )
            message = self._envelope("update", now)
            message["rooms"] = self._public_rooms(now)
            self._notify(message)

    # -- what kiosks receive (FloorFeed's interface, by the rules in core/rooms.py) ---------
    def _public_rooms(self, now: float) -> dict[str, dict[str, Any]]:
        rooms = {sid: aged(room, at, now) for sid, (room, at) in self._rooms.items()}
        if self._local_stale:
            rooms = {sid: unknown(room) for sid, room in rooms.items()}
        return rooms

    def _envelope(self, kind: str, now: float) -> dict[str, Any]:
        stale = self._local_stale
        return envelope(
            kind,
            epoch=self._local_epoch if stale else self.fleet_epoch,
            seq=self.seq,
            floor_id=self.floor_id,
            feed="stale" if stale else self._feed,
            feed_reason="no fresh data from the fleet" if stale else self._feed_reason,
            heard_age_s=None if self._heard is None else round(now - self._heard, 1),
            wall=self.clock.time(),
        )

    def snapshot(self) -> dict[str, Any]:
        """Every room and the floor's state, from the mirror (never older than it admits)."""
        self.check_stale()
        now = self.clock.monotonic()
        with self._lock:
            message = self._envelope("snapshot", now)
            self._high_seq = max(self._high_seq, self.seq)  # a kiosk may now hold this seq
            message["rooms"] = self._public_rooms(now)
            message["floor"] = dict(self._floor_info)
            return message

    def heartbeat(self) -> dict[str, Any]:
        """The small message a quiet kiosk gets: seq and feed, no rooms."""
        self.check_stale()
        with self._lock:
            return self._envelope("heartbeat", self.clock.monotonic())

    def send_in_order(self, kind: str, fields: dict[str, Any], send: Callable[[str], Any]) -> None:
        """As FloorFeed.send_in_order: the floor's envelope, queued in order with its updates."""
        with self._lock:
            message = self._envelope(kind, self.clock.monotonic())
            message.update(fields)
            send(json.dumps(message, separators=(",", ":")))

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
        now = self.clock.monotonic()
        with self._lock:
            stale = self._local_stale
            return {
                "floor_id": self.floor_id,
                "mode": "stale" if stale else self._feed,
                "reason": "no fresh data from the fleet" if stale else self._feed_reason,
                "heard_age_s": None if self._heard is None else round(now - self._heard, 1),
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


class RedisTokens:
    """Density tokens shared by the fleet (signage.density.tokens.SharedTokens).

    The token is a secret: it is kept in Redis (which must be private to the servers, as the
    database is) and never logged. One renewal in flight per key fleet-wide: a lock key with
    an expiry, so a renewer that dies frees it.
    """

    LOCK_MS = 15_000

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._locks: dict[str, str] = {}
        self._mutex = threading.Lock()

    @staticmethod
    def _key(key: str) -> str:
        return f"{PREFIX}token:{key}"

    def load(self, key: str) -> tuple[TokenGrant, float] | None:
        try:
            pipe = self.cluster.redis.pipeline(transaction=False)
            pipe.hgetall(self._key(key))
            pipe.pttl(self._key(key))
            fields, pttl = pipe.execute()
        except RedisError as exc:
            self.cluster.note(False, exc)
            return None
        if not fields or pttl is None or pttl <= 0:
            return None
        try:
            grant = TokenGrant(
                access_token=fields["access_token"],
                expires_in=float(fields["lifetime"]),
                scope=fields.get("scope") or None,
                token_type=fields.get("token_type") or "Bearer",
            )
        except (KeyError, ValueError):
            return None
        return grant, pttl / 1000.0

    def lock(self, key: str) -> bool | None:
        value = secrets.token_hex(8)
        try:
            taken = self.cluster.redis.set(
                f"{self._key(key)}:lock", value, nx=True, px=self.LOCK_MS
            )
        except RedisError as exc:
            self.cluster.note(False, exc)
            return None
        if taken:
            with self._mutex:
                self._locks[key] = value
        return bool(taken)

    def unlock(self, key: str) -> None:
        with self._mutex:
            value = self._locks.pop(key, None)
        if value is None:
            return
        try:
            self.cluster._release(keys=[f"{self._key(key)}:lock"], args=[value])
        except RedisError:
            pass  # it expires on its own

    def store(self, key: str, grant: TokenGrant, left: float) -> None:
        if left <= 0:
            return
        try:
            pipe = self.cluster.redis.pipeline(transaction=True)
            pipe.delete(self._key(key))
            pipe.hset(
                self._key(key),
                mapping={
                    "access_token": grant.access_token,
                    "lifetime": repr(grant.expires_in),
                    "scope": grant.scope or "",
                    "token_type": grant.token_type,
                },
            )
            pipe.pexpire(self._key(key), int(left * 1000))
            pipe.execute()
        except RedisError as exc:
            self.cluster.note(False, exc)

    def drop(self, key: str, access_token: str) -> None:
        try:
            self.cluster._drop_token(keys=[self._key(key)], args=[access_token])
        except RedisError as exc:
            self.cluster.note(False, exc)


class RedisBudget:
    """The fleet's request budget to Density (signage.density.ratelimit.SharedBudget)."""

    BUCKET = f"{PREFIX}rate:bucket"
    PAUSE = f"{PREFIX}rate:pause"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def take(self, rate: float, burst: int) -> float | None:
        try:
            wait_ms = self.cluster._take(keys=[self.BUCKET, self.PAUSE], args=[rate, burst])
        except RedisError as exc:
            self.cluster.note(False, exc)
            return None
        return int(wait_ms) / 1000.0

    def pause(self, seconds: float) -> bool | None:
        try:
            self.cluster._pause(keys=[self.BUCKET, self.PAUSE], args=[max(1, int(seconds * 1000))])
        except RedisError as exc:
            self.cluster.note(False, exc)
            return None
        return True


class RedisAttemptLimiter:
    """Sign-in and pairing attempts counted for the whole fleet (auth.AttemptLimiter's API).

    Without it, N processes would allow N times the attempts. While Redis is unreachable the
    process counts on its own (`local`), so limits still hold per process.
    """

    def __init__(self, cluster: Cluster, name: str, local: Any) -> None:
        self.cluster, self.name, self.local = cluster, name, local
        self.limit, self.window = local.limit, local.window

    def _key(self, key: str) -> str:
        # Hashed: keys are addresses and user names, kept out of Redis's keyspace as such.
        digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
        return f"{PREFIX}attempts:{self.name}:{digest}"

    def _call(self, key: str, mode: str) -> tuple[int, float, bool] | None:
        """The script's answer: (events in the window, seconds until it frees or -1, counted)."""
        try:
            n, frees, counted = self.cluster._attempt(
                keys=[self._key(key)],
                args=[self.window, self.limit, mode, secrets.token_hex(8)],
            )
        except RedisError as exc:
            self.cluster.note(False, exc)
            return None
        self.cluster.note(True)
        return int(n), float(frees), bool(int(counted))

    def blocked(self, key: str) -> bool:
        """Whether the key has used up its allowance, fleet-wide."""
        answer = self._call(key, "peek")
        return self.local.blocked(key) if answer is None else answer[0] >= self.limit

    def hit(self, key: str) -> bool:
        """Count one event; False when the key was already over its allowance."""
        answer = self._call(key, "hit")
        return self.local.hit(key) if answer is None else answer[2]

    def count(self, key: str) -> int:
        """Events of the key within the window, fleet-wide."""
        answer = self._call(key, "peek")
        return self.local.count(key) if answer is None else answer[0]

    def retry_after(self, key: str) -> int:
        """Seconds until the key may try again."""
        answer = self._call(key, "peek")
        if answer is None:
            return self.local.retry_after(key)
        n, frees, _ = answer
        if n < self.limit or frees < 0:
            return 0
        return max(1, int(frees) + 1)  # as the local limiter rounds it

    def reset(self, key: str) -> None:
        """Forget a key's events (a successful sign-in)."""
        self.local.reset(key)
        try:
            self.cluster.redis.delete(self._key(key))
        except RedisError as exc:
            self.cluster.note(False, exc)

    def undo(self, key: str) -> None:
        """Take back the key's latest event, fleet-wide (an attempt that turned out right)."""
        try:
            self.cluster.redis.zpopmax(self._key(key))
        except RedisError as exc:
            self.cluster.note(False, exc)
            self.local.undo(key)


class FleetAlerts:
    """What the "down for N minutes" watcher needs to know of the fleet (signage.actions.alerts).

    Each process records the displays whose screens it holds; a display is connected if any
    process saw it lately. A report is sent by one process only: "down" by the first to claim
    the outage, "recovered" by the one that ends it. With Redis away, each process decides
    alone (a report sent twice beats one never sent).
    """

    SEEN = f"{PREFIX}alerts:seen"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._seen = cluster.redis.register_script(_SEEN)  # no round trip until first use

    def connected(self, here: set[int], horizon: float) -> set[int] | None:
        """Record the displays held here; return those held anywhere within `horizon` s."""
        try:
            # Stamped and read on Redis's clock: a host whose clock is off by more than the
            # horizon would otherwise call displays held elsewhere down (or dead ones up).
            seen = self._seen(keys=[self.SEEN], args=[horizon, *(str(d) for d in sorted(here))])
        except RedisError as exc:
            self.cluster.note(False, exc)
            return None
        return {int(d) for d in seen if str(d).isdigit()}

    def claim(self, event: str, kind: str, id_: str) -> bool:
        """Whether this process is the one to send this report."""
        key = f"{PREFIX}alerts:down:{kind}:{id_}"
        try:
            if event == "down":
                return bool(self.cluster.redis.set(key, self.cluster.id, nx=True, ex=7 * 86400))
            return self.cluster.redis.getdel(key) is not None
        except RedisError as exc:
            self.cluster.note(False, exc)
            return True


def _normalise(report: dict[str, Any]) -> dict[str, Any] | None:
    """A report with its screens as dicts, junk left out; None when it is not a report."""
    if not isinstance(report, dict) or not isinstance(report.get("id"), str):
        return None
    rows = report.get("screens")
    screens = [dict(zip(SCREEN_FIELDS, r, strict=False)) for r in rows or [] if isinstance(r, list)]
    floors = report.get("floors")
    return {
        **report,
        "screens": [s for s in screens if isinstance(s.get("display_id"), int)],
        "floors": [f for f in floors or [] if isinstance(f, dict) and isinstance(f.get("id"), str)],
    }


def _number(value: Any) -> float | None:
    """A number from a report (JSON), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _written_ago(report: dict[str, Any], pttl: Any) -> float:
    """Seconds since the report was written: its sender's expiry minus the key's time left."""
    ttl = _number(report.get("ttl"))
    if ttl is None or not isinstance(pttl, int) or pttl < 0:
        return 0.0
    return max(0.0, ttl - pttl / 1000)


def _aged(report: dict[str, Any], ago: float) -> dict[str, Any]:
    """The report's ages as of now: as written, plus how long ago it was written."""

    def older(value: Any) -> float | None:
        age = _number(value)
        return None if age is None else round(max(0.0, age) + ago, 1)

    return {
        **report,
        "age_s": round(ago, 1),
        "screens": [
            {
                **s,
                "connected_s": older(s.get("connected_s")),
                "heartbeat_age_s": older(s.get("heartbeat_age_s")),
            }
            for s in report["screens"]
        ],
        "floors": [{**f, "heard_age_s": older(f.get("heard_age_s"))} for f in report["floors"]],
    }


def _heard_age(floor: dict[str, Any]) -> float:
    age = _number(floor.get("heard_age_s"))
    return float("inf") if age is None else age


def _parse_report(value: Any) -> dict[str, Any] | None:
    """A process's report as stored in Redis; None when it expired or cannot be read."""
    text = _text(value)
    if not text:
        return None
    try:
        return _normalise(json.loads(text))
    except ValueError:
        return None


class FleetView:
    """The fleet as its live processes last reported it, for the fleet page.

    Reports come with their ages as of when they were read (`_aged`), "age_s" included.
    """

    NOTE_ALONE = (
        "Redis cannot be reached: this shows this process only; screens and floor feeds held "
        "by the other processes are missing."
    )

    def __init__(
        self,
        process: str,
        reachable: bool,
        reports: dict[str, dict[str, Any]],
        holders: dict[str, str | None],
    ) -> None:
        self.process = process  # this process's id
        self.reachable = reachable
        self.reports = reports  # by process id, this one's included (from memory)
        self.holders = holders  # floor id -> the process holding its lease, or None
        self._screens: dict[int, list[dict[str, Any]]] = {}
        for pid, report in sorted(reports.items()):
            if pid == process:
                continue  # fleet_status reads this process's screens from its hub
            for screen in report["screens"]:
                self._screens.setdefault(screen["display_id"], []).append(self._screen(screen, pid))

    @staticmethod
    def _age(value: Any) -> float | None:
        age = _number(value)
        return None if age is None else round(max(0.0, age), 1)

    def _screen(self, screen: dict[str, Any], pid: str) -> dict[str, Any]:
        """A reported screen in fleet_status's shape, with the process that holds it."""
        return {
            "connected_s": self._age(screen.get("connected_s")),
            "heartbeat_age_s": self._age(screen.get("heartbeat_age_s")),
            "screen": str(screen.get("screen") or "") or None,
            "version": str(screen.get("version") or "") or None,
            "uptime_s": screen.get("uptime_s"),
            "heap": screen.get("heap"),
            "process": pid,
        }

    @property
    def processes(self) -> int:
        """Live processes seen in the fleet, this one included."""
        return len(self.reports)

    def screens_of(self, display_id: int) -> list[dict[str, Any]]:
        """The display's screens held by the other processes."""
        return list(self._screens.get(display_id, ()))

    def other_floors(self, here: Iterable[str]) -> list[str]:
        """Floors that other processes mirror and this one does not."""
        mirrored = set(here)
        return sorted({f["id"] for r in self.reports.values() for f in r["floors"]} - mirrored)

    def floor(
        self, floor_id: str, here: dict[str, Any] | None
    ) -> tuple[dict[str, Any], int, str | None]:
        """(status, kiosks, holder): the floor as its holder sees it, kiosks of every process.

        `here` is this process's own status of the floor (None when it does not mirror it).
        Without a report from the holder, this process's view, else the latest heard one.
        """
        holder = self.holders.get(floor_id)
        views = {
            pid: f for pid, r in self.reports.items() for f in r["floors"] if f["id"] == floor_id
        }
        kiosks = sum(int(f.get("kiosks") or 0) for f in views.values())
        source = views.get(holder) if holder is not None and holder != self.process else None
        if source is None and here is None:
            # Mirrored elsewhere only, and no word from a holder: whoever heard from it last.
            source = min(views.values(), key=_heard_age, default=None)
        if source is None and here is None:
            return (
                {
                    "floor_id": floor_id,
                    "mode": "stale",
                    "reason": None,
                    "heard_age_s": None,
                    "channels": [],
                },
                kiosks,
                holder,
            )
        if source is None:
            return here, kiosks, holder
        status = {
            "floor_id": floor_id,
            "mode": str(source.get("mode") or "stale"),
            "reason": source.get("reason"),
            "heard_age_s": self._age(source.get("heard_age_s")),
            "channels": here["channels"] if here is not None else [],
        }
        return status, kiosks, holder

    def summary(self) -> dict[str, Any]:
        """The processes of the fleet, and whether this view is whole (the `cluster` field)."""
        processes = []
        for pid, report in sorted(self.reports.items()):
            processes.append(
                {
                    "id": pid,
                    "host": report.get("host"),
                    "pid": report.get("pid"),
                    "this": pid == self.process,
                    "screens": len(report["screens"]),
                    "floors": len(report["floors"]),
                    "holds": sorted(f for f, h in self.holders.items() if h == pid),
                    "report_age_s": 0.0 if pid == self.process else self._age(report.get("age_s")),
                }
            )
        return {
            "process": self.process,
            "reachable": self.reachable,
            "processes": processes,
            "note": None if self.reachable else self.NOTE_ALONE,
        }
