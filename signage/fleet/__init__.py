"""The fleet: several processes behind one load balancer sharing floors through Redis.

One upstream socket per floor for the whole fleet, shared tokens and rate budget, fan-out of
kiosk updates, and the fleet view the console shows. Needs the `redis` package
(`pip install 'signage[scale]'`). The modules, from the link down:

  link.py     Cluster: the Redis connection, leases, the update stream, display commands
  scripts.py  the Redis keyspace and the Lua scripts that change it atomically
  feed.py     ClusterFeed: a floor mirrored from the fleet, its FloorFeed run where leased
  shared.py   Density tokens, the rate budget and attempt limits, fleet-wide
  view.py     each process's report, the fleet page's view, down alerts sent once
"""

from signage.fleet.feed import ClusterFeed
from signage.fleet.link import Cluster, ClusterHub, check_url
from signage.fleet.view import FleetAlerts, FleetView

__all__ = ["Cluster", "ClusterFeed", "ClusterHub", "FleetAlerts", "FleetView", "check_url"]
