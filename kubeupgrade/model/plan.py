"""What an upgrade will do: hops, per-node phases in order, worker scheduling, policy findings.

Produced by `kubeupgrade.planning.planner`, executed by the workflow layer, rendered by the CLI.
Pure values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kubeupgrade.model.campaign import Role, WorkerStrategy
from kubeupgrade.model.versions import KubeVersion, MinorVersion, VersionSpec


class Phase(Enum):
    """The named steps of an upgrade. The value is the stable name used in task names and logs."""

    PREPARE_HOST = "prepare-host"  # hop start, every node: repository, target resolution, facts
    PREFLIGHT = "preflight"
    SET_REPOSITORY = "set-repository"
    INSTALL_KUBEADM = "install-kubeadm"
    KUBEADM_PLAN = "kubeadm-upgrade-plan"
    ETCD_SNAPSHOT = "etcd-snapshot"  # stacked etcd, on the first control plane, before apply
    STOP_APISERVER = "stop-apiserver"
    KUBEADM_APPLY = "kubeadm-upgrade-apply"
    HOOKS_AFTER_FIRST_CONTROL_PLANE = "hooks-after-first-control-plane"
    KUBEADM_NODE = "kubeadm-upgrade-node"
    DOWNLOAD_PACKAGES = "download-packages"
    HOOKS_BEFORE_DRAIN = "hooks-before-drain"
    DRAIN = "drain"
    INSTALL_KUBELET = "install-kubelet"
    RESTART_KUBELET = "restart-kubelet"
    WAIT_READY = "wait-ready"
    UNCORDON = "uncordon"
    HOOKS_AFTER_NODE = "hooks-after-node"
    CONTROL_PLANE_GATE = "control-plane-gate"  # after the control planes, when gates are set
    HEALTH_GATE = "health-gate"  # after the canary workers (policies.canary), before the others
    WINDOWS_KUBE_PROXY = "kube-proxy-windows"  # after the workers, when some run Windows
    VERIFY = "verify"

    @property
    def runs_on_host(self) -> bool:
        """Host phases run on the node's agent; the others on the controller via the API."""
        from kubeupgrade.model.phases import SPECS, Runs

        return SPECS[self].runs is Runs.HOST


class KubeadmStep(Enum):
    APPLY = "apply"  # `kubeadm upgrade apply vX.Y.Z`: the first control plane of a hop
    NODE = "node"  # `kubeadm upgrade node`: every other node
    NONE = "none"  # already done for this hop


@dataclass(frozen=True)
class NodePlan:
    name: str
    role: Role
    kubeadm_step: KubeadmStep
    drain: bool
    phases: tuple[Phase, ...]


@dataclass(frozen=True)
class PoolSchedule:
    name: str
    limit: int  # of its workers out of service at once, on top of the global limit
    workers: tuple[str, ...]


@dataclass(frozen=True)
class WorkerSchedule:
    strategy: WorkerStrategy
    limit: int  # workers out of service at once
    order: tuple[str, ...]
    batches: tuple[tuple[str, ...], ...] = ()  # set for WorkerStrategy.BATCHES
    pools: tuple[PoolSchedule, ...] = ()


@dataclass(frozen=True)
class Hop:
    """One pass over the cluster to one version: control planes one by one, then the workers."""

    source: VersionSpec  # a MinorVersion after a hop whose patch is resolved on the hosts
    target: VersionSpec  # a MinorVersion when "latest patch" is resolved on the hosts
    control_planes: tuple[NodePlan, ...]
    workers: tuple[NodePlan, ...]
    schedule: WorkerSchedule
    already_at_target: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()  # workers this campaign leaves at their version

    @property
    def is_minor_upgrade(self) -> bool:
        return self.target_minor != self.source.minor_version

    @property
    def target_minor(self) -> MinorVersion:
        return self.target.minor_version

    @property
    def source_label(self) -> str:
        return version_label(self.source)

    @property
    def target_label(self) -> str:
        return version_label(self.target)

    @property
    def first_control_plane(self) -> str | None:
        for node in self.control_planes:
            if node.kubeadm_step is KubeadmStep.APPLY:
                return node.name
        return None


@dataclass(frozen=True)
class Violation:
    """A broken version-skew or upgrade-path rule; any violation refuses the plan (exit 3)."""

    rule: str
    message: str
    node: str | None = None
    component: str | None = None


@dataclass(frozen=True)
class Plan:
    cluster: str
    target: VersionSpec
    current: KubeVersion
    hops: tuple[Hop, ...]
    violations: tuple[Violation, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def refused(self) -> bool:
        return bool(self.violations)

    def execution_order(self) -> list[tuple[int, NodePlan]]:
        """Every node pass in the order it may start: per hop, control planes then workers."""
        order: list[tuple[int, NodePlan]] = []
        for index, hop in enumerate(self.hops):
            order.extend((index, node) for node in hop.control_planes)
            order.extend((index, node) for node in hop.workers)
        return order


def version_label(version: VersionSpec) -> str:
    """`1.31.2` for an exact version, `1.31 (latest patch)` for one resolved on the hosts."""
    if isinstance(version, KubeVersion):
        return version.plain
    return f"{version.plain} (latest patch)"


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "cluster": plan.cluster,
        "current": plan.current.plain,
        "target": str(plan.target.plain),
        "refused": plan.refused,
        "hops": [_hop_to_dict(hop) for hop in plan.hops],
        "violations": [
            {"rule": v.rule, "node": v.node, "component": v.component, "message": v.message}
            for v in plan.violations
        ],
        "notes": list(plan.notes),
    }


def _hop_to_dict(hop: Hop) -> dict[str, Any]:
    return {
        "from": hop.source.plain,
        "to": hop.target.plain,
        "to_resolved": isinstance(hop.target, KubeVersion),
        "kind": "minor" if hop.is_minor_upgrade else "patch",
        "first_control_plane": hop.first_control_plane,
        "control_planes": [node.name for node in hop.control_planes],
        "workers": {
            "strategy": hop.schedule.strategy.value,
            "max_unavailable": hop.schedule.limit,
            "order": list(hop.schedule.order),
            "batches": [list(batch) for batch in hop.schedule.batches],
            "pools": [{"name": pool.name, "max_unavailable": pool.limit, "workers": list(pool.workers)}
                      for pool in hop.schedule.pools],
        },
        "nodes": [_node_to_dict(node) for node in hop.control_planes + hop.workers],
        "already_at_target": list(hop.already_at_target),
        "out_of_scope": list(hop.out_of_scope),
    }


def _node_to_dict(node: NodePlan) -> dict[str, Any]:
    return {
        "name": node.name,
        "role": node.role.value,
        "kubeadm": node.kubeadm_step.value,
        "drain": node.drain,
        "phases": [phase.value for phase in node.phases],
    }
