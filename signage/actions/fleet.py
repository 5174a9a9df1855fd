"""The fleet report: every display, floor feed and sensor, what needs looking at first.

The console's fleet page and the JSON API's /fleet show the same report; in a fleet (Redis) it
covers every live process, this process's own part read from memory. A display that has never
had a screen is "not installed", not down: when one first had a screen is kept in the store (by
the alert watcher's look, signage/actions/alerts.py; this report only reads it), so a restart
does not turn a dead screen back into a display waiting to be installed.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from signage.actions.calendars import booked_empty, calendar_rows
from signage.actions.displays import floor_label
from signage.actions.wording import feed_problem
from signage.store.screens import ScreenSightings

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)


def fleet_status(svc: Services) -> dict[str, Any]:
    """Displays, floor feeds and sensors, problems first (the fleet page and the API)."""
    now = time.monotonic()
    stale_after = 3 * float(svc.config["SIGNAGE_HEARTBEAT_INTERVAL"]) + 5
    # In a fleet (Redis), what every live process reported; this process's own from memory.
    view = svc.cluster.fleet_view() if svc.cluster is not None else None
    subs_by_display: dict[int, list[Any]] = {}
    for sub in svc.hub.screens():  # a console preview is not a screen
        subs_by_display.setdefault(sub.display_id, []).append(sub)
    installed = set(svc.store.first_screens())
    # When each display last had a screen, as stored (the alert watcher stamps it each minute):
    # a display down since before a restart, or never seen by this process, still says for
    # how long from the first page view.
    last_seen = ScreenSightings(svc.store).last_seen()
    wall = svc.alerts.wall() if svc.alerts else time.time()

    displays_out = []
    for display in svc.store.list_displays():
        screens = []
        for sub in subs_by_display.get(display.id, []):
            info = dict(sub.info)
            received = info.pop("received_at", None)
            screens.append(
                {
                    "connected_s": round(now - sub.connected_at, 1),
                    "heartbeat_age_s": round(now - received, 1) if received else None,
                    "screen": str(info.get("screen", "")) or None,
                    "version": str(info.get("version", "")) or None,
                    "uptime_s": info.get("uptime_s"),
                    "heap": info.get("heap"),
                    **({"process": view.process} if view is not None else {}),
                }
            )
        if view is not None:
            screens.extend(view.screens_of(display.id))
        problems = []
        # How long no screen has been connected, as the alert watcher saw it (None: up).
        down_s = svc.alerts.down_for("display", display.id) if svc.alerts else None
        if not screens and display.id in last_seen:
            # The watcher counts from this process's start: the stored sighting goes further
            # back (and is there before the watcher's first look).
            down_s = max(down_s or 0.0, wall - last_seen[display.id])
        if not screens and display.id not in installed:
            state = "not_installed"  # waiting for its first screen: nothing is wrong yet
        elif not screens:
            state = "down"
            problems.append("no screen connected")
        elif all(
            s["heartbeat_age_s"] is None or s["heartbeat_age_s"] > stale_after for s in screens
        ):
            state = "silent"
            problems.append("no heartbeat from the page")
        else:
            state = "up"
        displays_out.append(
            {
                "id": display.id,
                "name": display.name,
                "floor_id": display.floor_id,
                "floor": floor_label(svc.directory, display.floor_id),
                "connected": len(screens),
                "screens": screens,
                "state": state,
                "problems": problems,
                "down_s": None if down_s is None else round(down_s),
                **_since(svc, display.floor_id, None if down_s is None else wall - down_s),
                "alerted": bool(svc.alerts and svc.alerts.reported("display", display.id)),
            }
        )

    feeds_out = []
    sensors_out = []
    mirrored = [(feed.floor_id, feed) for feed in svc.feeds.feeds()]
    # Booked but empty by the rooms as kiosks get them (a mirror's carry the holder's bookings).
    wall_now = datetime.fromtimestamp(svc.bookings.clock.time() if svc.bookings else 0, UTC)
    if view is not None:  # floors only other processes mirror: a row each, their sensors unseen
        mirrored += [(f, None) for f in view.other_floors(f for f, _ in mirrored)]
    for floor_id, feed in mirrored:
        status = feed.status() if feed is not None else None
        kiosks, holder = len(svc.hub.screens(floor_id)), None
        if view is not None:  # the holder's view of the floor, kiosks of every process
            status, kiosks, holder = view.floor(floor_id, status)
        assert status is not None
        token_key = svc.token_display_for_floor(floor_id) or "org"
        expiry = svc.token_expiry(token_key)
        problems = []
        feed_down_s = svc.alerts.down_for("feed", floor_id) if svc.alerts else None
        if status["mode"] != "live":
            problems.append(status["mode"] + (f": {status['reason']}" if status["reason"] else ""))
        feeds_out.append(
            {
                "floor_id": floor_id,
                "floor": floor_label(svc.directory, floor_id),
                "mode": status["mode"],
                "reason": status["reason"],
                "reason_text": feed_problem(status["reason"]),  # the console's plain words
                "heard_age_s": None
                if status["heard_age_s"] is None
                else round(status["heard_age_s"], 1),
                "token": token_key if token_key == "org" else "display",
                "token_expires_in_s": None if expiry is None else round(expiry),
                "kiosks": kiosks,
                "channels": status["channels"],
                "problems": problems,
                "down_s": None if feed_down_s is None else round(feed_down_s),
                "alerted": bool(svc.alerts and svc.alerts.reported("feed", floor_id)),
                "booked_empty": booked_empty(feed, wall_now)
                if feed is not None and svc.bookings is not None
                else None,
                **({"holder": holder} if view is not None else {}),
            }
        )
        if feed is None:
            continue
        for room in list(feed.rooms.values()):
            sensors = [{"serial": s, "health": h} for s, h in room.sensors]
            bad = [s for s in sensors if s["health"] != "healthy"]
            problems = []
            if room.health not in ("healthy",):
                problems.append(f"space {room.health}")
            if bad:
                problems.append(f"sensors not healthy: {len(bad)}")
            sensors_out.append(
                {
                    "space_id": room.space.id,
                    "name": room.space.name,
                    "floor_id": floor_id,
                    "floor": floor_label(svc.directory, floor_id),
                    "health": room.health,
                    "sensors": sensors,
                    "problems": problems,
                }
            )

    # Room calendars: in a fleet only the process holding a floor's lease fetches its rooms'.
    holders = {f["floor_id"]: f.get("holder") for f in feeds_out} if view is not None else None
    calendars_out = calendar_rows(svc, holders)

    # Floors as the building lists them (Density's order, or the one set on the floor-order
    # page); a floor the directory no longer lists goes last.
    rank = {f.id: i for i, f in enumerate(svc.directory.floors(building_order=True))}

    def order(item: dict[str, Any]) -> tuple:
        # Problems first, the longest down among them first.
        down = -(item.get("down_s") or 0)
        return (not item["problems"], down, str(item.get("name") or item.get("floor") or ""))

    def floor_order(item: dict[str, Any]) -> tuple:
        # A floor feed: problems first, the longest down first, then the building's order.
        down = -(item.get("down_s") or 0)
        return (not item["problems"], down, rank.get(item["floor_id"], len(rank)))

    return {
        "displays": sorted(displays_out, key=order),
        "feeds": sorted(feeds_out, key=floor_order),
        "spaces": sorted(sensors_out, key=order),
        "calendars": calendars_out,
        "problems": sum(
            1
            for group in (displays_out, feeds_out, sensors_out, calendars_out)
            for i in group
            if i["problems"]
        ),
        # The page's summary line: how many of each, as a status page counts them.
        "counts": _counts(displays_out, feeds_out, sensors_out, calendars_out),
        # The fleet's processes, and whether this is all of it (Redis answered).
        **({"cluster": view.summary()} if view is not None else {}),
    }


def _counts(
    displays: list[dict[str, Any]],
    feeds: list[dict[str, Any]],
    spaces: list[dict[str, Any]],
    calendars: list[dict[str, Any]],
) -> dict[str, int]:
    """How many of each, and how many with a problem: the summary line of fleet health."""

    def states(name: str) -> int:
        return sum(1 for d in displays if d["state"] == name)

    return {
        "displays": len(displays),
        "up": states("up"),
        "down": states("down") + states("silent"),
        "not_installed": states("not_installed"),
        "feeds": len(feeds),
        "feeds_stale": sum(1 for f in feeds if f["problems"]),
        "spaces": len(spaces),
        "sensors_offline": sum(1 for sp in spaces if sp["problems"]),
        "calendars": len(calendars),
        "calendars_failing": sum(1 for c in calendars if c["problems"]),
        "booked_empty": sum(f["booked_empty"] or 0 for f in feeds),
    }


def _since(svc: Services, floor_id: str, at: float | None) -> dict[str, Any]:
    """When a display went down: "down_since" in UTC for programs, "down_since_local" as its
    building reads it ("09:14", or "5 Dec 09:14" on another day) with the zone's name."""
    if at is None:
        return {"down_since": None, "down_since_local": None, "zone": None}
    zone_name = svc.directory.time_zone(floor_id) or "UTC"
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):  # a zone this system lacks
        zone_name, zone = "UTC", ZoneInfo("UTC")
    when = datetime.fromtimestamp(at, zone)
    today = datetime.fromtimestamp(svc.alerts.wall() if svc.alerts else time.time(), zone)
    local = f"{when:%H:%M}" if when.date() == today.date() else f"{when.day} {when:%b %H:%M}"
    return {
        "down_since": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
        "down_since_local": local,
        "zone": zone_name,
    }


FILTERS = ("down", "stale", "sensors", "calendars")


def filter_report(report: dict[str, Any], show: str = "", floor_id: str = "") -> dict[str, Any]:
    """The report narrowed to what a filter asks for: `show` one of FILTERS (down displays,
    stale floor feeds, spaces whose sensors are offline, failing room calendars), `floor_id`
    one floor."""
    out = dict(report)

    def keep(item: dict[str, Any]) -> bool:
        return not floor_id or item.get("floor_id") == floor_id

    # The counts are of the floor chosen (every kind, whatever `show` narrows the tables to),
    # so its tiles and its filter links agree with the tables under them.
    if floor_id:
        out["counts"] = _counts(
            *(
                [i for i in report.get(group, []) if keep(i)]
                for group in ("displays", "feeds", "spaces", "calendars")
            )
        )

    out["displays"] = [
        d
        for d in report["displays"]
        if keep(d) and (show in ("", "down") and (show != "down" or d["problems"]))
    ]
    out["feeds"] = [
        f
        for f in report["feeds"]
        if keep(f) and show in ("", "stale") and (show != "stale" or f["problems"])
    ]
    out["spaces"] = [
        sp
        for sp in report["spaces"]
        if keep(sp) and show in ("", "sensors") and (show != "sensors" or sp["problems"])
    ]
    out["calendars"] = [
        c
        for c in report.get("calendars", [])
        if keep(c) and show in ("", "calendars") and (show != "calendars" or c["problems"])
    ]
    return out
