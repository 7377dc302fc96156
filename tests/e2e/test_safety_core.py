"""The safety core under faults the engine's own tests did not name: a frozen agent whose late
result arrives after the campaign failed, an agent killed while a long root command runs on, a
damaged record beside a live campaign. Invariants checked after each."""

import os
import signal
import time

import pytest

from bench.broker_sweep import Placement, run_placement
from kubeupgrade.api import submit
from kubeupgrade.workflow.record import CampaignStore
from tests.e2e.test_faults import (
    assert_safe,
    converges,
    finish,
    kill_agent_during,
    phase_record,
    phase_running,
    retry_succeeds,
)
from tests.helpers import wait_for, write_campaign


def signal_group(stack, name, sig):
    os.killpg(stack.processes[name].pid, sig)


def test_a_frozen_agent_resumed_late_cannot_flip_a_failed_campaign(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="apt-get install -y -q kubectl", seconds=6.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1, agent_timeout=5),
                    broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=120)
    # Frozen during the 6 s install, as meant: once the install itself runs on the host. Frozen
    # earlier, between a command's fence and its start, the agent would run that one command
    # when woken: the window the fence documents (phase.Job). Waiting only for the unhold before
    # it to end (a command is logged when it ends) froze the agent in that window on a slow
    # machine (fresh-clone CI of d134cfd): the install ran after the wake.
    from kubeupgrade.sandbox.processes import host_commands

    wait_for(lambda: any(argv.startswith("apt-get install -y -q kubectl")
                         for argv in host_commands(box.paths.root, "worker-1").values()), timeout=60)
    signal_group(stack, "agent-worker-1", signal.SIGSTOP)  # frozen, not dead: no ping, no inspect
    try:
        state, error = finish(handle, timeout=120)
        assert state == "failed", error
        assert error["node"] == "worker-1" and "did not answer" in error["message"]
    finally:
        signal_group(stack, "agent-worker-1", signal.SIGCONT)
        woken = time.time()
    # The resumed agent collects the command it ran; its attempt is stale now, so it changes
    # nothing more on the host (it may still query it) and no record.
    time.sleep(8.0)
    late = [" ".join(c["argv"]) for c in box.command_log("worker-1") if c["start"] >= woken]
    assert [c for c in late if not c.startswith(("dpkg-query ", "apt-cache ", "systemctl is-active"))] == [], late
    assert handle.state() == "failed"
    assert phase_record(handle, "worker-1", "install-kubelet")["state"] == "failed"
    assert handle.status()["entries"][0]["worker-1"]["state"] == "failed"
    retry_succeeds(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_a_controller_frozen_mid_drain_is_replaced_and_wakes_to_change_nothing(make_stack, tmp_path):
    """The controller stops (SIGSTOP) while a PDB holds a drain; a second controller takes over,
    sends the silent drain again as a new attempt, and the campaign succeeds. The first then
    wakes, with the deliveries it held: they must not cordon, evict or uncordon anything."""
    from kubernetes import client, config

    stack = make_stack(control_planes=1, workers=3, version="1.30.4", visibility_timeout=4)
    box = stack.sandbox
    budgets = client.PolicyV1Api(config.new_client_from_config(config_file=str(box.kubeconfig)))
    budgets.patch_namespaced_pod_disruption_budget("api-pdb", "shop", {"spec": {"minAvailable": 3}})
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1,
                                   drain={"delete_emptydir_data": True, "timeout": 120}), broker=stack.broker)
    workers = ("worker-1", "worker-2", "worker-3")
    wait_for(lambda: any(phase_running(handle, n, "drain")() for n in workers), timeout=120)
    stack.processes["frozen"] = stack.processes.pop("controller")  # stopped with the stack
    signal_group(stack, "frozen", signal.SIGSTOP)
    try:
        stack.start_controller()
        budgets.patch_namespaced_pod_disruption_budget("api-pdb", "shop", {"spec": {"minAvailable": 2}})
        state, error = finish(handle, timeout=150)
        assert state == "succeeded", error
        # Taken over either as a new attempt (its task stopped beating) or, past the visibility
        # timeout, by the broker handing the frozen drain's own message to the new controller
        # (a drain waiting in its task holds its message unacknowledged meanwhile).
        resent = any("stopped beating" in e["message"] for e in handle.status()["events"])
        redelivered = any(phase_record(handle, n, "drain")["attempts"] > 1 for n in workers)
        assert resent or redelivered, handle.status()["events"]
    finally:
        signal_group(stack, "frozen", signal.SIGCONT)
    time.sleep(6.0)  # what the woken controller held is delivered and done by now
    assert handle.state() == "succeeded"
    assert_safe(box, 1)  # nothing left cordoned, the window held throughout


def test_a_controller_frozen_while_preflight_reads_the_cluster_is_replaced_and_wakes_to_record_nothing(
        make_stack, tmp_path):
    """The API server answers node lists after 2 s (a slow etcd), so the hop's preflight is still
    reading the cluster when the controller stops (SIGSTOP). A second controller takes over,
    sends the silent preflight again, and the campaign succeeds. The first, woken, finds that
    its preflight is no longer its own and records nothing of what it read."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    box = stack.sandbox
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(lambda: handle.status()["entries"], timeout=120)  # accepted: the cluster discovered
    box.add_fault("api-slow", command="GET /api/v1/nodes", seconds=2.0, count=40)
    wait_for(phase_running(handle, "@cluster", "preflight"), timeout=120)
    stack.processes["frozen"] = stack.processes.pop("controller")  # stopped with the stack
    signal_group(stack, "frozen", signal.SIGSTOP)
    try:
        stack.start_controller()
        wait_for(lambda: phase_record(handle, "@cluster", "preflight").get("resends"), timeout=120)
        box.clear_faults()
        state, error = finish(handle, timeout=240)
        assert state == "succeeded", error
        assert any("@cluster: its running task stopped beating" in e["message"] for e in handle.status()["events"])
    finally:
        signal_group(stack, "frozen", signal.SIGCONT)
    # The woken task ends at its fence: the findings of attempt 2 stay, the campaign succeeded.
    findings = handle.status()["hops"][0].get("drain_findings")
    wait_for(lambda: any("@cluster: preflight of attempt 1" in e["message"] and "no longer owns" in e["message"]
                         for e in handle.status()["events"]), timeout=60)
    assert handle.status()["hops"][0].get("drain_findings") == findings
    assert handle.state() == "succeeded"
    assert_safe(box, 1)


def test_an_agent_killed_while_its_root_command_runs_on_never_runs_it_twice_at_once(make_stack, tmp_path):
    # The command outlives the agent by far more than the redelivery delay.
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt",
                       visibility_timeout=2)
    box = stack.sandbox
    box.add_fault("hang", node="worker-2", command="apt-get install -y -q kubectl", seconds=8.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    kill_agent_during(stack, handle, "worker-2", "install-kubelet", restart_after=0.0)
    converges(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)  # includes: no two mutating commands overlapped on any host


def test_a_damaged_record_does_not_stop_another_campaign(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    store = CampaignStore.from_url(stack.broker)
    damaged = store.create("elsewhere", {"cluster": "elsewhere", "target": "1.31"}, "x.yaml")
    store.redis.set(f"ku:c:{damaged}", "{truncated")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle)
    assert state == "succeeded", error
    assert damaged not in store.active_ids()  # isolated: the dispatcher no longer looks at it
    assert_safe(stack.sandbox, 1)


def test_a_damaged_kubeadm_config_refuses_the_campaign_naming_it_and_nothing_runs(make_stack, tmp_path):
    from kubernetes import client, config

    from kubeupgrade.errors import PolicyRefused

    stack = make_stack(control_planes=1, workers=1, version="1.30.4", os_family="apt")
    box = stack.sandbox
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(box.kubeconfig)))
    # cut short where `kubernetesVersion` was: what a hand edit or a bad restore leaves
    core.patch_namespaced_config_map("kubeadm-config", "kube-system",
                                     {"data": {"ClusterConfiguration": "kind: ClusterConfiguration\nkubernetesVersion: [v1.30"}})
    with pytest.raises(PolicyRefused, match="kube-system/kubeadm-config: data.ClusterConfiguration is not YAML"):
        submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    assert nothing_ran(box)
    assert CampaignStore.from_url(stack.broker).active_ids() == []  # refused: the cluster is free again


def test_an_agent_started_for_another_node_runs_nothing_and_is_named_then_retry_finishes(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    stack.kill("agent-worker-2")
    # worker-1's host with a second agent that says it serves worker-2: a swapped inventory line
    stack.start_agent("worker-2", host="worker-1")
    stack.wait_for_workers(["agent@worker-2"])
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    state, error = finish(handle)
    assert state == "failed" and error["node"] == "worker-2", error
    assert "runs on a host whose machine id is" in error["message"] and "nothing was run" in error["message"]
    # nothing changed the host that is not worker-2's, nor worker-2
    changed = [e["argv"] for node in ("worker-1", "worker-2") for e in box.command_log(node)
               if e["argv"][0] in ("kubeadm", "systemctl") or e["argv"][:2] == ["apt-get", "install"]]
    assert changed == []
    assert_safe(box, 1, succeeded=False)
    stack.kill("agent-worker-2")
    stack.start_agent("worker-2")
    stack.wait_for_workers(["agent@worker-2"])
    retry_succeeds(handle)
    assert_safe(box, 1)


def test_a_cluster_already_at_the_target_is_left_untouched(make_stack, tmp_path):
    stack = make_stack(control_planes=2, workers=2, version="1.34.4", os_family="mixed")
    box = stack.sandbox
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.34"), broker=stack.broker)
    state, error = finish(handle, timeout=120)
    assert state == "succeeded", error
    for node in box.nodes:
        ran = [" ".join(e["argv"]) for e in box.command_log(node["name"])]
        changed = [c for c in ran if c.startswith(("kubeadm upgrade apply", "kubeadm upgrade node",
                                                   "systemctl restart", "apt-get install", "dnf install"))]
        assert changed == [], f"{node['name']} ran {changed}"
    assert not [e for e in box.history() if e["event"] == "cordon"]
    events = " ".join(e["message"] for e in handle.status()["events"])
    assert "already at v1.34.4, nothing to do on: cp-1, cp-2, worker-1, worker-2" in events


def test_reapply_reruns_apply_with_force_on_the_first_control_plane_and_nothing_else(make_stack, tmp_path):
    stack = make_stack(control_planes=2, workers=2, version="1.34.4", os_family="apt")
    box = stack.sandbox
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.34", reapply=True), broker=stack.broker)
    state, error = finish(handle, timeout=120)
    assert state == "succeeded", error
    ran = {n["name"]: [" ".join(e["argv"]) for e in box.command_log(n["name"])] for n in box.nodes}
    applies = [c for c in ran["cp-1"] if c.startswith("kubeadm upgrade apply")]
    assert len(applies) == 1 and applies[0].startswith("kubeadm upgrade apply v1.34.4 ")
    assert applies[0].endswith(" --force")
    for node, commands in ran.items():
        changed = [c for c in commands if c.startswith(("kubeadm upgrade node", "systemctl restart",
                                                        "apt-get install"))]
        assert changed == [], f"{node} ran {changed}"
        if node != "cp-1":
            assert not [c for c in commands if c.startswith("kubeadm upgrade apply")]
    assert not [e for e in box.history() if e["event"] == "cordon"]
    assert phase_record(handle, "cp-1", "kubeadm-upgrade-apply")["detail"] == \
        "control plane re-applied at v1.34.4 (--force)"
    assert_safe(box, 1)


def test_apply_already_done_on_another_control_plane_is_not_run_again(make_sandbox, make_stack, tmp_path):
    from tests.helpers import run_on
    from tests.integration.test_sandbox_hosts import install, ok

    stack = make_stack(control_planes=2, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    # An earlier run applied v1.31.14 on cp-2, then stopped: the planner follows the version
    # apply chose, so "1.31" means v1.31.14 and cp-1 runs `kubeadm upgrade node`.
    install(box, "cp-2", "1.31.14", "kubeadm")
    ok(run_on(box, "cp-2", "kubeadm", "upgrade", "apply", "v1.31.14", "--yes"))
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle)
    assert state == "succeeded", error
    applies = [e for n in ("cp-1", "cp-2") for e in box.command_log(n)
               if e["argv"][:3] == ["kubeadm", "upgrade", "apply"] and e["exit"] == 0]
    assert len(applies) == 1  # the one from before the campaign
    assert ["kubeadm", "upgrade", "node"] in [e["argv"][:3] for e in box.command_log("cp-1")]
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


@pytest.mark.parametrize("placement", [Placement("worker-1", "drain", 0.0, 1.0),
                                       Placement("worker-2", "uncordon", 0.0, 1.5)],
                         ids=["during-drain", "during-uncordon"])
def test_a_broker_restart_in_the_worker_stage_keeps_every_promise(tmp_path, placement):
    # Two placements of `make soak-broker` (bench/broker_sweep.py), which sweeps twenty.
    state, _, problems, _ = run_placement(tmp_path, placement, seed=7)
    assert problems == []  # names the campaign's error when it did not succeed
    assert state == "succeeded"


def nothing_ran(box):
    commands = {n["name"]: box.command_log(n["name"]) for n in box.nodes}
    return all(not log for log in commands.values()) and not box.history()


def test_a_campaign_for_another_cluster_is_refused_before_anything_runs(make_stack, tmp_path):
    import subprocess
    import sys

    import yaml

    from kubeupgrade.errors import InvalidInput, PolicyRefused
    from kubeupgrade.kube.client import KubeApi
    from kubeupgrade.kube.identity import read_identity

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    elsewhere = tmp_path / "prod.yaml"
    elsewhere.write_text(yaml.safe_dump({"cluster": "prod-eu1", "target": "1.31"}))
    with pytest.raises(PolicyRefused, match="names cluster 'prod-eu1'.*reaches cluster sandbox"):
        submit(str(elsewhere), broker=stack.broker)

    # Same name, other cluster: the broker knows "sandbox" as another kube-system uid.
    store = CampaignStore.from_url(stack.broker)
    store.redis.set("ku:identity:sandbox", '{"uid": "0000-old-cluster", "campaign": "sandbox-old"}')
    with pytest.raises(PolicyRefused, match="another cluster under the same name"):
        submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    assert nothing_ran(box)
    assert store.cluster_holder("sandbox") is None and store.active_ids() == []

    forgot = subprocess.run([sys.executable, "-m", "kubeupgrade", "forget-cluster", "sandbox",
                             "--broker", stack.broker], capture_output=True, text=True, timeout=60)
    assert forgot.returncode == 0, forgot.stderr
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle)
    assert state == "succeeded", error
    uid = read_identity(KubeApi(str(box.kubeconfig))).uid
    assert handle.status()["identity"] == {"name": "sandbox", "uid": uid,
                                           "source": "kubeadm's clusterName"}
    assert_safe(box, 1)
    # A node the cluster does not have is bad input from submit, as it is from plan (exit 2).
    ghost = tmp_path / "ghost.yaml"
    ghost.write_text(yaml.safe_dump({"cluster": "sandbox", "target": "1.31", "nodes": [
        {"name": "cp-1", "role": "control-plane"}, {"name": "ghost", "role": "worker"}]}))
    with pytest.raises(InvalidInput, match="nodes not in the cluster: ghost"):
        submit(str(ghost), broker=stack.broker)


def test_a_controller_restarted_against_another_cluster_sends_nothing_there(make_stack, make_sandbox,
                                                                            tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    other = make_sandbox(workers=2, version="1.30.4", time_scale=0.005)  # also named "sandbox"
    box.add_fault("hang", node="cp-1", command="kubeadm upgrade apply", seconds=6.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    wait_for(phase_running(handle, "cp-1", "kubeadm-upgrade-apply"), timeout=120)
    stack.kill("controller")
    stack.start_controller(kubeconfig=other.kubeconfig)  # the wrong kubeconfig, same cluster name
    state, error = finish(handle, timeout=120)
    assert state == "failed", error
    assert "accepted on kube-system uid" in error["message"]
    wait_for(lambda: phase_record(handle, "cp-1", "kubeadm-upgrade-apply")["state"] == "succeeded",
             timeout=60)
    assert nothing_ran(other)
    assert not any("kubeupgrade.io/cordoned-by" in n["metadata"].get("annotations", {})
                   for n in other.api_get("/api/v1/nodes")["items"])

    stack.kill("controller")
    stack.start_controller()
    retry_succeeds(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def repository_minor(box, node):
    from kubeupgrade.host.platforms.packaged import configured_minor
    from kubeupgrade.sandbox import hosts

    root = box.node_root(node)
    path = root / hosts.APT_SOURCE if (root / hosts.APT_SOURCE).exists() else root / hosts.YUM_REPO
    minor = configured_minor(path.read_text())
    return minor.plain if minor else None


def test_a_hop_failing_in_preparation_puts_every_repository_back(make_stack, tmp_path):
    # 1.35 has no package repository in the sandbox (as a minor not yet released would not).
    stack = make_stack(control_planes=1, workers=2, version="1.34.4", os_family="mixed")
    box = stack.sandbox
    nodes = [n["name"] for n in box.nodes]
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.35"), broker=stack.broker)
    state, error = finish(handle, timeout=120)
    assert state == "failed" and error["phase"] == "prepare-host", error
    assert ("does not have a Release file" in error["message"]
            or "Failed to download metadata" in error["message"])
    wait_for(lambda: handle.repositories() == {n: "repository restored to v1.34" for n in nodes},
             timeout=60)
    assert all(repository_minor(box, n) == "1.34" for n in nodes)
    events = " ".join(e["message"] for e in handle.status()["events"])
    assert f"restoring the package repository on: {', '.join(sorted(nodes))}" in events
    for node in nodes:  # and the package manager works again on the restored repository
        refreshes = [e for e in box.command_log(node) if e["argv"][:2] in (["apt-get", "update"],
                                                                           ["dnf", "makecache"])]
        assert refreshes[-1]["exit"] == 0, refreshes[-1]
    assert_safe(box, 1, succeeded=False)


def test_abort_puts_repositories_back_where_nothing_was_installed_and_retry_recovers(make_stack, tmp_path):
    from kubeupgrade.workflow.restore import installed_from_new_repository

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="apt-get install -y -q kubectl", seconds=4.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=120)
    handle.abort(uncordon=True)
    entries = handle.status()["entries"][0]
    for node in ("cp-1", "worker-1", "worker-2"):
        installed = installed_from_new_repository(entries[node])
        assert repository_minor(box, node) == ("1.31" if installed else "1.30"), (node, entries[node])
    assert installed_from_new_repository(entries["worker-1"])  # it was installing when aborted

    handle.abort(restore_repositories=True)  # now everywhere, installed or not
    assert {n: repository_minor(box, n) for n in ("cp-1", "worker-1", "worker-2")} == {
        "cp-1": "1.30", "worker-1": "1.30", "worker-2": "1.30"}
    # A retry points each node at the target again before installing, and drains worker-1
    # again: abort --uncordon put it back in service.
    retry_succeeds(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert sum(1 for e in box.history() if e["event"] == "cordon" and e["node"] == "worker-1") == 2
    assert_safe(box, 1)


def test_preflight_names_every_problem_and_nothing_disruptive_runs(make_stack, tmp_path):
    """An unready node and a swapping host: the hop's preflight fails naming both, before any
    kubeadm upgrade, install or cordon on any node (one listing of the nodes serves every check)."""
    from tests.helpers import run_on

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    assert run_on(box, "worker-2", "systemctl", "stop", "kubelet").returncode == 0
    wait_for(lambda: any(c["type"] == "Ready" and c["status"] != "True"
                         for c in box.api_get("/api/v1/nodes/worker-2")["status"]["conditions"]), timeout=60)
    box.add_fault("swap-on", node="worker-1")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle, timeout=180)
    assert state == "failed", error
    assert "preflight failed" in error["message"]
    assert "nodes not Ready: worker-2" in error["message"]
    assert ("swap is on and kube-system/kubelet-config keeps failSwapOn true (the default), which the "
            "upgrade writes to every node, so the kubelet would not start (turn swap off, or set "
            "failSwapOn: false there): worker-1") in error["message"]
    for node in ("cp-1", "worker-1", "worker-2"):
        ran = [" ".join(e["argv"]) for e in box.command_log(node)]
        assert not [c for c in ran if c.startswith("kubeadm upgrade") or " install " in f" {c} "], (node, ran)
        assert not box.api_get(f"/api/v1/nodes/{node}")["spec"].get("unschedulable"), node


def test_swap_stops_only_a_kubelet_set_to_fail_on_it(make_stack, tmp_path):
    """Swap on worker-1 (its kubelet started with --fail-swap-on=false) and on worker-2 (no such
    flag). The cluster's kubelet configuration, which the upgrade writes to every node, keeps
    the default failSwapOn: preflight refuses worker-2 alone. With failSwapOn: false set there,
    a retry upgrades every node, and kubeadm keeps the setting on each one."""
    from kubernetes import client, config

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    (box.node_root("worker-1") / "etc/default").mkdir(parents=True, exist_ok=True)
    (box.node_root("worker-1") / "etc/default/kubelet").write_text("KUBELET_EXTRA_ARGS=--fail-swap-on=false\n")
    box.add_fault("swap-on", node="worker-1")
    box.add_fault("swap-on", node="worker-2")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle, timeout=180)
    assert state == "failed", error
    assert error["message"].endswith("or set failSwapOn: false there): worker-2")
    api = client.CoreV1Api(config.new_client_from_config(str(box.kubeconfig)))
    current = api.read_namespaced_config_map("kubelet-config", "kube-system").data["kubelet"]
    api.patch_namespaced_config_map("kubelet-config", "kube-system",
                                    {"data": {"kubelet": current + "failSwapOn: false\n"}})
    retry_succeeds(handle)
    for node in ("worker-1", "worker-2"):
        written = (box.node_root(node) / "var/lib/kubelet/config.yaml").read_text()
        assert "failSwapOn: false" in written and "sandboxWrittenFor: v1.31" in written, node
    assert_safe(box, 1)


def test_a_retry_after_preflight_refused_a_host_looks_at_the_host_again(make_stack, tmp_path):
    """Preflight judges what prepare-host found on each host. Once the operator turns swap off
    on the node it refused, a retry must look again: with the facts of the first attempt it
    would refuse the same node for ever."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("swap-on", node="worker-2")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle, timeout=180)
    assert state == "failed" and error["message"].endswith("or set failSwapOn: false there): worker-2"), error
    assert box.clear_faults() == 1  # swapoff -a
    retry_succeeds(handle)
    prepares = [e for e in box.command_log("worker-2") if e["argv"][:2] == ["swapon", "--show"]]
    assert len(prepares) == 2  # prepare-host ran again and saw swap off
    assert_safe(box, 1)


def test_workers_out_of_service_outside_the_campaign_count_against_its_limit(make_stack, tmp_path):
    """The limit is on the cluster's workers out of service, not only the campaign's own: with
    max_unavailable 1 and a worker an operator cordoned for a repair, no other worker may go
    out of service beside it. The cordoned worker is upgraded first (it is out already) and
    left cordoned (not ours); the campaign then waits, naming it, and goes on once the
    operator uncordons it. At no moment are two workers out of service."""
    from kubernetes import client, config

    from kubeupgrade.sandbox import invariants

    stack = make_stack(control_planes=1, workers=4, version="1.30.4", os_family="apt")
    box = stack.sandbox
    api = client.CoreV1Api(config.new_client_from_config(str(box.kubeconfig)))
    api.patch_node("worker-3", {"spec": {"unschedulable": True}})
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)

    def waiting_on_worker_3():
        wanted = "waiting: the limit of 1 is full: 1 worker(s) out of service outside this campaign"
        return any(e["message"].startswith(wanted) and "worker-3 (cordoned)" in e["message"]
                   for e in handle.status()["events"])

    wait_for(lambda: phase_record(handle, "worker-3", "uncordon").get("state") == "succeeded", timeout=120)
    wait_for(waiting_on_worker_3, timeout=30)
    time.sleep(2)  # a dispatcher that ignored the cordon would have started another by now
    assert handle.status()["state"] == "running"
    assert [n for n in ("worker-1", "worker-2", "worker-4")
            if phase_record(handle, n, "drain").get("state") not in (None, "pending")] == []
    assert box.api_get("/api/v1/nodes/worker-3")["spec"].get("unschedulable")  # not ours to release
    assert invariants.max_workers_out(box) == 1
    api.patch_node("worker-3", {"spec": {"unschedulable": False}})
    state, error = finish(handle, timeout=240)
    assert state == "succeeded", error
    assert invariants.max_workers_out(box) == 1
    assert invariants.check_all(box, 1) == []
    messages = [e["message"] for e in handle.status()["events"]]
    assert "workers out of service outside this campaign no longer hold its outages back" in messages


def test_a_worker_cordoned_outside_the_campaign_holds_its_pool_and_the_other_pool_goes_on(
        make_stack, tmp_path):
    """Pool a (limit 1) has worker-2, cordoned by an operator; pool b (limit 2) has room, and so
    has the global limit (3). worker-2 goes first in pool a (it is out already) and stays
    cordoned; pool a then waits, its events naming worker-2 against pool a's limit, not the
    cluster's; pool b finishes meanwhile. Uncordoned, worker-2 lets pool a go on."""
    from kubernetes import client, config

    from kubeupgrade.sandbox import invariants

    stack = make_stack(control_planes=1, workers=5, version="1.30.4", os_family="apt")
    box = stack.sandbox
    api = client.CoreV1Api(config.new_client_from_config(str(box.kubeconfig)))
    members = {"a": {"worker-1", "worker-2", "worker-3"}, "b": {"worker-4", "worker-5"}}
    for pool, nodes in members.items():
        for node in nodes:
            api.patch_node(node, {"metadata": {"labels": {"example.com/pool": pool}}})
    api.patch_node("worker-2", {"spec": {"unschedulable": True}})
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=3, pools=[
        {"name": "a", "selector": "example.com/pool=a", "max_unavailable": 1},
        {"name": "b", "selector": "example.com/pool=b", "max_unavailable": 2}]), broker=stack.broker)
    wanted = ("waiting: pool a's limit of 1 is full: 1 worker(s) out of service outside this "
              "campaign: worker-2 (cordoned); no other worker of pool a begins an outage")

    def pool_a_waits_on_worker_2():
        return any(e["message"].startswith(wanted) for e in handle.status()["events"])

    wait_for(lambda: all(phase_record(handle, n, "uncordon").get("state") == "succeeded"
                         for n in ("worker-2", "worker-4", "worker-5")), timeout=120)
    wait_for(pool_a_waits_on_worker_2, timeout=30)
    time.sleep(2)  # a dispatcher that ignored the cordon would have started worker-1 by now
    assert [n for n in ("worker-1", "worker-3")
            if phase_record(handle, n, "drain").get("state") not in (None, "pending")] == []
    api.patch_node("worker-2", {"spec": {"unschedulable": False}})
    state, error = finish(handle, timeout=240)
    assert state == "succeeded", error
    assert invariants.max_workers_out(box, members["a"]) == 1
    assert invariants.check_pools(box, {"a": (1, members["a"]), "b": (2, members["b"])}) == []
    assert invariants.check_all(box, 3) == []


def test_a_worker_whose_kubelet_stops_mid_campaign_holds_a_slot_and_the_campaign_still_succeeds(
        make_stack, tmp_path):
    """Limit 1. While worker-1 is the campaign's outage (its kubelet restart held 4 s), worker-4's
    kubelet stops: worker-4 goes NotReady outside the campaign and holds the only slot. Once a
    read has shown it, no other worker begins an outage beside it; worker-4 itself is upgraded
    once worker-1 is back (the upgrade restarts its kubelet, so it comes back Ready), not beside
    worker-1, so the record never shows two outages against a limit of 1 and the audit before
    success passes."""
    import subprocess

    from kubeupgrade.sandbox import invariants

    stack = make_stack(control_planes=1, workers=4, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="systemctl restart kubelet", count=1, seconds=4)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "restart-kubelet"), timeout=120)
    stopped = subprocess.run([str(box.node_bin("worker-4") / "systemctl"), "stop", "kubelet"],
                             capture_output=True, text=True, timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    state, error = finish(handle, timeout=240)
    assert state == "succeeded", error
    history = [e for e in box.history() if e["node"].startswith("worker")]
    down = next(e["t"] for e in history if e["node"] == "worker-4" and e["event"] == "unknown")
    back = next(e["t"] for e in history if e["node"] == "worker-4" and e["event"] == "uncordon")
    # Begun while worker-4 was out, more than two reads after it went: the limit was not kept.
    late = [e["node"] for e in history if e["event"] == "cordon" and e["node"] != "worker-4"
            and down + 2.5 < e["t"] < back]
    assert late == []
    worker_1_back = next(e["t"] for e in history if e["node"] == "worker-1" and e["event"] == "uncordon")
    worker_4_drained = next(e["t"] for e in history if e["node"] == "worker-4" and e["event"] == "cordon")
    assert worker_4_drained > worker_1_back  # not beside the campaign's own outage
    assert box.api_get("/api/v1/nodes/worker-4")["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.31.")
    # worker-1 and worker-4 were out at once (a kubelet stopped by hand): the peak check's
    # finding, checked above with its timing; every other promise holds as for any campaign
    assert [p for p in invariants.check_all(box, 1) if "out of service at once" not in p] == []
