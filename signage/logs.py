"""Logging: one line per event, as text or JSON, with every secret masked on the way out.

Kiosk and phone URLs carry display credentials, tokens and secrets can appear in a library's
message: the filter sits on the handlers, so it covers every logger, access logs included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO

_PATTERNS = (
    # /kiosk/12.<mac>, /ws/kiosk/12.<mac>, /api/kiosk/12.<mac>/state, /phone/12.<mac>
    (re.compile(r"((?:kiosk|phone)/\d+\.)[0-9a-f]{6,}"), r"\1***"),
    # The same credentials anywhere else (a cookie, a header): "<id>.<32 hex digits>".
    (re.compile(r"\b(\d+\.)[0-9a-f]{32}\b"), r"\1***"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+"), r"\1***"),
    (re.compile(r"\btok_[A-Za-z0-9_\-]{4,}"), "tok_***"),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*"), "eyJ***"),
    (re.compile(r"(client_secret[=\"':\s]+)[^&\s\"',}]+"), r"\1***"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask credentials, tokens and the given secret values in a text."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with secrets masked (never drops a record)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, self.secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                plain = value is None or isinstance(value, str | int | float | bool)
                entry[key] = value if plain else str(value)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


def configure(
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every logger to one handler (stderr by default) with secrets masked."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO: noise, and URLs are none of its business here.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


def protect_handlers(logger_names: Iterable[str], secrets: Iterable[str] = ()) -> None:
    """Add the redacting filter to loggers that keep handlers of their own (gunicorn's)."""
    redactor = RedactingFilter(secrets)
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(redactor)
