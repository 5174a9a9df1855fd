"""The built-in Density simulator: the public API, its sockets and a control API for tests."""

from __future__ import annotations

from signage.sim.server import SimServer, run_forever
from signage.sim.settings import SimSettings
from signage.sim.world import Simulator

__all__ = ["SimServer", "SimSettings", "Simulator", "run_forever"]
