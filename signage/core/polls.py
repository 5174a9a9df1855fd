"""The fallback polls floors share, and the doorways cache: REST reads while sockets are down.

A floor's channel (core/channel.py) polls through `SharedPolls` while its socket is down, so the
floors on fallback share one call per interval; `Doorways` and `read_sensor_health` read entry
rooms' health from their sensors (no count carries it).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from signage.core.clock import Clock
from signage.core.rooms import needs_doorways, sensors_by_space
from signage.density.client import DensityClient
from signage.density.errors import DensityError, RateLimited, Unavailable
from signage.density.models import Doorway

if TYPE_CHECKING:
    from signage.core.channel import Channel
    from signage.core.feeds import FeedSettings

logger = logging.getLogger(__name__)


class Doorways:
    """Density's doorways, read only when a sensor names a doorway rather than a space.

    They change when a building is refitted: kept for `ttl` seconds, and the last good list
    is used while Density does not answer.
    """

    def __init__(self, client: DensityClient, clock: Clock, ttl: float = 600.0) -> None:
        self.client = client
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._doorways: list[Doorway] = []
        self._read_at: float | None = None

    def get(self, retries: int | None = None) -> list[Doorway]:
        """The doorways, read from Density at most once per `ttl` (failed reads included)."""
        with self._lock:
            now = self.clock.monotonic()
            if self._read_at is not None and now - self._read_at < self.ttl:
                return self._doorways
            self._read_at = now
        try:
            doorways = self.client.doorways(retries=retries)
        except DensityError as exc:
            logger.info("doorways not read: %s", exc)
            return self._doorways
        with self._lock:
            self._doorways = doorways
        return doorways


class SharedPolls:
    """One poll per interval for every floor on its fallback, sent once: this loop is the retry.

    Each floor whose socket was down used to poll on its own, and retry each poll: an outage
    cost as many calls as there were floors, times the retries. presence-health and
    occupancy/current take a list of space ids, so the floors on fallback share one call of
    each per `poll_interval` (per token). While Density is down (5xx, 429, no connection) a
    round stops at its first failed call: the other tokens' calls could only fail the same
    way, so an outage costs one call per interval whatever the number of floors.
    """

    def __init__(
        self, client: DensityClient, settings: FeedSettings, doorways: Doorways | None = None
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = settings.clock
        self.doorways = doorways or Doorways(client, settings.clock)
        self._lock = threading.Lock()
        self._channels: list[Channel] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failing: DensityError | None = None  # the last round's failure, None when answered
        self.calls = 0  # poll calls made (metrics, tests)
        self.rounds = 0  # rounds done, calls or not (tests wait on it)

    def join(self, channel: Channel) -> None:
        """Poll for this channel from the next round on."""
        with self._lock:
            if channel not in self._channels:
                self._channels.append(channel)
            if self.failing is not None:
                channel.rest_down = True  # known already: no need to find out by a socket
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="feed-fallback-polls", daemon=True
                )
                self._thread.start()

    def leave(self, channel: Channel) -> None:
        """Stop polling for this channel (its socket is back, or its feed stopped)."""
        with self._lock:
            if channel in self._channels:
                self._channels.remove(channel)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self.clock.monotonic()
            try:
                self.poll_once()
            except Exception:  # its own thread: a bug here must not end fallback polling
                logger.exception("shared fallback poll failed")
            self.rounds += 1
            wait = self.settings.poll_interval - (self.clock.monotonic() - started)
            self.clock.wait(self._stop, max(0.05, wait))

    def poll_once(self) -> None:
        """One round: presence then counts, a call per token, for the floors on fallback now."""
        with self._lock:
            channels = [c for c in self._channels if not c.stopping]
        groups: dict[tuple[str, str | None], list[Channel]] = {}
        for channel in sorted(channels, key=lambda c: c.kind != "presence"):
            groups.setdefault((channel.kind, channel.feed.token_display_id()), []).append(channel)
        down: DensityError | None = None
        for (kind, display_id), members in groups.items():
            if down is None:
                try:
                    self._poll_group(kind, display_id, members)
                    continue
                except DensityError as exc:
                    failure = exc
                    if isinstance(exc, RateLimited | Unavailable):
                        down = exc
            else:
                failure = down
            for channel in members:
                channel.poll_failed(failure)
        self.failing = down

    def _poll_group(self, kind: str, display_id: str | None, members: list[Channel]) -> None:
        entry = kind == "occupancy"
        space_ids = [sid for c in members for sid in c.feed.space_ids(entry=entry)]
        if not space_ids:
            return
        self.calls += 1
        if not entry:
            result = self.client.presence_health(space_ids, display_id=display_id, retries=0)
            for channel in members:
                channel.take_presence(result)
                channel.feed.answered(channel)
            return
        counts = self.client.current_occupancy(space_ids, display_id=display_id, retries=0)
        for channel in members:
            channel.take_counts(counts)
        # Entry rooms' health, from their sensors: one call for every floor's entry rooms.
        self.calls += 1
        by_space = read_sensor_health(self.client, space_ids, self.doorways, retries=0)
        for channel in members:
            if by_space is not None:
                channel.feed.set_sensor_health(by_space)
            channel.feed.answered(channel)


def read_sensor_health(
    client: DensityClient, space_ids: list[str], doorways: Doorways, retries: int | None = None
) -> dict[str, list[tuple[str, str]]] | None:
    """(serial, health) of the spaces' sensors, mapped through doorways where a sensor names
    one; None when Density did not answer."""
    try:
        sensors = client.sensor_health(space_ids=space_ids, retries=retries)
    except DensityError as exc:
        logger.info("sensor health not read: %s", exc)
        return None
    found = doorways.get(retries=retries) if needs_doorways(sensors) else []
    by_space = sensors_by_space(sensors, found)
    # A space asked about and not in the answer has no sensor now (unmapped, removed): an
    # empty list says so, rather than leaving the health it had.
    return {sid: by_space.get(sid, []) for sid in dict.fromkeys(space_ids)}
