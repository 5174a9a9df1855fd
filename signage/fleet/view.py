"""The fleet as a whole: each process's report of what it holds, the fleet page, down alerts.

A report expires after three report intervals, so a process that dies drops out on its own.
Times in reports are ages in seconds: hosts' clocks may disagree, so no wall clock is compared.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from signage.core.protocol import STALE
from signage.fleet.scripts import ALERT_DOWN, ALERTS_SEEN, LEASE, PROCS, REPORT

if TYPE_CHECKING:
    from signage.fleet.link import Cluster

# A screen in a process's fleet report: a list in this order (a report holds up to a process's
# thousand-odd kiosks every few seconds, so no key names).
SCREEN_FIELDS = tuple("display_id connected_s heartbeat_age_s screen version uptime_s heap".split())


def process_report(cluster: Cluster) -> dict[str, Any]:
    """What this process holds, from memory: its screens and the floors it mirrors.

    Display ids, floor ids and what pages said of themselves: never a credential or token.
    Times are ages (seconds) now: readers on other hosts add how long ago it was written.
    """
    now = time.monotonic()

    def age(monotonic: Any) -> float | None:
        return round(max(0.0, now - monotonic), 1) if isinstance(monotonic, float) else None

    screens: list[list[Any]] = []
    kiosks: dict[str, int] = {}
    hub = cluster.hub
    if hub is not None:
        for sub in hub.screens():  # a console preview is not a screen
            info = sub.info  # replaced whole by the socket's thread, never changed in place
            row = [sub.display_id, age(sub.connected_at), age(info.get("received_at"))]
            screens.append(row + [info.get(name) for name in SCREEN_FIELDS[3:]])
            kiosks[sub.floor_id] = kiosks.get(sub.floor_id, 0) + 1
    floors = []
    for feed in cluster.floors():
        status = feed.status()
        heard = status["heard_age_s"]
        floors.append(
            {
                "id": feed.floor_id,
                "holder": feed.holding,
                "mode": status["mode"],
                "reason": status["reason"],
                "heard_age_s": None if heard is None else round(heard, 1),
                "kiosks": kiosks.get(feed.floor_id, 0),
            }
        )
    host, pid, _ = cluster.id.rsplit(":", 2)
    return {
        "id": cluster.id,
        "host": host,
        "pid": int(pid),
        "ttl": cluster.report_ttl,  # readers tell the report's age from the key's time to live
        "screens": screens,
        "floors": floors,
    }


def read_view(cluster: Cluster, leases: bool = True) -> FleetView:
    """Every live process's report (this one's from memory) and each floor's lease holder.

    With Redis away the view holds this process alone and says so (`reachable` False).
    """
    mine = _normalise(process_report(cluster))
    assert mine is not None
    link = cluster.redis
    try:
        ids: list[str] = link.zrange(PROCS, 0, -1)  # reported lately: some may have expired
        keys = [REPORT.format(i) for i in ids]
        values: list[Any] = []
        ttls: list[Any] = []
        if ids:
            # Each report with its time to live, from the same moment (MULTI): how long ago
            # it was written is the sender's expiry minus what is left, on Redis's clock.
            pipe = link.pipeline(transaction=True)
            pipe.mget(keys)
            for key in keys:
                pipe.pttl(key)
            values, *ttls = pipe.execute()
        reports: dict[str, dict[str, Any]] = {}
        for value, ttl in zip(values, ttls, strict=True):
            report = _parse_report(value, ttl)
            if report is not None and report["id"] != cluster.id:
                reports[report["id"]] = report
        reports[cluster.id] = mine
        gone = [pid for pid, value in zip(ids, values, strict=True) if value is None]
        if gone:  # expired with their process: out of the index
            link.zrem(PROCS, *gone)
        holders: dict[str, str | None] = {}
        if leases:
            floor_ids = sorted({f["id"] for r in reports.values() for f in r["floors"]})
            pipe = link.pipeline(transaction=False)
            for floor_id in floor_ids:
                pipe.get(LEASE.format(floor_id))
            holders = dict(zip(floor_ids, pipe.execute(), strict=True))
    except RedisError as exc:
        cluster.note(False, exc)
        holding = {f["id"]: cluster.id if f["holder"] else None for f in mine["floors"]}
        return FleetView(cluster.id, False, {cluster.id: mine}, holding)
    cluster.note(True)
    return FleetView(cluster.id, True, reports, holders)


def _normalise(report: Any, ago: float = 0.0) -> dict[str, Any] | None:
    """A report read `ago` seconds after it was written: ages as of now, screens as dicts in
    fleet_status's shape, junk left out; None when it is not a report."""
    if not isinstance(report, dict) or not isinstance(report.get("id"), str):
        return None
    rows = report.get("screens") or []
    screens = [dict(zip(SCREEN_FIELDS, r, strict=False)) for r in rows if isinstance(r, list)]
    floors = report.get("floors") or []
    return {
        **report,
        "age_s": round(ago, 1),
        "screens": [
            {
                "display_id": s["display_id"],
                "connected_s": _age(s.get("connected_s"), ago),
                "heartbeat_age_s": _age(s.get("heartbeat_age_s"), ago),
                "screen": str(s.get("screen") or "") or None,
                "version": str(s.get("version") or "") or None,
                "uptime_s": s.get("uptime_s"),
                "heap": s.get("heap"),
            }
            for s in screens
            if isinstance(s.get("display_id"), int)
        ],
        "floors": [
            {**f, "heard_age_s": _age(f.get("heard_age_s"), ago)}
            for f in floors
            if isinstance(f, dict) and isinstance(f.get("id"), str)
        ],
    }


def _parse_report(value: Any, pttl: Any) -> dict[str, Any] | None:
    """A process's report as stored in Redis, with the key's time to live (ms); None when it
    expired or cannot be read."""
    try:
        report = json.loads(value or "null")
    except ValueError:
        return None
    if not isinstance(report, dict):
        return None
    # Written this long ago: its sender's expiry minus the time left, on Redis's clock.
    ttl = _number(report.get("ttl"))
    fresh = ttl is None or not isinstance(pttl, int) or pttl < 0
    return _normalise(report, 0.0 if fresh else max(0.0, ttl - pttl / 1000))


def _number(value: Any) -> float | None:
    """A number from a report (JSON), None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _age(value: Any, ago: float = 0.0) -> float | None:
    """An age from a report, `ago` seconds later (rounded); None when it is not a number."""
    age = _number(value)
    return None if age is None else round(max(0.0, age) + ago, 1)


def _heard_age(floor: dict[str, Any]) -> float:
    """Seconds since a floor's view heard from Density (never: infinitely long ago)."""
    return float("inf") if floor["heard_age_s"] is None else floor["heard_age_s"]


class FleetView:
    """The fleet as its live processes last reported it, for the fleet page.

    Reports come with their ages as of when they were read (`_normalise`), "age_s" included.
    """

    NOTE_ALONE = (
        "Redis cannot be reached: this shows this process only; screens and floor feeds held "
        "by the other processes are missing."
    )

    def __init__(
        self,
        process: str,
        reachable: bool,
        reports: dict[str, dict[str, Any]],
        holders: dict[str, str | None],
    ) -> None:
        self.process = process  # this process's id
        self.reachable = reachable
        self.reports = reports  # by process id, this one's included (from memory)
        self.holders = holders  # floor id -> the process holding its lease, or None
        self._screens: dict[int, list[dict[str, Any]]] = {}
        for pid, report in sorted(reports.items()):
            if pid == process:
                continue  # fleet_status reads this process's screens from its hub
            for screen in report["screens"]:
                shown = {k: v for k, v in screen.items() if k != "display_id"}
                self._screens.setdefault(screen["display_id"], []).append({**shown, "process": pid})

    def screens_of(self, display_id: int) -> list[dict[str, Any]]:
        """The display's screens held by the other processes."""
        return list(self._screens.get(display_id, ()))

    def other_floors(self, here: Iterable[str]) -> list[str]:
        """Floors that other processes mirror and this one does not."""
        mirrored = set(here)
        return sorted({f["id"] for r in self.reports.values() for f in r["floors"]} - mirrored)

    def floor(
        self, floor_id: str, here: dict[str, Any] | None
    ) -> tuple[dict[str, Any], int, str | None]:
        """(status, kiosks, holder): the floor as its holder sees it, kiosks of every process.

        `here` is this process's own status of the floor (None when it does not mirror it).
        Without a report from the holder, this process's view, else the latest heard one.
        """
        holder = self.holders.get(floor_id)
        views = {
            pid: f for pid, r in self.reports.items() for f in r["floors"] if f["id"] == floor_id
        }
        kiosks = sum(int(f.get("kiosks") or 0) for f in views.values())
        source = views.get(holder) if holder is not None and holder != self.process else None
        if source is None and here is None:
            # Mirrored elsewhere only, and no word from a holder: whoever heard from it last.
            source = min(views.values(), key=_heard_age, default=None)
        if source is None and here is None:
            stale = {"mode": STALE, "reason": None, "heard_age_s": None, "channels": []}
            return {"floor_id": floor_id, **stale}, kiosks, holder
        if source is None:
            return here, kiosks, holder
        status = {
            "floor_id": floor_id,
            "mode": str(source.get("mode") or STALE),
            "reason": source.get("reason"),
            "heard_age_s": _age(source.get("heard_age_s")),
            "channels": here["channels"] if here is not None else [],
        }
        return status, kiosks, holder

    def summary(self) -> dict[str, Any]:
        """The processes of the fleet, and whether this view is whole (the `cluster` field)."""
        processes = [
            {
                "id": pid,
                "host": report.get("host"),
                "pid": report.get("pid"),
                "this": pid == self.process,
                "screens": len(report["screens"]),
                "floors": len(report["floors"]),
                "holds": sorted(f for f, h in self.holders.items() if h == pid),
                "report_age_s": 0.0 if pid == self.process else _age(report.get("age_s")),
            }
            for pid, report in sorted(self.reports.items())
        ]
        return {
            "process": self.process,
            "reachable": self.reachable,
            "processes": processes,
            "note": None if self.reachable else self.NOTE_ALONE,
        }


class FleetAlerts:
    """What the "down for N minutes" watcher needs to know of the fleet (signage.actions.alerts).

    Each process records the displays whose screens it holds; a display is connected if any
    process saw it lately. A report is sent by one process only: "down" by the first to claim
    the outage, "recovered" by the one that ends it. With Redis away, each process decides
    alone (a report sent twice beats one never sent).
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def connected(self, here: set[int], horizon: float) -> set[int] | None:
        """Record the displays held here; return those held anywhere within `horizon` s."""
        # Stamped and read on Redis's clock: a host whose clock is off by more than the
        # horizon would otherwise call displays held elsewhere down (or dead ones up).
        args = [horizon, *(str(d) for d in sorted(here))]
        seen = self.cluster.call(lambda: self.cluster.lua.seen(keys=[ALERTS_SEEN], args=args), None)
        return None if seen is None else {int(d) for d in seen if str(d).isdigit()}

    def claim(self, event: str, kind: str, id_: str) -> bool:
        """Whether this process is the one to send this report."""
        key, link = ALERT_DOWN.format(kind, id_), self.cluster.redis
        if event == "down":
            week = 7 * 86400
            return self.cluster.call(
                lambda: bool(link.set(key, self.cluster.id, nx=True, ex=week)), True
            )
        return self.cluster.call(lambda: link.getdel(key) is not None, True)
