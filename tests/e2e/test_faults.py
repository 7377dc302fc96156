"""Fault tolerance with real processes killed for real: agents, the controller, redis-server, the
API server; failing kubeadm, kubelets that never come back, PDB-blocked drains, missing agents,
duplicate deliveries. After each: the campaign ends succeeded (after at most one retry) or
failed with an exact reason, and the safety invariants held."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from kubeupgrade.api import submit
from kubeupgrade.errors import RuntimeFailure
from kubeupgrade.model.plan import Phase
from kubeupgrade.sandbox import invariants
from kubeupgrade.sandbox.processes import host_commands
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.names import PHASE_TASKS, node_queue
from tests.helpers import run_on, wait_for, write_campaign


def phase_record(handle, node, phase, hop=0):
    entries = handle.status()["entries"]  # empty until a controller has accepted the campaign
    entry = (entries[hop].get(node) if hop < len(entries) else None) or {"phases": []}
    return next((p for p in entry["phases"] if p["phase"] == phase), {})


def phase_running(handle, node, phase):
    return lambda: phase_record(handle, node, phase).get("state") == "running"


def finish(handle, timeout=240):
    try:
        state = handle.wait(timeout=timeout)
    except RuntimeFailure:  # still running at the timeout
        print(where_it_waits(handle))  # pytest shows it with the failure
        raise
    if state in ("pending", "running"):
        print(where_it_waits(handle))
    return state, handle.status().get("error")


def where_it_waits(handle):
    """A campaign that did not end: every node's open phases and the last events."""
    status = handle.status()
    lines = [f"campaign {handle.id} still {status['state']}, hops: "
             f"{[(h.get('stage'), h.get('waiting_for_agents')) for h in status['hops']]}"]
    for node, entry in (status["entries"][-1] if status["entries"] else {}).items():
        open_phases = [(p["phase"], p["state"], p["task_id"], p.get("resends"), p.get("redeliveries"))
                       for p in entry["phases"] if p["state"] != "succeeded"]
        lines.append(f"  {node} attempt {entry['attempt']} {entry['state']}: {open_phases}")
    lines += [f"  event: {event['message']}" for event in reversed(status["events"][:30])]
    return "\n".join(lines)


def converges(handle):
    """The campaign ends succeeded, after at most one retry."""
    state, error = finish(handle)
    if state == "failed":
        handle.retry()
        state, error = finish(handle)
    assert state == "succeeded", error


def retry_succeeds(handle):
    """After the cause is removed, one retry finishes the campaign."""
    handle.retry()
    state, error = finish(handle)
    assert state == "succeeded", error


def kill_agent_during(stack, handle, node, phase, restart_after=1.0):
    """SIGKILL the node's agent while `phase` runs there, then start it again. A command it ran
    goes on in its own session, holding the host lock, and the redelivered task waits for it."""
    wait_for(phase_running(handle, node, phase), timeout=120)
    time.sleep(0.5)
    stack.kill(f"agent-{node}")
    time.sleep(restart_after)
    stack.start_agent(node)


def assert_safe(box, limit, succeeded=True):
    assert invariants.check_all(box, max_unavailable=limit, succeeded=succeeded) == []


@pytest.mark.parametrize(("node", "command", "phase"), [
    ("cp-1", "kubeadm upgrade apply", "kubeadm-upgrade-apply"),
    ("worker-1", "apt-get install -y -q kubectl", "install-kubelet"),
    ("cp-2", "kubeadm upgrade node", "kubeadm-upgrade-node"),
    ("worker-2", "systemctl restart kubelet", "restart-kubelet"),
])
def test_agent_killed_during_a_long_host_step_converges(make_stack, tmp_path, node, command, phase):
    stack = make_stack(control_planes=2, workers=2, version="1.30.4", os_family="apt",
                       visibility_timeout=6)
    box = stack.sandbox
    box.add_fault("hang", node=node, command=command, seconds=2.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    kill_agent_during(stack, handle, node, phase)
    converges(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


@pytest.mark.parametrize("point", ["after unpacking", "configuring kubelet"])
def test_an_apt_run_that_dies_half_way_is_finished_by_the_phase_run_again(make_stack, tmp_path, point):
    # apt killed with the packages unpacked, or inside kubelet's maintainer script: dpkg says
    # "unpacked" or "half-configured", and apt refuses every install until `dpkg --configure -a`
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("crash", node="worker-1", command="apt-get install -y -q kubectl", point=point)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    converges(handle)
    log = [(e["argv"][:3], e["exit"]) for e in box.command_log("worker-1")]
    crashed = log.index((["apt-get", "install", "-y"], -9))
    assert (["dpkg", "--configure", "-a"], 0) in log[crashed:]
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_an_rpm_transaction_killed_before_erasing_the_old_versions_is_finished_by_the_phase_run_again(
        make_stack, tmp_path):
    # rpm -q then prints kubelet twice and dnf says the newer is installed; the agent erases the
    # older entry, the step the transaction did not reach
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="dnf")
    box = stack.sandbox
    box.add_fault("crash", node="worker-1", command="dnf install -y kubectl", point="not yet erased")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    converges(handle)
    erased = [e["argv"][2:] for e in box.command_log("worker-1") if e["argv"][:2] == ["rpm", "-e"]]
    assert [sorted(argv) for argv in erased] == [["kubectl-1.30.4-150500.1.1", "kubelet-1.30.4-150500.1.1"]]
    assert run_on(box, "worker-1", "rpm", "-q", "kubelet").stdout == "kubelet-1.31.14-150500.1.1.x86_64\n"
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_controller_killed_during_drain_and_readiness_wait(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt",
                       visibility_timeout=8)
    box = stack.sandbox
    box.add_fault("never-ready", node="worker-1")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1, ready_timeout=60),
                    broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "wait-ready"), timeout=120)
    stack.kill("controller")
    box.clear_faults()
    stack.start_controller()
    converges(handle)
    assert_safe(box, 1)


def test_a_cluster_phase_waiting_on_the_cluster_does_not_hold_the_controllers_pool(make_stack, tmp_path):
    """One pool process in the controller, and worker-1's kubelet never comes back: its
    readiness wait looks again and again, and between looks the process drains, waits for and
    uncordons the other workers. A look is not an attempt, and the phase says what it waits for."""
    stack = make_stack(control_planes=1, workers=3, version="1.30.4", controller_concurrency=1)
    box = stack.sandbox
    box.add_fault("never-ready", node="worker-1")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=2, ready_timeout=600,
                                   prepare_ahead=1), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "wait-ready"), timeout=120)
    wait_for(lambda: all(phase_record(handle, node, "uncordon").get("state") == "succeeded"
                         for node in ("worker-2", "worker-3")), timeout=90)
    waiting = phase_record(handle, "worker-1", "wait-ready")
    assert waiting["state"] == "running" and waiting["attempts"] == 1, waiting
    assert waiting["detail"].startswith("waiting for Ready at v1.31.14 (last seen: Ready=False"), waiting
    from kubeupgrade.workflow.record import CampaignStore

    redis = CampaignStore.from_url(stack.broker).redis
    result = f"celery-task-meta-{waiting['task_id']}"
    assert not redis.exists(result)  # a look leaves no result (app.WorkerCelery), only the kept state
    assert redis.hexists(f"ku:c:{handle.id}:waits:0", "worker-1/wait-ready")
    box.clear_faults()
    state, error = finish(handle)
    assert state == "succeeded", error
    done = phase_record(handle, "worker-1", "wait-ready")
    assert (done["attempts"], done["detail"]) == (1, "Ready at v1.31.14")
    # Gone with the phase: its kept state, and the result its looks left (kept two weeks otherwise)
    assert not redis.exists(f"ku:c:{handle.id}:waits:0")
    assert not redis.exists(result)
    assert_safe(box, 2)


def test_many_waiting_phases_together_look_no_more_often_than_the_controllers_pool_is_paced_for(
        make_stack, tmp_path):
    """Ten readiness waits at once on a controller of one pool process (paced for five looks a
    second): each looks about every two seconds instead of every second, so the looks leave the
    pool room for the phases that move outages; none is starved, none counts as an attempt."""
    from kubeupgrade.workflow.record import CampaignStore
    from kubeupgrade.workflow.waiting import LOOKS_PER_SECOND_PER_PROCESS

    workers = [f"worker-{i}" for i in range(1, 11)]
    stack = make_stack(control_planes=1, workers=len(workers), version="1.30.4", controller_concurrency=1,
                       workload=False)  # no budgets: every worker reaches its readiness wait
    box = stack.sandbox
    for worker in workers:
        box.add_fault("never-ready", node=worker)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=len(workers), ready_timeout=600,
                                   prepare_ahead=len(workers)), broker=stack.broker)
    waits = CampaignStore.from_url(stack.broker).redis

    def looks():
        return {field: json.loads(value)["looks"] for field, value in
                waits.hgetall(f"ku:c:{handle.id}:waits:0").items()}

    wait_for(lambda: [field.endswith("/wait-ready") for field in looks()].count(True) == len(workers),
             timeout=240)
    before, began = looks(), time.monotonic()
    time.sleep(8.0)
    after, seconds = looks(), time.monotonic() - began
    made = {field: after[field] - before[field] for field in before}
    # Every look sent in the window, plus one per wait already on its way when it opened
    assert sum(made.values()) <= LOOKS_PER_SECOND_PER_PROCESS * seconds + len(workers), made
    assert all(count >= 1 for count in made.values()), made
    for worker in workers:
        assert phase_record(handle, worker, "wait-ready")["attempts"] == 1
    box.clear_faults()
    state, error = finish(handle)
    assert state == "succeeded", error
    assert_safe(box, len(workers))


def test_a_wait_state_an_earlier_task_left_goes_when_the_phase_ends(make_stack, tmp_path):
    """A controller killed while a phase waited leaves that task's wait state (and its RETRY
    result); the phase sent again under a new id that waits only briefly must not leave them
    behind, or they would stay counted in the pace of every look."""
    from kubeupgrade.workflow.record import CampaignStore
    from kubeupgrade.workflow.waiting import first_look

    stack = make_stack(control_planes=1, workers=1, version="1.30.4", workload=False)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    store = CampaignStore.from_url(stack.broker)
    store.keep_waiting(handle.id, 0, "worker-1", "wait-ready", first_look("lost-task", 0).next({}, "waiting"))
    store.redis.set("celery-task-meta-lost-task", json.dumps({"status": "RETRY", "task_id": "lost-task"}))
    state, error = finish(handle)
    assert state == "succeeded", error
    assert not store.redis.exists(f"ku:c:{handle.id}:waits:0")
    assert not store.redis.exists("celery-task-meta-lost-task")
    assert phase_record(handle, "worker-1", "wait-ready")["attempts"] == 1


@pytest.mark.parametrize("secure_broker", [False, True], ids=["plain", "tls-acl-as-shipped"])
def test_redis_restart_mid_campaign_resumes(make_stack, tmp_path, secure_broker):
    stack = make_stack(control_planes=1, workers=3, version="1.30.4", os_family="mixed",
                       secure_broker=secure_broker)
    box = stack.sandbox
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(lambda: phase_record(handle, "worker-1", "drain").get("state") in ("running", "succeeded"),
             timeout=120)
    stack.stop_redis()  # SIGTERM: redis-server fsyncs its AOF on shutdown
    time.sleep(2.0)
    stack.start_redis()
    converges(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_a_broker_frozen_under_a_host_phase_is_the_brokers_trouble_not_a_failed_phase(make_stack, tmp_path):
    """redis-server frozen (SIGSTOP) for 30 s while worker-1 installs its kubelet: the agent's
    next read of the record (its fence before the next command) times out after redis-py's own
    retries. That is the broker's trouble: the phase is not marked failed (before, it was, and
    the campaign failed once the broker answered, the soak's freeze-redis fault met it); it is
    sent again, looks at its effect first, and the campaign finishes with no retry."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="apt-get install -y -q kubectl", seconds=4.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=180)
    time.sleep(0.5)
    redis_server = stack.processes["redis"].pid
    os.kill(redis_server, signal.SIGSTOP)
    try:
        time.sleep(30)
    finally:
        os.kill(redis_server, signal.SIGCONT)
    state, error = finish(handle)
    assert state == "succeeded", error
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def installing_worker_1s_kubelet(make_stack, tmp_path):
    """A campaign (limit 1) with worker-1 drained and its kubelet's install running (held 6 s)."""
    stack = make_stack(control_planes=1, workers=3, version="1.30.4", os_family="apt")
    stack.sandbox.add_fault("hang", node="worker-1", command="apt-get install -y -q kubectl", seconds=6.0, count=1)
    source = write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1)
    handle = submit(source, broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=180)
    return stack, source, handle


def test_a_broker_back_without_its_data_names_the_lost_campaign_and_its_cordons_and_a_new_one_finishes(
        make_stack, tmp_path):
    """redis-server SIGKILLed while worker-1 is drained and installing its kubelet, and started
    again with no data (its AOF gone: a replaced disk, a broker run without persistence). The
    campaign's record, the cluster's lock and the queues are gone; the cluster still has
    worker-1 cordoned by it. The controller names the lost campaign, every node left cordoned
    and what ran; `doctor` names the orphaned cordon; the campaign submitted again adopts it
    and finishes, and every safety invariant holds."""
    stack, source, handle = installing_worker_1s_kubelet(make_stack, tmp_path)
    box = stack.sandbox
    # The install's start reaches the dispatcher at a tick of its own: under CI's load 0.5 s
    # was not always enough for the notice to name it (the install is held 6 s).
    time.sleep(2.0)
    stack.kill("redis")
    shutil.rmtree(box.paths.root / "redis")
    stack.start_redis()

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "kubeupgrade", *argv, "--broker", stack.broker],
                              capture_output=True, text=True, timeout=120)

    told = wait_for(lambda: (lambda r: r if r.returncode == 1 else None)(cli("status", handle.id)), timeout=60)
    assert "was lost with the broker's data" in told.stderr and "running then: worker-1: install-kubelet" in told.stderr
    cordoned = [r.name for r in box.node_rows() if "SchedulingDisabled" in r.status]
    assert cordoned == ["worker-1"] and "nodes it held cordoned: worker-1 " in told.stderr
    assert f"`kubeupgrade submit {source}` again" in told.stderr
    assert f"lost: {handle.id}: " in cli("list").stdout
    doctor = cli("doctor", "--kubeconfig", str(stack.controller_kubeconfig), "-o", "json")
    row = next(r for r in json.loads(doctor.stdout) if r["name"] == "kubeupgrade cordons")
    assert not row["ok"] and row["detail"] == ("cordoned by no campaign acting on them: worker-1 "
                                               f"(campaign {handle.id}, lost with the broker's data)")

    again = submit(source, broker=stack.broker)
    state, error = finish(again)
    assert state == "succeeded", error
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)
    assert "SchedulingDisabled" not in {r.status for r in box.node_rows()}
    # The notice stays in `list`; `status` without an id no longer offers it once its cluster
    # has a newer campaign.
    assert cli("status").stdout == "no active campaigns\n" and f"lost: {handle.id}: " in cli("list").stdout


def test_a_campaign_lost_with_the_broker_as_the_controller_restarts_is_still_taken_over(make_stack, tmp_path):
    """The controller SIGKILLed and redis-server back without its data at once, while worker-1
    is drained and installing its kubelet: the controller that starts again never acted on the
    campaign, so no notice says it was lost. worker-1's cordon was marked with the epoch of the
    broker the campaign was recorded in, which is gone: the campaign submitted again takes it
    over and releases it. Before, it counted worker-1 as someone else's cordon for good, and
    with a limit of 1 waited for ever (bench.soak --seed 39)."""
    stack, source, handle = installing_worker_1s_kubelet(make_stack, tmp_path)
    box = stack.sandbox
    marks = box.api_get("/api/v1/nodes/worker-1")["metadata"]["annotations"]
    assert marks["kubeupgrade.io/cordoned-by"] == handle.id and marks["kubeupgrade.io/cordon-epoch"]
    stack.kill("controller")
    stack.kill("redis")
    shutil.rmtree(box.paths.root / "redis")
    stack.start_redis()
    stack.start_controller()
    gone = wait_for(lambda: (lambda r: r if "this broker's data begins at" in r.stderr else None)(
        subprocess.run([sys.executable, "-m", "kubeupgrade", "status", handle.id, "--broker", stack.broker],
                       capture_output=True, text=True, timeout=120)), timeout=60)
    assert gone.returncode == 2 and f"kubeupgrade.io/cordoned-by={handle.id}" in gone.stderr
    again = submit(source, broker=stack.broker)
    state, error = finish(again)
    assert state == "succeeded", error
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert "SchedulingDisabled" not in {r.status for r in box.node_rows()}
    annotations = box.api_get("/api/v1/nodes/worker-1")["metadata"].get("annotations") or {}
    assert not any(key.startswith("kubeupgrade.io/cord") for key in annotations), annotations
    assert_safe(box, 1)


def cordon_as_if_by(box, node, campaign, broker=None):
    """Cordon `node` as kubeupgrade campaign `campaign` does (its annotations with the cordon);
    with `broker`, also keep the notice a controller writes when the broker lost `campaign`."""
    from kubernetes import client, config

    from kubeupgrade.workflow.broker_loss import LostCampaign, keep_notices
    from kubeupgrade.workflow.record import CampaignStore

    core = client.CoreV1Api(config.new_client_from_config(str(box.kubeconfig)))
    core.patch_node(node, {"spec": {"unschedulable": True}, "metadata": {"annotations": {
        "kubeupgrade.io/cordoned-by": campaign, "kubeupgrade.io/cordon-attempt": "hop 1, attempt 1"}}})
    if broker:
        keep_notices(CampaignStore.from_url(broker).redis, [LostCampaign(
            campaign, "sandbox", "running", "c.yaml", "1.31", time.time(), time.time(), (node,), ())])


def test_a_node_at_the_target_left_cordoned_by_a_lost_campaign_is_taken_over_and_released(make_stack, tmp_path):
    """The lost campaign had restarted worker-1's kubelet at the target before the broker lost
    its data, and not uncordoned it. The campaign submitted again finds worker-1 at the target:
    skipped, it stayed cordoned for good, and filled the limit of 1, so the other workers waited
    for ever. Now it is taken over (its drain adopts the cordon), checked Ready and released,
    inside the limit."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    lost = "sandbox-20261207-003006-a5583c"
    cordon_as_if_by(box, "worker-1", lost, stack.broker)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.30.4", max_unavailable=1), broker=stack.broker)
    state, error = finish(handle)
    assert state == "succeeded", error
    assert not box.api_get("/api/v1/nodes/worker-1")["spec"].get("unschedulable")
    assert phase_record(handle, "worker-1", "uncordon")["state"] == "succeeded"
    assert all(not phase_record(handle, n, "restart-kubelet") for n in ("cp-1", "worker-1", "worker-2"))
    assert any(f"worker-1 (campaign {lost})" in note for note in handle.status()["notes"])
    assert_safe(box, 1)
    # A cordon whose campaign this broker does not know (no record, no notice) at the target
    # may be an operator's over an annotation left behind: left as it is, named.
    unknown = "sandbox-20250101-000000-abcdef"
    cordon_as_if_by(box, "worker-2", unknown)
    again = submit(write_campaign(tmp_path / "d.yaml", "1.30.4", max_unavailable=1), broker=stack.broker)
    state, error = finish(again)
    assert state == "succeeded", error
    assert box.api_get("/api/v1/nodes/worker-2")["spec"].get("unschedulable")
    assert any(f"worker-2 ({unknown})" in e["message"] for e in again.status()["events"])
    # And where it needs an upgrade: upgraded, its drain adopting nothing, the cordon left (it
    # holds one of the two slots throughout, as any cordon not the campaign's does).
    third = submit(write_campaign(tmp_path / "e.yaml", "1.31", max_unavailable=2), broker=stack.broker)
    state, error = finish(third)
    assert state == "succeeded", error
    worker2 = box.api_get("/api/v1/nodes/worker-2")
    assert worker2["spec"].get("unschedulable") and worker2["metadata"]["annotations"][
        "kubeupgrade.io/cordoned-by"] == unknown
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert "someone else" in phase_record(third, "worker-2", "drain")["detail"]
    # Every invariant holds; the sandbox's blunt "nothing left cordoned" names the cordon that
    # was never kubeupgrade's to release.
    assert invariants.check_all(box, max_unavailable=2) == ["worker-2 is still cordoned"]


def test_a_node_half_upgraded_by_a_lost_campaign_its_kubelet_down_is_taken_over_not_refused(
        make_stack, tmp_path):
    """The lost campaign had drained worker-1 and stopped its kubelet (a package install stops
    it; the restart that would have started it again never came). Preflight refused the
    campaign submitted again ("nodes not Ready: worker-1"), a retry could not help, and the node
    stayed down. A node in the hop, cordoned by another kubeupgrade campaign, is half-way
    through that campaign's upgrade: this one takes it over and its readiness wait follows."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    lost = "sandbox-20261207-003006-a5583c"
    cordon_as_if_by(box, "worker-1", lost, stack.broker)
    assert run_on(box, "worker-1", "systemctl", "stop", "kubelet").returncode == 0
    wait_for(lambda: "NotReady" in next(r.status for r in box.node_rows() if r.name == "worker-1"), timeout=60)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    state, error = finish(handle)
    assert state == "succeeded", error
    rows = {r.name: r for r in box.node_rows()}
    assert rows["worker-1"].status == "Ready" and rows["worker-1"].version == "v1.31.14"
    assert_safe(box, 1)


def test_a_broker_restart_between_an_agents_own_links_needs_no_retry(make_stack, tmp_path):
    # An agent keeps its task connections (record, results, the producer) from one link of its
    # chain to the next when both are its own (agent_connections.keeps_connections). Restarted
    # under it, the broker leaves those sockets dead: the next link must reconnect, not fail.
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="kubeadm upgrade node", seconds=4.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    # set-repository and install-kubeadm ran on the agent and kept their connections for this one
    wait_for(phase_running(handle, "worker-1", "kubeadm-upgrade-node"), timeout=120)
    stack.stop_redis()
    time.sleep(1.0)
    stack.start_redis()
    state, error = finish(handle)
    assert state == "succeeded", error  # with no operator retry
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_a_message_lost_with_its_consumer_or_by_the_broker_is_sent_again(make_stack, tmp_path):
    """worker-2's agent is frozen when its task is sent (its blocking pop may already hold the
    message), then killed, and the broker loses what was still queued for it: no message carries
    the task, nobody runs it, and no visibility timeout would ever bring it back. The dispatcher
    sees that and sends it again; the campaign ends without an operator."""
    import os
    import signal
    import threading

    import redis

    from kubeupgrade.workflow import liveness
    from kubeupgrade.workflow.undelivered import queue_keys

    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    box = stack.sandbox
    broker = redis.Redis.from_url(stack.broker)
    key = liveness.agent_key("worker-2")
    described = broker.get(key)
    os.killpg(stack.processes["agent-worker-2"].pid, signal.SIGSTOP)
    frozen = threading.Event()
    frozen.set()

    def seem_alive():  # the frozen agent still looks alive: the dispatcher sends to it
        while frozen.is_set():
            broker.set(key, described, ex=liveness.AGENT_TTL)
            time.sleep(1.0)

    refresher = threading.Thread(target=seem_alive, daemon=True)
    refresher.start()
    try:
        handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
        wait_for(lambda: bool(phase_record(handle, "worker-2", "prepare-host").get("task_id")), timeout=120)
        time.sleep(1.0)
        stack.kill("agent-worker-2")
        broker.delete(*queue_keys(node_queue("worker-2")))
    finally:
        frozen.clear()
        refresher.join(5)
    stack.start_agent("worker-2")
    state, error = finish(handle)
    assert state == "succeeded", error
    events = [e.decode() for e in broker.lrange(f"ku:c:{handle.id}:events", 0, -1)]
    assert any("worker-2: no message carries its task" in e for e in events), events
    assert phase_record(handle, "worker-2", "prepare-host")["redeliveries"] == 1
    assert_safe(box, 1)


def test_submitting_process_may_die_the_campaign_goes_on(make_stack, tmp_path):
    import subprocess
    import sys

    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    campaign = write_campaign(tmp_path / "c.yaml", "1.31")
    cli = subprocess.Popen([sys.executable, "-m", "kubeupgrade", "submit", campaign, "--broker",
                            stack.broker, "--wait"], stdout=subprocess.PIPE, text=True)
    campaign_id = cli.stdout.readline().strip()
    cli.kill()
    cli.wait()
    shown = subprocess.run([sys.executable, "-m", "kubeupgrade", "status", campaign_id, "--broker",
                            stack.broker, "-o", "json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == campaign_id
    from kubeupgrade.api import get

    assert get(campaign_id, stack.broker).wait(timeout=180) == "succeeded"


def test_kubeadm_apply_transient_failure_is_retried(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    box = stack.sandbox
    box.add_fault("fail", node="cp-1", command="kubeadm upgrade apply", count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle)
    assert state == "succeeded", error
    applies = [e["exit"] for e in box.command_log("cp-1") if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]
    assert applies == [1, 0]
    assert phase_record(handle, "cp-1", "kubeadm-upgrade-apply")["attempts"] == 2


def test_kubeadm_apply_permanent_failure_stops_before_any_other_node(make_stack, tmp_path):
    stack = make_stack(control_planes=2, workers=2, version="1.30.4")
    box = stack.sandbox
    box.add_fault("fail", node="cp-1", command="kubeadm upgrade apply", count=50)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle)
    assert state == "failed"
    assert (error["node"], error["phase"]) == ("cp-1", "kubeadm-upgrade-apply")
    assert "kubeadm upgrade apply v1.31.14" in error["message"] and "simulated failure" in error["tail"]
    # The rest of the control-plane chain was cut off, not failed: only cp-1 is to blame.
    assert phase_record(handle, "cp-2", "set-repository")["state"] == "pending"
    assert [n for n, e in handle.status()["entries"][0].items() if e["state"] == "failed"] == ["cp-1"]
    assert error["failed_nodes"] == ["cp-1"]  # a control plane is named too, not only workers
    for node in ("cp-2", "worker-1", "worker-2"):
        changed = [e["argv"] for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed == [], f"{node} was touched: {changed}"
    from kubeupgrade.cli.status_view import status_to_dict

    assert "kubeadm upgrade apply --force" in status_to_dict(handle.status())["next"]
    box.clear_faults()
    retry_succeeds(handle)
    assert_safe(box, 1)


def test_a_control_plane_whose_kubelet_does_not_restart_etcd_fails_rolled_back_and_retry_finishes(
        make_stack, tmp_path):
    """kubeadm#2957 on the second control plane: its kubelet never runs etcd's new manifest, so
    `kubeadm upgrade node` waits out its timeout, puts the old manifests and etcd's data back
    and fails. The campaign fails naming cp-2 in kubeadm's words, with no worker changed; once
    the kubelet is fixed a retry finishes, and `apply` (done on cp-1) does not run again."""
    stack = make_stack(control_planes=2, workers=2, version="1.29.8")  # 1.30 has a newer etcd
    box = stack.sandbox
    box.add_fault("static-pod-stuck", node="cp-2", command="etcd")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.30", retries={"attempts": 1, "backoff_seconds": 0.2}),
                    broker=stack.broker)
    state, error = finish(handle)
    assert state == "failed"
    assert (error["node"], error["phase"]) == ("cp-2", "kubeadm-upgrade-node")
    assert ("error execution phase control-plane: couldn't complete the static pod upgrade: couldn't "
            "upgrade control plane. kubeadm has tried to recover everything into the earlier state. "
            "Errors faced: static Pod hash for component etcd on Node cp-2 did not change after 5m0s: "
            "context deadline exceeded") in error["tail"]
    from kubeupgrade.sandbox.objects import component_image

    manifest = (box.node_root("cp-2") / "etc/kubernetes/manifests/etcd.yaml").read_text()
    assert component_image("etcd", "v1.29.8") in manifest  # the old etcd, put back
    assert component_image("etcd", "v1.29.8") != component_image("etcd", "v1.30.14")
    for node in ("worker-1", "worker-2"):
        changed = [e["argv"] for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed == [], f"{node} was touched before the control planes were done: {changed}"
    box.clear_faults()
    retry_succeeds(handle)
    applies = [e["exit"] for e in box.command_log("cp-1") if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]
    assert applies == [0]
    assert_safe(box, 1)


def test_a_kubeadm_killed_half_way_holds_the_workers_until_the_control_planes_components_run(
        make_stack, tmp_path):
    """bench.soak seed 41: `kubeadm upgrade apply` is SIGKILLed while it waits for the kubelet
    to run kube-scheduler's new manifest, which the kubelet holds back. Its re-run finds the
    manifest at the target, skips it and exits 0, as kubeadm does: the old scheduler still runs.
    cp-1's readiness wait holds until its components run the version, so it fails naming
    kube-scheduler and the kubelet, with the other control plane and every worker untouched;
    once the kubelet is fixed a retry finishes, and `apply` does not run again."""
    stack = make_stack(control_planes=2, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("static-pod-stuck", node="cp-1", command="kube-scheduler")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", ready_timeout=8), broker=stack.broker)
    manifest = box.node_root("cp-1") / "etc/kubernetes/manifests/kube-scheduler.yaml"
    wait_for(lambda: "v1.31" in manifest.read_text(), timeout=120)
    time.sleep(0.5)
    killed = [pid for pid, argv in host_commands(box.paths.root, "cp-1").items()
              if argv.startswith("kubeadm upgrade apply")]
    assert len(killed) == 1
    os.kill(killed[0], signal.SIGKILL)
    state, error = finish(handle)
    assert state == "failed", error
    assert (error["node"], error["phase"]) == ("cp-1", "wait-ready"), error
    assert "kube-scheduler at v1.30.4" in error["message"] and "journalctl -u kubelet" in error["message"]
    applies = [e["exit"] for e in box.command_log("cp-1") if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]
    assert applies == [0]  # the re-run's (a command killed logs no end)
    for node in ("cp-2", "worker-1", "worker-2"):
        changed = [e["argv"] for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed == [], f"{node} was touched before cp-1's components ran the version: {changed}"
    box.clear_faults()
    retry_succeeds(handle)
    applies = [e for e in box.command_log("cp-1") if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]
    assert len(applies) == 1
    assert_safe(box, 1)


def test_a_worker_download_failing_while_the_control_planes_upgrade_lets_them_finish(make_stack, tmp_path):
    """Workers fetch their packages while the control planes upgrade. One whose download fails
    for good holds up no control plane: they all finish, then the worker stage fails it by
    name (over the default budget of no failed worker) before any worker is touched."""
    stack = make_stack(control_planes=2, workers=2, version="1.30.4")
    box = stack.sandbox
    box.add_fault("hang", node="cp-2", command="kubeadm upgrade node", seconds=3.0, count=1)
    box.add_fault("fail", node="worker-1", command="apt-get install -y -q --download-only", count=50)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle)
    assert state == "failed"
    assert (error["node"], error["phase"]) == ("worker-1", "download-packages")
    entries = handle.status()["entries"][0]
    assert entries["cp-1"]["state"] == entries["cp-2"]["state"] == "succeeded"
    # It failed while cp-2 was still upgrading, and cp-2 went on.
    assert phase_record(handle, "worker-1", "download-packages")["ended"] < \
        phase_record(handle, "cp-2", "kubeadm-upgrade-node")["ended"]
    for node in ("worker-1", "worker-2"):
        changed = [e["argv"] for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed == [], f"{node} was changed: {changed}"
    # worker-2 fetched its packages early too, before the control planes were done.
    cp_done = phase_record(handle, "cp-2", "kubeadm-upgrade-node")["ended"]
    fetched = [e for e in box.command_log("worker-2") if "--download-only" in e["argv"]
               or "--downloadonly" in e["argv"]]
    assert fetched and fetched[0]["start"] < cp_done
    box.clear_faults()
    retry_succeeds(handle)
    assert_safe(box, 1)


def test_node_never_ready_halts_and_retry_finishes(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=3, version="1.30.4")
    box = stack.sandbox
    box.add_fault("never-ready", node="worker-1")
    # One worker prepared at a time, so worker-1 (the broken one) goes first.
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1, ready_timeout=3,
                                   prepare_ahead=1), broker=stack.broker)
    state, error = finish(handle)
    assert state == "failed"
    assert (error["node"], error["phase"]) == ("worker-1", "wait-ready")
    assert "stays cordoned" in error["message"]
    from kubeupgrade.cli.status_view import status_to_dict

    assert status_to_dict(handle.status())["left_cordoned"] == ["worker-1"]
    failed_at = phase_record(handle, "worker-1", "wait-ready")["ended"]
    late = [e["argv"] for n in ("worker-2", "worker-3") for e in box.command_log(n)
            if invariants._is_disruptive(e["argv"]) and e["start"] > failed_at]
    assert late == [], "no new worker may start after a failure"
    assert {h["node"] for h in box.history() if h["event"] == "cordon"} == {"cp-1", "worker-1"}
    box.clear_faults()
    retry_succeeds(handle)
    assert_safe(box, 1)


def test_pdb_blocked_drain_fails_naming_pod_and_budget(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    box = stack.sandbox
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(box.kubeconfig))
    policy = client.PolicyV1Api(api)
    policy.patch_namespaced_pod_disruption_budget("api-pdb", "shop", {"spec": {"minAvailable": 3}})
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1,
                                   drain={"delete_emptydir_data": True, "timeout": 3}),
                    broker=stack.broker)
    state, error = finish(handle)
    assert state == "failed"
    assert error["phase"] == "drain"
    assert "refused by a PodDisruptionBudget" in error["message"]
    assert "The disruption budget api-pdb needs 3 healthy pods and has 3 currently" in error["message"]
    assert "shop/api-" in error["message"]
    assert invariants.max_workers_out(box) <= 1
    policy.patch_namespaced_pod_disruption_budget("api-pdb", "shop", {"spec": {"minAvailable": 2}})
    api.close()
    retry_succeeds(handle)
    assert_safe(box, 1)


def test_api_server_away_for_seconds_mid_campaign(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    box = stack.sandbox
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1,
                                   retries={"attempts": 5, "backoff_seconds": 1}), broker=stack.broker)
    wait_for(lambda: phase_record(handle, "worker-1", "drain").get("state") in ("running", "succeeded"),
             timeout=120)
    box.api_down(3.0)
    state, error = finish(handle)
    assert state == "succeeded", error
    entry = handle.status()["entries"][0]
    assert all(p["state"] == "succeeded" for e in entry.values() for p in e["phases"])
    assert_safe(box, 1)


def freeze_api_server(box):
    """SIGSTOP the sandbox's API server: TCP connects still complete (the listen backlog),
    nothing answers. Returns the SIGCONT."""
    pid = box.api_pid()
    assert pid is not None, "the API server is not running"
    os.kill(pid, signal.SIGSTOP)
    return lambda: os.kill(pid, signal.SIGCONT)


def freeze_api_while_kubeadm_reads_it(stack, handle):
    """Freeze the API server while worker-2's `kubeadm upgrade node` (held by a hang fault) is
    about to read the cluster, and worker-1 is on its way through its outage: kubeadm fails on
    Go's timeouts. Returns the SIGCONT."""
    wait_for(phase_running(handle, "worker-2", "kubeadm-upgrade-node"), timeout=180)
    return freeze_api_server(stack.sandbox)


def test_an_api_server_frozen_longer_than_the_retries_is_ridden_out_within_its_tolerance(make_stack, tmp_path):
    """The API server frozen for 35 s. The phase's 2 attempts 0.2 s apart would be spent at
    once; kubeadm's failure is known as the outage and run again within the campaign's
    api_outage_tolerance (120 s), as the drain's own calls are, and the drain says what it waits
    for meanwhile. The campaign finishes with no retry by the operator."""
    stack = make_stack(control_planes=1, workers=3, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-2", command="kubeadm upgrade node", seconds=8.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    thaw = freeze_api_while_kubeadm_reads_it(stack, handle)
    frozen = time.monotonic()
    try:
        # A cluster phase of worker-1 (its drain, or its readiness wait) calls the API server too.
        told = wait_for(lambda: next((p["detail"] for e in handle.status()["entries"][0].values()
                                      for p in e["phases"] if p["state"] == "running"
                                      and p["detail"].startswith("waiting for the API server")), None), timeout=30)
        time.sleep(max(0.0, 35 - (time.monotonic() - frozen)))
    finally:
        thaw()
    assert "retried for up to 120s (policies.api_outage_tolerance)" in told
    state, error = finish(handle)
    assert state == "succeeded", error
    events = [e["message"] for e in handle.status()["events"]]
    outage = [m for m in events if m.startswith("worker-2: kubeadm-upgrade-node: the API server does not answer (")]
    assert outage and "policies.api_outage_tolerance allows" in outage[0], events
    assert phase_record(handle, "worker-2", "kubeadm-upgrade-node")["state"] == "succeeded"
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_a_readiness_wait_does_not_count_the_time_the_api_server_was_frozen(make_stack, tmp_path):
    """worker-1's readiness wait (ready_timeout 8 s) begins while the API server is frozen for
    25 s. No kubelet can report Ready then, so the timeout counts from when it answers again:
    before, the wait failed "did not become Ready within 8s … fix its kubelet" as soon as the
    API server came back (the soak's freeze-api fault met it)."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="systemctl restart kubelet", seconds=3.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1, ready_timeout=8),
                    broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "restart-kubelet"), timeout=180)
    thaw = freeze_api_server(box)
    try:
        wait_for(phase_running(handle, "worker-1", "wait-ready"), timeout=30)
        time.sleep(25)
    finally:
        thaw()
    state, error = finish(handle)
    assert state == "succeeded", error
    assert phase_record(handle, "worker-1", "wait-ready")["state"] == "succeeded"
    assert_safe(box, 1)


def test_an_api_server_frozen_past_the_tolerance_fails_the_phase_naming_it_and_retry_finishes(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=3, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-2", command="kubeadm upgrade node", seconds=8.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1, api_outage_tolerance=6),
                    broker=stack.broker)
    thaw = freeze_api_while_kubeadm_reads_it(stack, handle)
    try:
        wait_for(lambda: phase_record(handle, "worker-2", "kubeadm-upgrade-node").get("state") == "failed",
                 timeout=90)
    finally:
        thaw()
    failed = phase_record(handle, "worker-2", "kubeadm-upgrade-node")
    assert failed["error"].endswith("(the API server has not answered for the 6s "
                                    "policies.api_outage_tolerance allows)"), failed["error"]
    assert "kubeadm upgrade node" in failed["error"]
    state, _ = finish(handle)
    assert state == "failed"
    retry_succeeds(handle)
    assert_safe(box, 1)


def test_a_broker_out_of_memory_is_named_by_status_and_the_campaign_finishes_once_it_has_memory(
        make_stack, tmp_path):
    """The broker runs out of memory mid-campaign (kubeupgrade's Redis evicts nothing, so
    writes are refused). Nothing can record why then, so status says it from the broker's
    INFO, with what to do; once the broker has memory again the campaign finishes (after one
    retry at most: a phase whose writes were refused fails, saying so) and every promise held
    throughout."""
    import redis

    stack = make_stack(control_planes=1, workers=3, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="apt-get install -y -q kubectl", seconds=4.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=180)
    broker = redis.Redis.from_url(stack.broker)
    # Below what it uses: every write that needs memory is refused from now on, the record's,
    # the tasks' results and the heartbeats alike (a limit just above it is reached, or not,
    # as the campaign's memory comes and goes).
    broker.config_set("maxmemory", int(broker.info("memory")["used_memory"]) // 2)

    def told():
        shown = subprocess.run([sys.executable, "-m", "kubeupgrade", "status", handle.id, "--broker",
                                stack.broker], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "COLUMNS": "400"})
        text = " ".join(shown.stdout.split())
        return "The broker is out of memory:" in text and "`kubeupgrade prune`" in text

    try:
        wait_for(told, timeout=60)
        time.sleep(10)  # stuck a while: heartbeats and leases lapse, results go unwritten
    finally:
        broker.config_set("maxmemory", 0)
    converges(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_a_windows_agent_whose_task_ends_while_the_broker_is_out_of_memory_takes_its_next_task(
        make_stack, tmp_path):
    """A Windows agent runs its task in a thread. When its phase ends while the broker refuses
    writes, neither the phase's end nor the task's failure can be stored; the agent must still
    end the task and take the next one from its queue once the broker has memory, instead of
    beating with its queue filling."""
    import redis

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="windows")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="sc.exe stop kubelet", seconds=4.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1, agent_timeout=20),
                    broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=180)
    broker = redis.Redis.from_url(stack.broker)
    broker.config_set("maxmemory", int(broker.info("memory")["used_memory"]) // 2)
    try:
        time.sleep(12)  # the stop ends (4 s) and its phase's end is refused
    finally:
        broker.config_set("maxmemory", 0)
    converges(handle)
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    assert_safe(box, 1)


def test_missing_agent_fails_naming_the_node(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    stack.stop("agent-worker-2")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", agent_timeout=3), broker=stack.broker)
    state, error = finish(handle, timeout=120)
    assert state == "failed"
    assert error["node"] == "worker-2"
    assert "the agent of worker-2 did not answer within 3s" in error["message"]
    stack.start_agent("worker-2")
    stack.wait_for_workers(["agent@worker-2"])
    retry_succeeds(handle)


def test_duplicate_delivery_changes_nothing(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    box = stack.sandbox
    # worker-1's restart is slow, so the campaign is still running when the duplicate arrives.
    box.add_fault("hang", node="worker-1", command="systemctl restart kubelet", seconds=4.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "restart-kubelet"), timeout=120)
    record = phase_record(handle, "worker-1", "install-kubelet")
    entry = handle.status()["entries"][0]["worker-1"]
    app = client_app(stack.broker)
    # Re-deliver the completed phase, as a lost ack would. Phase tasks keep no result when they
    # succeed (the record is the truth); this one is asked to, to read what it answered.
    result = app.signature(PHASE_TASKS[Phase.INSTALL_KUBELET], kwargs={
        "campaign": handle.id, "hop": 0, "node": "worker-1", "phase": "install-kubelet",
        "attempt": entry["attempt"]}).apply_async(queue=node_queue("worker-1"), task_id=record["task_id"] + "-dup",
                                                  ignore_result=False)
    assert result.get(timeout=60) == {"node": "worker-1", "phase": "install-kubelet", "status": "already-done"}
    assert finish(handle)[0] == "succeeded"
    installs = [e for e in box.command_log("worker-1")
                if e["argv"][:2] == ["apt-get", "install"] and "--download-only" not in e["argv"]
                and any(a.startswith("kubelet=") for a in e["argv"])]
    assert len(installs) == 1  # the duplicate installed nothing


def test_a_second_delivery_of_every_task_under_way_runs_beside_its_original_and_changes_nothing_more(
        make_stack, tmp_path):
    """Every message a consumer holds unacknowledged is delivered a second time while its
    original still runs (as kombu's visibility timeout does to a long task): a drain waiting on
    a PodDisruptionBudget in the controller's pool, where the copy can run beside it, and
    whatever the agents hold. The copies are genuine and signed. Each node is still cordoned
    once and upgraded once, never more than one worker is out, and the copies are consumed."""
    import redis as redis_client
    from kubernetes import client, config

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    api = config.new_client_from_config(config_file=str(box.kubeconfig))
    policy = client.PolicyV1Api(api)
    policy.patch_namespaced_pod_disruption_budget("api-pdb", "shop", {"spec": {"minAvailable": 3}})
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(lambda: any(phase_running(handle, w, "drain")() for w in ("worker-1", "worker-2")), timeout=120)
    time.sleep(1.0)  # a look or two refused by the budget
    copied = stack.deliver_again()
    assert any(task.endswith("drain_node") for task, _ in copied), copied
    time.sleep(2.0)  # the copy's looks run beside the original's
    policy.patch_namespaced_pod_disruption_budget("api-pdb", "shop", {"spec": {"minAvailable": 2}})
    api.close()
    state, error = finish(handle)
    assert state == "succeeded", error
    assert_safe(box, 1)
    cordons = [e["node"] for e in box.history() if e["event"] == "cordon"]
    assert sorted(cordons) == ["cp-1", "worker-1", "worker-2"], cordons
    for node in ("cp-1", "worker-1", "worker-2"):
        installs = [e for e in box.command_log(node) if e["argv"][:2] == ["apt-get", "install"]
                    and "--download-only" not in e["argv"] and any(a.startswith("kubelet=") for a in e["argv"])]
        assert len(installs) == 1, (node, installs)
    broker = redis_client.Redis.from_url(stack.broker_for("admin"))
    wait_for(lambda: broker.hlen("unacked") == 0 and not any(broker.llen(queue) for _, queue in copied),
             timeout=60)


def test_abort_names_cordoned_nodes_and_uncordon_releases_them(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4")
    box = stack.sandbox
    box.add_fault("never-ready", node="worker-1")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1, ready_timeout=60),
                    broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "wait-ready"), timeout=120)
    assert handle.abort() == ["worker-1"]
    assert handle.state() == "aborted"
    box.clear_faults()
    wait_for(lambda: phase_record(handle, "worker-1", "wait-ready").get("state") != "running", timeout=90)
    assert handle.abort(uncordon=True) == []
    assert invariants.check_nothing_left_cordoned(box) == []


def test_abort_uncordon_with_the_controller_frozen_names_the_node_it_could_not_release(make_stack, tmp_path):
    """`abort --uncordon` while the controller is frozen (SIGSTOP): the release goes
    unanswered, and abort returns (no exception, no wait beyond its budget) naming the node left
    cordoned, with the reason among the campaign's events. Once the controller is back, the
    release still queued uncordons it, and aborting again says no node is left."""
    import os
    import signal

    from kubeupgrade.workflow.control import abort
    from kubeupgrade.workflow.record import CampaignStore

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="apt-get install -y -q kubectl", seconds=8.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=120)
    store = CampaignStore.from_url(stack.broker)
    controller = stack.processes["controller"].pid
    os.killpg(controller, signal.SIGSTOP)
    try:
        started = time.monotonic()
        left = abort(client_app(stack.broker), store, handle.id, uncordon=True, release_wait=3.0)
        waited = time.monotonic() - started
    finally:
        os.killpg(controller, signal.SIGCONT)
    assert left == ["worker-1"]
    assert waited < 30.0  # the 3 s release budget, plus the restores' wait for the busy agent
    assert any("worker-1: not uncordoned on abort: the controller did not answer" in e["message"]
               for e in handle.status()["events"]), handle.status()["events"]
    wait_for(lambda: not box.api_get("/api/v1/nodes/worker-1")["spec"].get("unschedulable"), timeout=60)
    assert handle.abort(uncordon=True) == []
