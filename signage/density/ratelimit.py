"""Process-wide token bucket that keeps every Density call under the edge limit.

Density limits each client IP to 15 requests/s with a burst of 100, and every kiosk in a
building shares the server's IP. One limiter is shared by every call the process makes, a
little under Density's numbers, and a 429's Retry-After pauses all callers at once so that a
rate-limited server is not hit again by the callers that had not seen the 429 yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from .errors import RateLimited

__all__ = ["RateLimiter", "SharedBudget"]

# Float refill arithmetic can leave a bucket at 0.9999999 tokens: treat that as a full slot,
# and never sleep less than a tick, so a waiter cannot spin on a clock that does not move.
_EPSILON = 1e-9
_MIN_SLEEP = 1e-4

logger = logging.getLogger(__name__)


class SharedBudget(Protocol):
    """A token bucket shared by a fleet of processes (Redis: signage/fleet/shared.py).

    Both methods answer None when the shared store cannot be reached; the limiter then falls
    back to its own bucket.
    """

    def take(self, rate: float, burst: int) -> float | None:
        """Take one slot: 0.0 when taken, else the seconds until one may be free."""

    def pause(self, seconds: float) -> bool | None:
        """Hold every process's calls for ``seconds`` (a 429's Retry-After)."""


class RateLimiter:
    """Thread-safe token bucket: ``rate`` slots per second, at most ``burst`` saved up."""

    def __init__(
        self,
        rate: float = 12.0,
        burst: int = 50,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        shared: SharedBudget | None = None,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()
        self._paused_until = float("-inf")
        self.acquired = 0
        self.waited = 0.0
        self.pauses = 0
        # With a fleet, the budget is the fleet's: Density counts requests per building IP.
        self.shared = shared

    def _refill(self, now: float) -> None:
        # _last may lie in the future after a pause: nothing accrues until then.
        if now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now

    def _take_shared(self) -> float | None:
        """A slot from the fleet's bucket: 0.0 taken, seconds to wait, None: use our own."""
        if self.shared is None:
            return None
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                return self._paused_until - now + 1.0 / self.rate
        wait = self.shared.take(self.rate, self.burst)
        if wait is not None and wait <= 0:
            with self._lock:
                self.acquired += 1
        return wait

    def try_acquire(self) -> bool:
        """Take a slot if one is free right now; never blocks."""
        shared = self._take_shared()
        if shared is not None:
            return shared <= 0
        with self._lock:
            now = self._clock()
            self._refill(now)
            if now >= self._paused_until and self._tokens >= 1.0 - _EPSILON:
                self._tokens -= 1.0
                self.acquired += 1
                return True
            return False

    def acquire(self, timeout: float | None = None) -> None:
        """Block until a slot is free; raise RateLimited if none frees up within ``timeout``."""
        start = self._clock()
        while True:
            shared = self._take_shared()
            if shared is not None:
                now = self._clock()
                if shared <= 0:
                    with self._lock:
                        self.waited += now - start
                    return
                if timeout is not None and (now - start) + shared > timeout:
                    raise RateLimited(
                        f"shared rate limiter: no request slot within {timeout:g} s",
                        retry_after=shared,
                        status=None,
                    )
                self._sleep(max(shared, _MIN_SLEEP))
                continue
            with self._lock:
                now = self._clock()
                self._refill(now)
                if now >= self._paused_until:
                    if self._tokens >= 1.0 - _EPSILON:
                        self._tokens -= 1.0
                        self.acquired += 1
                        self.waited += now - start
                        return
                    wait = (1.0 - self._tokens) / self.rate
                else:
                    # After a pause the bucket restarts empty, so add one slot's time.
                    wait = self._paused_until - now + 1.0 / self.rate
            if timeout is not None and (now - start) + wait > timeout:
                raise RateLimited(
                    f"local rate limiter: no request slot within {timeout:g} s",
                    retry_after=wait,
                    status=None,
                )
            # Waiters wake and re-check under the lock: whoever loses the race sleeps again,
            # so the limit holds however many threads wait.
            self._sleep(max(wait, _MIN_SLEEP))

    def pause_until(self, deadline: float) -> None:
        """Hold every caller until ``deadline`` (same clock), as a 429's Retry-After demands."""
        with self._lock:
            if deadline <= self._paused_until:
                return
            now = self._clock()
            fresh = now >= self._paused_until
            self._paused_until = deadline
            # Density's bucket is evidently empty: restart ours empty at the deadline so the
            # queued callers trickle back at `rate` instead of bursting into another 429.
            self._tokens = 0.0
            self._last = max(self._last, deadline)
            self.pauses += 1
        if self.shared is not None:
            self.shared.pause(deadline - now)  # every process of the fleet, not only this one
        if fresh:
            logger.warning("Density rate limit hit: pausing all calls for %.1f s", deadline - now)

    def pause_for(self, seconds: float) -> float:
        """Pause every caller for ``seconds`` from now (on this limiter's clock); the deadline."""
        deadline = self._clock() + max(seconds, 0.0)
        self.pause_until(deadline)
        return deadline

    @property
    def paused_until(self) -> float:
        """The clock value before which no slot is handed out (-inf when not paused)."""
        return self._paused_until

    def snapshot(self) -> dict[str, float | int]:
        """Counters for metrics: slots handed out, total seconds waited, 429 pauses."""
        with self._lock:
            return {"acquired": self.acquired, "waited": self.waited, "pauses": self.pauses}
