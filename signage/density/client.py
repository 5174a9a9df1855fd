"""DensityClient: one httpx.Client, one private _request that every call goes through.

_request is the only place that takes a rate-limit slot, picks and attaches the bearer
token, retries (429 after Retry-After, 5xx/transport errors with jittered backoff, a 401 once
after renewing the token), counts requests for metrics and turns every httpx failure into a
DensityError. The public methods only build bodies and parse answers.

Each logical call has one retry budget (``max_retries``, or the call's own ``retries=``), shared
by its token fetch and every page it reads: with four retries per call and a token fetch
retrying on its own, a 185 s outage on three floors drew 345 calls to Density. A loop that
already repeats (a feed polling on its fallback) passes ``retries=0``: the loop is the retry.
A wait longer than ``max_retry_wait`` (a long Retry-After, a limiter paused by someone else's
429) is never sat out inside the call: the caller gets RateLimited/Unavailable at once, with
``retry_after`` saying when to come back, so no thread is parked for half a minute.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from .backoff import Backoff
from .errors import (
    AuthError,
    BadRequest,
    BadResponse,
    DensityError,
    NotFound,
    RateLimited,
    Unavailable,
)
from .models import (
    Doorway,
    Occupancy,
    PresenceHealth,
    SensorHealth,
    Space,
    item_list,
    space_map,
)
from .ratelimit import RateLimiter
from .tokens import (
    DEFAULT_TOKEN_LIFETIME,
    ORG_KEY,
    SharedTokens,
    Token,
    TokenCache,
    TokenGrant,
    parse_token_response,
)

__all__ = ["DEFAULT_TIMEOUT", "PATHS", "DensityClient"]

logger = logging.getLogger(__name__)

# Every route in one place: one public integration names them with an org segment
# (/v3/{org_id}/analytics/…), which a caller can supply through DensityClient(paths=…).
PATHS: dict[str, str] = {
    "hello_world": "/v3/hello-world",
    "version": "/version",
    "spaces": "/v3/spaces",
    "doorways": "/v3/doorways",
    "presence_health": "/v3/analytics/presence-health",
    "presence": "/v3/analytics/presence",
    "occupancy_current": "/v3/analytics/occupancy/current",
    "short_term": "/v3/analytics/short-term",
    "sensor_health": "/v3/sensors/health/current",
    "ws_floor_presence": "/v3/analytics/ws/floor/{floor_id}/presence",
    "ws_space_occupancy": "/v3/analytics/ws/space/{space_id}/occupancy",
    "oauth_token": "/v3/oauth/token",
    "wayfinding_token": "/v3/wayfinding/token",
}

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_RETRIES = 2  # per logical call: 5xx, timeouts, transport errors and short 429s
DEFAULT_RETRY_WAIT = 5.0  # the longest a call sits out a Retry-After or backoff before giving up
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 300.0  # a bogus header must not park every caller for a day
MAX_PAGES = 100

# Which credentials a request carries.
_AUTH_NONE = "none"  # the token endpoints themselves
_AUTH_ORG = "org"
_AUTH_DISPLAY = "display"


_SECRET_SHAPES = re.compile(
    r"(?i)\bbearer\s+\S+"
    r"|\btok_[\w.~+/=-]+"
    r"|\beyJ[\w.~+/=-]+"
    r"|(?<=client_secret)[\"':= ]+[^\s\"',&}]+"
    r"|(?<=access_token)[\"':= ]+[^\s\"',&}]+"
)
TOKEN_HISTORY = 64  # recently issued tokens still scrubbed from messages after they are dropped


def _space_ids_body(space_ids: Iterable[str] | str | None) -> dict[str, Any]:
    if space_ids is None:
        return {}
    # A bare string would otherwise be sent as a list of its characters.
    ids = [space_ids] if isinstance(space_ids, str) else list(space_ids)
    return {"space_ids": ids}


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); 1 s when absent/bad."""
    if not value:
        return DEFAULT_RETRY_AFTER
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return DEFAULT_RETRY_AFTER
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class _Budget:
    """The retries one logical call may still spend (one per thread; never shared)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def left(self) -> int:
        return self.limit - self.used


class DensityClient:
    """Client for Density's public API, safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        *,
        api_token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        http: httpx.Client | None = None,
        limiter: RateLimiter | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_RETRIES,
        max_retry_wait: float = DEFAULT_RETRY_WAIT,
        backoff_cap: float = 30.0,
        token_margin: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        backoff_base: float = 0.5,
        rng: random.Random | None = None,
        limiter_timeout: float | None = 120.0,
        paths: Mapping[str, str] | None = None,
        audience: str | None = None,
        token_duration: int | None = None,
        default_token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        shared_tokens: SharedTokens | None = None,
    ) -> None:
        self.base_url = str(base_url).rstrip("/")
        self._base = httpx.URL(self.base_url + "/")
        self._api_token = api_token or None
        self._client_id = client_id or None
        self._client_secret = client_secret or None
        # Sent with the OAuth (organisation) token request only when set: Density's defaults
        # apply otherwise. The display-token endpoint takes neither.
        self.audience = audience or None
        if token_duration is not None and (
            isinstance(token_duration, bool) or int(token_duration) != token_duration
        ):
            raise ValueError("token_duration must be a whole number of seconds")
        self.token_duration = int(token_duration) if token_duration else None
        if self.token_duration is not None and self.token_duration < 0:
            raise ValueError("token_duration must not be negative")
        # A token answer without expires_in is trusted this long, and never longer than asked.
        self.default_token_lifetime = min(
            float(default_token_lifetime), float(self.token_duration or default_token_lifetime)
        )
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=self._timeout)
        self._sleep = sleep
        self._clock = clock
        self.limiter = limiter if limiter is not None else RateLimiter(clock=clock, sleep=sleep)
        self._limiter_timeout = limiter_timeout
        self.max_retries = max(0, int(max_retries))
        self.max_retry_wait = max(0.0, float(max_retry_wait))
        # The retry budget of the logical call this thread is making (see _budget).
        self._local = threading.local()
        self.backoff = Backoff(base=backoff_base, cap=backoff_cap, rng=rng)
        self.paths = {**PATHS, **(paths or {})}
        self.tokens = TokenCache(
            self._fetch_token, margin=token_margin, clock=clock, shared=shared_tokens
        )
        self._stats_lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._retries = 0
        self._held = 0  # calls refused locally because the limiter was paused too long
        self._auth_refreshes = 0
        self._issued: deque[str] = deque(maxlen=TOKEN_HISTORY)
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    @property
    def configured(self) -> bool:
        """True when some credential (static token or client id/secret) is configured."""
        return bool(self._api_token) or self.has_client_credentials

    @property
    def has_client_credentials(self) -> bool:
        """True when OAuth/display tokens can be fetched."""
        return bool(self._client_id and self._client_secret)

    def _url(self, endpoint: str, params: Mapping[str, str] | None = None) -> httpx.URL:
        path = self.paths[endpoint]
        if params:
            path = path.format(**{k: quote(str(v), safe="") for k, v in params.items()})
        return httpx.URL(self.base_url + path)

    def _redact(self, text: str) -> str:
        """``text`` with every secret we know, and anything shaped like one, replaced."""
        with self._stats_lock:
            issued = list(self._issued)
        secrets = [self._api_token, self._client_secret, *self.tokens.secrets(), *issued]
        for secret in secrets:
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        # A server may echo a token this client never held (another process's, a revoked one):
        # known-secret matching cannot catch those, the shapes can.
        return _SECRET_SHAPES.sub("***", text)

    def _count(self, endpoint: str, status: str) -> None:
        with self._stats_lock:
            self._counts[(endpoint, status)] += 1

    def _server_message(self, response: httpx.Response) -> str:
        """Density's ``{"code", "message"}`` error text, redacted and short."""
        try:
            body = response.json()
            message = body.get("message") if isinstance(body, dict) else None
        except ValueError:
            message = None
        if not isinstance(message, str) or not message:
            return ""
        return ": " + self._redact(message)[:200]

    def _auth(self, auth: str, display_id: str | None) -> tuple[Hashable | None, str | None]:
        """(token cache key or None for static/no auth, bearer value) for one request."""
        if auth == _AUTH_NONE:
            return None, None
        if auth == _AUTH_DISPLAY and display_id is not None and self.has_client_credentials:
            if display_id == ORG_KEY:
                raise ValueError(f"{ORG_KEY!r} is reserved and cannot be a display id")
            return display_id, self.tokens.get(display_id).access_token
        # Organisation call, or a display call without client credentials: the org token.
        if self._api_token:
            return None, self._api_token
        if not self.has_client_credentials:
            # Constructing without credentials is allowed (the app starts unconfigured);
            # calling Density is not.
            raise AuthError("no Density credentials configured (api_token or client id/secret)")
        return ORG_KEY, self.tokens.get(ORG_KEY).access_token

    def _request(
        self,
        method: str,
        endpoint: str,
        *,
        path_params: Mapping[str, str] | None = None,
        url: httpx.URL | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        auth: str = _AUTH_ORG,
        display_id: str | None = None,
        idempotent: bool = True,
        retries: int | None = None,
    ) -> httpx.Response:
        """Send one request of a logical call, drawing retries from that call's budget."""
        with self._budget(retries) as budget:
            return self._send(
                method,
                endpoint,
                budget,
                path_params=path_params,
                url=url,
                params=params,
                json=json,
                data=data,
                auth=auth,
                display_id=display_id,
                idempotent=idempotent,
            )

    @contextmanager
    def _budget(self, retries: int | None = None) -> Iterator[_Budget]:
        """The retry budget of the logical call this thread is in, opening one if none is.

        Nested requests (the token fetch a call triggers, the pages of /v3/spaces) draw from
        the outer call's budget, so one call never costs more than 1 + retries failed requests.
        """
        current: _Budget | None = getattr(self._local, "budget", None)
        if current is not None:
            yield current
            return
        budget = _Budget(self.max_retries if retries is None else max(0, int(retries)))
        self._local.budget = budget
        try:
            yield budget
        finally:
            self._local.budget = None

    def _wait_for_pause(self, what: str, endpoint: str) -> None:
        """Raise RateLimited rather than sit out a limiter pause longer than max_retry_wait."""
        left = self.limiter.paused_until - self._clock()
        if left > self.max_retry_wait:
            with self._stats_lock:
                self._held += 1
            raise RateLimited(
                f"{what}: Density asked for a pause, {left:.0f} s left",
                retry_after=left,
                endpoint=endpoint,
            )

    def _send(
        self,
        method: str,
        endpoint: str,
        budget: _Budget,
        *,
        path_params: Mapping[str, str] | None,
        url: httpx.URL | None,
        params: Mapping[str, str] | None,
        json: Any,
        data: Mapping[str, str] | None,
        auth: str,
        display_id: str | None,
        idempotent: bool,
    ) -> httpx.Response:
        if self._closed:
            raise DensityError("client is closed", endpoint=endpoint)
        target = url if url is not None else self._url(endpoint, path_params)
        what = f"{method} {endpoint}"
        refreshed = False  # the one 401 retry after renewing the token
        while True:
            self._wait_for_pause(what, endpoint)
            self.limiter.acquire(timeout=self._limiter_timeout)
            key, bearer = self._auth(auth, display_id)
            headers = {"Accept": "application/json, text/plain, */*"}
            if bearer is not None:
                headers["Authorization"] = f"Bearer {bearer}"
            retry_wait: float | None = None
            cause: BaseException | None = None
            try:
                response = self._http.request(
                    method,
                    target,
                    params=params,
                    json=json,
                    data=data,
                    headers=headers,
                    timeout=self._timeout,
                )
            except httpx.TimeoutException as exc:
                self._count(endpoint, "timeout")
                failure: DensityError = Unavailable(
                    f"{what}: timed out ({type(exc).__name__})", endpoint=endpoint
                )
                cause = exc
            except httpx.TransportError as exc:
                self._count(endpoint, "transport")
                failure = Unavailable(
                    f"{what}: transport error ({type(exc).__name__}: {self._redact(str(exc))})",
                    endpoint=endpoint,
                )
                cause = exc
            except httpx.HTTPError as exc:  # anything else httpx raises (decoding, streams)
                self._count(endpoint, "error")
                raise BadResponse(
                    f"{what}: {type(exc).__name__}: {self._redact(str(exc))}", endpoint=endpoint
                ) from exc
            except httpx.InvalidURL as exc:
                raise DensityError(f"{what}: invalid URL", endpoint=endpoint) from exc
            except RuntimeError as exc:
                # close() ran between the check above and this call (shutdown while a feed
                # polls): httpx raises RuntimeError, which would escape a feed thread.
                if not self._closed:
                    raise
                raise DensityError("client is closed", endpoint=endpoint) from exc
            else:
                status = response.status_code
                self._count(endpoint, str(status))
                if 200 <= status < 300:
                    return response
                detail = self._server_message(response)
                if status == 401 and key is not None and not refreshed:
                    # The cached token died early (revoked, clock skew): renew it once.
                    refreshed = True
                    self.tokens.invalidate(key, bearer)
                    with self._stats_lock:
                        self._auth_refreshes += 1
                    logger.info("%s: 401 with a cached token, renewing it once", what)
                    continue
                if status in (401, 403):
                    raise AuthError(
                        f"{what}: HTTP {status}{detail}", status=status, endpoint=endpoint
                    )
                if status == 404:
                    raise NotFound(f"{what}: HTTP 404{detail}", status=status, endpoint=endpoint)
                if status in (400, 422):
                    raise BadRequest(
                        f"{what}: HTTP {status}{detail}", status=status, endpoint=endpoint
                    )
                if status == 429:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    # Pause the shared limiter: every caller waits, not just this one.
                    self.limiter.pause_for(retry_after)
                    if budget.left <= 0 or retry_after > self.max_retry_wait:
                        raise RateLimited(
                            f"{what}: HTTP 429 after {budget.used + 1} attempts"
                            f" (retry after {retry_after:.0f} s)",
                            retry_after=retry_after,
                            endpoint=endpoint,
                        )
                    budget.used += 1
                    self._note_retry(what, "429")
                    continue  # the limiter holds us until Retry-After has passed
                if status >= 500:
                    failure = Unavailable(
                        f"{what}: HTTP {status}{detail}", status=status, endpoint=endpoint
                    )
                    if "Retry-After" in response.headers:
                        retry_wait = _retry_after(response.headers.get("Retry-After"))
                else:
                    raise BadResponse(
                        f"{what}: unexpected HTTP {status}", status=status, endpoint=endpoint
                    )
            # 5xx or a transport failure: retry reads with capped, jittered backoff.
            delay = self.backoff.delay(budget.used)
            if retry_wait is not None:
                delay = max(delay, retry_wait)
            if not idempotent or budget.left <= 0 or delay > self.max_retry_wait:
                if cause is not None:
                    raise failure from cause
                raise failure
            budget.used += 1
            self._note_retry(what, failure.message)
            self._sleep(delay)

    def _note_retry(self, what: str, why: str) -> None:
        with self._stats_lock:
            self._retries += 1
        logger.debug("%s: retrying after %s", what, why)

    def _json(self, response: httpx.Response, endpoint: str) -> Any:
        try:
            return response.json()
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
            raise BadResponse(f"{endpoint}: body is not valid JSON", endpoint=endpoint) from exc

    # ------------------------------------------------------------------ tokens

    def _fetch_token(self, key: Hashable) -> TokenGrant:
        """Ask Density for a token for ``key`` (TokenCache calls this, one flight per key)."""
        if key == ORG_KEY:
            body: dict[str, Any] = {
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            }
            if self.audience:
                body["audience"] = self.audience
            if self.token_duration:
                body["token_duration"] = self.token_duration
            response = self._request("POST", "oauth_token", json=body, auth=_AUTH_NONE)
            endpoint = "oauth_token"
        else:
            response = self._request(
                "POST",
                "wayfinding_token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id or "",
                    "client_secret": self._client_secret or "",
                    "display_id": str(key),
                },
                auth=_AUTH_NONE,
            )
            endpoint = "wayfinding_token"
        grant = parse_token_response(self._json(response, endpoint), self.default_token_lifetime)
        with self._stats_lock:
            self._issued.append(grant.access_token)
        return grant

    def display_token(self, display_id: str) -> Token:
        """The cached (or a fresh) display-scoped token for ``display_id``."""
        if not self.has_client_credentials:
            raise AuthError("display tokens need client_id and client_secret")
        if display_id == ORG_KEY:
            raise ValueError(f"{ORG_KEY!r} is reserved and cannot be a display id")
        return self.tokens.get(display_id)

    def org_token(self) -> str:
        """The organisation bearer token: the static API token, else the OAuth token."""
        if self._api_token:
            return self._api_token
        if not self.has_client_credentials:
            raise AuthError("no Density credentials configured (api_token or client id/secret)")
        return self.tokens.get(ORG_KEY).access_token

    def token_expiry(self, key: str) -> float | None:
        """Seconds left on the cached token for a display id or "org"; None when none cached."""
        return self.tokens.expires_in(key)

    # ------------------------------------------------------------------ API calls

    # Every call takes ``retries``: None uses the client's max_retries, 0 sends exactly once.

    def hello_world(self, *, retries: int | None = None) -> str:
        """GET /v3/hello-world: proves the token and the network path work."""
        return self._request("GET", "hello_world", retries=retries).text.strip()

    def version(self, *, retries: int | None = None) -> str:
        """GET /version: the API version string."""
        return self._request("GET", "version", retries=retries).text.strip()

    def spaces(
        self, *, counting_mode: str | None = None, retries: int | None = None
    ) -> list[Space]:
        """Every space of the organisation (a bare list or a paged results/next envelope)."""
        with self._budget(retries):  # every page draws from the one budget
            return self._spaces(counting_mode)

    def _spaces(self, counting_mode: str | None) -> list[Space]:
        params = {"counting_mode": counting_mode} if counting_mode else None
        spaces: list[Space] = []
        url: httpx.URL | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            response = self._request("GET", "spaces", url=url, params=None if url else params)
            body = self._json(response, "spaces")
            if isinstance(body, list):
                items, next_url = body, None
            elif isinstance(body, Mapping) and isinstance(body.get("results"), list):
                items, next_url = body["results"], body.get("next")
            elif isinstance(body, Mapping) and isinstance(body.get("data"), list):
                items, next_url = body["data"], body.get("next")
            else:
                raise BadResponse(
                    "spaces: expected a list or a results envelope", endpoint="spaces"
                )
            spaces.extend(Space.all_from_json(items))  # nested children included
            if not isinstance(next_url, str) or not next_url:
                return spaces
            url = self._next_page(next_url, response.request.url)
            if str(url) in seen:
                raise BadResponse("spaces: pagination loops", endpoint="spaces")
            seen.add(str(url))
        raise BadResponse(f"spaces: more than {MAX_PAGES} pages", endpoint="spaces")

    def _next_page(self, next_url: str, page_url: httpx.URL) -> httpx.URL:
        # A relative `next` ("?cursor=2", "page2") is relative to the page it came in, as in a
        # browser; joined to the API root it would ask for another resource.
        url = page_url.join(next_url)
        if (
            url.scheme == "http"
            and self._base.scheme == "https"
            and url.host == self._base.host
            and url.port in (None, 80)
        ):
            # An app behind TLS that builds its links from its plain-HTTP side: the same host,
            # asked over TLS as the base URL says (the token never travels in clear).
            url = url.copy_with(scheme="https", port=self._base.port)
        # The bearer token must never be sent to a host the base URL does not name.
        if (url.scheme, url.host, url.port) != (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ):
            raise BadResponse("spaces: next page points at another host", endpoint="spaces")
        return url

    def doorways(self, *, retries: int | None = None) -> list[Doorway]:
        """GET /v3/doorways: every doorway and the spaces its entry sensor counts for."""
        response = self._request("GET", "doorways", retries=retries)
        items = item_list(self._json(response, "doorways"), "doorways")
        return [d for d in map(Doorway.from_json, items) if d is not None]

    def presence_health(
        self,
        space_ids: Iterable[str] | None = None,
        *,
        display_id: str | None = None,
        retries: int | None = None,
    ) -> dict[str, PresenceHealth]:
        """Health-aware presence per space (all spaces the token may see when space_ids is None)."""
        response = self._request(
            "POST",
            "presence_health",
            json=_space_ids_body(space_ids),
            auth=_AUTH_DISPLAY,
            display_id=display_id,
            retries=retries,
        )
        payload = space_map(self._json(response, "presence_health"), "presence_health")
        result: dict[str, PresenceHealth] = {}
        for space_id, entry in payload.items():
            parsed = PresenceHealth.from_json(space_id, entry)
            if parsed is not None:
                result[space_id] = parsed
        return result

    def presence(
        self,
        space_ids: Iterable[str] | None = None,
        *,
        display_id: str | None = None,
        retries: int | None = None,
    ) -> dict[str, bool]:
        """Deprecated raw presence per space; cannot tell an empty room from a dead sensor."""
        response = self._request(
            "POST",
            "presence",
            json=_space_ids_body(space_ids),
            auth=_AUTH_DISPLAY,
            display_id=display_id,
            retries=retries,
        )
        payload = space_map(self._json(response, "presence"), "presence")
        result: dict[str, bool] = {}
        for space_id, value in payload.items():
            if isinstance(value, Mapping):
                value = next((value[k] for k in ("presence", "occupied") if k in value), None)
            if isinstance(value, bool):
                result[space_id] = value
        return result

    def sensor_health(
        self,
        *,
        space_ids: Iterable[str] | None = None,
        serial_numbers: Iterable[str] | None = None,
        retries: int | None = None,
    ) -> list[SensorHealth]:
        """Current health of sensors, filtered by space ids or serial numbers (not both)."""
        if space_ids is not None and serial_numbers is not None:
            raise ValueError("filter sensors by space_ids or serial_numbers, not both")
        body = _space_ids_body(space_ids)
        if serial_numbers is not None:
            serials = [serial_numbers] if isinstance(serial_numbers, str) else list(serial_numbers)
            body = {"serial_numbers": serials}
        response = self._request("POST", "sensor_health", json=body, retries=retries)
        items = item_list(self._json(response, "sensor_health"), "sensor_health")
        return [s for s in map(SensorHealth.from_json, items) if s is not None]

    def short_term(
        self,
        space_ids: Iterable[str] | None,
        minutes_lookback: int = 0,
        *,
        retries: int | None = None,
    ) -> list[dict[str, Any]]:
        """Short-term presence history (OA spaces and floors): the entries of "data" as dicts."""
        if isinstance(minutes_lookback, bool) or not 0 <= int(minutes_lookback) <= 240:
            raise ValueError("minutes_lookback must be between 0 and 240")
        body = {**_space_ids_body(space_ids), "minutes_lookback": int(minutes_lookback)}
        response = self._request("POST", "short_term", json=body, retries=retries)
        items = item_list(self._json(response, "short_term"), "short_term")
        return [dict(item) for item in items if isinstance(item, Mapping)]

    def current_occupancy(
        self,
        space_ids: Iterable[str] | None = None,
        *,
        display_id: str | None = None,
        retries: int | None = None,
    ) -> dict[str, Occupancy]:
        """Current head count per space."""
        response = self._request(
            "POST",
            "occupancy_current",
            json=_space_ids_body(space_ids),
            auth=_AUTH_DISPLAY,
            display_id=display_id,
            retries=retries,
        )
        payload = space_map(self._json(response, "occupancy_current"), "occupancy_current")
        result: dict[str, Occupancy] = {}
        for space_id, entry in payload.items():
            parsed = Occupancy.from_json(space_id, entry)
            if parsed is not None:
                result[space_id] = parsed
        return result

    # A ws_url is asked for by a socket's reconnect loop, which is itself the retry (with its
    # own backoff): retried here too, an outage cost three ws_url calls per socket attempt.
    # So these calls are sent once unless the caller asks for retries.

    def presence_ws_url(
        self, floor_id: str, *, display_id: str | None = None, retries: int | None = 0
    ) -> str:
        """A fresh single-use ws_url for the floor's presence socket (sent once by default)."""
        return self._ws_url("ws_floor_presence", {"floor_id": floor_id}, display_id, retries)

    def occupancy_ws_url(
        self, space_id: str, *, display_id: str | None = None, retries: int | None = 0
    ) -> str:
        """A fresh single-use ws_url for a space's occupancy-count socket (sent once by default)."""
        return self._ws_url("ws_space_occupancy", {"space_id": space_id}, display_id, retries)

    def _ws_url(
        self,
        endpoint: str,
        path_params: Mapping[str, str],
        display_id: str | None,
        retries: int | None,
    ) -> str:
        response = self._request(
            "POST",
            endpoint,
            path_params=path_params,
            auth=_AUTH_DISPLAY,
            display_id=display_id,
            retries=retries,
        )
        body = self._json(response, endpoint)
        ws_url = body.get("ws_url") if isinstance(body, Mapping) else None
        if isinstance(ws_url, str) and ws_url.startswith(("ws://", "wss://")):
            return ws_url
        raise BadResponse(f"{endpoint}: no ws:// or wss:// ws_url in the answer", endpoint=endpoint)

    # ------------------------------------------------------------------ metrics, life cycle

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of counters: requests by endpoint and status, retries, tokens, limiter."""
        with self._stats_lock:
            requests: dict[str, dict[str, int]] = {}
            for (endpoint, status), count in sorted(self._counts.items()):
                requests.setdefault(endpoint, {})[status] = count
            retries, refreshes, held = self._retries, self._auth_refreshes, self._held
        return {
            "requests": requests,
            "retries": retries,
            "held": held,
            "auth_refreshes": refreshes,
            "tokens": self.tokens.snapshot(),
            "limiter": self.limiter.snapshot(),
        }

    def close(self) -> None:
        """Close the httpx.Client if this client created it (an injected one is left open)."""
        self._closed = True
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> DensityClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "api_token" if self._api_token else "client_credentials"
        return f"DensityClient({self.base_url!r}, auth={kind})"
