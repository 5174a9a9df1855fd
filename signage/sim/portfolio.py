"""The seeded demo portfolio: one building, its floors, rooms, sensors and displays."""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

TIME_ZONE = "Europe/Berlin"

# Names that read like the ones offices give their rooms; shuffled per seed.
ROOM_NAMES = (
    "Fjord", "Atlas", "Borealis", "Cedar", "Delta", "Ember", "Fable", "Glacier", "Harbor",
    "Iris", "Juniper", "Kestrel", "Lagoon", "Meridian", "Nimbus", "Orchid", "Prairie",
    "Quartz", "Ridge", "Summit", "Tundra", "Umber", "Vista", "Willow", "Zephyr", "Aurora",
    "Basalt", "Canyon", "Dune", "Estuary", "Fern", "Grove", "Heath", "Inlet", "Jasper",
    "Kelp", "Lumen", "Mesa", "Nova", "Oasis", "Pebble", "Quill", "Reef", "Sierra", "Tidal",
    "Verde", "Wren", "Yarrow", "Alder", "Birch", "Comet", "Drift", "Echo", "Flint",
)  # fmt: skip
BUILDING_NAMES = ("Harbour House", "Lindenhof", "Spreeblick", "The Foundry", "Kastanienhof")
FLOOR_NAMES = ("Ground floor", "1st floor", "2nd floor", "3rd floor")

# (function, counting_mode, capacity choices, how many: (min, max)) per floor. Entry
# counting is what doorway sensors give a cafe or a lounge; everything else is open area.
FLOOR_LAYOUTS: tuple[tuple[tuple[str, str, tuple[int, ...], tuple[int, int]], ...], ...] = (
    (
        ("cafe", "entry", (16,), (1, 1)),
        ("reception", "oa", (2, 3, 4), (1, 1)),
        ("meeting_room", "oa", (4, 6, 8, 10, 12, 16), (4, 5)),
        ("phone_booth", "oa", (1,), (2, 3)),
        ("open_collaboration_space", "oa", (6, 8, 10, 12), (1, 2)),
        ("lounge", "oa", (6, 8, 10), (1, 1)),
        ("break_room", "oa", (4, 6, 8), (1, 1)),
    ),
    (
        ("meeting_room", "oa", (4, 6, 8, 10, 12), (5, 6)),
        ("phone_booth", "oa", (1,), (3, 4)),
        ("desk_neighborhood", "oa", (8, 10, 12, 14, 16), (2, 2)),
        ("open_collaboration_space", "oa", (6, 8, 10), (1, 1)),
        ("wellness_room", "oa", (1,), (1, 1)),
        ("library", "oa", (6, 8, 10), (1, 1)),
    ),
    (
        ("lounge", "entry", (12, 14, 16), (1, 1)),
        ("meeting_room", "oa", (4, 6, 8, 10, 12, 16), (4, 5)),
        ("phone_booth", "oa", (1,), (2, 3)),
        ("desk_neighborhood", "oa", (8, 10, 12, 14, 16), (2, 2)),
        ("games_room", "oa", (4, 6, 8), (1, 1)),
        ("kitchen", "oa", (6, 8, 10), (1, 1)),
    ),
)
BOOKABLE = frozenset({"meeting_room", "phone_booth"})
BUILDING_ADDRESS = "Am Speicher 7, 10245 Berlin"
GO_LIVE = "2024-03-04T00:00:00Z"  # when the demo's sensors went live, as Density records it
DAILY_RESET = "04:00"  # local time entry counts go back to zero


@dataclass(frozen=True)
class Space:
    """One node of the space hierarchy, as `GET /v3/spaces` describes it."""

    id: str
    name: str
    space_type: str  # building, floor or space
    parent_id: str | None
    children_ids: tuple[str, ...]
    capacity: int | None
    function: str | None
    time_zone: str
    counting_mode: str | None  # oa or entry; None for buildings and floors
    labels: tuple[tuple[str, str], ...] = ()  # (label id, label name)
    floor_id: str | None = None  # the floor a room is on; a floor's own id for a floor

    @property
    def is_room(self) -> bool:
        """True for the leaves that carry sensors."""
        return self.space_type == "space"

    def to_json(self) -> dict[str, Any]:
        """The space as `GET /v3/spaces` answers it."""
        return {
            "id": self.id,
            "name": self.name,
            "space_type": self.space_type,
            "parent_id": self.parent_id,
            "children_ids": list(self.children_ids),
            "capacity": self.capacity,
            "function": self.function,
            "time_zone": self.time_zone,
            "counting_mode": self.counting_mode,
            "labels": [{"id": lid, "name": name} for lid, name in self.labels],
        }


@dataclass(frozen=True)
class Sensor:
    """A sensor serving one room: open-area sensors or a doorway counter."""

    serial_number: str
    space_id: str
    sensor_type: str  # oa or entry


@dataclass(frozen=True)
class Portfolio:
    """Everything the simulated organisation owns, fixed for a seed."""

    seed: int
    building_id: str
    floor_ids: tuple[str, ...]
    spaces: Mapping[str, Space]  # building first, then each floor followed by its rooms
    sensors: tuple[Sensor, ...]
    displays: Mapping[str, str]  # display id -> floor id
    _rooms_under: Mapping[str, tuple[str, ...]] = field(repr=False, default_factory=dict)

    def rooms(self) -> list[Space]:
        """Every room, in portfolio order."""
        return [s for s in self.spaces.values() if s.is_room]

    def rooms_under(self, space_id: str) -> tuple[str, ...]:
        """The rooms in a space's subtree; a room is its own subtree."""
        return self._rooms_under.get(space_id, ())

    def sensors_of(self, space_id: str) -> list[Sensor]:
        """The sensors serving one room."""
        return [s for s in self.sensors if s.space_id == space_id]

    def reference_json(
        self, space_id: str, visible: Container[str] | None = None
    ) -> dict[str, Any]:
        """A space as the reference's sample shows it: no `parent_id`, nested `children`.

        `children` holds the child spaces as whole objects (their own children nested in
        turn); `visible` limits them to what the caller may read (a display token's scope).
        """
        space = self.spaces[space_id]
        children = [
            self.reference_json(cid, visible)
            for cid in space.children_ids
            if visible is None or cid in visible
        ]
        room = space.is_room
        return {
            "address": BUILDING_ADDRESS if space.space_type == "building" else None,
            # Open-area rooms know occupied or not; doorway counters count people.
            "binary_occupancy": room and space.counting_mode == "oa",
            "capacity": space.capacity,
            "children": children,
            "children_ids": list(space.children_ids),
            "cost_per_sqft": 0,
            "counting_mode": space.counting_mode,
            "daily_reset": DAILY_RESET,
            "function": space.function,
            "go_live_date_utc": GO_LIVE,
            "id": space.id,
            "iwms_id": None,
            "labels": [{"id": lid, "name": name} for lid, name in space.labels],
            "name": space.name,
            "size_area": (space.capacity or 0) * 4,  # square metres: about 4 a person
            "space_type": space.space_type,
            "status": "live",
            "time_zone": space.time_zone,
        }

    def in_floor(self, space_id: str, floor_id: str) -> bool:
        """Whether a space is the floor itself or lies on it."""
        space = self.spaces.get(space_id)
        return space is not None and space.floor_id == floor_id


def build_portfolio(seed: int) -> Portfolio:
    """The demo portfolio for a seed: same seed, same ids, names and layout."""
    rng = random.Random(f"portfolio-{seed}")
    used: set[str] = set()

    def new_id(prefix: str, digits: int = 19) -> str:
        while True:
            candidate = f"{prefix}{rng.randrange(10 ** (digits - 1), 10**digits)}"
            if candidate not in used:
                used.add(candidate)
                return candidate

    def new_serial() -> str:
        alphabet = string.ascii_uppercase + string.digits
        while True:
            candidate = "".join(rng.choice(alphabet) for _ in range(7))
            if candidate not in used:
                used.add(candidate)
                return candidate

    names = list(ROOM_NAMES)
    rng.shuffle(names)
    bookable_label = (new_id("lbl_", 12), "Bookable")

    building_id = new_id("spc_")
    building_name = rng.choice(BUILDING_NAMES)
    floors: list[tuple[Space, list[Space]]] = []
    sensors: list[Sensor] = []
    displays: dict[str, str] = {}
    for level, layout in enumerate(FLOOR_LAYOUTS):
        floor_id = new_id("spc_")
        rooms: list[Space] = []
        for function, mode, capacities, (low, high) in layout:
            for _ in range(rng.randint(low, high)):
                room_id = new_id("spc_")
                rooms.append(
                    Space(
                        id=room_id,
                        name=names.pop(),
                        space_type="space",
                        parent_id=floor_id,
                        children_ids=(),
                        capacity=rng.choice(capacities),
                        function=function,
                        time_zone=TIME_ZONE,
                        counting_mode=mode,
                        labels=(bookable_label,) if function in BOOKABLE else (),
                        floor_id=floor_id,
                    )
                )
                # Big open areas need more than one sensor to cover them.
                count = 1 if mode == "entry" or (rooms[-1].capacity or 0) < 8 else 2
                sensors.extend(Sensor(new_serial(), room_id, mode) for _ in range(count))
        floor = Space(
            id=floor_id,
            name=FLOOR_NAMES[level],
            space_type="floor",
            parent_id=building_id,
            children_ids=tuple(r.id for r in rooms),
            capacity=sum(r.capacity or 0 for r in rooms),
            function=None,
            time_zone=TIME_ZONE,
            counting_mode=None,
            floor_id=floor_id,
        )
        floors.append((floor, rooms))
        for _ in range(rng.randint(1, 2)):
            display_id = "dsp_" + "".join(
                rng.choice(string.ascii_lowercase + string.digits) for _ in range(10)
            )
            displays[display_id] = floor_id

    building = Space(
        id=building_id,
        name=building_name,
        space_type="building",
        parent_id=None,
        children_ids=tuple(f.id for f, _ in floors),
        capacity=sum(f.capacity or 0 for f, _ in floors),
        function=None,
        time_zone=TIME_ZONE,
        counting_mode=None,
    )
    spaces: dict[str, Space] = {building.id: building}
    rooms_under: dict[str, tuple[str, ...]] = {}
    for floor, rooms in floors:
        spaces[floor.id] = floor
        rooms_under[floor.id] = tuple(r.id for r in rooms)
        for room in rooms:
            spaces[room.id] = room
            rooms_under[room.id] = (room.id,)
    rooms_under[building.id] = tuple(rid for f, _ in floors for rid in rooms_under[f.id])
    return Portfolio(
        seed=seed,
        building_id=building.id,
        floor_ids=tuple(f.id for f, _ in floors),
        spaces=spaces,
        sensors=tuple(sensors),
        displays=displays,
        _rooms_under=rooms_under,
    )
