"""The automatic floor schematic: rooms grouped by what they are for, sized by capacity.

Until an admin uploads a floor plan, the kiosk draws the floor as a squarified treemap: one
zone per group of functions (meeting rooms, focus and calls, work areas, social spaces), each
zone tiled with its rooms, bigger rooms taking more floor. static/kiosk/kiosk.js carries the
same algorithm, operation for operation, so the page can lay the floor out again when the
room set or the screen's shape changes; tests/test_kiosk_layout.py checks that both agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pyphen

GROUP_ORDER = ("meet", "focus", "work", "social", "other")

FUNCTION_GROUP = {
    "meeting_room": "meet",
    "conference_room": "meet",
    "boardroom": "meet",
    "event_space": "meet",
    "phone_booth": "focus",
    "focus_room": "focus",
    "quiet_room": "focus",
    "wellness_room": "focus",
    "library": "focus",
    "desk_neighborhood": "work",
    "open_collaboration_space": "work",
    "desk": "work",
    "lounge": "social",
    "kitchen": "social",
    "cafe": "social",
    "break_room": "social",
    "games_room": "social",
    "reception": "social",
}

# Map proportions before the page measures its real box (the page lays out again if needed).
DEFAULT_SIZE = {
    "landscape": (1500.0, 1000.0),
    "portrait": (1000.0, 860.0),
    "phone": (1000.0, 1250.0),
}
ZONE_GAP = 14.0  # corridor between zones, in map units
ROOM_GAP = 8.0  # wall between rooms
LABEL_BAND = 34.0  # zone label above its rooms
# A room's name is set at about this size (map units) at the smallest readable size on a
# 1080p landscape screen; each tile first gets the floor its name needs at that size, and
# capacity shares out only what is left, so a long name is never squeezed into a sliver.
NAME_FS = 26.0


@dataclass(frozen=True)
class Rect:
    """A rectangle in map units."""

    x: float
    y: float
    w: float
    h: float


def group_of(function: str | None) -> str:
    """The zone a Density function belongs to."""
    return FUNCTION_GROUP.get(function or "", "other")


def weight(room: dict[str, Any]) -> float:
    """Floor area a room gets: grows with capacity, but a phone booth stays legible."""
    capacity = room.get("capacity") or 1
    return math.sqrt(max(capacity, 1)) + 0.6


def need(room: dict[str, Any]) -> float:
    """Floor a room's name needs: its text wrapped at NAME_FS, the state line and padding."""
    n = len(room.get("name") or "")
    return (0.6 * NAME_FS * n) * (1.2 * NAME_FS) * 2.4 + (4 * NAME_FS) * (4 * NAME_FS)


def _worst(row: list[float], side: float) -> float:
    total = 0.0
    for a in row:
        total += a
    biggest = max(row)
    smallest = min(row)
    return max(biggest * side * side / (total * total), total * total / (side * side * smallest))


def squarify(values: list[float], rect: Rect) -> list[Rect]:
    """Bruls' squarified treemap of `values` (sorted, biggest first) inside `rect`."""
    total = 0.0
    for v in values:
        total += v
    if total <= 0 or rect.w <= 0 or rect.h <= 0:
        return [Rect(rect.x, rect.y, 0.0, 0.0) for _ in values]
    scale = rect.w * rect.h / total
    areas = [v * scale for v in values]
    out: list[Rect] = []
    x, y, w, h = rect.x, rect.y, rect.w, rect.h
    row: list[float] = []
    i = 0
    while i < len(areas) or row:
        side = min(w, h)
        if i < len(areas) and (not row or _worst(row + [areas[i]], side) <= _worst(row, side)):
            row.append(areas[i])
            i += 1
            continue
        row_total = 0.0
        for a in row:
            row_total += a
        if w >= h:
            col_w = row_total / h
            cy = y
            for a in row:
                cell_h = a / col_w
                out.append(Rect(x, cy, col_w, cell_h))
                cy += cell_h
            x += col_w
            w -= col_w
        else:
            row_h = row_total / w
            cx = x
            for a in row:
                cell_w = a / row_h
                out.append(Rect(cx, y, cell_w, row_h))
                cx += cell_w
            y += row_h
            h -= row_h
        row = []
    return out


def _r(v: float) -> float:
    return math.floor(v * 10 + 0.5) / 10


def layout(rooms: list[dict[str, Any]], width: float, height: float) -> dict[str, Any]:
    """Zones and room tiles for these rooms in a `width` x `height` map."""
    need_total = 0.0
    weight_total = 0.0
    for room in rooms:
        need_total += need(room)
        weight_total += weight(room)
    spare = max(0.0, width * height * 0.8 - need_total)
    value: dict[str, float] = {}
    for room in rooms:
        value[room["id"]] = need(room) + spare * weight(room) / weight_total
    groups: dict[str, list[dict[str, Any]]] = {}
    for room in rooms:
        groups.setdefault(group_of(room.get("function")), []).append(room)
    ordered = []
    for index, name in enumerate(GROUP_ORDER):
        members = groups.get(name)
        if not members:
            continue
        members = sorted(members, key=lambda r: (-value[r["id"]], r.get("name") or "", r["id"]))
        total = 0.0
        for r in members:
            total += value[r["id"]]
        ordered.append((total, index, name, members))
    ordered.sort(key=lambda g: (-g[0], g[1]))
    half = ZONE_GAP / 2
    zone_rects = squarify(
        [g[0] for g in ordered], Rect(-half, -half, width + ZONE_GAP, height + ZONE_GAP)
    )
    zones, tiles = [], []
    for (_total, _index, name, members), zr in zip(ordered, zone_rects, strict=True):
        zone = Rect(zr.x + half, zr.y + half, zr.w - ZONE_GAP, zr.h - ZONE_GAP)
        zones.append(
            {"group": name, "x": _r(zone.x), "y": _r(zone.y), "w": _r(zone.w), "h": _r(zone.h)}
        )
        inner = Rect(zone.x, zone.y + LABEL_BAND, zone.w, zone.h - LABEL_BAND)
        g = ROOM_GAP / 2
        padded = Rect(
            inner.x + 10 - g, inner.y - g, inner.w - 20 + ROOM_GAP, inner.h - 10 + ROOM_GAP
        )
        for room, cell in zip(
            members, squarify([value[r["id"]] for r in members], padded), strict=True
        ):
            tiles.append(
                {
                    "id": room["id"],
                    "group": name,
                    "x": _r(cell.x + g),
                    "y": _r(cell.y + g),
                    "w": _r(max(0.0, cell.w - ROOM_GAP)),
                    "h": _r(max(0.0, cell.h - ROOM_GAP)),
                }
            )
    return {"width": width, "height": height, "zones": zones, "tiles": tiles}


def tile_text(tile: dict[str, Any], name: str) -> dict[str, float]:
    """Font sizes and positions inside a tile: name, then state, then small print; seats at
    the foot when there is room (kiosk.js computes the same)."""
    w, h = tile["w"], tile["h"]
    pad = min(18.0, max(6.0, min(w, h) * 0.09))
    name_fs = min(h * 0.3, 58.0, (w - 2 * pad) / (0.6 * max(len(name), 3)))
    name_fs = max(11.0, name_fs)
    state_fs = max(10.0, min(name_fs * 0.62, 30.0, h * 0.2))
    name_y = tile["y"] + pad + name_fs * 0.92
    state_y = name_y + state_fs * 0.45 + state_fs * 1.05
    seats = h - (state_y - tile["y"]) > state_fs * 2.6 and w > state_fs * 4
    return {
        "pad": _r(pad),
        "name_fs": _r(name_fs),
        "state_fs": _r(state_fs),
        "name_y": _r(name_y),
        "state_y": _r(state_y),
        "note_y": _r(state_y + state_fs * 1.25),
        "note_fs": _r(state_fs * 0.72),
        "seats_y": _r(tile["y"] + h - pad) if seats else 0.0,
        "icon": _r(state_fs * 1.15),
    }


# Chromium hyphenates nothing without its downloaded dictionaries (a kiosk is often offline),
# so the page gets its break points from here: soft hyphens per language.
HYPHEN_LANGS = {"en": "en_GB", "de": "de_DE", "fr": "fr_FR"}


@lru_cache(maxsize=8)
def _hyphenator(lang: str) -> pyphen.Pyphen:
    return pyphen.Pyphen(lang=HYPHEN_LANGS.get(lang, "en_GB"), left=3, right=3)


def _language_of(text: str, lang: str) -> str:
    """The language whose letters the text uses (only German or only French ones), else lang."""
    letters = set(text)
    if letters & set("äöüßÄÖÜ"):
        return "de"
    return "fr" if letters & set("éèêàçôûâîœ") else lang


def _word(word: str, lang: str, hint: str) -> str:
    # Buildings name rooms in more than one language: a long word the screen's language cannot
    # break ("Geschäftsführungsbesprechungszimmer" on an English screen) tries the others, the
    # language its letters (or its name's) point to first.
    order = dict.fromkeys((_language_of(word, hint), lang, *HYPHEN_LANGS))
    for tongue in order:
        broken = _hyphenator(tongue).inserted(word, hyphen="\u00ad")
        if "\u00ad" in broken or len(word) < 12:
            return broken
    return word


def hyphenate(name: str, lang: str) -> str:
    """The name with soft hyphens where the language allows a break inside a word."""
    # "Besprechungsraum Großer Saal Nord" is German as a whole, though its first word has no
    # German letter: English rules would break it "Besprechung-s-raum".
    hint = _language_of(name, lang)
    # Only words of letters: a code, an address or markup-like text stays as it is.
    words = [_word(w, lang, hint) if len(w) > 6 and w.isalpha() else w for w in name.split(" ")]
    # A word's own hyphen is a break already: no soft one beside it.
    return " ".join(words).replace("\u00ad-", "-").replace("-\u00ad", "-")
