"""The dispatcher: reads the campaign record and sends what may run next. Runs in the controller.

Canvases stay flat (see shared/notes/celery.md): per hop, a group of `prepare-host` tasks, the
preflight task, ONE chain of every control-plane phase (so control planes are strictly one at a
time, `apply` on the first), then one chain per worker, started as the worker schedule allows
(sliding window, or fixed batches sent as a group), then verification. Progress lives in the
record, written by the tasks themselves, so the dispatcher can die and restart at any moment:
it only ever looks at the record and sends what is missing.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from celery import Celery, chain, group
from celery.canvas import Signature

from kubeupgrade.errors import InvalidInput, KubeupgradeError, TemporaryError
from kubeupgrade.kube.events import NodeEvent
from kubeupgrade.kube.identity import ClusterIdentity, mismatch
from kubeupgrade.model.campaign import Campaign, NodeSpec, OsFamily, WorkerStrategy
from kubeupgrade.model.phases import Part, names_where
from kubeupgrade.model.plan import Phase, plan_to_dict
from kubeupgrade.model.versions import parse_version
from kubeupgrade.planning.live import with_live_state
from kubeupgrade.planning.scheduling import gate_boundaries
from kubeupgrade.planning.windows import describe, is_open, windows_of
from kubeupgrade.security.signing import canonical
from kubeupgrade.workflow import locks
from kubeupgrade.workflow.app import Outbox
from kubeupgrade.workflow.audit import back_in_service_at, outage_start
from kubeupgrade.workflow.broker_loss import (
    EPOCH_KEY,
    BrokerEpoch,
    from_last_read,
    is_lost,
    keep_notices,
    known_campaign,
    unknown_cordons_told,
)
from kubeupgrade.workflow.broker_memory import MORE_MEMORY
from kubeupgrade.workflow.decide import (
    HeldBack,
    agents_waiting,
    awaited_since,
    beyond_budget,
    decide_control_planes,
    decide_workers,
    early_part,
    first_open_phase,
    held_back_told,
    in_flight,
    out_of_service,
    workers_to_fetch,
)
from kubeupgrade.workflow.hop_view import HopView
from kubeupgrade.workflow.liveness import alive_agents, beating, sleep_until_woken
from kubeupgrade.workflow.names import CLUSTER_ENTRY, PHASE_TASKS, node_queue, queue_for
from kubeupgrade.workflow.record import (
    LEADER_KEY,
    CampaignConflict,
    CampaignStore,
    DamagedRecord,
    HopEntries,
    hop_facts,
    new_attempt,
    new_phase,
)
from kubeupgrade.workflow.restore import nodes_to_restore, send_restores
from kubeupgrade.workflow.schedule import HopSchedule
from kubeupgrade.workflow.schema import CampaignRecord, NodeEntry, PhaseRecord
from kubeupgrade.workflow.seal import Acceptance, SealBroken
from kubeupgrade.workflow.story import milestones, to_tell
from kubeupgrade.workflow.undelivered import nowhere

if TYPE_CHECKING:
    from kubeupgrade.kube.availability import AvailabilityPoller
    from kubeupgrade.kube.control_planes_seen import ControlPlaneWatch


def seen_once(availability: AvailabilityPoller | None) -> bool:
    """Whether a wait for the cluster's nodes is worth telling: a read failed, or one was
    made and has aged (the first read of a campaign comes within a tick or two)."""
    return availability is not None and (availability.error is not None or availability.latest() is not None)

log = logging.getLogger("kubeupgrade.dispatcher")

STAGES = ("prepare", "preflight", "control-planes", "workers", "verify", "done")
TASK_EXPIRES = 24 * 3600  # a message older than this is stale: its agent must not run it
# A phase goes to its queue by name (Celery sends a message naming only a queue through the
# anonymous exchange, and on Redis that is a push onto the list of that name), so nothing need be
# declared first. Celery would declare the queue before each publish (a length query and a
# binding write), once per connection: ~7% of the dispatcher's samples at 1,000 nodes. The
# option travels with every link of a chain, so the agent that sends the next link skips it too.
# A tuple: one value shared by every signature, which nothing may append to.
NOTHING_TO_DECLARE: tuple[object, ...] = ()

REAPPLY_PHASES = names_where(part=Part.KUBEADM)  # what policies.reapply keeps on a node
IDENTITY_TTL = 30.0  # seconds between re-reads of the cluster's identity
LOST_TASK_GRACE = 10.0  # a running task nobody holds for this long is lost
MAX_RESENDS = 3  # automatic re-sends of one phase after infrastructure failures
UNDELIVERED_AFTER = 5.0  # seconds a reached task may have no message before it is looked for
UNDELIVERED_LOOK_PERIOD = 2.0  # seconds between looks for them (reads of their queues)
UNDELIVERED_BATCH = 200  # tasks looked for per look, in rounds (_look_round)
# Seconds a live agent may leave a reached task in its own queue before it is waited for by name
# (then failed after agent_timeout, as a silent agent is). An idle agent takes a message within
# milliseconds; the sandbox's agent farm, saturated at 5,000 nodes, took up to ~60 s.
NOT_TAKING_AFTER = 120.0
# Results looked up per tick for tasks that ended without recording it (_watch): the tasks in
# flight are looked at in rounds of this many, so a tick's cost does not grow with the hop
# (1,500 in flight at 5,000 nodes). A task is looked at within two rounds of being sent.
WATCH_BATCH = 256
MAX_REDELIVERIES = 5  # re-sends of one phase whose message was lost, before it fails
LEASE_MILLIS = 5000  # the leader's lease; renewed every tick, and within a tick that runs long
LEASE_RENEW_SECONDS = 1.0  # a tick renews the lease before sending once it has run this long
# A tick that has run this long records and sends no further chain (after its first): the next
# tick, at once, goes on. Sending a window's worth of chains (hundreds at the start of a big hop)
# in one tick kept the loop from anything else, pauses and ended phases included, for a second.
SEND_BUDGET_SECONDS = 0.02
SEND_CHUNK = 8  # at most this many chains' task ids are recorded in one round trip (_within_budget)
# Redis commands a tick's publish batch holds before it runs them (a message and its task-sent
# event are two): one round trip for a tick's sends, more only for a whole batch's group.
SEND_BATCH_COMMANDS = 1000
# A pass over every entry of a hop (to see writes that bypass the store) takes about this long,
# a slice each tick; what the store writes is read at the next tick (its changed set).
SWEEP_SECONDS = 10.0
SWEEP_LEAST = 4  # entries a tick's slice reads at least: ticks come every few ms when busy
# How long each tick took, in microseconds, appended every TICK_REPORT_SECONDS (one command) and
# trimmed to the last TICK_HISTORY: what `bench.scale` reports as the tick's p50 and p99.
TICKS_KEY = "ku:dispatcher:ticks"
# The same ticks' CPU time in the dispatcher's own thread (microseconds): what a tick costs,
# apart from its waits for a core and for the interpreter lock, which the wall time includes.
TICK_CPU_KEY = "ku:dispatcher:tick-cpu"
# And how long the dispatcher's thread waited on the run queue for a core during each tick
# (microseconds; Linux's schedstat, absent elsewhere): the part of the wall time that is the
# machine's, apart from the interpreter lock and Redis, which the rest of the wall time holds.
TICK_QUEUED_KEY = "ku:dispatcher:tick-queued"
TICK_REPORT_SECONDS = 5.0
TICK_HISTORY = 100_000
UNREADABLE_TICKS = 25  # ticks in a row a record's shape may fail the dispatcher before it stops
SHAPE_ERRORS = (TypeError, KeyError, ValueError, AttributeError, IndexError)
INFRASTRUCTURE_ERRORS = ("ConnectionError", "WorkerLostError", "OperationalError", "TimeoutError",
                         "network:")
# What the broker refusing a task's writes means, and what the operator does about it. Not
# sent again: the next attempt meets the same refusal until someone acts.
BROKER_REFUSALS = {
    "OutOfMemoryError": ("; the broker refused the phase's writes: it is out of memory (its maxmemory "
                         f"is reached, and kubeupgrade's Redis evicts nothing). {MORE_MEMORY}, then "
                         "`kubeupgrade retry`"),
    "NoPermissionError": ("; the broker refused the phase's writes to its ACL user: give the worker the "
                          "role deploy/redis names for it (`kubeupgrade keys broker-users`), then "
                          "`kubeupgrade retry`"),
}


def _live_versions(campaign: Campaign) -> dict[str, dict[str, str | None]]:
    """The versions each node runs now (kubelet; static pods on a control plane), and its
    host's machine id where the cluster reports one. A hop whose target is resolved only on the
    hosts ("1.34" = latest patch) skips the nodes already there once it is resolved."""
    live: dict[str, dict[str, str | None]] = {}
    for node in campaign.nodes or ():
        static = (node.control_plane or campaign.control_plane_version) if node.is_control_plane else None
        live[node.name] = {"kubelet": node.kubelet.plain if node.kubelet else None,
                           "control_plane": static.plain if static else None}
        if node.machine_id:  # what an agent checks it runs on (workflow/phase.py)
            live[node.name]["machine_id"] = node.machine_id
        if node.left_cordoned_by:  # taken over even at the target (_skip_nodes_at)
            live[node.name]["cordoned_by"] = node.left_cordoned_by
    return live


def queue_of(phase: Phase, node: str) -> str:
    """The queue a phase's task goes to (the cluster's own phases run on the controller)."""
    return queue_for(phase, node) if node != CLUSTER_ENTRY else queue_for(Phase.PREFLIGHT, node)


def phase_signature(app: Celery, phase: Phase, node: str, task_id: str, *, campaign: str, hop: int,
                    attempt: int, version: str) -> Signature:
    """One phase of one node as an immutable link, for its own queue (keyword arguments only:
    Flower shows campaign and node by name). Without `ignore_result` here a sender that has not
    registered the task subscribes to the result's channel of every message it sends, and
    unsubscribes when the handle is dropped, for results no one stores."""
    return app.signature(
        PHASE_TASKS[phase],
        kwargs={"campaign": campaign, "hop": hop, "node": node, "phase": phase.value,
                "attempt": attempt, "version": version},
        immutable=True,
    ).set(queue=queue_of(phase, node), task_id=task_id, expires=TASK_EXPIRES, declare=NOTHING_TO_DECLARE,
          ignore_result=True)  # its task keeps none on success: the sender must not wait for one


def next_round(rounds: dict[str, list[str]], campaign_id: str, current: Collection[str],
               order: Callable[[], list[str]], size: int) -> list[str]:
    """Up to `size` of the `current` task ids, in rounds kept in `rounds[campaign_id]`: those
    left of the round under way that are still current, or once it is done, a new round of every
    current one in `order`. Each is taken once per round, however many there are."""
    left = [t for t in rounds.get(campaign_id, ()) if t in current]
    if not left:
        left = order()
    rounds[campaign_id] = left[size:]
    return left[:size]


class LeaseLost(Exception):
    """Another dispatcher leads now: this tick stops before it sends anything more."""


def node_canvas(links: list[Signature]) -> Signature:
    """One node's links as what is sent: a chain, or the one task alone."""
    return chain(links) if len(links) > 1 else links[0]


def _queued_ns() -> int | None:
    """Nanoseconds this thread has waited on the run queue for a core, from Linux's schedstat
    (two numbers read per tick); None where there is none."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None


class Dispatcher:
    def __init__(self, app: Celery, store: CampaignStore,
                 discover: Callable[[Campaign], tuple[list[NodeSpec], Any]] | None = None,
                 identify: Callable[[], ClusterIdentity] | None = None,
                 narrate: Callable[[NodeEvent], None] | None = None,
                 availability: AvailabilityPoller | None = None,
                 control_planes: ControlPlaneWatch | None = None) -> None:
        self.app = app
        # The cluster's workers out of service, read from the API server in a thread of its
        # own (kube/availability.py); None: counted from the record alone (tests, benchmarks).
        self.availability = availability
        self._outside_told: dict[str, str] = {}  # campaign -> what it last said it waits for
        # Whether the cluster shows the control planes at the hop's version before the worker
        # stage begins (kube/control_planes_seen.py); None: the record's word alone.
        self.control_planes = control_planes
        self._planes_told: dict[str, str] = {}  # campaign -> what it last said of them
        # The record's progress proven by the controller's seals (seal.py): campaign -> what it
        # accepted (None: no seal key, nothing checked), and (campaign, hop) whose earlier hops
        # each have their sealed verification.
        self._acceptances: dict[str, Acceptance | None] = {}
        self._proven: set[tuple[str, int]] = set()
        # (campaign, hop) -> the version this controller resolved and sealed for it ("": no
        # seal key, nothing checked)
        self._sealed_versions: dict[tuple[str, int], str] = {}
        self.store = store
        self.discover = discover
        self.identify = identify
        self._identity: tuple[float, ClusterIdentity] | None = None
        self._identity_retry_at = 0.0
        self._missing_since: dict[str, dict[str, float]] = {}  # campaign -> task id -> silent since
        self._windows_seen: dict[str, bool] = {}  # campaign -> whether its window was open
        self._unreadable: dict[str, int] = {}  # campaign -> ticks in a row its record failed
        self.narrate = narrate
        # (campaign, hop, node) -> the entry last looked at, and the milestones told for it
        self._told: dict[tuple[str, int, str], tuple[NodeEntry, tuple[str, ...]]] = {}
        # (campaign, hop) -> (when last read, the entries as last read): see _hop_entries.
        self._entries: dict[tuple[str, int], tuple[float, HopEntries]] = {}
        # campaign -> (its record's text, the record parsed): see _record. Like the entries,
        # these are read-only: every change goes through the store on a fresh copy.
        self._records: dict[str, tuple[str, CampaignRecord]] = {}
        # (campaign, hop) -> what a tick asks of every node, recomputed only for the entries
        # that changed (kubeupgrade.workflow.hop_view).
        self._views: dict[tuple[str, int], HopView] = {}
        self._schedules: dict[tuple[str, int], HopSchedule] = {}  # see _schedule
        self._result_keys: dict[str, bytes] = {}  # task id -> its result's key (_ended_badly)
        # campaign -> task id -> since when no message carries it (monotonic; _recover_undelivered)
        self._unseen_since: dict[str, dict[str, float]] = {}
        self._token: str | None = None  # this dispatcher's lease token while it runs (run_forever)
        self._renewed = 0.0  # monotonic time the lease was last renewed
        self._tick_started = 0.0  # perf_counter() at the start of the current tick
        self._more_to_send = False  # the tick stopped sending at its budget: tick again at once
        self._looked_at: dict[str, float] = {}  # campaign -> when _recover_undelivered last looked
        # campaign -> task id -> when a look first found it reached (our wall clock; _reached_by_our_clock)
        self._reached_first: dict[str, dict[str, float]] = {}
        # campaign -> nodes whose agent beats but leaves its reached task in its queue, as of the
        # last look: waited for as if silent (its heartbeat thread lives, its consumer does not).
        self._not_taking: dict[str, set[str]] = {}
        self._watch_round: dict[str, list[str]] = {}  # campaign -> task ids this round of _watch has left
        self._look_rounds: dict[str, list[str]] = {}  # campaign -> task ids this round of looks has left
        # (campaign, hop) -> the agent waits this tick wrote (_agents_ready), read back from the
        # write instead of from the record again: a round trip fewer in a tick that sends.
        self._waits_noted: dict[tuple[str, int], dict[str, float]] = {}
        self._outbox: Outbox | None = None  # this campaign's sends of this tick, not yet sent
        # The broker's data lost (broker_loss.py): its epoch, whether this dispatcher led at its
        # last look at the lease (else what it holds of the campaigns is not current), and when
        # its last tick began.
        self._epoch = BrokerEpoch()
        self._led = False
        self._tick_wall = 0.0

    # -- loop ------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, deadline: float = 1.0) -> None:
        """Tick, then sleep until something changes (a phase ends, an operator command, an
        agent comes back: see liveness.wake) or `deadline` seconds pass, whichever is first.
        The deadline covers what nobody announces: windows opening, timeouts, silent agents."""
        # Says which controller leads ("host:pid:random"): Stack.wait_for_workers reads it.
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        self._token = token
        took: list[int] = []  # microseconds per tick since the last report
        used: list[int] = []  # the same ticks' CPU microseconds
        queued: list[int] = []  # and their microseconds waiting for a core, where known
        reported = time.monotonic()
        while not stop.is_set():
            leading = False
            try:
                leading = self._lead(token)
                if leading:
                    # The run-queue reads inside the wall clock's: a wait for a core taken
                    # between them is then always a part of the tick's wall time.
                    started, cpu_started, queued_before = time.perf_counter(), time.thread_time(), _queued_ns()
                    self.tick()
                    queued_after = _queued_ns()
                    took.append(round((time.perf_counter() - started) * 1e6))
                    used.append(round((time.thread_time() - cpu_started) * 1e6))
                    if queued_before is not None and queued_after is not None:
                        queued.append(round((queued_after - queued_before) / 1e3))
                    if time.monotonic() - reported >= TICK_REPORT_SECONDS:
                        self._report_ticks(took, used, queued)
                        took, used, queued, reported = [], [], [], time.monotonic()
                    if not self.more_to_send:
                        sleep_until_woken(self.store.redis, deadline)
            except LeaseLost:
                log.warning("dispatcher: another dispatcher took the lead during a tick")
            except Exception:  # noqa: BLE001 - Redis away or a bug: log, keep the loop alive
                log.exception("dispatcher tick failed")
                stop.wait(1.0)
            if not leading:
                stop.wait(deadline)

    def _report_ticks(self, took: list[int], used: list[int], queued: list[int]) -> None:
        with self.store.redis.pipeline(transaction=False) as report:
            for key, values in ((TICKS_KEY, took), (TICK_CPU_KEY, used), (TICK_QUEUED_KEY, queued)):
                if values:
                    report.rpush(key, *values)
                    report.ltrim(key, -TICK_HISTORY, -1)
            report.execute()

    def _lead(self, token: str) -> bool:
        """Only one dispatcher acts at a time: a lease in Redis, renewed every tick."""
        try:
            got = locks.lead(self.store.redis, LEADER_KEY, token, LEASE_MILLIS)
            if got != 1:  # not a plain renewal: the lease, and with it maybe every key, went
                self._notice_lost_data()
            self._led = bool(got)
            if got == 2:  # newly leading: another dispatcher may have consumed the changed sets since
                self._entries.clear()
            if got:
                self._renewed = time.monotonic()
                return True
        except Exception:  # noqa: BLE001 - Redis away: nobody leads until it is back
            log.warning("dispatcher: broker unreachable")
        return False

    def _notice_lost_data(self) -> None:
        """The broker came back without its data: a notice for each campaign this dispatcher
        was acting on, from what it last read, for `list` and `status` (broker_loss.py)."""
        if not self._epoch.lost_since(self.store.redis) or not self._led:
            return
        noticed = time.time()
        last_read = [from_last_read(doc, self._last_entries(campaign_id, doc), self._tick_wall, noticed)
                     for campaign_id, (_, doc) in self._records.items()]
        kept = keep_notices(self.store.redis, last_read)
        log.error("the broker lost its data (its epoch key %s is gone or another): %s", EPOCH_KEY,
                  "; ".join(lost.explain() for lost in kept) or "no campaign was running")

    def _last_entries(self, campaign_id: str, doc: CampaignRecord) -> dict[str, NodeEntry]:
        read = self._entries.get((campaign_id, doc.get("current_hop", 0)))
        return dict(read[1].entries) if read is not None else {}

    def _still_leading(self) -> None:
        """Before recording and sending more, in a tick that has run for a while: renew the
        lease, or stop the tick (LeaseLost) if another dispatcher took it meanwhile. A tick
        that sends a whole window's chains can outlast the lease it began with; without this
        check two dispatchers would send for a moment. Nothing is half done when it stops: the
        chains recorded so far are sent as the campaign's advance ends (_flush_sends), and a
        recorded task whose message never left is sent again (_recover_undelivered)."""
        if self._token is None or time.monotonic() - self._renewed < LEASE_RENEW_SECONDS:
            return
        if not locks.extend(self.store.redis, LEADER_KEY, self._token, LEASE_MILLIS):
            raise LeaseLost
        self._renewed = time.monotonic()

    def tick(self) -> None:
        self._tick_started = time.perf_counter()
        self._tick_wall = time.time()
        self._more_to_send = False
        self._waits_noted.clear()
        active = self.store.active_ids()
        if self._told and len(active) != len({key[0] for key in self._told}):
            self._told = {key: told for key, told in self._told.items() if key[0] in active}
        if any(key[0] not in active for key in self._entries):
            self._entries = {key: read for key, read in self._entries.items() if key[0] in active}
        if any(key[0] not in active for key in self._views):
            self._views = {key: view for key, view in self._views.items() if key[0] in active}
        if any(key[0] not in active for key in self._schedules):
            self._schedules = {key: known for key, known in self._schedules.items() if key[0] in active}
        if any(key[0] not in active for key in self._proven):
            self._proven = {key for key in self._proven if key[0] in active}
        if any(key[0] not in active for key in self._sealed_versions):
            self._sealed_versions = {k: v for k, v in self._sealed_versions.items() if k[0] in active}
        if any(key not in active for key in self._records):
            self._records = {key: known for key, known in self._records.items() if key in active}
        for looks in (self._looked_at, self._unseen_since, self._watch_round, self._not_taking,
                      self._look_rounds, self._outside_told, self._reached_first, self._planes_told,
                      self._acceptances):
            for gone in [key for key in looks if key not in active]:
                del looks[gone]
        for campaign_id in active:
            try:
                try:
                    self.advance(campaign_id)
                finally:
                    self._flush_sends()  # what was recorded is sent, even when advance stopped midway
            except LeaseLost:
                raise
            except DamagedRecord as error:
                # Isolate it: the loop stops looking at it; list and status name it. Some damage
                # only the controller can see (a schedule that breaks its seal: the CLI reads it
                # fine), so the campaign's events say why nothing moves any more.
                log.error("campaign %s skipped: %s", campaign_id, error)
                self.store.deactivate(campaign_id)
                self.store.event(campaign_id, f"the dispatcher stopped acting on it: {error}")
            except KubeupgradeError as error:
                log.warning("campaign %s: %s", campaign_id, error)
            except SHAPE_ERRORS as error:
                # A value of the wrong shape somewhere in the record (edited, forged, written by
                # a bug): the same error tick after tick. Named and stopped, never retried forever.
                log.exception("campaign %s: dispatcher error", campaign_id)
                self._unreadable[campaign_id] = self._unreadable.get(campaign_id, 0) + 1
                if self._unreadable[campaign_id] >= UNREADABLE_TICKS:
                    self._stop_unreadable(campaign_id, error)
            except Exception:  # noqa: BLE001 - the loop must survive any one campaign
                log.exception("campaign %s: dispatcher error", campaign_id)
            else:
                self._unreadable.pop(campaign_id, None)

    def _hop_entries(self, campaign_id: str, hop: int) -> dict[str, NodeEntry]:
        """The hop's entries as of now, read incrementally: in full at first, then the entries
        written since the last tick and a slice of a sweep that goes over every entry in about
        SWEEP_SECONDS (which also catches writes that bypass the store). A full read of a
        5,000-node hop every 10 s was the tick's p99. A damaged entry raises, as a full read
        would."""
        key = (campaign_id, hop)
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is None:
            self._entries = {k: v for k, v in self._entries.items() if k[0] != campaign_id}
            read = HopEntries(self.store, campaign_id, hop)
            read.read_all()
            self._entries[key] = (now, read)
            return dict(read.entries)
        last, read = cached
        share = (now - last) / SWEEP_SECONDS if SWEEP_SECONDS > 0 else 1.0
        try:
            read.refresh(max(SWEEP_LEAST, math.ceil(len(read.entries) * share)))
        except Exception:
            self._entries.pop(key, None)  # a damaged entry was consumed from the set: read all next time
            raise
        self._entries[key] = (now, read)
        return dict(read.entries)

    def _stop_unreadable(self, campaign_id: str, error: Exception) -> None:
        message = (f"the dispatcher cannot advance this campaign: its record holds a value it cannot "
                   f"read ({type(error).__name__}: {error}); nothing more is sent. Look at "
                   f"`kubeupgrade status {campaign_id} -o json`, then abort it")
        self._unreadable.pop(campaign_id, None)

        def fail(current: dict[str, Any]) -> None:
            if current["state"] == "pending":  # never accepted: refused, nothing ran
                current.update(state="refused", error={"message": message, "violations": [message],
                                                       "bad_input": False})
            else:
                current.update(state="failed", error={"hop": None, "node": None, "phase": None,
                                                      "message": message, "tail": ""})

        ended = None
        try:
            ended = self.store.update(campaign_id, fail)
        except Exception:  # noqa: BLE001 - unreadable even for that: isolated all the same
            log.exception("campaign %s: cannot record the failure", campaign_id)
        self.store.deactivate(campaign_id)
        if ended is not None and ended["state"] == "refused":
            self.store.end(campaign_id, ended["cluster"])
        self.store.event(campaign_id, f"{ended['state'] if ended else 'failed'}: {message}")

    def _record(self, campaign_id: str) -> CampaignRecord | None:
        """The campaign's record, parsed again only when its text changed."""
        read = self.store.get_if_changed(campaign_id, self._records.get(campaign_id))
        if read is None:
            self._records.pop(campaign_id, None)
            return None
        self._records[campaign_id] = read
        return read[1]

    def _schedule(self, doc: CampaignRecord, hop: int) -> HopSchedule:
        """The hop's schedule, read once: it is written at accept and never changes."""
        key = (doc["id"], hop)
        known = self._schedules.get(key)
        if known is None:
            known = self._schedules[key] = self.store.schedule(doc["id"], hop, doc, self._acceptance(doc["id"]))
        return known

    def _view(self, campaign_id: str, hop: int, entries: dict[str, NodeEntry]) -> HopView:
        """The hop's view brought up to `entries` (a pass of identity checks when it already is)."""
        view = self._views.get((campaign_id, hop))
        if view is None:  # a new hop: the campaign's earlier ones are done with
            self._views = {key: v for key, v in self._views.items() if key[0] != campaign_id}
            view = self._views[(campaign_id, hop)] = HopView()
        view.refresh(entries)
        return view

    def advance(self, campaign_id: str) -> None:
        doc = self._record(campaign_id)
        if doc is not None and doc["state"] == "succeeded":
            # Ended by this dispatcher, which stopped before it let go of the campaign; or
            # written so in the broker by someone else, which the seals tell apart.
            unproven = self._unproven(doc, len(doc["hops"]))
            if unproven:
                self._stop_unproven(doc, unproven, "the record says the campaign succeeded")
                return
        if doc is None or doc["state"] not in ("pending", "running"):
            self.store.deactivate(campaign_id)
            return
        if doc["state"] == "pending":
            self.accept(doc)
            return
        if not self._holds_cluster(doc) or self._elsewhere(doc):
            return
        hop_index = doc["current_hop"]
        unproven = self._unproven(doc, hop_index)
        if unproven:
            self._stop_unproven(doc, unproven, f"the record says hop {hop_index + 1} is the current one"
                                if hop_index < len(doc["hops"]) else "the record says every hop is done")
            return
        if hop_index >= len(doc["hops"]):
            self._finish(doc)
            return
        if doc["hops"][hop_index]["stage"] != "prepare":
            unproven = self._version_unproven(doc, hop_index)
            if unproven:
                self._stop_unproven(doc, unproven, f"the record says hop {hop_index + 1} goes to "
                                    f"{doc['hops'][hop_index]['version']}")
                return
        entries = self._hop_entries(campaign_id, hop_index)
        self._tell(doc, hop_index, entries)
        if self._watch(doc, hop_index, entries) or self._recover_lost_tasks(doc, hop_index, entries):
            return
        stage = doc["hops"][hop_index]["stage"]
        failed = ([e for e in entries.values() if e["state"] == "failed"]
                  if self._view(campaign_id, hop_index, entries).failed else [])
        budget = doc["campaign"].get("policies", {}).get("max_failed_workers", 0)
        if beyond_budget(stage, failed, budget):
            self.store.halt(doc, hop_index)  # done by fail_phase already; never missed
            if not any(in_flight(e) for e in entries.values()):
                over = (f"{len(failed)} node(s) failed, over the failure budget of {budget}: no "
                        "new worker was started" if budget else "")
                self._fail(doc, hop_index, failed, budget, why=over)
            return  # a failed node stops new nodes from starting; in-flight ones finish
        if doc.get("paused") and stage not in ("control-planes", "workers"):
            return  # nothing new starts; those stages still finish an outage under way
        getattr(self, "_stage_" + stage.replace("-", "_"))(doc, hop_index, entries)

    # -- acceptance: live discovery and planning ---------------------------------------------
    def accept(self, doc: CampaignRecord) -> None:
        from kubeupgrade.campaign_file import campaign_from_dict
        from kubeupgrade.planning.planner import plan_campaign

        holder = self.store.cluster_holder(doc["cluster"])
        if holder != doc["id"]:  # a record written by hand, or a submitter that lost a race
            self._refuse(doc, [f"campaign {doc['id']} does not hold cluster {doc['cluster']} "
                               f"(held by {holder or 'no campaign'}): one campaign acts on a "
                               "cluster at a time; submit it again once the cluster is free"])
            return
        campaign = campaign_from_dict(doc["campaign"], source=f"campaign {doc['id']}")
        try:
            identity = self._cluster_identity(fresh=True)
            if identity is not None:
                why = mismatch(doc["cluster"], identity) or self.store.bind_identity(
                    identity.name, identity.uid, doc["id"])
                if why:
                    self._refuse(doc, [why])
                    return
            if self.discover is not None:
                campaign = self._with_live_state(campaign, doc["id"])
            plan = plan_campaign(campaign)
        except TemporaryError as error:
            log.warning("campaign %s: cannot plan yet: %s", doc["id"], error)
            return  # the API server may be restarting: stay pending, try on the next tick
        except KubeupgradeError as error:
            # The same exit code `plan` gives for it: bad input (2) or a rule refused (3).
            self._refuse(doc, [str(error)], bad_input=isinstance(error, InvalidInput))
            return
        if plan.violations:
            self._refuse(doc, [v.message for v in plan.violations])
            return
        plan_dict = plan_to_dict(plan)
        hops = []
        for index, hop in enumerate(plan.hops):
            hops.append({"index": index, "from": hop.source.plain, "target": hop.target.plain,
                         "version": None, "facts": {}, "stage": "prepare"})
            entries: dict[str, NodeEntry] = {}
            for node in hop.control_planes + hop.workers:
                entries[node.name] = {
                    "node": node.name, "role": node.role.value, "hop": index,
                    "kubeadm": node.kubeadm_step.value, "drain": node.drain, "state": "pending",
                    "attempt": 1, "cordoned_by_us": False,
                    "phases": [new_phase(Phase.PREPARE_HOST.value)]
                    + [new_phase(p.value) for p in node.phases]}
            policies = campaign.policies
            canary_gate = bool(gate_boundaries(len(hop.workers), policies.canary, policies.gate_every))
            control_plane_gate = bool(hop.control_planes) and bool(
                policies.gates or policies.canary or policies.gate_every)
            windows = {n.name for n in campaign.nodes or () if n.os is OsFamily.WINDOWS}
            windows_workers = any(w.name in windows for w in hop.workers)
            cluster_phases = ([Phase.PREFLIGHT] + [Phase.CONTROL_PLANE_GATE] * control_plane_gate
                              + [Phase.HEALTH_GATE] * canary_gate
                              + [Phase.WINDOWS_KUBE_PROXY] * windows_workers + [Phase.VERIFY])
            entries[CLUSTER_ENTRY] = {
                "node": CLUSTER_ENTRY, "role": "cluster", "hop": index, "state": "pending", "attempt": 1,
                "phases": [new_phase(p.value) for p in cluster_phases]}
            self.store.put_entries(doc["id"], index, entries)

        self.store.put_live_versions(doc["id"], _live_versions(campaign))
        schedules = [HopSchedule.of(hop) for hop in plan.hops]
        self.store.put_schedules(doc["id"], schedules)
        # Sealed before the campaign runs: the controller's own phases act only on what it
        # accepted (seal.py), whatever is written into the record afterwards.
        self.store.put_acceptance(doc["id"], doc["cluster"],
                                  canonical(doc["id"], doc["cluster"], doc["campaign"]), schedules,
                                  [hop["target"] for hop in hops])
        self.store.put_plan(doc["id"], plan_dict)

        def start(current: dict[str, Any]) -> None:
            current.update(state="running" if hops else "succeeded", hops=hops,
                           notes=list(plan.notes), started=time.time(),
                           identity=identity.to_dict() if identity else None)

        self.store.update(doc["id"], start)
        summary = ", ".join(f"{h['from']} -> {h['target']}" for h in hops) or "nothing to do"
        self.store.event(doc["id"], f"accepted: {len(hops)} hop(s): {summary}")
        if not hops:
            self.store.end(doc["id"], doc["cluster"])

    def _cluster_identity(self, fresh: bool = False) -> ClusterIdentity | None:
        """The cluster the controller's kubeconfig reaches (re-read at least every 30 s, and
        for every acceptance: a controller restarted with another kubeconfig is noticed)."""
        if self.identify is None:
            return None
        now = time.monotonic()
        known = self._identity
        if not fresh and known is not None and now - known[0] <= IDENTITY_TTL:
            return known[1]
        if not fresh and known is None and now < self._identity_retry_at:
            raise TemporaryError("the cluster's identity is not known yet (API server unreachable)")
        try:
            self._identity = (now, self.identify())
        except TemporaryError:
            self._identity_retry_at = now + 5.0  # a hung API server must not stall every tick
            if fresh or known is None:
                raise
            # Unreachable now, known before: this process's kubeconfig has not changed since.
            return known[1]
        return self._identity[1]

    def _holds_cluster(self, doc: CampaignRecord) -> bool:
        """Whether a running campaign holds its cluster's lock, which it took when it was
        submitted (or retried) and keeps until it ends. The record's state alone does not say
        so: an ended campaign written back to running (a node's broker credential can) while
        another campaign acts on the cluster would have two act on it. A lock that is gone
        (deleted by hand, say) is taken back if it is free; held by another campaign, this one
        fails, naming it, and nothing more is sent for it."""
        cluster = doc["cluster"]
        holder = self.store.cluster_holder(cluster)
        if holder == doc["id"]:
            return True
        if holder is None:
            try:
                self.store.take_cluster(cluster, doc["id"])
            except CampaignConflict as conflict:
                holder = conflict.existing
            else:
                self.store.event(doc["id"], f"cluster {cluster}'s lock was gone (removed from the "
                                 "broker); this running campaign took it back")
                return True
        self._stop_on_the_record(doc, (
            f"the record says this campaign is running, but cluster {cluster} is held by campaign "
            f"{holder}: one campaign acts on a cluster at a time, so nothing more is sent for this "
            f"one (`kubeupgrade status {holder}` shows the one acting on it)"))
        return False

    def _elsewhere(self, doc: CampaignRecord) -> bool:
        """A running campaign whose controller now reaches another cluster than the one it was
        accepted on: it fails, naming both, before anything more is sent."""
        accepted_on = (doc.get("identity") or {}).get("uid")
        if not accepted_on:
            return False
        try:
            identity = self._cluster_identity()
        except TemporaryError as error:
            log.warning("campaign %s: %s; nothing is sent until it is", doc["id"], error)
            return True  # cannot tell which cluster this is: send nothing until we can
        if identity is None or identity.uid == accepted_on:
            return False
        message = (f"the controller now reaches cluster {identity.describe()}, but this campaign "
                   f"was accepted on kube-system uid {accepted_on}; nothing more is sent. Run the "
                   f"controller with {doc['cluster']}'s kubeconfig, then `kubeupgrade retry {doc['id']}`")
        self._fail_message(doc, doc["current_hop"], message, phase=None)
        return True

    def _with_live_state(self, campaign: Campaign, campaign_id: str) -> Campaign:
        assert self.discover is not None
        live_nodes, version = self.discover(campaign)
        # Only a lost campaign's cordon is taken over whatever the node needs: another one with
        # the annotation may be an operator's, re-cordoned after a hand-made uncordon left it.
        # Each owner looked up once, however many nodes it holds.
        marks = {(n.left_cordoned_by, n.left_cordon_epoch) for n in live_nodes
                 if n.left_cordoned_by and n.left_cordoned_by != campaign_id}
        owners = {owner for owner, _ in marks}
        lost = {owner for owner, epoch in marks if is_lost(self.store.redis, owner, epoch)}
        unknown = {owner for owner in owners - lost if not known_campaign(self.store.redis, owner)}
        if unknown:
            self.store.event(campaign_id, unknown_cordons_told(
                [f"{n.name} ({n.left_cordoned_by})" for n in live_nodes if n.left_cordoned_by in unknown]))
        return with_live_state(campaign, live_nodes, version, taken_over=lost)

    def _refuse(self, doc: CampaignRecord, reasons: list[str], bad_input: bool = False) -> None:
        def refuse(current: dict[str, Any]) -> None:
            current.update(state="refused", error={"message": "; ".join(reasons), "violations": reasons,
                                                   "bad_input": bad_input})

        self.store.update(doc["id"], refuse)
        self.store.end(doc["id"], doc["cluster"])
        self.store.event(doc["id"], "refused: " + "; ".join(reasons))

    # -- stages --------------------------------------------------------------------------------
    def _stage_prepare(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        nodes = [e for name, e in entries.items() if name != CLUSTER_ENTRY]
        waiting = [e for e in nodes if e["phases"][0]["state"] != "succeeded" and not in_flight(e)]
        if waiting:
            ready = self._agents_ready(doc, hop, [e["node"] for e in waiting])
            signatures = [links[0] for links in self._chains(
                doc, hop, [(e, e["phases"][:1]) for e in waiting if e["node"] in ready])]
            if signatures:
                self._send(doc, hop, group(signatures) if len(signatures) > 1 else signatures[0])
            return
        if any(e["phases"][0]["state"] != "succeeded" for e in nodes):
            return
        self._resolve_version(doc, hop, entries)

    def _resolve_version(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        target = doc["hops"][hop]["target"]
        acceptance = self._acceptance(doc["id"])
        try:
            if acceptance is not None:
                acceptance.check_target(hop, target)
        except SealBroken as error:
            # Resolved from a target written into the record (the minor the nodes run, say),
            # the version sealed below would pass every check with nothing upgraded.
            self._stop_unproven(doc, str(error), f"the record says hop {hop + 1} targets {target}")
            return
        facts = hop_facts(doc["hops"][hop], entries)
        common: set[str] | None = None
        for node_facts in facts.values():
            versions = set(node_facts["available"])
            common = versions if common is None else common & versions
        candidates = sorted((parse_version(v) for v in common or set()), reverse=True)
        exact = target.count(".") == 2 or "-" in target
        if exact:
            chosen = parse_version(target) if parse_version(target) in candidates else None
        else:
            chosen = next((v for v in candidates if not v.is_prerelease), None)
        if chosen is None:
            lacking = [n for n, f in facts.items() if not exact or target not in f["available"]]
            self._fail_message(doc, hop, f"no version of {target} is available on every node "
                               f"(check the repositories of: {', '.join(sorted(lacking))})")
            return
        packages = {node: f["available"][chosen.plain] for node, f in facts.items()}

        self.store.put_packages(doc["id"], hop, packages)  # first: the stage below says they are there
        self.store.put_resolved(doc["id"], hop, chosen.plain)  # what the controller checks against
        self._sealed_versions.pop((doc["id"], hop), None)

        def resolved(current: dict[str, Any]) -> None:
            current["hops"][hop].update(version=chosen.plain, stage="preflight")
            if hop + 1 < len(current["hops"]):
                current["hops"][hop + 1]["from"] = chosen.plain

        if hop == 0:  # before the stage moves on, so a restart in between does it again
            self._skip_nodes_at(doc, chosen.plain)
        self.store.update(doc["id"], resolved)
        self.store.event(doc["id"], f"hop {hop + 1}: target {target} resolved to {chosen.plain}")

    def _skip_nodes_at(self, doc: CampaignRecord, version: str) -> None:
        """Nodes already running `version` (kubelet and, on a control plane, its static pods)
        run nothing: no kubeadm, no drain, no restart."""
        skipped = []
        live_versions = self.store.live_versions(doc["id"], doc)
        everywhere = all(v["control_plane"] == version for v in live_versions.values() if v["control_plane"])
        first = self._schedule(doc, 0).first_control_plane
        reapply = bool(doc["campaign"].get("policies", {}).get("reapply")) and everywhere
        for name, live in live_versions.items():
            if live["kubelet"] != version or live["control_plane"] not in (None, version):
                continue
            if live.get("cordoned_by"):  # another campaign's cordon to take over and release
                continue
            # With policies.reapply the first control plane keeps its kubeadm phases (apply
            # --force); only its kubelet phases are skipped.
            keep = REAPPLY_PHASES if reapply and name == first else frozenset()

            def already(entry: NodeEntry, keep: frozenset[str] = keep) -> Any:
                if entry["state"] not in ("pending", "running") or any(
                        p["task_id"] for p in entry["phases"][1:]):
                    return False
                now = time.time()
                for record in entry["phases"][1:]:
                    if record["phase"] not in keep:
                        record.update(state="succeeded", started=now, ended=now, outcome="already-done",
                                      detail=f"already at v{version}; nothing run")
                if not keep:
                    entry.update(state="succeeded", ended=now)
                return True

            if self.store.update_entry(doc["id"], 0, name, already) and not keep:
                skipped.append(name)
        if skipped:
            self.store.event(doc["id"], f"already at v{version}, nothing to do on: {', '.join(sorted(skipped))}")

    def _stage_preflight(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        self._cluster_phase(doc, hop, entries[CLUSTER_ENTRY], Phase.PREFLIGHT, next_stage="control-planes")

    def _stage_verify(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        cluster = entries[CLUSTER_ENTRY]
        proxy = next((p for p in cluster["phases"] if p["phase"] == Phase.WINDOWS_KUBE_PROXY.value), None)
        if proxy is not None and proxy["state"] != "succeeded":
            if not proxy["task_id"]:  # kube-proxy for Windows once the Windows workers are done
                self._send(doc, hop, self._signature(doc, hop, cluster, proxy))
            return
        self._cluster_phase(doc, hop, cluster, Phase.VERIFY, next_stage="done")

    def _cluster_phase(self, doc: CampaignRecord, hop: int, entry: NodeEntry, phase: Phase,
                       next_stage: str) -> None:
        record = next(p for p in entry["phases"] if p["phase"] == phase.value)
        if record["state"] == "succeeded":
            self._set_stage(doc, hop, next_stage)
        elif not record["task_id"]:
            self._send(doc, hop, self._signature(doc, hop, entry, record))

    def _stage_control_planes(self, doc: CampaignRecord, hop: int,
                              entries: dict[str, NodeEntry]) -> None:
        if self.availability is not None:
            self.availability.want()  # read by the time the workers' turn comes
        step = decide_control_planes(self._schedule(doc, hop).control_planes, entries,
                                     paused=bool(doc.get("paused")) or not self._window_open(doc))
        if not step.finished and not doc.get("paused"):
            self._fetch_early(doc, hop, entries)
        if step.finished:
            cluster = entries[CLUSTER_ENTRY]
            gate = next((p for p in cluster["phases"] if p["phase"] == Phase.CONTROL_PLANE_GATE.value), None)
            if gate is None or gate["state"] == "succeeded":
                if self._control_planes_seen(doc, hop):
                    self._set_stage(doc, hop, "workers")
            elif gate["state"] == "pending" and not gate["task_id"] and not doc.get("paused"):
                self._send(doc, hop, self._signature(doc, hop, cluster, gate))
            return
        if not step.send:
            return
        ready = self._agents_ready(doc, hop, list(step.send))
        if len(ready) < len(step.send):
            return
        links = [link for links in self._chains(doc, hop, [
            (entries[name], [p for p in entries[name]["phases"] if p["state"] != "succeeded"])
            for name in step.send]) for link in links]
        self._send(doc, hop, node_canvas(links))

    def _control_planes_seen(self, doc: CampaignRecord, hop: int) -> bool:
        """Whether the cluster shows what the record says: every control plane of the hop at
        its version, Ready. Agents write the record, so its word alone must not let a worker
        change (kube/control_planes_seen.py). Until the cluster agrees, the campaign's events say
        what it shows, once each time that changes."""
        if self.control_planes is None:
            return True
        seen = self.control_planes.ask(f"{doc['id']}/{hop}", self._schedule(doc, hop).control_planes,
                                       parse_version(doc["hops"][hop]["version"]))
        if seen is None:  # asked: the answer wakes the dispatcher
            return False
        told = "" if seen.confirmed else seen.wording()
        if told != self._planes_told.get(doc["id"], ""):
            self._planes_told[doc["id"]] = told
            self.store.event(doc["id"], f"hop {hop + 1}: {told}" if told else
                             f"hop {hop + 1}: the cluster shows every control plane at the version")
        return seen.confirmed

    def _unproven(self, doc: CampaignRecord, through: int) -> str:
        """Why the record's progress, hops [0, through) done, is not this controller's work
        (seal.py), or "": each of those hops has the seal its verification wrote, and the
        record holds the hops the controller accepted. Agents write the record, so a hop's
        stage, the current hop or the campaign's state could be walked to the end without a
        verification ever passing. Checked once per hop reached, in one read."""
        campaign_id = doc["id"]
        acceptance = self._acceptance(campaign_id)
        if acceptance is None:
            return ""
        accepted = len(acceptance.schedules)
        if len(doc["hops"]) != accepted:
            return f"it holds {len(doc['hops'])} hop(s) where this controller accepted {accepted}"
        if through > accepted:
            return f"its current hop is {through + 1} where this controller accepted {accepted} hop(s)"
        if (campaign_id, through) in self._proven:
            return ""
        why = self.store.unverified(campaign_id, range(through)) or ""
        if not why:
            self._proven.add((campaign_id, through))
        return why

    def _acceptance(self, campaign_id: str) -> Acceptance | None:
        """What this controller sealed when it accepted the campaign, read once (it never
        changes); DamagedRecord if it is broken, which isolates the campaign."""
        if campaign_id not in self._acceptances:
            self._acceptances[campaign_id] = self.store.acceptance(campaign_id)
        return self._acceptances[campaign_id]

    def _version_unproven(self, doc: CampaignRecord, hop: int) -> str:
        """Why the hop's version in the record is not the one this controller resolved and
        sealed, or "". Every check of the cluster (the control planes before the workers, the
        readiness waits, the verification) is made against it: written back to the version
        the nodes run already, it would pass them all with nothing upgraded."""
        key = (doc["id"], hop)
        sealed = self._sealed_versions.get(key)
        if sealed is None:
            try:
                sealed = self.store.sealed_version(doc["id"], hop) or ""
            except DamagedRecord as error:
                return error.summary
            self._sealed_versions[key] = sealed
        if sealed and doc["hops"][hop]["version"] != sealed:
            return f"this controller resolved {sealed} for it"
        return ""

    def _stop_unproven(self, doc: CampaignRecord, why: str, says: str) -> None:
        """A campaign whose record claims progress this controller cannot prove: failed, with
        nothing more sent, and with the nodes the cluster shows cordoned by it named (the
        record's own list of them is no more to be trusted than its progress)."""
        cordoned = ""
        seen = self.availability.latest() if self.availability is not None else None
        if seen is not None:
            ours = sorted(name for name, how in seen.workers.items() if how.owner == doc["id"])
            at = time.strftime("%H:%M:%S UTC", time.gmtime(seen.read_at))
            cordoned = (f"; the cluster's nodes read at {at} show cordoned by this campaign: "
                        f"{', '.join(ours) if ours else 'none'}")
        self._stop_on_the_record(doc, (
            f"{says}, but {why}: the record was changed in the broker, not by this controller "
            f"(forged, or edited by hand); nothing more is sent{cordoned}. `kubeupgrade abort "
            f"{doc['id']} --uncordon` releases what it cordoned; then submit the campaign again: "
            "it is planned from the cluster as it is"), forged_state=True)

    def _stop_on_the_record(self, doc: CampaignRecord, message: str, forged_state: bool = False) -> None:
        """A campaign the record cannot be trusted for any more: failed with `message` (its
        state too, when that is proven forged), and let go of by the loop."""
        def fail(current: dict[str, Any]) -> None:
            current.update(state="failed", error={"hop": None, "node": None, "phase": None,
                                                  "message": message, "tail": ""})

        log.error("campaign %s: %s", doc["id"], message)
        self.store.update(doc["id"], fail, forged_state=forged_state)
        self.store.deactivate(doc["id"])
        self.store.event(doc["id"], f"failed: {message}")

    def _fetch_early(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        """The first workers' early phases (their repository, their packages into the cache:
        nothing they run changes) while the control planes upgrade (decide.workers_to_fetch),
        so the worker stage does not begin with every slot waiting for downloads. Only the
        canaries when a health gate comes first; none once more workers failed than the budget.
        Sent only to agents that answer now: a silent one is waited for by name in the worker
        stage, as before, and never holds up the control planes."""
        policies = doc["campaign"].get("policies", {})
        view = self._view(doc["id"], hop, entries)
        if sum(1 for name in view.failed if entries[name]["role"] == "worker") > policies.get("max_failed_workers", 0):
            return
        schedule = self._schedule(doc, hop)
        order = schedule.workers
        if any(p["phase"] == Phase.HEALTH_GATE.value for p in entries[CLUSTER_ENTRY]["phases"]):
            boundaries = gate_boundaries(len(order), policies.get("canary", 0), policies.get("gate_every", 0))
            order = order[: boundaries[0]] if boundaries else order
        wanted = workers_to_fetch(order, entries, schedule.limit, pools=schedule.pool_limits(),
                                  prepare_ahead=policies.get("prepare_ahead", 0))
        if not wanted:
            return
        ready = alive_agents(self.store.redis, list(wanted)) - self._not_taking.get(doc["id"], set())
        for chunk in self._within_budget([name for name in wanted if name in ready]):
            for links in self._chains(doc, hop, [(entries[name], early_part(entries[name])) for name in chunk]):
                self._send(doc, hop, node_canvas(links))

    def _stage_workers(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        """Prepare workers ahead of the window (no outage); take them out of service as the
        limit allows. Preparation and outage are separate chains, so a slot in the window is
        held only from drain to uncordon — but for all of it: a worker whose outage began holds
        its slot until it finishes, even while none of its tasks is in flight (one was lost
        and is sent again, or the campaign was retried)."""
        if not self._control_planes_seen(doc, hop):
            return  # the stage itself is the record's word too (an answer once there is kept)
        schedule = self._schedule(doc, hop)
        order, strategy = schedule.workers, schedule.strategy
        policies = doc["campaign"].get("policies", {})
        cluster = entries[CLUSTER_ENTRY]
        gate = next((p for p in cluster["phases"] if p["phase"] == Phase.HEALTH_GATE.value), None)
        boundary = self._gate_boundary(doc, hop, order, cluster, gate) if gate else None
        if boundary == -1:
            return  # a gate just passed: the next tick decides on the updated record
        outside, unread = self._outside(doc, entries)
        step = decide_workers(order, schedule.limit, strategy, entries,
                              max_failed=policies.get("max_failed_workers", 0),
                              canary=boundary or 0, gate_passed=boundary is None,
                              paused=bool(doc.get("paused")), pools=schedule.pool_limits(),
                              outage_allowed=self._window_open(doc) and not unread,
                              prepare_ahead=policies.get("prepare_ahead", 0),
                              known=self._view(doc["id"], hop, entries).workers_index(order),
                              outside=outside)
        self._tell_outside(doc, step.held, unread)
        failed = [entries[name] for name in step.failed]
        if step.finished and failed:
            if not any(in_flight(e) for e in entries.values()):
                self._fail(doc, hop, failed, policies.get("max_failed_workers", 0))
            return
        if step.finished:
            self._set_stage(doc, hop, "verify")
            return
        if step.stuck and not failed:  # decide_workers says this cannot happen; never hang on it
            self._fail_message(doc, hop, "no worker can start and none is in flight; please report "
                               "this with `kubeupgrade status -o json`", phase=None)
            return
        if step.stuck:
            held = [e["node"] for e in failed if out_of_service(e)]
            limits = " and ".join(hold.named for hold in step.stuck_on) or f"the limit of {schedule.limit}"
            self._fail(doc, hop, failed, policies.get("max_failed_workers", 0),
                       why=f"no worker can start: failed workers left cordoned ({', '.join(held)}) "
                           f"fill {limits} that the waiting workers need")
            return
        if step.gate:
            if gate is not None and gate["state"] == "pending" and not gate["task_id"]:
                def checking(current: dict[str, Any]) -> None:
                    current["hops"][hop]["gate_boundary"] = boundary

                self.store.update(doc["id"], checking)
                self._send(doc, hop, self._signature(doc, hop, cluster, gate))
            return
        outage = list(step.outage)
        wanted = outage + list(step.prepare)
        if not wanted:
            return
        ready = self._agents_ready(doc, hop, wanted)
        # A batch's outage chains all go in this tick, whatever the budget, as one group.
        batch = set(outage) if strategy is WorkerStrategy.BATCHES and len(outage) > 1 else set()
        outage_chains = []
        for chunk in self._within_budget([name for name in wanted if name in ready], batch):
            parts = []
            for name in chunk:
                entry = entries[name]
                pending = [p for p in entry["phases"] if p["state"] != "succeeded"]
                parts.append((entry, pending if name in outage else
                              [p for p in entry["phases"][:outage_start(entry)] if p["state"] != "succeeded"]))
            for links in self._chains(doc, hop, parts):
                if links[0].kwargs["node"] in batch:
                    outage_chains.append(node_canvas(links))
                else:
                    self._send(doc, hop, node_canvas(links))
        if outage_chains:  # a flat group of node chains: one batch
            self._send(doc, hop, group(outage_chains) if len(outage_chains) > 1 else outage_chains[0])

    def _outside(self, doc: CampaignRecord, entries: dict[str, NodeEntry]) -> tuple[frozenset[str], str]:
        """The cluster's workers out of service that this campaign did not take out, as last
        read, and why no outage may start ("" when one may): no read yet, or too old a one.
        A worker of this hop that finished after the read began is left out unless someone
        else cordoned it: the read may still show this campaign's own outage of it
        (decide_workers leaves out those the campaign holds itself)."""
        if self.availability is None:
            return frozenset(), ""
        from kubeupgrade.kube.availability import why_unread

        self.availability.want()
        seen = self.availability.latest()
        unread = why_unread(seen, self.availability.error, time.time())
        if seen is None or unread:
            return frozenset(), unread
        outside = set()
        for name, how in seen.workers.items():
            entry = entries.get(name)
            if (entry is not None and entry["state"] == "succeeded" and (back_in_service_at(entry) or 0) >= seen.read_at
                    and (not how.cordoned or how.owner == doc["id"])):
                # Finished after the read began: what the read saw of it may be this campaign's
                # own outage, since ended (its cordon released, Ready again). Not a cordon by
                # someone else: the campaign left that in place, and it still holds a slot.
                continue
            outside.add(name)
        return frozenset(outside), ""

    def _tell_outside(self, doc: CampaignRecord, held: tuple[HeldBack, ...], unread: str) -> None:
        """Say in the campaign's events, once each time it changes, what holds its outages back
        from outside it: workers out of service it did not take out, or an unread cluster."""
        if unread and seen_once(self.availability):
            told = f"no worker begins an outage until the cluster's nodes are read: {unread}"
        elif held:
            seen = self.availability.latest() if self.availability is not None else None
            told = held_back_told(held, {name: how.why for name, how in seen.workers.items()} if seen else {})
        else:
            told = ""
        if told == self._outside_told.get(doc["id"], ""):
            return
        self._outside_told[doc["id"]] = told
        self.store.event(doc["id"], told or "workers out of service outside this campaign no "
                         "longer hold its outages back")

    @property
    def more_to_send(self) -> bool:
        """The last tick stopped sending at its budget (run_forever ticks again at once)."""
        return self._more_to_send

    def _within_budget(self, names: list[str], whole: Collection[str] = ()) -> Iterator[list[str]]:
        """`names` in chunks, each recorded in one round trip (_chains), until the tick's send
        budget is spent; then only those in `whole` (a batch that goes out together) are left.
        The rest go next tick, decided again on what has changed meanwhile. The first chunk is
        one chain; each next one as many as the budget left has room for at the last chunk's
        cost per chain (at most SEND_CHUNK), so a tick overruns its budget by about a chain, not
        a chunk (a fixed 8 took the tick's CPU p99 at 5,000 nodes from 15 to 21 ms)."""
        size = 1
        while names:
            began = time.perf_counter()
            chunk, names = names[:size], names[size:]
            yield chunk
            if not names:
                return
            if self._over_send_budget():
                names, size = [name for name in names if name in whole], SEND_CHUNK
                continue
            now = time.perf_counter()
            each = (now - began) / len(chunk)
            left = SEND_BUDGET_SECONDS - (now - self._tick_started)
            size = max(1, min(SEND_CHUNK, int(left / each))) if each > 0 else SEND_CHUNK

    def _over_send_budget(self) -> bool:
        if time.perf_counter() - self._tick_started < SEND_BUDGET_SECONDS:
            return False
        self._more_to_send = True
        return True

    def _gate_boundary(self, doc: CampaignRecord, hop: int, order: tuple[str, ...],
                       cluster: NodeEntry, gate: PhaseRecord) -> int | None:
        """The worker position the next health gate waits at (None: no gate left in this hop;
        -1: one just passed, recorded now). The gate phase is re-opened for each later wave."""
        policies = doc["campaign"].get("policies", {})
        boundaries = gate_boundaries(len(order), policies.get("canary", 0), policies.get("gate_every", 0))
        hop_doc = doc["hops"][hop]
        passed = list(hop_doc.get("gates_passed", []))
        checking = hop_doc.get("gate_boundary")
        if gate["state"] == "succeeded" and checking is not None and checking not in passed:
            passed.append(checking)

            def record(current: dict[str, Any]) -> None:
                current["hops"][hop]["gates_passed"] = passed

            self.store.update(doc["id"], record)
            self.store.event(doc["id"], f"hop {hop + 1}: health gate green after worker {checking}")
            later = [b for b in boundaries if b not in passed]
            if later:
                def reopen(entry: NodeEntry) -> Any:
                    for phase in entry["phases"]:
                        if phase["phase"] == Phase.HEALTH_GATE.value and phase["state"] == "succeeded":
                            phase.update(state="pending", task_id=None,
                                         detail=f"passed after worker {checking}; next after worker {later[0]}")
                            return True
                    return False

                self.store.update_entry(doc["id"], hop, CLUSTER_ENTRY, reopen)
            return -1
        return next((b for b in boundaries if b not in passed), None)

    def _tell(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        """Record a Kubernetes event for each node milestone seen change. A node first seen by
        this process is only noted: after a restart nothing is told twice."""
        if self.narrate is None:
            return
        version = doc["hops"][hop].get("version") or doc["hops"][hop]["target"]
        for name in self._view(doc["id"], hop, entries).changed:  # the others: nothing new
            entry = entries[name]
            key = (doc["id"], hop, name)
            told = self._told.get(key)
            # The same entry object as last time: unchanged (see hop_view), nothing new to tell.
            if name == CLUSTER_ENTRY or (told is not None and told[0] is entry):
                continue
            reached = milestones(entry, version)
            if told is not None:
                for step in to_tell(told[1], reached):
                    self.narrate(NodeEvent(name, step.reason, step.message, doc["id"], step.phase,
                                           step.state, step.warning))
            self._told[key] = (entry, tuple(m.reason for m in reached))

    def _window_open(self, doc: CampaignRecord) -> bool:
        """Whether a maintenance window is open now; says so in the events when that changes."""
        try:
            windows = windows_of(doc["campaign"])
        except ValueError as error:  # isolated by tick(), named by list and status
            raise DamagedRecord(f"ku:c:{doc['id']}", str(error), "campaign") from None
        if not windows:
            return True
        now = self.store.broker_now()  # as the agents judge it (CampaignStore.broker_now)
        opened = is_open(windows, now)
        if self._windows_seen.get(doc["id"]) is not opened:
            self._windows_seen[doc["id"]] = opened
            self.store.event(doc["id"], f"maintenance window {describe(windows, now)}"
                             + ("" if opened else "; nothing begins an outage until then"))
        return opened

    def _stage_done(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> None:
        unproven = self._unproven(doc, hop + 1)
        if unproven:  # the record moved the hop to done: its verification never passed here
            self._stop_unproven(doc, unproven, f"the record says hop {hop + 1} is verified")
            return

        def next_hop(current: dict[str, Any]) -> None:
            current["current_hop"] = hop + 1

        self.store.update(doc["id"], next_hop)
        self.store.event(doc["id"], f"hop {hop + 1} verified at {doc['hops'][hop]['version']}")

    def _set_stage(self, doc: CampaignRecord, hop: int, stage: str) -> None:
        def change(current: dict[str, Any]) -> None:
            current["hops"][hop]["stage"] = stage

        self.store.update(doc["id"], change)
        self.store.event(doc["id"], f"hop {hop + 1}: {stage}")

    # -- sending ---------------------------------------------------------------------------------
    def _signature(self, doc: CampaignRecord, hop: int, entry: NodeEntry,
                   phase_record: PhaseRecord) -> Signature:
        """An immutable signature for one phase, with a pre-assigned task id recorded first."""
        return self._signatures(doc, hop, entry, [phase_record])[0]

    def _signatures(self, doc: CampaignRecord, hop: int, entry: NodeEntry,
                    records: list[PhaseRecord]) -> list[Signature]:
        """Immutable signatures for phases of one node (the links of its chain), their
        pre-assigned task ids recorded first, in one write of its entry (none for no phase)."""
        return self._chains(doc, hop, [(entry, records)])[0] if records else []

    def _chains(self, doc: CampaignRecord, hop: int,
                nodes: list[tuple[NodeEntry, list[PhaseRecord]]]) -> list[list[Signature]]:
        """_signatures for many nodes, their task ids recorded in one round trip for all (one
        write of each entry, pipelined: CampaignStore.update_entries)."""
        nodes = [(entry, records) for entry, records in nodes if records]
        if not nodes:
            return []
        self._still_leading()
        dispatched_at = time.time()
        known = self._entries.get((doc["id"], hop))
        task_ids: dict[str, dict[str, str]] = {}
        changes = {}
        for entry, records in nodes:
            ids = task_ids[entry["node"]] = {record["phase"]: uuid.uuid4().hex for record in records}

            def assign(current: dict[str, Any], ids: dict[str, str] = ids) -> None:
                phases = current["phases"]
                split = outage_start(current)
                for record in phases:
                    if record["phase"] in ids:
                        record.update(task_id=ids[record["phase"]], dispatched=dispatched_at)
                if split < len(phases) and phases[split]["phase"] in ids:
                    # When the node's outage could first begin, by this clock: the window
                    # audit's start (audit.py). The send before the phase first began: a send
                    # it never began after (held, lost) took nothing out of service. Once it
                    # began, never later (a record begun without one keeps the audit's older
                    # reading: the earlier of its last send and its start).
                    first = phases[split]
                    if not first.get("started"):
                        first["first_dispatched"] = dispatched_at

            changes[entry["node"]] = (assign, known[1].as_read(entry["node"], entry) if known else None)
        self.store.update_entries(doc["id"], hop, changes)
        version = doc["hops"][hop].get("version") or doc["hops"][hop]["target"]
        return [[phase_signature(self.app, Phase(record["phase"]), entry["node"],
                                 task_ids[entry["node"]][record["phase"]], campaign=doc["id"], hop=hop,
                                 attempt=entry["attempt"], version=version)
                 for record in records]
                for entry, records in nodes]

    def _send(self, doc: CampaignRecord, hop: int, canvas: Signature) -> None:
        """Send `canvas` with this campaign's other sends of this tick, in one round trip as
        advance() returns or raises (_flush_sends). Each message used to be a round trip of its
        own and its task-sent event another: 2 of a sending tick's ~3 per chain, each a wait for
        Redis and then for a core. A chain is still recorded before it is sent; one recorded and
        never sent (the process died before the flush, or the flush failed) is sent again by
        _recover_undelivered, as before."""
        if self._outbox is None:
            self._outbox = Outbox(self.app, SEND_BATCH_COMMANDS)
        canvas.apply_async()

    def _flush_sends(self) -> None:
        if self._outbox is not None:
            outbox, self._outbox = self._outbox, None
            outbox.flush()

    # -- agents, watchdog, failure --------------------------------------------------------------
    def _agents_ready(self, doc: CampaignRecord, hop: int, nodes: list[str]) -> set[str]:
        """The nodes among `nodes` whose agent answers and takes its tasks; the others are a
        named wait in the hop (status, events), failed after the campaign's agent_timeout."""
        not_taking = self._not_taking.get(doc["id"], set())
        ready = alive_agents(self.store.redis, nodes) - not_taking
        # The waits as this tick last wrote them, or as the tick read them: only the dispatcher
        # writes them, but for a retry, which starts them over (then the note below stands down).
        before = dict(self._waits_noted.get((doc["id"], hop), doc["hops"][hop].get("waiting_for_agents", {})))
        timeout = doc["campaign"].get("policies", {}).get("agent_timeout", 300)
        verdict = agents_waiting(nodes, ready, before, time.time(), float(timeout))
        if verdict.expired:  # it fails phases: decided on the waits as they are now
            current = self._record(doc["id"]) or doc
            before = dict(current["hops"][hop].get("waiting_for_agents", {}))
            verdict = agents_waiting(nodes, ready, before, time.time(), float(timeout))
        for name in verdict.newly_silent:
            self.store.event(doc["id"], f"waiting for the agent of {name}" + (
                f": it answers but has left its task in queue {node_queue(name)} for over "
                f"{NOT_TAKING_AFTER:g}s (its consumer may be stuck: restart the agent)"
                if name in not_taking else ""))
        if verdict.waiting != before:
            def note(current: dict[str, Any]) -> None:
                if current["hops"][hop].get("waiting_for_agents", {}) == before:
                    current["hops"][hop]["waiting_for_agents"] = verdict.waiting

            noted = self.store.update(doc["id"], note)
            if noted is not None:
                self._waits_noted[(doc["id"], hop)] = dict(noted["hops"][hop].get("waiting_for_agents", {}))
        for name in verdict.expired:
            entry = self.store.entry(doc["id"], hop, name)
            phase = first_open_phase(entry) if entry else None
            if entry is not None and phase is not None:
                why = (f"the agent of {name} answers but did not take its task from queue "
                       f"{node_queue(name)} within {NOT_TAKING_AFTER:g}s + {timeout}s; restart it"
                       if name in not_taking else
                       f"the agent of {name} did not answer within {timeout}s; start it")
                self.store.fail_phase(doc["id"], hop, name, phase["phase"],
                                      f"{why} (kubeupgrade agent --node {name} ...), then "
                                      f"`kubeupgrade retry {doc['id']}`",
                                      attempt=entry["attempt"], task_id=phase["task_id"],
                                      fence_off=bool(phase["task_id"]))
        return ready

    def _watch(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry]) -> bool:
        """A task that ended without recording it (its worker died, or lost the broker while
        finishing) is sent again when the cause was the infrastructure, up to a few times;
        otherwise its phase is marked failed, so the campaign never hangs. True if re-sent."""
        resend: dict[str, str] = {}  # node -> the task id its decision was made on
        fresh: dict[str, dict[str, Any]] | None = None
        watched = {phase["task_id"]: (name, phase)
                   for name, phase in self._view(doc["id"], hop, entries).watched.items()}
        ended = self._ended_badly(self._this_round(doc["id"], watched))
        for task_id, (state, outcome) in ended.items():
            name, phase = watched[task_id]
            entry = entries[name]
            if phase["state"] == "pending":
                # Its task never began. Celery stores an earlier link's failure on every later
                # link of a chain, so when another node has failed this link was merely cut
                # off: release it (not in flight, not failed) rather than blame this node.
                fresh = fresh if fresh is not None else self.store.entries(doc["id"], hop)
                if any(e["state"] == "failed" for n, e in fresh.items() if n != name):
                    self._release(doc, hop, name, phase)
                    continue
            cause = repr(outcome)
            infrastructure = state == "FAILURE" and any(marker in cause for marker in INFRASTRUCTURE_ERRORS)
            if infrastructure and phase.get("resends", 0) < MAX_RESENDS:
                resend[name] = phase["task_id"]
            else:
                refusal = next((why for marker, why in BROKER_REFUSALS.items() if marker in cause), "")
                self.store.fail_phase(doc["id"], hop, name, phase["phase"],
                                      f"task {state.lower()}: {cause}{refusal}"[:600],
                                      attempt=entry["attempt"], task_id=phase["task_id"])
        if resend:
            self._resend(doc, hop, entries, resend, "its task failed on the infrastructure")
        return bool(resend)

    def _this_round(self, campaign_id: str, watched: Mapping[str, object]) -> list[str]:
        """Up to WATCH_BATCH of the `watched` task ids to look at in this tick: those left of
        the current round that are still watched; a new round takes every one watched now."""
        return next_round(self._watch_round, campaign_id, watched, lambda: list(watched), WATCH_BATCH)

    def _ended_badly(self, task_ids: list[str]) -> dict[str, tuple[str, Any]]:
        """The tasks among `task_ids` whose result is FAILURE or REVOKED, with the exception:
        one MGET for all of them (a tick watches every task in flight), not a GET each."""
        if not task_ids:
            return {}
        backend = self.app.backend  # Redis: the result backend is the broker (workflow/app.py)
        keys = {t: self._result_key(t) for t in task_ids}
        self._result_keys = keys
        stored = backend.client.mget(list(keys.values()))
        ended = {}
        for task_id, payload in zip(keys, stored, strict=True):
            if payload is None or (b"FAILURE" not in payload and b"REVOKED" not in payload):
                continue  # no result yet, or one that is not a failure: skip decoding it
            meta = backend.decode_result(payload)
            if meta.get("status") in ("FAILURE", "REVOKED"):
                ended[task_id] = (meta["status"], meta.get("result"))
        return ended

    def _result_key(self, task_id: str) -> bytes:
        """The key of a task's result, as _ended_badly last built it (a tick watches every task
        in flight; Celery builds each key in microseconds)."""
        return self._result_keys.get(task_id) or self.app.backend.get_key_for_task(task_id)

    def _resend(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry],
                causes: dict[str, str], why: str,
                counter: Literal["resends", "redeliveries"] = "resends") -> None:
        """Send the open phases of these nodes again, as a new attempt (stale messages of the
        old attempt are fenced off; the phases themselves are idempotent). `causes` maps each
        node to the task id the decision was made on: the decision read the record earlier, so
        a node whose open phase has moved on since (its task finished or, for a message thought
        undelivered, began after all) is left alone. `counter`: the phase's count to add one to."""
        targets = set(causes)
        if any(entries[name]["role"] == "control-plane" for name in causes):
            # The control planes share one chain: everything after the lost link is lost too.
            targets |= {n for n, e in entries.items() if e["role"] == "control-plane" and e["state"] != "succeeded"}
        resent = []
        for name in targets:
            def again(entry: NodeEntry, expected: str | None = causes.get(name)) -> Any:
                opened = first_open_phase(entry)
                if opened is None or (expected is not None and opened["task_id"] != expected):
                    return False
                if counter == "redeliveries" and expected is not None and opened["state"] != "pending":
                    return False
                if expected is not None:
                    opened[counter] = opened.get(counter, 0) + 1
                new_attempt(entry)
                return True

            if self.store.update_entry(doc["id"], hop, name, again) and name in causes:
                resent.append(name)
        if resent:
            self.store.event(doc["id"], f"{', '.join(sorted(resent))}: {why}; sent again as a new attempt")

    def _recover_lost_tasks(self, doc: CampaignRecord, hop: int,
                            entries: dict[str, NodeEntry]) -> bool:
        """A phase recorded as running whose task no longer beats (its worker was killed or
        frozen, or lost the broker for good) is sent again as a new attempt once it has been
        silent for LOST_TASK_GRACE seconds. The phases are idempotent, and the old message, if
        it ever comes back, is fenced off as stale."""
        watched = self._view(doc["id"], hop, entries).watched
        running = {phase["task_id"]: name for name, phase in watched.items() if phase["state"] == "running"}
        before = self._missing_since.pop(doc["id"], {})
        if self._recover_undelivered(doc, hop, entries, watched):
            return True
        if not running:
            return False
        now = time.monotonic()
        held = beating(self.store.redis, running)
        missing = {task_id: before.get(task_id, now) for task_id in running if task_id not in held}
        lost = {running[task_id]: task_id for task_id, since in missing.items() if now - since >= LOST_TASK_GRACE}
        self._missing_since[doc["id"]] = {t: since for t, since in missing.items() if running[t] not in lost}
        if not lost:
            return False
        self._resend(doc, hop, entries, lost, "its running task stopped beating (worker killed or frozen?)")
        return True

    def _recover_undelivered(self, doc: CampaignRecord, hop: int, entries: dict[str, NodeEntry],
                             watched: dict[str, PhaseRecord]) -> bool:
        """A pending task its chain has reached, whose message is nowhere (not queued, not
        running, no result: workflow/undelivered) at two looks LOST_TASK_GRACE apart, is sent
        again as a new attempt. Its publisher died or lost the broker between recording the task
        and sending it, the broker lost it in a restart, or a consumer took it and was killed:
        nothing else would move the campaign. A message that was only slow is fenced off as
        stale when it arrives. After MAX_REDELIVERIES the phase fails, naming its queue, and
        fenced off too: a message a killed consumer held comes back after the visibility timeout."""
        campaign_id = doc["id"]
        looked = time.monotonic()
        if looked - self._looked_at.get(campaign_id, 0.0) < UNDELIVERED_LOOK_PERIOD:
            return False  # between looks: not even the walk over the waiting tasks
        self._looked_at[campaign_id] = looked
        unseen = self._unseen_since.pop(campaign_id, {})
        stuck_before = self._not_taking.pop(campaign_id, set())
        waiting = {name: phase for name, phase in watched.items() if phase["state"] == "pending"}
        now = time.time()
        reached = awaited_since(entries, waiting, self._schedule(doc, hop).control_planes) if waiting else {}
        reached = self._reached_by_our_clock(campaign_id, reached, waiting, now)
        every_due = {watched[name]["task_id"]: name for name, since in reached.items()
                     if now - since >= UNDELIVERED_AFTER}
        if not every_due:
            if stuck_before:  # they took their tasks: no longer waited for
                self._agents_ready(doc, hop, sorted(stuck_before))
            return False
        # A round of them per look (reading their queues is most of a look's cost: 20-32 ms
        # for 1,000 waiting tasks at 5,003 nodes). What the earlier looks of this round found
        # of the others stands until their turn comes again.
        due = {task_id: every_due[task_id]
               for task_id in self._look_round(campaign_id, every_due, reached)}
        unlooked = set(every_due) - set(due)
        unseen_kept = {t: since for t, since in unseen.items() if t in unlooked}
        stuck_kept = {every_due[t] for t in unlooked} & stuck_before
        queues = {task_id: queue_of(Phase(watched[name]["phase"]), name) for task_id, name in due.items()}
        missing = nowhere(self.store.redis, {t: self._result_key(t) for t in due}, queues)
        # A message that waits in the queue of an agent that is gone waits for ever: the same
        # named wait as before a send, failing the phase after the campaign's agent_timeout.
        held = {due[t] for t in due if t not in missing and queues[t] == node_queue(due[t])}
        # The same when the agent beats but its consumer takes nothing: its message has sat in
        # its own queue far longer than any agent that consumes leaves one there.
        stuck = {name for name in held if now - reached[name] >= NOT_TAKING_AFTER} | stuck_kept
        if stuck:
            self._not_taking[campaign_id] = stuck
        if held or stuck_before:
            self._agents_ready(doc, hop, sorted(held | stuck_before | set(
                doc["hops"][hop].get("waiting_for_agents") or {})))
        unseen = {task_id: unseen.get(task_id, looked) for task_id in missing}
        lost = {due[t]: t for t, since in unseen.items() if looked - since >= LOST_TASK_GRACE}
        self._unseen_since[campaign_id] = {**unseen_kept, **{
            t: since for t, since in unseen.items() if due[t] not in lost}}
        if not lost:
            return False
        for name in [n for n in lost if watched[n].get("redeliveries", 0) >= MAX_REDELIVERIES]:
            task_id = lost.pop(name)
            self.store.fail_phase(campaign_id, hop, name, watched[name]["phase"],
                                  f"its task was sent {MAX_REDELIVERIES + 1} times and no message "
                                  f"carried it each time (not in queue {queues[task_id]}, never "
                                  "started): check that the broker keeps its data and that this "
                                  "queue has a consumer, then `kubeupgrade retry`",
                                  attempt=entries[name]["attempt"], task_id=task_id, fence_off=True)
        if lost:
            self._resend(doc, hop, entries, lost, "no message carries its task (lost before it was "
                         "sent, in a broker restart, or with a killed consumer)", counter="redeliveries")
        return True

    def _reached_by_our_clock(self, campaign_id: str, reached: dict[str, float],
                              waiting: Mapping[str, PhaseRecord], now: float) -> dict[str, float]:
        """`reached` with no time later than when this dispatcher first saw the task reached.
        The time a link's predecessor ended is the agent's clock: one running ahead (a host
        whose clock jumped) would put it in the future, and the task would not be looked for
        until that future came, hours maybe, while the campaign said nothing. A clock behind
        only makes the look come sooner, and a look changes nothing where the message is."""
        seen = self._reached_first.setdefault(campaign_id, {})
        ids = {name: waiting[name]["task_id"] for name in reached}
        for gone in set(seen) - set(ids.values()):
            del seen[gone]
        return {name: min(since, seen.setdefault(ids[name], now)) for name, since in reached.items()}

    def _look_round(self, campaign_id: str, due: Mapping[str, str], reached: Mapping[str, float]) -> list[str]:
        """Up to UNDELIVERED_BATCH of the `due` task ids (task id -> node) to look for now:
        those left of the current round that are still due; a new round takes every one due,
        the longest awaited first. Each is looked at once per round, so a lost one is found
        within LOST_TASK_GRACE plus two rounds."""
        return next_round(self._look_rounds, campaign_id, due,
                          lambda: sorted(due, key=lambda t: (reached[due[t]], t)), UNDELIVERED_BATCH)

    def _release(self, doc: CampaignRecord, hop: int, name: str, phase: dict[str, Any]) -> None:
        def release(entry: NodeEntry) -> Any:
            for record in entry["phases"]:
                if record["phase"] == phase["phase"] and record["task_id"] == phase["task_id"]:
                    record["task_id"] = None
                    return True
            return False

        self.store.update_entry(doc["id"], hop, name, release)

    def _fail(self, doc: CampaignRecord, hop: int, failed: list[NodeEntry], budget: int = 0,
              why: str = "") -> None:
        # Report the root cause: the failure recorded first (the record's hash has no order).
        # An entry marked failed always has a failed phase (fenced writes keep them together);
        # should one not, it is still named rather than crashing the loop.
        failures = []
        for entry in failed:
            phase = next((p for p in entry["phases"] if p["state"] == "failed"), None)
            failures.append((phase or {"phase": "?", "ended": None, "error": "failed (no phase "
                                       "recorded the failure)", "tail": ""}, entry))
        phase, entry = min(failures, key=lambda pair: (pair[0]["ended"] or 0.0, pair[1]["node"]))
        message = phase["error"]
        workers = sorted(e["node"] for e in failed if e["role"] == "worker")
        if budget and workers:
            # With a failure budget the others went on: say so, and name every failed worker.
            summary = why or (f"{len(workers)} worker(s) failed (failure budget "
                              f"{budget}); the other workers were upgraded")
            message = f"{summary}; failed: {', '.join(workers)}; first failure: {message}"
        elif why:
            message = f"{why}; first failure: {message}"
        tail = self.store.tail(doc["id"], hop, entry["node"], phase["phase"]) or phase.get("tail", "")
        # Every node that failed, control planes too (a preparation that failed everywhere
        # named only the workers while the error's own node was a control plane).
        error = {"hop": hop, "node": entry["node"], "phase": phase["phase"],
                 "message": message, "tail": tail, "failed_nodes": sorted(e["node"] for e in failed)}

        def fail(current: dict[str, Any]) -> None:
            current.update(state="failed", error=error)

        self.store.update(doc["id"], fail)
        self.store.deactivate(doc["id"])
        self.store.event(doc["id"], f"failed at {entry['node']} {phase['phase']}: {message}")
        self._restore_repositories(doc["id"], hop)

    def _fail_message(self, doc: CampaignRecord, hop: int, message: str,
                      phase: str | None = "prepare-host") -> None:
        def fail(current: dict[str, Any]) -> None:
            current.update(state="failed", error={"hop": hop, "node": None, "phase": phase,
                                                  "message": message, "tail": ""})

        self.store.update(doc["id"], fail)
        self.store.deactivate(doc["id"])
        self.store.event(doc["id"], f"failed: {message}")
        self._restore_repositories(doc["id"], hop)

    def _restore_repositories(self, campaign_id: str, hop: int) -> None:
        """A stopped hop puts back the repositories it changed where nothing was installed."""
        nodes = nodes_to_restore(self.store.entries(campaign_id, hop), force=False)
        if nodes:
            send_restores(self.app, campaign_id, hop, nodes)
            self.store.event(campaign_id, f"restoring the package repository on: {', '.join(nodes)}")

    def _finish(self, doc: CampaignRecord) -> None:
        def done(current: dict[str, Any]) -> None:
            current.update(state="succeeded", finished=time.time())

        self.store.update(doc["id"], done)
        self.store.end(doc["id"], doc["cluster"])
        self.store.event(doc["id"], "campaign succeeded")
