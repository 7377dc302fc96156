"""The upgrade campaign: which cluster, which target, which nodes, under which policies.

Frozen values built by `kubeupgrade.campaign_file` (from YAML) or by Python callers. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import time
from enum import Enum

from kubeupgrade.model.versions import KubeVersion, MinorVersion, VersionSpec


class Role(Enum):
    CONTROL_PLANE = "control-plane"
    WORKER = "worker"


class OsFamily(Enum):
    APT = "apt"
    DNF = "dnf"
    YUM = "yum"
    WINDOWS = "windows"  # binaries from dl.k8s.io, the kubelet a Windows service


class OnPdbBlock(Enum):
    """What a drain does when a PodDisruptionBudget keeps refusing an eviction."""

    FAIL = "fail"  # retry until the drain timeout, then fail the node naming the pod and PDB
    WAIT = "wait"  # keep retrying with no deadline; status names the blocking pod
    DELETE = "delete"  # explicit opt-in: after the timeout, delete the pod, bypassing the PDB


class GateFailure(Enum):
    """What a health gate that stays red past its timeout does to the campaign."""

    PAUSE = "pause"  # hold: nothing new starts until an operator resumes (the gate runs again)
    FAIL = "fail"  # the campaign fails, naming what was unhealthy


class WorkerStrategy(Enum):
    WINDOW = "window"  # sliding window: a finished worker frees its slot at once
    BATCHES = "batches"  # fixed batches: a batch starts when the previous one is done


@dataclass(frozen=True)
class NodeSpec:
    name: str
    role: Role
    kubelet: KubeVersion | None = None
    # The version of this control plane's static pods (kube-apiserver...). Defaults to the
    # campaign's control_plane_version; differs from it in a half-upgraded cluster.
    control_plane: KubeVersion | None = None
    os: OsFamily | None = None
    zone: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    # The host's /etc/machine-id as the node's kubelet reports it (status.nodeInfo.machineID):
    # an agent on another host refuses to act for the node (workflow/phase.py).
    machine_id: str | None = None
    # The campaign whose record the broker lost (workflow/broker_loss.py) while it held this
    # node cordoned (kubeupgrade.io/cordoned-by), read at acceptance. A campaign takes such a
    # node over, even one already at its target, so that it is released (planning/planner.py).
    left_cordoned_by: str | None = None
    # The broker epoch that campaign's mark says it was recorded under (kube/nodes.py,
    # CORDON_EPOCH): another than this broker's means that broker's data is gone.
    left_cordon_epoch: str | None = None

    @property
    def is_control_plane(self) -> bool:
        return self.role is Role.CONTROL_PLANE


@dataclass(frozen=True)
class MaxUnavailable:
    """How many workers may be out of service at once: a count, or a percent of the workers."""

    count: int | None = None
    percent: int | None = None

    def resolve(self, workers: int) -> int:
        """The number of workers allowed out at once; never 0 while there are workers to do."""
        if workers == 0:
            return 0
        if self.count is not None:
            return max(1, min(self.count, workers))
        assert self.percent is not None
        # Rounded down like Kubernetes' maxUnavailable, but at least one so the upgrade can move.
        return max(1, math.floor(workers * self.percent / 100))

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.count)


DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Window:
    """A maintenance window (kubeupgrade.planning.windows says when it is open)."""

    days: frozenset[int]  # 0 = Monday
    start: time
    end: time  # before `start`: the window runs past midnight
    timezone: str  # IANA, e.g. Europe/Berlin

    def describe(self) -> str:
        days = ",".join(DAYS[d] for d in sorted(self.days))
        return f"{days} {_clock(self.start)}-{_clock(self.end)} {self.timezone}"


def _clock(moment: time) -> str:
    return moment.isoformat(timespec="seconds" if moment.second else "minutes")


@dataclass(frozen=True)
class PrometheusCheck:
    """Healthy while every sample of `query` is below `below` (and/or above `above`)."""

    url: str  # the Prometheus server, e.g. http://prometheus.monitoring:9090
    query: str
    below: float | None = None
    above: float | None = None


@dataclass(frozen=True)
class UserGate:
    """An operator's own health check, run by the controller where the health gate runs:
    an argv (exit 0 = healthy) or a Prometheus query with a threshold."""

    name: str
    command: tuple[str, ...] | None = None
    prometheus: PrometheusCheck | None = None


NOTIFY_EVENTS = ("campaign", "gate", "node")


@dataclass(frozen=True)
class Notify:
    """Where to POST a JSON notification, and for which events: campaign state changes
    (including pause and resume), red health gates, failed nodes."""

    url: str
    events: frozenset[str] = frozenset(NOTIFY_EVENTS)


@dataclass(frozen=True)
class Pool:
    """Workers selected by labels, with their own out-of-service limit on top of the global one."""

    name: str
    selector: str  # a Kubernetes label selector, e.g. "pool=a" or "zone in (a,b)"
    max_unavailable: MaxUnavailable


@dataclass(frozen=True)
class DrainPolicy:
    timeout_seconds: int = 300
    grace_period_seconds: int | None = None  # None: each pod's own terminationGracePeriodSeconds
    delete_emptydir_data: bool = False
    pod_selector: str | None = None
    on_pdb_block: OnPdbBlock = OnPdbBlock.FAIL
    skip_for_patch: bool = False


Argv = tuple[str, ...]


@dataclass(frozen=True)
class Hooks:
    """Commands the campaign runs on a node's host, each an argv list (never a shell string)."""

    after_first_control_plane: tuple[Argv, ...] = ()
    before_drain: tuple[Argv, ...] = ()
    after_node: tuple[Argv, ...] = ()


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_seconds: float = 5.0


@dataclass(frozen=True)
class Policies:
    max_unavailable: MaxUnavailable = field(default_factory=lambda: MaxUnavailable(count=1))
    worker_strategy: WorkerStrategy = WorkerStrategy.WINDOW
    drain: DrainPolicy = field(default_factory=DrainPolicy)
    certificate_renewal: bool = True
    etcd_upgrade: bool = True
    # `etcdctl snapshot save` on the first control plane before `kubeadm upgrade apply` (stacked
    # etcd; a control plane without a local etcd member says so and goes on).
    etcd_snapshot: bool = True
    # kubeadm's documented workaround for etcd restarts stalling requests: SIGTERM kube-apiserver
    # a few seconds before `kubeadm upgrade apply`.
    stop_apiserver_before_etcd_upgrade: bool = False
    apiserver_stop_wait_seconds: int = 20
    upgrade_configuration: str | None = None
    hooks: Hooks = field(default_factory=Hooks)
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    ready_timeout_seconds: int = 600  # a node must be Ready at the new version within this
    agent_timeout_seconds: int = 300  # how long to wait for a node's agent to answer
    # How long a cluster phase keeps retrying an unreachable or failing API server (transport
    # errors, 5xx, throttling, malformed bodies) before it fails.
    api_outage_tolerance_seconds: int = 120
    # Re-run `kubeadm upgrade apply <version> --force` on the first control plane even when the
    # control planes already run the target: kubeadm's documented recovery from a bad state.
    # Off by default: otherwise `apply` runs at most once per version.
    reapply: bool = False
    # Workers that may fail before the campaign stops starting others (0: stop at the first).
    # A failed worker stays cordoned, named, and holds its out-of-service slot.
    max_failed_workers: int = 0
    # Workers prepared (or being prepared) ahead of their outage, per pool and for the workers
    # in no pool; preparation takes nothing out of service. 0: twice the lane's out-of-service
    # limit, enough to keep the window full when preparation takes about as long as an outage.
    prepare_ahead: int = 0
    pools: tuple[Pool, ...] = ()
    windows: tuple[Window, ...] = ()  # none: any time
    # The first `canary` workers of each hop run alone; then the health gate must pass before
    # the others start.
    canary: int = 0
    # After the canary, the health gate also runs after every `gate_every` further workers (0:
    # never): a gate between waves (with worker_strategy batches and gate_every = the batch
    # size, between batches).
    gate_every: int = 0
    gate_timeout_seconds: int = 300
    on_gate_failure: GateFailure = GateFailure.PAUSE
    notify: tuple[Notify, ...] = ()
    gates: tuple[UserGate, ...] = ()  # besides the built-in checks; also run after the control planes


@dataclass(frozen=True)
class Scope:
    """Which workers a campaign upgrades. Control planes that need it are always upgraded (no
    worker may pass them); the workers left out keep their kubelet, within the skew policy."""

    only_control_planes: bool = False
    workers: tuple[str, ...] | None = None  # by name
    selector: str | None = None  # a label selector

    @property
    def whole_cluster(self) -> bool:
        return not self.only_control_planes and self.workers is None and self.selector is None

    def describe(self) -> str:
        if self.only_control_planes:
            return "control planes only"
        parts = ([f"workers {', '.join(self.workers)}"] if self.workers is not None else []) + (
            [f"workers matching {self.selector}"] if self.selector else [])
        return " and ".join(parts) or "the whole cluster"


@dataclass(frozen=True)
class Campaign:
    cluster: str
    target: VersionSpec
    nodes: tuple[NodeSpec, ...] | None = None  # None: discovered from the API server
    control_plane_version: KubeVersion | None = None
    # Exact versions for intermediate minors of a multi-hop campaign (default: latest patch).
    pins: tuple[tuple[MinorVersion, KubeVersion], ...] = ()
    policies: Policies = field(default_factory=Policies)
    source: str = "<python>"
    scope: Scope = field(default_factory=Scope)

    def pinned(self, minor: MinorVersion) -> KubeVersion | None:
        for pinned_minor, version in self.pins:
            if pinned_minor == minor:
                return version
        return None
