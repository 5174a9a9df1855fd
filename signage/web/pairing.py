"""Pairing: a screen with no credential shows a short code; an admin gives it a display.

The screen opens /pair: it gets a code to show (8 characters from an alphabet without look-alike
characters, about 40 bits, single use, 10 minutes) and, in an HttpOnly cookie, a private secret
that is never shown. It polls /pair/status with that cookie; once an admin has claimed the code
(console, API or `signage displays pair`), the answer carries the display's kiosk URL and the
page goes there. Codes live in the database so that another process can claim them; the
claim itself is signage/actions/pairing.py.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from flask import Blueprint, Response, jsonify, render_template, request

from signage.actions.pairing import new_code
from signage.services import Services
from signage.web import auth
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("pairing", __name__)

CODE_TTL_S = 600.0
COOKIE = "signage_pair"
POLL_INTERVAL_S = 2

# Codes a single address may create per window (a screen makes one per 10 minutes at most; a
# building behind one NAT address pairs many screens at once).
CREATE_PER_IP = 100
CREATE_WINDOW_S = 600.0
# Unclaimed codes one address holds at once: its oldest code makes room for its next one.
PENDING_PER_ADDRESS = 50
# Unclaimed codes kept at once, whoever asks. When full, the address holding the most loses its
# oldest code: a flood from many addresses cannot lock a new screen out.
MAX_PENDING = 2000


def display_code(code: str) -> str:
    """ABCD-EFGH: easier to read aloud and type."""
    return f"{code[:4]}-{code[4:]}"


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_pairing() -> tuple[str, str, float] | Response:
    """Create a code and its secret, or the reason why not (429/503)."""
    svc = services()
    ip = auth.address_key(auth.client_ip())  # codes are shared fairly per address (/64)
    if not auth.limiter("pair-create", CREATE_PER_IP, CREATE_WINDOW_S).hit(ip):
        return Response(
            render_template("pairing/busy.html"), status=429, headers={"Retry-After": "60"}
        )
    now = time.time()
    svc.store.make_room_for_pairing(ip, now, PENDING_PER_ADDRESS, MAX_PENDING)
    if svc.store.pending_pairing_count(now) >= MAX_PENDING:
        return Response(
            render_template("pairing/busy.html"), status=503, headers={"Retry-After": "60"}
        )
    secret = secrets.token_urlsafe(32)
    for _ in range(5):
        code = new_code()
        pairing = svc.store.add_pairing_code(code, _secret_hash(secret), now, CODE_TTL_S, ip)
        if pairing is not None:
            return code, secret, pairing.expires_at
    return Response("could not make a code", status=503)


def _current_pairing(svc: Services):
    secret = request.cookies.get(COOKIE, "")
    if not secret or len(secret) > 128:
        return None
    return svc.store.pairing_by_secret(_secret_hash(secret))


@bp.get("/pair")
def pair_page() -> Response:
    """A screen without a credential: show a code, wait for an admin to claim it."""
    svc = services()
    pairing = _current_pairing(svc)
    secret = None
    # A reload keeps its code while it is valid and unclaimed (no new code per refresh).
    if pairing is not None and pairing.display_id is None and pairing.expires_at > time.time():
        code, expires_at = pairing.code, pairing.expires_at
    else:
        made = _new_pairing()
        if isinstance(made, Response):
            return made
        code, secret, expires_at = made
    body = render_template(
        "pairing/pair.html",
        code=display_code(code),
        expires_in=max(0, int(expires_at - time.time())),
        poll_s=POLL_INTERVAL_S,
        server=svc.public_url(),
    )
    response = Response(body, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    if secret is not None:
        response.set_cookie(
            COOKIE,
            secret,
            max_age=int(CODE_TTL_S) + 60,
            path="/pair",
            httponly=True,
            samesite="Strict",
            secure=request.is_secure or svc.public_url().startswith("https://"),
        )
    return response


@bp.get("/pair/status")
def pair_status() -> Response:
    """The polling screen's answer: waiting, expired, or paired with its kiosk URL."""
    svc = services()
    pairing = _current_pairing(svc)
    if pairing is None:
        response = jsonify(state="unknown")
    elif pairing.display_id is not None:
        display = svc.store.get_display(pairing.display_id)
        if display is None:  # deleted in between
            response = jsonify(state="expired")
        else:
            credential = svc.store.credential(display)
            svc.store.delete_pairing(pairing.id)
            logger.info("paired screen handed the credential of display %s", display.id)
            response = jsonify(
                state="paired",
                kiosk_path=f"/kiosk/{credential}",
                kiosk_url=svc.kiosk_url(display),
            )
            response.delete_cookie(COOKIE, path="/pair")
    elif pairing.expires_at < time.time():
        response = jsonify(state="expired")
    else:
        response = jsonify(state="waiting", expires_in=int(pairing.expires_at - time.time()))
    response.headers["Cache-Control"] = "no-store"
    return response
