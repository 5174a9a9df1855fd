"""Pairing codes are shared fairly between addresses: a flood cannot lock new screens out."""

from __future__ import annotations

import httpx
import pytest

from signage.web import pairing
from tests import pg_server as pgs

# The store test runs on SQLite and on a real PostgreSQL (fixtures from tests/pg_server.py).
any_store, pg_server, pg_url = pgs.any_store, pgs.pg_server, pgs.pg_url


def _screen(server, address: str) -> httpx.Client:
    """A screen behind `address` (the proxy's X-Forwarded-For), with its own cookie jar."""
    return httpx.Client(base_url=server.url, headers={"X-Forwarded-For": address}, timeout=10)


@pytest.fixture
def proxied(make_server):
    return make_server(SIGNAGE_PROXY_COUNT=1)


def test_a_flood_from_many_addresses_leaves_room_for_a_new_screen(proxied, monkeypatch):
    # The review's flood, scaled down with the pool: 102 addresses x 21 cookie-less /pair calls
    # filled 2000 codes and every new screen got 503 for ten minutes.
    monkeypatch.setattr(pairing, "MAX_PENDING", 200)
    waiting = _screen(proxied, "192.0.2.50")
    assert waiting.get("/pair").status_code == 200
    addresses = [f"198.51.100.{i}" for i in range(1, 13)]
    statuses = []
    for address in addresses:
        with httpx.Client(base_url=proxied.url, timeout=10) as flood:
            for _ in range(21):  # no cookie kept: a new code each time
                statuses.append(
                    flood.get("/pair", headers={"X-Forwarded-For": address}).status_code
                )
                flood.cookies.clear()
    newcomer = _screen(proxied, "203.0.113.77")
    response = newcomer.get("/pair")
    assert response.status_code == 200, (response.status_code, statuses.count(503))
    assert statuses.count(200) > 200  # the flood did reach the pool's size, and was served
    assert proxied.svc.store.pending_pairing_count(_now()) <= 200
    assert newcomer.get("/pair/status").json()["state"] == "waiting"
    # The screen that was already waiting kept its code: codes went from the greediest address.
    assert waiting.get("/pair/status").json()["state"] == "waiting"


def test_an_address_replaces_its_own_oldest_code_instead_of_growing(proxied, monkeypatch):
    monkeypatch.setattr(pairing, "PENDING_PER_ADDRESS", 5)
    screens = [_screen(proxied, "198.51.100.1") for _ in range(8)]
    for screen in screens:
        assert screen.get("/pair").status_code == 200
    states = [s.get("/pair/status").json()["state"] for s in screens]
    # The three oldest codes made room; the five newest wait.
    assert states[3:] == ["waiting"] * 5
    assert "waiting" not in states[:3]
    assert proxied.svc.store.pending_pairing_count(_now()) == 5
    # Another address is not affected by this one's cap.
    other = _screen(proxied, "198.51.100.2")
    assert other.get("/pair").status_code == 200
    assert other.get("/pair/status").json()["state"] == "waiting"


def test_a_building_behind_one_nat_can_pair_many_screens_at_once(proxied):
    screens = [_screen(proxied, "198.51.100.9") for _ in range(40)]
    for screen in screens:
        assert screen.get("/pair").status_code == 200
    assert all(s.get("/pair/status").json()["state"] == "waiting" for s in screens)


def _now() -> float:
    import time

    return time.time()


def test_the_pool_is_kept_fair_on_both_backends(any_store):
    now = _now()
    for i in range(6):
        any_store.add_pairing_code(f"GREEDY{i:02d}", f"g{i}" * 20, now + i, 600, "198.51.100.1")
    any_store.add_pairing_code("LONELY22", "l" * 40, now, 600, "203.0.113.5")
    # The pool holds 7 of 7: the greedy address loses its two oldest codes, the lone one none.
    any_store.make_room_for_pairing("192.0.2.9", now + 10, per_address=50, total=6)
    assert any_store.pending_pairing_count(now + 10) == 5
    assert any_store.pairing_by_secret("l" * 40) is not None
    assert any_store.pairing_by_secret("g0" * 20) is None
    assert any_store.pairing_by_secret("g1" * 20) is None
    assert any_store.pairing_by_secret("g2" * 20) is not None
    # Its own cap: an address holding 4 of 3 keeps its 2 newest before its next code.
    any_store.make_room_for_pairing("198.51.100.1", now + 10, per_address=3, total=100)
    assert [any_store.pairing_by_secret(f"g{i}" * 20) is not None for i in range(2, 6)] == [
        False,
        False,
        True,
        True,
    ]


def test_among_addresses_holding_as_many_the_oldest_code_goes(any_store):
    # The review: a flood of one-code addresses filled the pool, and one more flood request
    # took the code of the new screen that came after it (a tie picked arbitrarily).
    now = _now()
    for i in range(5):
        any_store.add_pairing_code(f"FLOOD{i:03d}", f"f{i}" * 20, now + i, 600, f"fd00:{i}::/64")
    any_store.add_pairing_code("SCREEN22", "s" * 40, now + 10, 600, "0.0.0.9")
    for n in range(5):  # each flood request makes room for itself
        any_store.make_room_for_pairing(f"fd00:{n + 100}::/64", now + 11, per_address=3, total=6)
        any_store.add_pairing_code(
            f"FLOOD{n + 100}", f"n{n}" * 20, now + 11, 600, f"fd00:{n + 100}::/64"
        )
        assert any_store.pairing_by_secret("s" * 40) is not None, n
    assert any_store.pairing_by_secret("f0" * 20) is None
