"""The plan's duration estimate follows its stated formula."""

from kubeupgrade.model.campaign import MaxUnavailable, Policies
from kubeupgrade.model.phases import SPECS
from kubeupgrade.model.plan import Phase
from kubeupgrade.planning.estimate import DEFAULTS, estimate
from kubeupgrade.planning.planner import plan_campaign
from tests.unit.test_planner import campaign, cluster


def seconds(*phases):
    return sum(SPECS[p].typical_seconds for p in phases)


def test_a_wider_window_saves_whole_rounds_of_outage():
    one = plan_campaign(campaign("v1.31.2", cluster(workers=4), policies=Policies()))
    two = plan_campaign(campaign("v1.31.2", cluster(workers=4),
                                 policies=Policies(max_unavailable=MaxUnavailable(count=2))))
    outage = seconds(Phase.DRAIN, Phase.INSTALL_KUBELET, Phase.RESTART_KUBELET, Phase.WAIT_READY,
                     Phase.UNCORDON)
    assert estimate(one).total_seconds - estimate(two).total_seconds == 2 * outage


def test_the_control_planes_add_up_one_after_another_and_hops_add_up():
    plan = plan_campaign(campaign("v1.31.2", cluster(cps=3, workers=0)))
    (hop,) = plan.hops
    expected = seconds(Phase.PREPARE_HOST, Phase.PREFLIGHT, Phase.VERIFY) + sum(
        seconds(*node.phases) for node in hop.control_planes)
    assert estimate(plan).total_seconds == expected
    two_hops = plan_campaign(campaign("v1.32.3", cluster(cps=3, workers=2)), [])
    guess = estimate(two_hops)
    assert len(guess.per_hop) == 2 and guess.total_seconds == sum(guess.per_hop)


def test_recorded_medians_replace_the_defaults_only_for_phases_with_enough_runs():
    from kubeupgrade.planning.estimate import MIN_SAMPLES, Durations

    plan = plan_campaign(campaign("v1.31.2", cluster(workers=3)))
    durations = Durations.from_samples({Phase.DRAIN: [100.0, 300.0, 200.0],
                                        Phase.WAIT_READY: [5.0] * (MIN_SAMPLES - 1)}, campaigns=2)
    assert durations.of(Phase.DRAIN) == 200.0  # the median, not the mean nor the last
    assert durations.of(Phase.WAIT_READY) == SPECS[Phase.WAIT_READY].typical_seconds
    assert durations.runs == 3 and "median of 3 phase runs recorded by 2" in durations.source()
    hop = plan.hops[0]
    drained = sum(1 for node in hop.control_planes + hop.workers if Phase.DRAIN in node.phases)
    default_drain = SPECS[Phase.DRAIN].typical_seconds
    # control planes one after another, and with a limit of 1 each worker's outage is a round
    # of its own: the drain's difference counts once per node
    assert (estimate(plan, durations).total_seconds - estimate(plan).total_seconds
            == drained * (200 - default_drain))
    assert estimate(plan).source == "from typical phase durations"


def test_a_rehearsal_estimates_each_stage_and_where_the_run_lands_in_the_windows():
    from datetime import UTC, datetime, time

    from kubeupgrade.model.campaign import Window
    from kubeupgrade.rehearsal import schedule_estimate

    windows = (Window(frozenset({5}), time(2, 0), time(6, 0), "UTC"),)
    chosen = campaign("v1.31.2", cluster(cps=2, workers=4),
                      policies=Policies(max_unavailable=MaxUnavailable(count=2), windows=windows))
    plan = plan_campaign(chosen)
    friday = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    stages, landed = schedule_estimate(plan, chosen, DEFAULTS, friday)
    assert [s["stage"] for s in stages] == [
        "prepare and preflight", "control plane cp-1", "control plane cp-2", "workers: kubeadm",
        "workers: round 1 of 2", "workers: round 2 of 2", "verify"]
    assert sum(s["seconds"] for s in stages) == estimate(plan).total_seconds
    assert [s["windowed"] for s in stages] == [False, True, True, False, True, True, False]
    assert landed["openings"] == 1 and landed["finished"].startswith("2026-11-28T0")
    assert 0 < landed["occupancy"] < 1 and not landed["stalled"]
    assert schedule_estimate(plan, campaign("v1.31.2", cluster(cps=2, workers=4)), DEFAULTS, friday)[1] is None
