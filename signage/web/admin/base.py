"""The console's blueprint, its guard, sign-in and the helpers its pages share.

Every route of this blueprint needs a signed-in admin except the sign-in form itself, and every
unsafe request needs the session's CSRF token (checked in `_guard`, before any view runs, so a
new route cannot forget it). Templates are autoescaped: admin-entered text is never marked safe.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from signage.store import Display
from signage.web import auth
from signage.web.current import services

logger = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Endpoints an anonymous caller may reach (everything else redirects to the sign-in form).
PUBLIC_ENDPOINTS = frozenset({"admin.login"})


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
    auth.require_write()  # a viewer's account reads only
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
        auth.record_failed_sign_in(username)  # a tally: a guessing loop cannot flood the trail
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
    auth.record_sign_in(admin)
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


def display_or_404(display_id: int) -> Display:
    """The display of a console URL, or a 404 page."""
    display = services().store.get_display(display_id)
    if display is None:
        abort(404)
    return display
