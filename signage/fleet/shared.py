"""What the processes of a fleet share through Redis: Density tokens, the rate budget, limits.

One process renews each token, the 15 req/s budget is the fleet's, and N processes do not
allow N times the sign-in attempts. Each falls back to the process's own while Redis is away.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from signage.density.tokens import TokenGrant
from signage.fleet.scripts import ATTEMPTS, RATE_BUCKET, RATE_PAUSE, TOKEN

if TYPE_CHECKING:
    from signage.fleet.link import Cluster


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

    def load(self, key: str) -> tuple[TokenGrant, float] | None:
        """The shared token and the seconds it has left; None when there is none (or no Redis)."""
        pipe = self.cluster.redis.pipeline(transaction=False)
        pipe.hgetall(TOKEN.format(key))
        pipe.pttl(TOKEN.format(key))
        fields, pttl = self.cluster.call(pipe.execute, (None, None))
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
        """Take the key's renewal lock: True taken, False held elsewhere, None without Redis."""
        lock, value, ms = f"{TOKEN.format(key)}:lock", secrets.token_hex(8), self.LOCK_MS
        set_ = self.cluster.redis.set
        taken = self.cluster.call(lambda: bool(set_(lock, value, nx=True, px=ms)), None)
        if taken:
            with self._mutex:
                self._locks[key] = value
        return taken

    def unlock(self, key: str) -> None:
        """Free the key's renewal lock if this process holds it."""
        with self._mutex:
            value = self._locks.pop(key, None)
        if value is None:
            return
        with suppress(RedisError):  # else it expires on its own
            self.cluster.lua.release(keys=[f"{TOKEN.format(key)}:lock"], args=[value])

    def store(self, key: str, grant: TokenGrant, left: float) -> None:
        """Share a token for the `left` seconds it has to live."""
        if left <= 0:
            return
        fields = {
            "access_token": grant.access_token,
            "lifetime": repr(grant.expires_in),
            "scope": grant.scope or "",
            "token_type": grant.token_type,
        }
        pipe = self.cluster.redis.pipeline(transaction=True)
        pipe.delete(TOKEN.format(key))
        pipe.hset(TOKEN.format(key), mapping=fields)
        pipe.pexpire(TOKEN.format(key), int(left * 1000))
        self.cluster.call(pipe.execute, None)

    def drop(self, key: str, access_token: str) -> None:
        """Forget the shared token if it is still `access_token` (Density refused it)."""
        drop = self.cluster.lua.drop_token
        self.cluster.call(lambda: drop(keys=[TOKEN.format(key)], args=[access_token]), None)


class RedisBudget:
    """The fleet's request budget to Density (signage.density.ratelimit.SharedBudget)."""

    KEYS = (RATE_BUCKET, RATE_PAUSE)

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def take(self, rate: float, burst: int) -> float | None:
        """Seconds to wait before the next request (0: go now); None without Redis."""
        take = self.cluster.lua.take
        wait_ms = self.cluster.call(lambda: take(keys=self.KEYS, args=[rate, burst]), None)
        return None if wait_ms is None else int(wait_ms) / 1000.0

    def pause(self, seconds: float) -> bool | None:
        """Make every process wait `seconds` (Density said 429); None without Redis."""
        pause, ms = self.cluster.lua.pause, max(1, int(seconds * 1000))
        done = self.cluster.call(lambda: pause(keys=self.KEYS, args=[ms]), None)
        return None if done is None else True


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
        return ATTEMPTS.format(self.name, digest)

    def _call(self, key: str, mode: str) -> tuple[int, float, bool] | None:
        """The script's answer: (events in the window, seconds until it frees or -1, counted)."""
        args = [self.window, self.limit, mode, secrets.token_hex(8)]
        attempt = self.cluster.lua.attempt
        answer = self.cluster.call(lambda: attempt(keys=[self._key(key)], args=args), None)
        if answer is None:
            return None
        self.cluster.note(True)
        n, frees, counted = answer
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
        self.cluster.call(lambda: self.cluster.redis.delete(self._key(key)), None)

    def undo(self, key: str) -> None:
        """Take back the key's latest event, fleet-wide (an attempt that turned out right)."""
        try:
            self.cluster.redis.zpopmax(self._key(key))
        except RedisError as exc:
            self.cluster.note(False, exc)
            self.local.undo(key)
