"""Errors raised by signage.calendars.

A calendar's URL is a secret link (Microsoft 365 and Google publish a room's calendar at an
unguessable address): no message here names it, so an error can go to a log line, the fleet
health page or an API answer as it is. `reason` is a short snake_case word for machines.
"""

from __future__ import annotations

__all__ = [
    "BadStatus",
    "BadURL",
    "CalendarError",
    "Malformed",
    "TimedOut",
    "TooLarge",
    "Unauthorized",
    "Unexpected",
    "Unreachable",
    "Unreadable",
]


class CalendarError(Exception):
    """Base class of every error raised by signage.calendars."""

    reason = "error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.reason)
        self.message = message or self.reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class BadURL(CalendarError):
    """Not an http(s) URL with a host: refused before any request."""

    reason = "bad_url"


class Unreachable(CalendarError):
    """The connection failed: name resolution, refused, reset, TLS."""

    reason = "unreachable"


class TimedOut(CalendarError):
    """No answer, or no complete body, within the timeout."""

    reason = "timeout"


class TooLarge(CalendarError):
    """The body grew past the size limit (counted while streaming, so memory stays bounded)."""

    reason = "too_large"


class BadStatus(CalendarError):
    """An HTTP status other than 200 or 304."""

    reason = "http_status"

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class Malformed(CalendarError):
    """A body that is not an iCalendar calendar."""

    reason = "malformed"


class Unauthorized(CalendarError):
    """The server refused the credentials (HTTP 401 or 403): a wrong user name or password."""

    reason = "unauthorized"


class Unreadable(CalendarError):
    """The stored link or password cannot be unsealed with this server's key (a database
    restored on another server, or SIGNAGE_SECRET_KEY changed): it must be set again."""

    reason = "unreadable"


class Unexpected(CalendarError):
    """A fault that is no calendar's (ours or a library's): the message names only its type,
    since an exception's own text may carry the link."""

    reason = "unexpected"
