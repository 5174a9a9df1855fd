"""The "down for N minutes" alert: a display with no screen connected, a floor feed not live.

A watcher thread (started on first use, stopped with the app) looks every `interval` seconds.
A display counts as down from when a screen of it was last seen connected (from when the
server started, for one not seen since); a feed from when it was last seen live (from its
start, for one never live). A display that has never had a screen is not installed yet, not
down: it is never reported. When each display first had a screen is kept in the store, so
after a restart a screen that died meanwhile is still reported. Down for `after` seconds, it
is reported once; back, once more. Reports go to a webhook as JSON, from a sender thread of
their own with a short timeout and a few retries, so a slow or dead receiver delays nothing
else. The webhook URL is a secret (it often
carries a token): it is never logged, and httpx's own request log lines have it masked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from signage.store.screens import ScreenSightings

logger = logging.getLogger(__name__)

RETRIES = 3
BACKOFF_S = (1.0, 3.0)  # waits between the attempts
TIMEOUT_S = 5.0
MAX_QUEUED = 200  # reports waiting for a dead receiver; the oldest go first


@dataclass
class Tracked:
    """One display or feed: when it was last fine, and whether it was reported down."""

    kind: str
    id: str
    name: str
    ok_at: float  # monotonic: last seen fine (or when watching began)
    down: bool = False
    reported: bool = False


class _MaskUrl(logging.Filter):
    """Masks the webhook URL in records of a library's logger (httpx logs each request URL)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        return True


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class AlertWatcher:
    """Watches displays and floor feeds; posts "down" and "recovered" once each to a webhook."""

    def __init__(
        self,
        store: Any,
        hub: Any,
        feeds: Any,
        webhook: str = "",
        after: float = 600.0,
        interval: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        backoff: tuple[float, ...] = BACKOFF_S,
        fleet: Any = None,
    ) -> None:
        self.store = store
        self.hub = hub
        self.feeds = feeds
        self.webhook = webhook
        self.after = after
        self.interval = interval
        self.clock = clock
        self.wall = wall
        self.started_at = clock()  # a display never seen counts as down from here
        self._transport = transport
        self.backoff = backoff
        self._lock = threading.Lock()
        self._tracked: dict[tuple[str, str], Tracked] = {}
        self._looked = False
        self._outbox: deque[dict[str, Any]] = deque(maxlen=MAX_QUEUED)
        self._outbox_ready = threading.Event()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._mask = _MaskUrl(webhook) if webhook else None
        self.sent = 0
        self.failed = 0
        self.checks = 0  # looks taken (tests wait on it instead of sleeping)
        # With Redis (signage.fleet.FleetAlerts): which displays any process holds, and one
        # report per outage for the whole fleet rather than one per process.
        self.fleet = fleet

    # -- life cycle ---------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the watcher (and the sender, with a webhook) unless they run or were stopped."""
        if self._watcher is not None or self._stop.is_set():
            return
        with self._lock:
            if self._watcher is not None or self._stop.is_set():
                return
            if self._mask is not None:
                logging.getLogger("httpx").addFilter(self._mask)
            self._watcher = threading.Thread(target=self._watch, name="alert-watcher", daemon=True)
            self._watcher.start()
            if self.webhook:
                self._sender = threading.Thread(
                    target=self._send_loop, name="alert-sender", daemon=True
                )
                self._sender.start()

    def stop(self) -> None:
        """Stop both threads (reports still queued are dropped)."""
        self._stop.set()
        self._outbox_ready.set()
        for thread in (self._watcher, self._sender):
            if thread is not None:
                thread.join(timeout=3)
        if self._mask is not None:
            logging.getLogger("httpx").removeFilter(self._mask)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # one bad look must not end the watching
                logger.exception("alert check failed")

    # -- looking ------------------------------------------------------------------------------
    def check(self) -> list[dict[str, Any]]:
        """Look at every display and feed once; returns the reports it queued."""
        now = self.clock()
        connected = {s.display_id for s in self.hub.screens()}  # previews are no screens
        if self.fleet is not None:
            # A display's screens may be held by another process of the fleet.
            anywhere = self.fleet.connected(connected, horizon=3 * self.interval + 5)
            if anywhere is not None:
                connected |= anywhere
        installed = self._installed_now(connected)
        seen: dict[tuple[str, str], tuple[str, bool, float | None]] = {}
        for display in self.store.list_displays():
            # Not installed yet (never had a screen) counts as fine: nothing to report.
            ok = display.id in connected or display.id not in installed
            seen[("display", str(display.id))] = (display.name, ok, None)
        for feed in self.feeds.feeds():
            status = feed.status()
            name = getattr(getattr(feed, "floor", None), "name", None) or feed.floor_id
            started = getattr(feed, "started_at", None)
            seen[("feed", feed.floor_id)] = (name, status.get("mode") == "live", started)
        reports = []
        with self._lock:
            for key, (name, ok, started) in seen.items():
                tracked = self._tracked.get(key)
                if tracked is None:
                    # Displays there when watching began count from the server's start; one
                    # added later from when it was first seen; a feed from its own start.
                    if key[0] == "display":
                        origin = now if self._looked else self.started_at
                    else:
                        origin = started if started is not None else now
                    tracked = self._tracked[key] = Tracked(key[0], key[1], name, origin)
                tracked.name = name
                if ok:
                    if tracked.reported:
                        reports.append(self._report("recovered", tracked, now))
                    tracked.ok_at, tracked.down, tracked.reported = now, False, False
                    continue
                tracked.down = True
                if not tracked.reported and now - tracked.ok_at >= self.after:
                    tracked.reported = True
                    reports.append(self._report("down", tracked, now))
            # A display deleted, or a feed stopped (its last screen left): no longer watched.
            # A feed reported down and then stopped stays until it runs live again.
            for key in list(self._tracked):
                if key not in seen and not (key[0] == "feed" and self._tracked[key].reported):
                    del self._tracked[key]
            self._looked = True
            self.checks += 1
        if self.fleet is not None:  # another process may have sent it already
            reports = [r for r in reports if self.fleet.claim(r["event"], r["kind"], r["id"])]
        for report in reports:
            level = logging.WARNING if report["event"] == "down" else logging.INFO
            logger.log(
                level,
                "%s %s (%s) %s after %d min",
                report["kind"],
                report["id"],
                report["name"],
                report["event"],
                report["minutes"],
            )
            if self.webhook:
                self._outbox.append(report)
                self._outbox_ready.set()
        return reports

    def _installed_now(self, connected: set[int]) -> set[int]:
        """Displays that have ever had a screen, noting in the store those connected now (read
        each look: another process of a fleet may have noted one)."""
        installed = set(self.store.first_screens())
        for display_id in connected - installed:
            self.store.mark_first_screen(display_id, self.wall())
            installed.add(display_id)
        # And when each was last seen with a screen: fleet health's "down for" after a restart.
        ScreenSightings(self.store).seen(connected, self.wall())
        return installed

    def _report(self, event: str, tracked: Tracked, now: float) -> dict[str, Any]:
        down_for = max(0.0, now - tracked.ok_at)
        return {
            "event": event,
            "kind": tracked.kind,
            "id": tracked.id,
            "name": tracked.name,
            "since": _iso(self.wall() - down_for),
            "minutes": int(down_for // 60),
        }

    def down_for(self, kind: str, id: str | int) -> float | None:
        """Seconds a display or feed has been down (not connected, not live), or None if up."""
        with self._lock:
            tracked = self._tracked.get((kind, str(id)))
            if tracked is None or not tracked.down:
                return None
            return max(0.0, self.clock() - tracked.ok_at)

    def reported(self, kind: str, id: str | int) -> bool:
        """Whether a "down" report went out for it (and no "recovered" yet)."""
        with self._lock:
            tracked = self._tracked.get((kind, str(id)))
            return bool(tracked and tracked.reported)

    # -- sending ------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        client = httpx.Client(
            timeout=httpx.Timeout(TIMEOUT_S, connect=min(3.0, TIMEOUT_S)),
            transport=self._transport,
            follow_redirects=False,
        )
        try:
            while not self._stop.is_set():
                self._outbox_ready.wait()
                self._outbox_ready.clear()
                while self._outbox and not self._stop.is_set():
                    self._deliver(client, self._outbox.popleft())
        finally:
            client.close()

    def _deliver(self, client: httpx.Client, report: dict[str, Any]) -> bool:
        """POST one report, retrying with backoff; says what failed without naming the URL."""
        why = ""
        for attempt in range(RETRIES):
            if attempt and self._stop.wait(self.backoff[min(attempt - 1, len(self.backoff) - 1)]):
                return False
            try:
                response = client.post(self.webhook, json=report)
            except httpx.HTTPError as exc:
                why = exc.__class__.__name__  # str(exc) may quote the URL
                continue
            if response.is_success:
                self.sent += 1
                return True
            why = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this report: asking again will not help
        self.failed += 1
        logger.warning(
            "alert webhook: %s report for %s %s not delivered (%s)",
            report["event"],
            report["kind"],
            report["id"],
            why,
        )
        return False
