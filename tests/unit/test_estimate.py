"""The plan's duration estimate follows its stated formula."""

from kubeupgrade.model.campaign import MaxUnavailable, Policies
from kubeupgrade.model.phases import SPECS
from kubeupgrade.model.plan import Phase
from kubeupgrade.planning.estimate import estimate
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
