"""CalDAV room calendars against a real server: Radicale on a loopback port, its calendars and
events created through the `caldav` client; the sealed secrets in the store; the API, the
console's calendar page, fleet health and /metrics with a failing calendar."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from signage.calendars import (
    Busy,
    Source,
    TimedOut,
    TooLarge,
    Unauthorized,
    Unreadable,
    busy_intervals,
    fetch_source,
)
from signage.calendars.caldav import report
from signage.core.bookings import Bookings
from signage.store.calendars import CalendarSources
from tests.clocks import FakeClock
from tests.helpers import wait_until
from tests.radicale_kit import PASSWORD, USER, Radicale
from tests.test_calendars import BERLIN
from tests.test_calendars import calendar as vcalendar  # one UID per CalDAV resource

# A weekly series with an excluded and a moved instance, an all-day event, a cancelled and a
# "free" event, and one outside the window: as a calendar app would store them, one per UID.
SERIES = vcalendar(
    """UID:weekly@test
SUMMARY:Secret board meeting
ORGANIZER:mailto:ceo@example.com
DTSTART;TZID=Europe/Berlin:20260105T100000
DTEND;TZID=Europe/Berlin:20260105T110000
RRULE:FREQ=WEEKLY;COUNT=5
EXDATE;TZID=Europe/Berlin:20260112T100000""",
    """UID:weekly@test
SUMMARY:Secret board meeting (moved)
RECURRENCE-ID;TZID=Europe/Berlin:20260119T100000
DTSTART;TZID=Europe/Berlin:20260119T140000
DTEND;TZID=Europe/Berlin:20260119T150000""",
)
ALL_DAY = vcalendar("UID:allday@test\nDTSTART;VALUE=DATE:20260107\nDTEND;VALUE=DATE:20260108")
CANCELLED = vcalendar(
    "UID:cancelled@test\nSTATUS:CANCELLED\nDTSTART:20260106T090000Z\nDTEND:20260106T100000Z",
    timezone="",
)
FREE = vcalendar(
    "UID:free@test\nTRANSP:TRANSPARENT\nDTSTART:20260106T120000Z\nDTEND:20260106T130000Z",
    timezone="",
)
LATER = vcalendar("UID:later@test\nDTSTART:20260601T090000Z\nDTEND:20260601T100000Z", timezone="")
JAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


EXPECTED = (
    Busy(local(2026, 1, 5, 10), local(2026, 1, 5, 11)),
    Busy(local(2026, 1, 7), local(2026, 1, 8)),  # all day, midnight to midnight in Berlin
    # 12 January excluded (EXDATE); 19 January moved to the afternoon (RECURRENCE-ID)
    Busy(local(2026, 1, 19, 14), local(2026, 1, 19, 15)),
    Busy(local(2026, 1, 26, 10), local(2026, 1, 26, 11)),
    Busy(local(2026, 2, 2, 10), local(2026, 2, 2, 11)),
)


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radicale]:
    server = Radicale(tmp_path_factory.mktemp("radicale")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def series_url(radicale: Radicale) -> str:
    return radicale.make_calendar("Room A", SERIES, ALL_DAY, CANCELLED, FREE, LATER)


# -- the REPORT against Radicale -------------------------------------------------------------------
def test_a_caldav_calendar_expands_like_an_ics_link(series_url: str) -> None:
    with httpx.Client() as client:
        body = report(client, series_url, USER, PASSWORD, *JAN)
    assert busy_intervals(body, *JAN, zone=BERLIN) == EXPECTED
    # The window is the server's filter too: the June event is not even sent.
    assert b"later@test" not in body


def test_the_window_asked_for_is_the_window_answered(series_url: str) -> None:
    start, end = datetime(2026, 1, 18, tzinfo=UTC), datetime(2026, 1, 27, tzinfo=UTC)
    with httpx.Client() as client:
        got = fetch_source(client, Source("caldav", series_url, USER, PASSWORD), start, end)
    assert busy_intervals(got.body or b"", start, end, BERLIN) == EXPECTED[2:4]


def test_a_wrong_password_is_a_clear_error_that_names_no_secret(series_url: str) -> None:
    with httpx.Client() as client, pytest.raises(Unauthorized) as caught:
        report(client, series_url, USER, "wrong-s3cr3t", *JAN)
    text = str(caught.value) + repr(caught.value)
    assert "refused the user name or password (HTTP 401)" in text
    for secret in ("wrong-s3cr3t", series_url, "127.0.0.1"):
        assert secret not in text
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_calendar_that_is_not_there_is_a_404(radicale: Radicale) -> None:
    with httpx.Client() as client, pytest.raises(Exception) as caught:
        report(client, radicale.url + f"{USER}/no-such-calendar/", USER, PASSWORD, *JAN)
    assert "HTTP 404" in str(caught.value)


def test_the_size_limit_and_timeout_hold_for_a_report() -> None:
    huge = b'<?xml version="1.0"?><multistatus xmlns="DAV:">' + b" " * 5000 + b"</multistatus>"

    def big(request: httpx.Request) -> httpx.Response:
        assert request.method == "REPORT" and request.headers["Depth"] == "1"
        return httpx.Response(207, content=iter([huge[:2500], huge[2500:]]))

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    url = "https://dav.example/cal/s3cr3t/"
    with httpx.Client(transport=httpx.MockTransport(big)) as client, pytest.raises(TooLarge):
        report(client, url, "u", "p", *JAN, max_bytes=1000)
    with httpx.Client(transport=httpx.MockTransport(slow)) as client:
        with pytest.raises(TimedOut) as caught:
            report(client, url, "u", "p", *JAN, timeout=1)
    assert "s3cr3t" not in str(caught.value)


def test_digest_is_used_when_the_server_asks_for_it() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Authorization", "")
        seen.append(header.split(" ", 1)[0])
        if not header.startswith("Digest"):
            challenge = 'Digest realm="dav", nonce="abc", qop="auth", algorithm=MD5'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        body = '<?xml version="1.0"?><multistatus xmlns="DAV:"/>'
        return httpx.Response(207, content=body.encode())

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        body = report(client, "https://dav.example/cal/", "u", "p", *JAN)
    assert seen == ["Basic", "Digest"] or seen == ["Basic", "", "Digest"]
    assert busy_intervals(body, *JAN) == ()


# -- the worker ---------------------------------------------------------------------------
def test_the_worker_reads_a_caldav_room_and_reports_a_wrong_password(
    radicale: Radicale, series_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="signage")
    clock = FakeClock(wall=datetime(2026, 1, 4, 12, tzinfo=UTC).timestamp())
    sources = {
        "room-1": Source("caldav", series_url, USER, PASSWORD),
        "room-2": Source("caldav", series_url, USER, "wrong-s3cr3t"),
    }
    bookings = Bookings(lambda: sources, refresh=300, clock=clock, timeout=10)
    try:
        assert bookings.refresh_due() == 2
        statuses = bookings.statuses()
        assert statuses["room-1"].fresh and statuses["room-1"].error is None
        # 5 and 7 January are within the eight days ahead (and the day behind).
        assert statuses["room-1"].bookings == 2
        now = datetime.fromtimestamp(clock.time(), UTC)
        assert bookings.next_booking("room-1", now).start == local(2026, 1, 5, 10)
        assert not statuses["room-2"].fresh
        assert statuses["room-2"].error == (
            "unauthorized: the server refused the user name or password (HTTP 401)"
        )
        text = "\n".join(r.getMessage() for r in caplog.records) + repr(statuses) + repr(sources)
        for secret in ("wrong-s3cr3t", PASSWORD, series_url):
            assert secret not in text
    finally:
        bookings.stop()


# -- the store: sealed at rest, on both backends -------------------------------------------
from tests import pg_server as pgs  # noqa: E402

pg_server, pg_url, any_store = pgs.pg_server, pgs.pg_url, pgs.any_store


def _rows(store) -> str:  # type: ignore[no-untyped-def]
    with store.connection() as conn:
        return repr([dict(r) for r in conn.execute("SELECT * FROM calendar_sources").fetchall()])


def test_links_and_passwords_are_sealed_at_rest_and_bound_to_the_room(any_store) -> None:  # type: ignore[no-untyped-def]
    sources = CalendarSources(any_store)  # the store's own key: the server's secret
    sources.put("r1", "https://dav.example/s3cr3t-link/", kind="caldav", username="u",
                password="pa55-s3cr3t")  # fmt: skip
    sources.put("r2", "https://cal.example/ics-s3cr3t.ics")
    row = sources.get("r1")
    assert row is not None and row.readable and row.password == "pa55-s3cr3t"
    assert "s3cr3t" not in repr(row) and "s3cr3t" not in repr(sources.describe())
    assert sources.all() == {
        "r1": "https://dav.example/s3cr3t-link/",
        "r2": "https://cal.example/ics-s3cr3t.ics",
    }
    rows = _rows(any_store)
    assert "s3cr3t" not in rows and "v1:" in rows
    # Another server's key (a restored backup, a changed SIGNAGE_SECRET_KEY): unreadable rows,
    # which the worker reports as such, rather than garbage or a crash.
    other = CalendarSources(any_store, "another-key")
    assert [r.readable for r in other.sources().values()] == [False, False]
    assert other.describe()["r1"].username == "u"
    with httpx.Client() as client, pytest.raises(Unreadable) as caught:
        fetch_source(client, Source("unreadable"), *JAN)
    assert "set it again" in str(caught.value)
    # A seal moved to another room does not open there.
    with any_store.transaction() as conn:
        sealed = conn.execute("SELECT sealed FROM calendar_sources WHERE space_id = 'r1'")
        value = sealed.fetchone()["sealed"]
        conn.execute("UPDATE calendar_sources SET sealed = ? WHERE space_id = 'r2'", (value,))
    assert not sources.sources()["r2"].readable and sources.sources()["r1"].readable


def test_a_plain_link_from_before_is_sealed_when_first_read(any_store) -> None:  # type: ignore[no-untyped-def]
    sources = CalendarSources(any_store)
    with any_store.transaction() as conn:
        conn.execute(
            "INSERT INTO calendar_sources (space_id, url, updated_at)"
            " VALUES ('r1', 'https://cal.example/old-s3cr3t.ics', 1)"
        )
    assert sources.all() == {"r1": "https://cal.example/old-s3cr3t.ics"}
    assert "s3cr3t" not in _rows(any_store)
    assert sources.all() == {"r1": "https://cal.example/old-s3cr3t.ics"}
    assert sources.describe()["r1"].kind == "ics"


# -- the server: API, console page, fleet health, metrics ------------------------------------
def _soon(uid: str, minutes: int) -> str:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)
    return vcalendar(
        f"UID:{uid}\nSUMMARY:Private chat\nDTSTART:{start:%Y%m%dT%H%M%SZ}\n"
        f"DTEND:{start + timedelta(minutes=30):%Y%m%dT%H%M%SZ}",
        timezone="",
    )


def test_caldav_through_the_api_console_and_fleet_health(
    server, console, radicale: Radicale, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="signage")
    svc = server.svc
    floor = svc.directory.floors()[0].id
    rooms = svc.directory.rooms_of(floor)
    room, other = rooms[0].id, rooms[1].id
    url = radicale.make_calendar(f"Room {room}", _soon("soon@test", 60))
    api = f"/api/admin/rooms/{room}/calendar"
    _display, credential = server.add_display(floor)
    client = server.app.test_client()

    def kiosk_room(space_id: str) -> dict:
        state = client.get(f"/api/kiosk/{credential}/state").json or {}
        found = state.get("rooms") or {}
        found = found if isinstance(found, dict) else {r["id"]: r for r in found}
        return found.get(space_id, {})

    wait_until(lambda: kiosk_room(room).get("state") in ("free", "occupied"), timeout=20)

    # Errors name the field; nothing is saved.
    bad = console.api("PUT", api, json={"kind": "caldav", "url": url})
    assert bad.status_code == 400
    assert set(bad.json["fields"]) == {"username", "password"}
    assert console.api("PUT", api, json={"kind": "x", "url": url}).json["fields"] == {
        "kind": "choose an ICS link or a CalDAV calendar"
    }
    ok = console.api(
        "PUT", api, json={"kind": "caldav", "url": url, "username": USER, "password": PASSWORD}
    )
    assert ok.status_code == 200, ok.json
    assert ok.json["kind"] == "caldav" and ok.json["username"] == USER
    status = wait_until(lambda: (s := console.get(api).json)["last_ok"] and s, timeout=20)
    assert status["fresh"] and status["error"] is None and status["bookings"] == 1
    booked = wait_until(lambda: kiosk_room(room).get("next_booking"), timeout=20)
    assert booked.endswith("Z")

    # The console page: the room with its source; the form never shows the secrets.
    page = console.get("/admin/calendars").get_data(as_text=True)
    assert "CalDAV" in page and USER in page and url not in page and PASSWORD not in page
    form = console.get(f"/admin/calendars/{room}").get_data(as_text=True)
    assert url not in form and PASSWORD not in form and "leave this empty to keep it" in form
    for field in ("url", "username", "password"):
        assert f'<label for="{field}">' in form and f'id="{field}"' in form

    # A wrong password through the console's form (address left empty: kept).
    saved = console.post(
        f"/admin/calendars/{room}",
        data={"kind": "caldav", "url": "", "username": USER, "password": "wrong-s3cr3t"},
    )
    assert saved.status_code == 302
    assert svc.calendars.get(room).url == url  # kept, sealed
    svc.bookings.poke()

    def failing() -> dict | None:
        report = console.get("/api/admin/fleet").json
        rows = [c for c in report["calendars"] if c["space_id"] == room]
        return rows[0] if rows and rows[0]["error"] else None

    row = wait_until(failing, timeout=20)
    assert row["error"].startswith("unauthorized: the server refused the user name or password")
    assert row["problems"] and row["kind"] == "caldav"
    fleet = console.get("/admin/fleet").get_data(as_text=True)
    assert 'id="fleet-calendars"' in fleet and "refused the user name or password" in fleet
    assert "Needs attention" in fleet and url not in fleet
    only = console.get("/admin/fleet?show=calendars").get_data(as_text=True)
    assert "refused the user name or password" in only and 'id="fleet-displays"' not in only
    # The sensors lead: the room and its neighbour still have their sensors' state.
    assert kiosk_room(room).get("state") in ("free", "occupied")
    assert kiosk_room(other).get("state") in ("free", "occupied")
    spaces = console.get("/api/admin/fleet").json["spaces"]
    assert [s["health"] for s in spaces if s["space_id"] == room] == ["healthy"]

    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'signage_calendar_error{{reason="unauthorized",space_id="{room}"}} 1.0' in metrics
    assert f'signage_calendar_last_fetch_timestamp_seconds{{space_id="{room}"}}' in metrics
    assert f'signage_floor_booked_empty_rooms{{floor_id="{floor}"}} 0.0' in metrics

    # The kept password goes nowhere else: a new address or user name must bring its own.
    for change in ({"url": "https://elsewhere.example/cal/"}, {"username": "mallory"}):
        moved = console.api(
            "PUT", api, json={"kind": "caldav", "url": url, "username": USER, **change}
        )
        assert moved.status_code == 400, moved.json
        assert set(moved.json["fields"]) == {"password"}
        assert svc.calendars.get(room).url == url and svc.calendars.get(room).username == USER
    # Plain http to another host would carry the password in clear (loopback is allowed).
    plain = {"kind": "caldav", "url": "http://cal.example/dav/", "username": USER, "password": "x"}
    clear = console.api("PUT", api, json=plain)
    assert clear.status_code == 400 and "https://" in clear.json["fields"]["url"]
    # An empty password with another kind cannot keep anything: the field is named.
    switched = console.post(f"/admin/calendars/{room}", data={"kind": "ics", "url": ""})
    assert switched.status_code == 400
    assert "Calendar address: required" in switched.get_data(as_text=True)

    removed = console.post(f"/admin/calendars/{room}/remove", {"confirm": "yes"})
    assert removed.status_code == 302 and not svc.calendars.has(room)

    everything = (
        page + form + fleet + only + metrics + repr(status) + repr(ok.json) + repr(row)
    ) + "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("signage"))
    for secret in (PASSWORD, "wrong-s3cr3t", url):
        assert secret not in everything


@pytest.mark.browser
def test_the_calendar_pages_in_a_browser(server, contexts, radicale: Radicale) -> None:
    """Every control labelled and visible, a bad field named beside it, a stored secret never
    in the page; fleet health with a failing calendar. SIGNAGE_SHOTS=<folder> keeps pictures."""
    import os

    from tests.admin_helpers import PASSWORD as ADMIN_PASSWORD
    from tests.admin_helpers import make_admin

    svc = server.svc
    make_admin(svc)
    floor = svc.directory.floors()[0].id
    room = svc.directory.rooms_of(floor)[0]
    url = radicale.make_calendar(f"Browser {room.id}", _soon("browser@test", 90))
    svc.calendars.put(room.id, url, kind="caldav", username=USER, password="wrong-s3cr3t")
    svc.bookings.start()  # as the first request would
    _display, credential = server.add_display(floor)
    # A kiosk of the floor keeps its feed running: the fleet page then has the floor's row too.
    kiosk = contexts(1280, 720).new_page()
    kiosk.goto(f"{server.url}/kiosk/{credential}")

    def failing() -> str | None:
        status = svc.bookings.statuses().get(room.id)
        return status.error if status is not None else None

    wait_until(failing, timeout=20)
    shots = os.environ.get("SIGNAGE_SHOTS")
    page = contexts(1280, 900).new_page()
    page.goto(f"{server.url}/admin/login?next=/admin/calendars")
    page.fill("#username", "alice")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/calendars")
    row = page.locator(f'tr[data-space-id="{room.id}"]')
    assert "refused the user name or password" in row.inner_text()
    if shots:
        page.screenshot(path=f"{shots}/calendars.png", full_page=True)
    row.get_by_role("link").click()
    page.wait_for_url(f"**/admin/calendars/{room.id}")
    for control in page.locator("#calendar-form input:not([type=hidden])").all():
        control_id = control.get_attribute("id")
        kind = control.get_attribute("type")
        if kind == "radio":  # each radio inside its own visible label
            assert control.locator("xpath=ancestor::label").first.is_visible()
        else:
            assert page.locator(f'label[for="{control_id}"]').is_visible(), control_id
    assert page.input_value("#url") == "" and page.input_value("#password") == ""
    assert url not in page.content() and "wrong-s3cr3t" not in page.content()
    page.fill("#url", "ftp://nowhere")
    page.click("#calendar-form button[type=submit]")
    assert "Calendar address: an http:// or https:// URL is needed" in page.inner_text("#url-error")
    if shots:
        page.screenshot(path=f"{shots}/calendar_edit.png", full_page=True)
    page.goto(f"{server.url}/admin/fleet")
    assert "refused the user name or password" in page.inner_text("#fleet-calendars")
    assert page.inner_text("#fleet-summary") == "Needs attention"
    feed_row = page.locator(f'#fleet-feeds tr[data-floor-id="{floor}"] td.booked-empty')
    assert feed_row.inner_text() == "0"
    if shots:
        page.screenshot(path=f"{shots}/fleet.png", full_page=True)
