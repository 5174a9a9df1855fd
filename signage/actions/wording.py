"""Failures in plain words for the console: what an admin reads first.

A floor feed's reason and a calendar's error are written for logs and programs ("Unavailable:
POST ws_floor_presence: timed out (ReadTimeout)"); the console shows the sentence this module
gives and keeps the technical text in a title attribute (the JSON API keeps it as it is).
Neither carries a secret: the Density client and the calendar fetchers redact theirs.
"""

from __future__ import annotations

__all__ = ["calendar_problem", "counted", "feed_problem"]

# A feed's reason starts with the Density error's class (core/channel.py writes
# "<class>: <message>"); the message says timeout or transport error for Unavailable.
_FEED_BY_CLASS = {
    "AuthError": "Density refused our credentials",
    "RateLimited": "Density asked us to slow down",
    "BadRequest": "Density refused the request",
    "NotFound": "Density does not know this floor",
    "BadResponse": "Density sent an answer we could not read",
    "MalformedFrame": "Density sent an answer we could not read",
    "StreamClosed": "Density closed the live connection",
}
_FEED_WORDS = {
    "starting": "Starting",
    "unreachable": "No answer from Density",
}

# A calendar's error is "<reason>: <message>" (signage/calendars/errors.py's reason words).
_CALENDAR = {
    "unreachable": "Could not connect to the calendar server",
    "timeout": "The calendar server did not answer in time",
    "too_large": "The calendar is too large",
    "http_status": "The calendar server answered with an error",
    "malformed": "The link does not give a calendar",
    "unauthorized": "The calendar server refused the user name or password",
    "bad_url": "The calendar's address is not valid",
}


def feed_problem(reason: str | None) -> str:
    """A floor feed's reason for not being live, as an admin reads it ("" for none)."""
    if not reason:
        return ""
    if reason in _FEED_WORDS:
        return _FEED_WORDS[reason]
    kind, _, message = reason.partition(": ")
    if "timed out" in message or "Timeout" in kind:
        return "Density did not answer in time"
    if "transport error" in message or kind in ("ConnectError", "OSError"):
        return "Could not connect to Density"
    if kind in _FEED_BY_CLASS:
        return _FEED_BY_CLASS[kind]
    return "Density's live connection failed"


def calendar_problem(error: str | None) -> str:
    """A room calendar's last error, as an admin reads it ("" for none)."""
    if not error:
        return ""
    reason = error.partition(":")[0].strip()
    return _CALENDAR.get(reason, "The calendar could not be read")


def counted(n: int, word: str, plural: str | None = None) -> str:
    """ "1 credential", "2 credentials", "0 screens": a number with its noun, not "(s)"."""
    return f"{n} {word if n == 1 else plural or word + 's'}"
