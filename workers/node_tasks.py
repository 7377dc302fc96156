"""The host phases as Celery tasks, run by the node's agent. Each is a thin call into
`kubeupgrade.host.steps`; the wrapper in `kubeupgrade.workflow.phase` fences and records."""

from __future__ import annotations

from typing import Any

from kubeupgrade.errors import PermanentError
from kubeupgrade.host import steps
from kubeupgrade.host.steps import StepOutcome
from kubeupgrade.model.plan import Phase
from kubeupgrade.model.versions import parse_version_spec
from kubeupgrade.security.authorize import authorize
from kubeupgrade.security.hooks import check_hooks
from kubeupgrade.workflow.app import app, broker_url
from kubeupgrade.workflow.names import (
    RESTORE_REPOSITORY,
    valid_campaign_id,
    valid_hop,
    valid_node_name,
)
from kubeupgrade.workflow.phase import Job, phase_task, refuse_misrouted, store_for
from kubeupgrade.workflow.restore import installed_from_new_repository
from workers.host_context import host_context


def _context(job: Job) -> steps.HostContext:
    return host_context(job.campaign_id, job.hop, fence=job.fence)


@phase_task(Phase.PREPARE_HOST)
def prepare_host(job: Job) -> StepOutcome:
    """Point the repository at the hop's minor, resolve the exact package, report host facts."""
    ctx = _context(job)
    target = parse_version_spec(job.hop_doc["target"])
    outcome = steps.resolve_target(ctx, target)
    data = outcome.data
    policies = job.campaign.policies
    if policies.upgrade_configuration:  # judged here, so that preflight refuses before any change
        data["upgrade_configuration"] = steps.upgrade_configuration_facts(
            ctx, policies.upgrade_configuration, certificate_renewal=policies.certificate_renewal,
            etcd_upgrade=policies.etcd_upgrade)
    job.record_finding(lambda entry: entry.update(facts=data))
    return outcome


@phase_task(Phase.SET_REPOSITORY)
def set_repository(job: Job) -> StepOutcome:
    """Point the node's Kubernetes package repository at the hop's minor."""
    return steps.set_repository(_context(job), job.version.minor_version)


@phase_task(Phase.INSTALL_KUBEADM)
def install_kubeadm(job: Job) -> StepOutcome:
    """Install kubeadm at the exact version the hop resolved; check `kubeadm version`."""
    return steps.install_kubeadm(_context(job), job.version, job.package())


@phase_task(Phase.KUBEADM_PLAN)
def kubeadm_upgrade_plan(job: Job) -> StepOutcome:
    """Run `kubeadm upgrade plan` and keep its output in the campaign record."""
    outcome = steps.kubeadm_plan(_context(job), job.version)
    job.record_finding(also=lambda pipe: job.store.save_output(
        job.campaign_id, job.hop, job.node, job.phase.value, outcome.output, pipe))
    return outcome


@phase_task(Phase.ETCD_SNAPSHOT)
def etcd_snapshot(job: Job) -> StepOutcome:
    """`etcdctl snapshot save` of the local etcd member, before `kubeadm upgrade apply`."""
    outcome = steps.etcd_snapshot(_context(job), job.version)
    if outcome.data:  # where the snapshot is (none with an external etcd)
        def remember(doc: dict[str, Any]) -> None:
            doc["hops"][job.hop]["etcd_snapshot"] = {"node": job.node, **outcome.data}

        job.fence()  # the record's document is not the phase's entry: checked, then written
        job.store.update(job.campaign_id, remember)
    return outcome


@phase_task(Phase.STOP_APISERVER)
def stop_kube_apiserver(job: Job) -> StepOutcome:
    """SIGTERM kube-apiserver before an etcd upgrade, as the kubeadm documentation suggests."""
    wait = job.campaign.policies.apiserver_stop_wait_seconds
    return steps.stop_apiserver(_context(job), float(wait))


@phase_task(Phase.KUBEADM_APPLY)
def kubeadm_upgrade_apply(job: Job) -> StepOutcome:
    """`kubeadm upgrade apply vX.Y.Z` on the first control plane of the hop."""
    policies = job.campaign.policies
    # --force only to re-apply the version the control plane already runs (policies.reapply);
    # never to get past kubeadm's version checks on a real upgrade.
    running = job.store.live_version(job.campaign_id, job.node, job.doc).get("control_plane")
    return steps.kubeadm_apply(_context(job), job.version,
                               certificate_renewal=policies.certificate_renewal,
                               etcd_upgrade=policies.etcd_upgrade,
                               config_file=policies.upgrade_configuration,
                               force=policies.reapply and running == job.version.plain)


@phase_task(Phase.KUBEADM_NODE)
def kubeadm_upgrade_node(job: Job) -> StepOutcome:
    """`kubeadm upgrade node` on every other node."""
    policies = job.campaign.policies
    return steps.kubeadm_node(_context(job), job.version,
                              certificate_renewal=policies.certificate_renewal,
                              etcd_upgrade=policies.etcd_upgrade,
                              config_file=policies.upgrade_configuration)


@phase_task(Phase.DOWNLOAD_PACKAGES)
def download_packages(job: Job) -> StepOutcome:
    """Download kubelet and kubectl before the node is cordoned, to keep the outage short."""
    return steps.download_packages(_context(job), job.version, job.package())


@phase_task(Phase.INSTALL_KUBELET)
def install_kubelet(job: Job) -> StepOutcome:
    """Install the kubelet (and kubectl where the platform has it) at the hop's exact version."""
    return steps.install_kubelet(_context(job), job.version, job.package())


@phase_task(Phase.RESTART_KUBELET)
def restart_kubelet(job: Job) -> StepOutcome:
    """Restart the kubelet with the host's service manager (systemd, or the Windows service)."""
    return steps.restart_kubelet(_context(job), job.version)


_HOOK_KINDS = {
    Phase.HOOKS_AFTER_FIRST_CONTROL_PLANE: "after_first_control_plane",
    Phase.HOOKS_BEFORE_DRAIN: "before_drain",
    Phase.HOOKS_AFTER_NODE: "after_node",
}


@phase_task(*_HOOK_KINDS)
def run_hooks(job: Job) -> StepOutcome:
    """Run the campaign's declared hooks (argv lists) for this point of the upgrade."""
    kind = _HOOK_KINDS.get(job.phase)
    if kind is None:
        raise PermanentError(f"no hooks for phase {job.phase.value}")
    hooks = list(getattr(job.campaign.policies.hooks, kind))
    check_hooks(hooks)  # the node owner's allowlist, if any: all of them or none
    return steps.run_hooks(_context(job), kind, hooks)


@app.task(name=RESTORE_REPOSITORY, acks_late=True)
def restore_repository(campaign: str, hop: int, node: str, force: bool = False) -> dict[str, Any]:
    """After a hop failed or was aborted: put back the repository the hop replaced on this node
    (see kubeupgrade.workflow.restore). Checked again here, when it runs: the campaign must
    still be stopped and hold (or have released) its cluster, and unless forced the node must
    not have installed anything from the new repository."""
    if not (valid_campaign_id(campaign) and valid_node_name(node) and valid_hop(hop)
            and isinstance(force, bool)):
        raise PermanentError(f"invalid arguments {campaign!r}, {hop!r}, {node!r}, {force!r}")
    refuse_misrouted(node)
    store = store_for(broker_url())
    doc = store.get(campaign)
    entry = store.entry(campaign, hop, node)
    if doc is None or entry is None or hop >= len(doc["hops"]):
        raise PermanentError(f"campaign {campaign} has no node {node} in hop {hop + 1}")
    authorize(doc, hop, node=node)  # the repository is root's too: only for a campaign an operator signed
    holder = store.cluster_holder(doc["cluster"])
    if doc["state"] not in ("failed", "aborted"):
        detail = f"campaign is {doc['state']}; repository left as is"
    elif holder not in (None, campaign):
        detail = f"campaign {holder} now acts on {doc['cluster']}; repository left as is"
    elif not force and installed_from_new_repository(entry):
        detail = ("packages were installed from the new repository; left on it "
                  "(`kubeupgrade abort --restore-repositories` puts it back anyway)")
    else:
        minor = parse_version_spec(doc["hops"][hop]["target"]).minor_version
        outcome = steps.restore_repository(host_context(campaign, hop), minor)
        detail = outcome.detail
        if outcome.status == steps.DONE:
            store.event(campaign, f"{node}: {detail}")
    store.update_entry(campaign, hop, node, lambda current: current.update(repository=detail))
    return {"node": node, "detail": detail}
