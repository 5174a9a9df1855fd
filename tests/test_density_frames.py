"""Property tests for parse_frame: only MalformedFrame escapes, valid frames round-trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signage.density import MalformedFrame, SpaceUpdate, StreamMessage, parse_frame
from signage.density.errors import BadResponse, DensityError

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A recorded frame in the shape Density's websocket documentation gives.
DOC_FRAME = """{"update_type": "refresh",
 "data": {"spc_123": {"timestamp": "2023-12-01T03:09:38Z", "presence": false,
                       "counting_mode": "oa", "space_health_status": "healthy"},
          "spc_456": {"timestamp": "2023-12-01T13:18:20Z", "presence": true,
                       "counting_mode": "oa", "space_health_status": "healthy"}}}"""

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)

space_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=24
)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
healths = st.sampled_from(["healthy", "degraded", "offline", "unknown"])


@st.composite
def valid_entries(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["oa", "entry"]))
    entry: dict[str, Any] = {
        "timestamp": draw(timestamps).isoformat().replace("+00:00", "Z"),
        "counting_mode": mode,
        "space_health_status": draw(healths),
    }
    if mode == "oa":
        entry["presence"] = draw(st.booleans())
    else:
        entry["occupancy"] = draw(st.integers(min_value=0, max_value=10_000))
    return entry


valid_frames = st.fixed_dictionaries(
    {
        "update_type": st.sampled_from(["refresh", "live"]),
        "data": st.dictionaries(space_ids, valid_entries(), max_size=8),
    }
)


def assert_only_malformed(data: Any) -> StreamMessage | None:
    try:
        message = parse_frame(data, max_bytes=64 * 1024)
    except MalformedFrame:
        return None
    assert isinstance(message, StreamMessage)
    assert message.update_type in ("refresh", "live")
    assert message.skipped >= 0
    assert all(isinstance(u, SpaceUpdate) for u in message.updates)
    return message


def test_documented_frame() -> None:
    message = parse_frame(DOC_FRAME, received_at=12.5)
    assert message.update_type == "refresh" and message.is_refresh
    assert message.received_at == 12.5 and message.skipped == 0
    assert [u.space_id for u in message.updates] == ["spc_123", "spc_456"]
    assert message.by_space["spc_456"].presence is True
    assert message.by_space["spc_123"] == SpaceUpdate(
        space_id="spc_123",
        counting_mode="oa",
        presence=False,
        occupancy=None,
        health="healthy",
        timestamp=datetime(2023, 12, 1, 3, 9, 38, tzinfo=UTC),
    )
    assert parse_frame(DOC_FRAME.encode()).updates == message.updates


def test_malformed_frame_is_a_bad_response_and_a_density_error() -> None:
    assert issubclass(MalformedFrame, BadResponse)
    assert issubclass(MalformedFrame, DensityError)


@PROPERTY
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_only_malformed(data)


@PROPERTY
@given(st.text(max_size=512))
def test_arbitrary_text(data: str) -> None:
    # Includes lone surrogates, which cannot even be encoded as UTF-8.
    assert_only_malformed(data)


@PROPERTY
@given(json_values)
def test_arbitrary_json_values(value: Any) -> None:
    assert_only_malformed(json.dumps(value))


@PROPERTY
@given(
    st.fixed_dictionaries(
        {"update_type": st.sampled_from(["refresh", "live"]) | json_values, "data": json_values}
    )
)
def test_frame_shaped_objects_with_arbitrary_fields(value: dict[str, Any]) -> None:
    message = assert_only_malformed(json.dumps(value))
    if message is not None:
        # A frame that parses accounts for every entry: kept or skipped.
        assert len(message.updates) + message.skipped == len(value["data"])


@PROPERTY
@given(
    st.fixed_dictionaries(
        {
            "update_type": st.sampled_from(["refresh", "live"]),
            "data": st.dictionaries(space_ids, json_values, max_size=6),
        }
    )
)
def test_arbitrary_entries_are_kept_or_skipped_never_fatal(value: dict[str, Any]) -> None:
    message = parse_frame(json.dumps(value))
    assert len(message.updates) + message.skipped == len(value["data"])


@PROPERTY
@given(valid_frames)
def test_valid_frames_round_trip(frame: dict[str, Any]) -> None:
    for wire in (json.dumps(frame), json.dumps(frame).encode()):
        message = parse_frame(wire)
        assert message.update_type == frame["update_type"]
        assert message.skipped == 0
        assert set(message.by_space) == set(frame["data"])
        for update in message.updates:
            entry = frame["data"][update.space_id]
            assert update.counting_mode == entry["counting_mode"]
            assert update.presence == entry.get("presence")
            assert update.occupancy == entry.get("occupancy")
            assert update.health == entry["space_health_status"]
            assert update.timestamp == datetime.fromisoformat(entry["timestamp"])
            # as_dict speaks Density's field names, so it parses back to the same update.
            again = dict(update.as_dict())
            del again["space_id"]
            reparsed = parse_frame(
                json.dumps({"update_type": "live", "data": {update.space_id: again}})
            )
            assert reparsed.updates == (update,)


@PROPERTY
@given(valid_frames, st.sampled_from(["", "Refresh", "snapshot", "LIVE", 1, None, True, []]))
def test_unknown_update_types_are_rejected(frame: dict[str, Any], update_type: Any) -> None:
    frame["update_type"] = update_type
    with pytest.raises(MalformedFrame):
        parse_frame(json.dumps(frame))


@pytest.mark.parametrize(
    "frame",
    [
        {"data": {}},  # no update_type
        {"update_type": "refresh"},  # no data
        {"update_type": "refresh", "data": []},
        {"update_type": "refresh", "data": "spc_1"},
        {"update_type": "refresh", "data": None},
        ["refresh", {}],
        "refresh",
        42,
        None,
    ],
)
def test_frame_level_errors(frame: Any) -> None:
    with pytest.raises(MalformedFrame):
        parse_frame(json.dumps(frame))


@pytest.mark.parametrize(
    "entry",
    [
        "occupied",
        None,
        [],
        {},  # says nothing about the space
        {"timestamp": "2023-12-01T03:09:38Z", "counting_mode": "oa"},
        {"presence": "true"},
        {"presence": 1},
        {"occupancy": True},
        {"occupancy": -1},
        {"occupancy": 2.5},
        {"occupancy": "3 people"},
        {"occupancy": "3.5"},
        {"occupancy": float("inf")},
        {"presence": True, "space_health_status": 3},
        {"presence": True, "counting_mode": ["oa"]},
        {"presence": True, "timestamp": True},
        {"presence": True, "timestamp": {"iso": "2023"}},
    ],
)
def test_bad_entries_are_skipped_and_counted(entry: Any) -> None:
    good = {"presence": True, "space_health_status": "healthy"}
    frame = {"update_type": "live", "data": {"spc_good": good, "spc_bad": entry}}
    message = parse_frame(json.dumps(frame))
    assert [u.space_id for u in message.updates] == ["spc_good"]
    assert message.skipped == 1


def test_lenient_entry_variants() -> None:
    frame = {
        "update_type": "live",
        "data": {
            "spc_a": {"occupied": True, "health_status": "DEGRADED"},
            "spc_b": {"count": 3, "health": "offline"},
            "spc_c": {"presence": None, "space_health_status": "exploded"},
            "spc_d": {"space_health_status": "offline"},  # a health-only change
            "spc_e": {"presence": False, "timestamp": "yesterday"},  # unreadable: no timestamp
        },
    }
    by_space = parse_frame(json.dumps(frame)).by_space
    assert by_space["spc_a"].presence is True and by_space["spc_a"].health == "degraded"
    assert by_space["spc_b"].occupancy == 3 and by_space["spc_b"].health == "offline"
    assert by_space["spc_c"].presence is None and by_space["spc_c"].health == "unknown"
    assert by_space["spc_d"].presence is None and by_space["spc_d"].health == "offline"
    assert by_space["spc_e"].presence is False and by_space["spc_e"].timestamp is None


@pytest.mark.parametrize("as_bytes", [False, True])
def test_oversized_frames_are_rejected(as_bytes: bool) -> None:
    big = {"update_type": "refresh", "data": {f"spc_{n}": {"presence": True} for n in range(5000)}}
    wire: str | bytes = json.dumps(big)
    if as_bytes:
        wire = wire.encode()
    assert parse_frame(wire, max_bytes=len(wire))  # exactly at the limit is fine
    with pytest.raises(MalformedFrame):
        parse_frame(wire, max_bytes=len(wire) - 1)


def test_multibyte_text_is_measured_in_utf8_bytes() -> None:
    frame = json.dumps(
        {"update_type": "live", "data": {"spc_é" * 100: {"presence": True}}}, ensure_ascii=False
    )
    size = len(frame.encode())
    assert size > len(frame)
    assert parse_frame(frame, max_bytes=size)
    with pytest.raises(MalformedFrame):
        parse_frame(frame, max_bytes=size - 1)


@pytest.mark.parametrize(
    "wire",
    [
        "[" * 100_000 + "]" * 100_000,  # deep nesting: RecursionError inside json
        '{"update_type": "live", "data": {"a": {"occupancy": ' + "9" * 5000 + "}}}",  # int limit
        b"\xef\xbb\xbf" + DOC_FRAME.encode(),  # a BOM is not JSON
        '{"update_type": "live", "data": {"a": {"presence": NaN}}}',
    ],
)
def test_pathological_inputs(wire: str | bytes) -> None:
    try:
        message = parse_frame(wire, max_bytes=1 << 20)
    except MalformedFrame:
        return
    assert message.skipped == 1  # NaN presence: the frame parses, the entry is skipped


@pytest.mark.parametrize(
    ("entry", "count", "capped"),
    [
        ({"occupancy": 3}, 3, False),
        ({"occupancy": "3"}, 3, False),
        ({"occupancy": 3.0}, 3, False),
        ({"occupancy": " 3 "}, 3, False),
        ({"occupancy": "3+"}, 3, True),
        ({"occupancy": 3, "is_capped": True}, 3, True),
        ({"occupancy": 5, "capped_count_limit": 3}, 3, True),
        ({"occupancy": "3+", "capped_count_limit": 3}, 3, True),
        ({"occupancy": 2, "capped_count_limit": 3}, 2, False),
        ({"count": 0}, 0, False),
    ],
)
def test_counts_are_read_the_same_on_the_socket_and_rest(entry: Any, count: int, capped: bool):
    """ "3", 3.0 and Waffle's "3+" are counts on the socket as on occupancy/current."""
    from signage.density.models import Occupancy

    frame = {"update_type": "live", "data": {"spc_e": {**entry, "counting_mode": "entry"}}}
    update = parse_frame(json.dumps(frame)).by_space["spc_e"]
    assert (update.occupancy, update.capped) == (count, capped)
    rest = Occupancy.from_json(
        "spc_e",
        {
            "count": entry.get("occupancy", entry.get("count")),
            **{k: v for k, v in entry.items() if k not in ("occupancy", "count")},
        },
    )
    assert rest is not None and (rest.count, rest.capped) == (count, capped)
    # A frame without a health field says nothing of health (not "unknown").
    assert update.health is None
