"""Scenarios: what happens in the simulated building on its own, deterministic from a seed."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from signage.sim.portfolio import Portfolio, Space

logger = logging.getLogger(__name__)

SCENARIOS = ("quiet", "day")
DAY_START_HOUR = 7  # local time the simulated day begins
DAY_LENGTH = 12 * 3600.0  # seconds of simulated time in one working day; then the next begins
_MINUTE = 60.0

# Functions whose rooms hold someone most of the day, with short breaks.
_STEADY = frozenset({"desk_neighborhood", "open_workspace", "reception"})


@dataclass(frozen=True)
class ScenarioEvent:
    """One thing that happens: `at` seconds of simulated time after the day began."""

    at: float
    kind: str  # presence, occupancy, health, drop, burst_429
    target: str | None  # a room for presence/occupancy/health, a floor (None: all) for drop
    value: bool | int | str | float | None = None  # burst_429: simulated seconds it lasts


def day_events(portfolio: Portfolio, seed: int, day: int) -> list[ScenarioEvent]:
    """The events of one simulated working day, a pure function of (portfolio, seed, day)."""
    rng = random.Random(f"day-{seed}-{day}")
    events: list[ScenarioEvent] = []
    rooms = portfolio.rooms()
    # The day starts with an empty building, whatever the previous day left behind.
    events.extend(ScenarioEvent(0.0, "occupancy", room.id, 0) for room in rooms)
    for room in rooms:
        if room.counting_mode == "entry":
            events.extend(_entry_counts(rng, room))
        else:
            for start, end in _sessions(rng, room):
                events.append(ScenarioEvent(start * _MINUTE, "presence", room.id, True))
                events.append(ScenarioEvent(end * _MINUTE, "presence", room.id, False))
    events.extend(_health_faults(rng, rooms))
    for _ in range(rng.randint(2, 4)):
        floor: str | None = rng.choice([*portfolio.floor_ids, None])
        events.append(ScenarioEvent(rng.uniform(20, 700) * _MINUTE, "drop", floor))
    for _ in range(rng.randint(1, 3)):
        at = rng.uniform(30, 700) * _MINUTE
        events.append(ScenarioEvent(at, "burst_429", None, rng.uniform(60, 240)))
    # Sorting is stable, so events at the same instant keep the order they were made in.
    events.sort(key=lambda e: e.at)
    return events


def _sessions(rng: random.Random, room: Space) -> list[tuple[float, float]]:
    """Occupied periods of an open-area room, in minutes after the day began."""
    sessions: list[tuple[float, float]] = []
    function = room.function or ""
    if function == "meeting_room":
        busy_until = 0.0
        for slot in range(60, 660, 30):
            lunch = 300 <= slot < 360
            if slot < busy_until or rng.random() >= (0.2 if lunch else 0.45):
                continue
            length = rng.choice((30, 30, 60, 60, 90))
            start = slot + rng.uniform(-3, 5)
            end = slot + length - rng.uniform(0, 8)
            sessions.append((max(start, busy_until + 1), end))
            busy_until = slot + length
    elif function in _STEADY:
        arrive, leave = rng.uniform(60, 120), rng.uniform(600, 690)
        if rng.random() < 0.4:
            lunch = rng.uniform(300, 340)
            sessions += [(arrive, lunch), (lunch + rng.uniform(20, 45), leave)]
        else:
            sessions.append((arrive, leave))
    else:
        short = function in {"phone_booth", "wellness_room"}
        gap, low, high = (35, 5, 25) if short else (45, 10, 45)
        t = 60 + rng.expovariate(1 / gap)
        while t < 650:
            length = rng.uniform(low, high)
            sessions.append((t, min(t + length, 700)))
            t += length + 1 + rng.expovariate(1 / gap)
    return sessions


def _entry_counts(rng: random.Random, room: Space) -> list[ScenarioEvent]:
    """Doorway counts of an entry-counted room every ten minutes, busiest when people eat."""
    capacity = room.capacity or 10
    events = []
    for minute in range(60, 710, 10):
        hour = DAY_START_HOUR + minute / 60
        if room.function == "cafe":
            share = 0.9 if 12 <= hour < 13.5 else 0.45 if 8.5 <= hour < 9.5 else 0.2
        else:
            share = 0.5 if 14 <= hour < 17 else 0.25
        expected = capacity * share
        count = round(rng.gauss(expected, expected * 0.3 + 0.5))
        events.append(ScenarioEvent(minute * _MINUTE, "occupancy", room.id, max(0, count)))
    events.append(ScenarioEvent(715 * _MINUTE, "occupancy", room.id, 0))
    return events


def _health_faults(rng: random.Random, rooms: list[Space]) -> list[ScenarioEvent]:
    """A few sensors going degraded, offline or unknown, each coming back later that day."""
    events: list[ScenarioEvent] = []
    faulty: dict[str, tuple[float, float]] = {}
    for _ in range(rng.randint(3, 6)):
        room = rng.choice(rooms)
        start = rng.uniform(30, 600)
        end = start + rng.uniform(5, 45)
        health = rng.choices(("degraded", "offline", "unknown"), weights=(5, 3, 1))[0]
        if room.id in faulty:
            continue  # one fault per room and day keeps the recoveries unambiguous
        faulty[room.id] = (start, end)
        events.append(ScenarioEvent(start * _MINUTE, "health", room.id, health))
        events.append(ScenarioEvent(end * _MINUTE, "health", room.id, "healthy"))
    return events


class ScenarioRunner:
    """Plays a scenario's days in a background thread, `speed` times faster than real time."""

    def __init__(
        self,
        events_for_day: Callable[[int], list[ScenarioEvent]],
        apply: Callable[[int, ScenarioEvent], None],
        speed: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._events_for_day = events_for_day
        self._apply = apply
        self.speed = speed
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start playing from the beginning of day 0."""
        self._thread = threading.Thread(target=self._run, name="sim-scenario", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop playing and wait for the thread to finish."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("scenario thread did not stop within %.1f s", timeout)

    def _run(self) -> None:
        began = self._clock()
        day = 0
        while not self._stop.is_set():
            for event in self._events_for_day(day):
                due = began + (day * DAY_LENGTH + event.at) / self.speed
                delay = due - self._clock()
                if delay > 0 and self._stop.wait(delay):
                    return
                if self._stop.is_set():
                    return
                try:
                    self._apply(day, event)
                except Exception:  # a bad event must not end the whole scenario
                    logger.exception("scenario event %r failed", event)
            day += 1
