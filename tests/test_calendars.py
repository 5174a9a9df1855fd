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
    for bad in ["ftp://x/a.ics", "file:///etc/passwd", "not a url", "https://"]:
        with pytest.raises(BadURL):
            check_url(bad)
