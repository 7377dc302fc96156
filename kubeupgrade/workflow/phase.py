"""The wrapper every phase task runs in: validate, fence, authorize, skip what is done, retry,
record.

A phase task's kwargs are small and readable in Flower: campaign, hop, node, phase, attempt,
version. Everything else (packages, policies, hooks) is read from the campaign record, so no
free-form value travels on the wire. Before running, the task checks the record: the campaign
must be running, the attempt must be current (stale redeliveries are fenced off), a phase
already succeeded returns "already-done" without side effects, and on an agent the campaign
must carry a trusted operator's signature (kubeupgrade.security.authorize) or nothing runs.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import redis
from celery import Task
from celery.exceptions import Retry
from celery.utils.dispatch import Signal

from kubeupgrade.errors import PermanentError, TemporaryError
from kubeupgrade.host.steps import ALREADY_DONE, HostCommandFailed, HostCommandRefused, StepOutcome
from kubeupgrade.model.campaign import Campaign
from kubeupgrade.model.phases import SPECS, Runs
from kubeupgrade.model.plan import Phase
from kubeupgrade.model.versions import KubeVersion, parse_version
from kubeupgrade.security.authorize import authorize
from kubeupgrade.security.signing import canonical
from kubeupgrade.workflow import agent_identity, seal
from kubeupgrade.workflow.app import app, broker_url
from kubeupgrade.workflow.liveness import beat_for, phase_beating
from kubeupgrade.workflow.names import CLUSTER_ENTRY, valid_campaign_id, valid_entry_name, valid_hop
from kubeupgrade.workflow.outage_budget import next_outage_retry, retries_spent_on_outages
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord
from kubeupgrade.workflow.schedule import HopSchedule
from kubeupgrade.workflow.schema import CampaignRecord, NodeEntry
from kubeupgrade.workflow.waiting import (
    HELD_WAIT_SECONDS,
    StillWaiting,
    WaitState,
    first_look,
    held_wait_seconds,
    paced,
    pool_processes,
    wait_slot,
)


class PhaseHeld(Exception):  # noqa: N818 - not an error: the phase waits for an operator
    """Raised by a phase body that must not go on until an operator looks (a red health gate
    with on_gate_failure: pause): the campaign is paused with this reason and the phase goes
    back to pending, to run again on `resume`."""


class Superseded(Exception):  # noqa: N818 - not an error: another task does this phase's work now
    """Raised by a phase body, before it changes the cluster, when the record no longer runs the
    phase under its attempt and task: it froze or lost its worker past the lost-task check, and
    the phase was sent again (or the campaign aborted). Nothing more is done and nothing is
    recorded; the current task owns the phase."""


@functools.lru_cache(maxsize=4)
def store_for(url: str) -> CampaignStore:
    return CampaignStore.from_url(url)


class RecordRead:
    """A campaign document as this process last read it, and what tasks derive from it,
    computed once per text. The document grows with the cluster (its campaign lists every
    node, its hops every node's versions): at a thousand nodes, decoding it and re-encoding its
    campaign per task were most of a host task's own work. The text is fetched and compared
    on every read, so any change, through the store or not, is seen; the document is shared
    by the tasks that read the same text and must not be changed."""

    def __init__(self, raw: str, doc: CampaignRecord) -> None:
        self.raw = raw
        self.doc = doc
        self._campaign: Campaign | None = None
        self._signed: bytes | None = None

    def campaign(self) -> Campaign:
        if self._campaign is None:
            from kubeupgrade.campaign_file import campaign_from_dict

            self._campaign = campaign_from_dict(self.doc["campaign"], source=f"campaign {self.doc['id']}")
        return self._campaign

    def signed_text(self) -> bytes:
        """What the operator's signature covers (kubeupgrade.security.signing.canonical)."""
        if self._signed is None:
            self._signed = canonical(str(self.doc.get("id")), str(self.doc.get("cluster")),
                                     self.doc.get("campaign") or {})
        return self._signed


_last_reads: dict[str, RecordRead] = {}  # campaign id -> its last read, in this process
_last_reads_lock = threading.Lock()  # an agent farm runs tasks in threads
_LAST_READS_KEPT = 8

# Sent in the task's process once its phase is recorded begun and authorised, just before the
# body runs (sender: the task). What may overlap the body, and should not delay its start, hooks
# here: an agent opens the producer for its chain's next link (agent_connections).
body_starting = Signal(name="body_starting")


def read_record(store: CampaignStore, campaign_id: str) -> RecordRead | None:
    """The campaign's document now, decoded only if its text changed since this process last
    read it (None if there is none)."""
    known = _last_reads.get(campaign_id)
    got = store.get_if_changed(campaign_id, (known.raw, known.doc) if known else None)
    if got is None:
        _last_reads.pop(campaign_id, None)
        return None
    if known is not None and got[1] is known.doc:
        return known
    read = RecordRead(*got)
    with _last_reads_lock:
        _last_reads[campaign_id] = read
        while len(_last_reads) > _LAST_READS_KEPT:
            _last_reads.pop(next(iter(_last_reads)))
    return read


@dataclass
class Job:
    """What a phase body needs: the record, the campaign, and where it stands."""

    store: CampaignStore
    campaign_id: str
    hop: int
    node: str
    phase: Phase
    attempt: int
    task_id: str
    read: RecordRead
    wait: WaitState  # looks so far and when the first began (waiting.py); looks 0 if it never waited
    # A call of this run waited for the API server past OUTAGE_TOLD_AFTER (report_outage).
    api_outage_seen: bool = False
    # The hop's schedule once read: require_accepted reads and checks it before every look of
    # a cluster phase, and the body asks for it again (which control planes, the limit).
    _schedule: HopSchedule | None = field(default=None, init=False, repr=False)
    _version: KubeVersion | None = field(default=None, init=False, repr=False)

    @property
    def doc(self) -> dict[str, Any]:
        return self.read.doc  # type: ignore[return-value]

    @property
    def campaign(self) -> Campaign:
        return self.read.campaign()

    @property
    def hop_doc(self) -> dict[str, Any]:
        return self.doc["hops"][self.hop]

    def schedule(self, acceptance: seal.Acceptance | None = None) -> HopSchedule:
        if self._schedule is None:
            self._schedule = self.store.schedule(self.campaign_id, self.hop, self.doc, acceptance)
        return self._schedule

    @property
    def version(self) -> KubeVersion:
        """The hop's version; in the controller, only the one it resolved and sealed (its
        phases judge the cluster against it, and agents can write the record)."""
        if self._version is None:
            resolved = self.hop_doc.get("version")
            if not resolved:
                raise PermanentError(f"hop {self.hop + 1} has no resolved version yet")
            sealed = self.store.sealed_version(self.campaign_id, self.hop)  # None outside it
            if sealed is not None and sealed != resolved:
                raise DamagedRecord(f"ku:c:{self.campaign_id}", f"hop {self.hop + 1}'s version is "
                                    f"{resolved} where this controller resolved {sealed} (changed "
                                    "in the broker after it was resolved)", field="hops")
            self._version = parse_version(resolved)
        return self._version

    def package(self) -> str:
        package = self.store.package(self.campaign_id, self.hop, self.node, self.doc)
        if package is None:
            raise PermanentError(f"no package version resolved for {self.node} in hop {self.hop + 1}")
        return package

    def report(self, detail: str) -> None:
        self.store.note_phase(self.campaign_id, self.hop, self.node, self.phase.value, detail,
                              attempt=self.attempt, task_id=self.task_id)

    def report_outage(self, detail: str) -> None:
        """Say the phase waits for the API server. Kept as the wait's last detail too, so the
        next look writes what it waits for again once the API server answers."""
        with contextlib.suppress(Exception):  # telling must never be why a phase fails
            self.report(detail)
        self.wait = replace(self.wait, detail=detail)
        self.api_outage_seen = True

    def fence(self) -> None:
        """Called right before a change to the cluster: Superseded if this task no longer owns
        the phase. A task frozen between this check and its change can still make it; the
        changes themselves are conditional on the object not having changed since it was read
        (kube/nodes.py), and a superseding task's first change is to that very object."""
        if not self.store.phase_current(self.campaign_id, self.hop, self.node, self.phase.value,
                                        attempt=self.attempt, task_id=self.task_id):
            raise self._superseded()

    def record_finding(self, change: Callable[[NodeEntry], Any] | None = None,
                       also: Callable[[Any], Any] | None = None) -> None:
        """Keep what this phase found (CampaignStore.note_finding): its entry changed by `change`,
        other keys written by `also`; Superseded, with nothing written, if this task no longer
        owns the phase. Every record write of a phase body goes through this or is preceded by
        fence(), so that a task woken late writes nothing over its successor's findings."""
        if not self.store.note_finding(self.campaign_id, self.hop, self.node, self.phase.value,
                                       attempt=self.attempt, task_id=self.task_id, change=change, also=also):
            raise self._superseded()

    def note_cordon(self, ours: bool) -> None:
        """Write ahead of a cordon (or after an uncordon) whether this campaign holds the node
        cordoned; Superseded, with nothing written, if this task no longer owns the phase."""
        if not self.store.note_cordon(self.campaign_id, self.hop, self.node, self.phase.value, ours,
                                      attempt=self.attempt, task_id=self.task_id):
            raise self._superseded()

    def _superseded(self) -> Superseded:
        return Superseded(f"{self.node}: {self.phase.value} of attempt {self.attempt} (task "
                          f"{self.task_id}) no longer owns the phase")


def require_accepted(job: Job) -> None:
    """In the controller, before a cluster phase: the campaign is one this controller accepted
    (seal.py), its document is unchanged since, and the node is in the hop's schedule. An agent's
    key can sign a task for the controller's queue and agents can write the record, so neither
    the message nor the record alone may make the controller cordon, drain or release a node.
    Nothing is checked in a process without a seal key (unsigned messages)."""
    acceptance = job.store.acceptance(job.campaign_id)
    if acceptance is None:
        return
    try:
        acceptance.check_document(job.read.signed_text())
    except seal.SealBroken as error:
        raise PermanentError(f"campaign {job.campaign_id}: {error}; nothing done") from None
    if job.node != CLUSTER_ENTRY and job.node not in job.schedule(acceptance).node_set:
        raise PermanentError(f"{job.node} is not in hop {job.hop + 1} of campaign {job.campaign_id} "
                             "as the controller accepted it; nothing done")


def require_cluster_held(job: Job) -> None:
    """Before any phase, on an agent or in the controller: its campaign holds its cluster's
    lock (ku:cluster:<name>). A campaign that ended and let go of the cluster can be written
    back to running in the record, which takes no more than a node's broker credential, while
    another campaign acts on the cluster: whatever the record says, one campaign at a time."""
    cluster = str(job.doc.get("cluster"))
    holder = job.store.cluster_holder(cluster)
    if holder != job.campaign_id:
        raise PermanentError(f"campaign {job.campaign_id} does not hold cluster {cluster} (held by "
                             f"{holder or 'no campaign'}): one campaign acts on a cluster at a "
                             "time; nothing run")


def refuse_misrouted(node: str) -> None:
    """On an agent: a task for another node's host is refused, whatever queue it came from."""
    serving = agent_identity.current().node
    if node != serving:
        raise PermanentError(f"task for node {node} refused by the agent of {serving!r}: "
                             "misrouted message")


def refuse_other_host(job: Job) -> None:
    """On an agent: act for a node only on that node's host. An agent started with another
    node's --node (a swapped inventory line) would install and restart the kubelet of a host
    nobody drained, outside the campaign's count of workers out of service. The machine id the
    node's kubelet reported at acceptance must be this host's; where either is unknown (a
    Windows host, a cluster that reports none) there is nothing to compare."""
    recorded = job.store.live_version(job.campaign_id, job.node, job.doc).get("machine_id")
    if not isinstance(recorded, str) or not recorded:
        return
    local = agent_identity.host_machine_id(agent_identity.current())
    if local is None or local == recorded:
        return
    raise PermanentError(f"the agent serving node {job.node} runs on a host whose machine id is {local[:64]}, "
                         f"but Node {job.node} reports machineID {recorded[:64]}: nothing was run. Start this "
                         f"host's agent with its own --node, and the agent of {job.node} on {job.node}")


def _validate(campaign: Any, hop: Any, node: Any, phase: Any, attempt: Any,
              allowed: frozenset[Phase]) -> Phase:
    if not valid_campaign_id(campaign):
        raise PermanentError(f"invalid campaign id {campaign!r}")
    if not valid_hop(hop):
        raise PermanentError(f"invalid hop {hop!r}")
    if not valid_entry_name(node):
        raise PermanentError(f"invalid node name {node!r}")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise PermanentError(f"invalid attempt {attempt!r}")
    try:
        parsed = Phase(phase)
    except ValueError:
        raise PermanentError(f"unknown phase {phase!r}") from None
    if parsed not in allowed:
        raise PermanentError(f"phase {phase} is not handled by this task")
    return parsed


def run_phase(task: Task, body: Callable[[Job], StepOutcome], allowed: frozenset[Phase],
              campaign: str, hop: int, node: str, phase: str, attempt: int,
              on_agent: bool, waits: bool = False) -> dict[str, Any]:
    parsed = _validate(campaign, hop, node, phase, attempt, allowed)
    if on_agent:
        refuse_misrouted(node)
    store = store_for(broker_url())
    task_id = task.request.id
    fence = {"attempt": attempt, "task_id": task_id}
    # One read of the campaign serves the verdict, the authorization and the job.
    read = read_record(store, campaign)
    retries = task.request.retries or 0
    waited = store.waiting(campaign, hop, node, phase) if waits else None
    looking_again = waited is not None and waited.continues(task_id, retries)
    verdict = store.begin_phase(campaign, hop, node, phase, attempt, task_id,
                                read.doc if read else None, looking_again=looking_again)
    if verdict == "held":
        # Paused: the rest of this node's chain must not follow; `resume` sends it again.
        task.request.chain = None
    if verdict == "inactive" and looking_again:
        # Aborted (or ended) while it waited: the wait stops here and says so, instead of a
        # phase left running for ever.
        store.release_phase(campaign, hop, node, phase, "stopped waiting: the campaign is no "
                            "longer running", attempt=attempt, task_id=task_id)
        store.done_waiting(campaign, hop, node, phase, task.backend.get_key_for_task(task_id))
    if verdict != "run":
        # Deterministic answer: a duplicate returns what the first delivery would have (kept as a
        # result only when the sender asks; Flower shows it either way).
        return {"node": node, "phase": phase, "status": verdict}
    assert read is not None
    wait = waited if looking_again and waited is not None else first_look(task_id, retries)
    job = Job(store, campaign, hop, node, parsed, attempt, task_id, read, wait)
    try:
        if on_agent:  # root on this host: only for what a trusted operator signed
            authorize(read.doc, hop, signed_text=read.signed_text(), node=node)
            refuse_other_host(job)
        else:  # the cluster: only for what this controller accepted
            require_accepted(job)
        require_cluster_held(job)
        policy = job.campaign.policies.retries
    except BROKER_UNREACHABLE:
        raise  # see below: the broker's trouble, not the phase's
    except Exception as error:  # noqa: BLE001 - recorded, nothing run, re-raised for Celery
        reason = str(error) if isinstance(error, PermanentError) else f"{type(error).__name__}: {error}"
        store.fail_phase(campaign, hop, node, phase, reason, **fence)
        raise
    if looking_again:  # begin_phase wrote nothing, so neither did it set the key
        beat_for(store.redis, task_id, 0)
    still_waiting = superseded = False
    try:
        # Running, as the dispatcher's lost-task check reads it: the key begin_phase set,
        # refreshed while the body runs, removed by the write that ends the phase.
        with phase_beating(store.redis, task_id, begun=True):
            body_starting.send(sender=task)
            visibility = task.app.conf.broker_transport_options.get("visibility_timeout", HELD_WAIT_SECONDS * 4)
            outcome = _look_while_quick(body, job, held=held_wait_seconds(float(visibility)))
    except StillWaiting as still:
        if not waits:  # undeclared, its wait would start over at every look and never time out
            reason = f"{phase} waited but is not declared to (phase_task waits=True)"
            store.fail_phase(campaign, hop, node, phase, reason, **fence)
            raise PermanentError(reason) from None
        still_waiting = True
        raise _look_again(task, job, still) from None
    except Superseded as gone:
        # Nothing recorded, its wait state included: the task that owns the phase now keeps
        # them (the wait state is the node's and phase's, not this task's).
        superseded = True
        store.event(campaign, f"{gone}; it stopped before its next change to the cluster")
        return {"node": node, "phase": phase, "status": "stale"}
    except PhaseHeld as held:
        from kubeupgrade.workflow.control import pause

        try:
            job.fence()
        except Superseded as gone:
            # Superseded while it looked (it froze, and the phase was sent again): the task that
            # owns the phase decides whether the campaign pauses.
            superseded = True
            store.event(campaign, f"{gone}; it did not pause the campaign")
            return {"node": node, "phase": phase, "status": "stale"}
        pause(store, campaign, reason=str(held))  # first: the dispatcher must not re-send it
        store.release_phase(campaign, hop, node, phase, str(held), **fence)
        return {"node": node, "phase": phase, "status": "held"}
    except TemporaryError as error:
        command = error.result if isinstance(error, HostCommandFailed) else None
        reason = str(error)
        outage = error.api_outage if isinstance(error, HostCommandFailed) else None
        if outage:  # kubeadm found the API server silent: ridden out as the cluster phases do
            tolerance = float(job.campaign.policies.api_outage_tolerance_seconds)
            now = time.time()
            again = next_outage_retry(store.redis, campaign, task_id, now=now,
                                      run_began=now - (command.duration if command else 0.0),
                                      tolerance=tolerance, first_pause=policy.backoff_seconds)
            if again is not None:
                said = (f"the API server does not answer ({outage}); running it again in "
                        f"{again.pause:g}s (silent for {again.silent_for:.0f}s of the {tolerance:g}s "
                        "policies.api_outage_tolerance allows)")
                job.report(said)
                store.event(campaign, f"{node}: {phase}: {said}")
                beat_for(store.redis, task_id, again.pause)
                raise task.retry(countdown=again.pause, exc=error,
                                 max_retries=task.request.retries + 1) from None
            reason = (f"{error} (the API server has not answered for the {tolerance:g}s "
                      "policies.api_outage_tolerance allows)")
        else:
            # The retries spent riding out an outage are not this policy's attempts.
            spent = task.request.retries - (retries_spent_on_outages(store.redis, campaign, task_id)
                                             if task.request.retries else 0)
            if spent + 1 < policy.attempts:
                delay = policy.backoff_seconds * (2 ** spent)
                job.report(f"attempt {spent + 1} failed, retrying in {delay:g}s: {error}")
                store.event(campaign, f"{node}: {phase} retrying in {delay:g}s: {error}")
                beat_for(store.redis, task_id, delay)  # held by its worker until then, not lost
                raise task.retry(countdown=delay, exc=error, max_retries=task.request.retries + 1) from None
        tail = command.tail() if command else ""
        if store.fail_phase(campaign, hop, node, phase, reason, tail, **fence) and command:
            _keep_output(store, job, command)
        raise
    except HostCommandRefused as error:
        if store.fail_phase(campaign, hop, node, phase, str(error), error.result.tail(), **fence):
            _keep_output(store, job, error.result)
        raise
    except PermanentError as error:
        store.fail_phase(campaign, hop, node, phase, str(error), **fence)
        raise
    except BROKER_UNREACHABLE:
        # The broker did not answer (restarting, or frozen past the client's retries): nothing
        # says the phase failed, and nothing can be recorded reliably now. Not marked failed
        # (which would fail the campaign once the broker is back): the task ends as an
        # infrastructure failure, and the dispatcher sends the phase again once the broker
        # answers (dispatcher.INFRASTRUCTURE_ERRORS), or finds it lost when its beat lapses.
        # The phase looks at its effect first; each host command was fenced before it ran.
        raise
    except Exception as error:  # noqa: BLE001 - recorded, then re-raised for Celery
        store.fail_phase(campaign, hop, node, phase, f"{type(error).__name__}: {error}", **fence)
        raise
    finally:
        if waited is not None and not still_waiting and not superseded:
            # The kept state goes: this wait ended, an error retry starts it over, or it was an
            # earlier task's (lost with a killed controller and sent again under a new id),
            # which would otherwise stay counted in the pace of every look (waiting.paced).
            store.done_waiting(campaign, hop, node, phase, task.backend.get_key_for_task(waited.task_id))
    if not store.finish_phase(campaign, hop, node, phase, outcome.status, outcome.detail,
                              outcome.output, **fence):
        return {"node": node, "phase": phase, "status": "stale"}
    return {"node": node, "phase": phase, "status": "already-done" if outcome.status == ALREADY_DONE else "done"}


# The broker not answering, as redis-py raises it once its own retries are spent.
BROKER_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)

QUICK_WAIT_SECONDS = 0.4


def _look_while_quick(body: Callable[[Job], StepOutcome], job: Job, *,
                      held: float = HELD_WAIT_SECONDS) -> StepOutcome:
    """Run the body, looking again in this process while the wait is short: a look sent through
    the broker costs tens of milliseconds, and a quick cluster answers within a few hundred (a
    node Ready, a pod gone). The first look due more than QUICK_WAIT_SECONDS after this
    delivery began, or `held` seconds if this process then gets a wait slot, is the
    caller's to send (StillWaiting propagates). Past the quick budget each look first asks
    whether the campaign is still active: an aborted one's wait goes to the caller at once, so
    the next delivery stops it ("stopped waiting") as it would have after a quick wait. A slot
    holder writes what it waits for whenever that changes, as looks through the broker do: a
    wait of seconds is shown with its reason, not as a bare "running"."""
    started = time.monotonic()
    until = started + QUICK_WAIT_SECONDS
    with contextlib.ExitStack() as holding:
        slot: bool | None = None  # not asked for yet
        while True:
            try:
                return body(job)
            except StillWaiting as still:
                due = time.monotonic() + still.after
                if due > until and slot is None:
                    slot = holding.enter_context(wait_slot())
                    until = started + (held if slot else QUICK_WAIT_SECONDS)
                if due > until or (slot and not job.store.is_active(job.campaign_id)):
                    raise
                if slot and still.detail != job.wait.detail:
                    job.report(still.detail)
                    job.wait = replace(job.wait, detail=still.detail)
                time.sleep(still.after)
                job.wait = job.wait.next(still.carried)


def _look_again(task: Task, job: Job, still: StillWaiting) -> Retry:
    """The body is still waiting for the cluster: keep what the next look needs, say what it
    waits for (written only when that changes: each write is a record update the dispatcher
    reads), keep the phase counted as running, and send the task again in `still.after`
    seconds to its own queue, as Task.retry would but without counting a retry
    (signature_from_request keeps request.retries), later than the body asked while many
    phases wait (waiting.paced). Flower shows each look as a retry."""
    state = job.wait.next(still.carried, still.detail)
    waiting = job.store.keep_waiting(job.campaign_id, job.hop, job.node, job.phase.value, state)
    if still.detail != job.wait.detail:
        job.report(still.detail)
    after = paced(still.after, waiting, pool_processes())
    beat_for(job.store.redis, job.task_id, after)
    again = task.signature_from_request(countdown=after)
    again.apply_async()
    # No exception in it: that is what tells the workers' app a look from a retry after an
    # error, and it keeps no result for a look (app.WorkerCelery).
    return Retry(still.detail, when=after, sig=again)


def _keep_output(store: CampaignStore, job: Job, result: Any) -> None:
    """The whole output of the command a phase failed on (`kubeupgrade logs`)."""
    store.save_output(job.campaign_id, job.hop, job.node, job.phase.value,
                      f"$ {result.command}\n{result.stdout}{result.stderr}")


def phase_task(*phases: Phase, waits: bool = False) -> Callable[[Callable[[Job], StepOutcome]], Task]:
    """Register `body` as the Celery task declared for `phases` (kubeupgrade.model.phases):
    its name and its side (the node's agent or the controller) come from the declaration.
    `waits`: the body may raise StillWaiting (a controller phase only), so each delivery reads
    the phase's kept wait state; the others are spared that read."""
    declared = {(SPECS[p].task, SPECS[p].runs) for p in phases}
    if len(declared) != 1:
        raise ValueError(f"phases {[p.value for p in phases]} are not declared as one task")
    ((name, runs),) = declared
    on_agent = runs is Runs.HOST
    if waits and on_agent:
        raise ValueError(f"phases {[p.value for p in phases]} run on an agent, which does not wait between looks")
    allowed = frozenset(phases)

    def register(body: Callable[[Job], StepOutcome]) -> Task:
        # No result on success (the record says how a phase went; 55,000 results of a 5,000-node
        # hop were Redis' largest part); failures, retries and revocations are stored
        # (store_errors_even_if_ignored): the dispatcher reads them to re-send lost work.
        @app.task(name=name, bind=True, acks_late=True, ignore_result=True,
                  store_errors_even_if_ignored=True)
        def task(self: Task, campaign: str, hop: int, node: str, phase: str, attempt: int,
                 version: str = "") -> dict[str, Any]:
            # `version` is informational (readable in Flower); the record is authoritative.
            return run_phase(self, body, allowed, campaign, hop, node, phase, attempt, on_agent, waits)

        task.__doc__ = body.__doc__
        return task

    return register
