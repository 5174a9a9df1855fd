"""Exceptions raised by the Density client.

Every failure the client sees (HTTP status, transport error, timeout, unparseable body,
dead socket) surfaces as a :class:`DensityError` subclass. Messages name the endpoint and
the status, never a token, a client secret or an Authorization header: they end up in logs
and, through the admin pages, on screens.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadRequest",
    "BadResponse",
    "DensityError",
    "MalformedFrame",
    "NotFound",
    "RateLimited",
    "StreamClosed",
    "Unavailable",
]


class DensityError(Exception):
    """Base class of every error raised by signage.density."""

    def __init__(
        self, message: str = "", *, status: int | None = None, endpoint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Keyword-only attributes survive copy.copy/pickle (the token cache hands
        # copies of one failure to every thread that waited on it).
        return (type(self), (self.message,), self.__dict__.copy())


class AuthError(DensityError):
    """401/403: the token or the client credentials were refused, or none are configured."""


class BadRequest(DensityError):
    """400/422: Density rejected the request itself (a bug on our side or a bad filter)."""


class NotFound(DensityError):
    """404: unknown space, floor or route."""


class RateLimited(DensityError):
    """429 after every allowed retry; ``retry_after`` is Density's last Retry-After in seconds."""

    def __init__(
        self,
        message: str = "",
        *,
        retry_after: float = 1.0,
        status: int | None = 429,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message, status=status, endpoint=endpoint)
        self.retry_after = retry_after


class Unavailable(DensityError):
    """5xx, a transport failure or a timeout, after every allowed retry."""


class BadResponse(DensityError):
    """A body that is not what the endpoint promises (not JSON, wrong shape, odd status)."""


class MalformedFrame(BadResponse):
    """A WebSocket frame that cannot be parsed as a presence/occupancy message."""


class StreamClosed(DensityError):
    """The live socket ended, and why: ``reason`` is one of

    - "refused": the handshake was answered with an HTTP error, or the host could not be reached;
    - "closed": the peer closed, or the TCP link dropped;
    - "silent": no valid message within the stream's silence timeout;
    - "ping timeout": a keepalive ping went unanswered.
    """

    def __init__(
        self,
        message: str = "",
        *,
        reason: str = "closed",
        status: int | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message or reason, status=status, endpoint=endpoint)
        self.reason = reason
