"""Node pools: which workers each pool holds and how many of them may be out at once. Pure.

A pool is a label selector with its own `max_unavailable` (a count, or a percent of the pool's
workers in the hop), applied on top of the global limit. A worker in no pool is held only to
the global limit; a worker two pools select is refused, because which limit holds it would be
a guess.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubeupgrade.kube.selectors import label_selector
from kubeupgrade.model.campaign import NodeSpec, Pool
from kubeupgrade.model.plan import PoolSchedule, Violation


def _labels(node: NodeSpec) -> dict[str, object]:
    return {"metadata": {"labels": dict(node.labels)}}


def pool_schedules(pools: Sequence[Pool], workers: Sequence[NodeSpec]) -> tuple[PoolSchedule, ...]:
    schedules = []
    for pool in pools:
        selects = label_selector(pool.selector)
        members = tuple(node.name for node in workers if selects(_labels(node)))
        schedules.append(PoolSchedule(pool.name, pool.max_unavailable.resolve(len(members)), members))
    return tuple(schedules)


def pool_violations(pools: Sequence[Pool], workers: Sequence[NodeSpec]) -> list[Violation]:
    seen: dict[str, str] = {}
    found = []
    for schedule in pool_schedules(pools, workers):
        for name in schedule.workers:
            if name in seen:
                found.append(Violation("pool-overlap", f"worker {name} is in pools {seen[name]!r} and "
                                       f"{schedule.name!r}; make their selectors exclusive", name))
            seen.setdefault(name, schedule.name)
    return found


def pool_notes(pools: Sequence[Pool], workers: Sequence[NodeSpec]) -> list[str]:
    return [f"pool {schedule.name!r} ({pool.selector}) selects no worker"
            for pool, schedule in zip(pools, pool_schedules(pools, workers), strict=True)
            if not schedule.workers]
