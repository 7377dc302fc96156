"""Turn a campaign (and the cluster's current versions) into a plan: hops, nodes, phases, findings.

Rules applied here (each also a test):
- no downgrades; no skipped minors — a target N minors ahead becomes N hops, each a full pass over
  the cluster, to the pinned or the latest patch of each intermediate minor;
- control planes one at a time, the first of a hop runs `kubeadm upgrade apply`, the others
  `kubeadm upgrade node`; workers only after every control plane of the hop;
- a node already at a hop's version plans only what remains;
- a minor kubelet upgrade always drains; a patch upgrade may skip the drain if the campaign says so.

Pure: the campaign's node list (or one discovered by the caller) is the only input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kubeupgrade.errors import InvalidInput
from kubeupgrade.host.upgrade_configuration import FIRST_MINOR
from kubeupgrade.model.campaign import Campaign, NodeSpec, Policies, WorkerStrategy
from kubeupgrade.model.phases import in_order
from kubeupgrade.model.plan import (
    Hop,
    KubeadmStep,
    NodePlan,
    Phase,
    Plan,
    Violation,
    WorkerSchedule,
    version_label,
)
from kubeupgrade.model.versions import KubeVersion, MinorVersion, VersionSpec
from kubeupgrade.planning import skew
from kubeupgrade.planning.pools import pool_notes, pool_schedules, pool_violations
from kubeupgrade.planning.scheduling import fixed_batches


def plan_campaign(campaign: Campaign, available: Iterable[KubeVersion] = ()) -> Plan:
    """Plan `campaign`. `available` (from a package listing) resolves "latest patch" targets."""
    if campaign.nodes is None:
        raise InvalidInput(
            f"{campaign.source}: nodes: missing; list the nodes, or let `kubeupgrade submit` "
            "discover them from the API server"
        )
    nodes = campaign.nodes
    releases = sorted(set(available))
    control_planes = [node for node in nodes if node.is_control_plane]
    apiservers = _control_plane_versions(campaign, control_planes)
    violations: list[Violation] = []
    notes: list[str] = []

    spread = skew.check_apiserver_spread(apiservers)
    if spread:
        violations.append(spread)
    current = min(apiservers.values())
    newest_control_plane = max(apiservers.values())

    targets, path_violations = _hop_targets(campaign, current, apiservers, releases)
    violations.extend(path_violations)
    violations.extend(_missing_from_listing(campaign, releases))
    workers = [node for node in nodes if not node.is_control_plane]
    violations.extend(pool_violations(campaign.policies.pools, workers))
    notes.extend(pool_notes(campaign.policies.pools, workers))
    if not path_violations:
        violations.extend(_kubelet_violations(nodes, newest_control_plane, targets, campaign.target))
        notes.extend(_kubelets_ahead_of_a_control_plane(nodes, apiservers))

    selected = _scope_filter(campaign)
    left = [node for node in nodes if not node.is_control_plane and not selected(node)]
    if left and targets and not path_violations:
        violations.extend(_left_out_violations(left, targets[-1]))
        notes.append(f"scope: {campaign.scope.describe()}; {len(left)} worker(s) keep their kubelet")
    hops: list[Hop] = []
    source: VersionSpec = current
    for target in targets:
        hop = _plan_hop(source, target, nodes, apiservers, campaign.policies, selected)
        if hop.control_planes or hop.workers:
            hops.append(hop)
        # Every node ends each hop at its version: later hops start from there. An unresolved
        # "latest patch" stands in as X.Y.0, which is only ever compared with higher minors.
        source = target
        reached = target if isinstance(target, KubeVersion) else KubeVersion(target.major, target.minor, 0)
        apiservers = dict.fromkeys(apiservers, reached)
        nodes = tuple(_at_version(node, reached) if node.is_control_plane or selected(node) else node
                      for node in nodes)
    violations.extend(_upgrade_configuration_violations(campaign.policies, hops))
    taken_over = sorted(f"{n.name} (campaign {n.left_cordoned_by})" for n in campaign.nodes
                        if n.left_cordoned_by and (n.is_control_plane or selected(n)))
    if taken_over:
        notes.append("left cordoned by a campaign the broker lost, taken over and uncordoned once "
                     f"Ready at the target: {', '.join(taken_over)}")
    if not hops and not violations:
        notes.append(f"every node is already at {version_label(campaign.target)}; nothing to do")
    if campaign.policies.reapply:
        notes.append("policies.reapply: where every control plane already runs the hop's version, "
                     "the first one re-runs `kubeadm upgrade apply <version> --force`")
    return Plan(
        cluster=campaign.cluster,
        target=campaign.target,
        current=current,
        hops=tuple(hops),
        violations=tuple(violations),
        notes=tuple(notes),
    )


def _upgrade_configuration_violations(policies: Policies, hops: list[Hop]) -> list[Violation]:
    """An UpgradeConfiguration file reaches kubeadm only from 1.31: an older kubeadm reads
    `--config` as a cluster reconfiguration (and 1.30.0-1.30.3 cannot take it without a prompt)."""
    if not policies.upgrade_configuration:
        return []
    early = [hop.target for hop in hops if hop.target_minor < FIRST_MINOR]
    if not early:
        return []
    return [Violation(
        rule="upgrade-configuration-version",
        message=f"policies.upgrade_configuration: the hop to {version_label(early[0])} runs kubeadm "
                f"{early[0].minor_version.tag}, which reads no UpgradeConfiguration (kubeadm "
                f"{FIRST_MINOR.tag} and later do); remove the policy, or submit that hop without it "
                "and a campaign to the later versions with it")]


def _missing_from_listing(campaign: Campaign, releases: list[KubeVersion]) -> list[Violation]:
    """An exact target (or pin) that the listing of its minor does not hold cannot be installed.
    Listings come from one minor's repository: a minor the listing does not cover is not judged."""
    wanted = [campaign.target] + [pin for _, pin in campaign.pins]
    problems = []
    for version in wanted:
        if not isinstance(version, KubeVersion) or version in releases:
            continue
        same_minor = [r for r in releases if r.minor_version == version.minor_version]
        if same_minor:
            problems.append(Violation(
                rule="not-in-listing",
                message=f"{version.plain} is not in the package listing (it has "
                        f"{min(same_minor).plain} to {max(same_minor).plain}); pick one of those"))
    return problems


def _control_plane_versions(
    campaign: Campaign, control_planes: list[NodeSpec]
) -> dict[str, KubeVersion]:
    versions: dict[str, KubeVersion] = {}
    for node in control_planes:
        version = node.control_plane or campaign.control_plane_version
        if version is None:
            raise InvalidInput(
                f"{campaign.source}: control_plane_version: missing; set the cluster's current "
                f"version (e.g. v1.30.4) or nodes[].control_plane for {node.name}"
            )
        versions[node.name] = version
    return versions


def _hop_targets(
    campaign: Campaign,
    current: KubeVersion,
    apiservers: dict[str, KubeVersion],
    releases: list[KubeVersion],
) -> tuple[list[VersionSpec], list[Violation]]:
    """The version of each hop, one per minor from the current one to the target's."""
    target = campaign.target
    newest_control_plane = max(apiservers.values())
    target_minor = target.minor_version
    if target_minor.major != current.major:
        return [], [
            Violation(
                rule="major-version-change",
                message=f"target {version_label(target)} changes the major version of {current.plain}; "
                "kubeadm upgrades only within major version 1",
            )
        ]
    ahead = current.minor_version.minors_until(target_minor)
    if ahead < 0 or (isinstance(target, KubeVersion) and target < newest_control_plane):
        return [], [
            Violation(
                rule="no-downgrade",
                message=f"target {version_label(target)} is older than the control plane "
                f"({newest_control_plane.plain}); kubeadm does not downgrade — pick a target at "
                f"or above {newest_control_plane.plain}",
            )
        ]
    targets: list[VersionSpec] = []
    for step in range(1, ahead):
        minor = MinorVersion(current.major, current.minor + step)
        targets.append(
            campaign.pinned(minor)
            or _chosen_by_interrupted_apply(minor, current, apiservers)
            or _latest(minor, releases)
            or minor
        )
    if isinstance(target, MinorVersion):
        targets.append(
            _chosen_by_interrupted_apply(target, current, apiservers)
            or _latest(target, releases)
            or target
        )
    else:
        targets.append(target)
    return targets, []


def _latest(minor: MinorVersion, releases: list[KubeVersion]) -> KubeVersion | None:
    final = [v for v in releases if v.minor_version == minor and not v.is_prerelease]
    return max(final) if final else None


def _chosen_by_interrupted_apply(
    minor: MinorVersion, current: KubeVersion, apiservers: dict[str, KubeVersion]
) -> KubeVersion | None:
    """An interrupted hop to "latest patch": `kubeadm upgrade apply` already chose the version
    (it is in the ClusterConfiguration), and the remaining nodes must follow it."""
    if minor == current.minor_version:
        return None
    applied = [v for v in apiservers.values() if v.minor_version == minor]
    return max(applied) if applied else None


def _kubelets_ahead_of_a_control_plane(
    nodes: Iterable[NodeSpec], apiservers: dict[str, KubeVersion]
) -> list[str]:
    """Mid-hop, a kubelet may already be ahead of a control plane that is not yet upgraded: the
    plan finishes that control plane first, so this is reported, not refused."""
    oldest_name, oldest = min(apiservers.items(), key=lambda item: item[1])
    return [
        f"node {node.name}: kubelet {node.kubelet.plain} is ahead of kube-apiserver "
        f"{oldest.plain} on {oldest_name}; the plan upgrades {oldest_name} first"
        for node in nodes
        if node.kubelet is not None and node.kubelet.minor_version > oldest.minor_version
    ]


def _kubelet_violations(
    nodes: Iterable[NodeSpec],
    newest_control_plane: KubeVersion,
    targets: list[VersionSpec],
    final: VersionSpec,
) -> list[Violation]:
    """Kubelets must stay in skew when the control plane moves to the first hop's version.

    Every later hop starts with every kubelet at the previous hop's version, so only the first
    hop can break the rule for a node.
    """
    violations: list[Violation] = []
    first = targets[0] if targets else None
    for node in nodes:
        if node.kubelet is None:
            continue
        if isinstance(final, KubeVersion) and node.kubelet > final:
            violations.append(
                Violation(
                    rule="no-downgrade",
                    node=node.name,
                    component="kubelet",
                    message=f"node {node.name}: kubelet {node.kubelet.plain} is newer than the "
                    f"target {final.plain}; kubeadm does not downgrade — target at least "
                    f"{node.kubelet.plain} or leave the node out",
                )
            )
            continue
        now = skew.check_kubelet_against_apiserver(
            node.name, node.kubelet, newest_control_plane.minor_version, when="today"
        )
        if now is not None and now.rule == "kubelet-newer-than-apiserver":
            violations.append(now)
            continue
        if first is None:
            continue
        after_move = skew.check_kubelet_against_apiserver(
            node.name, node.kubelet, first.minor_version, when="once the control plane is upgraded"
        )
        if after_move is not None:
            violations.append(after_move)
    return violations


def _scope_filter(campaign: Campaign) -> Callable[[NodeSpec], bool]:
    """Which workers the campaign upgrades; InvalidInput for a scope naming no such worker."""
    from kubeupgrade.kube.selectors import label_selector

    scope = campaign.scope
    if scope.workers is not None:
        known = {node.name: node for node in campaign.nodes or ()}
        unknown = [name for name in scope.workers if name not in known]
        if unknown:
            raise InvalidInput(f"{campaign.source}: scope.workers: not in the cluster: {', '.join(unknown)}")
        masters = [name for name in scope.workers if known[name].is_control_plane]
        if masters:
            raise InvalidInput(f"{campaign.source}: scope.workers: {', '.join(masters)} is a control "
                               "plane; control planes are upgraded whenever they need it")
    matches = label_selector(scope.selector)
    named = None if scope.workers is None else frozenset(scope.workers)
    # A node's name and labels are the same in every hop: each is decided once. (It was asked
    # three times a node per hop, each time copying the labels and scanning scope.workers.)
    decided: dict[str, bool] = {}

    def selected(node: NodeSpec) -> bool:
        known = decided.get(node.name)
        if known is None:
            known = decided[node.name] = not scope.only_control_planes and (
                named is None or node.name in named) and matches(
                {"metadata": {"labels": dict(node.labels)}})
        return known

    return selected


def _left_out_violations(left: list[NodeSpec], final: VersionSpec) -> list[Violation]:
    """Workers out of scope keep their kubelet: it must stay within skew of the final control plane."""
    found = []
    for node in left:
        if node.kubelet is None:
            continue
        problem = skew.check_kubelet_against_apiserver(
            node.name, node.kubelet, final.minor_version,
            when=f"once the control planes reach {final.plain} (it is out of this campaign's scope)")
        if problem is not None:
            found.append(problem)
    return found


def _plan_hop(
    source: VersionSpec,
    target: VersionSpec,
    nodes: tuple[NodeSpec, ...],
    apiservers: dict[str, KubeVersion],
    policies: Policies,
    selected: Callable[[NodeSpec], bool] = lambda node: True,
) -> Hop:
    control_plane_specs = [node for node in nodes if node.is_control_plane]
    # Nodes whose control plane already runs this hop's version go first: `apply` happened there.
    applied = [n for n in control_plane_specs if _reached(apiservers[n.name], target)]
    remaining = [n for n in control_plane_specs if not _reached(apiservers[n.name], target)]
    control_planes: list[NodePlan] = []
    already: list[str] = []
    for node in applied + remaining:
        if node in applied:
            # Every control plane there already: `apply` again only when the operator asked.
            reapply = policies.reapply and not remaining and node is applied[0]
            step = KubeadmStep.APPLY if reapply else KubeadmStep.NONE
        elif not applied and node is remaining[0]:
            step = KubeadmStep.APPLY
        else:
            step = KubeadmStep.NODE
        plan = _node_plan(node, step, source, target, policies)
        if plan.phases:
            control_planes.append(plan)
        else:
            already.append(node.name)
    workers: list[NodePlan] = []
    out_of_scope: list[str] = []
    for node in nodes:
        if node.is_control_plane:
            continue
        if not selected(node):
            out_of_scope.append(node.name)
            continue
        step = KubeadmStep.NONE if _kubelet_reached(node, target) else KubeadmStep.NODE
        plan = _node_plan(node, step, source, target, policies)
        if plan.phases:
            workers.append(plan)
        else:
            already.append(node.name)
    order = tuple(plan.name for plan in workers)
    in_order = set(order)  # membership per node: a scan of `order` was 0.23 s at 5,000 nodes
    limit = policies.max_unavailable.resolve(len(order))
    batches: tuple[tuple[str, ...], ...] = ()
    if policies.worker_strategy is WorkerStrategy.BATCHES and order:
        batches = tuple(tuple(batch) for batch in fixed_batches(order, limit))
    return Hop(
        source=source,
        target=target,
        control_planes=tuple(control_planes),
        workers=tuple(workers),
        schedule=WorkerSchedule(policies.worker_strategy, limit, order, batches,
                                pool_schedules(policies.pools, [n for n in nodes if n.name in in_order])),
        already_at_target=tuple(already),
        out_of_scope=tuple(out_of_scope),
    )


def _node_plan(
    node: NodeSpec, step: KubeadmStep, source: VersionSpec, target: VersionSpec, policies: Policies
) -> NodePlan:
    kubelet_done = _kubelet_reached(node, target)
    if step is KubeadmStep.NONE and kubelet_done:
        if node.left_cordoned_by:
            # At the target, but left cordoned by a campaign whose record the broker lost before
            # it uncordoned: the drain takes the cordon over (it is this campaign's outage from
            # then on, inside its limit), and the node is uncordoned once Ready at the target.
            return NodePlan(node.name, node.role, step, drain=True,
                            phases=(Phase.DRAIN, Phase.WAIT_READY, Phase.UNCORDON))
        return NodePlan(node.name, node.role, step, drain=False, phases=())
    kubelet_minor = (node.kubelet or source).minor_version
    # kubeadm docs: a minor kubelet upgrade must drain the node first; a patch may skip it.
    drain = kubelet_minor != target.minor_version or not policies.drain.skip_for_patch
    phases: list[Phase] = [Phase.SET_REPOSITORY]
    if step is not KubeadmStep.NONE:
        phases.append(Phase.INSTALL_KUBEADM)
    if step is KubeadmStep.APPLY:
        phases.append(Phase.KUBEADM_PLAN)
        if policies.etcd_snapshot:
            phases.append(Phase.ETCD_SNAPSHOT)
        if policies.etcd_upgrade and policies.stop_apiserver_before_etcd_upgrade:
            phases.append(Phase.STOP_APISERVER)
        phases.append(Phase.KUBEADM_APPLY)
        if policies.hooks.after_first_control_plane:
            phases.append(Phase.HOOKS_AFTER_FIRST_CONTROL_PLANE)
    elif step is KubeadmStep.NODE:
        phases.append(Phase.KUBEADM_NODE)
    if not kubelet_done:
        # Early (see its declaration): a worker's outage and its kubeadm fetch nothing.
        phases.append(Phase.DOWNLOAD_PACKAGES)
        if drain:
            if policies.hooks.before_drain:
                phases.append(Phase.HOOKS_BEFORE_DRAIN)
            phases.append(Phase.DRAIN)
        phases += [Phase.INSTALL_KUBELET, Phase.RESTART_KUBELET, Phase.WAIT_READY]
        if drain:
            phases.append(Phase.UNCORDON)
        if policies.hooks.after_node:
            phases.append(Phase.HOOKS_AFTER_NODE)
    elif node.is_control_plane and step is not KubeadmStep.NONE:
        # Its kubelet already at the target (mid-hop): the readiness wait still holds the
        # chain until its components run the version, which kubeadm's exit 0 does not promise.
        phases.append(Phase.WAIT_READY)
    return NodePlan(node.name, node.role, step, drain=drain and not kubelet_done, phases=in_order(phases))


def _reached(version: KubeVersion, target: VersionSpec) -> bool:
    if isinstance(target, KubeVersion):
        return version >= target
    return False  # an unresolved "latest patch" is never known to be reached


def _kubelet_reached(node: NodeSpec, target: VersionSpec) -> bool:
    return node.kubelet is not None and _reached(node.kubelet, target)


def _at_version(node: NodeSpec, version: KubeVersion) -> NodeSpec:
    return NodeSpec(
        name=node.name,
        role=node.role,
        kubelet=version,
        control_plane=version if node.is_control_plane else None,
        os=node.os,
        zone=node.zone,
        labels=node.labels,
    )
