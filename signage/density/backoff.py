"""Capped exponential backoff with full jitter, shared by client retries and the floor feed."""

from __future__ import annotations

import random
import threading

__all__ = ["Backoff"]


class Backoff:
    """Capped, full-jitter exponential backoff: attempt n waits uniform(0, min(cap, base*2**n)).

    Full jitter spreads the retries of many callers (every floor feed of a building restarting
    after the same outage) so they do not hit Density in lock step.
    """

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        jitter: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap <= 0:
            raise ValueError("base and cap must be positive")
        self.base = float(base)
        self.cap = float(cap)
        self.jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        self._attempt = 0
        self._lock = threading.Lock()

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` (0-based) may wait."""
        # Bound the exponent so huge attempt counts cannot overflow a float.
        return min(self.cap, self.base * 2 ** min(max(attempt, 0), 62))

    def delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based); stateless."""
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        with self._lock:  # random.Random is not documented as thread-safe
            return self._rng.uniform(0.0, ceiling)

    def next(self) -> float:
        """The delay for the next attempt of a loop, advancing the attempt count."""
        with self._lock:
            attempt = self._attempt
            self._attempt += 1
        return self.delay(attempt)

    def reset(self) -> None:
        """Start again from the first attempt (after a success)."""
        with self._lock:
            self._attempt = 0

    @property
    def attempt(self) -> int:
        """How many delays next() has handed out since the last reset."""
        return self._attempt
