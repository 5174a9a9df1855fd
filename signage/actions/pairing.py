"""Pairing codes and their claim: an admin gives the code a screen shows to a display.

The console, the JSON API and `signage displays pair` claim codes here; the screen's side (the
code page, its cookie and polling) is signage/web/pairing.py. Codes live in the database so
that another process can claim them.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

from signage.actions import audit
from signage.store import Display, Store

logger = logging.getLogger(__name__)

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read off a screen across a room
CODE_LENGTH = 8  # 31 ** 8 ≈ 2 ** 39.6
# Failed claims (wrong or expired code) per admin and per address: guessing 40 bits needs
# billions of tries, and this allows a handful of typos per quarter hour.
CLAIM_FAILURES = 10
CLAIM_WINDOW_S = 900.0


class PairingRefused(Exception):
    """A claim that cannot be carried out, with a message for people and an HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Attempts(Protocol):
    """Failed attempts counted per key in a window (the web layer's limiter, local or fleet)."""

    def blocked(self, key: str) -> bool: ...

    def hit(self, key: str) -> bool: ...


# Gives the limiter of a name, made with that limit and window on first use.
LimiterFactory = Callable[[str, int, float], Attempts]


# Displays whose first screen this process has already noted, per store: one INSERT per display
# and process, however often its screens reconnect.
_noted: weakref.WeakKeyDictionary[Store, set[int]] = weakref.WeakKeyDictionary()
_noted_lock = threading.Lock()


def note_screen(store: Store, display_id: int, at: float) -> None:
    """Note that a display has had a screen, as one connects (the first time only).

    The alert watcher notes the screens it finds connected, but only every 15 s or so: a
    screen that paired, showed its floor and left between two looks would leave its display
    "not installed" for good, and a dead screen would never be reported down. A failed write is
    logged and tried again at the next connection (the watcher notes it too)."""
    with _noted_lock:
        done = _noted.setdefault(store, set())
        if display_id in done:
            return
    try:
        store.mark_first_screen(display_id, at)  # INSERT ... ON CONFLICT DO NOTHING
    except Exception:  # the store is unreachable: the screen is still served
        logger.warning("could not note the first screen of display %s", display_id, exc_info=True)
        return
    with _noted_lock:
        done.add(display_id)


def new_code() -> str:
    """A random code from the unambiguous alphabet."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    """What an admin typed, as stored: upper case, without spaces or dashes."""
    return "".join(c for c in text.upper() if c not in " -\t")


def claim(
    store: Store,
    code_text: str,
    display_id: int | None,
    who: str,
    address: str,
    limiter: LimiterFactory,
) -> Display:
    """Give a code to a display; failures are limited per caller (`who`) and per address key,
    so that codes cannot be guessed."""
    by_who = limiter("pair-claim-who", CLAIM_FAILURES, CLAIM_WINDOW_S)
    by_ip = limiter("pair-claim-ip", CLAIM_FAILURES * 3, CLAIM_WINDOW_S)
    if by_who.blocked(who) or by_ip.blocked(address):
        raise PairingRefused("Too many wrong codes. Wait a few minutes and try again.", 429)
    if display_id is None or store.get_display(display_id) is None:
        raise PairingRefused("Choose the display this screen should become.", 400)
    return claim_code(
        store, code_text, display_id, on_failure=lambda: (by_who.hit(who), by_ip.hit(address))
    )


def claim_code(
    store: Store,
    code_text: str,
    display_id: int,
    on_failure: Callable[[], object] | None = None,
) -> Display:
    """Claim without a rate limit (the CLI: whoever runs it has the database already)."""
    code = normalise_code(code_text)
    display = None
    if len(code) == CODE_LENGTH and all(c in ALPHABET for c in code):
        target = store.get_display(display_id)
        name = target.name if target is not None else None
        # The code is a one-time secret a screen shows: the trail says a screen was paired.
        with audit.change(store, "display.pair", "display", display_id, name):
            display = store.claim_pairing_code(code, display_id, time.time())
    if display is None:
        if on_failure is not None:
            on_failure()
        raise PairingRefused("No screen shows that code (or it expired). Check it and retry.")
    logger.info("pairing code claimed for display %s", display.id)
    return display
