"""What the bookings tests share: calendars over loopback, a calendar server that never answers,
and a floor of the simulator whose rooms show each of the kiosk's booking cases at one moment.

The kiosk runs on a fake clock (the page's `clock` and `tz` knobs, test mode only) set to 13:20
on the floor's next suitable day: the calendars' bookings are placed around that moment, so the
words are the same whenever the test runs ("Free until 14:00"). The server reads the calendars
on its own clock; every booking ends after the real now, so it names each room's booking as the
one in progress or next, and the page judges it against its own 13:20.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from signage.store import plans
from tests.helpers import free_port, wait_until

# The six rooms of the sim's second floor (all open-area) and what each shows at 13:20.
CASES = {
    "free_until": "Zephyr",  # free, booked 14:00-15:00: "Free until 14:00"
    "soon": "Heath",  # free, booked 13:25-14:25 (within the 10 min margin)
    "empty": "Flint",  # free, booked 13:00-14:00 (past the 10 min grace): nobody here
    "unbooked": "Atlas",  # occupied, nothing booked: "In use (not booked)"
    "unavailable": "Glacier",  # free, its calendar refuses: "bookings unavailable"
    "free": "Aurora",  # free, booked tomorrow only: "Free"
}
OCCUPIED = {"unbooked"}
# (start, end) as local times of the test's day (hours, minutes), or a day later.
BOOKINGS: dict[str, list[tuple[tuple[int, int], tuple[int, int], int]]] = {
    "free_until": [((14, 0), (15, 0), 0)],
    "soon": [((13, 25), (14, 25), 0)],
    "empty": [((13, 0), (14, 0), 0)],
    "unbooked": [],
    "free": [((10, 0), (11, 0), 1)],
}
WORDS = {
    "en": {
        "free_until": "Free until {t}",
        "soon": "Free · booked at {t}",
        "empty": "Booked, nobody here since {t}",
        "unbooked": "In use (not booked)",
        "unavailable": "{state} · bookings unavailable",
        "free": "Free",
        "note": "Bookings unavailable",
    },
    "de": {
        "free_until": "Frei bis {t}",
        "soon": "Frei · ab {t} gebucht",
        "empty": "Gebucht, seit {t} niemand da",
        "unbooked": "Belegt (nicht gebucht)",
        "unavailable": "{state} · Buchungen nicht verfügbar",
        "free": "Frei",
        "note": "Buchungen nicht verfügbar",
    },
    "fr": {
        "free_until": "Libre jusqu’à {t}",
        "soon": "Libre · réservé à {t}",
        "empty": "Réservé, personne depuis {t}",
        "unbooked": "Occupé (non réservé)",
        "unavailable": "{state} · réservations indisponibles",
        "free": "Libre",
        "note": "Réservations indisponibles",
    },
}
STATE_WORD = {"en": "Free", "de": "Frei", "fr": "Libre"}
# How the page writes a time of day (Intl, the display's language, two-digit hours).
TIME_FORMAT = {"en": "%I:%M %p", "de": "%H:%M", "fr": "%H:%M"}


def fmt(moment: datetime, lang: str) -> str:
    return moment.strftime(TIME_FORMAT[lang])


def ics(intervals: list[tuple[datetime, datetime]]) -> str:
    """An iCalendar body with one event per (start, end), with titles the kiosk must never show."""
    body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//signage tests//EN\r\n"
    for n, (start, end) in enumerate(intervals):
        stamp = "%Y%m%dT%H%M%SZ"
        body += (
            f"BEGIN:VEVENT\r\nUID:b{n}@test\r\nDTSTAMP:20260101T000000Z\r\n"
            f"SUMMARY:Secret merger talks {n}\r\nORGANIZER:mailto:ceo@example.com\r\n"
            f"DTSTART:{start.astimezone(UTC).strftime(stamp)}\r\n"
            f"DTEND:{end.astimezone(UTC).strftime(stamp)}\r\nEND:VEVENT\r\n"
        )
    return body + "END:VCALENDAR\r\n"


class Calendars:
    """A loopback server for many calendars by path (`/cal/<name>.ics`), ETag and all."""

    def __init__(self) -> None:
        self.bodies: dict[str, str] = {}
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}/cal/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _app(self, environ, start_response):  # type: ignore[no-untyped-def]
        name = Request(environ).path.rsplit("/", 1)[-1].removesuffix(".ics")
        body = self.bodies.get(name)
        if body is None:
            return Response(status=404)(environ, start_response)
        return Response(body, content_type="text/calendar")(environ, start_response)

    def url(self, name: str) -> str:
        return f"{self.base}{name}.ics"

    def __enter__(self) -> Calendars:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Silent:
    """A server that accepts connections and never answers: a calendar host gone quiet."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/cal/room.ics"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._held.append(conn)  # held open, never read, never answered

    def __enter__(self) -> Silent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._sock.close()


def refused_url() -> str:
    """A calendar link on a loopback port nobody listens on."""
    return f"http://127.0.0.1:{free_port()}/cal/gone.ics"


def kiosk_moment(zone: ZoneInfo) -> datetime:
    """13:20 on the floor's next day that leaves every booking ending after the real now."""
    now = datetime.now(zone)
    moment = now.replace(hour=13, minute=20, second=0, microsecond=0)
    if moment < now + timedelta(hours=1):
        moment += timedelta(days=1)
    return moment


@dataclass
class BookingFloor:
    """The sim's second floor with a calendar for each case, as the server then shows it."""

    server: Any
    sim: Any
    calendars: Calendars
    floor_id: str = ""
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    moment: datetime = field(default_factory=lambda: datetime.now(UTC))
    sid: dict[str, str] = field(default_factory=dict)  # case -> space id
    others: list[str] = field(default_factory=list)

    def setup(self) -> BookingFloor:
        svc = self.server.svc
        self.floor_id = self.sim.world.portfolio.floor_ids[1]
        wait_until(lambda: svc.directory.rooms_of(self.floor_id), 15, message="rooms known")
        rooms = {s.name: s.id for s in svc.directory.rooms_of(self.floor_id)}
        self.sid = {case: rooms[name] for case, name in CASES.items()}
        self.others = [sid for sid in rooms.values() if sid not in self.sid.values()]
        self.zone = ZoneInfo(svc.directory.time_zone(self.floor_id) or "UTC")
        self.moment = kiosk_moment(self.zone)
        for case, sid in self.sid.items():
            occupied = case in OCCUPIED
            self.sim.world.set_space(sid, presence=occupied, health="healthy")
        for sid in self.others:
            self.sim.world.set_space(sid, presence=True, health="healthy")
        for case, sid in self.sid.items():
            if case == "unavailable":
                svc.calendars.put(sid, refused_url())
                continue
            day = self.moment.date()
            spans = []
            for (h0, m0), (h1, m1), later in BOOKINGS[case]:
                base = datetime(day.year, day.month, day.day, tzinfo=self.zone)
                base += timedelta(days=later)
                spans.append((base.replace(hour=h0, minute=m0), base.replace(hour=h1, minute=m1)))
            self.calendars.bodies[case] = ics(spans)
            svc.calendars.put(sid, self.calendars.url(case))
        svc.bookings.start()  # else started by the first request: the test makes none yet
        svc.bookings.poke()
        wait_until(self.ready, 20, message="every room's state and bookings as set")
        return self

    def rooms(self) -> dict[str, dict[str, Any]]:
        return self.server.svc.feeds.touch(self.floor_id).snapshot()["rooms"]

    def ready(self) -> bool:
        rooms = self.rooms()
        for case, sid in self.sid.items():
            room = rooms[sid]
            if room["state"] != ("occupied" if case in OCCUPIED else "free"):
                return False
            want = "unavailable" if case == "unavailable" else "ok"
            if room.get("bookings") != want:
                return False
        return True

    def at(self, hour: int, minute: int) -> datetime:
        return self.moment.replace(hour=hour, minute=minute)

    def display(self, lang: str, **settings: Any) -> str:
        """A display of this floor in `lang` showing only the six rooms; its kiosk URL."""
        svc = self.server.svc
        display, cred = self.server.add_display(self.floor_id, name=f"Lobby {lang}")
        svc.store.update_display_settings(
            display.id, {"language": lang, "hidden_rooms": self.others, **settings}
        )
        clock = self.moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.server.url}/kiosk/{cred}?clock={clock}&tz={self.zone.key}"

    def expected(self, lang: str, empty_since: datetime) -> dict[str, str]:
        """What each room's words must be in `lang` (the tile's, the card's)."""
        w = WORDS[lang]
        return {
            "free_until": w["free_until"].format(t=fmt(self.at(14, 0), lang)),
            "soon": w["soon"].format(t=fmt(self.at(13, 25), lang)),
            "empty": w["empty"].format(t=fmt(empty_since, lang)),
            "unbooked": w["unbooked"],
            "unavailable": w["unavailable"].format(state=STATE_WORD[lang]),
            "free": w["free"],
        }

    def store_plan(self) -> None:
        """A drawn plan of the six rooms along one corridor, "here" at its west end."""
        svc = self.server.svc
        plans.store_plan(svc.store, svc.config, self.floor_id, plan_svg(), "test")
        rooms = {}
        for case, (x0, y0, x1, y1, door) in LAYOUT.items():
            outline = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
            rooms[self.sid[case]] = {"outline": outline, "door": list(door)}
        document = {
            "width": 1200,
            "height": 800,
            "metres_across": 48,
            "rooms": rooms,
            "nodes": [{"id": n, "x": x, "y": y, "kind": k} for n, x, y, k in NODES],
            "edges": [[a, b] for a, b in zip(NODES_IDS, NODES_IDS[1:], strict=False)],
        }
        svc.store.put_layout(self.floor_id, document)


# The plan: a corridor along y = 400; "soon" is the nearest room to "here", then "empty": both
# free to the sensors, neither offered, so the resting route goes to "free_until".
HERE = [120, 400]
LAYOUT = {
    "soon": (60, 60, 310, 360, (185, 360)),
    "empty": (330, 60, 580, 360, (455, 360)),
    "free_until": (600, 60, 850, 360, (725, 360)),
    "unavailable": (870, 60, 1120, 360, (995, 360)),
    "unbooked": (60, 440, 310, 740, (185, 440)),
    "free": (600, 440, 850, 740, (725, 440)),
}
NODES = [
    ("c0", 100, 400, "lift"),
    ("c1", 185, 400, "corridor"),
    ("c2", 455, 400, "corridor"),
    ("c3", 725, 400, "corridor"),
    ("c4", 995, 400, "stairs"),
]
NODES_IDS = [n[0] for n in NODES]


def plan_svg() -> bytes:
    walls = "".join(
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="#fbfaf7" '
        f'stroke="#55504a" stroke-width="6"/>'
        for x0, y0, x1, y1, _ in LAYOUT.values()
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1200 800" width="1200" height="800">'
        '<rect width="1200" height="800" fill="#f4f1ea"/>'
        '<rect x="60" y="380" width="1080" height="40" fill="#e2ddd2"/>'
        f'{walls}<rect x="40" y="40" width="1120" height="720" fill="none" stroke="#2e2a26" '
        'stroke-width="10"/></svg>'
    ).encode()
