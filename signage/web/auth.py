"""Admin authentication: password hashing, sessions, API tokens, CSRF and attempt limits.

A console session is Flask's signed cookie holding the admin's id, session generation and a
digest of the admin's own random secret; all three are checked against the database on every
request, so a new password, signing out or a removed account ends every browser's session at
once, and a cookie can never open another account that happens to get the same id. API callers
present `Authorization: Bearer <token>`; only a SHA-256 of the token is stored (tokens are 256
random bits, so a slow hash adds nothing).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, abort, g, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface

from signage.actions import accounts, audit
from signage.store import Admin
from signage.web.current import services
from signage.web.readonly import ReadOnlyForms

logger = logging.getLogger(__name__)

MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes any length; a megabyte "password" is a denial of service
TOKEN_PREFIX = "sgn_"
SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

# Failed sign-ins allowed per window before the form answers 429. An address is refused after
# LOGIN_FAILURES_PER_IP failures (any usernames) or LOGIN_FAILURES_PER_IP_USER for one username.
# Failures at one username from everywhere never lock its real admin out: past
# LOGIN_FAILURES_PER_USER the account is under attack, and each address then gets only
# LOGIN_FAILURES_UNDER_ATTACK guesses at it per window (a guesser is slowed to that many per
# address), while an address that has not failed, or only mistyped once, may still sign in.
# Past LOGIN_CEILING_PER_USER guesses at one account in the window, an address that has guessed
# wrong at it once gets no more: a guesser then needs a new address (an IPv6 /64) per guess,
# while an address that has not failed may still sign in. Every attempt is counted before its
# password is checked (and the count given back when it was right), so parallel requests cannot
# all be checked before the first failure is counted.
LOGIN_WINDOW_S = 15 * 60
LOGIN_FAILURES_PER_IP = 20
LOGIN_FAILURES_PER_IP_USER = 8
LOGIN_FAILURES_PER_USER = 8
LOGIN_FAILURES_UNDER_ATTACK = 3
LOGIN_CEILING_PER_USER = 40

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so the answer takes as long either way."""
    return _hasher.hash(secrets.token_hex(16))


class PasswordError(ValueError):
    """A password that cannot be used (too short, too long)."""


def check_password_policy(password: str) -> None:
    """Refuse passwords too short to resist guessing or too long to hash cheaply."""
    if len(password) < MIN_PASSWORD:
        raise PasswordError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise PasswordError(f"a password may have at most {MAX_PASSWORD} characters")


def hash_password(password: str) -> str:
    """An argon2id hash of a password that passes the policy."""
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash (never raises for a wrong one)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return False


def authenticate(username: str, password: str) -> Admin | None:
    """The admin with this username and password, or None (same cost either way)."""
    store = services().store
    admin = store.admin_by_username(username) if username else None
    if admin is None:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(admin.password_hash, password):
        return None
    if needs_rehash(admin.password_hash):
        store.set_admin_password(admin.id, _hasher.hash(password), sign_out=False)
    return admin


# -- API tokens --------------------------------------------------------------------------------
def new_api_token() -> str:
    """A fresh token value (shown once, stored hashed)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """How a token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- who is calling ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """The caller of an admin route: a signed-in admin or an API token."""

    kind: str  # "session" or "token"
    id: int
    name: str
    role: str  # owner, admin (may change things) or viewer (an account or token that reads)

    @property
    def can_write(self) -> bool:
        return self.role in ("owner", "admin")

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def label(self) -> str:
        """How the caller appears in logs and records."""
        return f"{self.kind}:{self.name}"

    @property
    def actor(self) -> audit.Actor:
        """Who the audit trail records: the account, or the API token by its name."""
        return audit.Actor("account" if self.kind == "session" else "token", self.name)


def session_key(admin: Admin) -> str:
    """What a session cookie holds of the admin's secret: a digest, never the secret itself
    ('' for an admin from before there were secrets, as their cookies from then hold)."""
    if not admin.secret:
        return ""
    return hashlib.sha256(f"signage-session:{admin.secret}".encode()).hexdigest()[:32]


def session_principal() -> Principal | None:
    """The admin signed in through this request's session cookie, if the session is current."""
    admin_id = session.get("admin_id")
    key = session.get("admin_key", "")
    if not isinstance(admin_id, int) or not isinstance(key, str):
        return None
    admin = services().store.get_admin(admin_id)
    if admin is None or session.get("admin_gen") != admin.session_generation:
        return None
    if not hmac.compare_digest(key, session_key(admin)):
        return None  # a cookie of another account once given this id
    return Principal("session", admin.id, admin.username, admin.role)


def token_principal() -> Principal | None:
    """The API token in this request's Authorization header, if it is a known one."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(TOKEN_PREFIX) or len(value) > 128:
        return None
    token = services().store.api_token_by_hash(token_hash(value))
    if token is None:
        return None
    return Principal("token", token.id, token.name, token.role)


def current_principal() -> Principal | None:
    """The caller as established for this request (see `load_principal`)."""
    return g.get("principal")


def load_principal(allow_token: bool) -> Principal | None:
    """Establish the caller once per request: a bearer token (API only) or the session."""
    if "principal" not in g:
        principal = token_principal() if allow_token else None
        g.principal = principal or session_principal()
        # What this request changes is recorded as done by this caller (unbound at teardown).
        audit.bind(g.principal.actor if g.principal is not None else None)
    return g.principal


def start_session(admin: Admin) -> None:
    """Sign an admin in: a fresh session (no value of the anonymous one survives)."""
    session.clear()
    session.permanent = True
    session["admin_id"] = admin.id
    session["admin_gen"] = admin.session_generation
    session["admin_key"] = session_key(admin)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    g.pop("principal", None)


def end_session() -> None:
    """Sign out: this admin's session ends on the server too, in this and every other browser,
    so a copy of the cookie taken before opens nothing (recorded in the audit trail)."""
    principal = session_principal()
    if principal is not None:
        accounts.signed_out(services().store, principal.id, principal.name, client_ip())
    session.clear()
    g.pop("principal", None)


def record_sign_in(admin: Admin) -> None:
    """The audit trail's entry for a sign-in through the console's form, with the address."""
    accounts.signed_in(services().store, admin, client_ip())


def record_failed_sign_in(username: str) -> None:
    """The audit trail's tally of a failed sign-in: the name tried and the address (never the
    password), one entry per account and minute (actions/accounts.py says why)."""
    accounts.sign_in_failed(services().store, username, client_ip())


# -- CSRF ----------------------------------------------------------------------------------------
def csrf_token() -> str:
    """This session's CSRF token (made on first use); goes in a hidden field of every form."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_ok() -> bool:
    """Whether an unsafe request carries this session's token (form field or header)."""
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    return isinstance(expected, str) and hmac.compare_digest(expected, given)


def require_csrf() -> None:
    """Refuse an unsafe request without this session's token (403)."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and not csrf_ok():
        logger.warning("refused %s %s: missing or wrong CSRF token", request.method, request.path)
        abort(403, "missing or expired form token: reload the page and try again")


def admin_api_guard() -> None:
    """The admin API's guard (every blueprint under /api/admin): who is calling (401), then
    may a session's unsafe call be forged (CSRF, 403), then may this principal write (403)."""
    principal = load_principal(allow_token=True)
    if principal is None:
        abort(401)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if principal.kind == "session" and not csrf_ok():
            abort(403, "missing or wrong X-CSRF-Token header (the console's form token)")
        if not principal.can_write:
            abort(403, READ_ONLY_MESSAGE)


# Methods that change something; a viewer (account or token) is refused every one of them.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_ONLY_MESSAGE = "read-only access: a viewer may look at everything but change nothing"
# What a viewer may still do in the console: sign out, and change their own password.
SELF_SERVICE_ENDPOINTS = frozenset({"admin.login", "admin.logout", "admin.account"})


def require_write() -> None:
    """The console's one guard for roles: refuse an unsafe request of a viewer (403), before
    any view runs, so a new route cannot forget it."""
    if request.method not in UNSAFE_METHODS or request.endpoint in SELF_SERVICE_ENDPOINTS:
        return
    principal = current_principal()
    if principal is not None and not principal.can_write:
        logger.info("refused %s %s: %s is a viewer", request.method, request.path, principal.label)
        abort(403, READ_ONLY_MESSAGE)


# -- attempt limits --------------------------------------------------------------------------------
class AttemptLimiter:
    """At most `limit` events per key within a sliding window of `window` seconds."""

    MAX_KEYS = 10_000  # a flood of distinct keys cannot grow memory without bound

    def __init__(self, limit: int, window: float, clock=time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self.MAX_KEYS:
                self._prune(now)
            events = self._events[key] = deque()
        while events and now - events[0] > self.window:
            events.popleft()
        return events

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._events.items() if not v or now - v[-1] > self.window]:
            del self._events[key]
        if len(self._events) >= self.MAX_KEYS:  # still full: forget the oldest half
            for key in list(self._events)[: self.MAX_KEYS // 2]:
                del self._events[key]

    def blocked(self, key: str) -> bool:
        """Whether the key has used up its allowance."""
        with self._lock:
            return len(self._recent(key, self.clock())) >= self.limit

    def hit(self, key: str) -> bool:
        """Count one event; False when the key was already over its allowance."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def retry_after(self, key: str) -> int:
        """Seconds until the key may try again."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) < self.limit:
                return 0
            return max(1, int(self.window - (now - events[0])) + 1)

    def count(self, key: str) -> int:
        """Events of the key within the window."""
        with self._lock:
            return len(self._recent(key, self.clock()))

    def reset(self, key: str) -> None:
        """Forget a key's events (a successful login)."""
        with self._lock:
            self._events.pop(key, None)

    def undo(self, key: str) -> None:
        """Take back the key's latest event (an attempt counted before it turned out right)."""
        with self._lock:
            events = self._events.get(key)
            if events:
                events.pop()


def limiter(name: str, limit: int, window: float) -> AttemptLimiter:
    """The app's limiter of that name, made on first use (kept with the app's services).

    With Redis, attempts are counted for the whole fleet (signage.fleet): several processes
    must not multiply the attempts a guesser gets.
    """
    svc = services()
    with svc.lock:
        limiters = svc.state.setdefault("limiters", {})
        if name not in limiters:
            limiters[name] = AttemptLimiter(limit, window)
            if svc.cluster is not None:
                limiters[name] = svc.cluster.attempt_limiter(name, limiters[name])
        return limiters[name]


def client_ip() -> str:
    """The caller's address (behind a proxy, configure ProxyFix so that this is the client)."""
    return request.remote_addr or "unknown"


def address_key(ip: str) -> str:
    """The key every per-address limit counts under: an IPv4 address, or an IPv6 address's /64.

    One IPv6 subscriber or host is usually given a whole /64 (2**64 addresses): counted per
    address, it would get a fresh allowance from each. An IPv4-mapped address counts as IPv4.
    """
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# -- the session cookie ----------------------------------------------------------------------------
class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, Secure whenever the request or the public URL is HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config.get("SESSION_COOKIE_SECURE"):
            return True
        public = str(app.extensions["signage"].config.get("SIGNAGE_PUBLIC_URL") or "")
        secure_request = has_request_context() and request.is_secure
        return secure_request or public.startswith("https://")


def init_app(app: Flask) -> None:
    """Session cookie settings (HttpOnly, SameSite=Lax, Secure behind HTTPS, 12 h), the form
    token in templates, and a viewer's forms disabled."""
    app.session_interface = _SessionInterface()
    app.config["SESSION_COOKIE_NAME"] = "signage_session"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["PERMANENT_SESSION_LIFETIME"] = SESSION_LIFETIME
    app.jinja_env.globals["csrf_token"] = csrf_token
    # A viewer's console forms are disabled in the page (web/readonly.py), not only refused.
    app.jinja_env.add_extension(ReadOnlyForms)
    app.teardown_request(_unbind_actor)


def _unbind_actor(_exc: BaseException | None) -> None:
    """A server thread serves other requests next: none may be recorded as this caller's."""
    audit.bind(None)
