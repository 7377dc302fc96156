"""The shape of the campaign record, as stored (JSON) and read back: one TypedDict per level,
with the state enums of kubeupgrade.workflow.states. The record store validates what every
reader relies on when it decodes (kubeupgrade.workflow.record); these types say what the rest
may count on.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, TypedDict

SCHEMA_VERSION = 1  # of the campaign record; a reader refuses a newer one as damaged

CampaignStateName = Literal["pending", "running", "failed", "succeeded", "aborted", "refused"]
RunStateName = Literal["pending", "running", "succeeded", "failed"]


class PhaseRecord(TypedDict, total=False):
    phase: str  # a Phase value
    state: RunStateName
    attempts: int  # times a task began it, over every attempt of the node
    started: float | None
    ended: float | None
    dispatched: float  # when the dispatcher last sent it
    # On the phase that takes the node out of service: when the dispatcher sent it last before
    # it first began (the controller's clock), where the window audit starts
    first_dispatched: float
    detail: str
    error: str
    tail: str  # "" since tails live in ku:c:<id>:tails:<hop> (record.py); older records kept it here
    task_id: str | None  # the task that may write it; any other writer is stale
    outcome: str  # "done" or "already-done"
    resends: int  # automatic re-sends after infrastructure failures
    redeliveries: int  # re-sends because no message carried its task (dispatcher._recover_undelivered)


class NodeEntry(TypedDict, total=False):
    node: str  # or "@cluster" for the hop's cluster-level phases
    role: str  # control-plane, worker, cluster
    hop: int
    kubeadm: str  # apply, node, none
    drain: bool
    state: RunStateName
    attempt: int  # raised on every re-send and retry: fences old deliveries
    cordoned_by_us: bool  # written before the cordon
    phases: list[PhaseRecord]
    started: float
    ended: float
    repository: str  # what became of its package repository when the campaign stopped
    facts: dict[str, Any]  # what prepare-host found on the host (see hop_facts)


HopRecord = TypedDict("HopRecord", {
    "index": int,
    "from": str,
    "target": str,  # as planned ("1.31" or exact)
    "version": Optional[str],  # resolved on the hosts (not `str | None`: evaluated, on 3.9 too)
    "packages": dict[str, str],  # node -> exact package version: older records (now CampaignStore.packages)
    "facts": dict[str, dict[str, Any]],  # node -> host facts, where older records kept them (hop_facts)
    "stage": str,  # prepare, preflight, control-planes, workers, verify, done
    "schedule": dict[str, Any],  # kubeupgrade.workflow.schedule.HopSchedule.to_dict()
    "waiting_for_agents": dict[str, float],
    "drain_findings": list[str],
    "verification": list[str],  # older records (now CampaignStore.verification)
    "etcd_snapshot": dict[str, Any],  # node, path, bytes: saved before `kubeadm upgrade apply`
    "gate_boundary": int,  # the worker position the health gate checks now (after that many)
    "gates_passed": list[int],  # the positions whose gate passed
    "halted": bool,  # a failure beyond the budget: preparation stops, outages under way finish
}, total=False)


class Paused(TypedDict):
    since: float
    reason: str  # "by the operator", or which health gate is red and why


class CampaignRecord(TypedDict, total=False):
    schema: int
    id: str
    cluster: str
    state: CampaignStateName
    created: float
    updated: float
    started: float
    finished: float
    source: str  # the file it was submitted from
    campaign: dict[str, Any]  # kubeupgrade.campaign_file.campaign_to_dict()
    signature: dict[str, str] | None  # the operator's (kubeupgrade.security.signing): key, value
    identity: dict[str, str] | None  # the cluster it was accepted on (name, kube-system uid)
    # node -> kubelet / control_plane at accept: older records (now CampaignStore.live_versions)
    live_versions: dict[str, dict[str, str | None]]
    plan: dict[str, Any] | None  # None: the plan has its own key (record.py); older records kept it here
    hops: list[HopRecord]
    current_hop: int
    error: dict[str, Any] | None
    notes: list[str]
    retries: int
    paused: Paused | None  # set by `pause` (or a red health gate), cleared by `resume`/`retry`
