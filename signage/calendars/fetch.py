"""One conditional GET of an iCalendar link, bounded in time and size.

The caller keeps the validators (ETag, Last-Modified) of the last good answer and passes them
back: an unchanged calendar then costs a 304 and no parsing. Every failure becomes a
CalendarError whose message never names the URL (a secret link).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from signage.calendars.errors import (
    BadStatus,
    BadURL,
    CalendarError,
    TimedOut,
    TooLarge,
    Unreachable,
)

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_TIMEOUT", "Fetched", "check_url", "fetch", "read_body"]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Fetched:
    """An answer: the body (None when the server said 304) and the validators to send next."""

    body: bytes | None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        """Whether the server said the calendar is unchanged since the validators given."""
        return self.body is None


def check_url(url: str) -> str:
    """The URL stripped, or BadURL: http(s) with a host (webcal:// is read as https://)."""
    url = url.strip()
    if url.lower().startswith("webcal://"):
        # How calendar apps advertise a subscription; the feed itself is served over HTTPS.
        url = "https://" + url[len("webcal://") :]
    try:
        parts = urlsplit(url)
        # A port out of range, or a host name httpx cannot encode, would fail only when
        # fetched, with an exception that is no httpx.HTTPError: refused here, when it is set.
        parts.port  # noqa: B018 (raises ValueError when out of range)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise BadURL("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadURL("an http:// or https:// URL is needed")
    return url


def read_body(response: httpx.Response, max_bytes: int, deadline: float, timeout: float) -> bytes:
    """A streamed response's body, refused past max_bytes (counted as it arrives, so memory
    stays bounded) or past the monotonic deadline (a server that drips bytes)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise TimedOut(f"body not read within {timeout:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


def fetch(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = DEFAULT_TIMEOUT,
) -> Fetched:
    """GET the calendar at url, conditionally; raise a CalendarError on any failure."""
    url = check_url(url)
    # Identity: the size limit then counts the bytes as they arrive; httpx inflates a compressed
    # chunk whole before the count sees it (a small bomb could take tens of MB first).
    headers = {"Accept": "text/calendar, */*;q=0.5", "Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    # httpx's timeout bounds each read; the deadline bounds the whole body, so a server that
    # drips one byte at a time cannot hold the refresh thread for ever.
    deadline = time.monotonic() + timeout
    # The httpx exception is neither the cause nor the context of ours (raised after the
    # `except` block): it carries the request, and with it the URL, which a traceback in a log
    # would print.
    error: CalendarError
    try:
        with client.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.status_code == 304:
                return Fetched(None, etag, last_modified)
            if response.status_code != 200:
                raise BadStatus(response.status_code)
            return Fetched(
                read_body(response, max_bytes, deadline, timeout),
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
            )
    except httpx.TimeoutException as exc:
        error = TimedOut(f"no answer within {timeout:g} s ({type(exc).__name__})")
    except httpx.TooManyRedirects:
        error = Unreachable("too many redirects")
    except httpx.HTTPError as exc:
        error = Unreachable(f"connection failed ({type(exc).__name__})")
    raise error
