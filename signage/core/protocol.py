"""The kiosk protocol in one place: how a message is encoded, and the close codes a kiosk acts on.

docs/protocol.md describes the messages; every module that sends one to a kiosk encodes it with
`dumps` here, so the bytes on the wire have one definition.
"""

from __future__ import annotations

import json
from typing import Any

# Close codes a kiosk can act on (docs/protocol.md).
CLOSE_RESTART = 1012  # server restarting: come back (after a jittered delay)
CLOSE_POLICY = 1008  # sent too much, too fast
CLOSE_TOO_SLOW = 4001  # outbox overflowed: reconnect and take a fresh snapshot
CLOSE_STALLED = 4002  # data stayed unsent longer than the send timeout
CLOSE_RELOAD = 4003  # the display's configuration changed: reconnect for a new snapshot
CLOSE_UNAUTHORIZED = 4401  # unknown or revoked credential: back to pairing


def dumps(message: dict[str, Any]) -> str:
    """A protocol message as compact JSON text (no spaces: a floor's state goes to every kiosk)."""
    return json.dumps(message, separators=(",", ":"))
