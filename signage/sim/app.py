"""The simulator's Flask app: Density's public API, its sockets, and the `/_sim/` control API."""

from __future__ import annotations

import logging
import math
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask_sock import Sock
from werkzeug.exceptions import HTTPException

from signage.sim import calendars, sockets
from signage.sim.portfolio import TIME_ZONE
from signage.sim.world import ApiError, Simulator, TokenInfo, iso

logger = logging.getLogger(__name__)

YODA = "Do… or do not. There is no try. - Yoda"
API_VERSION = "1.0.2"
TIME_RESOLUTIONS = (
    "total", "hour", "day", "week", "month", "year", "weekday", "hour_of_day", "minute",
    "10minute",
)  # fmt: skip
DATA_STATUS_EARLIEST = datetime(2024, 6, 1, tzinfo=UTC)
DATA_LAG = timedelta(minutes=15)  # how far behind "now" the simulated history is complete
# Endpoints that take no bearer token: they hand tokens out.
TOKEN_ENDPOINTS = frozenset({"api.oauth_token", "api.wayfinding_token"})
SOCKET_ENDPOINT = "sockets.connect"

api = Blueprint("api", __name__)
control = Blueprint("control", __name__, url_prefix="/_sim")
socket_bp = Blueprint("sockets", __name__)
sock = Sock()


def create_app(sim: Simulator) -> Flask:
    """The Flask app serving one Simulator."""
    app = Flask(__name__)
    # Clients never need to send big frames to Density; a cap keeps memory bounded.
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": 64 * 1024}
    app.json.sort_keys = False  # keep spaces in portfolio order, as Density lists them
    app.extensions["signage_sim"] = sim
    app.register_blueprint(api)
    app.register_blueprint(control)
    app.register_blueprint(socket_bp)
    app.register_blueprint(calendars.bp)  # room calendars beside the API, as a booking system
    app.before_request(_gate)
    app.after_request(_count_status)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _sim() -> Simulator:
    return current_app.extensions["signage_sim"]


# --- the edge: counting, rate limit, auth -----------------------------------------------


def _call_key() -> str:
    rule = request.url_rule
    path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule) if rule else request.path
    return f"{request.method} {path}"


def _gate() -> None:
    sim = _sim()
    if request.path.startswith("/_sim/"):
        return
    g.counted = True
    sim.record_call(_call_key())
    if request.endpoint == SOCKET_ENDPOINT:
        # Before the upgrade, so a refusal is a plain HTTP answer as a real edge gives.
        g.ticket = sim.claim_ticket(request.view_args["ticket"])
        return
    sim.admit()
    if request.url_rule is not None and request.endpoint not in TOKEN_ENDPOINTS:
        g.token = sim.authenticate(request.headers.get("Authorization"))


def _count_status(response: Response) -> Response:
    if g.get("counted") and not g.get("upgraded"):
        _sim().record_status(response.status_code)
    return response


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"code": status, "message": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    return _error(exc.status, exc.message, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    return _error(exc.code or 500, exc.description or exc.name)


# --- request parsing --------------------------------------------------------------------


def _body() -> dict[str, Any]:
    if not request.get_data(cache=True):
        return {}
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def _id_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{key} must be a list of strings")
    return value


def _date(body: dict[str, Any], key: str, default: datetime | None = None) -> datetime:
    value = body.get(key)
    if value is None:
        if default is None:
            raise ApiError(400, f"{key} is required")
        return default
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a date-time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{key} is not a valid date-time: {value!r}") from None
    # Density reads local-time dates in the space's zone; for range checks UTC will do.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _range(body: dict[str, Any], longest: timedelta, **defaults: datetime) -> tuple[datetime, ...]:
    start = _date(body, "start_date", defaults.get("start"))
    end = _date(body, "end_date", defaults.get("end"))
    if end < start:
        raise ApiError(400, "end_date must not be before start_date")
    if end - start > longest:
        raise ApiError(400, f"date range must not exceed {longest.days} days")
    return start, end


def _exclusive_filters(body: dict[str, Any]) -> tuple[list[str] | None, list[str] | None]:
    serials, space_ids = _id_list(body, "serial_numbers"), _id_list(body, "space_ids")
    if serials is not None and space_ids is not None:
        raise ApiError(400, "serial_numbers and space_ids are mutually exclusive")
    return serials, space_ids


def _token() -> TokenInfo:
    return g.token


def _zone() -> Any:
    try:
        return ZoneInfo(TIME_ZONE)
    except ZoneInfoNotFoundError:  # a system without tz data still serves, in UTC
        return UTC


# --- info and tokens --------------------------------------------------------------------


@api.get("/v3/hello-world")
def hello_world() -> Response:
    return Response(YODA, mimetype="text/plain")


@api.get("/version")
def version() -> Response:
    return Response(API_VERSION, mimetype="text/plain")


@api.post("/v3/oauth/token")
def oauth_token() -> Any:
    body = _body()
    fields = {}
    for key in ("grant_type", "client_id", "client_secret"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise ApiError(400, f"{key} is required")
        fields[key] = body[key]
    duration = body.get("token_duration")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int) or duration <= 0
    ):
        raise ApiError(400, "token_duration must be a positive integer")
    token, lifetime = _sim().issue_oauth_token(**fields, duration=duration)
    # The reference types expires_in as a string here; clients must cope.
    return {"access_token": token, "expires_in": str(math.ceil(lifetime)), "token_type": "Bearer"}


@api.post("/v3/wayfinding/token")
def wayfinding_token() -> Any:
    fields = {}
    for key in ("grant_type", "client_id", "client_secret", "display_id"):
        value = request.form.get(key)
        if not value:
            raise ApiError(400, f"{key} is required")
        fields[key] = value
    token, lifetime = _sim().issue_display_token(**fields)
    return {
        "access_token": token,
        "expires_in": math.ceil(lifetime),
        "scope": f"display:{fields['display_id']}",
        "token_type": "Bearer",
    }


# --- spaces -----------------------------------------------------------------------------


@api.get("/v3/spaces")
def spaces() -> Any:
    sim, token = _sim(), _token()
    portfolio = sim.portfolio
    listed = list(portfolio.spaces.values())
    if token.floor_id is not None:
        # A display sees its building and its own floor, nothing of the other floors.
        listed = [
            s for s in listed if s.floor_id == token.floor_id or s.id == portfolio.building_id
        ]
    visible = {s.id for s in listed}
    mode = request.args.get("counting_mode")
    if mode:
        listed = [s for s in listed if s.counting_mode == mode]
    if sim.settings.shape == "reference":
        items = [portfolio.reference_json(s.id, visible) for s in listed]
    else:
        items = [s.to_json() for s in listed]
    if not sim.settings.spaces_envelope:
        return jsonify(items)
    # The envelope variant some integrations meet: two pages linked by `next`.
    half = math.ceil(len(items) / 2)
    if request.args.get("page") == "2":
        return {"results": items[half:], "next": None}
    args = {"page": "2", **({"counting_mode": mode} if mode else {})}
    query = "&".join(f"{k}={v}" for k, v in args.items())
    return {"results": items[:half], "next": f"{request.base_url}?{query}"}


# --- live analytics ---------------------------------------------------------------------


@api.post("/v3/analytics/presence-health")
def presence_health() -> Any:
    sim, body = _sim(), _body()
    rooms = sim.resolve_rooms(_token(), _id_list(body, "space_ids"), {"oa"})
    return _space_map(
        {
            sid: {
                "occupied": st.presence,
                "space_health_status": st.health,
                "timestamp": iso(st.changed_at),
            }
            for sid, st in sim.states(rooms).items()
        }
    )


def _space_map(by_space: dict[str, Any]) -> dict[str, Any]:
    # The reference's samples are bare maps keyed by space id; answers seen in the wild wrap
    # them in "data", which is what the default shape keeps doing.
    return by_space if _sim().settings.shape == "reference" else {"data": by_space}


@api.post("/v3/analytics/presence")
def presence() -> Any:
    sim, body = _sim(), _body()
    rooms = sim.resolve_rooms(_token(), _id_list(body, "space_ids"), {"oa"})
    return {sid: st.presence for sid, st in sim.states(rooms).items()}


@api.post("/v3/analytics/occupancy/current")
def occupancy_current() -> Any:
    sim, body = _sim(), _body()
    rooms = sim.resolve_rooms(_token(), _id_list(body, "space_ids"), {"oa", "entry"})
    return _space_map(
        {
            sid: {"count": st.occupancy, "timestamp": iso(st.changed_at)}
            for sid, st in sim.states(rooms).items()
        }
    )


@api.post("/v3/analytics/short-term")
def short_term() -> Any:
    sim, body = _sim(), _body()
    lookback = body.get("minutes_lookback", 0)
    if isinstance(lookback, bool) or not isinstance(lookback, int) or not 0 <= lookback <= 240:
        raise ApiError(400, "minutes_lookback must be an integer from 0 to 240")
    token, space_ids = _token(), _id_list(body, "space_ids")
    # Only open areas and floors are processed; a floor is present when any room on it is.
    targets: dict[str, tuple[str, ...]] = {}
    for sid in space_ids if space_ids is not None else []:
        space = sim.portfolio.spaces.get(sid)
        if space is not None and space.space_type == "floor":
            sim.check_scope(token, sid)
            targets[sid] = tuple(sim.resolve_rooms(token, [sid], {"oa"}))
    others = None if space_ids is None else [s for s in space_ids if s not in targets]
    if others is None or others:
        for room in sim.resolve_rooms(token, others, {"oa"}):
            targets[room] = (room,)
    histories = {r: sim.history(r) for rooms in targets.values() for r in rooms}
    now = sim.wall().replace(second=0, microsecond=0)
    minutes = [now - timedelta(minutes=m) for m in range(lookback, -1, -1)]
    data = [
        {
            "space_id": sid,
            "timestamp": iso(moment),
            "presence": any(_presence_at(histories[r], moment) for r in rooms),
        }
        for sid, rooms in targets.items()
        for moment in minutes
    ]
    return {"data": data}


def _presence_at(history: list[Any], moment: datetime) -> bool:
    # Before the first record the earliest known state is the best guess.
    present = history[0].presence
    for state in history:
        if state.changed_at > moment + timedelta(minutes=1):
            break
        present = state.presence
    return present


# --- sensors ----------------------------------------------------------------------------


def _sensors(body: dict[str, Any]) -> list[tuple[Any, str]]:
    """(sensor, health) pairs the request selects."""
    sim, token = _sim(), _token()
    serials, space_ids = _exclusive_filters(body)
    rooms = sim.resolve_rooms(token, space_ids, {"oa", "entry"})
    states = sim.states(rooms)
    chosen = []
    for room in rooms:
        room_sensors = sim.portfolio.sensors_of(room)
        for index, sensor in enumerate(room_sensors):
            if serials is not None and sensor.serial_number not in serials:
                continue
            chosen.append((sensor, _sensor_health(states[room].health, index)))
    return chosen


def _sensor_health(space_health: str, index: int) -> str:
    # Density's rule read backwards: a degraded space has at least one sensor not healthy;
    # the first one carries it, so a one-sensor room reports its own health.
    if space_health == "degraded":
        return "degraded" if index == 0 else "healthy"
    return space_health


@api.post("/v3/sensors/health/current")
def sensors_health_current() -> Any:
    return {
        "data": [
            {"serial_number": s.serial_number, "health_status": health, "space_id": s.space_id}
            for s, health in _sensors(_body())
        ]
    }


@api.post("/v3/sensors")
def sensors() -> Any:
    return jsonify(
        [
            {
                "serial_number": s.serial_number,
                "space_id": s.space_id,
                "sensor_type": s.sensor_type,
                "health_status": health,
            }
            for s, health in _sensors(_body())
        ]
    )


@api.post("/v3/sensors/health")
def sensors_health() -> Any:
    sim, body = _sim(), _body()
    start, end = _range(body, timedelta(days=10))
    result: dict[str, list[dict[str, str]]] = {}
    for sensor, _ in _sensors(body):
        index = sim.portfolio.sensors_of(sensor.space_id).index(sensor)
        result[sensor.serial_number] = [
            {
                "health_status": _sensor_health(state.health, index),
                "timestamp": iso(max(state.changed_at, start)),
            }
            for state in _health_changes(sim.history(sensor.space_id), start, end)
        ]
    return result


def _health_changes(history: list[Any], start: datetime, end: datetime) -> list[Any]:
    """The health in force at `start`, then each change up to `end`."""
    changes, last = [], None
    for state in history:
        if state.health != last:
            changes.append(state)
            last = state.health
    before = [c for c in changes if c.changed_at < start]
    return before[-1:] + [c for c in changes if start <= c.changed_at <= end]


# --- historical analytics ---------------------------------------------------------------


@api.post("/v3/analytics/data-status")
def data_status() -> Any:
    sim, body = _sim(), _body()
    start, end = _range(body, timedelta(days=10))
    if end - start < timedelta(minutes=5):
        raise ApiError(400, "date range must be at least 5 minutes")
    if end <= DATA_STATUS_EARLIEST:
        raise ApiError(400, "end_date must be after 2024-06-01T00:00:00Z")
    floor_ids = _id_list(body, "floor_ids")
    if floor_ids is not None and not 1 <= len(floor_ids) <= 5:
        raise ApiError(400, "floor_ids takes 1 to 5 floors")
    token = _token()
    if floor_ids is None:
        floor_ids = [token.floor_id] if token.floor_id else list(sim.portfolio.floor_ids)
    complete_until = sim.wall() - DATA_LAG
    span = (end - start).total_seconds()
    done = (min(end, complete_until) - start).total_seconds()
    completion = round(max(0.0, min(1.0, done / span)), 4)
    result = {}
    for floor_id in floor_ids:
        space = sim.portfolio.spaces.get(floor_id)
        if space is None or space.space_type != "floor":
            raise ApiError(404, f"floor {floor_id} not found")
        sim.check_scope(token, floor_id)
        result[floor_id] = {"completion": completion, "is_complete": completion >= 1.0}
    return result


@api.post("/v3/analytics/sessions/raw")
def sessions_raw() -> Any:
    sim, body = _sim(), _body()
    now = sim.wall()
    start, end = _range(body, timedelta(days=60), start=now - timedelta(days=1), end=now)
    zone = _zone()
    found = []
    rooms = sim.resolve_rooms(_token(), _id_list(body, "space_ids"), {"oa", "entry"})
    for room in rooms:
        began: datetime | None = None
        for state in sim.history(room):
            if state.presence and began is None:
                began = state.changed_at
            elif not state.presence and began is not None:
                found.append((room, began, state.changed_at))
                began = None
        if began is not None:
            found.append((room, began, None))
    sessions_out = [
        {
            "space_id": room,
            "start": b.astimezone(zone).isoformat(timespec="seconds"),
            "end": e.astimezone(zone).isoformat(timespec="seconds") if e else None,
        }
        for room, b, e in found
        if b <= end and (e is None or e >= start)
    ]
    return {"sessions": sessions_out}


def _metric_rows(kind: str) -> Any:
    sim, body = _sim(), _body()
    start, end = _date(body, "start_date"), _date(body, "end_date")
    if end < start:
        raise ApiError(400, "end_date must not be before start_date")
    resolution = body.get("time_resolution", "total")
    if resolution not in TIME_RESOLUTIONS:
        raise ApiError(400, f"time_resolution must be one of {', '.join(TIME_RESOLUTIONS)}")
    rooms = sim.resolve_rooms(_token(), _id_list(body, "space_ids"), {"oa", "entry"})
    result = {}
    for room in rooms:
        # Made-up but stable figures: the same request gets the same answer.
        rng = random.Random(f"{sim.seed}-{kind}-{room}-{start.isoformat()}-{end.isoformat()}")
        capacity = sim.portfolio.spaces[room].capacity
        peak = rng.randint(0, capacity or 3)
        avg = round(rng.uniform(0, peak), 2)
        used = rng.uniform(0, 0.8)
        row: dict[str, Any] = {
            "occupancy_avg": avg,
            "occupancy_max": peak,
            "utilization_avg": None if capacity is None else round(avg / capacity, 3),
            "utilization_max": None if capacity is None else round(peak / capacity, 3),
            "time_used_raw": int(used * (end - start).total_seconds() * 1000),
            "time_used_percentage": round(used, 3),
            "up_time": 1.0,
            "is_capped": False,
            "capped_count_limit": None,
        }
        wanted = {
            "occupancy": ("occupancy_avg", "occupancy_max", "is_capped", "capped_count_limit"),
            "time-used": ("time_used_raw", "time_used_percentage"),
            "utilization": ("utilization_avg", "utilization_max", "is_capped"),
        }.get(kind)
        if wanted is not None:
            row = {k: row[k] for k in (*wanted, "up_time")}
        result[room] = row
    return result


@api.post("/v3/analytics/metrics")
def metrics() -> Any:
    return _metric_rows("metrics")


@api.post("/v3/analytics/occupancy")
def occupancy() -> Any:
    return _metric_rows("occupancy")


@api.post("/v3/analytics/time-used")
def time_used() -> Any:
    return _metric_rows("time-used")


@api.post("/v3/analytics/utilization")
def utilization() -> Any:
    return _metric_rows("utilization")


# --- sockets ----------------------------------------------------------------------------


def _ws_url(kind: str, node_id: str) -> Any:
    ticket = _sim().create_ticket(kind, node_id, _token())
    # request.host is whatever the client used to reach us, so the URL works from there.
    return {"ws_url": f"ws://{request.host}/ws/{ticket.id}"}


@api.post("/v3/analytics/ws/floor/<floor_id>/presence")
def ws_floor_presence(floor_id: str) -> Any:
    return _ws_url("presence", floor_id)


@api.post("/v3/analytics/ws/space/<space_id>/occupancy")
def ws_space_occupancy(space_id: str) -> Any:
    return _ws_url("occupancy", space_id)


@sock.route("/ws/<ticket>", bp=socket_bp)
def connect(ws: Any, ticket: str) -> None:
    sim = _sim()
    g.upgraded = True
    sim.record_status(101)
    session = sim.open_session(g.ticket)
    sockets.serve(ws, session, sim)


# --- control API ------------------------------------------------------------------------


def _control_body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True) if request.get_data(cache=True) else {}
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


@control.get("/state")
def control_state() -> Any:
    return _sim().state()


@control.post("/spaces/<space_id>")
def control_space(space_id: str) -> Any:
    body = _control_body()
    unknown = set(body) - {"presence", "occupancy", "health"}
    if unknown:
        raise ApiError(400, f"unknown fields: {', '.join(sorted(unknown))}")
    try:
        state = _sim().set_space(space_id, **body)
    except KeyError:
        raise ApiError(404, f"no room {space_id}") from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return {
        "presence": state.presence,
        "occupancy": state.occupancy,
        "health": state.health,
        "timestamp": iso(state.changed_at),
    }


@control.post("/sockets")
def control_sockets() -> Any:
    mode = _control_body().get("mode")
    try:
        _sim().set_socket_mode(str(mode))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return {"mode": mode}


@control.post("/sockets/drop")
def control_drop() -> Any:
    return {"dropped": _sim().drop_sockets(_control_body().get("floor_id"))}


@control.post("/sockets/send")
def control_send() -> Any:
    body = _control_body()
    if not isinstance(body.get("text"), str):
        raise ApiError(400, "text must be a string")
    return {"sent": _sim().send_raw(body["text"], body.get("floor_id"))}


@control.post("/ratelimit")
def control_ratelimit() -> Any:
    body = _control_body()
    seconds, retry_after = body.get("force_429_seconds", 0), body.get("retry_after")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ApiError(400, "force_429_seconds must be a number >= 0")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int | float)
    ):
        raise ApiError(400, "retry_after must be a number")
    _sim().force_429(seconds, None if retry_after is None else math.ceil(retry_after))
    return {"force_429_seconds": seconds}


@control.post("/outage")
def control_outage() -> Any:
    body = _control_body()
    seconds, status = body.get("seconds", 0), body.get("status", 503)
    retry_after = body.get("retry_after")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ApiError(400, "seconds must be a number >= 0")
    if isinstance(status, bool) or not isinstance(status, int):
        raise ApiError(400, "status must be an integer")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int | float)
    ):
        raise ApiError(400, "retry_after must be a number")
    try:
        _sim().force_outage(
            seconds, status, None if retry_after is None else math.ceil(retry_after)
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return {"seconds": seconds, "status": status}


@control.route("/settings", methods=["GET", "POST"])
def control_settings() -> Any:
    sim = _sim()
    if request.method == "POST":
        try:
            sim.update_settings(_control_body())
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    return sim.settings.to_json()


@control.get("/calls")
def control_calls() -> Any:
    return _sim().calls()


@control.post("/reset")
def control_reset() -> Any:
    _sim().reset()
    return {"reset": True}
