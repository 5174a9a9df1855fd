"""The simulator's state: spaces, tokens, rate limit, sockets and counters, under one lock."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from signage.sim.portfolio import Portfolio, build_portfolio
from signage.sim.scenarios import SCENARIOS, ScenarioEvent, ScenarioRunner, day_events
from signage.sim.settings import SimSettings
from signage.sim.sockets import SocketSession, Ticket

logger = logging.getLogger(__name__)

HEALTH_STATES = ("healthy", "degraded", "offline", "unknown")
SOCKET_MODES = ("normal", "refuse", "silent")
HISTORY_LENGTH = 5000  # state changes kept per room, for short-term and historical answers
EVENT_LOG_LENGTH = 100_000


class ApiError(Exception):
    """An answer other than 2xx, as Density gives it: a status and `{code, message}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class SpaceState:
    """What a room's sensors say right now."""

    presence: bool
    occupancy: int
    health: str
    changed_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    """A bearer token the simulator accepts."""

    kind: str  # static, oauth or display
    expires_at: float | None  # on the simulator's monotonic clock; None never expires
    display_id: str | None = None
    floor_id: str | None = None  # a display token reads this floor only


def iso(moment: datetime) -> str:
    """A UTC timestamp the way Density writes them: seconds, trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def group_health(healths: list[str]) -> str:
    """A space's health from its parts, by Density's rule for a space and its sensors."""
    if all(h == "healthy" for h in healths):
        return "healthy"
    if all(h == "offline" for h in healths):
        return "offline"
    if "unknown" in healths and "healthy" not in healths:
        return "unknown"
    return "degraded"


def _jwt_like(claims: dict[str, Any]) -> str:
    # Density's OAuth tokens are JWTs; clients may look for the "eyJ" prefix.
    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(24)}"


class TokenBucket:
    """Density's edge limit: `rate` requests per second with a burst allowance."""

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.updated = now

    def take(self, now: float, rate: float, burst: float) -> float:
        """Take one request's token; 0 when allowed, else the seconds until one is free."""
        self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / rate


class Simulator:
    """The state behind the simulated API; every method is safe to call from any thread."""

    def __init__(
        self,
        settings: SimSettings | None = None,
        seed: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.seed = seed
        self.portfolio: Portfolio = build_portfolio(seed)
        self.clock = clock
        self.wall = wall
        self._lock = threading.RLock()
        self._initial_settings = settings or SimSettings()
        self._settings = self._initial_settings
        self._tokens: dict[str, TokenInfo] = {}
        self._tickets: dict[str, tuple[Ticket, bool]] = {}  # id -> (ticket, used)
        self._sessions: dict[int, SocketSession] = {}
        self._session_ids = itertools.count(1)
        self._closing = False
        self._runner: ScenarioRunner | None = None
        self.scenario = "quiet"
        self.speed = 1.0
        self._reset_state()

    # --- state -------------------------------------------------------------------------

    def _reset_state(self) -> None:
        with self._lock:
            self._settings = self._initial_settings
            self._bucket = TokenBucket(self._settings.rate_burst, self.clock())
            self._force_until = 0.0
            self._force_status = 429
            self._force_retry_after: int | None = 1
            self.socket_mode = "normal"
            self._calls: Counter[str] = Counter()
            self._statuses: Counter[str] = Counter()
            self._expired_uses = 0
            self._rate_limited = 0
            self._opened: Counter[str] = Counter()
            self._event_log: deque[tuple[int, ScenarioEvent]] = deque(maxlen=EVENT_LOG_LENGTH)
            self._states: dict[str, SpaceState] = {}
            self._history: dict[str, deque[SpaceState]] = {}
            self._seed_states()

    def _seed_states(self) -> None:
        # The same seed gives the same mix of busy and free rooms; the timestamps are
        # spread over the last hour and a half so they look like sensor reports.
        rng = random.Random(f"state-{self.seed}")
        now = self.wall().replace(microsecond=0)
        for room in self.portfolio.rooms():
            if room.counting_mode == "entry":
                occupancy = rng.randint(0, max(1, (room.capacity or 4) // 2))
            else:
                occupancy = rng.randint(1, room.capacity or 1) if rng.random() < 0.35 else 0
            state = SpaceState(
                presence=occupancy > 0,
                occupancy=occupancy,
                health="healthy",
                changed_at=now - timedelta(minutes=rng.randint(1, 90)),
            )
            self._states[room.id] = state
            self._history[room.id] = deque([state], maxlen=HISTORY_LENGTH)

    @property
    def settings(self) -> SimSettings:
        """The settings in force now."""
        return self._settings

    @property
    def displays(self) -> dict[str, str]:
        """Display id -> floor id for every display of the portfolio."""
        return dict(self.portfolio.displays)

    def update_settings(self, changes: dict[str, Any] | None = None, **more: Any) -> SimSettings:
        """Change settings live; ValueError for an unknown setting or a bad value."""
        with self._lock:
            self._settings = self._settings.updated({**(changes or {}), **more})
            self._bucket.tokens = min(self._bucket.tokens, self._settings.rate_burst)
            return self._settings

    def space_state(self, space_id: str) -> SpaceState:
        """The current state of one room (KeyError for anything else)."""
        with self._lock:
            return self._states[space_id]

    def states(self, space_ids: Iterable[str]) -> dict[str, SpaceState]:
        """The current states of several rooms, read at one instant."""
        with self._lock:
            return {sid: self._states[sid] for sid in space_ids}

    def history(self, space_id: str) -> list[SpaceState]:
        """The recorded states of one room, oldest first."""
        with self._lock:
            return list(self._history[space_id])

    def set_space(
        self,
        space_id: str,
        presence: bool | None = None,
        occupancy: int | None = None,
        health: str | None = None,
    ) -> SpaceState:
        """Change what a room's sensors say and push a `live` message to its open sockets."""
        if presence is not None and not isinstance(presence, bool):
            raise ValueError("presence must be true or false")
        if occupancy is not None and (
            isinstance(occupancy, bool) or not isinstance(occupancy, int) or occupancy < 0
        ):
            raise ValueError("occupancy must be a whole number >= 0")
        if health is not None and health not in HEALTH_STATES:
            raise ValueError(f"health must be one of {', '.join(HEALTH_STATES)}")
        with self._lock:
            if space_id not in self._states:
                raise KeyError(space_id)
            old = self._states[space_id]
            # Presence and count describe the same people: keep them consistent.
            new_occupancy = old.occupancy
            if occupancy is not None:
                new_occupancy = occupancy
            elif presence is not None and presence != (old.occupancy > 0):
                new_occupancy = 1 if presence else 0
            new_health = health if health is not None else old.health
            if new_occupancy == old.occupancy and new_health == old.health:
                return old
            new = SpaceState(new_occupancy > 0, new_occupancy, new_health, self.wall())
            self._states[space_id] = new
            self._history[space_id].append(new)
            presence_changed = new.presence != old.presence or new.health != old.health
            count_changed = new.occupancy != old.occupancy or new.health != old.health
            for session in self._sessions.values():
                if space_id not in session.ticket.space_ids:
                    continue
                wanted = count_changed if session.ticket.kind == "occupancy" else presence_changed
                if wanted:
                    session.offer("msg", self._message(session, "live", [space_id]))
            return new

    def state(self) -> dict[str, Any]:
        """Everything `GET /_sim/state` shows."""
        with self._lock:
            settings = self._settings
            return {
                "seed": self.seed,
                "scenario": self.scenario,
                "speed": self.speed,
                "socket_mode": self.socket_mode,
                "building_id": self.portfolio.building_id,
                "floors": {
                    fid: self.portfolio.spaces[fid].name for fid in self.portfolio.floor_ids
                },
                "displays": dict(self.portfolio.displays),
                "credentials": {
                    "static_token": settings.static_token,
                    "client_id": settings.client_id,
                    "client_secret": settings.client_secret,
                },
                "settings": settings.to_json(),
                "portfolio": [s.to_json() for s in self.portfolio.spaces.values()],
                "spaces": {
                    sid: {
                        "name": self.portfolio.spaces[sid].name,
                        "floor_id": self.portfolio.spaces[sid].floor_id,
                        "counting_mode": self.portfolio.spaces[sid].counting_mode,
                        "presence": st.presence,
                        "occupancy": st.occupancy,
                        "health": st.health,
                        "timestamp": iso(st.changed_at),
                    }
                    for sid, st in self._states.items()
                },
            }

    # --- scope -------------------------------------------------------------------------

    def check_scope(self, token: TokenInfo, space_id: str) -> None:
        """403 when a display token reaches beyond its own floor."""
        if token.floor_id is not None and not self.portfolio.in_floor(space_id, token.floor_id):
            raise ApiError(403, f"token may not access {space_id}")

    def resolve_rooms(
        self, token: TokenInfo, space_ids: list[str] | None, modes: Iterable[str]
    ) -> list[str]:
        """The rooms a request covers: parents flattened, unknown ids skipped, scope checked."""
        modes = set(modes)
        if space_ids is None:
            space_ids = [token.floor_id or self.portfolio.building_id]
        rooms: dict[str, None] = {}
        for space_id in space_ids:
            if space_id not in self.portfolio.spaces:
                continue
            self.check_scope(token, space_id)
            for room_id in self.portfolio.rooms_under(space_id):
                if self.portfolio.spaces[room_id].counting_mode in modes:
                    rooms[room_id] = None
        return list(rooms)

    # --- tokens and the rate limit ----------------------------------------------------

    def admit(self) -> None:
        """Let one API request through the edge, or raise a 429 with Retry-After."""
        with self._lock:
            now = self.clock()
            if now < self._force_until:
                status, retry = self._force_status, self._force_retry_after
                message = "rate limit exceeded" if status == 429 else "service unavailable"
                raise ApiError(status, message, {"Retry-After": str(retry)} if retry else {})
            settings = self._settings
            if settings.rate_limit <= 0:
                return
            wait = self._bucket.take(now, settings.rate_limit, settings.rate_burst)
            if wait > 0:
                self._rate_limited += 1  # over the real limit, unlike a forced 429
                retry = str(max(1, math.ceil(wait)))
                raise ApiError(429, "rate limit exceeded", {"Retry-After": retry})

    def force_429(
        self, seconds: float, retry_after: int | None = None, extend_only: bool = False
    ) -> None:
        """Answer every API call with 429 for `seconds` from now.

        The control API sets the window as asked (0 ends it). A scenario's burst passes
        `extend_only`: it may lengthen a window in force, never cut it short, and leaves that
        window's Retry-After alone unless it outlasts it.
        """
        with self._lock:
            until = self.clock() + seconds
            if extend_only and until <= self._force_until:
                return
            self._force_until = until
            self._force_status = 429
            self._force_retry_after = max(
                1, int(retry_after if retry_after is not None else math.ceil(seconds))
            )
        logger.info("forcing 429 for %.1f s", seconds)

    def force_outage(
        self, seconds: float, status: int = 503, retry_after: int | None = None
    ) -> None:
        """Answer every API call (token endpoints too) with `status` for `seconds` from now.

        An outage as Density's edge shows one: 5xx (or 429) to each call, `Retry-After` only
        when given. It replaces any forced window in force; 0 seconds ends it. Sockets are
        separate: refuse or drop them through the socket controls.
        """
        if status != 429 and not 500 <= status <= 599:
            raise ValueError("status must be 429 or 500..599")
        with self._lock:
            self._force_until = self.clock() + seconds
            self._force_status = status
            self._force_retry_after = None if retry_after is None else max(1, int(retry_after))
        logger.info("forcing %d for %.1f s", status, seconds)

    def issue_oauth_token(
        self, grant_type: str, client_id: str, client_secret: str, duration: float | None = None
    ) -> tuple[str, float]:
        """A machine-to-machine token and its lifetime in seconds."""
        self._check_client(grant_type, client_id, client_secret)
        with self._lock:
            lifetime = duration if duration else self._settings.token_lifetime
            token = _jwt_like({"sub": client_id, "typ": "m2m", "jti": secrets.token_hex(8)})
            self._tokens[token] = TokenInfo("oauth", self.clock() + lifetime)
            return token, lifetime

    def issue_display_token(
        self, grant_type: str, client_id: str, client_secret: str, display_id: str
    ) -> tuple[str, float]:
        """A token scoped to one display's floor and its lifetime in seconds."""
        self._check_client(grant_type, client_id, client_secret)
        floor_id = self.portfolio.displays.get(display_id)
        if floor_id is None:
            raise ApiError(400, f"unknown display_id {display_id!r}")
        with self._lock:
            lifetime = self._settings.token_lifetime
            token = _jwt_like({"sub": display_id, "typ": "display", "jti": secrets.token_hex(8)})
            self._tokens[token] = TokenInfo(
                "display", self.clock() + lifetime, display_id, floor_id
            )
            return token, lifetime

    def _check_client(self, grant_type: str, client_id: str, client_secret: str) -> None:
        if grant_type != "client_credentials":
            raise ApiError(400, "grant_type must be client_credentials")
        settings = self._settings
        good_id = secrets.compare_digest(client_id, settings.client_id)
        good_secret = secrets.compare_digest(client_secret, settings.client_secret)
        if not (good_id and good_secret):
            raise ApiError(401, "invalid client credentials")

    def authenticate(self, authorization: str | None) -> TokenInfo:
        """The token behind an Authorization header, or a 401."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "missing bearer token")
        with self._lock:
            if secrets.compare_digest(token, self._settings.static_token):
                return TokenInfo("static", None)
            info = self._tokens.get(token)
            if info is None:
                raise ApiError(401, "unable to authorize the given bearer token")
            if info.expires_at is not None and self.clock() >= info.expires_at:
                self._expired_uses += 1
                raise ApiError(401, "token expired")
            return info

    # --- counters ----------------------------------------------------------------------

    def record_call(self, key: str) -> None:
        """Count one call received, keyed "METHOD /path-template"."""
        with self._lock:
            self._calls[key] += 1

    def record_status(self, status: int) -> None:
        """Count one status served."""
        with self._lock:
            self._statuses[str(status)] += 1

    def calls(self) -> dict[str, Any]:
        """The counters `GET /_sim/calls` shows."""
        with self._lock:
            open_now: Counter[str] = Counter({fid: 0 for fid in self.portfolio.floor_ids})
            for session in self._sessions.values():
                open_now[session.ticket.key] += 1
            return {
                "calls": dict(sorted(self._calls.items())),
                "status": dict(sorted(self._statuses.items())),
                "expired_token_uses": self._expired_uses,
                "rate_limited": self._rate_limited,
                "sockets_open": dict(open_now),
                "sockets_opened": dict(self._opened),
            }

    def sockets_open(self, floor_id: str | None = None, kind: str | None = None) -> int:
        """Open sockets on a floor (all when None), of one kind (presence/occupancy) or both."""
        with self._lock:
            return sum(1 for s in self._matching(floor_id) if kind is None or s.ticket.kind == kind)

    # --- sockets -----------------------------------------------------------------------

    def create_ticket(self, kind: str, node_id: str, token: TokenInfo) -> Ticket:
        """A single-use `ws_url` ticket for a floor's presence or a space's counts."""
        space = self.portfolio.spaces.get(node_id)
        if space is None or (kind == "presence" and space.space_type != "floor"):
            raise ApiError(404, f"{'floor' if kind == 'presence' else 'space'} not found")
        self.check_scope(token, node_id)
        rooms = self.portfolio.rooms_under(node_id)
        groups: tuple[str, ...] = ()
        if kind == "presence":
            watched = tuple(r for r in rooms if self.portfolio.spaces[r].counting_mode == "oa")
        elif self._settings.shape == "reference":
            # The reference: a building or floor id gives counts "for that space and all its
            # children", open-area rooms included.
            watched, groups = rooms, self._groups_under(node_id)
        else:
            entry = tuple(r for r in rooms if self.portfolio.spaces[r].counting_mode == "entry")
            # A single open-area room asked for directly reports its own count.
            watched = entry or (rooms if space.is_room else ())
        with self._lock:
            now = self.clock()
            for old_id, (old, _) in list(self._tickets.items()):
                if old.expires_at < now - 60:
                    del self._tickets[old_id]
            ticket = Ticket(
                id=secrets.token_urlsafe(18),
                kind=kind,
                node_id=node_id,
                key=space.floor_id or node_id,
                space_ids=watched,
                expires_at=now + self._settings.ws_url_ttl,
                groups=groups,
            )
            self._tickets[ticket.id] = (ticket, False)
            return ticket

    def _groups_under(self, node_id: str) -> tuple[str, ...]:
        """A building or floor and every floor below it; nothing for a room."""
        space = self.portfolio.spaces[node_id]
        if space.is_room:
            return ()
        found = [node_id]
        for child in space.children_ids:
            found.extend(self._groups_under(child))
        return tuple(found)

    def claim_ticket(self, ticket_id: str) -> Ticket:
        """Use a ticket for its one connection: 503 when refusing, 404 unknown, 403 spent."""
        with self._lock:
            if self.socket_mode == "refuse" or self._closing:
                raise ApiError(503, "socket service unavailable")
            entry = self._tickets.get(ticket_id)
            if entry is None:
                raise ApiError(404, "unknown ws_url")
            ticket, used = entry
            if used:
                raise ApiError(403, "ws_url already used")
            if self.clock() >= ticket.expires_at:
                raise ApiError(403, "ws_url expired")
            self._tickets[ticket_id] = (ticket, True)
            return ticket

    def open_session(self, ticket: Ticket) -> SocketSession:
        """Register a connected socket; its connect-time refresh goes first in its queue."""
        with self._lock:
            session = SocketSession(next(self._session_ids), ticket)
            self._sessions[session.id] = session
            self._opened[ticket.key] += 1
            if self._settings.refresh_on_connect:
                session.offer("msg", self._message(session, "refresh", ticket.space_ids))
            if self._closing:
                session.request_end("close")
            elif self.socket_mode == "refuse":
                # Its ticket was claimed just before the outage began: without this, a handshake
                # in flight would survive both the refusal and a drop_sockets() made meanwhile.
                session.request_end("drop")
            return session

    def close_session(self, session: SocketSession) -> None:
        """Forget a socket that has ended."""
        with self._lock:
            self._sessions.pop(session.id, None)

    def enqueue_refresh(self, session: SocketSession) -> None:
        """Queue a full snapshot behind the `live` messages already waiting."""
        with self._lock:
            session.offer("msg", self._message(session, "refresh", session.ticket.space_ids))

    def _message(self, session: SocketSession, update_type: str, space_ids: Iterable[str]) -> str:
        counts = session.ticket.kind == "occupancy"
        space_ids = tuple(space_ids)
        data: dict[str, Any] = {}
        for group in session.ticket.groups:
            under = self.portfolio.rooms_under(group)
            # A refresh carries every group; a live message those the changed rooms are in.
            if update_type == "refresh" or any(sid in under for sid in space_ids):
                data[group] = self._group_entry(group, under)
        for sid in space_ids:
            st = self._states[sid]
            entry: dict[str, Any] = {"timestamp": iso(st.changed_at)}
            if counts:
                entry["occupancy"] = st.occupancy
            else:
                entry["presence"] = st.presence
            entry["counting_mode"] = self.portfolio.spaces[sid].counting_mode
            entry["space_health_status"] = st.health
            data[sid] = entry
        return json.dumps({"update_type": update_type, "data": data})

    def _group_entry(self, group_id: str, rooms: tuple[str, ...]) -> dict[str, Any]:
        """A floor's or building's count: the sum of its rooms, health by Density's rule."""
        states = [self._states[r] for r in rooms]
        return {
            "timestamp": iso(max((st.changed_at for st in states), default=self.wall())),
            "occupancy": sum(st.occupancy for st in states),
            "counting_mode": self.portfolio.spaces[group_id].counting_mode,
            "space_health_status": group_health([st.health for st in states]),
        }

    def set_socket_mode(self, mode: str) -> None:
        """normal, refuse (new handshakes get 503) or silent (no messages sent)."""
        if mode not in SOCKET_MODES:
            raise ValueError(f"mode must be one of {', '.join(SOCKET_MODES)}")
        with self._lock:
            if mode != self.socket_mode:
                logger.info("socket mode %s -> %s", self.socket_mode, mode)
            self.socket_mode = mode

    def _matching(self, floor_id: str | None) -> list[SocketSession]:
        return [s for s in self._sessions.values() if floor_id is None or s.ticket.key == floor_id]

    def drop_sockets(self, floor_id: str | None = None) -> int:
        """Cut open sockets (of one floor, or all) without a close frame; how many."""
        with self._lock:
            sessions = self._matching(floor_id)
            for session in sessions:
                session.request_end("drop")
        if sessions:
            logger.info("dropping %d socket(s) on %s", len(sessions), floor_id or "all floors")
        return len(sessions)

    def send_raw(self, text: str, floor_id: str | None = None) -> int:
        """Send a raw text frame to open sockets (of one floor, or all); how many."""
        with self._lock:
            sessions = self._matching(floor_id)
            for session in sessions:
                session.offer("raw", text)
        return len(sessions)

    def close_all_sockets(self, timeout: float = 3.0) -> None:
        """Close every socket and refuse new ones; cut those whose handler is stuck."""
        with self._lock:
            self._closing = True
            sessions = list(self._sessions.values())
            for session in sessions:
                session.request_end("close")
        deadline = time.monotonic() + timeout
        for session in sessions:
            if not session.done.wait(max(0.0, deadline - time.monotonic())):
                logger.warning("socket %s stuck; cutting its connection", session.id)
                session.force_shutdown()
                session.done.wait(0.5)

    # --- scenarios -----------------------------------------------------------------------

    def start_scenario(self, name: str, speed: float = 1.0) -> None:
        """Run a scenario from its beginning ("quiet" runs nothing)."""
        if name not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.stop_scenario()
        self.scenario, self.speed = name, speed
        # The wall time the scenario's day 0 began: room calendars (sim/calendars.py) map the
        # scenario's minutes onto real time from it.
        self.scenario_began = self.wall()
        if name == "day":
            self._runner = ScenarioRunner(
                lambda day: day_events(self.portfolio, self.seed, day),
                self._apply_event,
                speed,
                clock=self.clock,
            )
            self._runner.start()
            logger.info("scenario day started (seed %s, speed %s)", self.seed, speed)

    def stop_scenario(self) -> None:
        """Stop the running scenario's thread, if any."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()

    def scenario_log(self) -> list[tuple[int, ScenarioEvent]]:
        """The scenario events applied so far, as (day, event)."""
        with self._lock:
            return list(self._event_log)

    def _apply_event(self, day: int, event: ScenarioEvent) -> None:
        with self._lock:
            self._event_log.append((day, event))
        if event.kind == "presence":
            self.set_space(event.target or "", presence=bool(event.value))
        elif event.kind == "occupancy":
            self.set_space(event.target or "", occupancy=int(event.value or 0))
        elif event.kind == "health":
            self.set_space(event.target or "", health=str(event.value))
        elif event.kind == "drop":
            self.drop_sockets(event.target)
        elif event.kind == "burst_429":
            # A burst lasts its simulated time, but at least a second so a client sees it.
            seconds = max(1.0, float(event.value or 0) / self.speed)
            self.force_429(seconds, math.ceil(seconds), extend_only=True)

    # --- reset ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Counters to zero, settings and world back to the seed; open sockets get a refresh."""
        scenario, speed = self.scenario, self.speed
        self.stop_scenario()
        with self._lock:
            self._reset_state()
            for session in self._sessions.values():
                session.offer("msg", self._message(session, "refresh", session.ticket.space_ids))
        if scenario != "quiet":
            self.start_scenario(scenario, speed)
        logger.info("simulator reset to seed %s", self.seed)
