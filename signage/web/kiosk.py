"""Kiosk pages and the HTTP fallback: the same state as the socket, as JSON with an ETag.

Also the phone view ("take this map with you", its own revocable read-only link), the QR code
that leads to it, and the kiosk's service worker (network first, the cached shell when the
server is down, so an unattended screen never shows a browser error page).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from signage import i18n
from signage.actions import names as display_names
from signage.actions import preview
from signage.actions.announcements import etag_part as announcement_tag
from signage.config import __version__, knobs_allowed
from signage.core import floormap
from signage.core.building import tag as floors_tag
from signage.core.clock import parse_iso_time
from signage.core.errors import FeedUnavailable
from signage.core.layout import LayoutError, check_point
from signage.core.protocol import FREE, ROOM_STATES, UNKNOWN
from signage.core.rooms import (
    DEFAULT_GRACE_MIN,
    DEFAULT_MARGIN_MIN,
    booking_status,
    snapshot_moment,
)
from signage.core.wayfinding import kiosk_wayfinding
from signage.store import Display, Layout, Plan, plans
from signage.web.admin.plans import plan_response
from signage.web.current import services
from signage.web.security import content_security_policy, image_origin
from signage.web.sockets import display_public, kiosk_snapshot

logger = logging.getLogger(__name__)

bp = Blueprint("kiosk", __name__)

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_SPACE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # as signage/core/layout.py accepts them


def _display_or_404(credential: str) -> Display:
    """The display of a kiosk URL: its pairing credential or a console preview's (410 once
    the preview has run out, so its page stops instead of going back to pairing)."""
    svc = services()
    try:
        display = preview.display_for_kiosk(
            svc.store, svc.config["SIGNAGE_SECRET_KEY"], credential, svc.feeds.clock.time()
        )
    except preview.PreviewExpired:
        abort(410, description="this preview has ended: open it again from the console")
    if display is None:
        abort(404)
    return display


def _phone_display_or_404(credential: str) -> Display:
    # A preview credential opens the phone view too (the console's and the API's "open phone
    # view"): signed, read-only, 410 once it has run out, as on the kiosk page.
    if preview.is_preview(credential):
        display = _display_or_404(credential)
    else:
        display = services().store.display_for_phone_credential(credential)
    if display is None or display.settings.get("qr") is False:
        abort(404)
    return display


# A screen remembers which display it was paired as, so the Pi kit (which reopens the server's
# root after every reboot) lands on its display again, or on pairing once it is revoked.
PAIRED_COOKIE = "signage_display"


@bp.get("/")
def index() -> Response:
    """A screen's way in: its display when it was paired on this browser, else pairing."""
    credential = request.cookies.get(PAIRED_COOKIE, "")
    if credential and services().store.display_for_credential(credential) is not None:
        return redirect(url_for("kiosk.kiosk_page", credential=credential))
    response = redirect(url_for("pairing.pair_page"))
    if credential:
        response.delete_cookie(PAIRED_COOKIE)
    return response


@bp.get("/healthz")
def healthz() -> Response:
    """The process answers (readable cross-origin: the Pi's local waiting page asks)."""
    response = jsonify(status="ok", version=__version__)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-store"
    return response


# -- what the templates need -----------------------------------------------------------------
def page_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A display's settings with defaults filled in and unsafe values dropped."""
    s = dict(settings or {})
    orientation = s.get("orientation")
    rotation = s.get("rotation", 0)
    theme = s.get("theme", "light")
    brand = s.get("brand_color")
    logo = s.get("logo_url")
    return {
        "orientation": orientation if orientation in ("landscape", "portrait") else "",
        "rotation": rotation if rotation in (0, 90, 180, 270) else 0,
        "theme": theme if theme in ("light", "dark", "contrast") else "light",
        "brand_color": brand if isinstance(brand, str) and _COLOR.match(brand) else "",
        "logo_url": logo if isinstance(logo, str) and re.match(r"^(https?://|/)", logo) else "",
        "language": i18n.language(s),
        "qr": s.get("qr", True) is not False,
    }


def _free_list_filter(settings: dict[str, Any]):
    functions = settings.get("functions") or None
    min_capacity = settings.get("min_capacity") or 0
    hidden = set(settings.get("hidden_rooms") or ())

    def keep(room: dict[str, Any]) -> bool:
        if room["id"] in hidden:
            return False
        if functions and room.get("function") not in functions:
            return False
        return (room.get("capacity") or 0) >= min_capacity

    return keep


def _room_views(snapshot: dict[str, Any] | None, settings: dict[str, Any], messages, size):
    """Map tiles and the free list for the first paint (kiosk.js keeps them live)."""
    if not snapshot:
        return None, []
    hidden = set(settings.get("hidden_rooms") or ())
    rooms = [r for r in snapshot["rooms"].values() if r["id"] not in hidden]
    plan = floormap.layout(rooms, *size)
    by_id = {r["id"]: r for r in rooms}
    for zone in plan["zones"]:
        zone["label"] = i18n.translate(messages, f"group_{zone['group']}")
    for tile in plan["tiles"]:
        room = by_id[tile["id"]]
        state = room["state"] if room["state"] in ROOM_STATES else UNKNOWN
        tile.update(
            name=room.get("name") or "",
            state=state,
            capacity=room.get("capacity"),
            label=_state_label(room, state, messages),
            text=floormap.tile_text(tile, room.get("name") or ""),
        )
    keep = _free_list_filter(settings)
    free = sorted(
        (r for r in rooms if r["state"] == FREE and keep(r) and _offered(r, settings, snapshot)),
        key=lambda r: (
            floormap.GROUP_ORDER.index(floormap.group_of(r.get("function"))),
            r.get("name") or "",
            r["id"],
        ),
    )
    return plan, [
        {**r, "kind": messages.get(f"fn_{r.get('function')}", messages["fn_other"])} for r in free
    ]


def _offered(room: dict[str, Any], settings: dict[str, Any], snapshot: dict[str, Any]) -> bool:
    """Whether the first paint lists a free room: not booked within the display's margin, nor
    booked but empty unless it offers those (core/rooms.py; kiosk.js keeps it live)."""
    now = snapshot_moment(snapshot)
    margin, grace = settings.get("booking_margin_min"), settings.get("booking_grace_min")
    return booking_status(
        room,
        now,
        margin_min=margin if isinstance(margin, int) else DEFAULT_MARGIN_MIN,
        grace_min=grace if isinstance(grace, int) else DEFAULT_GRACE_MIN,
        offer_booked_empty=settings.get("offer_booked_empty") is True,
    ).offered


def _state_label(room: dict[str, Any], state: str, messages: dict[str, str]) -> str:
    if state == UNKNOWN and room.get("reason"):
        return i18n.translate(messages, f"reason_{room['reason']}")
    return i18n.translate(messages, f"state_{state}")


def _phone_link(display: Display, room: str | None = None) -> str:
    """The phone view's address as a phone on the guest Wi-Fi reaches it (the QR code's text)."""
    svc = services()
    base = (
        svc.config.get("SIGNAGE_PHONE_URL")
        or svc.config.get("SIGNAGE_PUBLIC_URL")
        or request.host_url
    ).rstrip("/")
    url = f"{base}/phone/{svc.store.phone_credential(display)}"
    return f"{url}?room={room}" if room else url


def _qr_svg(display: Display) -> Markup | None:
    """The phone link as an inline SVG QR code (our own markup: no untrusted text in it)."""
    qr = segno.make(_phone_link(display), error="m")
    svg = qr.svg_inline(scale=1, border=2, dark="#000", light="#fff", omitsize=True)
    svg = svg.replace(
        "<svg ", '<svg role="img" aria-hidden="true" shape-rendering="crispEdges" ', 1
    )
    return Markup(svg)


def _plan_size(record: Plan, fallback: tuple[float, float] | None) -> tuple[float, float] | None:
    """The plan's own size, remembered by its hash: parsing a large SVG on every page is waste."""
    sizes = current_app.extensions.setdefault("signage.plan_sizes", {})
    if record.sha256 not in sizes:
        data = plans.read_plan(services().config, record)
        if data is None:
            return None
        if len(sizes) >= 64:
            sizes.clear()
        sizes[record.sha256] = plans.plan_dimensions(data, record.content_type)
    return sizes[record.sha256] or fallback


def _plan_and_wayfinding(
    display: Display, plan_url: str, draft: tuple[Layout, Any] | None = None
) -> tuple[dict | None, dict | None]:
    """The floor's plan (address and own size) and the routes from the display's "you are here"
    (with `draft`, a layout and a "you are here" not yet published: the console's preview)."""
    svc = services()
    layout = draft[0] if draft else svc.store.get_layout(display.floor_id)
    plan = None
    record = svc.store.get_plan(display.floor_id)
    if record is not None:
        # An SVG that states no size: the editor drew over it in the layout's units.
        drawn = (layout.data["width"], layout.data["height"]) if layout is not None else None
        size = _plan_size(record, drawn)
        if size is not None:
            # Versioned by content: the kiosk's service worker keeps it for offline reloads.
            url = f"{plan_url}?v={record.sha256[:16]}"
            plan = {"url": url, "width": size[0], "height": size[1]}
    if layout is None:
        return plan, None
    here = draft[1] if draft else (display.settings or {}).get("here")
    if here is not None:
        try:
            here = check_point(here, layout.data, "you are here")
        except LayoutError as exc:
            # A point left outside a layout that was redrawn smaller: show no routes rather
            # than routes from somewhere the screen is not.
            logger.warning("display %s: %s", display.id, exc)
            here = None
    try:
        return plan, kiosk_wayfinding(layout.data, here, layout.version)
    except Exception:
        # A screen never goes blank over its map: without routes it shows the schematic.
        logger.exception("wayfinding for display %s failed", display.id)
        return plan, None


def _snapshot_or_none(display: Display) -> dict[str, Any] | None:
    try:
        return kiosk_snapshot(services().feeds.touch(display.floor_id), display)
    except FeedUnavailable:
        logger.warning("page for display %s rendered without data", display.id)
        return None


def _test_knobs() -> dict[str, Any] | None:
    """The test knobs of this page's URL, or None when the server does not honour any.

    Only with SIGNAGE_TEST_MODE on and a loopback Density (config.knobs_allowed): in
    production the page never receives them, so ``?no_contact_s=100000`` on a kiosk or phone
    URL cannot keep rooms "free" after the server is gone. With test mode on, a knob that
    does not parse is a 400 rather than silently ignored.
    """
    if not knobs_allowed(services().config):
        return None
    knobs: dict[str, Any] = {}
    raw = request.args.get("no_contact_s")
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not 0 < value <= 10_000_000:
            abort(400, description="no_contact_s must be a number of seconds above 0")
        knobs["no_contact_s"] = value
    raw = request.args.get("clock")
    if raw is not None:
        if parse_iso_time(raw) is None:
            abort(400, description="clock must be an ISO 8601 time, e.g. 2025-01-15T22:30:00Z")
        knobs["clock"] = raw
    raw = request.args.get("tz")
    if raw is not None:
        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError):
            abort(400, description="tz must be an IANA time zone, e.g. Europe/Berlin")
        knobs["tz"] = raw
    raw = request.args.get("hang")
    if raw is not None:
        # For the kiosk kit's session test: the page then busy-loops, as a hung renderer does,
        # so that the Pi watchdog has a real hang to find through its remote-debugging probe.
        if raw != "1":
            abort(400, description="hang must be 1")
        knobs["hang"] = True
    return knobs


def _render(
    template: str,
    display: Display,
    config: dict[str, Any],
    qr: Markup | None,
    plan_url: str,
    draft: tuple[Layout, Any] | None = None,
) -> str:
    snapshot = _snapshot_or_none(display)
    floor_plan, wayfinding = _plan_and_wayfinding(display, plan_url, draft)
    settings = page_settings(display.settings)
    messages = i18n.catalogue(settings["language"])
    orientation = settings["orientation"] or "landscape"
    size = floormap.DEFAULT_SIZE["phone" if template.endswith("phone.html") else orientation]
    plan, free = _room_views(snapshot, display.settings, messages, size)
    config = {
        **config,
        "version": __version__,
        "lang": settings["language"],
        "settings": display.settings,
        "display_name": display.name,
        "plan": floor_plan,
        "wayfinding": wayfinding,
        "hyphens": {
            name: floormap.hyphenate(name, settings["language"])
            for name in sorted(
                {r.get("name") or "" for r in (snapshot or {}).get("rooms", {}).values()}
            )
            if name
        },
    }
    knobs = _test_knobs()
    if knobs is not None:  # the key's presence is what turns the page's test hooks on
        config["test"] = knobs
    return render_template(
        template,
        display=display_public(display),
        settings=settings,
        orientation=orientation,
        snapshot=snapshot,
        plan=plan,
        free=free,
        qr=qr,
        floor_plan=floor_plan,
        plan_map=bool(wayfinding and wayfinding.get("rooms")),
        t=lambda key, **kw: i18n.translate(messages, key, **kw),
        messages=messages,
        config=config,
        version=__version__,
    )


def render_draft(
    display: Display, config: dict[str, Any], plan_url: str, layout: Layout | None, here: Any
) -> str:
    """The kiosk page of `display` over a layout and a "you are here" not yet published: the
    floor editor's draft preview (signage/web/admin/editor.py), the real page with its real
    template and script. The display's settings stay as they are: the page reloads itself when
    its socket's settings differ from those it was rendered with."""
    return _render("kiosk/kiosk.html", display, config, None, plan_url, (layout, here))


@bp.get("/kiosk/<credential>")
def kiosk_page(credential: str) -> Response:
    """A display's page: rendered with the current state, kept live by the socket."""
    display = _display_or_404(credential)
    settings = page_settings(display.settings)
    # A console preview: no service worker, no saved state, no "paired" cookie in the
    # console's browser (signage/actions/preview.py).
    previewing = preview.is_preview(credential)
    config = {
        "mode": "kiosk",
        "socket": f"/ws/kiosk/{credential}",
        "state": f"/api/kiosk/{credential}/state",
        "heartbeat_s": services().config["SIGNAGE_HEARTBEAT_INTERVAL"],
        "sw": None if previewing else "/kiosk/sw.js",
        "storage_key": None if previewing else f"signage:kiosk:{display.id}",
        "preview": previewing,
        "qr": f"/kiosk/{credential}/qr.svg" if settings["qr"] else None,
        "idle_s": 15,
        "hyphens_url": f"/api/kiosk/{credential}/hyphens",
    }
    qr = _qr_svg(display) if settings["qr"] else None
    body = _render("kiosk/kiosk.html", display, config, qr, f"/kiosk/{credential}/plan")
    response = Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    _allow_logo(response, settings.get("logo_url"))
    if previewing:
        allow_console_frame(response)
        return response
    response.set_cookie(
        PAIRED_COOKIE,
        credential,
        max_age=400 * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
    )
    return response


@bp.get("/phone/<credential>")
def phone_page(credential: str) -> Response:
    """The read-only phone view a kiosk's QR code opens: the same floor, live by polling."""
    display = _phone_display_or_404(credential)
    config = {
        "mode": "phone",
        "state": f"/api/phone/{credential}/state",
        "heartbeat_s": services().config["SIGNAGE_HEARTBEAT_INTERVAL"],
        "storage_key": f"signage:phone:{display.id}",
        "hyphens_url": f"/api/phone/{credential}/hyphens",
    }
    body = _render("kiosk/phone.html", display, config, None, f"/phone/{credential}/plan")
    response = Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _allow_logo(response: Response, logo_url: str | None) -> None:
    """A logo on another site is the one image a page may load from elsewhere: name its origin
    in this page's policy (no Referer is sent, so the site never sees the credential)."""
    origin = image_origin(logo_url) if logo_url else None
    if origin:
        response.headers["Content-Security-Policy"] = content_security_policy(
            request.host, (origin,)
        )


def allow_console_frame(response: Response) -> None:
    """A preview is shown in the console's frame: our own origin may frame it, nobody else."""
    policy = response.headers.get("Content-Security-Policy") or content_security_policy(
        request.host
    )
    response.headers["Content-Security-Policy"] = policy.replace(
        "frame-ancestors 'none'", "frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"


@bp.get("/kiosk/<credential>/plan")
def kiosk_plan(credential: str) -> Response:
    """The floor plan of a display's floor, for its screens (the kiosk credential is the key)."""
    display = _display_or_404(credential)
    record = services().store.get_plan(display.floor_id)
    if record is None:
        abort(404)
    return plan_response(record)


@bp.get("/phone/<credential>/plan")
def phone_plan(credential: str) -> Response:
    """The floor plan for the phone view."""
    display = _phone_display_or_404(credential)
    record = services().store.get_plan(display.floor_id)
    if record is None:
        abort(404)
    return plan_response(record)


@bp.get("/kiosk/<credential>/qr.svg")
def kiosk_qr(credential: str) -> Response:
    """The phone link's QR code as an SVG file; `?room=SID` opens the phone on that room."""
    display = _display_or_404(credential)
    if display.settings.get("qr") is False:
        abort(404)
    room = request.args.get("room")
    if room is not None and not _SPACE_ID.match(room):
        return Response(
            "room must be a space id (letters, digits and _ . : -, at most 64)\n",
            status=400,
            mimetype="text/plain",
        )
    buffer = io.BytesIO()
    segno.make(_phone_link(display, room), error="m").save(
        buffer, kind="svg", scale=1, border=2, dark="#000", light="#fff", xmldecl=False
    )
    response = Response(buffer.getvalue(), mimetype="image/svg+xml")
    response.headers["Content-Security-Policy"] = plans.PLAN_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _state_response(display: Display, public: bool = False) -> Response:
    svc = services()
    if not public and svc.building:
        svc.building.touch(display.floor_id)  # a polling kiosk keeps the other floors' feeds too
    try:
        snapshot = kiosk_snapshot(svc.feeds.touch(display.floor_id), display)
    except FeedUnavailable as exc:
        return jsonify(error="density_unavailable", message=str(exc)), 503
    if public:
        # A phone needs the rooms and the display's name and language, nothing else.
        settings = display.settings or {}
        snapshot["display"] = {
            "name": display.name,
            "settings": {k: settings[k] for k in ("language", "hidden_rooms") if k in settings},
        }
    etag = f"{snapshot['epoch']}-{snapshot['seq']}-{snapshot['feed']}-{display.updated_at}"
    etag += f"-{floors_tag(snapshot.get('other_floors'))}"  # the other floors change on their own
    etag += f"-{announcement_tag(snapshot.get('announcements'))}"  # so do announcements
    etag += f"-n{display_names.book(svc).version}"  # and the floors' and rooms' display names
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        response = jsonify(snapshot)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/api/kiosk/<credential>/state")
def kiosk_state(credential: str) -> Response:
    """The display's snapshot as JSON; `If-None-Match` answers 304 while nothing changed."""
    return _state_response(_display_or_404(credential))


@bp.get("/api/phone/<credential>/state")
def phone_state(credential: str) -> Response:
    """The phone view's state: the display's floor, read-only, 404 once the link is revoked."""
    return _state_response(_phone_display_or_404(credential), public=True)


def _hyphens_response(display: Display) -> Response:
    body = request.get_json(silent=True) or {}
    names = body.get("names") if isinstance(body, dict) else None
    if not isinstance(names, list):
        return jsonify(error="bad_request", message="names: a list of strings"), 400
    lang = page_settings(display.settings)["language"]
    # Bounded: a page asks for the names on its floor, never for a book.
    names = [n for n in names[:200] if isinstance(n, str) and 0 < len(n) <= 120]
    return jsonify(hyphens={n: floormap.hyphenate(n, lang) for n in names})


@bp.post("/api/kiosk/<credential>/hyphens")
def kiosk_hyphens(credential: str) -> Response:
    """Break points for room names the page got after it loaded (soft hyphens, its language)."""
    return _hyphens_response(_display_or_404(credential))


@bp.post("/api/phone/<credential>/hyphens")
def phone_hyphens(credential: str) -> Response:
    """The same for the phone view."""
    return _hyphens_response(_phone_display_or_404(credential))


@bp.get("/kiosk/sw.js")
def service_worker() -> Response:
    """The kiosk's service worker, served from /kiosk/ so that its scope covers every kiosk page."""
    path = Path(current_app.static_folder or "") / "kiosk" / "sw.js"
    body = path.read_text(encoding="utf-8").replace("__SIGNAGE_VERSION__", __version__)
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Service-Worker-Allowed"] = "/kiosk/"
    return response
