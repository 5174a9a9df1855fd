"""The "down for N minutes" alert: a real webhook receiver on loopback, real kiosk sockets, the
simulator's fault controls for a floor feed, and the webhook URL kept out of every log line."""

from __future__ import annotations

import json
import logging
import socket
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from websockets.sync.client import connect

from signage import config as settings
from signage.actions.alerts import AlertWatcher
from signage.store.screens import STAMP_S, ScreenSightings
from tests import pg_server as pgs
from tests.admin_helpers import Console, make_admin
from tests.clocks import clocked_server
from tests.helpers import free_port, wait_until
from tests.test_preview import RunningClock

any_store, pg_server, pg_url = pgs.any_store, pgs.pg_server, pgs.pg_url
CANARY = "hook-s3cr3t-7f1c2a9e"  # the webhook's secret path: must never reach a log line


class Receiver:
    """A webhook receiver in a thread on port 0: records each POST, answers from `statuses`."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.paths.append(self.path)
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                if status < 300:
                    receiver.posts.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass  # the stdlib server would print the secret path to stderr

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{CANARY}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self, kind: str | None = None) -> list[tuple[str, str, str]]:
        return [(p["event"], p["kind"], p["id"]) for p in self.posts if kind in (None, p["kind"])]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def fast_alerts(receiver: Receiver, after_s: float) -> dict[str, Any]:
    """Settings for a server whose watcher looks 5 times a second (SIGNAGE_ALERT_AFTER is in
    minutes and takes fractions)."""
    return {
        "SIGNAGE_ALERT_WEBHOOK": receiver.url,
        "SIGNAGE_ALERT_AFTER": after_s / 60,
        "SIGNAGE_ALERT_INTERVAL": 0.2,
    }


def checks_after(watcher: AlertWatcher, n: int) -> None:
    """Wait until the watcher has looked `n` more times."""
    target = watcher.checks + n
    wait_until(lambda: watcher.checks >= target, timeout=10, message=f"{n} more checks")


def test_a_display_that_disconnects_and_returns_gets_one_down_and_one_recovered(
    make_server, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    server = make_server(**fast_alerts(receiver, after_s=1.0))
    floor = server.svc.directory.floors()[0].id
    display, cred = server.add_display(floor, name="Lobby west")
    watcher = server.svc.alerts
    assert server.svc.store.first_screens() == {}  # not installed until a screen connects
    with connect(server.socket_url(cred), open_timeout=5) as ws:  # starts the watcher too
        ws.recv(timeout=5)
        checks_after(watcher, 8)  # connected through more than the threshold: no alert
        assert receiver.posts == []
        assert display.id in server.svc.store.first_screens()  # installed, kept in the store
    wait_until(lambda: receiver.posts, timeout=10, message="down report")
    (down,) = receiver.posts
    assert down["event"] == "down" and down["kind"] == "display"
    assert down["id"] == str(display.id) and down["name"] == "Lobby west"
    assert down["minutes"] == 0 and down["since"].endswith("Z")
    assert receiver.paths == [f"/{CANARY}"]

    # The fleet page says how long, and puts the down display first.
    make_admin(server.svc)
    console = Console(server.app)
    console.login()
    page = console.get("/admin/fleet").get_data(as_text=True)
    assert "Down</span>" in page and "for under 1 min" in page and "alert sent" in page
    fleet = console.api("GET", "/api/admin/fleet").json
    assert fleet["displays"][0]["id"] == display.id and fleet["displays"][0]["down_s"] >= 1

    checks_after(watcher, 8)  # still down, looked at again and again: nothing more is sent
    assert len(receiver.posts) == 1
    with connect(server.socket_url(cred), open_timeout=5) as ws:
        ws.recv(timeout=5)
        wait_until(lambda: len(receiver.posts) == 2, timeout=10, message="recovered report")
        checks_after(watcher, 5)
        assert watcher.down_for("display", display.id) is None
    assert receiver.events() == [
        ("down", "display", str(display.id)),
        ("recovered", "display", str(display.id)),
    ]
    assert receiver.posts[1]["since"] == down["since"]
    assert watcher.failed == 0 and watcher.sent == 2
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "display" in logged and "down" in logged  # the watcher did log its reports
    assert CANARY not in logged and receiver.url not in logged


def test_a_floor_feed_held_down_by_the_simulator_is_reported_once_each_way(
    sim, make_server, receiver, caplog
):
    caplog.set_level(logging.DEBUG)
    server = make_server(**fast_alerts(receiver, after_s=1.5))
    floor = server.svc.directory.floors()[0].id
    _, cred = server.add_display(floor)
    watcher = server.svc.alerts
    with connect(server.socket_url(cred), open_timeout=5) as ws:  # keeps the display up
        ws.recv(timeout=5)
        feed = server.svc.feeds.get(floor)
        wait_until(lambda: feed.status()["mode"] == "live", timeout=10, message="feed live")
        checks_after(watcher, 3)
        # A slow start on a busy machine may have been reported already: it must then have
        # recovered, and it is not counted below.
        before = receiver.events("feed")
        assert before in ([], [("down", "feed", floor), ("recovered", "feed", floor)])

        sim.world.set_socket_mode("refuse")
        sim.world.drop_sockets(floor)
        wait_until(lambda: feed.status()["mode"] != "live", timeout=10, message="feed down")
        wait_until(
            lambda: len(receiver.events("feed")) == len(before) + 1, timeout=10, message="down"
        )
        checks_after(watcher, 8)  # held down: no second report
        assert receiver.events("feed")[len(before) :] == [("down", "feed", floor)]

        sim.world.set_socket_mode("normal")
        wait_until(lambda: feed.status()["mode"] == "live", timeout=15, message="feed back")
        wait_until(
            lambda: len(receiver.events("feed")) == len(before) + 2, timeout=10, message="back"
        )
        checks_after(watcher, 5)
        # Read while the kiosk is still connected: closing its socket may take longer than
        # `after_s` on a busy machine, and the display is then rightly reported down.
        assert receiver.events("display") == []  # the kiosk stayed connected throughout
    assert receiver.events("feed")[len(before) :] == [
        ("down", "feed", floor),
        ("recovered", "feed", floor),
    ]
    report = [p for p in receiver.posts if p["kind"] == "feed"][-1]
    assert report["name"] and report["minutes"] == 0
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert CANARY not in logged


def test_failed_deliveries_are_retried_and_logged_without_the_url(server, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    floor = server.svc.directory.floors()[0].id
    display = server.svc.store.add_display("Lobby", floor)
    server.svc.store.mark_first_screen(display.id, 0.0)  # installed once: it may be down
    receiver.statuses = [500, 503]  # then 204
    watcher = AlertWatcher(
        server.svc.store,
        server.svc.hub,
        server.svc.feeds,
        webhook=receiver.url,
        after=0.0,
        interval=3600,  # no looks of its own: the test looks
        backoff=(0.05, 0.1),
    )
    try:
        watcher.ensure_started()
        reports = watcher.check()
        assert [(r["event"], r["kind"], r["id"]) for r in reports] == [
            ("down", "display", str(display.id))
        ]
        wait_until(lambda: watcher.sent == 1, timeout=5, message="delivered on the third try")
        assert len(receiver.paths) == 3 and receiver.events() == [
            ("down", "display", str(display.id))
        ]
        assert watcher.check() == []  # already reported
    finally:
        watcher.stop()

    # Nobody listening: the failure is logged with its cause, never with the URL.
    dead = f"http://127.0.0.1:{free_port()}/{CANARY}"
    watcher = AlertWatcher(
        server.svc.store,
        server.svc.hub,
        server.svc.feeds,
        webhook=dead,
        after=0.0,
        interval=3600,
        backoff=(0.05, 0.05),
    )
    try:
        watcher.ensure_started()
        assert watcher.check()
        wait_until(lambda: watcher.failed == 1, timeout=10, message="given up")
    finally:
        watcher.stop()
    failures = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert failures and "ConnectError" in failures[-1]
    logged = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert CANARY not in logged and dead not in logged


def test_a_hanging_receiver_blocks_no_check(server, caplog):
    """A receiver that accepts and never answers holds only the sender thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # never accepted: connects succeed, answers never come
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/{CANARY}"
    floor = server.svc.directory.floors()[0].id
    server.svc.store.mark_first_screen(server.svc.store.add_display("A", floor).id, 0.0)
    watcher = AlertWatcher(
        server.svc.store, server.svc.hub, server.svc.feeds, webhook=url, after=0.0, interval=0.05
    )
    try:
        watcher.ensure_started()
        wait_until(lambda: watcher.checks >= 1 and watcher.reported("display", 1), timeout=5)
        server.svc.store.mark_first_screen(server.svc.store.add_display("B", floor).id, 0.0)
        # The sender is waiting on the silent receiver (5 s timeout); looks go on meanwhile.
        checks_after(watcher, 10)
        assert watcher.reported("display", 2) and watcher.sent == 0
    finally:
        listener.close()  # resets the connection the sender waits on
        watcher.stop()


def test_the_webhook_is_a_secret_setting():
    values = settings.load("/nonexistent", environ={"SIGNAGE_ALERT_WEBHOOK": "https://h/x/tok"})
    assert "https://h/x/tok" in settings.secret_values(values)
    assert values["SIGNAGE_ALERT_AFTER"] == 10.0 and values["SIGNAGE_ALERT_INTERVAL"] == 15.0


def test_a_served_worker_watches_before_any_request_reaches_it(sim, receiver, tmp_path):
    """Under `signage serve`, the watcher starts with the worker: a server that no screen has
    reached yet (all of them down) still reports its displays."""
    import subprocess

    from tests.conftest import server_config
    from tests.helpers import ServeProcess

    config = server_config(sim, tmp_path, **fast_alerts(receiver, after_s=1.0))
    env = {k: str(v) for k, v in config.items()}
    env["SIGNAGE_CONFIG"] = str(tmp_path / "none.toml")
    serve = ServeProcess(env)
    floor = sim.world.state()["floors"]
    added = json.loads(serve.cli("displays", "add", "--name", "Atrium", "--floor", sorted(floor)[0],
                                 "--json"))  # fmt: skip
    # Its screen ran before this restart (kept in the store), so it is down, not uninstalled.
    from signage.store import Store

    kept = Store(config["SIGNAGE_DATABASE"], "unused")
    kept.mark_first_screen(added["id"], 0.0)
    kept.close()
    proc = subprocess.Popen(
        [*serve.args, "--port", str(serve.port)],
        env=serve.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # no request is ever sent to this server
        wait_until(
            lambda: ("down", "display", str(added["id"])) in receiver.events("display"),
            timeout=30,
            message="the never-seen display reported down",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_never_paired_display_fires_no_alert_and_a_restart_keeps_one_that_had_a_screen(
    make_server, receiver
):
    server = make_server(**fast_alerts(receiver, after_s=0.5))
    floor = server.svc.directory.floors()[0].id
    boxed, _ = server.add_display(floor, name="Still in its box")
    display, cred = server.add_display(floor, name="Lobby")
    with connect(server.socket_url(cred), open_timeout=5) as ws:  # its first screen
        ws.recv(timeout=5)
        checks_after(server.svc.alerts, 3)
    assert set(server.svc.store.first_screens()) == {display.id}
    # A restart: a new watcher on the same store, whose screens are all gone now.
    watcher = AlertWatcher(
        server.svc.store,
        server.svc.hub,
        server.svc.feeds,
        webhook=receiver.url,
        after=0.5,
        interval=0.05,
    )
    try:
        watcher.ensure_started()
        wait_until(lambda: watcher.reported("display", display.id), timeout=10, message="down")
        checks_after(watcher, 10)  # long past the threshold
        assert not watcher.reported("display", boxed.id)
        assert watcher.down_for("display", boxed.id) is None
    finally:
        watcher.stop()
    wait_until(lambda: receiver.posts, timeout=10, message="a report")
    assert str(boxed.id) not in {p["id"] for p in receiver.posts if p["kind"] == "display"}


def test_after_a_restart_fleet_health_says_how_long_a_display_has_been_down(
    sim, tmp_path, monkeypatch
):
    """The first fleet page after a restart reads "Down for 12 min" from the stored sightings,
    before the new process's watcher has looked, and still after it counts from its start."""
    monkeypatch.setenv("SIGNAGE_CONFIG", str(tmp_path / "none.toml"))
    clock = RunningClock()  # core's fake clock, running along with real time
    first = clocked_server(sim, tmp_path, clock, SIGNAGE_ALERT_INTERVAL=0.05)
    try:
        floor = first.svc.directory.floors()[0].id
        display, cred = first.add_display(floor, name="Lobby")
        with connect(first.socket_url(cred), open_timeout=10) as ws:
            ws.recv(timeout=10)
            first.svc.alerts.ensure_started()
            wait_until(
                lambda: display.id in ScreenSightings(first.svc.store).last_seen(),
                timeout=10,
                message="the screen's sighting stored",
            )
        seen_at = ScreenSightings(first.svc.store).last_seen()[display.id]
    finally:
        first.stop()
    clock.advance(12 * 60)  # the screen stays dark; the server restarts twelve minutes on
    # A watcher that has not looked yet (its first look is an hour away).
    second = clocked_server(sim, tmp_path, clock, SIGNAGE_ALERT_INTERVAL=3600)
    try:
        svc = second.svc
        make_admin(svc)
        console = Console(second.app)
        assert console.login().status_code == 302

        def row() -> dict[str, Any]:
            report = console.api("GET", "/api/admin/fleet").get_json()
            return next(d for d in report["displays"] if d["id"] == display.id)

        def shown() -> str:
            page = console.get("/admin/fleet").get_data(as_text=True)
            start = page.index(f'data-display-id="{display.id}"')
            return page[start : page.index("</tr>", start)]

        assert svc.alerts.down_for("display", display.id) is None  # the watcher knows nothing
        down = row()
        assert down["state"] == "down"
        assert 12 * 60 <= down["down_s"] <= 12 * 60 + STAMP_S + 30
        zone = ZoneInfo(svc.directory.time_zone(floor) or "UTC")
        since = datetime.fromtimestamp(seen_at, zone)
        assert down["down_since_local"] in (f"{since:%H:%M}", f"{since.day} {since:%b %H:%M}")
        assert down["zone"] == (svc.directory.time_zone(floor) or "UTC")
        html = shown()
        assert ">Down</span>" in html and " for 12 min</span>" in html
        assert f"since {down['down_since_local']}" in html
        # Once the watcher looks, it counts from this process's start: the stored time stays.
        svc.alerts.check()
        assert svc.alerts.down_for("display", display.id) is not None
        assert svc.alerts.down_for("display", display.id) < 60
        assert row()["down_s"] >= 12 * 60
    finally:
        second.stop()
        clock.stop()


def test_sightings_are_stamped_at_most_once_a_minute_on_both_backends(any_store):
    sightings = ScreenSightings(any_store)
    assert sightings.last_seen() == {}
    sightings.seen([3, 5], 1000.0)
    sightings.seen([3], 1000.0 + STAMP_S - 1)  # within the minute: left as it is
    assert sightings.last_seen() == {3: 1000.0, 5: 1000.0}
    sightings.seen([3, 3], 1000.0 + STAMP_S)
    sightings.seen([], 5000.0)  # nobody connected: nothing written
    assert sightings.last_seen() == {3: 1000.0 + STAMP_S, 5: 1000.0}
