"""Display names: what a floor or a room is called on a screen, per language, in one place.

Density names spaces once, in whatever language its admin typed ("Ground floor", "1st floor").
An admin can give a floor or a room its own name here (kept by us, never written to Density),
as a default and per language. Every renderer asks `NameBook.resolve`: the name for the
screen's language, else the default display name, else Density's name, which for the ordinal
floor names Density gives ("Ground floor", "3rd floor") is translated into German and French.

Names reach a screen by the server, not the page: a message for kiosks carries rooms, a floor
or the other floors' panel by space id, and `localise_message` rewrites their `name` for one
language. The hub calls `localise_text` once per language on a floor's shared frames, so the
kiosk page shows whatever `name` it is given (and still puts it in the DOM as text).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

# Only these exact English shapes are translated: a name an admin or Density spelled any other
# way is a proper name, and shown as it is.
_GROUND = re.compile(r"^ground floor$", re.IGNORECASE)
_ORDINAL = re.compile(r"^(\d{1,3})(st|nd|rd|th) floor$", re.IGNORECASE)


def _english_suffix(n: int) -> str:
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def ordinal_floor_name(name: str, lang: str) -> str | None:
    """German or French for Density's ordinal floor names ("Ground floor" -> "Erdgeschoss",
    "1st floor" -> "1. OG" / "1er étage"); None for any other name or language."""
    if lang not in ("de", "fr"):
        return None
    text = name.strip()
    if _GROUND.match(text):
        return "Erdgeschoss" if lang == "de" else "Rez-de-chaussée"
    match = _ORDINAL.match(text)
    if match is None:
        return None
    n = int(match.group(1))
    if n == 0 or match.group(2).lower() != _english_suffix(n):
        return None  # "2th floor" is not Density's pattern: leave it alone
    if lang == "de":
        return f"{n}. OG"
    return "1er étage" if n == 1 else f"{n}e étage"


class NameBook:
    """Every display name an admin set, in memory: {space id: {language or "": name}}.

    Read from any thread (feeds, the hub's fan-out, requests) without touching the database;
    actions/names.py fills it from the store after each change and now and then (another
    process may have changed a name).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, dict[str, str]] = {}
        self.version = 0  # bumped on every change: part of the HTTP fallback's ETag

    def replace(self, names: Mapping[str, Mapping[str, str]]) -> bool:
        """Take the stored names; True when they differ from what was held."""
        fresh = {sid: dict(by_lang) for sid, by_lang in names.items() if by_lang}
        with self._lock:
            if fresh == self._names:
                return False
            self._names = fresh
            self.version += 1
        return True

    def names_of(self, space_id: str) -> dict[str, str]:
        """The display names set for one space ("" is the default), perhaps none."""
        with self._lock:
            return dict(self._names.get(space_id, {}))

    def all(self) -> dict[str, dict[str, str]]:
        """A copy of every space's display names."""
        with self._lock:
            return {sid: dict(v) for sid, v in self._names.items()}

    def resolve(self, space_id: str, lang: str, density_name: str, is_floor: bool = True) -> str:
        """The name a screen in `lang` shows for a space: its name in that language, else its
        default display name, else Density's (a floor's ordinal name translated; a room called
        "1st floor" is a proper name)."""
        with self._lock:
            own = self._names.get(space_id)
            if own:
                name = own.get(lang) or own.get("")
                if name:
                    return name
        if not is_floor:
            return density_name
        return ordinal_floor_name(density_name, lang) or density_name

    # -- kiosk messages ------------------------------------------------------------------------
    def localise_message(self, message: dict[str, Any], lang: str) -> dict[str, Any] | None:
        """A copy of a kiosk message with its names (rooms, floor, other floors) for `lang`, or
        None when no name changes. The message itself is left alone: its rooms and panel may be
        a feed's or the panel's own dicts. Idempotent: a resolved name resolves to itself."""
        changed = False

        def fix(item: Any, is_floor: bool) -> Any:
            nonlocal changed
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                return item
            current = item.get("name")
            density = current if isinstance(current, str) else ""
            name = self.resolve(item["id"], lang, density, is_floor)
            if not name or name == current:
                return item
            changed = True
            return {**item, "name": name}

        out = dict(message)
        rooms = message.get("rooms")
        if isinstance(rooms, dict):
            out["rooms"] = {sid: fix(room, False) for sid, room in rooms.items()}
        if "floor" in message:
            out["floor"] = fix(message["floor"], True)
        floors = message.get("other_floors")
        if isinstance(floors, list):
            out["other_floors"] = [fix(floor, True) for floor in floors]
        return out if changed else None

    def localise_text(self, text: str, lang: str) -> str:
        """`localise_message` on an encoded message (the hub's frames); the text itself when no
        name changes, so a heartbeat or a floor without display names costs one substring test."""
        if '"name"' not in text:
            return text
        with self._lock:
            nothing_set = not self._names
        names_floors = '"floor"' in text or '"other_floors"' in text
        if nothing_set and (lang not in ("de", "fr") or not names_floors):
            return text  # only a floor's ordinal name could change, and only in German or French
        try:
            message = json.loads(text)
        except ValueError:
            return text
        localised = self.localise_message(message, lang) if isinstance(message, dict) else None
        if localised is None:
            return text
        return json.dumps(localised, separators=(",", ":"))  # as core/protocol.py's dumps


__all__ = ["NameBook", "ordinal_floor_name"]
