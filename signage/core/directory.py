"""Density's space tree, built from every shape the reference allows, and kept without waiting.

`GET /v3/spaces` may link a space to its parent through `parent_id`, through the parent's
`children_ids`, or by nesting the child objects under the parent's `children`; the reference's
own sample carries only `children` and `children_ids`. `build_tree` turns any of these (a bare
list, a `{"results": [...], "next": ...}` or `{"data": [...]}` envelope, or `Space` objects) into
one `SpaceTree` whose every space knows its parent and its children, so nothing else walks the
hierarchy on its own.

`SpaceDirectory` keeps the last tree. Reads return it at once and never call Density: a
background thread refreshes it when its lifetime passes (at most one refresh in flight, the
cached copy served meanwhile), and the last good answer is kept in the store so that a restart
inside an outage still knows every room by name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from signage.core.clock import SYSTEM_CLOCK, Clock
from signage.density.errors import AuthError, DensityError, RateLimited, Unavailable
from signage.density.models import Space

logger = logging.getLogger(__name__)

# A hierarchy deeper than this is a loop in Density's data, not a building.
MAX_DEPTH = 16
# Container levels: never a room of a floor.
CONTAINERS = ("campus", "building", "floor")
# An unknown id asks for a refresh at most this often (a typo in a URL must not hammer Density).
UNKNOWN_REFRESH_S = 5.0
# After a failed refresh: first retry, and the longest wait between two tries while it fails.
RETRY_FIRST_S = 5.0
RETRY_MAX_S = 60.0


# ----------------------------------------------------------------------------------- the tree
@dataclass(frozen=True)
class SpaceTree:
    """Every space with its parent and children resolved, whatever shape Density sent."""

    spaces: dict[str, Space] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.spaces)

    def get(self, space_id: str | None) -> Space | None:
        """One space, or None."""
        return self.spaces.get(space_id or "")

    def all(self) -> list[Space]:
        """Every space, in the order Density listed them (parents before nested children)."""
        return list(self.spaces.values())

    def parent_of(self, space_id: str) -> Space | None:
        """The space's parent, when Density named one it also listed."""
        space = self.spaces.get(space_id)
        return self.spaces.get(space.parent_id or "") if space else None

    def ancestors(self, space_id: str) -> list[Space]:
        """Parent, grandparent, … up to the root (a loop in the data ends the walk)."""
        out: list[Space] = []
        seen = {space_id}
        node = self.parent_of(space_id)
        while node is not None and node.id not in seen and len(out) < MAX_DEPTH:
            out.append(node)
            seen.add(node.id)
            node = self.parent_of(node.id)
        return out

    def children_of(self, space_id: str) -> list[Space]:
        """The direct children, in the parent's own order."""
        space = self.spaces.get(space_id)
        if space is None:
            return []
        return [self.spaces[c] for c in space.children_ids if c in self.spaces]

    def building_of(self, space_id: str) -> Space | None:
        """A space's nearest building ancestor, else its parent (a floor's own group)."""
        ancestors = self.ancestors(space_id)
        building = next((a for a in ancestors if a.space_type == "building"), None)
        return building or (ancestors[0] if ancestors else None)

    def rooms_of(self, floor_id: str) -> list[Space]:
        """The rooms (every non-container space) under a floor, at any depth, by name."""
        rooms: list[Space] = []
        stack, seen = list(self.children_of(floor_id)), {floor_id}
        while stack:
            space = stack.pop()
            if space.id in seen:
                continue
            seen.add(space.id)
            if space.space_type not in CONTAINERS:
                rooms.append(space)
            stack.extend(self.children_of(space.id))
        return sorted(rooms, key=lambda s: (s.name, s.id))

    def floors(self, building_order: bool = False) -> list[Space]:
        """Every floor, buildings by name; within one, by floor name, or with `building_order`
        in the building's own order (ground floor first, as people read a building)."""

        def key(floor: Space) -> tuple[str, str, int, str, str]:
            building = self.building_of(floor.id)
            order = building.children_ids if building and building_order else ()
            rank = order.index(floor.id) if floor.id in order else len(order)
            return (
                building.name if building else "",
                building.id if building else "",
                rank,
                floor.name,
                floor.id,
            )

        return sorted((s for s in self.spaces.values() if s.space_type == "floor"), key=key)

    def siblings(self, floor_id: str) -> list[Space]:
        """The other floors of the floor's building, in the building's order."""
        building = self.building_of(floor_id)
        if building is None:
            return []
        return [
            f
            for f in self.floors(building_order=True)
            if f.id != floor_id and (b := self.building_of(f.id)) and b.id == building.id
        ]

    def time_zone(self, space_id: str) -> str | None:
        """A space's time zone, else the nearest ancestor's."""
        space = self.spaces.get(space_id)
        if space is None:
            return None
        for node in (space, *self.ancestors(space_id)):
            if node.time_zone:
                return node.time_zone
        return None

    def to_json(self) -> list[dict[str, Any]]:
        """The tree as a flat list with `parent_id` and `children_ids` (it builds back the same)."""
        return [space_json(s) for s in self.spaces.values()]


def space_json(space: Space) -> dict[str, Any]:
    """One space as Density-shaped JSON (the fields `Space.from_json` reads)."""
    return {
        "id": space.id,
        "name": space.name,
        "space_type": space.space_type,
        "parent_id": space.parent_id,
        "children_ids": list(space.children_ids),
        "capacity": space.capacity,
        "function": space.function,
        "time_zone": space.time_zone,
        "counting_mode": space.counting_mode,
        "labels": list(space.labels),
    }


def _items(source: Any) -> list[Any]:
    """The list of space entries inside any answer shape."""
    if isinstance(source, Mapping):
        for key in ("results", "data", "spaces"):
            if isinstance(source.get(key), list):
                return list(source[key])
        return [source] if "id" in source else []
    if isinstance(source, list | tuple):
        return list(source)
    return []


def _spaces(items: Iterable[Any]) -> list[Space]:
    """`Space` objects as they are, JSON entries with their nested children flattened."""
    out: list[Space] = []
    for item in items:
        out.extend([item] if isinstance(item, Space) else Space.all_from_json([item]))
    return out


def build_tree(source: Any) -> SpaceTree:
    """The space tree from `/v3/spaces` in any shape, or from `Space` objects.

    A space's parent is its own `parent_id` when it has one (a nested object's is the object
    it is nested in), else the space whose `children_ids` list it. A parent's children keep the
    parent's own order, then any others it was named parent of, in the order listed.
    """
    spaces: dict[str, Space] = {}
    for space in _spaces(_items(source)):
        known = spaces.get(space.id)
        if known is None:
            spaces[space.id] = space
        else:  # listed twice (flat and nested): keep the first, fill what it lacked
            spaces[space.id] = replace(
                known,
                parent_id=known.parent_id or space.parent_id,
                children_ids=known.children_ids or space.children_ids,
                time_zone=known.time_zone or space.time_zone,
            )
    listed_by: dict[str, str] = {}
    for space in spaces.values():
        for child in space.children_ids:
            listed_by.setdefault(child, space.id)
    parents: dict[str, str | None] = {}
    for sid, space in spaces.items():
        parent = space.parent_id or listed_by.get(sid)
        parents[sid] = parent if parent != sid else None
    children: dict[str, list[str]] = {sid: [] for sid in spaces}
    for sid, space in spaces.items():
        children[sid].extend(c for c in space.children_ids if parents.get(c) == sid)
    for sid, parent in parents.items():
        if parent in children and sid not in children[parent]:
            children[parent].append(sid)
    return SpaceTree(
        {
            sid: replace(space, parent_id=parents[sid], children_ids=tuple(children[sid]))
            for sid, space in spaces.items()
        }
    )


def with_floor_order(tree: SpaceTree, orders: Mapping[str, Sequence[str]]) -> SpaceTree:
    """The tree with each named building's children in the order given (an admin's override):
    its children listed there first, in that order, then the others in Density's order."""
    spaces = dict(tree.spaces)
    for building_id, order in orders.items():
        building = spaces.get(building_id)
        if building is None:
            continue
        mine = set(building.children_ids)
        first = [c for c in dict.fromkeys(order) if c in mine]
        rest = [c for c in building.children_ids if c not in first]
        spaces[building_id] = replace(building, children_ids=(*first, *rest))
    return SpaceTree(spaces)


# ------------------------------------------------------------------------------ the directory
class SpacesClient(Protocol):
    def spaces(self, *, retries: int | None = None) -> list[Space]: ...


class SpaceCache(Protocol):
    def load_space_cache(self) -> tuple[str, float] | None: ...

    def save_space_cache(self, data: str, fetched_at: float) -> None: ...


def problem_of(exc: DensityError) -> str:
    """Why a fetch failed, in a few words a page may show: never Density's own text, which
    could echo a request (and nothing of it is a secret worth the risk)."""
    if isinstance(exc, AuthError):
        return "Density refused the credentials"
    if isinstance(exc, RateLimited):
        return "Density is limiting our calls"
    if isinstance(exc, Unavailable):
        return "Density unreachable"
    return "Density's answer could not be read"


class SpaceDirectory:
    """The last space tree from Density: read at once, refreshed in the background."""

    def __init__(
        self,
        client: SpacesClient,
        ttl: float = 600.0,
        store: SpaceCache | None = None,
        clock: Clock = SYSTEM_CLOCK,
        floor_order: Callable[[], Mapping[str, Sequence[str]]] | None = None,
    ) -> None:
        self.client = client
        # The admin's floor order per building (the store's), read again with each refresh so
        # every process of a fleet follows a change within one lifetime of the tree.
        self.floor_order = floor_order
        self._orders: Mapping[str, Sequence[str]] = {}
        self.ttl = max(1.0, ttl)  # a zero would fetch in a loop
        self.store = store
        self.clock = clock
        # Called from the refresh thread with the new tree after each change.
        self.listeners: list[Callable[[SpaceTree], None]] = []
        self.fetches = 0  # refreshes tried (tests and metrics)
        self._lock = threading.Lock()  # guards the fields below; never held across I/O
        self._tree = SpaceTree()
        self._view = self._tree  # the tree in the admin's floor order: what reads return
        self._fetched_at: float | None = None  # clock() of the last good fetch in this process
        self._as_of: float | None = None  # wall time of the tree's fetch (perhaps by a past run)
        self._error: str | None = None
        self._problem: str | None = None  # why the last fetch failed, in words safe for a page
        self._failures = 0
        self._attempted_at: float | None = None
        self._wanted = False  # a refresh was asked for (unknown id) before the ttl passed
        self._refreshing = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._settled = threading.Event()  # a tree is held, or a first fetch has failed
        self._thread: threading.Thread | None = None
        self._load()
        self.reload_floor_order()

    # -- reads: memory only ------------------------------------------------------------------
    def tree(self) -> SpaceTree:
        """The current tree (perhaps empty); asks the worker for a refresh when one is due."""
        self._nudge()
        with self._lock:
            return self._view

    def reload_floor_order(self) -> None:
        """Read the admin's floor order again (after a change, and before each refresh)."""
        if self.floor_order is None:
            return
        try:
            orders = dict(self.floor_order())
        except Exception:  # the database being down must not cost us the tree
            logger.warning("could not read the floor order", exc_info=True)
            return
        with self._lock:
            self._orders = orders
            self._view = with_floor_order(self._tree, orders)

    def all(self) -> list[Space]:
        """Every space known now."""
        return self.tree().all()

    def get(self, space_id: str) -> Space | None:
        """One space; an unknown id asks for a refresh (it is never fetched inline)."""
        space = self.tree().get(space_id)
        if space is None:
            self.request_refresh()
        return space

    def parent_of(self, space_id: str) -> Space | None:
        """The space's parent."""
        return self.tree().parent_of(space_id)

    def building_of(self, space_id: str) -> Space | None:
        """The floor's building (else its parent)."""
        return self.tree().building_of(space_id)

    def floors(self, building_order: bool = False) -> list[Space]:
        """Every floor, by building, then by name or in the building's own order."""
        return self.tree().floors(building_order)

    def siblings(self, floor_id: str) -> list[Space]:
        """The other floors of the floor's building."""
        return self.tree().siblings(floor_id)

    def rooms_of(self, floor_id: str) -> list[Space]:
        """The rooms under a floor, at any depth."""
        return self.tree().rooms_of(floor_id)

    def time_zone(self, space_id: str) -> str | None:
        """A space's time zone, inherited through the tree."""
        return self.tree().time_zone(space_id)

    def status(self) -> dict[str, Any]:
        """For pages: "ok" (Density's last answer), "stored" (the tree kept by a past run, Density
        not heard yet), "unreachable" (serving an older tree), "failing" (no tree, and the last
        fetch failed: `problem` says why, in words safe for a page) or "waiting" (none yet)."""
        self._nudge()
        with self._lock:
            if not self._tree:
                state = "waiting" if self._error is None else "failing"
            elif self._error is not None:
                state = "unreachable"
            elif self._fetched_at is None:
                state = "stored"
            else:
                state = "ok"
            return {
                "state": state,
                "as_of": self._as_of,
                "error": self._error,
                "problem": self._problem,
                "spaces": len(self._tree),
                "refreshing": self._refreshing,
            }

    # -- refreshing -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the refresh thread (again after a fork); it fetches at once when due."""
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="space-directory", daemon=True)
            self._thread.start()

    def wait_settled(self, timeout: float) -> bool:
        """For the CLI and tests, never a request: start the worker and wait until a tree is
        held or a first fetch failed; whether a tree is held."""
        self.start()
        self._settled.wait(timeout)
        with self._lock:
            return bool(self._tree)

    def stop(self) -> None:
        """Stop the refresh thread (a refresh in flight ends with its own call)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def request_refresh(self) -> None:
        """Ask for a refresh soon (at most one per few seconds), without waiting for it."""
        with self._lock:
            recent = (
                self._attempted_at is not None
                and self.clock.monotonic() - self._attempted_at < UNKNOWN_REFRESH_S
            )
            if recent or self._refreshing:
                return
            self._wanted = True
        self._wake.set()
        self.start()

    def refresh(self) -> bool:
        """Fetch once now, in the calling thread (the worker, the CLI, tests); True when it did.

        Returns False at once when another refresh is in flight.
        """
        with self._lock:
            if self._refreshing:
                return False
            self._refreshing = True
            self._wanted = False
            self._attempted_at = self.clock.monotonic()
            self.fetches += 1
        self.reload_floor_order()
        try:
            # Sent once: the refresh loop's own backoff is the retry (5 s doubling to a
            # minute), so an outage costs one call per attempt, not one per attempt and retry.
            tree = build_tree(self.client.spaces(retries=0))
        except DensityError as exc:
            self._failed(str(exc), problem_of(exc))
            return True
        except Exception as exc:  # a bug or odd data must not end the worker
            logger.exception("space directory: refresh failed")
            self._failed(type(exc).__name__, "Density's answer could not be read")
            return True
        finally:
            with self._lock:
                self._refreshing = False
        if not tree:
            # An empty answer (a token that sees nothing, a bad page) must not erase every room
            # a kiosk shows by name, nor the copy kept for the next restart; with no tree yet
            # it is a failure to show, not a wait.
            self._failed("Density listed no spaces", "Density listed no spaces")
            return True
        self._succeeded(tree)
        return True

    def _failed(self, reason: str, problem: str) -> None:
        with self._lock:
            first = self._error is None
            self._error = reason[:200]
            self._problem = problem
            self._failures += 1
        self._settled.set()
        if first:
            logger.warning("spaces from Density unavailable, serving the last tree: %s", reason)

    def _succeeded(self, tree: SpaceTree) -> None:
        with self._lock:
            recovered = self._error is not None
            changed = tree != self._tree
            self._tree = tree
            self._view = with_floor_order(tree, self._orders)
            self._fetched_at = self.clock.monotonic()
            self._as_of = self.clock.time()
            self._error = None
            self._problem = None
            self._failures = 0
            as_of = self._as_of
        self._settled.set()
        if recovered:
            logger.info("spaces from Density again (%d spaces)", len(tree))
        if self.store is not None:
            try:
                self.store.save_space_cache(json.dumps(tree.to_json()), as_of)
            except Exception:  # the database being down must not cost us the fresh tree
                logger.warning("could not keep the space tree in the store", exc_info=True)
        if changed:
            for listener in list(self.listeners):
                try:
                    listener(tree)
                except Exception:
                    logger.exception("space directory: listener failed")

    def _due_in(self) -> float:
        """Seconds until the next refresh should start (0: now)."""
        now = self.clock.monotonic()
        with self._lock:
            # While failing, the backoff holds whoever asks: an unknown floor read every second
            # (a kiosk, the admin, an editor) must not turn an outage into a call a second.
            if self._failures:
                wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (self._failures - 1), self.ttl)
                return max(0.0, (self._attempted_at or now) + wait - now)
            if self._wanted:
                return 0.0
            if self._fetched_at is None:
                return 0.0
            return max(0.0, self._fetched_at + self.ttl - now)

    def _nudge(self) -> None:
        """Wake (or restart) the worker when a refresh is due; never fetches here."""
        if self._thread is None or not self._thread.is_alive():
            if not self._stop.is_set():
                self.start()
        elif self._due_in() == 0.0:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._due_in()
            if wait > 0:
                self.clock.wait(self._wake, min(wait, 60.0))
                self._wake.clear()
                continue
            self.refresh()

    def _load(self) -> None:
        """The tree a past run kept in the store: rooms by name before Density answers."""
        if self.store is None:
            return
        try:
            kept = self.store.load_space_cache()
        except Exception:
            logger.warning("could not read the kept space tree", exc_info=True)
            return
        if kept is None:
            return
        data, fetched_at = kept
        try:
            tree = build_tree(json.loads(data))
        except ValueError:
            logger.warning("the kept space tree is not JSON; ignoring it")
            return
        self._tree, self._as_of = tree, fetched_at
        self._view = tree
        if tree:
            self._settled.set()
        logger.info("space tree of %d spaces loaded from the store", len(tree))
