"""What the broker's memory settings mean for kubeupgrade, from one `INFO memory` (which every
broker role may run).

kubeupgrade keeps its truth in Redis: campaign records, the cluster locks, the dispatcher's
lease. A Redis that evicts keys when it reaches its maxmemory can drop any of them without a
word: a cluster lock gone lets a second campaign act on the cluster (promise 2), a record gone
leaves cordons nobody names. deploy/redis sets `maxmemory-policy noeviction`: at its limit the
broker refuses writes instead, which is loud (status says it, see `memory_pressure`) and loses
nothing.
- allkeys-* policies may evict any key: the controller refuses to start on such a broker.
- volatile-* policies evict only keys with a time to live (liveness beats, leases, notices,
  outage counts): each is built to expire, so the controller starts, with a warning, and
  `doctor` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from kubeupgrade.errors import InvalidInput

# At or above this share of its maxmemory the broker refuses writes now and then (memory moves
# with every task), so status warns from here.
NEARLY_FULL = 0.95
FIX = "set `maxmemory-policy noeviction` (deploy/redis/kubeupgrade-redis.conf)"
# What to do about a broker at its maxmemory (status, and a phase whose writes it refused).
MORE_MEMORY = ("Give it more (maxmemory in deploy/redis/kubeupgrade-redis.conf, or `CONFIG SET "
               "maxmemory`) or free some (`kubeupgrade prune`)")


@dataclass(frozen=True)
class BrokerMemory:
    used: int  # bytes
    maxmemory: int  # bytes; 0: no limit
    policy: str  # maxmemory-policy

    @property
    def evicts_any_key(self) -> bool:
        return self.policy.startswith("allkeys-")

    @property
    def evicts_expiring_keys(self) -> bool:
        return self.policy.startswith("volatile-")

    @property
    def nearly_full(self) -> bool:
        return bool(self.maxmemory) and self.used >= self.maxmemory * NEARLY_FULL

    def describe(self) -> str:
        limit = f"of its maxmemory {self.maxmemory / 2**20:.1f} MiB" if self.maxmemory else "(no maxmemory)"
        return f"{self.used / 2**20:.1f} MiB used {limit}, maxmemory-policy {self.policy}"


def read_memory(client: redis.Redis) -> BrokerMemory | None:
    """The broker's memory and eviction policy; None if it would not say."""
    try:
        info: dict[str, Any] = client.info("memory")
        return BrokerMemory(int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)),
                            str(info.get("maxmemory_policy", "noeviction")))
    except (redis.RedisError, ValueError, TypeError):
        return None


def memory_pressure(client: redis.Redis) -> dict[str, int] | None:
    """The used memory and maxmemory when the broker is at or near its maxmemory (status says it:
    at its limit every write is refused, so nothing moves and nothing can even record why)."""
    memory = read_memory(client)
    return {"used": memory.used, "maxmemory": memory.maxmemory} if memory and memory.nearly_full else None


def refuse_evicting_broker(client: redis.Redis) -> str | None:
    """InvalidInput if the broker may evict any key; a warning to log if it may evict keys with a
    time to live; None if it evicts nothing (or would not say: the broker's own settings are
    then `doctor`'s to check)."""
    memory = read_memory(client)
    if memory is None:
        return None
    if memory.evicts_any_key:
        raise InvalidInput(f"the broker may evict any key (maxmemory-policy {memory.policy}): campaign "
                           f"records, cluster locks and leases could vanish without a word; {FIX}")
    if memory.evicts_expiring_keys:
        return (f"the broker evicts keys with a time to live when full (maxmemory-policy {memory.policy}): "
                f"liveness and leases then lapse early; {FIX}")
    return None
