"""Prometheus metrics: read from the live objects at scrape time, one registry per app.

The web layer makes the registry (`init_app`) and serves it at /metrics (signage/web/ops.py).

Counters that already exist where the work happens (the client's request counts, the hub's
evictions, the feeds' malformed frames) are read when Prometheus scrapes, rather than mirrored
into a second set of counters that could drift from them.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import Counter
from collections.abc import Iterator
from typing import Any

from flask import Flask, current_app
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from signage.actions.calendars import booked_empty_by_floor
from signage.core.protocol import FEED_MODES
from signage.services import Services
from signage.web.calendars import calendar_metrics

# Fan-out from an update's publication until the last kiosk's write: milliseconds matter.
FANOUT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class SignageCollector:
    """Gauges and counters computed from the services when scraped."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        # Malformed frames are counted by each feed, and a feed ends when its last kiosk has
        # gone: keep each feed's last count, and fold it into a total when the feed is
        # collected, so the counter never goes down (Prometheus would read that as a reset).
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._tracked: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._last: dict[int, int] = {}
        # Keys of feeds collected since: the finalizer only appends (it may run in any thread,
        # even inside the locked section below), the next scrape folds them into the total.
        self._gone: list[int] = []
        self._retired = 0

    def _malformed_total(self, feeds: list[Any]) -> int:
        """Frames skipped by every feed so far, those stopped since included."""
        with self._lock:
            while self._gone:
                self._retired += self._last.pop(self._gone.pop(), 0)
            for feed in feeds:
                key = self._tracked.get(feed)
                if key is None:
                    key = self._tracked[feed] = next(self._keys)
                    weakref.finalize(feed, self._gone.append, key)
                self._last[key] = feed.malformed_frames
            return self._retired + sum(list(self._last.values()))

    def collect(self) -> Iterator[Metric]:
        svc = self.svc
        kiosks = GaugeMetricFamily(
            "signage_kiosks_connected", "Kiosk sockets connected, by floor.", labels=["floor"]
        )
        # Screens only: a console's preview is no kiosk (as fleet health and the fleet's
        # reports count them), or watching a display would read as one more screen.
        for floor, count in sorted(Counter(s.floor_id for s in svc.hub.screens()).items()):
            kiosks.add_metric([floor], count)
        yield kiosks

        feeds = [feed.status() for feed in svc.feeds.feeds()]
        modes = GaugeMetricFamily("signage_feeds", "Floor feeds, by mode.", labels=["mode"])
        for mode in FEED_MODES:
            modes.add_metric([mode], sum(1 for f in feeds if f["mode"] == mode))
        yield modes

        heard = GaugeMetricFamily(
            "signage_feed_heard_age_seconds",
            "Seconds since each floor's feed last heard from Density.",
            labels=["floor"],
        )
        for f in feeds:
            if f["heard_age_s"] is not None:
                heard.add_metric([f["floor_id"]], f["heard_age_s"])
        yield heard

        malformed = CounterMetricFamily(
            "signage_upstream_malformed_frames",
            "Upstream socket frames skipped as malformed.",
        )
        malformed.add_metric([], self._malformed_total(svc.feeds.feeds()))
        yield malformed

        stats = svc.client.stats
        requests = CounterMetricFamily(
            "signage_upstream_requests",
            "Requests made to Density, by endpoint and status.",
            labels=["endpoint", "status"],
        )
        too_many = 0
        for endpoint, by_status in stats["requests"].items():
            for status, count in by_status.items():
                requests.add_metric([endpoint, str(status)], count)
                if str(status) == "429":
                    too_many += count
        yield requests

        limited = CounterMetricFamily("signage_upstream_429", "Answers of 429 from Density.")
        limited.add_metric([], too_many)
        yield limited

        tokens = CounterMetricFamily(
            "signage_token_requests",
            "Tokens requested from Density (first issue and renewals), by kind.",
            labels=["kind"],
        )
        fetches = stats["tokens"]["fetches"]
        tokens.add_metric(["org"], fetches.get("org", 0))
        tokens.add_metric(["display"], sum(v for k, v in fetches.items() if k != "org"))
        yield tokens

        renewals = CounterMetricFamily(
            "signage_token_renewals", "Tokens renewed before they expired."
        )
        renewals.add_metric([], sum(stats["tokens"]["renewals"].values()))
        yield renewals

        evictions = CounterMetricFamily(
            "signage_kiosk_evictions",
            "Kiosks disconnected for falling behind, by reason.",
            labels=["reason"],
        )
        evictions.add_metric(["outbox_full"], svc.hub.evictions)
        evictions.add_metric(["send_stuck"], svc.hub.stalled_cuts)
        yield evictions

        if svc.bookings is not None:
            yield from calendar_metrics(svc.bookings, booked_empty_by_floor(svc))
        if svc.cluster is not None:
            yield from self._cluster(svc.cluster)

    @staticmethod
    def _cluster(cluster: Any) -> Iterator[Metric]:
        """A fleet's figures (SIGNAGE_REDIS_URL): Redis, leases and the processes seen."""
        # Asks Redis now (its gauge is not a memory), and only counts: every process scrapes.
        live = cluster.live_processes()
        up = GaugeMetricFamily("signage_redis_up", "Whether Redis answered this scrape (1/0).")
        up.add_metric([], 1 if live is not None else 0)
        yield up

        held = GaugeMetricFamily(
            "signage_floor_upstream_held",
            "Floors this process mirrors: 1 where it holds the upstream socket (the lease).",
            labels=["floor"],
        )
        for feed in sorted(cluster.floors(), key=lambda f: f.floor_id):
            held.add_metric([feed.floor_id], 1 if feed.holding else 0)
        yield held

        takeovers = CounterMetricFamily(
            "signage_lease_takeovers", "Floor leases this process took (first holder or failover)."
        )
        takeovers.add_metric([], cluster.takeovers)
        yield takeovers

        processes = GaugeMetricFamily(
            "signage_fleet_processes",
            "Server processes of the fleet with a live report in Redis, this one included "
            "(absent while Redis is unreachable).",
        )
        if live is not None:
            processes.add_metric([], live)
        yield processes


def create_registry(svc: Services) -> tuple[CollectorRegistry, Histogram]:
    """A registry for one app, with its collector and the fan-out latency histogram."""
    registry = CollectorRegistry()
    registry.register(SignageCollector(svc))
    fanout = Histogram(
        "signage_fanout_seconds",
        "From an update's publication to its write to the last kiosk of the floor.",
        buckets=FANOUT_BUCKETS,
        registry=registry,
    )
    return registry, fanout


def init_app(app: Flask, svc: Services) -> None:
    """Give the app its registry, and time every fan-out of the hub into its histogram."""
    registry, fanout = create_registry(svc)
    svc.hub.add_fanout_listener(fanout.observe)
    app.extensions["signage.metrics"] = registry


def registry() -> CollectorRegistry:
    """The current app's metrics registry."""
    return current_app.extensions["signage.metrics"]
