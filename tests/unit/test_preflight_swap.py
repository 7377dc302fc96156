"""Preflight's judgement of swap: a node is refused only where its upgraded kubelet would not
start. No I/O: the cluster's kubelet configuration is an answer given to it."""

from kubeupgrade.workflow.controller_tasks import swap_problems


def asked(answer):
    calls = []

    def cluster_refuses():
        calls.append(1)
        return answer
    return cluster_refuses, calls


def test_the_clusters_kubelet_configuration_decides_where_a_node_sets_no_flag():
    facts = {"w1": {"swap_on": True, "fail_swap_on_flag": None}, "w2": {"swap_on": False}}
    refuses, _ = asked(True)
    [problem] = swap_problems(facts, refuses)
    assert problem.startswith("swap is on and kube-system/kubelet-config keeps failSwapOn true")
    assert problem.endswith(": w1")
    allows, _ = asked(False)
    assert swap_problems(facts, allows) == []


def test_a_nodes_own_flag_decides_for_it_whatever_the_cluster_says():
    facts = {"w1": {"swap_on": True, "fail_swap_on_flag": False},
             "w2": {"swap_on": True, "fail_swap_on_flag": True},
             "w3": {"swap_on": True}}  # facts from an agent that did not read the flag
    refuses, _ = asked(False)
    assert swap_problems(facts, refuses) == [
        "swap is on and the kubelet is started with --fail-swap-on=true, so it would not start "
        "(turn swap off, or set the flag to false): w2"]
    refuses, _ = asked(True)
    problems = swap_problems(facts, refuses)
    assert len(problems) == 2 and problems[1].endswith(": w3") and "w1" not in " ".join(problems)


def test_the_cluster_is_asked_only_when_a_node_needs_its_answer():
    refuses, calls = asked(True)
    assert swap_problems({"w1": {"swap_on": False}, "w2": {"swap_on": True, "fail_swap_on_flag": False}},
                         refuses) == []
    assert calls == []


def test_the_upgrade_configuration_is_judged_for_the_run_each_node_will_make():
    from kubeupgrade.workflow.controller_tasks import upgrade_configuration_problems

    path = "/etc/kubernetes/upgrade.yaml"
    judged = {"apply": ["apply problem"], "apply_forced": ["forced problem"], "node": ["node problem"]}
    facts = {"cp-1": {"upgrade_configuration": judged}, "cp-2": {"upgrade_configuration": judged},
             "w1": {"upgrade_configuration": None}, "w2": {}}  # w2: an agent from before the check
    assert upgrade_configuration_problems(facts, path, "cp-1", reapplying=False) == [
        "cp-1: apply problem", "cp-2: node problem"]
    assert upgrade_configuration_problems(facts, path, "cp-1", reapplying=True)[0] == "cp-1: forced problem"
    facts["cp-1"] = {"upgrade_configuration": None}
    assert upgrade_configuration_problems(facts, path, "cp-1", reapplying=False)[0] == (
        "cp-1 has no /etc/kubernetes/upgrade.yaml (policies.upgrade_configuration); the first control "
        "plane's `kubeadm upgrade apply` reads it")
    facts["cp-1"] = {"upgrade_configuration": ["damaged"]}
    assert "cp-1: its agent's judgement of /etc/kubernetes/upgrade.yaml in the record is damaged (list)" in \
        upgrade_configuration_problems(facts, path, "cp-1", reapplying=False)[0]
