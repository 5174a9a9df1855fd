"""Errors the core raises to the web layer, so views catch them without importing Density."""

from __future__ import annotations


class CoreError(Exception):
    """Base class of the errors signage.core raises to its callers."""


class FeedUnavailable(CoreError):
    """A floor's feed or the space directory could not be reached or built (Density is away).

    Raised `from` the Density error that caused it; the message is safe to show an admin (it
    names the failure, never a token).
    """
