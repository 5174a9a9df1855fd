"""The console's branding page of a display: its logo (upload or remove) and its accent colour,
with the accent's contrast on the display's theme shown before and checked when saving."""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for

from signage.actions import branding
from signage.core.branding import MIN_RATIO, THEMES, check_accent, format_ratio
from signage.store.branding import MAX_LOGO_BYTES
from signage.web.admin.base import ask_first, bp, display_or_404
from signage.web.current import services

logger = logging.getLogger(__name__)

FIELD_NAMES = {"logo": "Logo file", "brand_color": "Accent colour", "theme": "Theme"}
DEFAULT_ACCENT = "#2b4bd8"  # kiosk.css --brand: what the screens use with no accent set


def _render(display: Any, errors: dict[str, str], typed: str | None, status: int) -> Response:
    settings = display.settings or {}
    theme = settings.get("theme") or "light"
    accent = typed if typed is not None else (settings.get("brand_color") or "")
    try:
        check = check_accent(accent or DEFAULT_ACCENT, theme)
    except ValueError:
        check = None
    body = render_template(
        "admin/branding.html",
        display=display,
        errors=errors,
        theme=theme,
        theme_colours=THEMES.get(theme, THEMES["light"]),
        accent=accent,
        shown_accent=accent or DEFAULT_ACCENT,
        check=check,
        min_ratio=MIN_RATIO,
        ratio=format_ratio,
        field_names=FIELD_NAMES,
        logo_url=settings.get("logo_url") or "",
        max_logo_kb=MAX_LOGO_BYTES // 1000,
    )
    return Response(body, status=status)


@bp.get("/displays/<int:display_id>/branding")
def display_branding(display_id: int) -> Response:
    """A display's logo and accent colour."""
    return _render(display_or_404(display_id), {}, None, 200)


@bp.post("/displays/<int:display_id>/branding/logo")
def display_logo_upload(display_id: int) -> Any:
    """Upload a logo (PNG, or SVG that is sanitised); its screens reload to show it."""
    display = display_or_404(display_id)
    upload = request.files.get("logo")
    if upload is None or not upload.filename:
        return _render(display, {"logo": "choose a PNG or SVG file"}, None, 400)
    data = upload.stream.read()  # the console's guard bounds the request's body already
    try:
        branding.upload_logo(services(), display, data)
    except branding.Invalid as exc:
        return _render(display, exc.errors, None, 400)
    flash("Logo saved. Its screens reload to show it.", "ok")
    return redirect(url_for("admin.display_branding", display_id=display.id))


@bp.post("/displays/<int:display_id>/branding/logo/remove")
def display_logo_remove(display_id: int) -> Any:
    """Show no logo on the display's screens (after a page asking)."""
    display = display_or_404(display_id)
    asking = ask_first(
        title="Remove this display's logo?",
        text="Its screens reload and show no logo. To show it again, upload the file again.",
        subject=display.name,
        button="Remove logo",
        cancel=url_for("admin.display_branding", display_id=display.id),
    )
    if asking is not None:
        return asking
    branding.remove_logo(services(), display)
    flash("Logo removed.", "ok")
    return redirect(url_for("admin.display_branding", display_id=display.id))


@bp.post("/displays/<int:display_id>/branding/accent")
def display_accent(display_id: int) -> Any:
    """Set the accent colour, refused with the contrast it got when it does not read."""
    display = display_or_404(display_id)
    colour = "" if request.form.get("default") else request.form.get("brand_color", "")
    try:
        branding.set_accent(services(), display, colour)
    except branding.Invalid as exc:
        return _render(display, exc.errors, colour, 400)
    flash("Accent colour saved." if colour else "The default accent is back.", "ok")
    return redirect(url_for("admin.display_branding", display_id=display.id))
