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


def test_booked_but_empty_is_counted_per_floor_by_the_kiosks_rule() -> None:
    from datetime import timedelta

    from signage.actions.calendars import booked_empty

    now = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)

    def room(state: str, started_min: float | None, bookings: str = "ok") -> dict:
        start = now - timedelta(minutes=started_min) if started_min is not None else None
        return {
            "state": state,
            "bookings": bookings,
            "next_booking": start.isoformat() if start else None,
            "next_booking_end": (start + timedelta(hours=1)).isoformat() if start else None,
        }

    rooms = {
        "empty": room("free", 20),  # booked 20 min ago, nobody there: past the 10 min grace
        "also-empty": room("free", 45),
        "grace": room("free", 5),  # booked 5 min ago: people may still be on their way
        "in-use": room("occupied", 20),
        "no-booking": room("free", None),
        "stale": room("free", 20, bookings="unavailable"),  # old data says nothing
        "unknown": room("unknown", 20),  # the sensors cannot vouch for it
        "later": room("free", -30),  # booked in 30 min
    }
    feed = SimpleNamespace(snapshot=lambda: {"rooms": rooms})
    assert booked_empty(feed, now) == 2
    listed = SimpleNamespace(snapshot=lambda: {"rooms": list(rooms.values())})
    assert booked_empty(listed, now) == 2


def test_fleet_rows_say_which_process_fetches_a_room_in_a_fleet() -> None:
    from signage.actions.calendars import calendar_rows
    from signage.core.bookings import CalendarStatus
    from signage.store.calendars import SourceInfo

    floors = {"r1": "f1", "r2": "f2"}
    spaces = {
        "r1": SimpleNamespace(id="r1", name="Atlas", space_type="room"),
        "r2": SimpleNamespace(id="r2", name="Birch", space_type="room"),
        "f1": SimpleNamespace(id="f1", name="1st floor", space_type="floor"),
        "f2": SimpleNamespace(id="f2", name="2nd floor", space_type="floor"),
    }
    tree = SimpleNamespace(
        get=spaces.get,
        building_of=lambda _id: None,
        ancestors=lambda sid: [spaces[floors[sid]]] if sid in floors else [],
        floors=lambda building_order=False: [spaces["f1"], spaces["f2"]],
    )
    clock = FakeClock(wall=NEW_YEAR)
    failed = CalendarStatus("r1", NEW_YEAR - 30, None, None, False, "unauthorized: no", 0)
    svc = SimpleNamespace(
        calendars=SimpleNamespace(
            describe=lambda: {sid: SourceInfo(sid, "caldav", "u", 1.0) for sid in floors}
        ),
        bookings=SimpleNamespace(clock=clock, statuses=lambda: {"r1": failed}),
        directory=SimpleNamespace(tree=lambda: tree),
        cluster=SimpleNamespace(id="host-a"),
    )
    rows = {r["space_id"]: r for r in calendar_rows(svc, {"f1": "host-a", "f2": "host-b"})}
    assert rows["r1"]["problems"] == ["unauthorized: no"] and not rows["r1"]["elsewhere"]
    assert rows["r1"]["last_fetch_age_s"] == 30 and rows["r1"]["floor"] == "1st floor"
    # r2's floor is held by another process: no problem here, its holder named.
    assert rows["r2"]["elsewhere"] and rows["r2"]["fetched_by"] == "host-b"
    assert rows["r2"]["problems"] == []
    alone = {r["space_id"]: r for r in calendar_rows(svc)}
    assert alone["r2"]["problems"] == ["not fetched yet"] and "elsewhere" not in alone["r2"]
