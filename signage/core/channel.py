"""One upstream socket of a floor (presence or occupancy), with its polling fallback.

Each channel runs in its own thread: it connects (a fresh `ws_url` every time), applies
`refresh`/`live` messages to its floor's feed, and when the socket closes, is refused or goes
silent, polls REST while reconnecting with jittered backoff.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from signage.density.backoff import Backoff
from signage.density.errors import DensityError
from signage.density.models import Occupancy, PresenceHealth, SpaceUpdate
from signage.density.stream import PresenceStream

if TYPE_CHECKING:
    from signage.core.feeds import FloorFeed

logger = logging.getLogger(__name__)


class Channel:
    """One upstream socket (presence or occupancy) with its polling fallback, in a thread."""

    def __init__(self, feed: FloorFeed, kind: str) -> None:
        self.feed = feed
        self.kind = kind  # "presence" or "occupancy"
        self.clock = feed.clock
        self.mode = "starting"  # starting, live, polling
        self.last_heard: float | None = None
        self.answered = False  # a whole answer of this channel reached the rooms (has_data)
        self.started_at = self.clock.monotonic()
        self.messages = 0
        self.polls = 0
        self.reconnects = 0
        self.last_error: str | None = None
        # Density answered no poll for this channel last time: a socket attempt can wait.
        self.rest_down = False
        self._attempted_at: float | None = None  # the last socket attempt (clock time)
        self._stream: PresenceStream | None = None
        self._got_message = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"feed-{kind}-{feed.floor_id}", daemon=True
        )

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self.feed.stopped.is_set()

    def fresh(self, now: float) -> bool:
        """Heard from Density (socket or poll) within `stale_after`."""
        return (
            self.last_heard is not None and now - self.last_heard <= self.feed.settings.stale_after
        )

    # -- the loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        settings = self.feed.settings
        backoff = Backoff(base=settings.backoff_base, cap=settings.backoff_max)
        # A REST snapshot first, so a kiosk joining now sees data without waiting for the socket.
        self._poll()
        while not self.stopping:
            try:
                self._hold_socket()
            except DensityError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug here must not end the floor's feed for good
                logger.exception(
                    "floor %s %s socket failed unexpectedly", self.feed.floor_id, self.kind
                )
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._stream = None
            if self.stopping:
                break
            if self._got_message.is_set():
                backoff.reset()
            self._set_mode("polling", self.last_error)
            self.reconnects += 1
            self._fallback_until(self.clock.monotonic() + backoff.next())

    def _hold_socket(self) -> None:
        """Connect and apply messages until the socket closes, goes silent or is refused."""
        settings = self.feed.settings
        self._got_message.clear()
        stream = PresenceStream(
            self.feed.client,
            self.feed.floor_id,
            kind=self.kind,
            display_id=self.feed.token_display_id(),
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout,
            silence_timeout=settings.silence_timeout,
            open_timeout=min(10.0, settings.silence_timeout),
            on_malformed=self.feed.count_malformed,
        )
        self._stream = stream
        if self.stopping:
            return
        self._attempted_at = self.clock.monotonic()
        stream.connect()
        # Density does not promise a refresh on connect: take a REST snapshot if none comes.
        ended = threading.Event()
        threading.Thread(
            target=self._snapshot_if_quiet,
            args=(ended,),
            name=f"feed-snapshot-{self.feed.floor_id}",
            daemon=True,
        ).start()
        try:
            for message in stream:
                self._got_message.set()
                self.messages += 1
                self.last_heard = self.clock.monotonic()
                self.feed.apply(message.updates, source="socket", channel=self)
                if message.is_refresh and not message.skipped:
                    # A refresh carries every space of the floor: a room it leaves out is one
                    # Density no longer speaks for. `live` frames carry only what changed.
                    self.feed.unreported(self, {u.space_id for u in message.updates})
                self.feed.answered(self)
                self._set_mode("live")
        finally:
            ended.set()
            stream.close()

    def _snapshot_if_quiet(self, ended: threading.Event) -> None:
        if self.clock.wait(ended, self.feed.settings.snapshot_wait):
            return  # the socket ended first
        if not self._got_message.is_set() and not self.stopping and self._stream is not None:
            if self._poll():
                self._set_mode("live")

    def _fallback_until(self, deadline: float) -> None:
        """Poll every `poll_interval` until it is time to try the socket again.

        The floor is on its fallback already, so each poll is sent once: the next poll is the
        retry. The channel polls through the feed manager's shared poll when there is one (one
        call for every floor on fallback). While Density answers no poll either, the socket is
        tried at most once per `backoff_max`: a socket attempt costs calls too (a ws_url).
        """
        settings = self.feed.settings
        poll_interval = settings.poll_interval
        shared = self.feed.shared_polls
        if shared is not None:
            shared.join(self)
        try:
            next_poll = self.clock.monotonic()
            while not self.stopping:
                now = self.clock.monotonic()
                due = deadline
                if self.rest_down and self._attempted_at is not None:
                    due = max(deadline, self._attempted_at + settings.backoff_max)
                if now >= due:
                    return
                if shared is None and now >= next_poll:
                    self._poll(retries=0)
                    next_poll = self.clock.monotonic() + poll_interval
                self.feed.tick()
                wake = due if shared is not None else min(due, next_poll)
                # Ticks at least once a second: they turn a silent floor stale on time.
                wait = min(1.0, wake - self.clock.monotonic())
                self.clock.wait(self.feed.stopped, max(0.05, wait))
        finally:
            if shared is not None:
                shared.leave(self)

    def _poll(self, retries: int | None = None) -> bool:
        """One REST read of this channel's rooms; True when Density answered."""
        space_ids = self.feed.space_ids(entry=self.kind == "occupancy")
        if not space_ids:
            return False
        client, display_id = self.feed.client, self.feed.token_display_id()
        try:
            if self.kind == "presence":
                result = client.presence_health(space_ids, display_id=display_id, retries=retries)
            else:
                counts = client.current_occupancy(space_ids, display_id=display_id, retries=retries)
        except DensityError as exc:
            self.poll_failed(exc)
            return False
        if self.kind == "presence":
            self.take_presence(result)
        else:
            self.take_counts(counts)
            # Entry rooms' health: from their sensors (counts alone cannot make a room free).
            self.feed.read_entry_health(space_ids, retries=retries)
        self.feed.answered(self)
        return True

    def take_counts(self, counts: dict[str, Occupancy]) -> None:
        """Apply an occupancy/current answer (this floor's or a shared one): counts only."""
        rooms = self.feed.rooms
        self._heard_by_poll(
            [
                SpaceUpdate(
                    space_id=sid,
                    counting_mode="entry",
                    presence=None,
                    occupancy=occ.count,
                    health=None,  # occupancy/current says nothing of health
                    timestamp=occ.timestamp,
                    capped=occ.capped,
                )
                for sid, occ in counts.items()
                if sid in rooms
            ]
        )

    def take_presence(self, result: dict[str, PresenceHealth]) -> None:
        """Apply a presence-health answer (this floor's or a shared one) to this floor's rooms.

        The answer is for every room asked about: a room it leaves out is not confident.
        """
        rooms = self.feed.rooms
        self.feed.unreported(self, set(result))
        self._heard_by_poll(
            [
                SpaceUpdate(
                    space_id=sid,
                    counting_mode="oa",
                    presence=ph.occupied,
                    occupancy=None,
                    health=ph.health,
                    timestamp=ph.timestamp,
                )
                for sid, ph in result.items()
                if sid in rooms
            ]
        )

    def poll_failed(self, exc: DensityError) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.rest_down = True
        self.feed.tick()

    def _heard_by_poll(self, updates: list[SpaceUpdate]) -> None:
        self.rest_down = False
        self.polls += 1
        self.last_heard = self.clock.monotonic()
        self.feed.apply(updates, source="poll", channel=self)

    def _set_mode(self, mode: str, reason: str | None = None) -> None:
        if mode != self.mode:
            previous, self.mode = self.mode, mode
            if mode == "polling":
                logger.warning(
                    "floor %s %s socket down (%s): polling", self.feed.floor_id, self.kind, reason
                )
            elif previous != "starting":
                logger.info("floor %s %s socket live again", self.feed.floor_id, self.kind)
            else:
                logger.info("floor %s %s socket live", self.feed.floor_id, self.kind)
        self.feed.tick()
