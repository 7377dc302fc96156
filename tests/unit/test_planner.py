"""The planner: hops, control-plane order, kubeadm apply vs node, drains, partial clusters,
and property tests that a plan never skips a minor, never downgrades and never starts a worker
before every control plane of its hop."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.campaign import (
    Campaign,
    DrainPolicy,
    MaxUnavailable,
    NodeSpec,
    Policies,
    Role,
    WorkerStrategy,
)
from kubeupgrade.model.phases import PHASES, SPECS, Runs
from kubeupgrade.model.plan import KubeadmStep, Phase
from kubeupgrade.model.versions import KubeVersion, MinorVersion, parse_version, parse_version_spec
from kubeupgrade.planning.planner import plan_campaign

CP, W = Role.CONTROL_PLANE, Role.WORKER


def v(text):
    return parse_version(text)


def campaign(target, nodes, cp_version="1.30.4", policies=None, pins=()):
    return Campaign(
        cluster="test",
        target=parse_version_spec(target),
        nodes=tuple(nodes),
        control_plane_version=v(cp_version) if cp_version else None,
        pins=pins,
        policies=policies or Policies(),
    )


def cluster(kubelet="1.30.4", cps=3, workers=3):
    nodes = [NodeSpec(f"cp-{i}", CP, kubelet=v(kubelet)) for i in range(1, cps + 1)]
    nodes += [NodeSpec(f"w-{i}", W, kubelet=v(kubelet)) for i in range(1, workers + 1)]
    return nodes


def test_one_minor_is_one_hop_with_apply_on_the_first_control_plane():
    plan = plan_campaign(campaign("v1.31.2", cluster()))
    assert not plan.violations
    (hop,) = plan.hops
    assert (hop.source.plain, hop.target.plain) == ("1.30.4", "1.31.2")
    assert [n.name for n in hop.control_planes] == ["cp-1", "cp-2", "cp-3"]
    assert [n.kubeadm_step for n in hop.control_planes] == [KubeadmStep.APPLY, KubeadmStep.NODE, KubeadmStep.NODE]
    assert all(n.kubeadm_step is KubeadmStep.NODE for n in hop.workers)
    assert Phase.KUBEADM_APPLY in hop.control_planes[0].phases
    assert Phase.KUBEADM_PLAN in hop.control_planes[0].phases
    assert Phase.KUBEADM_APPLY not in hop.control_planes[1].phases


def test_two_minors_become_two_hops_through_the_latest_intermediate_patch():
    available = [v(x) for x in ["1.31.0", "1.31.9", "1.31.10", "1.32.0-rc.1", "1.32.1"]]
    plan = plan_campaign(campaign("1.32", cluster()), available)
    assert [(h.source.plain, h.target.plain) for h in plan.hops] == [("1.30.4", "1.31.10"), ("1.31.10", "1.32.1")]


def test_unresolved_intermediate_minor_stays_latest_patch():
    plan = plan_campaign(campaign("v1.33.1", cluster()))
    labels = [(h.source_label, h.target_label) for h in plan.hops]
    assert labels == [
        ("1.30.4", "1.31 (latest patch)"),
        ("1.31 (latest patch)", "1.32 (latest patch)"),
        ("1.32 (latest patch)", "1.33.1"),
    ]


def test_pinned_intermediate_minor():
    plan = plan_campaign(
        campaign("v1.32.3", cluster(), pins=((MinorVersion(1, 31), v("1.31.4")),)),
        [v("1.31.10")],
    )
    assert [h.target.plain for h in plan.hops] == ["1.31.4", "1.32.3"]


def test_patch_upgrade_is_one_hop_and_may_skip_the_drain():
    policies = Policies(drain=DrainPolicy(skip_for_patch=True))
    plan = plan_campaign(campaign("v1.30.9", cluster(), policies=policies))
    (hop,) = plan.hops
    assert not hop.is_minor_upgrade
    assert all(not n.drain and Phase.DRAIN not in n.phases for n in hop.control_planes + hop.workers)
    assert all(Phase.UNCORDON not in n.phases for n in hop.workers)


def test_patch_upgrade_drains_by_default():
    (hop,) = plan_campaign(campaign("v1.30.9", cluster())).hops
    assert all(n.drain and Phase.DRAIN in n.phases for n in hop.workers)


def test_minor_upgrade_always_drains_even_when_patch_drains_are_skipped():
    policies = Policies(drain=DrainPolicy(skip_for_patch=True))
    (hop,) = plan_campaign(campaign("v1.31.1", cluster(), policies=policies)).hops
    assert all(Phase.DRAIN in n.phases for n in hop.control_planes + hop.workers)


def test_worker_in_an_older_minor_drains_on_a_patch_hop():
    nodes = cluster() + [NodeSpec("w-old", W, kubelet=v("1.29.8"))]
    policies = Policies(drain=DrainPolicy(skip_for_patch=True))
    (hop,) = plan_campaign(campaign("v1.30.9", nodes, policies=policies)).hops
    drains = {n.name: n.drain for n in hop.workers}
    assert drains == {"w-1": False, "w-2": False, "w-3": False, "w-old": True}


def test_downgrade_is_refused():
    plan = plan_campaign(campaign("v1.29.9", cluster()))
    assert [x.rule for x in plan.violations] == ["no-downgrade"]
    assert plan.hops == ()


def test_patch_downgrade_is_refused():
    plan = plan_campaign(campaign("v1.30.2", cluster()))
    assert [x.rule for x in plan.violations] == ["no-downgrade"]


def test_major_change_is_refused():
    plan = plan_campaign(campaign("v2.0.0", cluster()))
    assert [x.rule for x in plan.violations] == ["major-version-change"]


def test_kubelet_falling_out_of_skew_names_the_node():
    nodes = cluster(kubelet="1.30.4") + [NodeSpec("w-ancient", W, kubelet=v("1.27.3"))]
    plan = plan_campaign(campaign("v1.31.2", nodes))
    (violation,) = plan.violations
    assert (violation.rule, violation.node, violation.component) == ("kubelet-too-old", "w-ancient", "kubelet")
    assert "upgrade w-ancient's kubelet to 1.28 or later" in violation.message


def test_kubelet_at_three_minors_behind_is_allowed():
    nodes = cluster(kubelet="1.30.4") + [NodeSpec("w-old", W, kubelet=v("1.28.3"))]
    assert plan_campaign(campaign("v1.31.2", nodes)).violations == ()


def test_kubelet_older_than_1_25_gets_two_minors():
    nodes = cluster(kubelet="1.26.1") + [NodeSpec("w-old", W, kubelet=v("1.24.3"))]
    plan = plan_campaign(campaign("v1.27.1", nodes, cp_version="1.26.1"))
    assert [x.rule for x in plan.violations] == ["kubelet-too-old"]
    nodes = cluster(kubelet="1.25.1") + [NodeSpec("w-old", W, kubelet=v("1.24.3"))]
    assert plan_campaign(campaign("v1.26.1", nodes, cp_version="1.25.1")).violations == ()


def test_kubelet_newer_than_the_apiserver_is_a_violation():
    nodes = cluster() + [NodeSpec("w-new", W, kubelet=v("1.31.0"))]
    plan = plan_campaign(campaign("v1.31.2", nodes))
    assert [(x.rule, x.node) for x in plan.violations] == [("kubelet-newer-than-apiserver", "w-new")]


def test_kubelet_newer_than_the_target_is_a_downgrade():
    nodes = cluster() + [NodeSpec("w-new", W, kubelet=v("1.30.9"))]
    plan = plan_campaign(campaign("v1.30.6", nodes))
    assert [(x.rule, x.node) for x in plan.violations] == [("no-downgrade", "w-new")]


def test_apiservers_more_than_one_minor_apart_are_refused():
    nodes = [
        NodeSpec("cp-1", CP, kubelet=v("1.29.1"), control_plane=v("1.29.1")),
        NodeSpec("cp-2", CP, kubelet=v("1.29.1"), control_plane=v("1.31.0")),
    ]
    plan = plan_campaign(campaign("v1.31.2", nodes))
    assert "apiserver-skew" in [x.rule for x in plan.violations]


def test_partially_upgraded_cluster_plans_only_the_remaining_work():
    nodes = [
        NodeSpec("cp-1", CP, kubelet=v("1.31.2"), control_plane=v("1.31.2")),
        NodeSpec("cp-2", CP, kubelet=v("1.30.4"), control_plane=v("1.31.2")),
        NodeSpec("cp-3", CP, kubelet=v("1.30.4"), control_plane=v("1.30.4")),
        NodeSpec("w-1", W, kubelet=v("1.31.2")),
        NodeSpec("w-2", W, kubelet=v("1.30.4")),
    ]
    plan = plan_campaign(campaign("v1.31.2", nodes))
    assert not plan.violations
    (hop,) = plan.hops
    steps = {n.name: n.kubeadm_step for n in hop.control_planes}
    assert steps == {"cp-2": KubeadmStep.NONE, "cp-3": KubeadmStep.NODE}
    assert hop.first_control_plane is None  # apply already ran on cp-1
    assert Phase.INSTALL_KUBELET in hop.control_planes[0].phases
    assert Phase.KUBEADM_NODE not in hop.control_planes[0].phases
    assert [n.name for n in hop.workers] == ["w-2"]
    assert set(hop.already_at_target) == {"cp-1", "w-1"}


def test_interrupted_hop_to_latest_patch_follows_the_version_apply_chose():
    nodes = [
        NodeSpec("cp-1", CP, kubelet=v("1.30.4"), control_plane=v("1.31.3")),
        NodeSpec("cp-2", CP, kubelet=v("1.30.4"), control_plane=v("1.30.4")),
        NodeSpec("w-1", W, kubelet=v("1.30.4")),
    ]
    (hop,) = plan_campaign(campaign("1.31", nodes), [v("1.31.5")]).hops
    assert hop.target.plain == "1.31.3"


def test_cluster_already_at_target_has_nothing_to_do():
    plan = plan_campaign(campaign("v1.30.4", cluster()))
    assert plan.hops == () and plan.violations == ()
    assert "nothing to do" in plan.notes[0]


def test_reapply_reruns_apply_on_the_first_control_plane_only_when_asked():
    (hop,) = plan_campaign(campaign("v1.30.4", cluster(), policies=Policies(reapply=True))).hops
    (first,) = hop.control_planes
    assert (first.name, first.kubeadm_step) == ("cp-1", KubeadmStep.APPLY)
    assert first.phases == (Phase.SET_REPOSITORY, Phase.INSTALL_KUBEADM, Phase.KUBEADM_PLAN,
                            Phase.ETCD_SNAPSHOT, Phase.KUBEADM_APPLY, Phase.WAIT_READY)
    assert not first.drain and hop.workers == ()
    assert set(hop.already_at_target) == {"cp-2", "cp-3", "w-1", "w-2", "w-3"}


def test_reapply_never_adds_a_second_apply_to_a_real_upgrade():
    # One control plane not there yet: the hop's apply already happened; the rest use `node`.
    nodes = cluster()
    nodes[0] = NodeSpec("cp-1", CP, kubelet=v("1.30.4"), control_plane=v("1.31.2"))
    plan = plan_campaign(campaign("v1.31.2", nodes, cp_version="1.30.4", policies=Policies(reapply=True)))
    (hop,) = plan.hops
    assert [n.kubeadm_step for n in hop.control_planes if n.kubeadm_step is KubeadmStep.APPLY] == []
    fresh = plan_campaign(campaign("v1.31.2", cluster(), policies=Policies(reapply=True)))
    assert sum(n.kubeadm_step is KubeadmStep.APPLY for n in fresh.hops[0].control_planes) == 1


def test_workers_batches_follow_max_unavailable():
    policies = Policies(max_unavailable=MaxUnavailable(percent=40), worker_strategy=WorkerStrategy.BATCHES)
    (hop,) = plan_campaign(campaign("v1.31.2", cluster(workers=5), policies=policies)).hops
    assert hop.schedule.limit == 2
    assert hop.schedule.batches == (("w-1", "w-2"), ("w-3", "w-4"), ("w-5",))


def test_graceful_apiserver_stop_comes_before_apply_only_with_etcd_upgrade():
    policies = Policies(stop_apiserver_before_etcd_upgrade=True)
    (hop,) = plan_campaign(campaign("v1.31.2", cluster(), policies=policies)).hops
    phases = list(hop.control_planes[0].phases)
    assert phases.index(Phase.STOP_APISERVER) == phases.index(Phase.KUBEADM_APPLY) - 1
    policies = Policies(stop_apiserver_before_etcd_upgrade=True, etcd_upgrade=False)
    (hop,) = plan_campaign(campaign("v1.31.2", cluster(), policies=policies)).hops
    assert Phase.STOP_APISERVER not in hop.control_planes[0].phases


def test_packages_are_downloaded_before_the_drain():
    (hop,) = plan_campaign(campaign("v1.31.2", cluster())).hops
    for node in hop.workers:
        phases = list(node.phases)
        assert phases.index(Phase.DOWNLOAD_PACKAGES) < phases.index(Phase.DRAIN) < phases.index(Phase.INSTALL_KUBELET)


def test_missing_control_plane_version_is_invalid_input():
    with pytest.raises(InvalidInput, match="control_plane_version: missing"):
        plan_campaign(campaign("v1.31.2", cluster(), cp_version=None))


def test_missing_nodes_is_invalid_input():
    bare = Campaign(cluster="t", target=v("1.31.2"), control_plane_version=v("1.30.4"))
    with pytest.raises(InvalidInput, match="nodes: missing"):
        plan_campaign(bare)


# -- properties -----------------------------------------------------------------------------

versions_1_x = st.builds(lambda minor, patch: KubeVersion(1, minor, patch), st.integers(24, 34), st.integers(0, 15))


@st.composite
def clusters(draw):
    current = draw(versions_1_x)
    cps = draw(st.integers(1, 5))
    workers = draw(st.integers(0, 8))
    kubelet = st.builds(
        lambda back, patch: KubeVersion(1, max(20, current.minor - back), patch),
        st.integers(0, 4),
        st.integers(0, 9),
    )
    nodes = [NodeSpec(f"cp-{i}", CP, kubelet=draw(kubelet)) for i in range(cps)]
    nodes += [NodeSpec(f"w-{i}", W, kubelet=draw(kubelet)) for i in range(workers)]
    target_minor = current.minor + draw(st.integers(-1, 4))
    exact = draw(st.booleans())
    target = KubeVersion(1, target_minor, draw(st.integers(0, 15))) if exact else MinorVersion(1, target_minor)
    limit = draw(st.integers(1, 5))
    strategy = draw(st.sampled_from(list(WorkerStrategy)))
    return Campaign(
        cluster="prop",
        target=target,
        nodes=tuple(nodes),
        control_plane_version=current,
        policies=Policies(max_unavailable=MaxUnavailable(count=limit), worker_strategy=strategy),
    )


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_plans_never_skip_a_minor_nor_downgrade(camp):
    plan = plan_campaign(camp)
    if plan.refused:
        return
    previous = camp.control_plane_version
    for hop in plan.hops:
        step = previous.minor_version.minors_until(hop.target.minor_version)
        assert step in (0, 1), "a hop may move at most one minor"
        assert hop.source.minor_version == previous.minor_version
        if isinstance(hop.target, KubeVersion):
            assert hop.target >= previous, "never downgrade"
        previous = hop.target if isinstance(hop.target, KubeVersion) else KubeVersion(1, hop.target.minor, 0)
    if plan.hops:
        assert plan.hops[-1].target.minor_version == camp.target.minor_version


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_workers_never_come_before_every_control_plane_of_their_hop(camp):
    plan = plan_campaign(camp)
    order = plan.execution_order()
    for index, hop in enumerate(plan.hops):
        roles = [node.role for hop_index, node in order if hop_index == index]
        if W in roles:
            assert CP not in roles[roles.index(W):]
        applies = [n for n in hop.control_planes if n.kubeadm_step is KubeadmStep.APPLY]
        assert len(applies) <= 1
        if applies:
            assert hop.control_planes[0] is applies[0]
        assert hop.schedule.limit <= max(1, len(hop.workers))
        for batch in hop.schedule.batches:
            assert len(batch) <= hop.schedule.limit


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_a_control_plane_kubeadm_upgrades_is_waited_for_before_the_chain_goes_on(camp):
    """kubeadm's exit 0 does not promise the components run the version (a re-run after a
    kubeadm killed half-way skips a manifest already written): every control plane with a
    kubeadm step ends in the readiness wait that checks them, with or without its kubelet."""
    for hop in plan_campaign(camp).hops:
        for node in hop.control_planes:
            if node.kubeadm_step is not KubeadmStep.NONE:
                kubeadm = node.phases.index(
                    Phase.KUBEADM_APPLY if node.kubeadm_step is KubeadmStep.APPLY else Phase.KUBEADM_NODE)
                assert Phase.WAIT_READY in node.phases[kubeadm:], (node.name, node.phases)


def test_a_control_plane_whose_kubelet_is_already_at_the_target_is_still_waited_for():
    nodes = [NodeSpec("cp-1", CP, kubelet=v("1.31.2")), NodeSpec("cp-2", CP, kubelet=v("1.30.4")),
             NodeSpec("w-1", W, kubelet=v("1.30.4"))]
    (hop,) = plan_campaign(campaign("v1.31.2", nodes)).hops
    first = hop.control_planes[0]
    assert (first.name, first.kubeadm_step) == ("cp-1", KubeadmStep.APPLY)
    assert first.phases[-2:] == (Phase.KUBEADM_APPLY, Phase.WAIT_READY) and not first.drain
    assert Phase.DRAIN not in first.phases and Phase.UNCORDON not in first.phases


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_what_a_worker_may_run_before_the_control_planes_leads_its_plan_and_changes_nothing_it_runs(camp):
    """The dispatcher sends a worker's leading early phases while the control planes upgrade:
    they must come before every other phase of its plan, and none may install, restart or take
    the node out of service."""
    early = [spec.phase for spec in PHASES if spec.before_control_planes]
    for spec in map(SPECS.__getitem__, early):
        assert spec.runs is Runs.HOST and not spec.installs_packages and not spec.takes_out_of_service
        assert spec.phase not in (Phase.KUBEADM_NODE, Phase.KUBEADM_APPLY, Phase.RESTART_KUBELET)
    plan = plan_campaign(camp)
    for hop in plan.hops:
        for node in hop.workers:
            leading = list(itertools.takewhile(lambda phase: phase in early, node.phases))
            assert [p for p in node.phases if p in early] == leading


def test_an_exact_target_missing_from_the_listing_of_its_minor_is_refused():
    listing = [v("1.31.0"), v("1.31.1"), v("1.31.2")]
    plan = plan_campaign(campaign("v1.31.5", cluster()), listing)
    (violation,) = plan.violations
    assert violation.rule == "not-in-listing"
    assert "1.31.5 is not in the package listing (it has 1.31.0 to 1.31.2)" in violation.message
    assert not plan_campaign(campaign("v1.31.2", cluster()), listing).violations
    # A listing of another minor's repository says nothing about this one.
    assert not plan_campaign(campaign("v1.31.5", cluster()), [v("1.30.9")]).violations


def test_pools_select_workers_by_label_and_resolve_their_own_limits():
    from kubeupgrade.model.campaign import Pool

    nodes = cluster(workers=0) + [
        NodeSpec(f"w-{i}", W, kubelet=v("1.30.4"), labels=(("pool", "a" if i <= 4 else "b"),))
        for i in range(1, 7)] + [NodeSpec("w-free", W, kubelet=v("1.30.4"))]
    pools = (Pool("a", "pool=a", MaxUnavailable(percent=50)), Pool("b", "pool in (b)", MaxUnavailable(count=5)),
             Pool("gpu", "gpu", MaxUnavailable(count=1)))
    plan = plan_campaign(campaign("v1.31.2", nodes, policies=Policies(
        max_unavailable=MaxUnavailable(count=3), pools=pools)))
    assert not plan.violations
    (hop,) = plan.hops
    assert [(p.name, p.limit, p.workers) for p in hop.schedule.pools] == [
        ("a", 2, ("w-1", "w-2", "w-3", "w-4")), ("b", 2, ("w-5", "w-6")), ("gpu", 0, ())]
    assert any("pool 'gpu' (gpu) selects no worker" in note for note in plan.notes)


def test_a_worker_two_pools_select_is_refused():
    from kubeupgrade.model.campaign import Pool

    nodes = cluster(workers=0) + [NodeSpec("w-1", W, kubelet=v("1.30.4"), labels=(("pool", "a"), ("zone", "x")))]
    plan = plan_campaign(campaign("v1.31.2", nodes, policies=Policies(pools=(
        Pool("a", "pool=a", MaxUnavailable(count=1)), Pool("x", "zone=x", MaxUnavailable(count=1))))))
    assert [(v.rule, v.node) for v in plan.violations] == [("pool-overlap", "w-1")]
    assert "worker w-1 is in pools 'a' and 'x'" in plan.violations[0].message


def test_scope_only_control_planes_leaves_every_worker_and_checks_their_skew():
    from kubeupgrade.model.campaign import Scope

    plan = plan_campaign(replace_scope(campaign("v1.31.2", cluster()), Scope(only_control_planes=True)))
    assert not plan.violations
    (hop,) = plan.hops
    assert [n.name for n in hop.control_planes] == ["cp-1", "cp-2", "cp-3"] and hop.workers == ()
    assert hop.out_of_scope == ("w-1", "w-2", "w-3")
    # Three minors ahead, workers left at 1.30 would be 4 minors behind the control plane at 1.34.
    far = plan_campaign(replace_scope(campaign("v1.34.1", cluster()), Scope(only_control_planes=True)), [])
    assert {v.rule for v in far.violations} == {"kubelet-too-old"}
    assert "out of this campaign's scope" in far.violations[0].message


def replace_scope(c, scope):
    from dataclasses import replace

    return replace(c, scope=scope)


def test_scope_by_name_or_selector_picks_workers_and_control_planes_still_go_first():
    from kubeupgrade.model.campaign import Scope

    nodes = cluster(workers=0) + [NodeSpec(f"w-{i}", W, kubelet=v("1.30.4"),
                                           labels=(("pool", "a" if i < 3 else "b"),)) for i in range(1, 5)]
    by_name = plan_campaign(replace_scope(campaign("v1.31.2", nodes), Scope(workers=("w-4", "w-1"))))
    (hop,) = by_name.hops
    assert [n.name for n in hop.workers] == ["w-1", "w-4"] and len(hop.control_planes) == 3
    assert hop.out_of_scope == ("w-2", "w-3")
    by_label = plan_campaign(replace_scope(campaign("v1.31.2", nodes), Scope(selector="pool=b")))
    assert [n.name for n in by_label.hops[0].workers] == ["w-3", "w-4"]
    with pytest.raises(InvalidInput, match="scope.workers: not in the cluster: w-9"):
        plan_campaign(replace_scope(campaign("v1.31.2", nodes), Scope(workers=("w-9",))))
    with pytest.raises(InvalidInput, match="cp-1 is a control plane"):
        plan_campaign(replace_scope(campaign("v1.31.2", nodes), Scope(workers=("cp-1",))))


def test_an_upgrade_configuration_is_refused_for_a_hop_whose_kubeadm_reads_none():
    policies = Policies(upgrade_configuration="/etc/kubernetes/upgrade.yaml")
    early = plan_campaign(campaign("v1.31.2", cluster("1.29.10"), cp_version="1.29.10", policies=policies))
    assert [v.rule for v in early.violations] == ["upgrade-configuration-version"]
    assert "the hop to 1.30" in early.violations[0].message and "kubeadm v1.30" in early.violations[0].message
    assert not plan_campaign(campaign("v1.31.2", cluster(), policies=policies)).violations
    assert not plan_campaign(campaign("v1.30.9", cluster(), policies=Policies())).violations


@pytest.mark.parametrize("target", ["v1.31.2", "1.31"])
def test_a_node_at_the_target_left_cordoned_by_another_campaign_is_taken_over_and_released(target):
    # A campaign lost with the broker's data after w-2's kubelet restarted, before its uncordon:
    # at the target already, skipped, it stayed cordoned for good, and filled a limit of 1 so
    # that the campaign submitted again waited for ever for a slot.
    nodes = [NodeSpec("cp-1", CP, kubelet=v("1.31.2")), NodeSpec("w-1", W, kubelet=v("1.31.2")),
             NodeSpec("w-2", W, kubelet=v("1.31.2"), left_cordoned_by="prod-20261207-003006-a5583c"),
             NodeSpec("w-3", W, kubelet=v("1.30.4"))]
    plan = plan_campaign(campaign(target, nodes, cp_version="1.31.2"))
    assert not plan.violations
    (hop,) = plan.hops
    plans = {n.name: n for n in hop.workers}
    assert {Phase.DRAIN, Phase.UNCORDON} <= set(plans["w-2"].phases) and plans["w-2"].drain
    assert Phase.INSTALL_KUBELET in plans["w-3"].phases
    assert any("w-2 (campaign prod-20261207-003006-a5583c)" in note for note in plan.notes)
    if target == "1.31":  # the latest patch: resolved on the hosts, where the dispatcher skips
        return            # the nodes already there, but not one another campaign left cordoned
    assert plans["w-2"].phases == (Phase.DRAIN, Phase.WAIT_READY, Phase.UNCORDON) and "w-1" not in plans
    # Every node at the target: still a hop, for that node alone.
    nodes[3] = NodeSpec("w-3", W, kubelet=v("1.31.2"))
    (hop,) = plan_campaign(campaign(target, nodes, cp_version="1.31.2")).hops
    assert [n.name for n in hop.workers] == ["w-2"] and not hop.control_planes


def test_only_the_cordons_of_campaigns_the_broker_lost_are_kept_for_the_planner():
    from kubeupgrade.planning.live import with_live_state

    live = [NodeSpec("cp-1", CP, kubelet=v("1.31.2")),
            NodeSpec("w-1", W, kubelet=v("1.31.2"), left_cordoned_by="lost-1"),
            NodeSpec("w-2", W, kubelet=v("1.31.2"), left_cordoned_by="unknown-1")]
    for nodes in (None, tuple(NodeSpec(n.name, n.role) for n in live)):
        merged = with_live_state(campaign("v1.31.2", nodes or (), cp_version="1.31.2") if nodes else
                                 Campaign(cluster="test", target=v("1.31.2"), nodes=None), live, v("1.31.2"),
                                 taken_over={"lost-1"})
        assert {n.name: n.left_cordoned_by for n in merged.nodes} == {"cp-1": None, "w-1": "lost-1", "w-2": None}
