"""The dispatcher's decisions, pure: from a hop's node entries (as the record stores them) to
which nodes to send what. No I/O, no clock: the dispatcher reads the record, asks these
functions, then checks agents are alive and sends. Unit-tested with tables and hypothesis
properties (tests/unit/test_decide.py): never more workers out of service than the limit,
never two control-plane chains, nothing new once a worker failed, and every worker finishes.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import NamedTuple

from kubeupgrade.model.campaign import WorkerStrategy
from kubeupgrade.model.phases import names_where
from kubeupgrade.model.wording import some_names
from kubeupgrade.planning.scheduling import (
    HOLDING_A_SLOT,
    NodeState,
    Pools,
    current_batch,
    workers_to_prepare,
    workers_to_start,
)
from kubeupgrade.workflow.audit import OUTAGE_PHASES, outage_begun, outage_start
from kubeupgrade.workflow.schema import NodeEntry, PhaseRecord

Entry = NodeEntry


def first_open_phase(entry: Entry) -> PhaseRecord | None:
    return next((p for p in entry["phases"] if p["state"] != "succeeded"), None)


def in_flight(entry: Entry) -> bool:
    phase = first_open_phase(entry)
    return phase is not None and phase["state"] in ("pending", "running") and bool(phase["task_id"])


def prepared(entry: Entry) -> bool:
    """Every phase before the outage has succeeded."""
    return all(p["state"] == "succeeded" for p in entry["phases"][: outage_start(entry)])


def facts(entry: Entry) -> tuple[bool, bool]:
    """(prepared(entry), in_flight(entry)) in one walk of the phase list, stopping as soon as
    both are known: the dispatcher asks this of every worker on every tick."""
    ready, outage = True, False
    for phase in entry["phases"]:
        outage = outage or phase["phase"] in OUTAGE_PHASES
        if phase["state"] != "succeeded":  # the first open phase decides in_flight
            flying = phase["state"] in ("pending", "running") and bool(phase["task_id"])
            if outage:
                return ready, flying
            # Before the outage: not prepared; and nothing later can change either answer.
            return False, flying
    return ready, False


class WorkerFacts(NamedTuple):
    """What decide_workers asks of one worker's entry, all of it from that entry alone: the
    dispatcher keeps it per entry object (hop_view), so a tick at thousands of workers walks
    no phase list of an entry that did not change."""

    prepared: bool
    in_flight: bool
    state: NodeState  # where the worker stands for the scheduling policies
    resume: bool  # its outage began and nothing of it is in flight: resumed first


def worker_facts(entry: Entry) -> WorkerFacts:
    ready, flying = facts(entry)
    state, resume = entry["state"], False
    if state == "failed":
        node_state = NodeState.FAILED_OUT_OF_SERVICE if out_of_service(entry) else NodeState.FAILED_IN_SERVICE
    elif state == "succeeded":
        node_state = NodeState.SUCCEEDED
    elif not ready:
        node_state = NodeState.PENDING
    elif flying:
        node_state = NodeState.RUNNING
    elif out_of_service(entry):  # its outage began and nothing of it is in flight
        node_state, resume = NodeState.RUNNING, True
    else:
        node_state = NodeState.PENDING
    return WorkerFacts(ready, flying, node_state, resume)


_FAILED = (NodeState.FAILED_IN_SERVICE, NodeState.FAILED_OUT_OF_SERVICE)
_ENDED = (NodeState.SUCCEEDED, *_FAILED)


def out_of_service(entry: Entry) -> bool:
    """A worker counts against the limit from the moment its outage begins (or its outage
    chain is sent) until it has succeeded; a failed one stays out (it is left cordoned)."""
    if entry["state"] == "succeeded":
        return False
    return outage_begun(entry) or (prepared(entry) and in_flight(entry))


class _Positions:
    """Positions in the worker order, kept sorted: the first k in order are a slice."""

    def __init__(self) -> None:
        self.sorted: list[int] = []

    def add(self, position: int) -> None:
        bisect.insort(self.sorted, position)

    def __contains__(self, position: int) -> bool:
        at = bisect.bisect_left(self.sorted, position)
        return at < len(self.sorted) and self.sorted[at] == position

    def discard(self, position: int) -> None:
        at = bisect.bisect_left(self.sorted, position)
        if at < len(self.sorted) and self.sorted[at] == position:
            del self.sorted[at]


class WorkerIndex:
    """A hop's workers grouped by what decide_workers asks of them, kept up to date one entry
    at a time (`put` when an entry is new or changed, `drop` when it is gone): a tick at
    thousands of workers then decides on counts and sorted positions instead of walking every
    worker. Pure: the dispatcher's HopView feeds it the entries it reads."""

    def __init__(self, order: Sequence[str]) -> None:
        self.order = tuple(order)
        self.position = {name: at for at, name in enumerate(self.order)}
        self.facts: dict[str, WorkerFacts] = {}
        self.states: Counter[NodeState] = Counter()
        self.in_flight = 0
        self.preparing = 0  # not prepared, preparation in flight
        self.failed, self.resume = _Positions(), _Positions()
        self.eligible = _Positions()  # prepared, not started
        self.unprepared = _Positions()  # preparation not sent
        self.not_started = _Positions()  # state PENDING: neither out of service nor ended

    def put(self, name: str, worker: WorkerFacts) -> None:
        """`worker`: worker_facts of the node's entry as read now."""
        if name not in self.position:
            return
        self.drop(name)
        self._count(name, worker, 1)

    def drop(self, name: str) -> None:
        known = self.facts.get(name)
        if known is not None:
            self._count(name, known, -1)

    def _count(self, name: str, worker: WorkerFacts, sign: int) -> None:
        at = self.position[name]
        if sign > 0:
            self.facts[name] = worker
        else:
            del self.facts[name]
        self.states[worker.state] += sign
        self.in_flight += sign * worker.in_flight
        groups = []
        if worker.state in _FAILED:
            groups.append(self.failed)
        elif worker.state is NodeState.PENDING:
            groups.append(self.not_started)
        if worker.resume:
            groups.append(self.resume)
        if worker.prepared:
            if worker.state is NodeState.PENDING:
                groups.append(self.eligible)
        elif worker.state not in _FAILED:
            if worker.in_flight:
                self.preparing += sign
            else:
                groups.append(self.unprepared)
        for group in groups:
            (group.add if sign > 0 else group.discard)(at)

    def complete(self, order: Sequence[str]) -> bool:
        """Whether it indexes exactly `order`, every worker of it present."""
        return len(self.facts) == len(self.order) and tuple(order) == self.order

    def names(self, positions: Sequence[int]) -> list[str]:
        return [self.order[at] for at in positions]


@dataclass(frozen=True)
class HeldBack:
    """A limit full while a prepared worker waits on it: what the campaign names as what it
    waits for (when workers out of service outside it help fill it) or, when nothing can ever
    start, as what failed workers keep full."""
    limit: int
    own: int  # the campaign's own outages counted in it, this step's starts included
    outside: tuple[str, ...]  # the workers out of service outside the campaign counted in it
    pool: str = ""  # the pool whose limit it is; "" for the limit on the cluster's workers

    @property
    def named(self) -> str:
        return f"pool {self.pool}'s limit of {self.limit}" if self.pool else f"the limit of {self.limit}"


def held_back_told(held: Sequence[HeldBack], why: Mapping[str, str]) -> str:
    """The campaign's event for limits held full by workers out of service outside it, each
    named with `why` it is out ("cordoned", "not Ready"). Worded alike from tick to tick while
    the same workers hold the same limits: the dispatcher tells it again only when it changes."""
    parts = []
    for hold in held:
        who = f"{len(hold.outside)} worker(s) out of service outside this campaign"
        named = some_names(hold.outside, 10, lambda name: f"{name} ({why.get(name, 'out of service')})")
        parts.append(f"{hold.named} is full: {'its own outages and ' if hold.own else ''}{who}: {named}")
    pools = sorted({hold.pool for hold in held})
    which = "" if "" in pools else f" of pool {', '.join(pools)}"
    return (f"waiting: {'; '.join(parts)}; no other worker{which} begins an outage until one is "
            "back in service (uncordoned and Ready; or abort, and submit again with a higher "
            "max_unavailable)")


@dataclass(frozen=True)
class WorkerStep:
    outage: tuple[str, ...] = ()  # send their outage chain (all their open phases)
    prepare: tuple[str, ...] = ()  # send their preparation chain (open phases before the outage)
    finished: bool = False  # every worker succeeded or failed within the budget
    failed: tuple[str, ...] = ()  # the failed workers (over the budget: nothing new starts)
    gate: bool = False  # the canaries are done: the health gate must pass before the others
    stuck: bool = False  # nothing in flight and nothing may start (failed workers hold every slot)
    # Limits a prepared worker waits on that workers out of service outside the campaign
    # help fill: the campaign waits for them (or for a higher limit), naming them.
    held: tuple[HeldBack, ...] = ()
    stuck_on: tuple[HeldBack, ...] = ()  # when stuck: the limits failed workers keep full


def decide_workers(order: Sequence[str], limit: int, strategy: WorkerStrategy,
                   entries: Mapping[str, Entry], *, max_failed: int = 0, canary: int = 0,
                   gate_passed: bool = True, paused: bool = False,
                   pools: Pools | None = None, outage_allowed: bool = True,
                   prepare_ahead: int = 0,
                   known: Mapping[str, WorkerFacts] | WorkerIndex | None = None,
                   outside: Set[str] = frozenset()) -> WorkerStep:
    """Prepare workers ahead of the window (no outage); take them out of service as the limit
    allows. A worker whose outage began holds its slot until it finishes, also while none of
    its tasks is in flight (one was lost and goes again, or the campaign was retried): it is
    resumed first, also while the campaign is paused.

    Up to `max_failed` workers may fail while the others go on; a failed worker left out of
    service keeps its slot. With the window strategy and no pools, only the first wave's own
    workers are prepared until it has formed (`forming`). `pools` add per-pool limits.
    Outside a maintenance window (`outage_allowed` False) workers are prepared but none begins
    an outage. With `canary` > 0 the first `canary` workers go alone, then the health gate
    (`gate`) must pass before any other worker starts, even its preparation. `known`: each
    worker's worker_facts(entry), when the caller keeps them from tick to tick, or a
    WorkerIndex of them (the same decision, on counts: see _decide_on_index). `outside`: the
    cluster's workers out of service not by this campaign (scheduling.workers_to_start): each
    holds a slot; one of this hop that is prepared starts first, in the slot it holds."""
    if isinstance(known, WorkerIndex):
        complete = known.complete(order)
        if complete and strategy is WorkerStrategy.WINDOW and not pools and not (canary and not gate_passed):
            return _decide_on_index(known, limit, max_failed=max_failed, paused=paused,
                                    outage_allowed=outage_allowed, prepare_ahead=prepare_ahead,
                                    outside=outside)
        known = known.facts if complete else None
    of = known if known is not None else {name: worker_facts(entries[name]) for name in order}
    failed = tuple(name for name in order if of[name].state in _FAILED)
    if len(failed) > max_failed:
        return WorkerStep(failed=failed)  # nothing new starts; the ones in flight finish
    if all(of[name].state in _ENDED for name in order):
        return WorkerStep(finished=True, failed=failed)
    scoped = len(order)
    if canary and not gate_passed:
        scoped = canary
        if all(of[name].state in _ENDED for name in order[:canary]):
            return WorkerStep(failed=failed, gate=not paused)
    # One pass over the workers, on facts kept per entry: a tick at thousands of workers runs this.
    states = {name: of[name].state for name in order}
    resume = [name for name in order if of[name].resume]
    any_flying = any(of[name].in_flight for name in order)
    eligible: set[str] = set()  # prepared, in scope, not started: may take a slot
    preparing: set[str] = set()  # in scope, preparation in flight
    unprepared: set[str] = set()  # in scope, preparation not sent
    for name in order[:scoped]:
        worker = of[name]
        if worker.prepared:
            if worker.state is NodeState.PENDING:
                eligible.add(name)
        elif worker.state not in _FAILED:
            (preparing if worker.in_flight else unprepared).add(name)
    if paused:
        return WorkerStep(outage=tuple(resume), failed=failed)
    # Out of service outside the campaign, counted once: not those the campaign holds itself.
    outside = frozenset(name for name in outside if states.get(name) not in HOLDING_A_SLOT)
    starting = workers_to_start(order, states, limit, strategy, eligible=eligible, pools=pools,
                                outside=outside)
    outage = resume + (starting if outage_allowed else [])
    waiting = eligible - set(outage)
    ahead = workers_to_prepare(order, preparing, waiting, unprepared, limit=limit, pools=pools,
                               ahead_per_lane=prepare_ahead)
    out = sum(1 for name in order if states[name] in HOLDING_A_SLOT) + len(outside)
    new = len([name for name in starting if name not in outside])
    if outage_allowed and strategy is WorkerStrategy.WINDOW and not pools and ahead:
        ended = any(states[name] in _ENDED for name in order)
        if forming(limit, out + new, ended=ended):
            not_started = [name for name in order if states[name] is NodeState.PENDING and name not in outside]
            wave = set(not_started[:limit - out])
            ahead = [name for name in ahead if name in wave]
    # Out already, each in the slot it holds: prepared whatever the room ahead, or a campaign
    # whose slots they fill would wait on them for ever.
    first = [name for name in outside if name in unprepared]
    if strategy is WorkerStrategy.BATCHES:
        # The batch that runs next is prepared whatever the room ahead: workers of later batches
        # prepared before it (a failed preparation retried after the others went on) can fill
        # the room, and would wait for this batch for ever.
        first += [name for name in current_batch(order, states, limit)
                  if name in unprepared and name not in first]
    if first:
        chosen = set(ahead) | set(first)
        ahead = [name for name in order if name in chosen]
    # The limits a prepared worker waits on: each full one that outside workers help fill
    # holds the campaign back (any of them back in service frees a slot); with nothing else
    # to do, full ones without them are what it is stuck on. Counted only in those two cases:
    # with pools, every tick walks here over thousands of workers.
    at_rest = outage_allowed and not outage and not ahead and not any_flying
    full: list[HeldBack] = []
    if outage_allowed and waiting and (outside or at_rest):
        own_after = out - len(outside) + len(starting)  # those started now are the campaign's
        left = outside - set(starting)
        full += _full(limit, own_after, left, "")
        for pool, (pool_limit, members) in (pools or {}).items():
            if waiting & members:
                own_in_pool = sum(1 for name in members if states.get(name) in HOLDING_A_SLOT)
                own_in_pool += sum(1 for name in starting if name in members)
                full += _full(pool_limit, own_in_pool, left & members, pool)
    return _step(outage, ahead, failed, full, at_rest)


def _full(limit: int, own: int, outside: Set[str], pool: str) -> list[HeldBack]:
    """The limit, if the campaign's own outages and the outside workers in it fill it."""
    if own + len(outside) >= limit:
        return [HeldBack(limit, own, tuple(sorted(outside)), pool)]
    return []


def _step(outage: Sequence[str], ahead: Sequence[str], failed: tuple[str, ...],
          full: Sequence[HeldBack], at_rest: bool) -> WorkerStep:
    """The step: held back by the full limits outside workers help fill; stuck when nothing
    is in flight, nothing may start and no outside worker's return could change that."""
    held = tuple(hold for hold in full if hold.outside)
    stuck = at_rest and not held
    return WorkerStep(outage=tuple(outage), prepare=tuple(ahead), failed=failed, stuck=stuck,
                      held=held, stuck_on=tuple(full) if stuck else ())


def forming(limit: int, out: int, *, ended: bool) -> bool:
    """Whether the window's first wave is still forming: no worker has ended and the window
    has not been full (`out`: the workers holding a slot once this decision's outages are
    sent). Window strategy without pools only.

    While it forms, only the wave's own workers are prepared: the first `limit - out`
    workers in order not yet started, whose outages are what the stage waits for.
    Preparations beside them for workers that could not start yet would share what the hosts
    share (the package mirror, the API server `kubeadm upgrade node` reads; in the sandbox,
    the machine's cores) and start the first outages later; those are prepared while the
    first wave is out of service. The stage cannot stall on it: with nothing in flight and
    nothing starting, the wave's first worker is unprepared, and so is prepared."""
    return not ended and out < limit


def _decide_on_index(index: WorkerIndex, limit: int, *, max_failed: int, paused: bool,
                     outage_allowed: bool, prepare_ahead: int,
                     outside: Set[str] = frozenset()) -> WorkerStep:
    """decide_workers for the window strategy with no pools and no canary still to pass, on a
    complete index: the same steps as the walk over every worker, each answered from the
    index's counts and sorted positions (tests/unit/test_hop_view.py checks they agree)."""
    failed = tuple(index.names(index.failed.sorted))
    if len(failed) > max_failed:
        return WorkerStep(failed=failed)
    if not index.states[NodeState.PENDING] and not index.states[NodeState.RUNNING]:
        return WorkerStep(finished=True, failed=failed)
    resume = index.names(index.resume.sorted)
    if paused:
        return WorkerStep(outage=tuple(resume), failed=failed)
    # workers_to_start, window: the first eligible workers in order, as many as slots are free;
    # before them the eligible ones out of service outside the campaign, each in its own slot
    # (as many as the campaign's own count of outages has room for).
    outside = frozenset(name for name in outside if name not in index.facts
                        or index.facts[name].state not in HOLDING_A_SLOT)
    own = index.states[NodeState.RUNNING] + index.states[NodeState.FAILED_OUT_OF_SERVICE]
    out = own + len(outside)
    free = max(0, limit - out)
    outside_at = {index.position[name] for name in outside if name in index.position}
    out_and_eligible = sorted(at for at in outside_at if at in index.eligible)
    already = out_and_eligible[:max(0, limit - own)]
    fresh = ([at for at in index.eligible.sorted[:free + len(out_and_eligible)] if at not in outside_at][:free]
             if free else [])
    starting = index.names(already) + index.names(fresh)
    outage = resume + (starting if outage_allowed else [])
    # workers_to_prepare, one lane: the first unprepared in order, up to the room ahead.
    waiting = len(index.eligible.sorted) - (len(starting) if outage_allowed else 0)
    room = (prepare_ahead or 2 * limit) - index.preparing - waiting
    positions = index.unprepared.sorted[:room] if room > 0 else []
    ended = bool(failed) or index.states[NodeState.SUCCEEDED] > 0
    if outage_allowed and positions and forming(limit, out + len(fresh), ended=ended):
        # The wave's last worker: positions is not empty, and its workers are not started.
        wave = [at for at in index.not_started.sorted[:limit - out + len(outside_at)]
                if at not in outside_at][:limit - out]
        positions = positions[:bisect.bisect_right(positions, wave[-1])] if wave else []
    # Out already: prepared whatever the room ahead (decide_workers).
    first = [at for at in outside_at if at in index.unprepared]
    if first:
        positions = sorted(set(positions) | set(first))
    ahead = index.names(positions)
    at_rest = outage_allowed and not outage and not ahead and not index.in_flight
    full = (_full(limit, own + len(starting), outside - set(starting), "")
            if outage_allowed and waiting > 0 else [])
    return _step(outage, ahead, failed, full, at_rest)


EARLY_PHASES = names_where(before_control_planes=True)


def early_part(entry: Entry) -> list[PhaseRecord]:
    """The entry's open phases that may run while the control planes upgrade: those before
    its first open phase that may not (none once such a phase is open)."""
    part = []
    for phase in entry["phases"]:
        if phase["state"] == "succeeded":
            continue
        if phase["phase"] not in EARLY_PHASES:
            break
        part.append(phase)
    return part


def workers_to_fetch(order: Sequence[str], entries: Mapping[str, Entry], limit: int, *,
                     pools: Pools | None = None, prepare_ahead: int = 0) -> tuple[str, ...]:
    """While the control planes upgrade: the workers whose early phases (early_part: the
    repository, the packages into the cache) are to be sent now. Each lane gets as many
    workers fetched or fetching as the worker stage will prepare ahead of it (the same room as
    workers_to_prepare), the first in `order`, so the first outages find their packages at hand
    and the rest are fetched as the worker stage prepares them. A worker with an early phase
    in any other state (failed, or recorded running without a task) is not sent, and a failed
    worker takes no room. Stops looking once the room is taken when there are no pools: a tick
    at thousands of workers reads only the first ones."""
    fetching: set[str] = set()  # early phases in flight
    fetched: set[str] = set()  # nothing early left open
    due: set[str] = set()  # the first early phase unsent
    room = prepare_ahead or 2 * limit
    for name in order:
        entry = entries[name]
        if entry["state"] == "failed":
            continue
        part = early_part(entry)
        if not part:
            fetched.add(name)
        elif part[0]["state"] == "pending" and not part[0]["task_id"]:
            due.add(name)
        else:
            fetching.add(name)
        if not pools and len(fetching) + len(fetched) + len(due) >= room:
            break
    return tuple(workers_to_prepare(order, fetching, fetched, due, limit=limit, pools=pools,
                                    ahead_per_lane=prepare_ahead))


@dataclass(frozen=True)
class ControlPlaneStep:
    send: tuple[str, ...] = ()  # one chain of every open phase of these, in this order
    finished: bool = False


def decide_control_planes(order: Sequence[str], entries: Mapping[str, Entry],
                          paused: bool = False) -> ControlPlaneStep:
    """The control planes go as ONE chain (strictly one at a time, `apply` first), sent only
    when none of them has anything in flight; nothing while one has failed. Paused: only a
    control plane already out of service goes on (to be back in service), alone."""
    remaining = [name for name in order if entries[name]["state"] != "succeeded"]
    if not remaining:
        return ControlPlaneStep(finished=True)
    if any(in_flight(entries[n]) or entries[n]["state"] == "failed" for n in remaining):
        return ControlPlaneStep()
    if paused:
        return ControlPlaneStep(send=(remaining[0],) if out_of_service(entries[remaining[0]]) else ())
    return ControlPlaneStep(send=tuple(remaining))


@dataclass(frozen=True)
class AgentWait:
    waiting: dict[str, float]  # node -> since when its agent has been silent (wall clock)
    newly_silent: tuple[str, ...]  # to announce: "waiting for the agent of X"
    expired: tuple[str, ...]  # silent past the campaign's agent_timeout: their phase fails


def agents_waiting(wanted: Sequence[str], ready: set[str], waiting: Mapping[str, float],
                   now: float, timeout: float) -> AgentWait:
    """The named wait for silent agents: a node the dispatcher wants to send to whose agent does
    not answer is waited for (and said so) up to `timeout`, then fails; one that answers again
    is no longer waited for. A silent agent therefore always ends in a named wait or a failure."""
    silent = sorted(set(wanted) - ready)
    kept = {name: since for name, since in waiting.items() if name not in ready}
    newly = tuple(name for name in silent if name not in kept)
    kept.update(dict.fromkeys(newly, now))
    expired = tuple(name for name in silent if now - kept[name] > timeout)
    return AgentWait(kept, newly, expired)


def beyond_budget(stage: str, failed: Sequence[Entry], budget: int) -> bool:
    """Whether a hop's failed entries stop everything new: any failure outside the worker
    stage or of a control plane, or more failed workers than `budget`. While the control
    planes upgrade, a worker that failed (in its early phases: workers_to_fetch) stops nothing:
    the control planes finish, and the worker stage counts it against `budget` as if it had
    failed there."""
    if stage == "control-planes":
        failed = [e for e in failed if e["role"] != "worker"]
    return bool(failed) and not (stage == "workers" and len(failed) <= budget
                                 and all(e["role"] == "worker" for e in failed))


def awaited_since(entries: Mapping[str, Entry], watched: Mapping[str, PhaseRecord],
                  control_planes: Sequence[str]) -> dict[str, float]:
    """The nodes whose watched phase is pending and reached by its chain, each with the wall
    time since when that phase's message must exist: sent with its chain (`dispatched`), or
    published when the link before it ended. A later link of a chain has no message until
    then, and the control planes share one chain: only the first of them (in `control_planes`
    order) with an open phase is reached."""
    reached_plane = next((n for n in control_planes if entries[n]["state"] != "succeeded"), None)
    plane_ends = [p.get("ended") or 0.0 for n in control_planes for p in entries[n]["phases"]]
    since: dict[str, float] = {}
    for name, phase in watched.items():
        entry = entries[name]
        if phase["state"] != "pending":
            continue
        if entry["role"] == "control-plane":
            if name != reached_plane:
                continue
            ended = plane_ends
        else:
            own = entry["phases"]
            at = next(i for i, p in enumerate(own) if p["phase"] == phase["phase"])
            ended = [own[at - 1]["ended"] or 0.0] if at else []
        since[name] = max([phase.get("dispatched") or 0.0, *ended])
    return since
