"""Room calendars in a Redis fleet: only the process holding a floor's feed lease fetches the
calendars of its rooms, and one that takes the lease over fetches them soon after."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import httpx

from signage.core.bookings import Bookings
from signage.core.clock import FakeClock
from signage.services import fetches_here

BODY = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n"
    "DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def _directory(floor_of: dict[str, str]) -> SimpleNamespace:
    def ancestors(space_id: str) -> list[SimpleNamespace]:
        floor = floor_of.get(space_id)
        return [SimpleNamespace(id=floor, space_type="floor")] if floor else []

    tree = SimpleNamespace(ancestors=ancestors)
    return SimpleNamespace(tree=lambda: tree)


class _Feeds:
    def __init__(self, holding: dict[str, bool]) -> None:
        self.holding = holding

    def get(self, floor_id: str) -> SimpleNamespace | None:
        if floor_id not in self.holding:
            return None
        return SimpleNamespace(holding=self.holding[floor_id])


def test_only_the_lease_holder_of_a_rooms_floor_fetches_it() -> None:
    directory = _directory({"r1": "f1", "r2": "f2", "r3": "f3"})
    feeds = _Feeds({"f1": True, "f2": False})  # f3: no kiosk of this process, no feed
    cluster = object()
    assert fetches_here(None, feeds, directory, "r2")  # on its own: every room
    assert fetches_here(cluster, feeds, directory, "r1")
    assert not fetches_here(cluster, feeds, directory, "r2")
    assert not fetches_here(cluster, feeds, directory, "r3")
    assert not fetches_here(cluster, feeds, directory, "unknown-room")


def test_the_worker_fetches_only_wanted_rooms_and_one_soon_after_it_is_wanted() -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(200, text=BODY)

    held = {"r1"}
    clock = FakeClock(wall=NEW_YEAR)
    bookings = Bookings(
        lambda: {"r1": "https://cal.example/r1.ics", "r2": "https://cal.example/r2.ics"},
        refresh=300,
        clock=clock,
        client=httpx.Client(transport=httpx.MockTransport(handler)),
        wanted=lambda space_id: space_id in held,
    )
    assert bookings.refresh_due() == 1 and asked == ["/r1.ics"]
    assert bookings.statuses()["r2"].last_fetch is None
    assert bookings.refresh_due() == 0  # r2 is looked at again in 5 s, not in a busy loop
    held.add("r2")  # this process took f2's lease over
    clock.advance(5)
    assert bookings.refresh_due() == 1 and asked == ["/r1.ics", "/r2.ics"]
    assert bookings.statuses()["r2"].fresh
