"""Display names of floors and rooms as the console and the API change them.

`set_names` checks the fields, stores them, refreshes the in-memory `NameBook` every renderer
reads (core/names.py) and reloads the screens that show the space: a room's floor, or a
floor and the other floors of its building (their panel names it). It returns the names before
and after, so a caller can record the change. `NameBook` lives in `Services.state`; another
process's change is picked up by `refresh`, which the screens' routes call: every time a page
or a socket opens (a rename reloads the screens of every process, which then read it), at most
every REFRESH_S seconds for the rest, and never from a feed or the fan-out. It reads the names'
generation (one row, bumped with every write) and the names themselves only when it moved.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signage import i18n
from signage.actions import audit
from signage.core.directory import CONTAINERS
from signage.core.names import NameBook
from signage.core.protocol import CLOSE_RELOAD
from signage.store import StoreError, StoreUnavailable
from signage.store.names import DisplayNames

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)

MAX_NAME = 80
REFRESH_S = 10.0  # another process's rename reaches this one's new pages within this
# The fields a space's names are given in: the default, then one per kiosk language.
FIELDS = ("default", *i18n.LANGUAGES)
_BOOK = "display_names"
_GENERATION = "display_names_generation"  # the store's generation of the names held


class Invalid(Exception):
    """Names that cannot be saved; `errors` maps each field to a message for people."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class UnknownSpace(LookupError):
    """Not a floor or a room Density lists (now)."""


@dataclass(frozen=True)
class NamesChange:
    """What a change did: the space, its kind, and its names before and after (by field)."""

    space_id: str
    kind: str  # "floor" or "room"
    density_name: str
    before: dict[str, str]
    after: dict[str, str]
    screens_reloaded: int


def book(svc: Services) -> NameBook:
    """The process's NameBook (made, filled from the store and given to the hub on first use)."""
    with svc.lock:
        found = svc.state.get(_BOOK)
        if found is None:
            found = svc.state[_BOOK] = NameBook()
            svc.state["display_names_read_at"] = None
            # The hub localises each floor's shared frames per kiosk language with it.
            svc.hub.localise = found.localise_text
    return found


def refresh(svc: Services, force: bool = False) -> None:
    """Bring the names up to date with the store: look at their generation (one row) when the
    last look is older than REFRESH_S (or `force`), and re-read every name only when it moved.
    A database that cannot be read leaves the names held as they are."""
    names = book(svc)
    read_at = svc.state.get("display_names_read_at")
    now = time.monotonic()
    if not force and read_at is not None and now - read_at < REFRESH_S:
        return
    svc.state["display_names_read_at"] = now
    stored_names = DisplayNames(svc.store)
    try:
        # 1,000 screens reopening after a restart or a rename each look: one row apiece,
        # and the whole table once per change (per process).
        if stored_names.generation() == svc.state.get(_GENERATION):
            return
        generation, stored = stored_names.read()
    except (StoreError, StoreUnavailable) as exc:
        # Every screen opening looks (even one with a wrong credential, before it is checked):
        # with the database away, one line a minute says so, not one per request.
        warned = svc.state.get("display_names_warned_at")
        if warned is None or now - warned >= 60.0:
            svc.state["display_names_warned_at"] = now
            logger.warning("display names not refreshed (held as they are): %s", exc)
        return
    # Requests reading at once may finish in any order: the generation and the names held
    # are set together, so an older read landing last leaves an older pair, which the next
    # look re-reads, never newer names' number on older names.
    with svc.lock:
        svc.state[_GENERATION] = generation
        changed = names.replace(_by_language(stored))
    if changed:
        logger.info("display names loaded: %d space(s)", len(stored))


def _by_language(stored: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {sid: {lang: n for lang, n in v.items() if n} for sid, v in stored.items()}


def _fields(stored: dict[str, str]) -> dict[str, str]:
    """Stored names ("" = default) as fields ("default", "en", ...)."""
    return {("default" if lang == "" else lang): name for lang, name in stored.items()}


def space_kind(svc: Services, space_id: str) -> tuple[str, str]:
    """("floor" or "room", Density's name) of a space, from the cached tree; UnknownSpace."""
    tree = svc.directory.tree()  # memory only: never waits on Density
    space = tree.get(space_id)
    if space is None:
        raise UnknownSpace(space_id)
    if space.space_type == "floor":
        return "floor", space.name
    if _floor_of(svc, space_id) is not None and space.space_type not in CONTAINERS:
        return "room", space.name
    raise UnknownSpace(space_id)


def _floor_of(svc: Services, space_id: str) -> str | None:
    """The id of the floor a room is on (its nearest floor ancestor), or None."""
    ancestors = svc.directory.tree().ancestors(space_id)
    return next((a.id for a in ancestors if a.space_type == "floor"), None)


def clean_names(data: Any) -> dict[str, str]:
    """The fields of a names form or JSON body, checked: {"default": ..., "de": ...}; empty
    fields are left out (they fall back). Raises Invalid naming each bad field."""
    if not isinstance(data, dict):
        raise Invalid({"names": "must be an object with default, " + ", ".join(i18n.LANGUAGES)})
    errors: dict[str, str] = {}
    for key in sorted(set(data) - set(FIELDS), key=str)[:5]:
        errors[str(key)[:40]] = "unknown field (use default, " + ", ".join(i18n.LANGUAGES) + ")"
    out: dict[str, str] = {}
    for field in FIELDS:
        value = data.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            errors[field] = "must be text"
            continue
        value = " ".join(value.split())  # one line: a newline would break a tile's text
        if len(value) > MAX_NAME:
            errors[field] = f"at most {MAX_NAME} characters (this has {len(value)})"
        elif any(ord(c) < 32 or ord(c) == 127 for c in value):
            errors[field] = "must not contain control characters"
        elif value:
            out[field] = value
    if errors:
        raise Invalid(errors)
    return out


def names_of(svc: Services, space_id: str) -> dict[str, str]:
    """A space's display names as fields, read from the store."""
    return _fields(DisplayNames(svc.store).of(space_id))


def set_names(svc: Services, space_id: str, data: Any) -> NamesChange:
    """Give a floor or a room exactly these display names (an empty set removes them all),
    then reload the screens that show it. Raises UnknownSpace or Invalid."""
    kind, density_name = space_kind(svc, space_id)
    fields = clean_names(data)
    stored = {("" if f == "default" else f): name for f, name in fields.items()}
    with audit.change(
        svc.store,
        "names.set",
        "name",
        space_id,
        density_name,
        before=names_of(svc, space_id),
        after=fields,
    ):
        before = DisplayNames(svc.store).put(space_id, stored)
    refresh(svc, force=True)
    reloaded = _reload_for(svc, space_id, kind)
    logger.info(
        "display names of %s %s set (%d name(s)); %d kiosk socket(s) reloading",
        kind,
        space_id,
        len(stored),
        reloaded,
    )
    return NamesChange(space_id, kind, density_name, _fields(before), fields, reloaded)


def _reload_for(svc: Services, space_id: str, kind: str) -> int:
    """Reload the screens showing the space: its floor's, and for a floor its siblings' too."""
    if kind == "floor":
        floors = [space_id, *(f.id for f in svc.directory.siblings(space_id))]
    else:
        floor_id = _floor_of(svc, space_id)
        floors = [floor_id] if floor_id is not None else []
    closed = 0
    for floor_id in floors:
        for display in svc.store.list_displays(floor_id):
            closed += svc.hub.close_display(display.id, CLOSE_RELOAD, "display names changed")
    return closed


def overview(svc: Services) -> list[dict[str, Any]]:
    """Every floor Density lists (in the building's order) with its rooms, each with Density's
    name, its display names and what each language's screens show now."""
    names = book(svc)
    tree = svc.directory.tree()
    out = []
    for floor in tree.floors(building_order=True):
        building = tree.building_of(floor.id)
        rooms = svc.directory.rooms_of(floor.id)
        out.append(
            {
                **_entry(names, floor.id, floor.name, True),
                "building": building.name if building else "",
                "rooms": [_entry(names, r.id, r.name, False) for r in rooms],
            }
        )
    return out


def _entry(names: NameBook, space_id: str, density_name: str, is_floor: bool) -> dict[str, Any]:
    return {
        "id": space_id,
        "density_name": density_name,
        "names": _fields(names.names_of(space_id)),
        "shown": {
            lang: names.resolve(space_id, lang, density_name, is_floor) for lang in i18n.LANGUAGES
        },
    }


def shown(svc: Services, space_id: str, density_name: str, is_floor: bool) -> dict[str, str]:
    """The name each language's screens show for a space: {"en": ..., "de": ..., "fr": ...}."""
    names = book(svc)
    return {lang: names.resolve(space_id, lang, density_name, is_floor) for lang in i18n.LANGUAGES}


def floor_label(svc: Services, floor_id: str, lang: str = "en") -> str:
    """ "Building / Floor" with the floor's display name for `lang` (the console's labels), or
    the id when Density does not list the floor (now)."""
    tree = svc.directory.tree()  # memory only
    floor = tree.get(floor_id)
    if floor is None:
        return floor_id
    name = book(svc).resolve(floor_id, lang, floor.name, True)
    building = tree.building_of(floor_id)
    return f"{building.name} / {name}" if building else name


def localise(svc: Services, message: dict[str, Any], language: str) -> dict[str, Any]:
    """A kiosk message (a display's snapshot) with every space named for its screen."""
    return book(svc).localise_message(message, language) or message


__all__ = [
    "FIELDS",
    "Invalid",
    "NamesChange",
    "UnknownSpace",
    "book",
    "clean_names",
    "floor_label",
    "localise",
    "names_of",
    "overview",
    "refresh",
    "set_names",
    "shown",
    "space_kind",
]
