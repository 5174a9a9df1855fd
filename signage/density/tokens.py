"""Access-token cache: one token per key, renewed early, one renewal in flight per key.

Keys are a display id (display-scoped wayfinding tokens) or ``"org"`` (the OAuth
machine-to-machine token). Fetching a token per call, or letting fifty threads renew at
once, multiplies token requests by the number of callers, and Density's token endpoint
answers such bursts with 429s; a per-key lock makes the first caller fetch while the others
wait for its result.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import BadResponse, DensityError

__all__ = [
    "ORG_KEY",
    "SharedTokens",
    "Token",
    "TokenCache",
    "TokenGrant",
    "parse_token_response",
]

logger = logging.getLogger(__name__)

ORG_KEY = "org"

# The lifetime assumed when a token endpoint does not say (no `expires_in`, or null). Short on
# purpose: renewing a long-lived token early costs one request, using a dead one costs a 401.
DEFAULT_TOKEN_LIFETIME = 300.0


@dataclass(frozen=True)
class TokenGrant:
    """A token endpoint's answer before it is pinned to the local clock."""

    access_token: str = field(repr=False)
    expires_in: float
    scope: str | None = None
    token_type: str = "Bearer"


@dataclass(frozen=True)
class Token:
    """An access token with its expiry on the monotonic clock; repr never shows the secret."""

    access_token: str = field(repr=False)
    expires_at: float
    scope: str | None = None
    token_type: str = "Bearer"
    issued_at: float = 0.0

    @property
    def lifetime(self) -> float:
        """Seconds between issue and expiry."""
        return self.expires_at - self.issued_at

    def remaining(self, now: float) -> float:
        """Seconds left at clock value ``now`` (negative once expired)."""
        return self.expires_at - now


def parse_token_response(body: Any, default_lifetime: float = DEFAULT_TOKEN_LIFETIME) -> TokenGrant:
    """Build a TokenGrant from a token endpoint's JSON; expires_in may be a number or a string.

    A response without ``expires_in`` gets ``default_lifetime``: the reference marks the field
    as a string and does not promise it, and failing every call over it would be worse than
    renewing a little early. A value that is there but not a positive number is still an error.
    """
    if not isinstance(body, Mapping):
        raise BadResponse("token response is not a JSON object")
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise BadResponse("token response has no access_token")
    raw = body.get("expires_in")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        logger.info("token response has no expires_in: assuming %.0f s", default_lifetime)
        raw = default_lifetime
    try:
        if isinstance(raw, bool):
            raise TypeError
        expires_in = float(raw.strip() if isinstance(raw, str) else raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadResponse("token response has no numeric expires_in") from None
    if not math.isfinite(expires_in) or expires_in <= 0:
        raise BadResponse("token response expires_in is not a positive number")
    scope = body.get("scope")
    token_type = body.get("token_type")
    return TokenGrant(
        access_token=access_token,
        expires_in=expires_in,
        scope=scope if isinstance(scope, str) else None,
        token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
    )


class SharedTokens(Protocol):
    """Tokens kept for a fleet of processes (Redis: signage/fleet/), so one renews each key.

    Every method answers None when the shared store cannot be reached; the cache then renews
    on its own, as a single process would.
    """

    def load(self, key: str) -> tuple[TokenGrant, float] | None:
        """A peer's token for ``key`` and its seconds left, or None (none, or unreachable)."""

    def lock(self, key: str) -> bool | None:
        """Take the fleet-wide renewal lock for ``key``: True taken, False held by a peer."""

    def unlock(self, key: str) -> None:
        """Release the renewal lock taken by ``lock``."""

    def store(self, key: str, grant: TokenGrant, left: float) -> None:
        """Share a fresh token (``left`` seconds of life) with the fleet."""

    def drop(self, key: str, access_token: str) -> None:
        """Forget the shared token for ``key`` if it is still ``access_token``."""


# After an early renewal failed, the token it was to replace is used, and renewal is not tried
# again for this long (or half the token's remaining life, if shorter): in an outage each call
# would otherwise cost a token request on top of its own.
RENEW_RETRY_S = 30.0
# A token this close to expiry is not handed out even when renewal fails: it could die in flight.
MIN_USABLE_S = 1.0

# How long a caller waits for a peer's renewal before renewing itself (a stuck peer), and how
# often it looks meanwhile.
SHARED_WAIT_S = 10.0
SHARED_POLL_S = 0.05


class _Slot:
    """Per-key state; ``lock`` is held for the whole of a fetch (the single flight)."""

    __slots__ = ("lock", "token", "generation", "error", "waiting", "renew_after")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = 0  # callers queued behind a flight (a gauge for metrics and tests)
        self.token: Token | None = None
        self.generation = 0  # bumped after every fetch, successful or not
        self.error: DensityError | None = None  # outcome of the last fetch, if it failed
        self.renew_after = float("-inf")  # no early renewal before this (one just failed)


class TokenCache:
    """Tokens per key, renewed before expiry, with at most one fetch in flight per key."""

    def __init__(
        self,
        fetch: Callable[[Hashable], TokenGrant],
        *,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedTokens | None = None,
    ) -> None:
        self._fetch = fetch
        self.margin = float(margin)
        self._clock = clock
        self._slots: dict[Hashable, _Slot] = {}
        self._slots_lock = threading.Lock()
        self.fetches: dict[Hashable, int] = {}
        self.renewals: dict[Hashable, int] = {}
        self.adopted: dict[Hashable, int] = {}  # tokens taken from the shared store
        # The fleet's token store (Redis), so processes renew a key once between them; None:
        # this process is alone.
        self.shared = shared

    def renew_margin(self, lifetime: float) -> float:
        """How long before expiry a token of ``lifetime`` seconds is renewed.

        max(margin, 10% of lifetime) for ordinary lifetimes; for short ones the margin shrinks to
        a fifth of the lifetime, so a 2 s token is still used for 1.6 s instead of never, and
        three lifetimes cost at most four token requests.
        """
        return max(0.1 * lifetime, min(self.margin, 0.2 * lifetime))

    def _fresh(self, token: Token | None, now: float) -> bool:
        return token is not None and token.remaining(now) > self.renew_margin(token.lifetime)

    def _slot(self, key: Hashable) -> _Slot:
        with self._slots_lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            return slot

    def _usable(self, slot: _Slot, now: float) -> Token | None:
        """The cached token when an early renewal failed lately and it still has life left."""
        token = slot.token
        if token is not None and now < slot.renew_after and token.remaining(now) > MIN_USABLE_S:
            return token
        return None

    def get(self, key: Hashable) -> Token:
        """A token for ``key`` with more than its renewal margin left, fetching one if needed.

        When an early renewal fails (Density is down), the current token is used for as long
        as it lives, and renewal is tried again after RENEW_RETRY_S rather than on every call.
        """
        slot = self._slot(key)
        token = slot.token
        now = self._clock()
        if self._fresh(token, now):
            return token  # type: ignore[return-value]
        held = self._usable(slot, now)
        if held is not None:
            return held
        seen = slot.generation
        with self._slots_lock:
            slot.waiting += 1
        try:
            slot.lock.acquire()
        finally:
            with self._slots_lock:
                slot.waiting -= 1
        try:
            token = slot.token
            now = self._clock()
            if self._fresh(token, now):
                return token  # type: ignore[return-value]
            held = self._usable(slot, now)
            if held is not None:
                return held
            if slot.generation != seen and slot.error is not None:
                # The flight we queued behind failed: share its answer rather than have every
                # waiter repeat a request that just failed (that would amplify an outage).
                raise copy.copy(slot.error)
            try:
                if self.shared is not None:
                    return self._renew_shared(key, slot, self.shared)
                return self._renew(key, slot)
            except DensityError as exc:
                now = self._clock()
                old = slot.token
                if old is None or old.remaining(now) <= MIN_USABLE_S:
                    raise
                # Renewing early failed: the token still works, so use it, and do not ask
                # again on every call meanwhile.
                slot.renew_after = now + min(RENEW_RETRY_S, old.remaining(now) / 2)
                logger.warning(
                    "Density token for %s not renewed (%s): using the current one, %.0f s left",
                    key,
                    type(exc).__name__,
                    old.remaining(now),
                )
                return old
        finally:
            slot.lock.release()

    def waiting(self, key: Hashable) -> int:
        """How many callers are queued for ``key``'s token right now."""
        slot = self._slots.get(key)
        return 0 if slot is None else slot.waiting

    def _renew(self, key: Hashable, slot: _Slot) -> Token:
        # Pin the expiry to the moment the request left, so network time eats into our margin
        # rather than into the token's real life.
        sent_at = self._clock()
        try:
            grant = self._fetch(key)
        except DensityError as exc:
            slot.error = exc
            slot.generation += 1
            raise
        except BaseException:
            slot.generation += 1
            slot.error = None
            raise
        token = Token(
            access_token=grant.access_token,
            expires_at=sent_at + grant.expires_in,
            scope=grant.scope,
            token_type=grant.token_type,
            issued_at=sent_at,
        )
        replaced = slot.token is not None
        slot.token = token
        slot.error = None
        slot.renew_after = float("-inf")
        slot.generation += 1
        with self._slots_lock:
            self.fetches[key] = self.fetches.get(key, 0) + 1
            if replaced:
                self.renewals[key] = self.renewals.get(key, 0) + 1
        logger.info(
            "Density token %s for %s, valid %.0f s",
            "renewed" if replaced else "issued",
            key,
            grant.expires_in,
        )
        return token

    def _renew_shared(self, key: Hashable, slot: _Slot, shared: SharedTokens) -> Token:
        """A peer's fresh token if there is one, else renew under the fleet-wide lock."""
        name = str(key)
        waited = 0.0
        while True:
            token = self._adopt(key, slot, shared.load(name))
            if token is not None:
                return token
            taken = shared.lock(name)
            if taken is None:
                return self._renew(key, slot)  # the shared store is away: renew alone
            if taken:
                try:
                    # A peer may have stored a token between our look and our lock.
                    token = self._adopt(key, slot, shared.load(name))
                    if token is not None:
                        return token
                    token = self._renew(key, slot)
                    left = token.remaining(self._clock())
                    grant = TokenGrant(
                        token.access_token, token.lifetime, token.scope, token.token_type
                    )
                    shared.store(name, grant, left)
                    return token
                finally:
                    shared.unlock(name)
            if waited >= SHARED_WAIT_S:
                logger.warning("token renewal for %s held by a peer too long: renewing here", key)
                return self._renew(key, slot)
            time.sleep(SHARED_POLL_S)  # a peer is renewing: its token appears in the store
            waited += SHARED_POLL_S

    def _adopt(
        self, key: Hashable, slot: _Slot, found: tuple[TokenGrant, float] | None
    ) -> Token | None:
        """Take a peer's token when it has more than its renewal margin left."""
        if found is None:
            return None
        grant, left = found
        if left <= self.renew_margin(grant.expires_in):
            return None
        now = self._clock()
        token = Token(
            access_token=grant.access_token,
            expires_at=now + left,
            scope=grant.scope,
            token_type=grant.token_type,
            issued_at=now + left - grant.expires_in,
        )
        slot.token = token
        slot.error = None
        slot.generation += 1
        with self._slots_lock:
            self.adopted[key] = self.adopted.get(key, 0) + 1
        return token

    def peek(self, key: Hashable) -> Token | None:
        """The cached token for ``key`` without fetching (may be stale or expired)."""
        slot = self._slots.get(key)
        return slot.token if slot is not None else None

    def invalidate(self, key: Hashable, access_token: str | None = None) -> bool:
        """Drop the cached token (only if it is still ``access_token``, when given)."""
        slot = self._slots.get(key)
        if slot is None:
            return False
        # Compare-and-drop: when fifty requests get a 401 on the same dead token, the first
        # drops it and the rest find the renewed one instead of dropping that too.
        with slot.lock:
            token = slot.token
            if token is None or (access_token is not None and token.access_token != access_token):
                return False
            slot.token = None
        if self.shared is not None:
            # Peers would otherwise adopt the same dead token from the shared store.
            self.shared.drop(str(key), token.access_token)
        logger.info("Density token for %s invalidated", key)
        return True

    def expires_in(self, key: Hashable) -> float | None:
        """Seconds left on the cached token for ``key``, or None when none is cached."""
        token = self.peek(key)
        return None if token is None else token.remaining(self._clock())

    def secrets(self) -> list[str]:
        """Access tokens currently cached (for scrubbing error messages, never for logging)."""
        with self._slots_lock:
            slots = list(self._slots.values())
        return [s.token.access_token for s in slots if s.token is not None]

    def snapshot(self) -> dict[str, Any]:
        """Counters for metrics: tokens fetched and renewed per key."""
        with self._slots_lock:
            return {
                "fetches": {str(k): v for k, v in self.fetches.items()},
                "renewals": {str(k): v for k, v in self.renewals.items()},
            }
