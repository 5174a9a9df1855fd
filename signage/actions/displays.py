"""Displays as the console, the JSON API and the CLI change them: the floors a display may be put
on, its fields checked, and what saving, deleting, revoking or commanding one does to its screens.

Nothing here knows how the change was asked for (a form, a JSON body, a command line): the
callers turn `Invalid` into their own answer.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from signage import i18n
from signage.actions import audit
from signage.core.branding import accent_problem
from signage.core.directory import SpaceDirectory
from signage.core.hub import Hub
from signage.core.protocol import CLOSE_RELOAD, CLOSE_UNAUTHORIZED, dumps
from signage.store import Display, Store

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)

ORIENTATIONS = ("", "landscape", "portrait")
ROTATIONS = (0, 90, 180, 270)
THEMES = ("light", "dark", "contrast")
COMMANDS = ("reload", "identify")
# Id patterns, also published in the API's OpenAPI document so that it promises what is checked.
SPACE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
FUNCTION_ID = re.compile(r"^[a-z0-9_]{1,48}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_DENSITY_DISPLAY_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_NAME = 80
MAX_URL = 500
MAX_LIST = 500

# Settings the console and the API own; other keys in display.settings are kept as they are.
SETTING_KEYS = (
    "orientation",
    "rotation",
    "theme",
    "brand_color",
    "logo_url",
    "language",
    "functions",
    "min_capacity",
    "hidden_rooms",
    "night",
    "qr",
    # Bookings beside the sensors (docs/bookings.md): minutes, and whether a booked room
    # nobody turned up to is offered to visitors.
    "booking_margin_min",
    "booking_grace_min",
    "offer_booked_empty",
    "free_for_min",
)
DEFAULT_SETTINGS: dict[str, Any] = {
    "orientation": "",
    "rotation": 0,
    "theme": "light",
    "brand_color": "",
    "logo_url": "",
    "language": i18n.DEFAULT_LANGUAGE,
    "functions": [],
    "min_capacity": 0,
    "hidden_rooms": [],
    "night": None,
    "qr": True,
    "booking_margin_min": 10,
    "booking_grace_min": 10,
    "offer_booked_empty": False,
    "free_for_min": 0,
}


# -- floors from Density (the directory's cached tree: never waits on Density) ---------------------
@dataclass(frozen=True)
class FloorChoice:
    """A floor as a display may be put on it: building, then floor."""

    id: str
    name: str
    building: str
    building_id: str = ""


def floor_choices(directory: SpaceDirectory) -> tuple[list[FloorChoice], str | None]:
    """Density's floors from the directory's cached tree, and a note when it is not current.

    Never waits on Density: with no tree yet the list is empty and the note says so; during an
    outage the last tree is offered with the time it was fetched (server local time).
    """
    tree = directory.tree()
    choices = []
    for floor in tree.floors(building_order=True):  # as people read a building
        building = tree.building_of(floor.id)
        choices.append(
            FloorChoice(
                floor.id,
                floor.name,
                building.name if building else "",
                building.id if building else "",
            )
        )
    return choices, directory_note(directory.status())


def directory_note(status: dict[str, Any]) -> str | None:
    """What a page says about the space tree: None when current."""
    if status["state"] == "waiting":
        return "Waiting for Density: no floors fetched yet. Reload in a moment."
    if status["state"] == "failing":
        problem = status.get("problem") or "Density unreachable"
        return f"{problem}: no floors fetched yet. Retrying on its own."
    if status["state"] == "unreachable":
        as_of = status.get("as_of")
        when = time.strftime("%H:%M", time.localtime(as_of)) if as_of else "?"
        return f"Density unreachable: floors as of {when}."
    if status["state"] == "stored":
        as_of = status.get("as_of")
        when = time.strftime("%H:%M", time.localtime(as_of)) if as_of else "?"
        return f"Floors as of {when}, kept from before the restart; asking Density now."
    return None


def floor_label(directory: SpaceDirectory, floor_id: str) -> str:
    """ "Building / Floor" for a floor id, or the id when Density does not know it (now)."""
    tree = directory.tree()
    floor = tree.get(floor_id)
    if floor is None:
        return floor_id
    building = tree.building_of(floor_id)
    return f"{building.name} / {floor.name}" if building else floor.name


# -- a display's fields, checked -------------------------------------------------------------------
class Invalid(Exception):
    """Input that cannot be saved; `errors` maps each field to a message for people."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _text(value: Any, field: str, errors: dict[str, str], limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[field] = "must be text"
        return ""
    value = value.strip()
    if len(value) > limit:
        errors[field] = f"at most {limit} characters"
    elif any(ord(c) < 32 for c in value):
        errors[field] = "must not contain control characters"
    return value


def _int(value: Any, field: str, errors: dict[str, str], low: int, high: int) -> int:
    whole = f"must be a whole number from {low} to {high}"
    if isinstance(value, bool):
        errors[field] = whole
        return low
    if isinstance(value, str):
        value = value.strip() or "0"
        if not re.fullmatch(r"-?\d+", value):
            errors[field] = whole
            return low
        # However many digits: the range is what was missed (int() of 5,000 digits is slow).
        value = int(value) if len(value) <= 12 else (high + 1 if value[0] != "-" else low - 1)
    if not isinstance(value, int):
        errors[field] = whole
        return low
    if not low <= value <= high:
        errors[field] = f"must be between {low} and {high}"
    return value


def _id_list(value: Any, field: str, errors: dict[str, str], pattern: re.Pattern) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_LIST:
        errors[field] = f"must be a list of at most {MAX_LIST} ids"
        return []
    bad = [v for v in value if not isinstance(v, str) or not pattern.match(v)]
    if bad:
        errors[field] = "contains an invalid id"
        return []
    return list(dict.fromkeys(value))


def _logo_url(value: str, errors: dict[str, str]) -> str:
    if not value:
        return ""
    if any(c.isspace() for c in value) or "\\" in value or '"' in value:
        errors["logo_url"] = "must be a URL without spaces or quotes"
        return value
    if value.startswith("/") and not value.startswith("//"):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    errors["logo_url"] = "must start with https://, http:// or /"
    return value


def _night(value: Any, errors: dict[str, str]) -> dict[str, str] | None:
    if value in (None, "", {}):
        return None
    if not isinstance(value, dict):
        errors["night"] = 'must be {"start": "HH:MM", "end": "HH:MM"} or null'
        return None
    start, end = value.get("start") or "", value.get("end") or ""
    if not start and not end:
        return None
    if not (isinstance(start, str) and isinstance(end, str)):
        errors["night"] = "start and end must be times (HH:MM)"
        return None
    if not (_HHMM.match(start) and _HHMM.match(end)):
        errors["night"] = "give both start and end as HH:MM (24-hour clock)"
        return None
    if start == end:
        errors["night"] = "start and end must differ"
        return None
    return {"start": start, "end": end}


def clean_display(
    data: Mapping[str, Any],
    current: Display | None,
    floor_ids: set[str] | None,
    room_ids: Callable[[str], set[str] | None] | None = None,
) -> dict[str, Any]:
    """Validated fields of a display: name, floor_id, density_display_id and settings.

    Fields missing from `data` keep their current value (or the default for a new display).
    `floor_ids` is the set Density offers; None when Density cannot be reached, in which case
    only the current floor is accepted. `room_ids(floor_id)` gives the rooms the directory
    knows on a floor (None: not known now); hidden rooms must be among them, or hidden already.
    Raises Invalid with a message per bad field.
    """
    errors: dict[str, str] = {}
    unknown = set(data) - {"name", "floor_id", "density_display_id", *SETTING_KEYS}
    for key in sorted(unknown, key=str)[:5]:
        errors[str(key)[:40]] = "unknown field"

    def pick(key: str, fallback: Any) -> Any:
        return data[key] if key in data else fallback

    name = _text(pick("name", current.name if current else None), "name", errors, MAX_NAME)
    if not name and "name" not in errors:
        errors["name"] = "a display needs a name"

    floor_id = _text(
        pick("floor_id", current.floor_id if current else None), "floor_id", errors, 64
    )
    if "floor_id" not in errors:
        if not floor_id:
            errors["floor_id"] = "choose a floor"
        elif floor_ids is None:
            if current is None or floor_id != current.floor_id:
                errors["floor_id"] = "Density cannot be reached to check this floor; try later"
        elif floor_id not in floor_ids and not (current and floor_id == current.floor_id):
            errors["floor_id"] = "not a floor Density knows"

    ddid = _text(
        pick("density_display_id", current.density_display_id if current else None),
        "density_display_id",
        errors,
        64,
    )
    if ddid and "density_display_id" not in errors and not _DENSITY_DISPLAY_ID.match(ddid):
        errors["density_display_id"] = "letters, digits, _ . : - only"

    base = {**DEFAULT_SETTINGS, **(current.settings if current else {})}
    settings = dict(base)
    orientation = _text(pick("orientation", base["orientation"]), "orientation", errors, 16)
    if orientation not in ORIENTATIONS and "orientation" not in errors:
        errors["orientation"] = "landscape, portrait or empty (follow the screen)"
    settings["orientation"] = orientation

    rotation = _int(pick("rotation", base["rotation"]), "rotation", errors, 0, 270)
    if rotation not in ROTATIONS and "rotation" not in errors:
        errors["rotation"] = "0, 90, 180 or 270"
    settings["rotation"] = rotation

    theme = _text(pick("theme", base["theme"]), "theme", errors, 16)
    if theme not in THEMES and "theme" not in errors:
        errors["theme"] = "light, dark or contrast"
    settings["theme"] = theme

    brand = _text(pick("brand_color", base["brand_color"]), "brand_color", errors, 16)
    if brand and not _COLOR.match(brand) and "brand_color" not in errors:
        errors["brand_color"] = "a colour as #rrggbb"
    settings["brand_color"] = brand.lower()
    # The accent must read on the theme (core/branding.py): checked when either is given, so a
    # change elsewhere never trips over a colour saved before this check existed.
    accent_keys = {"brand_color", "theme"}
    if brand and not accent_keys & set(errors) and accent_keys & set(data):
        if problem := accent_problem(brand.lower(), theme):
            errors["brand_color"] = problem

    logo = _text(pick("logo_url", base["logo_url"]), "logo_url", errors, MAX_URL)
    settings["logo_url"] = _logo_url(logo, errors) if "logo_url" not in errors else ""

    language = _text(pick("language", base["language"]), "language", errors, 8)
    if language not in i18n.LANGUAGES and "language" not in errors:
        errors["language"] = "one of " + ", ".join(i18n.LANGUAGES)
    settings["language"] = language

    settings["functions"] = _id_list(
        pick("functions", base["functions"]), "functions", errors, FUNCTION_ID
    )
    settings["min_capacity"] = _int(
        pick("min_capacity", base["min_capacity"]), "min_capacity", errors, 0, 10000
    )
    settings["hidden_rooms"] = _id_list(
        pick("hidden_rooms", base["hidden_rooms"]), "hidden_rooms", errors, SPACE_ID
    )
    if "hidden_rooms" not in errors and "floor_id" not in errors and room_ids is not None:
        _hidden_rooms_known(settings, current, floor_id, room_ids(floor_id), errors)
    settings["night"] = _night(pick("night", base["night"]), errors)
    qr = pick("qr", base["qr"])
    if not isinstance(qr, bool):
        errors["qr"] = "true or false"
    settings["qr"] = qr is True
    _booking_settings(settings, pick, base, errors)
    if errors:
        raise Invalid(errors)
    return {
        "name": name,
        "floor_id": floor_id,
        "density_display_id": ddid or None,
        "settings": settings,
    }


def _hidden_rooms_known(
    settings: dict[str, Any],
    current: Display | None,
    floor_id: str,
    known: set[str] | None,
    errors: dict[str, str],
) -> None:
    """Hidden rooms must be rooms of the floor (a room Density has since dropped may stay hidden
    on the floor it was hidden on); unchecked while the directory knows no rooms there."""
    if not known:
        return
    kept = set(current.settings.get("hidden_rooms") or []) if current else set()
    if current is None or current.floor_id != floor_id:
        kept = set()
    strange = [r for r in settings["hidden_rooms"] if r not in known and r not in kept]
    if strange:
        listed = ", ".join(strange[:3]) + (" …" if len(strange) > 3 else "")
        errors["hidden_rooms"] = f"not a room of this floor: {listed}"


def _booking_settings(
    settings: dict[str, Any],
    pick: Callable[[str, Any], Any],
    base: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """The booking settings (minutes up to a working day; a yes/no), each error naming its field."""
    limits = (("booking_margin_min", 240), ("booking_grace_min", 240), ("free_for_min", 480))
    for key, high in limits:
        settings[key] = _int(pick(key, base[key]), key, errors, 0, high)
    offer = pick("offer_booked_empty", base["offer_booked_empty"])
    if not isinstance(offer, bool):
        errors["offer_booked_empty"] = "true or false"
    settings["offer_booked_empty"] = offer is True


# -- the audit trail: a display's fields and settings as recorded (no credential is among them)
AUDITED_FIELDS = ("name", "floor_id", "density_display_id")


def audited_state(display: Display) -> dict[str, Any]:
    """A display's fields and settings as the audit trail records them before a change."""
    return {
        "name": display.name,
        "floor_id": display.floor_id,
        "density_display_id": display.density_display_id,
        **{**DEFAULT_SETTINGS, **display.settings},
    }


# -- what a change does to the display's screens -----------------------------------------------
def _close_screens(hub: Hub, display: Display, code: int, reason: str, state: str) -> int:
    """Close every socket of a display with `code` (the kiosk reloads or returns to pairing) and
    log the change, one line for every kind; how many sockets were closed."""
    closed = hub.close_display(display.id, code, reason)
    logger.info(
        "display %s: %s, %d kiosk socket(s) closed (%d)",
        display.id,
        reason,
        closed,
        code,
        extra={"event": "display", "display_id": display.id, "state": state},
    )
    return closed


def apply_display_change(
    store: Store,
    hub: Hub,
    display: Display | None,
    cleaned: dict[str, Any],
    *,
    noted: tuple[dict[str, Any], dict[str, Any]] | None = None,
) -> Display:
    """Create or update a display, then tell its open kiosks to reconnect for the new state.
    `noted`: more before/after for the audit entry of an update (a logo's digest and size)."""
    after = {**{k: cleaned[k] for k in AUDITED_FIELDS}, **cleaned["settings"]}
    if display is None:
        with audit.change(
            store, "display.create", "display", None, cleaned["name"], after=after, created=True
        ):
            return store.add_display(
                cleaned["name"],
                cleaned["floor_id"],
                cleaned["density_display_id"],
                cleaned["settings"],
            )
    with audit.change(
        store,
        "display.update",
        "display",
        display.id,
        cleaned["name"],
        before={**audited_state(display), **(noted[0] if noted else {})},
        after={**after, **(noted[1] if noted else {})},
    ) as entry:
        # Saved without a change: the row is written all the same, but there is nothing to record.
        entry.unchanged = not entry.before and not entry.after
        updated = store.update_display(
            display.id,
            cleaned["name"],
            cleaned["floor_id"],
            cleaned["density_display_id"],
            cleaned["settings"],
        )
    if display.settings.get("qr") is False and cleaned["settings"].get("qr") is not False:
        # The QR code back on shows a new link: one handed out before it went off stays dead.
        with audit.change(store, "display.revoke_phone", "display", display.id, display.name):
            updated = store.revoke_phone_link(display.id)
    _close_screens(hub, display, CLOSE_RELOAD, "display reconfigured", "reconfigured")
    return updated


def remove_display(store: Store, hub: Hub, display: Display) -> None:
    """Delete a display and close its sockets (its credential no longer opens anything)."""
    with audit.change(
        store,
        "display.remove",
        "display",
        display.id,
        display.name,
        before=audited_state(display),
        only_changes=False,
    ):
        store.remove_display(display.id)
    _close_screens(hub, display, CLOSE_UNAUTHORIZED, "display removed", "removed")


def revoke_display(store: Store, hub: Hub, display: Display) -> Display:
    """Issue a new credential: screens holding the old one are closed and return to pairing."""
    with audit.change(store, "display.revoke", "display", display.id, display.name):
        revoked = store.revoke_display(display.id)
    _close_screens(hub, display, CLOSE_UNAUTHORIZED, "credential revoked", "revoked")
    return revoked


def revoke_phone_link(store: Store, hub: Hub, display: Display) -> Display:
    """Issue a new phone link: the old one opens nothing, and the display's screens reload to
    show the new QR code (the screens themselves keep their credential)."""
    with audit.change(store, "display.revoke_phone", "display", display.id, display.name):
        revoked = store.revoke_phone_link(display.id)
    _close_screens(hub, display, CLOSE_RELOAD, "phone link revoked", "phone_revoked")
    return revoked


def send_command(hub: Hub, display: Display, action: str) -> int:
    """Queue `reload` or `identify` for every connected screen of a display; how many."""
    if action not in COMMANDS:
        raise ValueError(f"unknown display command {action!r}")
    return hub.command(display.id, dumps({"type": action}))


def send_commands(store: Store, hub: Hub, displays: list[Display], action: str) -> int:
    """Queue `reload` or `identify` for the displays' connected screens; how many it reached.
    The audit trail records one entry for the action, naming the displays and their count (a
    selection of 100 is one thing someone did, not 100), with the screens reached."""
    if not displays:
        return 0
    one = displays[0] if len(displays) == 1 else None
    listed = ", ".join(d.name for d in displays)
    with audit.change(
        store,
        f"display.{action}",
        "display",
        one.id if one else None,
        one.name if one else f"{len(displays)} displays: {listed}",
        after={"displays": [f"{d.name} (#{d.id})" for d in displays], "count": len(displays)},
        only_changes=False,
    ) as entry:
        sent = sum(send_command(hub, d, action) for d in displays)
        entry.after = {**(entry.after or {}), "screens": sent}  # written when the block ends
        # No screen reached: nothing happened (the page says none has a screen), so the trail
        # records nothing rather than "Reloaded its screens, screens: 0".
        entry.unchanged = sent == 0
    return sent


def phone_url(svc: Services, display: Display) -> str:
    """The display's phone link (its QR code's address), as phones on the guest Wi-Fi reach it."""
    base = (svc.config.get("SIGNAGE_PHONE_URL") or svc.public_url()).rstrip("/")
    return f"{base}/phone/{svc.store.phone_credential(display)}"
