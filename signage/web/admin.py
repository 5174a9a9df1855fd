"""The admin console: sign-in, displays, pairing, fleet health and floor plans.

Every route of this blueprint needs a signed-in admin except the sign-in form itself, and every
unsafe request needs the session's CSRF token (checked in `_guard`, before any view runs, so a
new route cannot forget it). Templates are autoescaped: admin-entered text is never marked safe.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from signage import i18n
from signage.core.protocol import CLOSE_RELOAD, CLOSE_UNAUTHORIZED
from signage.services import Services
from signage.store import Display, StoreError, plans
from signage.web import auth
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Endpoints an anonymous caller may reach (everything else redirects to the sign-in form).
PUBLIC_ENDPOINTS = frozenset({"admin.login"})

ORIENTATIONS = ("", "landscape", "portrait")
ROTATIONS = (0, 90, 180, 270)
THEMES = ("light", "dark", "contrast")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_SPACE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_FUNCTION = re.compile(r"^[a-z0-9_]{1,48}$")
_DENSITY_DISPLAY_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_NAME = 80
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français"}
MAX_URL = 500
MAX_LIST = 500

# Settings this console owns; other keys in display.settings are kept as they are.
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
}


# -- guard ---------------------------------------------------------------------------------------
@bp.before_request
def _guard() -> Response | None:
    """Sign-in first, then the CSRF token on every unsafe request."""
    # Bodies beyond a plan's size are refused before anything reads them (the CSRF check does).
    request.max_content_length = int(services().config["SIGNAGE_PLAN_MAX_BYTES"]) + 65536
    if request.endpoint not in PUBLIC_ENDPOINTS:
        if auth.load_principal(allow_token=False) is None:
            if request.method == "GET":
                return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
            abort(401)
    auth.require_csrf()
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    # Console pages show kiosk credentials: no cache may keep them.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    return {"principal": auth.current_principal()}


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect; a 400 for control characters
    (a header cannot carry them: they would have been a 500)."""
    if target and any(ord(c) < 32 or ord(c) == 127 for c in target):
        abort(400, "the next parameter may not contain control characters")
    if target and target.startswith("/admin") and not target.startswith("//"):
        if "\\" not in target and not urlsplit(target).netloc:
            return target
    return url_for("admin.displays")


# -- sign-in -------------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in form; failed attempts are limited per address and per address and username
    (see auth.LOGIN_FAILURES_PER_USER for how an attack on one account from many is slowed)."""
    if request.method == "GET":
        if auth.load_principal(allow_token=False) is not None:
            return redirect(_safe_next(request.args.get("next")))
        _safe_next(request.args.get("next"))  # refused now, not after signing in
        return render_template("admin/login.html", next=request.args.get("next", ""))
    _safe_next(request.form.get("next"))
    username = request.form.get("username", "").strip()[:128]
    password = request.form.get("password", "")
    window = auth.LOGIN_WINDOW_S
    by_ip = auth.limiter("login-ip", auth.LOGIN_FAILURES_PER_IP, window)
    by_pair = auth.limiter("login-ip-user", auth.LOGIN_FAILURES_PER_IP_USER, window)
    by_user = auth.limiter("login-user", auth.LOGIN_CEILING_PER_USER, window)
    ip = auth.client_ip()
    ip_key, user_key = auth.address_key(ip), username.lower()
    pair_key = f"{ip_key} {user_key}"
    # Counted before the password is checked: parallel guesses each take a place first.
    failed_here = by_pair.count(pair_key)
    against_user = by_user.count(user_key)
    # An account under attack refuses the addresses that have guessed at it a few times; past
    # its ceiling, any address that has guessed wrong at it once.
    allowed_here = auth.LOGIN_FAILURES_PER_IP_USER
    if against_user >= auth.LOGIN_CEILING_PER_USER:
        allowed_here = 1
    elif against_user >= auth.LOGIN_FAILURES_PER_USER:
        allowed_here = auth.LOGIN_FAILURES_UNDER_ATTACK
    counted: list[tuple[Any, str]] = []
    refused = failed_here >= allowed_here
    for limit, key in ((by_ip, ip_key), (by_pair, pair_key)):
        if refused or not limit.hit(key):
            refused = True
            break
        counted.append((limit, key))
    if not refused and by_pair.count(pair_key) > allowed_here:  # a parallel one came first
        refused = True
    if refused:
        for limit, key in counted:
            limit.undo(key)
        waits = [by_ip.retry_after(ip_key), by_pair.retry_after(pair_key)]
        if allowed_here < auth.LOGIN_FAILURES_PER_IP_USER:
            waits.append(by_user.retry_after(user_key))
        wait = max(1, *waits)
        logger.warning("sign-in refused: too many failed attempts (from %s)", ip)
        body = render_template(
            "admin/login.html",
            next=request.form.get("next", ""),
            username=username,
            error=f"Too many failed attempts. Try again in {max(1, wait // 60)} minute(s).",
        )
        return Response(body, status=429, headers={"Retry-After": str(wait)})
    # The account's count only sets how many guesses each address gets (a fresh address may
    # always try once, so its real admin is never locked out); it stops at the ceiling.
    user_counted = by_user.hit(user_key)
    admin = auth.authenticate(username, password)
    if admin is None:
        logger.info("failed sign-in for a username from %s", ip)
        body = render_template(
            "admin/login.html",
            next=request.form.get("next", ""),
            username=username,
            error="Wrong username or password.",
        )
        return Response(body, status=401)
    by_ip.undo(ip_key)
    if user_counted:
        by_user.undo(user_key)
    by_pair.reset(pair_key)
    auth.start_session(admin)
    logger.info("admin %s signed in", admin.username)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Response:
    """Sign out, on the server too: a copy of the cookie opens nothing after (a POST with the
    form token, so no other site can sign anyone out)."""
    auth.end_session()
    return redirect(url_for("admin.login"))


@bp.get("/")
def home() -> Response:
    """The console opens on the displays."""
    return redirect(url_for("admin.displays"))


# -- floors from Density ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FloorChoice:
    """A floor as the console offers it: building, then floor."""

    id: str
    name: str
    building: str


def floor_choices(svc: Services) -> tuple[list[FloorChoice], str | None]:
    """Density's floors from the directory's cached tree, and a note when it is not current.

    Never waits on Density: with no tree yet the list is empty and the note says so; during an
    outage the last tree is offered with the time it was fetched (server local time).
    """
    tree = svc.directory.tree()
    choices = []
    for floor in tree.floors(building_order=True):  # as people read a building
        building = tree.building_of(floor.id)
        choices.append(FloorChoice(floor.id, floor.name, building.name if building else ""))
    return choices, directory_note(svc.directory.status())


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


def floor_label(svc: Services, floor_id: str) -> str:
    """ "Building / Floor" for a floor id, or the id when Density does not know it (now)."""
    tree = svc.directory.tree()
    floor = tree.get(floor_id)
    if floor is None:
        return floor_id
    building = tree.building_of(floor_id)
    return f"{building.name} / {floor.name}" if building else floor.name


# -- display validation (console forms and the JSON API) -------------------------------------------
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
    if isinstance(value, bool):
        errors[field] = "must be a whole number"
        return low
    if isinstance(value, str):
        value = value.strip() or "0"
        if not re.fullmatch(r"-?\d{1,6}", value):
            errors[field] = "must be a whole number"
            return low
        value = int(value)
    if not isinstance(value, int):
        errors[field] = "must be a whole number"
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
) -> dict[str, Any]:
    """Validated fields of a display: name, floor_id, density_display_id and settings.

    Fields missing from `data` keep their current value (or the default for a new display).
    `floor_ids` is the set Density offers; None when Density cannot be reached, in which case
    only the current floor is accepted. Raises Invalid with a message per bad field.
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

    logo = _text(pick("logo_url", base["logo_url"]), "logo_url", errors, MAX_URL)
    settings["logo_url"] = _logo_url(logo, errors) if "logo_url" not in errors else ""

    language = _text(pick("language", base["language"]), "language", errors, 8)
    if language not in i18n.LANGUAGES and "language" not in errors:
        errors["language"] = "one of " + ", ".join(i18n.LANGUAGES)
    settings["language"] = language

    settings["functions"] = _id_list(
        pick("functions", base["functions"]), "functions", errors, _FUNCTION
    )
    settings["min_capacity"] = _int(
        pick("min_capacity", base["min_capacity"]), "min_capacity", errors, 0, 10000
    )
    settings["hidden_rooms"] = _id_list(
        pick("hidden_rooms", base["hidden_rooms"]), "hidden_rooms", errors, _SPACE_ID
    )
    settings["night"] = _night(pick("night", base["night"]), errors)
    qr = pick("qr", base["qr"])
    if not isinstance(qr, bool):
        errors["qr"] = "true or false"
    settings["qr"] = qr is True
    if errors:
        raise Invalid(errors)
    return {
        "name": name,
        "floor_id": floor_id,
        "density_display_id": ddid or None,
        "settings": settings,
    }


def _form_data() -> dict[str, Any]:
    """The display form as the same shape the JSON API takes."""
    form = request.form
    data: dict[str, Any] = {
        key: form.get(key, "")
        for key in (
            "name",
            "floor_id",
            "density_display_id",
            "orientation",
            "rotation",
            "theme",
            "brand_color",
            "logo_url",
            "language",
            "min_capacity",
        )
        if key in form
    }
    if form.get("settings_form"):  # the full edit form: absent checkboxes mean "off"/"none"
        data["functions"] = form.getlist("functions")
        data["hidden_rooms"] = form.getlist("hidden_rooms")
        data["qr"] = form.get("qr") == "on"
        start, end = form.get("night_start", ""), form.get("night_end", "")
        data["night"] = {"start": start, "end": end} if (start or end) else None
    return data


def apply_display_change(
    svc: Services, display: Display | None, cleaned: dict[str, Any]
) -> Display:
    """Create or update a display, then tell its open kiosks to reconnect for the new state."""
    if display is None:
        return svc.store.add_display(
            cleaned["name"], cleaned["floor_id"], cleaned["density_display_id"], cleaned["settings"]
        )
    updated = svc.store.update_display(
        display.id,
        cleaned["name"],
        cleaned["floor_id"],
        cleaned["density_display_id"],
        cleaned["settings"],
    )
    if display.settings.get("qr") is False and cleaned["settings"].get("qr") is not False:
        # The QR code back on shows a new link: one handed out before it went off stays dead.
        updated = svc.store.revoke_phone_link(display.id)
    closed = svc.hub.close_display(display.id, CLOSE_RELOAD, "display reconfigured")
    logger.info(
        "display %s reconfigured; %d kiosk socket(s) asked to reconnect",
        display.id,
        closed,
        extra={"event": "display", "display_id": display.id, "state": "reconfigured"},
    )
    return updated


def remove_display(svc: Services, display: Display) -> None:
    """Delete a display and close its sockets (its credential no longer opens anything)."""
    svc.store.remove_display(display.id)
    svc.hub.close_display(display.id, CLOSE_UNAUTHORIZED, "display removed")
    logger.info(
        "display %s removed",
        display.id,
        extra={"event": "display", "display_id": display.id, "state": "removed"},
    )


def revoke_display(svc: Services, display: Display) -> Display:
    """Issue a new credential: screens holding the old one are closed and return to pairing."""
    revoked = svc.store.revoke_display(display.id)
    closed = svc.hub.close_display(display.id, CLOSE_UNAUTHORIZED, "credential revoked")
    logger.info(
        "display %s credential revoked; %d socket(s) closed",
        display.id,
        closed,
        extra={"event": "display", "display_id": display.id, "state": "revoked"},
    )
    return revoked


def phone_url(svc: Services, display: Display) -> str:
    """The display's phone link (its QR code's address), as phones on the guest Wi-Fi reach it."""
    base = (svc.config.get("SIGNAGE_PHONE_URL") or svc.public_url()).rstrip("/")
    return f"{base}/phone/{svc.store.phone_credential(display)}"


def revoke_phone_link(svc: Services, display: Display) -> Display:
    """Issue a new phone link: the old one opens nothing, and the display's screens reload to
    show the new QR code (the screens themselves keep their credential)."""
    revoked = svc.store.revoke_phone_link(display.id)
    closed = svc.hub.close_display(display.id, CLOSE_RELOAD, "phone link revoked")
    logger.info(
        "display %s phone link revoked; %d kiosk socket(s) asked to reload",
        display.id,
        closed,
        extra={"event": "display", "display_id": display.id, "state": "phone_revoked"},
    )
    return revoked


def _floor_ids(choices: list[FloorChoice], error: str | None) -> set[str] | None:
    return None if error else {c.id for c in choices}


def _display_or_404(display_id: int) -> Display:
    display = services().store.get_display(display_id)
    if display is None:
        abort(404)
    return display


# -- displays ------------------------------------------------------------------------------------
@bp.get("/displays")
def displays() -> str:
    """Every display: floor, connection, links to edit."""
    svc = services()
    connected: dict[int, int] = {}
    for sub in svc.hub.subscribers():
        connected[sub.display_id] = connected.get(sub.display_id, 0) + 1
    rows = [
        {
            "display": d,
            "floor": floor_label(svc, d.floor_id),
            "connected": connected.get(d.id, 0),
        }
        for d in svc.store.list_displays()
    ]
    return render_template("admin/displays.html", rows=rows)


@bp.route("/displays/new", methods=["GET", "POST"])
def display_new() -> Any:
    """Create a display: name, floor, Density display id; the rest on its edit page."""
    svc = services()
    choices, floor_error = floor_choices(svc)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = _form_data()
        try:
            cleaned = clean_display(values, None, _floor_ids(choices, floor_error))
        except Invalid as exc:
            errors = exc.errors
        else:
            display = apply_display_change(svc, None, cleaned)
            flash(f"Display “{display.name}” created.", "ok")
            return redirect(url_for("admin.display_edit", display_id=display.id))
    status = 400 if errors else 200
    body = render_template(
        "admin/display_new.html",
        choices=choices,
        floor_error=floor_error,
        errors=errors,
        values=values,
    )
    return Response(body, status=status)


def _rooms_for(svc: Services, floor_id: str) -> tuple[list[Any], str | None]:
    rooms = svc.directory.rooms_of(floor_id)  # the cached tree: never waits on Density
    note = directory_note(svc.directory.status())
    return rooms, (note.replace("floors", "rooms") if note and not rooms else note)


@bp.route("/displays/<int:display_id>", methods=["GET", "POST"])
def display_edit(display_id: int) -> Any:
    """A display's settings; saving reaches its kiosks within seconds."""
    svc = services()
    display = _display_or_404(display_id)
    choices, floor_error = floor_choices(svc)
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = _form_data()
        try:
            cleaned = clean_display(values, display, _floor_ids(choices, floor_error))
        except Invalid as exc:
            errors = exc.errors
        else:
            apply_display_change(svc, display, cleaned)
            flash("Saved. Its screens update within seconds.", "ok")
            return redirect(url_for("admin.display_edit", display_id=display.id))
    rooms, rooms_error = _rooms_for(svc, display.floor_id)
    # What the form shows: the stored values, overlaid with what was just typed (on an error).
    form: dict[str, Any] = {
        "name": display.name,
        "floor_id": display.floor_id,
        "density_display_id": display.density_display_id or "",
        **DEFAULT_SETTINGS,
        **display.settings,
        **values,
    }
    night = form.get("night") if isinstance(form.get("night"), dict) else {}
    form["night_start"], form["night_end"] = night.get("start", ""), night.get("end", "")
    body = render_template(
        "admin/display_edit.html",
        display=display,
        form=form,
        choices=choices,
        floor_error=floor_error,
        rooms=rooms,
        rooms_error=rooms_error,
        functions=sorted({r.function for r in rooms if r.function}),
        errors=errors,
        values=values,
        languages=i18n.LANGUAGES,
        language_names=LANGUAGE_NAMES,
        themes=THEMES,
        kiosk_url=svc.kiosk_url(display),
        socket_url=svc.socket_url(display),
        state_url=svc.state_url(display),
        phone_url=phone_url(svc, display),
        connected=len([s for s in svc.hub.subscribers() if s.display_id == display.id]),
    )
    return Response(body, status=400 if errors else 200)


@bp.post("/displays/<int:display_id>/delete")
def display_delete(display_id: int) -> Response:
    """Delete a display; its screens lose their credential."""
    svc = services()
    display = _display_or_404(display_id)
    remove_display(svc, display)
    flash(f"Display “{display.name}” deleted.", "ok")
    return redirect(url_for("admin.displays"))


@bp.post("/displays/<int:display_id>/revoke")
def display_revoke(display_id: int) -> Response:
    """A new credential for a display: its screens return to pairing."""
    svc = services()
    display = _display_or_404(display_id)
    revoke_display(svc, display)
    flash("Credential revoked: its screens show a pairing code again.", "ok")
    return redirect(url_for("admin.display_edit", display_id=display.id))


@bp.post("/displays/<int:display_id>/revoke-phone")
def display_revoke_phone(display_id: int) -> Response:
    """A new phone link (QR code) for a display: phones holding the old one lose the view."""
    svc = services()
    display = _display_or_404(display_id)
    revoke_phone_link(svc, display)
    flash("Phone link revoked: its screens show a new QR code within seconds.", "ok")
    return redirect(url_for("admin.display_edit", display_id=display.id))


@bp.post("/displays/<int:display_id>/<any(reload, identify):action>")
def display_command(display_id: int, action: str) -> Response:
    """Reload a display's page, or flash its name on its screen."""
    svc = services()
    display = _display_or_404(display_id)
    sent = send_command(svc, display, action)
    if sent:
        flash(f"Sent “{action}” to {sent} screen(s).", "ok")
    else:
        flash("No screen of this display is connected.", "warn")
    if request.form.get("back") == "fleet":
        return redirect(url_for("admin.fleet"))
    return redirect(url_for("admin.display_edit", display_id=display.id))


def send_command(svc: Services, display: Display, action: str) -> int:
    """Queue `reload` or `identify` for every connected screen of a display."""
    import json

    return svc.hub.command(display.id, json.dumps({"type": action}))


# -- pairing ---------------------------------------------------------------------------------------
@bp.route("/pair", methods=["GET", "POST"])
def pair() -> Any:
    """Type the code a screen shows and pick its display."""
    from signage.web import pairing

    svc = services()
    errors: dict[str, str] = {}
    code = ""
    status = 200
    if request.method == "POST":
        code = request.form.get("code", "")[:32]
        raw_id = request.form.get("display_id", "")
        display_id = int(raw_id) if raw_id.isdigit() and len(raw_id) < 10 else None
        principal = auth.current_principal()
        assert principal is not None
        try:
            display = pairing.claim(svc, code, display_id, principal.label)
        except pairing.PairingRefused as exc:
            errors["code"] = str(exc)
            status = exc.status
        else:
            flash(f"Paired: the screen now shows “{display.name}”.", "ok")
            return redirect(url_for("admin.display_edit", display_id=display.id))
    body = render_template(
        "admin/pair.html",
        displays=svc.store.list_displays(),
        errors=errors,
        code=code,
        selected=request.form.get("display_id") or request.args.get("display", ""),
    )
    return Response(body, status=status)


# -- fleet health ----------------------------------------------------------------------------------
def fleet_status(svc: Services) -> dict[str, Any]:
    """Displays, floor feeds and sensors, problems first (the fleet page and the API)."""
    now = time.monotonic()
    stale_after = 3 * float(svc.config["SIGNAGE_HEARTBEAT_INTERVAL"]) + 5
    # In a fleet (Redis), what every live process reported; this process's own from memory.
    view = svc.cluster.fleet_view() if svc.cluster is not None else None
    subs_by_display: dict[int, list[Any]] = {}
    for sub in svc.hub.subscribers():
        subs_by_display.setdefault(sub.display_id, []).append(sub)

    displays_out = []
    for display in svc.store.list_displays():
        screens = []
        for sub in subs_by_display.get(display.id, []):
            info = dict(sub.info)
            received = info.pop("received_at", None)
            screens.append(
                {
                    "connected_s": round(now - sub.connected_at, 1),
                    "heartbeat_age_s": round(now - received, 1) if received else None,
                    "screen": str(info.get("screen", "")) or None,
                    "version": str(info.get("version", "")) or None,
                    "uptime_s": info.get("uptime_s"),
                    "heap": info.get("heap"),
                    **({"process": view.process} if view is not None else {}),
                }
            )
        if view is not None:
            screens.extend(view.screens_of(display.id))
        problems = []
        # How long no screen has been connected, as the alert watcher saw it (None: up).
        down_s = svc.alerts.down_for("display", display.id) if svc.alerts else None
        if not screens:
            problems.append("not connected")
        elif all(
            s["heartbeat_age_s"] is None or s["heartbeat_age_s"] > stale_after for s in screens
        ):
            problems.append("no heartbeat from the page")
        displays_out.append(
            {
                "id": display.id,
                "name": display.name,
                "floor_id": display.floor_id,
                "floor": floor_label(svc, display.floor_id),
                "connected": len(screens),
                "screens": screens,
                "problems": problems,
                "down_s": None if down_s is None else round(down_s),
                "alerted": bool(svc.alerts and svc.alerts.reported("display", display.id)),
            }
        )

    feeds_out = []
    sensors_out = []
    mirrored = [(feed.floor_id, feed) for feed in svc.feeds.feeds()]
    if view is not None:  # floors only other processes mirror: a row each, their sensors unseen
        mirrored += [(f, None) for f in view.other_floors(f for f, _ in mirrored)]
    for floor_id, feed in mirrored:
        status = feed.status() if feed is not None else None
        kiosks, holder = svc.hub.count(floor_id), None
        if view is not None:  # the holder's view of the floor, kiosks of every process
            status, kiosks, holder = view.floor(floor_id, status)
        assert status is not None
        token_key = svc.token_display_for_floor(floor_id) or "org"
        expiry = svc.client.token_expiry(token_key)
        problems = []
        feed_down_s = svc.alerts.down_for("feed", floor_id) if svc.alerts else None
        if status["mode"] != "live":
            problems.append(
                f"feed {status['mode']}" + (f": {status['reason']}" if status["reason"] else "")
            )
        feeds_out.append(
            {
                "floor_id": floor_id,
                "floor": floor_label(svc, floor_id),
                "mode": status["mode"],
                "reason": status["reason"],
                "heard_age_s": None
                if status["heard_age_s"] is None
                else round(status["heard_age_s"], 1),
                "token": token_key if token_key == "org" else "display",
                "token_expires_in_s": None if expiry is None else round(expiry),
                "kiosks": kiosks,
                "channels": status["channels"],
                "problems": problems,
                "down_s": None if feed_down_s is None else round(feed_down_s),
                "alerted": bool(svc.alerts and svc.alerts.reported("feed", floor_id)),
                **({"holder": holder} if view is not None else {}),
            }
        )
        if feed is None:
            continue
        for room in list(feed.rooms.values()):
            sensors = [{"serial": s, "health": h} for s, h in room.sensors]
            bad = [s for s in sensors if s["health"] != "healthy"]
            problems = []
            if room.health not in ("healthy",):
                problems.append(f"space {room.health}")
            if bad:
                problems.append(f"{len(bad)} sensor(s) not healthy")
            sensors_out.append(
                {
                    "space_id": room.space.id,
                    "name": room.space.name,
                    "floor_id": floor_id,
                    "health": room.health,
                    "sensors": sensors,
                    "problems": problems,
                }
            )

    def order(item: dict[str, Any]) -> tuple:
        # Problems first, the longest down among them first.
        down = -(item.get("down_s") or 0)
        return (not item["problems"], down, str(item.get("name") or item.get("floor") or ""))

    return {
        "displays": sorted(displays_out, key=order),
        "feeds": sorted(feeds_out, key=order),
        "spaces": sorted(sensors_out, key=order),
        "problems": sum(
            1 for group in (displays_out, feeds_out, sensors_out) for i in group if i["problems"]
        ),
        # The fleet's processes, and whether this is all of it (Redis answered).
        **({"cluster": view.summary()} if view is not None else {}),
    }


@bp.get("/fleet")
def fleet() -> str:
    """One page: every display, floor feed and sensor, problems first."""
    return render_template("admin/fleet.html", fleet=fleet_status(services()))


# -- account and admins ----------------------------------------------------------------------------
@bp.route("/account", methods=["GET", "POST"])
def account() -> Any:
    """Change one's own password (signs out every other session)."""
    svc = services()
    principal = auth.current_principal()
    assert principal is not None
    errors: dict[str, str] = {}
    if request.method == "POST":
        admin = svc.store.get_admin(principal.id)
        current = request.form.get("current_password", "")
        new = request.form.get("new_password", "")
        if admin is None or not auth.verify_password(admin.password_hash, current):
            errors["current_password"] = "wrong password"
        elif new != request.form.get("confirm_password", ""):
            errors["confirm_password"] = "the two new passwords differ"
        else:
            try:
                updated = svc.store.set_admin_password(
                    admin.id, auth.hash_password(new), sign_out=True
                )
            except auth.PasswordError as exc:
                errors["new_password"] = str(exc)
            else:
                auth.start_session(updated)  # this browser stays signed in
                flash("Password changed; other sessions are signed out.", "ok")
                return redirect(url_for("admin.account"))
    body = render_template("admin/account.html", errors=errors)
    return Response(body, status=400 if errors else 200)


@bp.route("/admins", methods=["GET", "POST"])
def admins() -> Any:
    """Owners add and remove admins."""
    svc = services()
    principal = auth.current_principal()
    assert principal is not None
    if not principal.is_owner:
        abort(403)
    errors: dict[str, str] = {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        role = request.form.get("role", "admin")
        password = request.form.get("password", "")
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", username):
            errors["username"] = "1-64 letters, digits, _ . @ -"
        if role not in ("owner", "admin"):
            errors["role"] = "owner or admin"
        if not errors:
            try:
                svc.store.add_admin(username, auth.hash_password(password), role)
            except auth.PasswordError as exc:
                errors["password"] = str(exc)
            except StoreError as exc:
                errors["username"] = str(exc)
            else:
                flash(f"Admin {username} added.", "ok")
                return redirect(url_for("admin.admins"))
    body = render_template("admin/admins.html", admins=svc.store.list_admins(), errors=errors)
    return Response(body, status=400 if errors else 200)


@bp.post("/admins/<int:admin_id>/delete")
def admin_delete(admin_id: int) -> Response:
    """Remove an admin (never the last owner); their sessions end at once."""
    svc = services()
    principal = auth.current_principal()
    assert principal is not None
    if not principal.is_owner:
        abort(403)
    try:
        removed = svc.store.remove_admin(admin_id)
    except StoreError as exc:
        flash(str(exc), "warn")
        return redirect(url_for("admin.admins"))
    if not removed:
        abort(404)
    flash("Admin removed.", "ok")
    return redirect(url_for("admin.admins"))


# -- floor plans -----------------------------------------------------------------------------------
def plan_response(plan_record: Any) -> Response:
    """A plan file with the strictest policy: opened on its own, it runs and fetches nothing."""
    data = plans.read_plan(services().config, plan_record)
    if data is None:
        abort(404)
    response = Response(data, mimetype=plan_record.content_type)
    response.headers["Content-Security-Policy"] = plans.PLAN_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    suffix = Path(plan_record.filename).suffix[1:]
    response.headers["Content-Disposition"] = f'inline; filename="plan.{suffix}"'
    response.set_etag(plan_record.sha256)
    return response.make_conditional(request)


@bp.get("/plans")
def plans_page() -> str:
    """Every floor with its plan, and an upload form for each."""
    svc = services()
    choices, floor_error = floor_choices(svc)
    recorded = {p.floor_id: p for p in svc.store.list_plans()}
    return render_template(
        "admin/plans.html",
        choices=choices,
        floor_error=floor_error,
        plans=recorded,
        max_size=plans.human_size(int(svc.config["SIGNAGE_PLAN_MAX_BYTES"])),
        errors=request.args.get("error", ""),
    )


@bp.post("/plans/<floor_id>")
def plan_upload(floor_id: str) -> Any:
    """Upload a floor's plan (SVG is sanitised before it is stored)."""
    svc = services()
    upload = request.files.get("plan")
    if upload is None or not upload.filename:
        flash("Choose a file to upload.", "warn")
        return redirect(url_for("admin.plans_page"))
    principal = auth.current_principal()
    try:
        plans.store_plan(
            svc.store, svc.config, floor_id, upload.read(), principal.name if principal else None
        )
    except plans.PlanError as exc:
        return Response(render_template("admin/plan_refused.html", message=str(exc)), status=400)
    for display in svc.store.list_displays(floor_id):
        svc.hub.close_display(display.id, CLOSE_RELOAD, "floor plan changed")
    flash("Plan stored.", "ok")
    return redirect(url_for("admin.plans_page"))


@bp.post("/plans/<floor_id>/delete")
def plan_delete(floor_id: str) -> Response:
    """Remove a floor's plan (its screens go back to the automatic schematic)."""
    svc = services()
    if not plans.delete_plan(svc.store, svc.config, floor_id):
        abort(404)
    for display in svc.store.list_displays(floor_id):
        svc.hub.close_display(display.id, CLOSE_RELOAD, "floor plan changed")
    flash("Plan removed.", "ok")
    return redirect(url_for("admin.plans_page"))


@bp.get("/plans/<floor_id>/file")
def plan_file(floor_id: str) -> Response:
    """The stored plan file (signed-in admins only)."""
    plan_record = services().store.get_plan(floor_id)
    if plan_record is None:
        abort(404)
    return plan_response(plan_record)


@bp.errorhandler(413)
def _too_large(_exc: Any) -> Response:
    limit = plans.human_size(int(services().config["SIGNAGE_PLAN_MAX_BYTES"]))
    body = render_template(
        "admin/plan_refused.html", message=f"the file is larger than the {limit} a plan may have"
    )
    return Response(body, status=413)
