"""Room calendars: ICS over loopback, recurrence, the error edges, the background worker,
the admin API and the secret URL kept out of logs and answers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from signage.calendars import (
    BadStatus,
    BadURL,
    Busy,
    Malformed,
    TimedOut,
    TooLarge,
    Unreachable,
    busy_intervals,
    check_url,
    fetch,
)

BERLIN = ZoneInfo("Europe/Berlin")
VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
"""


def calendar(*events: str, timezone: str = VTIMEZONE) -> str:
    """An iCalendar body around the given VEVENT texts."""
    body = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//signage tests//EN\n" + timezone
    for event in events:
        body += "BEGIN:VEVENT\nDTSTAMP:20260101T000000Z\n" + event.strip() + "\nEND:VEVENT\n"
    return (body + "END:VCALENDAR\n").replace("\n", "\r\n")


WEEKLY = calendar(
    """UID:weekly@test
SUMMARY:Secret board meeting
ORGANIZER:mailto:ceo@example.com
ATTENDEE:mailto:cfo@example.com
DTSTART;TZID=Europe/Berlin:20260105T100000
DTEND;TZID=Europe/Berlin:20260105T110000
RRULE:FREQ=WEEKLY;COUNT=5
EXDATE;TZID=Europe/Berlin:20260112T100000""",
    """UID:weekly@test
RECURRENCE-ID;TZID=Europe/Berlin:20260119T100000
DTSTART;TZID=Europe/Berlin:20260119T140000
DTEND;TZID=Europe/Berlin:20260119T150000""",
    """UID:allday@test
DTSTART;VALUE=DATE:20260107
DTEND;VALUE=DATE:20260108""",
    """UID:cancelled@test
STATUS:CANCELLED
DTSTART:20260106T090000Z
DTEND:20260106T100000Z""",
    """UID:free@test
TRANSP:TRANSPARENT
DTSTART:20260106T120000Z
DTEND:20260106T130000Z""",
)


class IcsServer:
    """A loopback HTTP server for one calendar that a test can change, with ETag support."""

    def __init__(self, body: str = WEEKLY) -> None:
        self.body = body
        self.requests: list[dict[str, str]] = []
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/cal/s3cr3t-token.ics"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _app(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        self.requests.append(dict(request.headers))
        etag = f'"{abs(hash(self.body))}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})(environ, start_response)
        response = Response(self.body, content_type="text/calendar", headers={"ETag": etag})
        return response(environ, start_response)

    def __enter__(self) -> IcsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def ics() -> Iterator[IcsServer]:
    with IcsServer() as server:
        yield server


def mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


JAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


# -- parsing --------------------------------------------------------------------------------------
def test_a_weekly_series_with_an_exception_a_moved_instance_and_an_all_day_event() -> None:
    busy = busy_intervals(WEEKLY, *JAN, zone=BERLIN)
    assert busy == (
        Busy(local(2026, 1, 5, 10), local(2026, 1, 5, 11)),
        Busy(local(2026, 1, 7), local(2026, 1, 8)),  # all day, midnight to midnight locally
        # 12 January is excluded (EXDATE); 19 January moved to the afternoon (RECURRENCE-ID)
        Busy(local(2026, 1, 19, 14), local(2026, 1, 19, 15)),
        Busy(local(2026, 1, 26, 10), local(2026, 1, 26, 11)),
        Busy(local(2026, 2, 2, 10), local(2026, 2, 2, 11)),
    )
    # Only times leave the parser: no title, organiser or attendee.
    assert all(b.start.tzinfo is not None and b.end.tzinfo is not None for b in busy)
    assert set(Busy.__dataclass_fields__) == {"start", "end"}


def test_a_year_of_a_weekly_series_with_20_exceptions_matches_the_hand_computed_instances() -> None:
    first = local(2026, 1, 6, 9)  # a Tuesday
    excluded = [first + timedelta(weeks=2 * k + 1) for k in range(20)]
    exdates = "\n".join(f"EXDATE;TZID=Europe/Berlin:{d:%Y%m%dT%H%M%S}" for d in excluded)
    body = calendar(
        f"""UID:tuesdays@test
DTSTART;TZID=Europe/Berlin:20260106T090000
DTEND;TZID=Europe/Berlin:20260106T093000
RRULE:FREQ=WEEKLY;BYDAY=TU;UNTIL=20261231T235959Z
{exdates}"""
    )
    busy = busy_intervals(body, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    # Wall-clock 09:00 in Berlin all year: UTC 08:00 in winter, 07:00 in summer time.
    expected = [
        first + timedelta(weeks=w) for w in range(52) if first + timedelta(weeks=w) not in excluded
    ]
    expected = [datetime.combine(d.date(), d.timetz()) for d in expected]
    assert [b.start for b in busy] == expected
    assert len(busy) == 52 - 20
    assert {b.start.astimezone(BERLIN).hour for b in busy} == {9}
    assert {b.start.utcoffset() for b in busy} == {timedelta(hours=1), timedelta(hours=2)}


def test_overlapping_bookings_merge_and_the_window_cuts() -> None:
    body = calendar(
        "UID:a\nDTSTART:20260105T090000Z\nDTEND:20260105T100000Z",
        "UID:b\nDTSTART:20260105T093000Z\nDURATION:PT1H",
        "UID:c\nDTSTART:20260110T090000Z\nDTEND:20260110T100000Z",
        timezone="",
    )
    busy = busy_intervals(body, datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC))
    assert busy == (
        Busy(datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 5, 10, 30, tzinfo=UTC)),
    )


def test_floating_times_are_read_in_the_rooms_zone() -> None:
    body = calendar("UID:f\nDTSTART:20260105T090000\nDTEND:20260105T100000", timezone="")
    (busy,) = busy_intervals(body, *JAN, zone=BERLIN)
    assert busy.start == local(2026, 1, 5, 9)


@pytest.mark.parametrize("body", [b"", b"hello", b"BEGIN:VEVENT\r\nEND:VEVENT\r\n", b"\xff\xfe"])
def test_a_malformed_feed_is_a_malformed_error(body: bytes) -> None:
    with pytest.raises(Malformed):
        busy_intervals(body, *JAN)


# -- fetching -------------------------------------------------------------------------------------
def test_fetch_over_loopback_then_304_with_the_etag_then_a_changed_feed(ics: IcsServer) -> None:
    with httpx.Client() as client:
        first = fetch(client, ics.url)
        assert first.body is not None and first.etag
        assert len(busy_intervals(first.body, *JAN)) == 5
        again = fetch(client, ics.url, etag=first.etag)
        assert again.not_modified and ics.requests[-1]["If-None-Match"] == first.etag
        ics.body = calendar("UID:x\nDTSTART:20260105T090000Z\nDTEND:20260105T100000Z")
        changed = fetch(client, ics.url, etag=first.etag)
        assert changed.body is not None and changed.etag != first.etag
        assert len(busy_intervals(changed.body, *JAN)) == 1


def test_if_modified_since_is_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304)

    with mock(handler) as client:
        got = fetch(client, "https://cal.example/x.ics", last_modified="Mon, 05 Jan 2026 GMT")
    assert got.not_modified and got.last_modified == "Mon, 05 Jan 2026 GMT"
    assert seen[0].headers["If-Modified-Since"] == "Mon, 05 Jan 2026 GMT"


SECRET_URL = "https://calendar.example/owa/calendar/s3cr3t-token/reachcalendar.ics"


def _raises(handler: Callable[[httpx.Request], httpx.Response], kind: type, **kw: int) -> str:
    with mock(handler) as client, pytest.raises(kind) as caught:
        fetch(client, SECRET_URL, **kw)
    text = f"{caught.value} {caught.value!r} {caught.value.__cause__} {caught.value.__context__}"
    assert "s3cr3t" not in text and caught.value.__cause__ is None
    return str(caught.value)


def test_error_edges_are_typed_and_never_name_the_url() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    assert "timeout" in repr(TimedOut()) or TimedOut.reason == "timeout"
    _raises(timeout, TimedOut)
    _raises(refused, Unreachable)
    assert _raises(lambda r: httpx.Response(500), BadStatus) == "HTTP 500"
    _raises(lambda r: httpx.Response(404, text=SECRET_URL), BadStatus)
    _raises(lambda r: httpx.Response(200, content=b"x" * 2000), TooLarge, max_bytes=1000)


def test_the_size_limit_is_counted_while_streaming_without_content_length() -> None:
    produced = [0]

    def chunks() -> Iterator[bytes]:
        for _ in range(10_000):  # 640 MB if it were all read
            produced[0] += 1
            yield b"x" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    _raises(handler, TooLarge, max_bytes=1_000_000)
    assert produced[0] < 40  # stopped soon after the limit, not at the end of the body


def test_check_url() -> None:
    assert check_url(" webcal://cal.example/a.ics ") == "https://cal.example/a.ics"
    bad_urls = ["ftp://x/a.ics", "file:///etc/passwd", "not a url", "https://"]
    # httpx would refuse these only when fetching, with no httpx.HTTPError: refused when set.
    bad_urls += ["https://cal.example:99999/a.ics", "https://-bad-.ex\u00e4mple/a.ics"]
    for bad in bad_urls:
        with pytest.raises(BadURL):
            check_url(bad)


# -- the background worker ------------------------------------------------------------------------
from signage.core.bookings import Bookings, NextBooking  # noqa: E402
from signage.core.clock import FakeClock  # noqa: E402

NEW_YEAR = 1_767_225_600.0  # 2026-01-01T00:00:00Z, FakeClock's wall time
FIRST = datetime(2026, 1, 5, 9, tzinfo=UTC)  # WEEKLY's first booking, 10:00 in Berlin


def test_the_worker_answers_from_memory_while_fresh_and_unknown_when_old(ics: IcsServer) -> None:
    clock = FakeClock(wall=NEW_YEAR)
    bookings = Bookings(lambda: {"room-1": ics.url}, refresh=300, margin=60, clock=clock)
    try:
        assert bookings.room_fields("room-1") == {}  # nothing fetched yet: nothing said
        assert bookings.refresh_due() == 1
        now = datetime.fromtimestamp(NEW_YEAR, UTC)
        assert bookings.next_booking("room-1", now) == NextBooking(
            True, FIRST, FIRST + timedelta(hours=1)
        )
        assert bookings.room_fields("room-1") == {
            "bookings": "ok",
            "next_booking": "2026-01-05T09:00:00Z",
            "next_booking_end": "2026-01-05T10:00:00Z",
        }
        assert bookings.next_booking("room-2", now) == NextBooking(False)
        assert bookings.refresh_due() == 0  # not due again before the interval
        clock.advance(300)
        assert bookings.refresh_due() == 1
        assert ics.requests[-1].get("If-None-Match")  # conditional: 304, the intervals kept
        assert bookings.statuses()["room-1"].bookings == 2  # 5 and 7 January, in 8 days
        clock.advance(361)  # refresh + margin without a word from the calendar
        status = bookings.statuses()["room-1"]
        assert not status.fresh and status.age_s == 361
        # Old data: said to be unavailable, its times withdrawn (never a stale "free until").
        assert bookings.room_fields("room-1") == {
            "bookings": "unavailable",
            "next_booking": None,
            "next_booking_end": None,
        }
    finally:
        bookings.stop()


def test_a_feed_that_changes_between_fetches(ics: IcsServer) -> None:
    clock = FakeClock(wall=NEW_YEAR)
    changed: list[set[str]] = []
    bookings = Bookings(lambda: {"room-1": ics.url}, refresh=300, clock=clock)
    bookings.listeners.append(changed.append)
    try:
        bookings.refresh_due()
        ics.body = calendar("UID:x\nDTSTART:20260101T000000Z\nDTEND:20260101T010000Z")
        clock.advance(300)
        bookings.refresh_due()
        now = datetime.fromtimestamp(clock.time(), UTC)
        # In the middle of a booking: its start, which says the room is booked now (since then).
        assert bookings.next_booking("room-1", now).start == datetime(2026, 1, 1, tzinfo=UTC)
        assert changed == [{"room-1"}, {"room-1"}]
    finally:
        bookings.stop()


def test_errors_back_off_keep_other_rooms_and_never_log_the_url(
    ics: IcsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    # As signage.logs.configure sets it: httpx would log every request's URL at INFO.
    caplog.set_level("WARNING", logger="httpx")
    clock = FakeClock(wall=NEW_YEAR)
    broken = "http://127.0.0.1:9/cal/s3cr3t-broken.ics"  # the discard port: refused
    sources = {"room-1": ics.url, "room-2": broken}
    bookings = Bookings(lambda: sources, refresh=300, clock=clock, timeout=2)
    try:
        bookings.refresh_due()
        statuses = bookings.statuses()
        assert statuses["room-1"].fresh and statuses["room-1"].error is None
        assert not statuses["room-2"].fresh
        assert statuses["room-2"].error.startswith("unreachable")
        assert bookings.room_fields("room-2")["bookings"] == "unavailable"
        # The failure is logged once, as a change of state; retries are backed off.
        clock.advance(600)
        bookings.refresh_due()
        assert len([r for r in caplog.records if "room-2" in r.getMessage()]) == 1
        ours = [r for r in caplog.records if not r.name.startswith("werkzeug")]  # the test server
        text = "\n".join(r.getMessage() for r in ours) + repr(statuses)
        assert "s3cr3t" not in text and "127.0.0.1:9" not in text
        sources["room-2"] = ics.url  # the admin fixes the link
        clock.advance(600)
        bookings.refresh_due()
        assert bookings.statuses()["room-2"].fresh
        del sources["room-1"]  # and removes the other
        bookings.refresh_due()
        assert set(bookings.statuses()) == {"room-2"}
    finally:
        bookings.stop()


def test_error_edges_through_the_worker() -> None:
    answers = iter([httpx.Response(500), httpx.Response(200, content=b"x" * 2000)])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers)

    clock = FakeClock(wall=NEW_YEAR)
    bookings = Bookings(
        lambda: {"r": SECRET_URL}, clock=clock, client=mock(handler), max_bytes=1000
    )
    bookings.refresh_due()
    assert bookings.statuses()["r"].error == "http_status: HTTP 500"
    clock.advance(3600)
    bookings.refresh_due()
    assert bookings.statuses()["r"].error.startswith("too_large")


def test_an_unexpected_failure_is_an_error_not_a_room_fetched_for_ever() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise RuntimeError(f"a library's fault, naming {request.url}")
        return httpx.Response(500)

    clock = FakeClock(wall=NEW_YEAR)
    bookings = Bookings(lambda: {"r": SECRET_URL}, clock=clock, client=mock(handler))
    bookings.refresh_due()
    status = bookings.statuses()["r"]
    assert status.error == "unexpected: RuntimeError" and SECRET_URL not in status.error
    clock.advance(3600)
    bookings.refresh_due()  # fetched again: the room was not left "being fetched"
    assert len(calls) == 2 and bookings.statuses()["r"].error == "http_status: HTTP 500"


def test_the_thread_refreshes_in_the_background(ics: IcsServer) -> None:
    from tests.helpers import wait_until

    bookings = Bookings(lambda: {"room-1": ics.url}, refresh=300)
    bookings.start()
    try:
        wait_until(lambda: bookings.statuses().get("room-1", None), timeout=10)
        wait_until(lambda: bookings.statuses()["room-1"].last_ok, timeout=10)
    finally:
        bookings.stop()


# -- the admin API, the room dict, and requests that never wait on a calendar --------------------
from signage.web import auth  # noqa: E402
from tests.helpers import wait_until  # noqa: E402


def _token(svc) -> dict[str, str]:  # type: ignore[no-untyped-def]
    token = auth.new_api_token()
    svc.store.add_api_token("calendars", auth.token_hash(token), "admin")
    return {"Authorization": f"Bearer {token}"}


def _soon_calendar(minutes: int = 60) -> str:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)
    end = start + timedelta(minutes=30)
    return calendar(
        f"UID:soon@test\nSUMMARY:Private chat\nDTSTART:{start:%Y%m%dT%H%M%SZ}\n"
        f"DTEND:{end:%Y%m%dT%H%M%SZ}",
        timezone="",
    )


class _ThreadNames(httpx.BaseTransport):
    """A real transport that notes which thread each request was made on."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.threads: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.threads.append(threading.current_thread().name)
        return self.inner.handle_request(request)


def test_the_api_sets_and_removes_a_link_and_never_shows_it(
    server, ics: IcsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="signage")
    svc = server.svc
    floor = svc.directory.floors()[0].id
    room = svc.directory.rooms_of(floor)[0].id
    ics.body = _soon_calendar()
    transport = _ThreadNames()
    svc.bookings._client = httpx.Client(transport=transport)
    client, headers = server.app.test_client(), _token(svc)
    url = f"/api/admin/rooms/{room}/calendar"
    assert client.get(url, headers=headers).json["source_set"] is False
    assert client.put(url, json={"url": "ftp://x/y"}, headers=headers).status_code == 400
    assert client.put(url, json={"url": ics.url}).status_code == 401
    assert (
        client.put(
            "/api/admin/rooms/nope/calendar", json={"url": ics.url}, headers=headers
        ).status_code
        == 404
    )
    answer = client.put(url, json={"url": ics.url}, headers=headers)
    assert answer.status_code == 200 and answer.json["source_set"] is True
    status = wait_until(
        lambda: (s := client.get(url, headers=headers).json)["last_ok"] and s, timeout=10
    )
    assert status["fresh"] and status["error"] is None and status["bookings"] == 1
    # Fetched by the worker's threads, never by the request's.
    assert transport.threads and all(n.startswith("signage-") for n in transport.threads)
    # The room dict carries the booking's time and nothing else of it.
    display, credential = server.add_display(floor)

    def rooms() -> dict:
        state = client.get(f"/api/kiosk/{credential}/state").json
        found = state.get("rooms") or {}
        return found if isinstance(found, dict) else {r["id"]: r for r in found}

    booked = wait_until(lambda: rooms().get(room, {}).get("next_booking") and rooms(), timeout=10)
    assert booked[room]["next_booking"].endswith("Z")
    assert all("next_booking" not in r for sid, r in booked.items() if sid != room)
    text = repr(booked)
    assert "Private chat" not in text
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'signage_calendar_fresh{{space_id="{room}"}} 1.0' in metrics
    assert 'signage_calendar_fetches_total{result="ok"}' in metrics and "s3cr3t" not in metrics
    listed = client.get("/api/admin/calendars", headers=headers)
    assert [c["space_id"] for c in listed.json["calendars"]] == [room]
    assert client.delete(url, headers=headers).status_code == 204
    assert client.delete(url, headers=headers).status_code == 404
    answers = repr(answer.json) + repr(status) + listed.get_data(as_text=True)
    ours = [r for r in caplog.records if r.name.startswith("signage")]
    assert "s3cr3t" not in answers + "\n".join(r.getMessage() for r in ours)


def test_a_request_never_waits_on_a_slow_calendar(server) -> None:
    release = threading.Event()

    def slow(environ, start_response):  # type: ignore[no-untyped-def]
        release.wait(30)
        return Response(_soon_calendar(), content_type="text/calendar")(environ, start_response)

    slow_server = make_server("127.0.0.1", 0, slow, threaded=True)
    thread = threading.Thread(target=slow_server.serve_forever, daemon=True)
    thread.start()
    try:
        svc = server.svc
        floor = svc.directory.floors()[0].id
        room = svc.directory.rooms_of(floor)[0].id
        client, headers = server.app.test_client(), _token(svc)
        link = f"http://127.0.0.1:{slow_server.server_port}/slow.ics"
        started = datetime.now(UTC)
        put = client.put(f"/api/admin/rooms/{room}/calendar", json={"url": link}, headers=headers)
        assert put.status_code == 200
        _display, credential = server.add_display(floor)
        assert client.get(f"/api/kiosk/{credential}/state").status_code in (200, 503)
        assert datetime.now(UTC) - started < timedelta(seconds=10)  # the calendar holds for 30
        assert not release.is_set()
    finally:
        release.set()
        slow_server.shutdown()
        slow_server.server_close()
        thread.join(timeout=5)


# -- the simulator's calendars --------------------------------------------------------------------
from signage.sim import SimServer  # noqa: E402
from signage.sim.calendars import day_bookings  # noqa: E402
from signage.sim.scenarios import day_events  # noqa: E402


def test_the_simulated_calendars_tell_the_scenarios_story() -> None:
    with SimServer(seed=3) as sim:
        portfolio = sim.world.portfolio
    bookings = day_bookings(portfolio, 3, 0)
    assert bookings and bookings == day_bookings(portfolio, 3, 0)  # deterministic
    held = [b for room in bookings.values() for b in room if b.held]
    empty = [b for room in bookings.values() for b in room if not b.held]
    assert held and empty  # most bookings are turned up to, some never are
    # Every held booking overlaps the room's occupied time that day; no empty one does.
    opened: dict[str, float] = {}
    sessions: dict[str, list[tuple[float, float]]] = {}
    for e in day_events(portfolio, 3, 0):
        if e.kind == "presence" and e.target in bookings:
            if e.value:
                opened[e.target] = e.at / 60
            elif e.target in opened:
                sessions.setdefault(e.target, []).append((opened.pop(e.target), e.at / 60))
    for room, room_bookings in bookings.items():
        for b in room_bookings:
            overlaps = any(s < b.end and e > b.start for s, e in sessions.get(room, []))
            assert overlaps == b.held, (room, b)
    booked_sessions = sum(len(v) for v in sessions.values())
    assert len(held) < booked_sessions  # and some meetings sit in rooms nobody booked


def test_the_simulator_serves_each_rooms_calendar_over_loopback() -> None:
    with SimServer(seed=3, scenario="day", speed=60) as sim:
        room = next(r.id for r in sim.world.portfolio.rooms() if r.function == "meeting_room")
        url = f"{sim.url}/_sim/calendars/{room}.ics"
        with httpx.Client() as client:
            got = fetch(client, url)
            assert got.body is not None and got.etag
            assert fetch(client, url, etag=got.etag).not_modified
            began = sim.world.scenario_began.replace(microsecond=0)  # ICS has whole seconds
            busy = busy_intervals(got.body, began - timedelta(days=1), began + timedelta(days=1))
            # At speed 60 a simulated minute is a real second: each booking is busy then.
            expected = day_bookings(sim.world.portfolio, 3, 0)[room]
            assert expected
            for booking in expected:
                moment = began + timedelta(seconds=booking.start)
                assert any(b.start <= moment < b.end for b in busy), booking
            assert b"Booked" in got.body  # a title in the feed, which never leaves the parser
            with pytest.raises(BadStatus):
                fetch(client, f"{sim.url}/_sim/calendars/nope.ics")
    with SimServer(seed=3) as quiet, httpx.Client() as client:
        room = next(r.id for r in quiet.world.portfolio.rooms() if r.function == "meeting_room")
        body = fetch(client, f"{quiet.url}/_sim/calendars/{room}.ics").body
        assert body is not None and busy_intervals(body, *JAN) == ()  # quiet: nobody books


def test_kiosks_hear_of_a_booking_without_a_sensor_change(server, ics: IcsServer) -> None:
    svc = server.svc
    floor = svc.directory.floors()[0].id
    room = svc.directory.rooms_of(floor)[0].id
    ics.body = _soon_calendar()
    _display, credential = server.add_display(floor)
    client, headers = server.app.test_client(), _token(svc)
    wait_until(lambda: client.get(f"/api/kiosk/{credential}/state").status_code == 200)
    sent: list[str] = []
    publish = svc.feeds.publish

    def record(floor_id: str, seq: int, text: str):  # type: ignore[no-untyped-def]
        sent.append(text)
        return publish(floor_id, seq, text)

    svc.feeds.publish = record
    put = client.put(f"/api/admin/rooms/{room}/calendar", json={"url": ics.url}, headers=headers)
    assert put.status_code == 200
    # The feed's tick sees the fresh bookings and sends the room, as for a sensor's change.
    text = wait_until(lambda: next((t for t in sent if '"next_booking"' in t), None), timeout=10)
    assert room in text and "Private chat" not in text


# -- the links in the store, on both backends -----------------------------------------------------
from signage.store.calendars import CalendarSources  # noqa: E402
from tests import pg_server as pgs  # noqa: E402

pg_server, pg_url, any_store = pgs.pg_server, pgs.pg_url, pgs.any_store


def test_links_are_set_replaced_and_removed(any_store) -> None:  # type: ignore[no-untyped-def]
    links = CalendarSources(any_store)
    assert links.all() == {} and not links.has("r1")
    links.put("r1", "https://cal.example/a.ics", now=1.0)
    links.put("r1", "https://cal.example/b.ics", now=2.0)
    links.put("r2", "https://cal.example/c.ics")
    assert links.all() == {"r1": "https://cal.example/b.ics", "r2": "https://cal.example/c.ics"}
    assert links.remove("r1") and not links.remove("r1") and links.all().keys() == {"r2"}


def test_a_series_every_second_is_cut_short_not_expanded() -> None:
    body = calendar(
        "UID:s\nDTSTART:20260101T000000Z\nDTEND:20260101T000001Z\nRRULE:FREQ=SECONDLY",
        timezone="",
    )
    # Two months: five million occurrences in the window. Expansion stops at the cap, so the
    # last interval lies within the first hours (how fast that is belongs in a benchmark).
    busy = busy_intervals(body, *JAN)
    assert busy and busy[0].start == datetime(2026, 1, 1, tzinfo=UTC)
    assert busy[-1].end <= datetime(2026, 1, 1, 2, tzinfo=UTC)
