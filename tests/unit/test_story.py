"""The node milestones the controller turns into Kubernetes events, from the record alone:
each step once, in order, even when one dispatcher tick saw several."""

from kubeupgrade.workflow.record import new_phase
from kubeupgrade.workflow.story import milestones, to_tell

PHASES = ["prepare-host", "set-repository", "kubeadm-upgrade-node", "drain", "install-kubelet",
          "restart-kubelet", "wait-ready", "uncordon"]
STORY = ["UpgradeStarted", "Drained", "KubeletUpgraded", "UpgradeSucceeded"]


def entry(done, state="running", failed=False, outcome="done"):
    phases = [new_phase(p) for p in PHASES]
    for phase in phases[:done]:
        phase.update(state="succeeded", started=1.0, ended=2.0, outcome=outcome, detail=f"{phase['phase']} ok")
    if failed:
        phases[done].update(state="failed", started=3.0, error="kubelet did not start")
    return {"node": "w-1", "role": "worker", "state": "failed" if failed else state, "attempt": 1,
            "phases": phases}


def reasons(reached):
    return [m.reason for m in reached]


def test_each_step_of_a_node_is_one_milestone_in_order():
    assert milestones(entry(1), "1.31.2") == []  # only the hop-wide prepare-host: not started
    assert reasons(milestones(entry(2), "1.31.2")) == STORY[:1]
    assert milestones(entry(4), "1.31.2")[-1].message == "drain ok"
    assert milestones(entry(7), "1.31.2")[-1].message == "kubelet v1.31.2 Ready"
    assert reasons(milestones(entry(8, state="succeeded"), "1.31.2")) == STORY
    failed = milestones(entry(5, failed=True), "1.31.2")[-1]
    assert (failed.reason, failed.phase, failed.warning) == ("UpgradeFailed", "restart-kubelet", True)
    assert failed.message == "restart-kubelet failed: kubelet did not start"
    assert milestones(entry(8, state="succeeded", outcome="already-done"), "1.31.2") == []


def test_steps_a_tick_missed_are_told_and_nothing_twice():
    told = ("UpgradeStarted",)
    done = milestones(entry(8, state="succeeded"), "1.31.2")
    assert reasons(to_tell(told, done)) == STORY[1:]  # drained, ready and done in one tick
    assert to_tell(tuple(STORY), done) == []
    failed = milestones(entry(5, failed=True), "1.31.2")
    assert reasons(to_tell(("UpgradeStarted", "Drained"), failed)) == ["UpgradeFailed"]
    retried = milestones(entry(7), "1.31.2")  # a retry got it Ready after the failure
    assert reasons(to_tell(tuple(reasons(failed)), retried)) == ["KubeletUpgraded"]
