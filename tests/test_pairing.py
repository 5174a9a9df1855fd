"""Pairing a screen: a short single-use code, a private secret, expiry, limits, revocation."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from signage.actions import pairing as claims
from signage.core.protocol import CLOSE_UNAUTHORIZED
from signage.web import pairing

CODE_RE = re.compile(r'id="pair-code"[^>]*>([A-Z0-9]{4}-[A-Z0-9]{4})<')


@pytest.fixture
def floor(server):
    return server.svc.directory.floors()[0].id


def open_pair_page(client, ip: str = "192.0.2.1"):
    """A screen opens /pair: returns (response, code as shown)."""
    response = client.get("/pair", environ_base={"REMOTE_ADDR": ip})
    match = CODE_RE.search(response.get_data(as_text=True))
    return response, match.group(1) if match else None


def status(client) -> dict:
    return client.get("/pair/status").json


def test_codes_are_short_unambiguous_and_carry_at_least_30_bits():
    assert claims.CODE_LENGTH * math.log2(len(claims.ALPHABET)) >= 30
    assert not set("01OIL") & set(claims.ALPHABET)
    codes = {claims.new_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 8 and set(c) <= set(claims.ALPHABET) for c in codes)
    assert claims.normalise_code(" abcd-efgh ") == "ABCDEFGH"


def test_pair_page_shows_a_code_and_keeps_the_secret_out_of_the_page(server):
    screen = server.app.test_client()
    response, code = open_pair_page(screen)
    assert response.status_code == 200 and code
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("signage_pair=") and "HttpOnly" in cookie and "Path=/pair" in cookie
    secret = cookie.split(";")[0].split("=", 1)[1]
    assert len(secret) >= 40 and secret not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert status(screen)["state"] == "waiting"
    # Reloading keeps the same code (no new code per refresh).
    assert open_pair_page(screen)[1] == code
    # Only the hash of the secret is stored.
    with server.svc.store.connection() as conn:
        stored = conn.execute("SELECT secret_hash FROM pairing_codes").fetchone()[0]
    assert stored != secret and len(stored) == 64


def test_a_code_works_once_and_the_screen_becomes_the_display(server, console, floor):
    display = server.svc.store.add_display("Lobby", floor)
    screen = server.app.test_client()
    _, code = open_pair_page(screen)
    claimed = console.post("/admin/pair", {"code": code.lower(), "display_id": str(display.id)})
    assert claimed.status_code == 302
    answer = status(screen)
    assert answer["state"] == "paired"
    credential = server.svc.store.credential(display)
    assert answer["kiosk_path"] == f"/kiosk/{credential}"
    assert answer["kiosk_url"].endswith(f"/kiosk/{credential}")
    # Single use: the code cannot be claimed again, for this display or another.
    other = server.svc.store.add_display("Other", floor)
    again = console.post("/admin/pair", {"code": code, "display_id": str(other.id)})
    assert again.status_code == 400 and "No screen shows that code" in again.get_data(as_text=True)
    # The credential was handed over once; the secret is spent.
    assert status(screen)["state"] == "unknown"


def test_an_expired_code_cannot_be_claimed(server, console, floor):
    display = server.svc.store.add_display("Lobby", floor)
    screen = server.app.test_client()
    _, code = open_pair_page(screen)
    with server.svc.store.transaction() as conn:
        conn.execute("UPDATE pairing_codes SET expires_at = ?", (time.time() - 1,))
    assert status(screen)["state"] == "expired"
    refused = console.post("/admin/pair", {"code": code, "display_id": str(display.id)})
    assert refused.status_code == 400
    # The screen's reload brings a fresh code.
    assert open_pair_page(screen)[1] not in (None, code)


def test_codes_expire_after_ten_minutes(server):
    screen = server.app.test_client()
    before = time.time()
    open_pair_page(screen)
    with server.svc.store.connection() as conn:
        expires_at = conn.execute("SELECT expires_at FROM pairing_codes").fetchone()[0]
    assert 599 <= expires_at - before <= 601
    assert 590 <= status(screen)["expires_in"] <= 600


def test_code_creation_is_limited_per_address(server):
    for _ in range(pairing.CREATE_PER_IP):
        response, code = open_pair_page(server.app.test_client(), ip="198.51.100.7")
        assert response.status_code == 200 and code
    limited, code = open_pair_page(server.app.test_client(), ip="198.51.100.7")
    assert limited.status_code == 429 and code is None
    assert limited.headers["Retry-After"]
    assert open_pair_page(server.app.test_client(), ip="198.51.100.8")[0].status_code == 200


def test_guessing_codes_is_limited(server, console, floor):
    display = server.svc.store.add_display("Lobby", floor)
    screen = server.app.test_client()
    _, code = open_pair_page(screen)
    wrong = "ABCD-EFGH" if code != "ABCD-EFGH" else "HGFE-DCBA"
    for _ in range(claims.CLAIM_FAILURES):
        assert (
            console.post("/admin/pair", {"code": wrong, "display_id": str(display.id)}).status_code
            == 400
        )
    # Now even the right code is refused for a while.
    limited = console.post("/admin/pair", {"code": code, "display_id": str(display.id)})
    assert limited.status_code == 429
    assert "Too many wrong codes" in limited.get_data(as_text=True)
    assert status(screen)["state"] == "waiting"


def test_the_command_line_claims_a_code(server, floor, tmp_path):
    display = server.svc.store.add_display("Lobby", floor)
    screen = server.app.test_client()
    _, code = open_pair_page(screen)
    env = {
        **os.environ,
        "SIGNAGE_CONFIG": str(tmp_path / "none.toml"),
        "SIGNAGE_DATABASE": server.svc.store.path,
        "SIGNAGE_SECRET_KEY": "test-secret-key",
    }

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "signage", "displays", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = cli("pair", code, str(display.id))
    assert done.returncode == 0, done.stderr
    assert status(screen)["state"] == "paired"
    again = cli("pair", code, str(display.id))
    assert again.returncode != 0 and "No screen shows that code" in again.stderr
    assert cli("revoke", str(display.id)).returncode == 0
    assert server.svc.store.get_display(display.id).key_generation == 2
    assert cli("remove", str(display.id)).returncode == 0
    assert server.svc.store.get_display(display.id) is None
    assert cli("remove", str(display.id)).returncode != 0


def test_revocation_reaches_an_open_kiosk_socket_within_5_seconds(server, console, floor):
    display, credential = server.add_display(floor)
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"
        started = time.monotonic()
        revoke = f"/admin/displays/{display.id}/revoke"
        assert console.post(revoke, {"confirm": "yes"}).status_code == 302
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=5)
        assert time.monotonic() - started < 5
        assert closed.value.rcvd.code == CLOSE_UNAUTHORIZED
    # The old credential opens nothing any more; the new one does.
    with connect(server.socket_url(credential), open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == CLOSE_UNAUTHORIZED
    fresh = server.svc.store.credential(server.svc.store.get_display(display.id))
    with connect(server.socket_url(fresh), open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "snapshot"


@pytest.mark.browser
def test_a_screen_in_a_browser_pairs_and_becomes_the_display(server, console, floor, page):
    display = server.svc.store.add_display("Lobby east", floor)
    page.goto(f"{server.url}/pair")
    code = page.locator("#pair-code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    assert "signage_pair" not in page.content()
    assert page.evaluate("document.cookie") == ""  # HttpOnly: the page's script cannot read it
    # The claim comes from another browser: the console (here its test client on the same app).
    assert (
        console.post("/admin/pair", {"code": code, "display_id": str(display.id)}).status_code
        == 302
    )
    page.wait_for_url(f"**/kiosk/{server.svc.store.credential(display)}", timeout=10_000)
