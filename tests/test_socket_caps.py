"""Kiosk socket caps: one credential, or one address, cannot take every socket slot."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

# The simulator answers in its own shapes and in the reference's (tests/conftest.py).

CLOSE_TOO_MANY = 4429


def _open(url: str, stack: ExitStack, forwarded_for: str | None = None) -> ClientConnection:
    """A kiosk socket that got its snapshot, kept open until the stack closes."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    ws = stack.enter_context(connect(url, open_timeout=10, additional_headers=headers))
    assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    return ws


def _refused(url: str, forwarded_for: str | None = None) -> tuple[int, str]:
    """Connect, expect a close instead of a snapshot; returns (code, reason)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    with connect(url, open_timeout=10, additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    rcvd = closed.value.rcvd
    assert rcvd is not None, "closed without a close frame"
    return rcvd.code, rcvd.reason


def test_one_credential_cannot_take_more_than_its_share_of_sockets(make_server):
    server = make_server(SIGNAGE_KIOSK_MAX_PER_DISPLAY=3, SIGNAGE_KIOSK_MAX_PER_ADDRESS=100)
    floor = server.svc.directory.floors()[0].id
    _, leaked = server.add_display(floor, name="Leaked")
    _, other = server.add_display(floor, name="Other")
    with ExitStack() as stack:
        held = [_open(server.socket_url(leaked), stack) for _ in range(3)]
        code, reason = _refused(server.socket_url(leaked))
        assert code == CLOSE_TOO_MANY and "display" in reason
        _open(server.socket_url(other), stack)  # another display is not affected
        held[0].close()
        # The slot comes back once that socket's handler has finished.
        from tests.helpers import wait_until

        wait_until(
            lambda: _try_open(server.socket_url(leaked), stack), timeout=10, message="slot freed"
        )


def _try_open(url: str, stack: ExitStack) -> bool:
    try:
        _open(url, stack)
    except ConnectionClosed:
        return False
    return True


def test_one_address_cannot_take_every_socket_but_a_building_behind_nat_can_connect(make_server):
    server = make_server(
        SIGNAGE_PROXY_COUNT=1, SIGNAGE_KIOSK_MAX_PER_DISPLAY=100, SIGNAGE_KIOSK_MAX_PER_ADDRESS=5
    )
    floor = server.svc.directory.floors()[0].id
    credentials = [server.add_display(floor, name=f"Lobby {i}")[1] for i in range(3)]
    with ExitStack() as stack:
        for i in range(5):  # one building's NAT: five screens, three displays
            _open(server.socket_url(credentials[i % 3]), stack, "198.51.100.7")
        code, reason = _refused(server.socket_url(credentials[0]), "198.51.100.7")
        assert code == CLOSE_TOO_MANY and "address" in reason
        # Another building (another address, through the same proxy) still connects.
        _open(server.socket_url(credentials[0]), stack, "203.0.113.9")


def test_the_caps_are_settings_with_defaults_for_a_building_behind_one_nat():
    from signage.config import SETTINGS_BY_NAME

    per_display = SETTINGS_BY_NAME["SIGNAGE_KIOSK_MAX_PER_DISPLAY"].default
    per_address = SETTINGS_BY_NAME["SIGNAGE_KIOSK_MAX_PER_ADDRESS"].default
    assert 10 <= per_display < SETTINGS_BY_NAME["SIGNAGE_MAX_KIOSKS"].default
    assert per_address >= 300  # a large building's screens behind one NAT address
