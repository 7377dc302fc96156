"""Worker scheduling policies: which workers may start now, without passing the limit.

A worker's upgrade has two parts: preparation (upgrade kubeadm, `kubeadm upgrade node`,
download packages), which takes nothing out of service and may run ahead, and the outage
(drain, install, restart, readiness, uncordon), which the limit governs.

Small pure functions over lists, used by the planner (to show the shape) and by the workflow
(to decide what to dispatch next from the durable campaign record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from enum import Enum

from kubeupgrade.model.campaign import WorkerStrategy


class NodeState(Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # stops every new start
    # Failed within the campaign's failure budget (policies.max_failed_workers): done as far as
    # scheduling goes; one left out of service (cordoned) keeps holding its slot.
    FAILED_IN_SERVICE = "failed-in-service"
    FAILED_OUT_OF_SERVICE = "failed-out-of-service"


HOLDING_A_SLOT = (NodeState.RUNNING, NodeState.FAILED_OUT_OF_SERVICE)
UNFINISHED = (NodeState.PENDING, NodeState.RUNNING)


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
    eligible: Set[str] | None = None,
) -> list[str]:
    """The workers to take out of service now. Nothing starts once any worker has failed.

    `window`: a finished worker frees its slot at once, so a slow node holds back only itself.
    `batches`: the next batch starts only when every node of the previous one has finished.
    `eligible`: when given, only these pending workers may start (the others are still being
    prepared: packages downloaded, kubeadm upgraded); they keep their place in the order.
    """
    def state(name: str) -> NodeState:
        return states.get(name, NodeState.PENDING)

    def may_start(name: str) -> bool:
        return state(name) is NodeState.PENDING and (eligible is None or name in eligible)

    if any(state(name) is NodeState.FAILED for name in order):
        return []
    running = sum(1 for name in order if state(name) in HOLDING_A_SLOT)
    free = max(0, limit - running)
    if strategy is WorkerStrategy.WINDOW:
        return [name for name in order if may_start(name)][:free]
    for batch in fixed_batches(order, limit):
        unfinished = [name for name in batch if state(name) in UNFINISHED]
        if unfinished:
            # A batch never fills past the limit, but a record can hold workers out of service
            # outside it (edited by hand, or restored from an older copy): count them too.
            return [name for name in unfinished if may_start(name)][:free]
    return []


def workers_to_prepare(
    order: Sequence[str],
    preparing: Set[str],
    prepared_waiting: Set[str],
    unprepared: Set[str],
    depth: int,
) -> list[str]:
    """Workers whose preparation (no outage: kubeadm, packages download) may start now, in
    order, keeping at most `depth` workers prepared or being prepared ahead of the window."""
    budget = depth - len(preparing) - len(prepared_waiting)
    return [name for name in order if name in unprepared][: max(0, budget)]
