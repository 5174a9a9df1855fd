"""The fleet: several processes behind one load balancer sharing floors through Redis.

One upstream socket per floor for the whole fleet, shared tokens and rate budget, fan-out of
kiosk updates, and the fleet view the console shows. Needs the `redis` package
(`pip install 'signage[scale]'`).
"""

from signage.fleet.cluster import Cluster, check_url

__all__ = ["Cluster", "check_url"]
