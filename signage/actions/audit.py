"""Who is changing things, and the audit trail's use cases: recording a change, pruning.

Every entry point names its caller once: the web layer when it establishes the principal (an
account or an API token by name), the CLI at start (the operating-system user). The use cases
in actions/ then wrap each change in `change(...)`, so the console, the API and the CLI record
it exactly once, in the same place. Nothing here imports Flask.
"""

from __future__ import annotations

import getpass
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from signage.store import Store
from signage.store.audit import AuditFilter, PendingAudit

logger = logging.getLogger(__name__)

__all__ = [
    "ANONYMOUS",
    "Actor",
    "AuditFilter",
    "AuditPruner",
    "bind",
    "change",
    "current_actor",
    "diff",
    "tally",
]

DAY = 86_400.0


@dataclass(frozen=True)
class Actor:
    """Who a change is recorded as made by."""

    kind: str  # account, token, cli or system
    name: str


SYSTEM = Actor("system", "system")
ANONYMOUS = Actor("anonymous", "not signed in")  # a failed sign-in: nobody yet
_actor: ContextVar[Actor | None] = ContextVar("signage_audit_actor", default=None)


def bind(actor: Actor | None) -> None:
    """Name the caller of what this thread (request, command) does next; None forgets it."""
    _actor.set(actor)


def current_actor() -> Actor:
    """The caller named by `bind`, else "system" (the server's own threads)."""
    return _actor.get() or SYSTEM


def cli_actor() -> Actor:
    """The operating-system user running a `signage` command."""
    try:
        name = getpass.getuser()
    except Exception:  # no user name in the environment or passwd database (a bare container)
        name = "unknown"
    return Actor("cli", name)


def diff(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Only the settings that differ, before and after (a creation or removal keeps all)."""
    if before is None or after is None:
        return before, after
    keys = [k for k in {*before, *after} if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


@contextmanager
def change(
    store: Store,
    action: str,
    kind: str,
    target_id: Any = None,
    name: str | None = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    created: bool = False,
    only_changes: bool = True,
    after_from: str | None = None,
    actor: Actor | None = None,
) -> Iterator[PendingAudit]:
    """Record the change made inside the block as done by the current caller: with the change's
    own transaction where the store makes it (store/audit.py), else right after it succeeded.
    `created`: the target's id is the new row of the change's transaction; `after_from`: what
    the store alone knows of the result (store/audit.py AFTER_QUERIES) is read in that
    transaction. `actor`: who, when not the caller bound (a sign-in names its account before
    any is bound). The yielded entry may still be amended before the change commits."""
    if only_changes:
        before, after = diff(before, after)
    entry = _pending(
        actor,
        action,
        kind,
        target_id,
        name,
        before=before,
        after=after,
        id_from_insert=created,
        after_from=after_from,
    )
    with store.audited(entry):
        yield entry


def tally(
    store: Store,
    action: str,
    kind: str,
    target_id: Any,
    name: str | None,
    *,
    window: float,
    lists: dict[str, str],
    actor: Actor | None = None,
) -> None:
    """Record one more attempt of a repeated event (a failed sign-in) in the entry for its
    target of the last `window` seconds, or a new one: a count and the distinct values of
    `lists` (store/audit.py `tally_audit`), so a loop cannot flood the trail."""
    store.tally_audit(_pending(actor, action, kind, target_id, name), time.time() - window, lists)


def _pending(
    actor: Actor | None, action: str, kind: str, target_id: Any, name: str | None, **more: Any
) -> PendingAudit:
    """An entry by `actor` (else the caller bound to this request or command)."""
    who = actor or current_actor()
    return PendingAudit(
        actor_kind=who.kind,
        actor=who.name,
        action=action,
        target_kind=kind,
        target_id=None if target_id is None else str(target_id),
        target_name=name,
        **more,
    )


class AuditPruner:
    """Forgets entries older than the retention, in its own thread (never on a request)."""

    def __init__(self, store: Store, days: float, interval: float = 6 * 3600) -> None:
        self.store, self.days, self.interval = store, days, interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.pruned = 0  # entries forgotten so far (tests wait on it)
        self.runs = 0

    def prune(self, now: float | None = None) -> int:
        """Forget what is past the retention now; how many entries."""
        cutoff = (time.time() if now is None else now) - self.days * DAY
        removed = self.store.prune_audit(cutoff)
        self.pruned += removed
        self.runs += 1
        if removed:
            logger.info(
                "audit trail: %d entr(ies) older than %g day(s) forgotten", removed, self.days
            )
        return removed

    def ensure_started(self) -> None:
        """Start the thread unless it runs or was stopped (after a fork: on the first request)."""
        if self._thread is not None or self._stop.is_set() or self.days <= 0:
            return
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="audit-pruner", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.prune()
            except Exception:  # the database away for a moment: the next round tries again
                logger.exception("audit trail pruning failed")
            self._stop.wait(self.interval)
