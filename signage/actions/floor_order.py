"""A building's floor order: Density's (its `children_ids`), or the one an admin set.

The directory applies the admin's order to the tree it hands out, so the console, the JSON API
and the kiosks' other-floors panel all read one order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signage.actions import audit
from signage.actions.displays import Invalid
from signage.core.directory import SpaceTree

if TYPE_CHECKING:
    from signage.services import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildingFloors:
    """A building and its floors in the order in force; `custom` when an admin set it."""

    id: str
    name: str
    floors: list[tuple[str, str]]  # (floor id, floor name)
    custom: bool


def _buildings(tree: SpaceTree, custom: set[str]) -> list[BuildingFloors]:
    out: dict[str, BuildingFloors] = {}
    for floor in tree.floors(building_order=True):
        building = tree.building_of(floor.id)
        if building is None:
            continue
        entry = out.setdefault(
            building.id, BuildingFloors(building.id, building.name, [], building.id in custom)
        )
        entry.floors.append((floor.id, floor.name))
    return list(out.values())


def buildings(svc: Services) -> list[BuildingFloors]:
    """Every building with its floors, in the order in force."""
    return _buildings(svc.directory.tree(), set(svc.store.floor_orders()))


def building(svc: Services, building_id: str) -> BuildingFloors | None:
    """One building with its floors in the order in force, or None when unknown."""
    return next((b for b in buildings(svc) if b.id == building_id), None)


def set_floor_order(svc: Services, building_id: str, floor_ids: object) -> BuildingFloors | None:
    """Keep an admin's order for a building's floors (an empty list: Density's order again);
    None when the building is unknown, Invalid when the list is not of its floors."""
    known = building(svc, building_id)
    if known is None:
        return None
    mine = [f for f, _ in known.floors]
    if not isinstance(floor_ids, list) or not all(isinstance(f, str) for f in floor_ids):
        raise Invalid({"floor_ids": "a list of the building's floor ids"})
    if len(set(floor_ids)) != len(floor_ids):
        raise Invalid({"floor_ids": "a floor is listed twice"})
    strangers = [f for f in floor_ids if f not in mine]
    if strangers:
        raise Invalid({"floor_ids": f"not a floor of this building: {strangers[0][:80]}"})
    # Floors left out follow the listed ones in the order they had (a client that does not
    # know a floor Density added since is not refused for it).
    order = [*floor_ids, *(f for f in mine if f not in floor_ids)] if floor_ids else []
    with audit.change(
        svc.store,
        "floor_order.set",
        "building",
        building_id,
        known.name,
        before={"floor_ids": mine, "custom": known.custom},
        after={"floor_ids": order or None, "custom": bool(order)},
    ):
        svc.store.set_floor_order(building_id, order, time.time())
    svc.directory.reload_floor_order()
    logger.info("floor order of building %s %s", building_id, "set" if order else "reset")
    for floor_id in mine:  # the kiosks' other-floors panels list the floors again, now
        svc.building.on_publish(floor_id)
    return building(svc, building_id)


def move_floor(svc: Services, building_id: str, floor_id: str, step: int) -> BuildingFloors | None:
    """Move one floor up (-1) or down (+1) in its building's order (the console's buttons)."""
    known = building(svc, building_id)
    if known is None:
        return None
    order = [f for f, _ in known.floors]
    if floor_id not in order:
        raise Invalid({"floor_id": "not a floor of this building"})
    i = order.index(floor_id)
    j = max(0, min(len(order) - 1, i + step))
    order[i], order[j] = order[j], order[i]
    return set_floor_order(svc, building_id, order)
