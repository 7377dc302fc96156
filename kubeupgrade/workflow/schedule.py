"""What the engine keeps of a hop's plan, in the record: who goes in which order under which
limit. Written once at acceptance from the planner's values, read by the dispatcher, the
cluster tasks and the status view. The engine's own format, not the CLI's `plan -o json`, so
either can change without breaking the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from kubeupgrade.model.campaign import WorkerStrategy
from kubeupgrade.model.plan import Hop, PoolSchedule


@dataclass(frozen=True)
class HopSchedule:
    control_planes: tuple[str, ...]  # strictly in this order, one chain
    first_control_plane: str | None  # runs `kubeadm upgrade apply` (None: apply already done)
    workers: tuple[str, ...]  # in this order
    strategy: WorkerStrategy
    limit: int  # workers out of service at once
    pools: tuple[PoolSchedule, ...] = ()  # each with its own limit, on top of `limit`
    left_alone: tuple[str, ...] = ()  # workers out of the campaign's scope: they keep their kubelet

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.control_planes + self.workers

    @cached_property
    def node_set(self) -> frozenset[str]:
        return frozenset(self.control_planes) | frozenset(self.workers)

    @classmethod
    def of(cls, hop: Hop) -> HopSchedule:
        return cls(tuple(n.name for n in hop.control_planes), hop.first_control_plane,
                   tuple(hop.schedule.order), hop.schedule.strategy, hop.schedule.limit,
                   hop.schedule.pools, hop.out_of_scope)

    def to_dict(self) -> dict[str, Any]:
        return {"control_planes": list(self.control_planes),
                "first_control_plane": self.first_control_plane, "workers": list(self.workers),
                "strategy": self.strategy.value, "limit": self.limit,
                "pools": [{"name": p.name, "limit": p.limit, "workers": list(p.workers)}
                          for p in self.pools],
                "left_alone": list(self.left_alone)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HopSchedule:
        return cls(tuple(data["control_planes"]), data["first_control_plane"],
                   tuple(data["workers"]), WorkerStrategy(data["strategy"]), int(data["limit"]),
                   tuple(PoolSchedule(p["name"], int(p["limit"]), tuple(p["workers"]))
                         for p in data.get("pools", [])),
                   tuple(data.get("left_alone", ())))

    def pool_limits(self) -> dict[str, tuple[int, frozenset[str]]]:
        """pool name -> (its limit, its workers), for the dispatcher's decision."""
        return {p.name: (p.limit, frozenset(p.workers)) for p in self.pools}


def schedule_of(doc: dict[str, Any], hop: int) -> HopSchedule:
    """The hop's schedule from the record (records accepted before it was kept there carry
    only the plan: read that one the same way)."""
    stored = doc["hops"][hop].get("schedule")
    if stored is not None:
        return HopSchedule.from_dict(stored)
    planned = doc["plan"]["hops"][hop]
    return HopSchedule(tuple(planned["control_planes"]), planned.get("first_control_plane"),
                       tuple(planned["workers"]["order"]), WorkerStrategy(planned["workers"]["strategy"]),
                       int(planned["workers"]["max_unavailable"]))
