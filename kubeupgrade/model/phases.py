"""One declaration per phase: its task name on the wire, where it runs, who has it, its part
of the upgrade and what it means for the node's service. Declared in execution order.

The planner orders a node's phases by this table, task registration takes the name and the
side (agent or controller) from it, the dispatcher and the safety audit read which phases take
a node out of service and bring it back, repository restoration reads which ones change the
repository or install from it, and the status view its recovery hint. Adding a phase (say, an
etcd snapshot before `apply`) is one declaration here, its step, and the planner's decision of
when a node needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kubeupgrade.model.plan import Phase


class Runs(Enum):
    HOST = "host"  # on the node's agent: kubeadm, the package manager, systemctl
    CONTROLLER = "controller"  # on the controller, through the Kubernetes API


class Part(Enum):
    PREPARE = "prepare"  # hop start, every node at once
    CLUSTER = "cluster"  # once per hop, not about one node
    KUBEADM = "kubeadm"  # the node's kubeadm and configuration; no outage
    KUBELET = "kubelet"  # the node's kubelet: drained, upgraded, back in service


CP, WORKER, CLUSTER = "control-plane", "worker", "cluster"


@dataclass(frozen=True)
class PhaseSpec:
    phase: Phase
    task: str
    runs: Runs
    part: Part
    roles: frozenset[str]
    takes_out_of_service: bool = False  # the node serves no pods from this phase on
    returns_to_service: bool = False  # ... until this one has succeeded
    sets_repository: bool = False
    installs_packages: bool = False
    # Changes nothing the node runs (a repository file, the package cache): a worker may run it
    # while the control planes upgrade, so the worker stage starts with packages at hand.
    before_control_planes: bool = False
    hint: str = ""  # what an operator does when a campaign fails here ({retry} = the command)
    typical_seconds: int = 30  # on a real host, for `plan`'s estimate (image pulls and PDBs vary it)


def _spec(phase: Phase, task: str, runs: Runs, part: Part, *roles: str, **flags: object) -> PhaseSpec:
    return PhaseSpec(phase, task, runs, part, frozenset(roles), **flags)  # type: ignore[arg-type]


_H, _C = Runs.HOST, Runs.CONTROLLER
_KUBEADM_HINT = ("Next: fix what kubeadm reports, then `{retry}` (kubeadm upgrade is idempotent). "
                 "To repair the control plane by hand on that node: `kubeadm upgrade apply --force "
                 "vX.Y.Z` at the same version (or `policies.reapply: true`), or restore "
                 "/etc/kubernetes/tmp/kubeadm-backup-manifests-* into /etc/kubernetes/manifests "
                 "(and kubeadm-backup-etcd-* into /var/lib/etcd).")
_GATE_HINT = ("Next: look at what the gate found unhealthy (above) and fix it, then `{retry}`; "
              "the gate runs again before any worker goes on.")
_NODE_HINT = "Next: fix the node{cordoned}, then `{retry}`."

PHASES: tuple[PhaseSpec, ...] = (
    _spec(Phase.PREPARE_HOST, "kubeupgrade.node.prepare_host", _H, Part.PREPARE, CP, WORKER,
          sets_repository=True, typical_seconds=30),
    _spec(Phase.PREFLIGHT, "kubeupgrade.controller.preflight", _C, Part.CLUSTER, CLUSTER, typical_seconds=10),
    _spec(Phase.SET_REPOSITORY, "kubeupgrade.node.set_repository", _H, Part.KUBEADM, CP, WORKER,
          sets_repository=True, before_control_planes=True, typical_seconds=20),
    # Every package the node will install, into the package cache only: the installs later
    # (kubeadm, then the kubelet during the outage) fetch nothing.
    _spec(Phase.DOWNLOAD_PACKAGES, "kubeupgrade.node.download_packages", _H, Part.KUBELET, CP, WORKER,
          before_control_planes=True, typical_seconds=30),
    _spec(Phase.INSTALL_KUBEADM, "kubeupgrade.node.install_kubeadm", _H, Part.KUBEADM, CP, WORKER,
          installs_packages=True, typical_seconds=30),
    _spec(Phase.KUBEADM_PLAN, "kubeupgrade.node.kubeadm_upgrade_plan", _H, Part.KUBEADM, CP, typical_seconds=20),
    _spec(Phase.ETCD_SNAPSHOT, "kubeupgrade.node.etcd_snapshot", _H, Part.KUBEADM, CP, typical_seconds=20),
    _spec(Phase.STOP_APISERVER, "kubeupgrade.node.stop_kube_apiserver", _H, Part.KUBEADM, CP, typical_seconds=20),
    _spec(Phase.KUBEADM_APPLY, "kubeupgrade.node.kubeadm_upgrade_apply", _H, Part.KUBEADM, CP,
          hint=_KUBEADM_HINT, typical_seconds=300),
    _spec(Phase.HOOKS_AFTER_FIRST_CONTROL_PLANE, "kubeupgrade.node.run_hooks", _H, Part.KUBEADM, CP, typical_seconds=30),
    _spec(Phase.KUBEADM_NODE, "kubeupgrade.node.kubeadm_upgrade_node", _H, Part.KUBEADM, CP, WORKER,
          hint=_KUBEADM_HINT, typical_seconds=60),
    _spec(Phase.HOOKS_BEFORE_DRAIN, "kubeupgrade.node.run_hooks", _H, Part.KUBELET, CP, WORKER,
          takes_out_of_service=True, typical_seconds=30),
    _spec(Phase.DRAIN, "kubeupgrade.controller.drain_node", _C, Part.KUBELET, CP, WORKER,
          takes_out_of_service=True, hint=_NODE_HINT, typical_seconds=120),
    _spec(Phase.INSTALL_KUBELET, "kubeupgrade.node.install_kubelet", _H, Part.KUBELET, CP, WORKER,
          takes_out_of_service=True, installs_packages=True, typical_seconds=30),
    _spec(Phase.RESTART_KUBELET, "kubeupgrade.node.restart_kubelet", _H, Part.KUBELET, CP, WORKER, typical_seconds=10),
    _spec(Phase.WAIT_READY, "kubeupgrade.controller.wait_node_ready", _C, Part.KUBELET, CP, WORKER,
          returns_to_service=True, hint=_NODE_HINT, typical_seconds=60),
    _spec(Phase.UNCORDON, "kubeupgrade.controller.uncordon_node", _C, Part.KUBELET, CP, WORKER,
          returns_to_service=True, typical_seconds=2),
    _spec(Phase.HOOKS_AFTER_NODE, "kubeupgrade.node.run_hooks", _H, Part.KUBELET, CP, WORKER, typical_seconds=30),
    _spec(Phase.CONTROL_PLANE_GATE, "kubeupgrade.controller.health_gate", _C, Part.CLUSTER, CLUSTER,
          hint=_GATE_HINT, typical_seconds=30),
    _spec(Phase.HEALTH_GATE, "kubeupgrade.controller.health_gate", _C, Part.CLUSTER, CLUSTER,
          hint=_GATE_HINT, typical_seconds=30),
    _spec(Phase.WINDOWS_KUBE_PROXY, "kubeupgrade.controller.windows_kube_proxy", _C, Part.CLUSTER,
          CLUSTER, typical_seconds=30),
    _spec(Phase.VERIFY, "kubeupgrade.controller.verify", _C, Part.CLUSTER, CLUSTER, typical_seconds=20),
)

SPECS: dict[Phase, PhaseSpec] = {spec.phase: spec for spec in PHASES}
_ORDER = {spec.phase: index for index, spec in enumerate(PHASES)}


def spec_of(phase: Phase | str) -> PhaseSpec:
    return SPECS[Phase(phase)]


def in_order(phases: list[Phase] | tuple[Phase, ...]) -> tuple[Phase, ...]:
    return tuple(sorted(phases, key=_ORDER.__getitem__))


def names_where(**flags: object) -> frozenset[str]:
    """The phase names whose declaration has every given attribute value."""
    return frozenset(spec.phase.value for spec in PHASES
                     if all(getattr(spec, key) == value for key, value in flags.items()))


def hint(phase: str | None, retry: str, *, cordoned: bool = True) -> str:
    """What to do after a failure at `phase`; `cordoned` says whether the failed node is still
    cordoned by the campaign (a control plane whose kubelet was already at the target when its
    readiness wait failed was never drained)."""
    try:
        text = spec_of(phase).hint if phase else ""
    except ValueError:
        text = ""
    return text.format(retry=retry, cordoned=" (it stays cordoned)" if cordoned else "")
