"""Preview credentials: the console sees what a display's screens show without being a screen.

Real server (on a fake clock that runs along with real time until a test jumps it past the
preview's ten minutes), real socket client, the simulator over loopback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from signage.actions import preview
from signage.actions.displays import phone_url as phone_link
from signage.core.clock import FakeClock
from signage.core.protocol import CLOSE_EXPIRED
from signage.web import auth
from tests.admin_helpers import Console, make_admin
from tests.clocks import clocked_server
from tests.helpers import ServerThread

CLOSE_TOO_MANY = 4429


class RunningClock(FakeClock):
    """A fake clock that moves along with real time (so feeds and sockets run as usual) and
    that a test can jump forward (past a preview's end) in one step."""

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.advance(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def clocked(sim, tmp_path, monkeypatch) -> Iterator[tuple[ServerThread, RunningClock]]:
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    clock = RunningClock()
    server = clocked_server(sim, tmp_path, clock, SIGNAGE_KIOSK_MAX_PER_ADDRESS=2)
    try:
        yield server, clock
    finally:
        server.stop()
        clock.stop()


def _issue(server: ServerThread, display) -> str:
    svc = server.svc
    return preview.issue(
        svc.config["SIGNAGE_SECRET_KEY"], display, svc.feeds.clock.time()
    ).credential


def _open(url: str, stack: ExitStack) -> ClientConnection:
    ws = stack.enter_context(connect(url, open_timeout=10))
    assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
    return ws


def _close_code(ws: ClientConnection, timeout: float = 10.0) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=timeout)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


def test_a_preview_opens_page_state_and_socket_and_ends_with_its_time(clocked):
    server, clock = clocked
    floor = server.svc.directory.floors()[0].id
    display, real = server.add_display(floor, name="Lobby north")
    credential = _issue(server, display)
    assert credential != real and real not in credential
    assert server.svc.store.display_for_credential(credential) is None  # never a pairing one

    with httpx.Client(base_url=server.url, timeout=10) as http, ExitStack() as stack:
        page = http.get(f"/kiosk/{credential}")
        assert page.status_code == 200 and "Lobby north" in page.text
        assert "signage_display" not in page.headers.get("set-cookie", "")  # no "paired" cookie
        assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "SAMEORIGIN"
        real_page = http.get(f"/kiosk/{real}")
        assert "frame-ancestors 'none'" in real_page.headers["content-security-policy"]
        state = http.get(f"/api/kiosk/{credential}/state")
        assert state.status_code == 200 and state.json()["display"]["name"] == "Lobby north"

        ws = _open(server.socket_url(credential), stack)
        clock.advance(preview.TTL_S - 60)  # nine minutes on: still open
        ws.send(json.dumps({"type": "resync"}))
        assert json.loads(ws.recv(timeout=10))["type"]  # still served

        clock.advance(61)  # past its ten minutes
        assert _close_code(ws) == CLOSE_EXPIRED
        assert http.get(f"/kiosk/{credential}").status_code == 410
        assert http.get(f"/api/kiosk/{credential}/state").status_code == 410
        with connect(server.socket_url(credential), open_timeout=10) as again:
            assert _close_code(again) == CLOSE_EXPIRED
        # The display's own credential is untouched by all of it.
        assert http.get(f"/api/kiosk/{real}/state").status_code == 200


def test_a_forged_or_foreign_preview_is_refused(clocked):
    server, _clock = clocked
    floor = server.svc.directory.floors()[0].id
    display, _ = server.add_display(floor, name="A")
    other, _ = server.add_display(floor, name="B")
    credential = _issue(server, display)
    head, expires, mac = credential.split(".")
    forged = [
        f"p{other.id}.{expires}.{mac}",  # another display, same signature
        f"{head}.{int(expires) + 3600}.{mac}",  # a later end, same signature
        f"{head}.{expires}.{'0' * 32}",
        credential[1:],  # without the p: not a kiosk credential either
    ]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for bad in forged:
            assert http.get(f"/api/kiosk/{bad}/state").status_code == 404, bad
        with connect(server.socket_url(forged[0]), open_timeout=10) as ws:
            assert _close_code(ws) == 4401


def test_a_preview_is_no_screen_and_changes_nothing(clocked):
    server, clock = clocked
    svc = server.svc
    floor = svc.directory.floors()[0].id
    display, _ = server.add_display(floor, name="Never installed")
    credential = _issue(server, display)
    make_admin(svc)
    console = Console(server.app)
    assert console.login().status_code == 302
    with ExitStack() as stack:
        ws = _open(server.socket_url(credential), stack)
        ws.send(json.dumps({"type": "hello", "screen": "1x1", "version": "forged"}))
        ws.send(json.dumps({"type": "heartbeat", "uptime_s": 5, "screen": "1x1", "heap": 1}))
        ws.send(json.dumps({"type": "resync"}))  # answered after the two before it were read
        while json.loads(ws.recv(timeout=10))["type"] != "snapshot":
            pass
        subs = svc.hub.subscribers()
        assert len(subs) == 1 and subs[0].preview and subs[0].info == {}
        assert svc.hub.screens() == []
        # /metrics counts kiosk sockets of screens: a console watching is none.
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        assert f'signage_kiosks_connected{{floor="{floor}"}}' not in metrics
        # Fleet health, the API, the console list and the alert watcher see no screen.
        report = console.api("GET", "/api/admin/fleet").get_json()
        row = next(d for d in report["displays"] if d["id"] == display.id)
        assert row["state"] == "not_installed" and row["screens"] == [] and row["connected"] == 0
        listed = console.api("GET", "/api/admin/displays").get_json()["displays"]
        assert next(d for d in listed if d["id"] == display.id)["connected"] == 0
        svc.alerts.check()
        assert display.id not in svc.store.first_screens()
        clock.advance(svc.config["SIGNAGE_ALERT_AFTER"] * 60 + 60)  # long past "down" alerts
        # (The jump makes the floors' feeds look silent: only a display alert would be ours.)
        assert [r for r in svc.alerts.check() if r["kind"] == "display"] == []
        # A command is not counted as reaching a screen.
        assert svc.hub.command(display.id, json.dumps({"type": "identify"})) == 0
        # The preview cannot pair, post, or reach the console or the admin API.
        with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as http:
            assert http.get("/", cookies={"signage_display": credential}).status_code == 302
            assert (
                http.get("/", cookies={"signage_display": credential})
                .headers["location"]
                .endswith("/pair")
            )
            assert http.get(f"/admin/displays/{display.id}").status_code == 302  # sign-in
            headers = {"Authorization": f"Bearer {credential}"}
            assert http.get("/api/admin/displays", headers=headers).status_code == 401
            assert http.post(f"/api/admin/displays/{display.id}/reload").status_code in (401, 403)
    assert svc.store.get_display(display.id).settings == display.settings


def test_previews_are_outside_the_address_cap(clocked):
    server, _clock = clocked  # SIGNAGE_KIOSK_MAX_PER_ADDRESS=2
    floor = server.svc.directory.floors()[0].id
    displays = [server.add_display(floor, name=f"D{i}") for i in range(3)]
    with ExitStack() as stack:
        _open(server.socket_url(displays[0][1]), stack)
        _open(server.socket_url(displays[1][1]), stack)
        with connect(server.socket_url(displays[2][1]), open_timeout=10) as refused:
            assert _close_code(refused) == CLOSE_TOO_MANY  # the address holds its two
        for display, _ in displays:  # every preview still opens, from the same address
            _open(server.socket_url(_issue(server, display)), stack)
            _open(server.socket_url(_issue(server, display)), stack)
        assert len(server.svc.hub.subscribers()) == 8 and len(server.svc.hub.screens()) == 2


def test_the_console_issues_previews_to_any_signed_in_account(server):
    make_admin(server.svc, "vera", role="viewer")  # read-only people may preview too
    console = Console(server.app)
    assert console.login("vera").status_code == 302
    floor = server.svc.directory.floors()[0].id
    display, real = server.add_display(floor, name="Lobby")
    answer = console.get(f"/admin/displays/{display.id}/preview")
    assert answer.status_code == 302
    location = answer.headers["Location"]
    credential = location.rsplit("/", 1)[1]
    assert location.startswith("/kiosk/p") and real not in location
    assert server.svc.store.get_display(display.id) == display  # nothing written
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get(f"/api/kiosk/{credential}/state").status_code == 200
    anonymous = server.app.test_client().get(f"/admin/displays/{display.id}/preview")
    assert anonymous.status_code == 302 and "/admin/login" in anonymous.headers["Location"]


def test_the_api_issues_a_preview_a_read_only_token_may_ask_for(clocked):
    """GET /api/admin/displays/{id}/preview over the real server: its URL opens the kiosk page
    and its phone view, it is never a screen, and both links end with its ten minutes."""
    server, clock = clocked
    svc = server.svc
    floor = svc.directory.floors()[0].id
    display, real = server.add_display(floor, name="Lobby north")
    token = auth.new_api_token()
    svc.store.add_api_token("wall dashboard", auth.token_hash(token), "viewer")
    with httpx.Client(
        base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        answer = http.get(f"/api/admin/displays/{display.id}/preview")
        assert answer.status_code == 200, answer.text
        issued = answer.json()
        assert set(issued) == {"display_id", "url", "phone_url", "expires_at"}
        assert http.post(f"/api/admin/displays/{display.id}/preview").status_code == 405
        assert http.get("/api/admin/displays/999999/preview").status_code == 404
    assert issued["display_id"] == display.id
    url, phone = issued["url"], issued["phone_url"]
    assert url.startswith(f"{svc.public_url()}/kiosk/p") and real not in url
    assert phone == f"{svc.public_url()}/phone/{url.rsplit('/', 1)[1]}"
    credential = url.rsplit("/", 1)[1]
    assert phone_link(svc, display) != phone  # never the display's revocable phone link
    ends = datetime.fromisoformat(issued["expires_at"].replace("Z", "+00:00")).timestamp()
    assert ends == pytest.approx(clock.time() + preview.TTL_S, abs=5)
    path = url.removeprefix(svc.public_url())
    phone_path = phone.removeprefix(svc.public_url())

    with httpx.Client(base_url=server.url, timeout=10) as http, ExitStack() as stack:
        page = http.get(path)
        assert page.status_code == 200 and "Lobby north" in page.text
        assert "signage_display" not in page.headers.get("set-cookie", "")
        phone_page = http.get(phone_path)
        assert phone_page.status_code == 200 and "Lobby north" in phone_page.text
        assert http.get(f"/api/phone/{credential}/state").status_code == 200
        _open(server.socket_url(credential), stack)
        assert len(svc.hub.subscribers()) == 1 and svc.hub.screens() == []  # never a screen
        svc.alerts.check()
        assert display.id not in svc.store.first_screens()
        clock.advance(preview.TTL_S + 1)  # past its ten minutes: both links end
        assert http.get(path).status_code == 410
        assert http.get(phone_path).status_code == 410
        assert http.get(f"/api/phone/{credential}/state").status_code == 410
    # With its QR code off, a display has no phone view to preview either.
    svc.store.update_display_settings(display.id, {**display.settings, "qr": False})
    make_admin(svc)
    console = Console(server.app)
    assert console.login().status_code == 302
    quiet = console.api("GET", f"/api/admin/displays/{display.id}/preview").get_json()
    assert quiet["phone_url"] is None
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get(f"/phone/{quiet['url'].rsplit('/', 1)[1]}").status_code == 404
