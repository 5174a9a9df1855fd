"""Preview credentials: the console shows what a display's screens show, without being one.

A preview credential opens a display's kiosk page, its JSON state and its socket (and the
page's plan, QR code and hyphens) for a few minutes, read-only. It is signed, not stored, so
every process of a fleet accepts it with the shared secret key and issuing one writes nothing
(a viewer account may preview too). It is never the display's pairing credential: it cannot
pair, cannot be turned into one, and expires on its own.

Whoever serves it must treat it as a preview: no "paired" cookie, not counted as a screen
(fleet health, heartbeats, first-screen records, alerts), outside the per-address socket cap,
and the socket closes with `CLOSE_EXPIRED` when it runs out (docs/protocol.md).

Shape: ``p<display id>.<expiry, Unix seconds>.<32 hex of HMAC-SHA256>``. The MAC covers the
display's row secret, so a restore that reissues every credential ends previews too; the
leading ``p`` keeps it from ever parsing as a kiosk credential (those start with digits).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from signage.store import Display, Store

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)

TTL_S = 600  # ten minutes: long enough to watch a change land, short enough to leak little
PREFIX = "p"
_SHAPE = re.compile(r"^p([0-9]{1,18})\.([0-9]{1,12})\.([0-9a-f]{32})$")


class PreviewExpired(Exception):
    """A genuine preview credential whose time is up (answered 410, socket code 4410)."""


@dataclass(frozen=True)
class Preview:
    """One issued preview: its credential and when it stops working (Unix seconds)."""

    display_id: int
    credential: str
    expires_at: float


def is_preview(credential: str) -> bool:
    """Whether a URL's credential is meant as a preview (checked for real by `display_for`)."""
    return credential.startswith(PREFIX)


def _mac(secret: str, display: Display, expires: int) -> str:
    # A key of its own, derived from the server's: a preview MAC is never a valid kiosk MAC.
    key = hmac.new(secret.encode(), b"signage preview credential", hashlib.sha256).digest()
    message = f"preview:{display.id}:{expires}:{display.secret}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]


def issue(secret: str, display: Display, now: float, ttl: float = TTL_S) -> Preview:
    """A preview credential for `display`, valid from `now` (wall clock) for `ttl` seconds."""
    expires = int(now + ttl)
    credential = f"{PREFIX}{display.id}.{expires}.{_mac(secret, display, expires)}"
    return Preview(display.id, credential, float(expires))


def for_display(svc: Services, display: Display) -> Preview:
    """A preview of a display issued now, on the services' clock (a test's fake one)."""
    return issue(svc.config["SIGNAGE_SECRET_KEY"], display, svc.feeds.clock.time())


def links(svc: Services, display: Display, issued: Preview) -> dict[str, Any]:
    """What the JSON API answers for an issued preview: its kiosk page and phone view (None
    when the display's QR code is off, as its phone view then is), and when both end (UTC)."""
    base = svc.public_url()
    phone = None if display.settings.get("qr") is False else f"{base}/phone/{issued.credential}"
    ends = datetime.fromtimestamp(issued.expires_at, UTC)
    return {
        "display_id": display.id,
        "url": f"{base}/kiosk/{issued.credential}",
        "phone_url": phone,
        "expires_at": ends.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def display_for(store: Store, secret: str, credential: str, now: float) -> Display | None:
    """The display a preview credential shows, None when it is not a genuine one.

    Raises PreviewExpired for a genuine credential past its time: the caller says "ended"
    rather than "unknown", so a page does not send the console's browser to pairing.
    """
    match = _SHAPE.match(credential)
    if match is None:
        return None
    display = store.get_display(int(match.group(1)))
    if display is None:
        return None
    expires = int(match.group(2))
    if not hmac.compare_digest(_mac(secret, display, expires), match.group(3)):
        return None
    if now >= expires:
        raise PreviewExpired(f"preview of display {display.id} expired")
    return display


def expires_at(credential: str) -> float | None:
    """When a (well-formed) preview credential runs out, read from the credential itself."""
    match = _SHAPE.match(credential)
    return float(match.group(2)) if match else None


def display_for_kiosk(store: Store, secret: str, credential: str, now: float) -> Display | None:
    """A kiosk URL's display: by its pairing credential, or by a preview credential (which
    may raise PreviewExpired)."""
    if is_preview(credential):
        return display_for(store, secret, credential, now)
    return store.display_for_credential(credential)
