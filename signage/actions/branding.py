"""A display's branding as the console and the API change it: its logo and its accent colour.

Both are the display's existing settings (`logo_url`, `brand_color`): an uploaded logo is
stored (store/branding.py) and the display's `logo_url` set to its URL on our origin, so every
screen that showed a logo URL shows the upload the same way, and a URL typed by hand keeps
working. Each change goes through `clean_display` and `apply_display_change` like any other
setting, so the accent's contrast check (core/branding.py) and the display's audit record
apply here too, and the display's screens reload. Each returns the settings before and after.
"""

from __future__ import annotations

import logging
import re
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signage.actions.displays import Invalid, apply_display_change, clean_display
from signage.store import Display
from signage.store.branding import Logo, LogoError, Logos, check_logo, logo_digest

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrandingChange:
    """A display's branding before and after a change."""

    display: Display
    before: dict[str, Any]
    after: dict[str, Any]


def _branding(display: Display) -> dict[str, Any]:
    settings = display.settings or {}
    return {
        "logo_url": settings.get("logo_url", ""),
        "brand_color": settings.get("brand_color", ""),
    }


def _pixels(logo: Logo) -> str:
    """A logo's size in pixels as it declares it: a PNG's header, an SVG's width and height
    (or its viewBox's); "" when an SVG declares neither."""
    if logo.ext == "png":
        width, height = struct.unpack(">II", logo.data[16:24])  # IHDR, checked at upload
        return f"{width}×{height}"
    root = re.search(rb"<svg\b[^>]*>", logo.data[:4096])
    tag = root.group(0).decode("utf-8", "replace") if root else ""
    sizes = [re.search(rf'\s{a}\s*=\s*["\']\s*([0-9.]+)', tag) for a in ("width", "height")]
    if all(sizes):
        return "×".join(m.group(1) for m in sizes if m)
    box = re.search(r'viewBox\s*=\s*["\']\s*[-0-9.]+[ ,]+[-0-9.]+[ ,]+([0-9.]+)[ ,]+([0-9.]+)', tag)
    return f"{box.group(1)}×{box.group(2)}" if box else ""


def logo_facts(svc: Services, url: str | None) -> dict[str, Any]:
    """What the audit trail records of an uploaded logo (never its bytes): its digest (short),
    type, size and pixels; none for no logo or a URL typed by hand (recorded as logo_url)."""
    digest = logo_digest(url)
    logo = Logos(svc.store).get(digest) if digest else None
    if logo is None:
        return {"logo_sha256": None, "logo_type": None, "logo_bytes": None, "logo_pixels": None}
    return {
        "logo_sha256": logo.sha256[:12],
        "logo_type": logo.ext.upper(),
        "logo_bytes": len(logo.data),
        "logo_pixels": _pixels(logo) or None,
    }


def _apply(svc: Services, display: Display, fields: dict[str, Any]) -> BrandingChange:
    cleaned = clean_display(fields, display, None)  # the floor is not changed: None is enough
    # The entry's logo_url alone says a logo changed, not to what: the logos' facts go with it
    # (equal ones, as for an accent change, drop out of the entry).
    noted = (
        logo_facts(svc, (display.settings or {}).get("logo_url")),
        logo_facts(svc, cleaned["settings"].get("logo_url")),
    )
    updated = apply_display_change(svc.store, svc.hub, display, cleaned, noted=noted)
    return BrandingChange(updated, _branding(display), _branding(updated))


def upload_logo(svc: Services, display: Display, upload: bytes) -> BrandingChange:
    """Check, sanitise and store a logo, and show it on the display's screens.

    Raises Invalid({"logo": why}) for a refused file."""
    try:
        data, content_type = check_logo(upload)
    except LogoError as exc:
        raise Invalid({"logo": str(exc)}) from exc
    logo = Logos(svc.store).put(data, content_type)
    change = _apply(svc, display, {"logo_url": logo.url})
    logger.info(
        "display %s logo uploaded (%s, %d bytes)", display.id, logo.content_type, len(logo.data)
    )
    sweep_logos(svc)
    return change


def remove_logo(svc: Services, display: Display) -> BrandingChange:
    """Show no logo on the display's screens (the brand mark again)."""
    change = _apply(svc, display, {"logo_url": ""})
    sweep_logos(svc)
    return change


def set_accent(svc: Services, display: Display, colour: str) -> BrandingChange:
    """Set the display's accent colour ("" for the default); Invalid names brand_color and the
    contrast ratios when the colour is too close to the theme's text or background."""
    return _apply(svc, display, {"brand_color": colour})


def sweep_logos(svc: Services) -> int:
    """Remove stored logos no display shows any more (not those uploaded a moment ago)."""
    keep = {d for d in (logo_digest(x.settings.get("logo_url")) for x in svc.store.list_displays())}
    return Logos(svc.store).sweep({d for d in keep if d})


def logo_of(svc: Services, digest: str) -> Logo | None:
    """A stored logo by its digest (the kiosk's and the console's image)."""
    return Logos(svc.store).get(digest)


__all__ = [
    "BrandingChange",
    "Invalid",
    "logo_facts",
    "logo_of",
    "remove_logo",
    "set_accent",
    "sweep_logos",
    "upload_logo",
]
