"""Free now on other floors: a floor's siblings in its building, and what is free on each.

While a kiosk of floor A is connected, the server holds the feeds of A's sibling floors through
the same `FeedManager.acquire/release` every kiosk uses, so a floor's upstream socket is opened
once however many displays show it or list it as "other". From those feeds it keeps a small
summary per floor: the rooms free now by group (meet, focus, work, social, other) and the feed's
mode. Counts come only from rooms the feed itself calls free (unoccupied, healthy, fresh); a floor
whose feed is stale, not running yet or has no room it can vouch for is "unknown", never a count;
a floor under an emergency override is "not_available" (its free rooms are not to be walked to);
and when the kiosk's own floor is stale, every floor is "unknown" in its panel: a screen that
cannot vouch for its own floor's data is in no position to vouch for another's.

Nothing here calls Density: the floors come from the space directory's cached tree, and the
summaries from feeds' memory, so the worker keeps pushing honest panels through an outage.

When a summary changes, the kiosks of every floor that lists it get a `floors` message (at most
about one a second per floor), carrying the envelope of their own floor so its `seq` and `feed`
read like a heartbeat's. The kiosk snapshot carries the same list, so a kiosk that (re)connects
starts right.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from signage.core.clock import Clock
from signage.core.directory import SpaceDirectory
from signage.core.errors import FeedUnavailable
from signage.core.feeds import Feed, FeedManager
from signage.core.floormap import GROUP_ORDER, group_of
from signage.core.hub import Hub, Subscriber
from signage.core.protocol import FLOORS, FREE, LIVE, OCCUPIED, POLLING, STALE, UNKNOWN, canonical
from signage.core.rooms import offered, snapshot_moment
from signage.density.models import Space

logger = logging.getLogger(__name__)

# At most one push per changed floor per this many seconds: a busy floor flipping rooms every
# few hundred milliseconds costs its sibling kiosks one message a second, not one per flip.
DEBOUNCE_S = 1.0
# Summaries are also re-derived this often, in case a change reached no listener.
SWEEP_S = 10.0
# Each kiosk's panel is looked at again this often: an emergency on another floor starts and
# ends without any feed publishing (the override is read from the store, cached as long).
RECHECK_S = 2.0


def summarise(
    floor: Space,
    feed: Feed | None,
    groups: Sequence[str],
    group_of: Callable[[str | None], str],
) -> dict[str, Any]:
    """One floor's line in the panel: free rooms by group when the feed can vouch for them."""
    entry: dict[str, Any] = {
        "id": floor.id,
        "name": floor.name,
        "feed": STALE,
        "state": UNKNOWN,
        "free": None,
        "free_total": None,
    }
    if feed is None:
        return entry
    snapshot = feed.snapshot()
    entry["feed"] = snapshot["feed"]
    if snapshot["feed"] not in (LIVE, POLLING):
        return entry  # a floor counts only while its own feed is fresh
    rooms = snapshot["rooms"].values()
    if not any(r["state"] in (FREE, OCCUPIED) for r in rooms):
        return entry  # live, but not one room it can vouch for: a zero would be a guess
    free = dict.fromkeys(groups, 0)
    # A room booked within the margin, or booked but empty, is not one to send people to.
    now = snapshot_moment(snapshot)
    for room in rooms:
        if room["state"] == FREE and offered(room, now):
            group = group_of(room.get("function"))
            free[group if group in free else groups[-1]] += 1
    entry.update(state="known", free=free, free_total=sum(free.values()))
    return entry


class EmergencyFloors:
    """The floors under an emergency override now, read from the store at most every `ttl` s.

    Announcements decide what a floor's own screens show (actions/announcements.py); this only
    reads them, so other floors' panels stop sending people to a floor being evacuated.
    """

    def __init__(self, store: Any, ttl: float = 2.0, clock: Callable[[], float] = time.time):
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._floors: set[str] = set()
        self._read_at: float | None = None

    def __call__(self) -> set[str]:
        now = self.clock()
        with self._lock:
            if self._read_at is not None and now - self._read_at < self.ttl:
                return set(self._floors)
        announcements = self.store.list_announcements(current_at=now)
        floors = {
            a.target
            for a in announcements
            if a.kind == "emergency" and a.scope == "floor" and a.target and a.current(now)
        }
        with self._lock:
            self._floors, self._read_at = floors, now
        return set(floors)


class OtherFloors:
    """Holds sibling floors' feeds for kiosks, summarises them and pushes changes to kiosks."""

    def __init__(
        self,
        directory: SpaceDirectory,
        feeds: FeedManager,
        hub: Hub,
        debounce: float = DEBOUNCE_S,
        sweep: float = SWEEP_S,
        emergencies: Callable[[], set[str]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.directory = directory
        # The feeds' clock (the server's): debounce, sweep and recheck run on the time the
        # feeds' freshness is judged by, so a test's fake clock moves the panel on too.
        self.clock: Clock = clock or feeds.clock
        # The floors under an emergency override now (read from the announcements; an empty
        # set when unknown): their free rooms are not advertised to other floors.
        self.emergencies = emergencies or set
        self.feeds = feeds
        self.hub = hub
        self.groups = GROUP_ORDER
        self.group_of = group_of
        self.debounce = debounce
        self.sweep = sweep
        self.pushes = 0  # floors messages queued (tests and metrics)
        self._lock = threading.Lock()
        self._summaries: dict[str, dict[str, Any]] = {}  # what kiosks were last told
        self._dirty: set[str] = set()
        self._pushed_at: dict[str, float] = {}
        self._told: dict[str, list[dict[str, Any]]] = {}  # floor -> the panel its kiosks got
        self._targets: set[str] = set()  # floors whose kiosks were given a panel
        self._own_dirty: set[str] = set()  # of those, floors whose own feed published since
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the building's floors -----------------------------------------------------------------
    def siblings(self, floor_id: str) -> list[Space]:
        """The other floors of the floor's building, in the building's order; [] when unknown."""
        return self.directory.siblings(floor_id)  # the cached tree: never waits on Density

    # -- holding sibling feeds for a connected kiosk -------------------------------------------
    def hold(self, floor_id: str) -> list[str]:
        """Acquire the sibling floors' feeds for one kiosk; pass the result to `release`."""
        held: list[str] = []
        for floor in self.siblings(floor_id):
            try:
                self.feeds.acquire(floor.id)
            except FeedUnavailable as exc:
                logger.info("floor %s not held for its siblings: %s", floor.id, exc)
                continue
            held.append(floor.id)
        if held:
            self._ensure_worker()
        return held

    def release(self, floor_ids: Iterable[str]) -> None:
        """Release what `hold` acquired (they linger like any feed)."""
        for floor_id in floor_ids:
            self.feeds.release(floor_id)

    def touch(self, floor_id: str) -> None:
        """Keep the sibling feeds warm for a kiosk on the HTTP fallback (they linger from now)."""
        self.release(self.hold(floor_id))

    # -- the panel -----------------------------------------------------------------------------
    def panel(self, floor_id: str) -> list[dict[str, Any]] | None:
        """The summaries a kiosk of this floor shows; None when its building has one floor."""
        floors = self.siblings(floor_id)
        if not floors:
            return None
        with self._lock:
            self._targets.add(floor_id)
        own = self.feeds.get(floor_id)
        own_fresh = own is not None and own.snapshot()["feed"] in (LIVE, POLLING)
        try:
            emergencies = self.emergencies()
        except Exception:  # the database down: no override known, the counts still honest
            logger.debug("other floors: emergencies unknown", exc_info=True)
            emergencies = set()
        out = []
        for floor in floors:
            with self._lock:
                known = self._summaries.get(floor.id)
            if known is None:
                # First sight of this floor: nobody has been told anything about it yet.
                known = self._summary(floor)
                with self._lock:
                    known = self._summaries.setdefault(floor.id, known)
            if floor.id in emergencies:
                known = {**known, "state": "not_available", "reason": "emergency"}
                known.update(free=None, free_total=None)
            elif not own_fresh and known["state"] == "known":
                known = {**known, "state": UNKNOWN, "reason": "own_floor_stale"}
                known.update(free=None, free_total=None)
            out.append(known)
        return out

    def catch_up(self, floor_id: str, sub: Subscriber, shown: list[dict[str, Any]] | None) -> None:
        """Send a kiosk that just joined the panel when it changed after its snapshot was built."""
        current = self.panel(floor_id)
        if current is None or current == shown:
            with self._lock:  # what this floor's kiosks hold: a recheck sends only a change
                self._told.setdefault(floor_id, shown or [])
            return
        self._send(floor_id, current, lambda text: self.hub.send(sub, text))

    def _summary(self, floor: Space) -> dict[str, Any]:
        return summarise(floor, self.feeds.get(floor.id), self.groups, self.group_of)

    # -- changes: the feed manager's listener, a worker that debounces and pushes -------------
    def on_publish(self, floor_id: str) -> None:
        """A floor's feed published something (called under that feed's lock: only mark it)."""
        with self._lock:
            # The floor's own kiosks: its freshness decides whether their panel may count.
            own = floor_id in self._targets
            if own:
                self._own_dirty.add(floor_id)
            if floor_id not in self._summaries and not own:
                return  # no kiosk lists this floor
            if floor_id in self._summaries:
                self._dirty.add(floor_id)
        self._wake.set()

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="other-floors", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        next_sweep = self.clock.monotonic() + self.sweep
        next_recheck = self.clock.monotonic() + RECHECK_S
        wait = self.sweep
        while not self._stop.is_set():
            self.clock.wait(self._wake, wait)
            self._wake.clear()
            try:
                now = self.clock.monotonic()
                if now >= next_sweep:
                    next_sweep = now + self.sweep
                    self._forget_unlisted()
                    with self._lock:
                        self._dirty.update(self._summaries)
                if now >= next_recheck:
                    next_recheck = now + RECHECK_S
                    with self._lock:
                        self._own_dirty.update(self._targets)
                wait = min(
                    self._refresh_due(now),
                    max(0.0, next_sweep - now),
                    max(0.0, next_recheck - now),
                )
            except Exception:  # the panel must not end for good because of one bad summary
                logger.exception("other floors: refresh failed")
                wait = self.debounce

    def _refresh_due(self, now: float) -> float:
        """Re-summarise the dirty floors whose debounce has passed; seconds until the next."""
        with self._lock:
            due = [f for f in self._dirty if now - self._pushed_at.get(f, -1e9) >= self.debounce]
            self._dirty.difference_update(due)
        changed: set[str] = set()
        tree = self.directory.tree()  # memory only: the refresh worker never waits on Density
        for floor_id in due:
            floor = tree.get(floor_id)
            if floor is None:
                continue
            summary = self._summary(floor)
            with self._lock:
                if self._summaries.get(floor_id) != summary:
                    self._summaries[floor_id] = summary
                    self._pushed_at[floor_id] = now
                    changed.add(floor_id)
        with self._lock:
            own, self._own_dirty = self._own_dirty, set()
        if changed or own:
            self._push(changed, own)
        with self._lock:
            waits = [self._pushed_at.get(f, now) + self.debounce - now for f in self._dirty]
        return max(0.01, min(waits)) if waits else self.sweep

    def _push(self, changed: set[str], own: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """One floors message per listing floor that has kiosks and a changed panel."""
        targets: set[str] = set(own)
        for floor_id in changed:
            targets.update(s.id for s in self.siblings(floor_id))
        for target in targets:
            if self.hub.count(target) == 0:
                continue
            panel = self.panel(target)
            with self._lock:
                if panel is None or self._told.get(target) == panel:
                    continue
            self._send(target, panel, lambda text, t=target: self.hub.notify(t, text))

    def _send(self, floor_id: str, panel: list[dict[str, Any]], send: Callable[[str], Any]) -> None:
        feed = self.feeds.get(floor_id)
        if feed is None:
            return
        feed.send_in_order(FLOORS, {"other_floors": panel}, send)
        with self._lock:
            self._told[floor_id] = panel
        self.pushes += 1

    def _forget_unlisted(self) -> None:
        """Drop summaries no connected kiosk lists (their feeds linger out on their own)."""
        listed: set[str] = set()
        for floor_id in self.hub.counts_by_floor():
            listed.update(s.id for s in self.siblings(floor_id))
        with self._lock:
            for floor_id in set(self._summaries) - listed:
                del self._summaries[floor_id]
                self._pushed_at.pop(floor_id, None)
                self._dirty.discard(floor_id)
            for floor_id in self._targets - set(self.hub.counts_by_floor()):
                self._targets.discard(floor_id)
                self._told.pop(floor_id, None)

    def stop(self) -> None:
        """Stop the worker thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=3)


def tag(panel: list[dict[str, Any]] | None) -> str:
    """A short digest of a panel, for the HTTP fallback's ETag."""
    return format(zlib.crc32(canonical(panel).encode()), "08x")
