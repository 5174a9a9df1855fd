"""The console's blueprint, its guard, sign-in and the helpers its pages share.

Every route of this blueprint needs a signed-in admin except the sign-in form itself, and every
unsafe request needs the session's CSRF token (checked in `_guard`, before any view runs, so a
new route cannot forget it). Templates are autoescaped: admin-entered text is never marked safe.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import HTTPException

from signage.store import Display
from signage.store.branding import MAX_LOGO_BYTES
from signage.store.plans import human_size
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
    # Bodies beyond what the route takes are refused before anything reads them (the CSRF check
    # does): a logo's limit for the logo form, so its 413 names the logo's limit, not a plan's.
    request.max_content_length = upload_limit(request.endpoint)[1] + 65536
    if request.endpoint not in PUBLIC_ENDPOINTS:
        if auth.load_principal(allow_token=False) is None:
            if _wants_json() or not _is_navigation():
                # A script's request (the editor's fetch, its 5 s poll of states.json): an
                # answer it can read, and no sign-in page or "signed out" message for each poll.
                abort(401)
            if request.method == "GET":
                if _came_from_console():
                    _flash_once(SIGNED_OUT_MESSAGE)
                return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
            # A form sent from a tab whose session ended (signed out in another tab): back to
            # sign-in, then to the page the form was on; forms.js kept what was typed there.
            _flash_once(SIGNED_OUT_MESSAGE)
            return redirect(url_for("admin.login", next=_referring_page()), code=303)
    auth.require_csrf()
    auth.require_write()  # a viewer's account reads only
    return None


SIGNED_OUT_MESSAGE = "You were signed out; sign in again and your page comes back."


def _wants_json() -> bool:
    """A script's request (JSON body or the CSRF header fetch() sends), not a browser form."""
    return request.is_json or auth.CSRF_HEADER in request.headers


def _is_navigation() -> bool:
    """A page the browser opens or a form it sends (Fetch Metadata's mode), or a client too old
    to say; fetch() and XHR say "cors" or "same-origin", which a redirect to sign-in only
    confuses (the editor read the sign-in page as an empty answer)."""
    mode = request.headers.get("Sec-Fetch-Mode")
    return mode in (None, "navigate", "nested-navigate")


def _flash_once(message: str) -> None:
    """Say it once: several requests of a signed-out tab must not stack the same line."""
    if not any(text == message for _, text in session.get("_flashes", [])):
        flash(message, "warn")


def _came_from_console() -> bool:
    """Whether the browser came from a page of this site (so its session ended meanwhile).
    Pages send no Referer (no-referrer: kiosk addresses are credentials); Fetch Metadata says
    where a navigation came from without the address."""
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


# The page a form was on, added by static/admin/forms.js as it is sent (no Referer is sent).
PAGE_FIELD = "_page"


def _referring_page() -> str:
    """The console page a form was sent from (its path and query): the page forms.js names,
    else the form's own address when it is a page (most forms post to their page), else the
    displays list."""
    try:
        named = request.form.get(PAGE_FIELD, "") if request.method in auth.UNSAFE_METHODS else ""
    except HTTPException:  # a body too large to read: its form is not read either
        named = ""
    for target in (named, request.path if request.method != "GET" else ""):
        if not target.startswith("/admin/") or target.startswith("/admin/login"):
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in target) or "\\" in target:
            continue
        path = urlsplit(target).path
        try:
            current_app.url_map.bind_to_environ(request.environ).match(path, method="GET")
        except HTTPException:
            continue  # not a page (a POST-only action, or nothing)
        return _safe_next(target)
    return url_for("admin.displays")


def upload_limit(endpoint: str | None) -> tuple[str, int]:
    """What a console route takes as an upload and its size limit: the logo form takes a logo,
    every other form at most a plan (the largest file the console accepts)."""
    if endpoint == "admin.display_logo_upload":
        return "logo", MAX_LOGO_BYTES
    limit = int(services().config["SIGNAGE_PLAN_MAX_BYTES"])
    return ("plan" if endpoint == "admin.plan_upload" else "request"), limit


# -- error pages ---------------------------------------------------------------------------------
# Plain words for each error a console page can meet; the page keeps the menu and links back.
ERROR_TITLES = {
    400: "This request could not be used",
    401: "Signed out",
    403: "Not allowed",
    404: "Not found",
    405: "Not possible here",
    409: "Changed meanwhile",
    413: "Too large",
    429: "Too many attempts",
}


def _error_text(exc: HTTPException) -> tuple[str, str]:
    """The page's heading and its sentence for an error."""
    code = exc.code or 500
    title = ERROR_TITLES.get(code, "Something went wrong")
    own = exc.description if exc.description != type(exc).description else ""
    if code == 404:
        text = "There is nothing at this address: it may have been deleted, or mistyped."
        return title, f"{text} ({own})" if own else text
    if code == 413:
        what, limit = upload_limit(request.endpoint)
        size = human_size(limit)
        if what == "request":
            return title, f"Nothing was changed: what was sent is larger than the {size} allowed."
        noun = {"logo": "logo", "plan": "floor plan"}[what]
        return title, (
            f"The {noun} was not stored: the file is larger than the {size} a {what} may have."
            " Make it smaller and upload it again."
        )
    if code == 405:
        return title, "This address does not take that kind of request."
    if code == 401:
        return title, SIGNED_OUT_MESSAGE
    return title, (own or exc.description or "").rstrip(".") + "."


@bp.errorhandler(HTTPException)
def _error_page(exc: HTTPException) -> Any:
    """Console errors as console pages (menu, plain words, a way back); a script's request gets
    the JSON the API answers with. A stale form token says what happened and that the text
    typed is kept in the tab (forms.js), so going back and sending again loses nothing."""
    code = exc.code or 500
    if code < 400:
        return exc
    if _wants_json():
        response = jsonify(
            error=(exc.name or "error").lower().replace(" ", "_"), message=exc.description
        )
        response.status_code = code
        return response
    stale_token = code == 403 and request.method in auth.UNSAFE_METHODS and not auth.csrf_ok()
    title, text = _error_text(exc)
    if stale_token:
        title = "This form had expired"
        text = (
            "Nothing was changed: the form was opened before its session changed (signed out"
            " and in again, perhaps in another tab), so its security token no longer matches."
            " What you typed is kept in this tab: go back to the form, which opens with a fresh"
            " token and your text, and send it again."
        )
    back = _referring_page()
    if back == request.full_path.rstrip("?") and request.method == "GET":
        back = url_for("admin.displays")  # a page that failed is no way back
    body = render_template(
        "admin/error.html",
        code=code,
        title=title,
        text=text,
        back=back,
        stale_token=stale_token,
        keep_forms=request.method in auth.UNSAFE_METHODS,
        # Named here too: an address no route matches gets this page outside the blueprint.
        principal=auth.current_principal(),
    )
    response = Response(body, status=code)
    for header in ("Retry-After", "Allow"):
        if header in exc.get_response().headers:
            response.headers[header] = exc.get_response().headers[header]
    return response


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


def ask_first(*, title: str, text: str, subject: str, button: str, cancel: str) -> str | None:
    """The page asking whether to go ahead with a destructive form (Cancel first and focused;
    its button sends the same form again with confirm=yes), or None once it was answered: the
    route then acts."""
    if request.form.get("confirm") == "yes":
        return None
    return render_template(
        "admin/confirm.html",
        title=title,
        text=text,
        subject=subject,
        action=request.path,
        button=button,
        cancel=cancel,
    )


def display_or_404(display_id: int) -> Display:
    """The display of a console URL, or a 404 page."""
    display = services().store.get_display(display_id)
    if display is None:
        abort(404)
    return display
