"""Cluster-level phases, run by the controller with the official kubernetes client:
preflight, drain, readiness wait, uncordon, verification, and releasing nodes on abort."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubeupgrade.errors import PermanentError, TemporaryError
from kubeupgrade.host.steps import ALREADY_DONE, DONE, StepOutcome
from kubeupgrade.kube.polling import look_delay
from kubeupgrade.model.campaign import GateFailure
from kubeupgrade.model.plan import Phase
from kubeupgrade.planning import skew
from kubeupgrade.workflow.app import app, broker_url
from kubeupgrade.workflow.names import RELEASE_NODE, valid_campaign_id, valid_node_name
from kubeupgrade.workflow.phase import Job, PhaseHeld, phase_task, store_for
from kubeupgrade.workflow.record import hop_facts
from kubeupgrade.workflow.waiting import StillWaiting


def kube_api():  # type: ignore[no-untyped-def]
    """This process's API client, made on first use and kept: its connections are reused from
    phase to phase. Kept per process: a pool process that replaces one that died is forked from
    the main process, whose client (the dispatcher's, the events') has connections open; a
    client inherited so would share their TLS sessions with the main process, and each side's
    next request on one breaks the other's (a TLS record that no longer decrypts)."""
    pid = os.getpid()
    api = _apis.get(pid)
    if api is None:
        from kubeupgrade.kube.client import KubeApi

        kubeconfig = os.environ.get("KUBEUPGRADE_KUBECONFIG")
        if not kubeconfig:
            raise PermanentError("the controller has no kubeconfig (start it with --kubeconfig)")
        # Set once per process, never removed: an inherited client stays referenced, unused,
        # so nothing closes the connections the main process still uses.
        api = _apis.setdefault(pid, KubeApi(kubeconfig))
    return api


_apis: dict[int, Any] = {}  # process id -> its KubeApi


def job_api(job: Job):  # type: ignore[no-untyped-def]
    """The API client for one phase: unavailability retried up to the campaign's tolerance,
    and only if it reaches the cluster the campaign was accepted on."""
    api = kube_api().tolerating(job.campaign.policies.api_outage_tolerance_seconds, on_outage=job.report_outage)
    accepted_on = (job.doc.get("identity") or {}).get("uid")
    if accepted_on and accepted_on not in _verified_clusters:
        from kubeupgrade.kube.identity import read_identity

        reached = read_identity(api)
        if reached.uid != accepted_on:
            raise PermanentError(f"the controller's kubeconfig reaches cluster {reached.describe()}, "
                                 f"not the kube-system uid {accepted_on} this campaign was accepted "
                                 "on; nothing done")
        _verified_clusters.add(accepted_on)  # the kubeconfig is fixed for this process's life
    return api


_verified_clusters: set[str] = set()



@phase_task(Phase.PREFLIGHT)
def preflight(job: Job) -> StepOutcome:
    """Check the cluster is upgradeable before anything disruptive happens in this hop."""
    from kubeupgrade.kube import discovery
    from kubeupgrade.kube.drain import preview_drains
    from kubeupgrade.kube.nodes import is_ready, read_nodes
    from kubeupgrade.model.versions import KubeVersion
    from kubeupgrade.workflow.broker_loss import is_lost

    api = job_api(job)
    problems: list[str] = []
    schedule = job.schedule()
    # Of each entry, only what preflight reads (see CampaignStore.each_entry).
    entries = {name: {"facts": entry.get("facts"), "drain": entry.get("drain")}
               for name, entry in job.store.each_entry(job.campaign_id, job.hop)}
    facts = hop_facts(job.hop_doc, entries)
    # The nodes read a page at a time (as kubectl does), keeping of each only what the checks
    # below read: its name, control-plane version, kubelet if planned, and readiness.
    pods = discovery.control_plane_pods(api)
    images = discovery.images_of(pods)
    planned = list(schedule.nodes)
    in_plan = set(planned)

    def checked(node: dict[str, Any]) -> tuple[str, KubeVersion | None, KubeVersion | None, bool]:
        spec = discovery.node_spec(node, images)
        # Not Ready, in this hop, and cordoned by a campaign whose record the broker lost:
        # half-way through that campaign's upgrade (the kubelet not back yet). This campaign
        # takes it over, and its readiness wait is what follows.
        ready = is_ready(node) or (spec.name in in_plan and spec.left_cordoned_by is not None
                                   and is_lost(job.store.redis, spec.left_cordoned_by, spec.left_cordon_epoch))
        return spec.name, spec.control_plane, spec.kubelet if spec.name in in_plan else None, ready

    seen = read_nodes(api, checked)
    unready = [name for name, _, _, ready in seen if not ready]
    apiservers = {name: apiserver for name, apiserver, _, _ in seen if apiserver}
    kubelets = [(name, kubelet) for name, _, kubelet, _ in seen if kubelet is not None]
    if unready:
        problems.append(f"nodes not Ready: {', '.join(unready)}")
    unhealthy = discovery.unhealthy(pods)
    if unhealthy:
        problems.append(f"control-plane pods not Ready: {', '.join(unhealthy)}")
    silent = [name for name in planned if name not in facts]
    if silent:
        problems.append(f"no answer from the agents of: {', '.join(silent)}")
    problems += swap_problems(facts, lambda: _cluster_refuses_swap(api))
    first = schedule.first_control_plane
    if first and not facts.get(first, {}).get("admin_conf"):
        problems.append(f"{first} has no /etc/kubernetes/admin.conf; the first control plane needs it")
    target = job.version
    policies = job.campaign.policies
    if policies.upgrade_configuration:
        reapplying = policies.reapply and first is not None and apiservers.get(first) == target
        problems += upgrade_configuration_problems(facts, policies.upgrade_configuration, first, reapplying)
    spread = skew.check_apiserver_spread(apiservers)
    if spread:
        problems.append(spread.message)
    for name, kubelet in kubelets:
        finding = skew.check_kubelet_against_apiserver(
            name, kubelet, target.minor_version, when="once the control plane is upgraded")
        if finding:
            problems.append(finding.message)
    if problems:
        raise PermanentError("preflight failed: " + "; ".join(problems))
    policy = job.campaign.policies.drain
    warnings = []
    drained = [name for name in planned if entries.get(name, {}).get("drain")]
    for name, preview in preview_drains(api, drained, policy).items():
        warnings += [f"{name}: {b}" for b in preview.blocked]

    def remember(doc: dict[str, Any]) -> None:
        doc["hops"][job.hop]["drain_findings"] = warnings

    job.fence()  # the record's document is not the phase's entry: checked, then written
    job.store.update(job.campaign_id, remember)
    detail = f"cluster ready for {target.tag}"
    if warnings:
        detail += f"; drain simulation: {len(warnings)} pod(s) a PDB would block right now"
    return StepOutcome(DONE, detail, "\n".join(warnings))


def swap_problems(facts: Mapping[str, Mapping[str, Any]], cluster_refuses: Callable[[], bool]) -> list[str]:
    """Nodes with swap on whose kubelet would not start once upgraded. A node's own
    --fail-swap-on flag decides where it has one (the upgrade leaves it alone); elsewhere the
    cluster's kubelet configuration does, which `kubeadm upgrade` writes to every node
    (`cluster_refuses`: its failSwapOn, true by default; asked only if a node needs it)."""
    swapping = [name for name, f in facts.items() if f.get("swap_on")]
    flagged = [name for name in swapping if facts[name].get("fail_swap_on_flag") is True]
    unflagged = [name for name in swapping if facts[name].get("fail_swap_on_flag") is None]
    problems = []
    if flagged:
        problems.append("swap is on and the kubelet is started with --fail-swap-on=true, so it would "
                        f"not start (turn swap off, or set the flag to false): {', '.join(flagged)}")
    if unflagged and cluster_refuses():
        problems.append("swap is on and kube-system/kubelet-config keeps failSwapOn true (the "
                        "default), which the upgrade writes to every node, so the kubelet would not "
                        f"start (turn swap off, or set failSwapOn: false there): {', '.join(unflagged)}")
    return problems


def upgrade_configuration_problems(facts: Mapping[str, Mapping[str, Any]], path: str, first: str | None,
                                   reapplying: bool) -> list[str]:
    """What each node's copy of the campaign's UpgradeConfiguration would make its kubeadm run
    do against the policies (judged by its agent at prepare-host): the first control plane's
    `apply` must have the file; every other node runs `upgrade node` with its copy, if any."""
    problems = []
    for name in sorted(facts):
        if "upgrade_configuration" not in facts[name]:
            continue  # an agent from before this check: its phase judges the file itself
        judged = facts[name]["upgrade_configuration"]
        if not (judged is None or isinstance(judged, dict)):
            problems.append(f"{name}: its agent's judgement of {path} in the record is damaged "
                            f"({type(judged).__name__}); retry to judge it again")
            continue
        if judged is None:
            if name == first:
                problems.append(f"{name} has no {path} (policies.upgrade_configuration); "
                                "the first control plane's `kubeadm upgrade apply` reads it")
            continue
        run = ("apply_forced" if reapplying else "apply") if name == first else "node"
        problems += [f"{name}: {problem}" for problem in judged.get(run, [])]
    return problems


def _cluster_refuses_swap(api: Any) -> bool:
    from kubeupgrade.kube import discovery
    from kubeupgrade.kube.client import KubeNotFound

    try:
        return discovery.cluster_fails_swap_on(api)
    except KubeNotFound:
        return True  # no kubelet-config: the kubelet's default


@phase_task(Phase.DRAIN, waits=True)
def drain_node(job: Job) -> StepOutcome:
    """Cordon the node and evict its pods through the eviction API, honouring PDBs. The body
    is one look; while evicted pods stop or budgets refuse, it looks again later, past a short
    wait without holding a pool process (waiting.py)."""
    from kubeupgrade.kube.drain import DrainReport, drain_look
    from kubeupgrade.kube.nodes import CordonOwner, cordon_node
    from kubeupgrade.workflow.broker_loss import current_epoch, known_campaign

    api = job_api(job)
    carried = job.wait.carried
    if job.wait.looks and carried.get("owner") in CordonOwner.__members__:
        owner = CordonOwner[carried["owner"]]  # cordoned at the first look
        job.fence()  # a look of a superseded task keeps no wait state and sends no next look
    else:
        # Write ahead: the record names the node as ours before the cordon, so a failure
        # between the two can only over-report (status names a node that is in fact schedulable).
        job.note_cordon(True)
        owner = cordon_node(api, job.node, job.campaign_id, attempt=_holder(job),
                            epoch=current_epoch(job.store.redis), fence=job.fence,
                            adoptable=lambda other, epoch: known_campaign(job.store.redis, other, epoch))
        if owner is CordonOwner.FOREIGN:
            job.note_cordon(False)
    report = DrainReport.from_carried(carried)
    look = drain_look(api, job.node, job.campaign.policies.drain, report,
                      started=job.wait.since, now=time.time(), fence=job.fence)
    if look.waiting_for:
        raise StillWaiting(look.why, look.next_look(job.wait.looks), {"owner": owner.name, **report.carried()})
    if not report.evicted and not report.deleted and owner is CordonOwner.OURS:
        return StepOutcome(ALREADY_DONE, f"{job.node} already cordoned and drained")
    detail = {CordonOwner.CORDONED: "cordoned", CordonOwner.OURS: "already cordoned",
              CordonOwner.ADOPTED: "cordon adopted from an earlier campaign",
              CordonOwner.FOREIGN: "was already cordoned by someone else (left so at the end)"}[owner]
    detail += f"; evicted {len(report.evicted)} pod(s)"
    if report.blocked_retries:
        detail += f"; a PodDisruptionBudget refused {report.blocked_retries} eviction(s) on the way"
    if report.deleted:
        detail += f"; deleted {len(report.deleted)} PDB-blocked pod(s) (on_pdb_block: delete)"
    return StepOutcome(DONE, detail, "\n".join(report.evicted + report.deleted))


def _holder(job: Job) -> str:
    """Which of the campaign's attempts holds the node cordoned (nodes.CORDON_ATTEMPT)."""
    return f"hop {job.hop + 1}, attempt {job.attempt}"


@phase_task(Phase.WAIT_READY, waits=True)
def wait_node_ready(job: Job) -> StepOutcome:
    """Wait until the node is Ready and its kubelet reports the hop's version; on a control
    plane, until its components run the version too. The body is one look; the next comes
    later, past a short wait without holding a pool process (waiting.py)."""
    from kubeupgrade.kube.discovery import components_behind
    from kubeupgrade.kube.nodes import cordoned_by, get_node, is_ready, kubelet_version

    api = job_api(job)
    target = job.version.tag
    timeout = job.campaign.policies.ready_timeout_seconds
    # The timeout counts time the API server answered in: while it does not, no kubelet can
    # report Ready, and the node is not what failed. It counts from the first look, or from the
    # first look after the API server answered again (carried), whichever is later.
    carried = dict(job.wait.carried)
    try:
        node = get_node(api, job.node)
        # A control plane is back when its components run the version: kubeadm's exit 0 does
        # not promise it (components_behind), and no worker may change before they do. Which
        # nodes are control planes is the sealed schedule's word, not the node's labels.
        control_plane = job.node in job.schedule().control_planes
        behind = components_behind(api, job.node, job.version) if control_plane else []
    except TemporaryError as error:  # the API server away past the call's own tolerance
        carried["api_silent"] = True
        raise StillWaiting(f"waiting for Ready at {target}: the API server does not answer ({error})",
                           look_delay(job.wait.looks), carried) from None
    if carried.pop("api_silent", False) or job.api_outage_seen:  # it answers again from now
        carried["counted_from"] = time.time()
    last = f"Ready={is_ready(node)}, kubelet {kubelet_version(node)}"
    if behind:
        last += f", {'; '.join(behind)}"
    kubelet_back = is_ready(node) and kubelet_version(node) == target
    if kubelet_back and not behind:
        return StepOutcome(DONE, f"Ready at {target}" + (", its components too" if control_plane else ""))
    counted_from = max(job.wait.since, float(carried.get("counted_from") or 0.0))
    if time.time() > counted_from + timeout:
        if kubelet_back:
            raise PermanentError(
                f"{job.node} is Ready at {target}, but its control-plane components did not all "
                f"come up at {target} within {timeout}s ({'; '.join(behind)}). A kubeadm stopped "
                f"half-way leaves a manifest written that its re-run skips; the kubelet runs it "
                f"once what holds it back is fixed: look at the kubelet there (`crictl ps -a`, "
                f"`journalctl -u kubelet`). No other control plane and no worker changes until "
                f"they run; then `kubeupgrade retry {job.campaign_id}`")
        # Cordoned by this campaign unless it was never drained (a control plane whose kubelet
        # was already at the target): the message must not send an operator after a cordon.
        held = "it stays cordoned — " if cordoned_by(node) == job.campaign_id else ""
        raise PermanentError(f"{job.node} did not become Ready at {target} within {timeout}s "
                             f"(last seen: {last}); {held}fix its kubelet, then "
                             f"`kubeupgrade retry {job.campaign_id}`")
    raise StillWaiting(f"waiting for Ready at {target} (last seen: {last})", look_delay(job.wait.looks), carried)


@phase_task(Phase.UNCORDON)
def uncordon_node(job: Job) -> StepOutcome:
    """Make the node schedulable again, only if this campaign cordoned it (the node says so)."""
    from kubeupgrade.kube.nodes import uncordon_node as uncordon
    from kubeupgrade.workflow.broker_loss import current_epoch

    changed = uncordon(job_api(job), job.node, job.campaign_id, attempt=_holder(job),
                       epoch=current_epoch(job.store.redis), fence=job.fence)
    job.note_cordon(False)
    if changed:
        return StepOutcome(DONE, "uncordoned")
    return StepOutcome(ALREADY_DONE, "not cordoned by this campaign; left as it was")


GATE_POLL = 2.0  # seconds between health checks while the gate is red


@phase_task(Phase.CONTROL_PLANE_GATE, Phase.HEALTH_GATE, waits=True)
def health_gate(job: Job) -> StepOutcome:
    """After the control planes (with gates or a canary) and after the canary workers: the
    built-in health checks and the operator's gates must pass within policies.gate_timeout;
    otherwise the campaign pauses (or fails: on_gate_failure), naming what is unhealthy."""
    from kubeupgrade.kube.health import health_findings
    from kubeupgrade.workflow.gates import user_gate_findings

    api = job_api(job)
    policies = job.campaign.policies
    schedule = job.schedule()
    if job.phase is Phase.CONTROL_PLANE_GATE:
        upgraded, where = list(schedule.control_planes), "after the control planes"
    else:
        boundary = job.hop_doc.get("gate_boundary") or policies.canary
        previous = max([b for b in job.hop_doc.get("gates_passed", []) if b < boundary], default=0)
        upgraded = list(schedule.workers[previous:boundary])
        wave = "the canary" if previous == 0 and boundary == policies.canary else f"workers {previous + 1}-{boundary}"
        where = f"after {wave} ({', '.join(upgraded)})"
    try:
        findings = health_findings(api, upgraded) + user_gate_findings(policies.gates)
    except TemporaryError as error:
        findings = [str(error)]
    if not findings:
        checked = ", ".join(["built-in checks", *(g.name for g in policies.gates)])
        return StepOutcome(DONE, f"green {where} ({checked})")
    if time.time() <= job.wait.since + policies.gate_timeout_seconds:
        raise StillWaiting("red: " + "; ".join(findings), GATE_POLL)
    why = f"health gate {where} still red after {policies.gate_timeout_seconds}s: " + "; ".join(findings)
    if policies.on_gate_failure is GateFailure.FAIL:
        raise PermanentError(why)
    raise PhaseHeld(why)


@phase_task(Phase.WINDOWS_KUBE_PROXY)
def windows_kube_proxy(job: Job) -> StepOutcome:
    """Once the Windows workers run the new kubelet: their kube-proxy DaemonSet to the version."""
    from kubeupgrade.kube.windows_proxy import upgrade_windows_proxy

    changed, current = upgrade_windows_proxy(job_api(job), job.version)
    if changed:
        return StepOutcome(DONE, f"kube-proxy for Windows moved to {job.version.tag}: {'; '.join(changed)}")
    if current:
        return StepOutcome(ALREADY_DONE, f"kube-proxy for Windows already at {job.version.tag}: "
                           f"{', '.join(current)}")
    return StepOutcome(ALREADY_DONE, "no kube-proxy DaemonSet for Windows nodes in kube-system; where "
                       "kube-proxy runs as a Windows service, replace its kube-proxy.exe as the "
                       "Windows procedure says")


@phase_task(Phase.VERIFY)
def verify(job: Job) -> StepOutcome:
    """Every node Ready at the target, static pods at the target, kube-proxy and CoreDNS updated;
    and what success promises: no node left cordoned by this campaign, and the record shows the
    worker limit was never exceeded."""
    from kubeupgrade.kube.nodes import nodes_cordoned_by
    from kubeupgrade.kube.verify import verify_cluster
    from kubeupgrade.workflow.audit import window_violations

    api = job_api(job)
    schedule = job.schedule()  # its own key now: read it once
    broken = window_violations(job.store.each_entry(job.campaign_id, job.hop), schedule.limit)
    left = nodes_cordoned_by(api, job.campaign_id)
    if broken or left:
        found = broken + ([f"still cordoned by this campaign: {', '.join(left)}"] if left else [])
        raise PermanentError("verification: " + "; ".join(found))
    verification = verify_cluster(api, job.version, frozenset(schedule.left_alone))

    found = [row.__dict__ for row in verification.rows]

    def keep(pipe: Any) -> None:
        job.store.put_verification(job.campaign_id, job.hop, found, pipe)
        if not verification.problems:  # the seal the dispatcher moves past this hop on (seal.py)
            job.store.put_verified(job.campaign_id, job.hop, job.version.tag, pipe)

    job.record_finding(also=keep)
    if verification.problems:
        remedy = ""
        if verification.static_pods_behind:
            nodes = ", ".join(verification.static_pods_behind)
            remedy = (f" (every planned phase succeeded. A static pod not at its new version on {nodes} "
                      "has not come up from its manifest, as after a kubeadm stopped half-way, whose "
                      "re-run skips a manifest already written: look at the kubelet there (`crictl "
                      f"ps -a`, `journalctl -u kubelet`), then `kubeupgrade retry {job.campaign_id}` "
                      "verifies again. If instead the cluster changed after this campaign planned it: "
                      f"`kubeupgrade abort {job.campaign_id}`, then submit the campaign again, which "
                      "plans what remains)")
        elif verification.versions_behind:
            remedy = (f" (every planned phase succeeded, so the cluster changed after this campaign "
                      f"planned it; a retry only verifies again: `kubeupgrade abort {job.campaign_id}`, "
                      f"then submit the campaign again, which plans what remains)")
        raise TemporaryError("verification: " + "; ".join(verification.problems) + remedy)
    return StepOutcome(DONE, f"{len(verification.rows)} nodes Ready at {job.version.tag}")


def _released(entry: dict[str, Any]) -> None:
    """The node serves pods again: a retry must drain it again before its outage goes on."""
    entry["cordoned_by_us"] = False
    states = {p["phase"]: p for p in entry["phases"]}
    drain, uncordon = states.get(Phase.DRAIN.value), states.get(Phase.UNCORDON.value)
    if drain and drain["state"] == "succeeded" and uncordon and uncordon["state"] != "succeeded":
        drain.update(state="pending", task_id=None, detail="uncordoned on abort; drains again on retry")


@app.task(name=RELEASE_NODE, acks_late=True)
def release_node(campaign: str, node: str) -> dict[str, Any]:
    """On `abort --uncordon`: uncordon a node this campaign cordoned, once the campaign is
    aborted. Anyone holding a trusted message key can send this task (an agent's key is on
    every node), and uncordoning a node of a running campaign would put pods on a node about
    to restart its kubelet: abort writes `aborted` before it sends, so nothing else is obeyed."""
    from kubeupgrade.kube.nodes import uncordon_node as uncordon

    if not valid_campaign_id(campaign) or not valid_node_name(node):
        raise PermanentError(f"invalid arguments {campaign!r}, {node!r}")
    store = store_for(broker_url())
    doc = store.get(campaign)
    state = doc["state"] if doc else "gone"
    if state != "aborted":
        raise PermanentError(f"release of {node} refused: campaign {campaign} is {state}, and only an "
                             "aborted campaign's nodes are released (`kubeupgrade abort --uncordon`)")
    def still_aborted() -> None:
        # Asked again right before the write: a task that froze after the check above may wake
        # after `retry`, when the node is the running campaign's again.
        now = store.get(campaign)
        if now is None or now["state"] != "aborted":
            raise PermanentError(f"release of {node} refused: campaign {campaign} is no longer aborted")

    changed = uncordon(kube_api(), node, campaign, fence=still_aborted)
    for hop in range(len(doc["hops"])):
        entry = store.entry(campaign, hop, node)
        if entry and entry.get("cordoned_by_us"):
            store.update_entry(campaign, hop, node, _released)
    if not changed:
        return {"node": node, "status": "not-ours"}
    store.event(campaign, f"{node}: uncordoned on abort")
    return {"node": node, "status": "uncordoned"}
