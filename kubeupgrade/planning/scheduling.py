"""Worker scheduling policies: which workers may start now, without passing the limit.

A worker's upgrade has two parts: preparation (upgrade kubeadm, `kubeadm upgrade node`,
download packages), which takes nothing out of service and may run ahead, and the outage
(drain, install, restart, readiness, uncordon), which the limit governs.

Small pure functions over lists, used by the planner (to show the shape) and by the workflow
(to decide what to dispatch next from the durable campaign record).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
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


def current_batch(order: Sequence[str], states: Mapping[str, NodeState], limit: int) -> list[str]:
    """The first of `fixed_batches` with a worker not finished: the one `batches` runs now."""
    for batch in fixed_batches(order, limit):
        if any(states.get(name, NodeState.PENDING) in UNFINISHED for name in batch):
            return batch
    return []


Pools = Mapping[str, tuple[int, Set[str]]]  # pool name -> (its limit, its workers)


def _pool_of(pools: Pools | None) -> dict[str, str]:
    """worker -> the pool it belongs to (a worker is in one pool at most: the planner says so)."""
    return {worker: pool for pool, (_, members) in (pools or {}).items() for worker in members}


def workers_to_start(
    order: Sequence[str],
    states: Mapping[str, NodeState],
    limit: int,
    strategy: WorkerStrategy,
    eligible: Set[str] | None = None,
    pools: Pools | None = None,
    outside: Set[str] = frozenset(),
) -> list[str]:
    """The workers to take out of service now. Nothing starts once any worker has failed
    (beyond the failure budget: those within it are FAILED_IN/OUT_OF_SERVICE).

    `outside`: workers of the cluster out of service now but not by this campaign (cordoned by
    someone else, not Ready), in this order or not. Each holds a slot, globally and in its
    pool, as the campaign's own do: the limit is on the cluster's workers out of service. One
    of them that may start goes first and needs no free slot (it is out already: its outage
    takes nothing more out of service), only room in the campaign's own count of outages.

    `window`: a finished worker frees its slot at once, so a slow node holds back only itself.
    `batches`: the next batch starts only when every node of the previous one has finished.
    `eligible`: when given, only these pending workers may start (the others are still being
    prepared: packages downloaded, kubeadm upgraded); they keep their place in the order.
    `pools`: a worker of a pool also needs a free slot in its pool; one that has none waits
    and the next in order may go.
    """
    def state(name: str) -> NodeState:
        return states.get(name, NodeState.PENDING)

    def may_start(name: str) -> bool:
        return state(name) is NodeState.PENDING and (eligible is None or name in eligible)

    # One pass: this runs on every dispatcher tick, over thousands of workers.
    pool_of = _pool_of(pools)
    held: Counter[str] = Counter()
    out = 0
    for name in order:
        current = state(name)
        if current is NodeState.FAILED:
            return []
        if current in HOLDING_A_SLOT:
            out += 1
            if name in pool_of:
                held[pool_of[name]] += 1
    own, own_held = out, Counter(held)  # the campaign's own outages, before the others'
    for name in outside:
        if state(name) not in HOLDING_A_SLOT:  # counted once, as the campaign's own
            out += 1
            if name in pool_of:
                held[pool_of[name]] += 1
    if eligible is not None and not eligible:
        return []
    free = max(0, limit - out)

    def pool_takes(counts: Counter[str], name: str) -> bool:
        """Whether the worker's pool (if it has one) has room by `counts`; counted in if so."""
        pool = pool_of.get(name)
        if pool is None:
            return True
        if counts[pool] >= (pools or {})[pool][0]:
            return False
        counts[pool] += 1
        return True

    # Out already: each goes in its own slot, as long as the campaign's own outages stay
    # within its limits too (its record, which audit.py checks before success, knows only those).
    already: list[str] = []
    for name in order if outside else ():
        if name in outside and may_start(name) and own < limit and pool_takes(own_held, name):
            own += 1
            already.append(name)

    def take(candidates: Iterable[str], first: list[str]) -> list[str]:
        chosen: list[str] = list(first)
        for name in candidates:
            if len(chosen) - len(first) >= free:
                break
            if name in outside:
                continue  # in `already` if it may start
            if pool_takes(held, name):
                chosen.append(name)
        return chosen

    if strategy is WorkerStrategy.WINDOW:
        return take((name for name in order if may_start(name)), already)  # stops once the window is full
    # A batch never fills past the limit, but a record can hold workers out of service outside
    # it (edited by hand, or restored from an older copy): count them too.
    unfinished = [name for name in current_batch(order, states, limit) if state(name) in UNFINISHED]
    return take([name for name in unfinished if may_start(name)],
                [name for name in already if name in unfinished])


def workers_to_prepare(
    order: Sequence[str],
    preparing: Set[str],
    prepared_waiting: Set[str],
    unprepared: Set[str],
    limit: int,
    pools: Pools | None = None,
    ahead_per_lane: int = 0,
) -> list[str]:
    """Workers whose preparation (no outage: kubeadm, packages download) may start now, in
    order. Each lane (each pool, and the workers in no pool) keeps up to `ahead_per_lane`
    workers prepared or being prepared ahead of the window; 0 means twice the lane's own limit
    (`limit` for the workers in no pool), so the outages never wait for preparation when it
    takes about as long as an outage. Lanes are separate, so a full pool does not starve the
    others of prepared workers."""
    pool_of = _pool_of(pools)
    ahead = Counter(pool_of.get(name) for name in set(preparing) | set(prepared_waiting))
    chosen = []
    for name in order:
        if name not in unprepared:
            continue
        lane = pool_of.get(name)
        room = ahead_per_lane or 2 * (limit if lane is None else (pools or {})[lane][0])
        if ahead[lane] < room:
            chosen.append(name)
            ahead[lane] += 1
    return chosen


def gate_boundaries(workers: int, canary: int, every: int) -> list[int]:
    """Where the health gate runs in a hop's worker order: after the first `canary` workers,
    then after every `every` more; never after the last worker (verification follows)."""
    boundaries = []
    position = canary if canary else every
    while every or canary:
        if not 0 < position < workers:
            break
        boundaries.append(position)
        if not every:
            break
        position += every
    return boundaries
