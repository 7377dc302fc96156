"""Worker scheduling policies: which workers may start now, without passing the limit.

Small pure functions over lists, used by the planner (to show the shape) and by the workflow
(to decide what to dispatch next from the durable campaign record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum

from kubeupgrade.model.campaign import WorkerStrategy


class NodeState(Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def fixed_batches(order: Sequence[str], limit: int) -> list[list[str]]:
    """Split the workers into consecutive batches of at most `limit`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return [list(order[start : start + limit]) for start in range(0, len(order), limit)]


def workers_to_start(
    order: Sequence[str],
    states: Mapping[str, NodeState],
    limit: int,
    strategy: WorkerStrategy,
) -> list[str]:
    """The workers to start now. Nothing starts once any worker has failed.

    `window`: a finished worker frees its slot at once, so a slow node holds back only itself.
    `batches`: the next batch starts only when every node of the previous one has finished.
    """
    def state(name: str) -> NodeState:
        return states.get(name, NodeState.PENDING)

    if any(state(name) is NodeState.FAILED for name in order):
        return []
    running = sum(1 for name in order if state(name) is NodeState.RUNNING)
    if strategy is WorkerStrategy.WINDOW:
        free = max(0, limit - running)
        return [name for name in order if state(name) is NodeState.PENDING][:free]
    for batch in fixed_batches(order, limit):
        unfinished = [name for name in batch if state(name) is not NodeState.SUCCEEDED]
        if unfinished:
            return [name for name in unfinished if state(name) is NodeState.PENDING]
    return []
