"""The agent farm (kubeupgrade.sandbox.agent_farm): many nodes' agents in one process, their
simulated commands run in-process. The scale benchmark measures the engine with it, so it must
answer as the agents and the simulated binaries do."""

import pytest

from kubeupgrade.api import submit
from kubeupgrade.host.executor import Command, LocalExecutor
from kubeupgrade.model.plan import Phase
from kubeupgrade.sandbox import invariants
from kubeupgrade.sandbox.agent_farm import identities
from kubeupgrade.security.signing import load_private_key, sign
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.names import PHASE_TASKS, node_queue
from kubeupgrade.workflow.record import CampaignStore
from tests.e2e.test_trust import forge, forged_task
from tests.helpers import wait_for, write_campaign


def test_a_farm_runs_a_whole_campaign_as_the_agents_would(make_stack, tmp_path):
    stack = make_stack(control_planes=2, workers=3, version="1.30.4", os_family="dnf", farm=True)
    assert [name for name in stack.processes if name.startswith("agent-")] == []
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=2), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", handle.status().get("error")
    assert invariants.check_all(stack.sandbox, 2) == []
    for node in stack.sandbox.nodes:  # each host's own commands, in its own log
        argvs = [" ".join(run["argv"]) for run in stack.sandbox.command_log(node["name"])]
        upgrade = "kubeadm upgrade apply" if node["name"] == "cp-1" else "kubeadm upgrade node"
        assert any(argv.startswith(upgrade) for argv in argvs), (node["name"], argvs)
    rows = stack.sandbox.node_rows()
    assert all(row.version.startswith("v1.31.") and row.status == "Ready" for row in rows), rows


def test_a_task_is_run_as_the_agent_of_the_queue_it_came_from(make_stack, tmp_path):
    """Signed, for a signed campaign, but for worker-2 and sent to worker-1's queue: refused as
    worker-1's own agent refuses it; sent to worker-2's queue, it runs, on worker-2's host."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt", farm=True)
    store = CampaignStore.from_url(stack.broker)
    operator_key = load_private_key(stack.sandbox.signing_key)
    app = client_app(stack.broker)
    marker = tmp_path / "hook-ran"
    campaign_id = forge(store, marker, lambda cid, c: sign(operator_key, cid, "forged", c))

    def send(queue):
        return app.signature(PHASE_TASKS[Phase.HOOKS_AFTER_NODE], kwargs={
            "campaign": campaign_id, "hop": 0, "node": "worker-2",
            "phase": Phase.HOOKS_AFTER_NODE.value, "attempt": 1}).apply_async(
                queue=node_queue(queue), task_id=forged_task(campaign_id), ignore_result=False)  # none kept unless asked

    with pytest.raises(Exception, match="refused by the agent of 'worker-1': misrouted message"):
        send("worker-1").get(timeout=60, propagate=True)
    assert not marker.exists()
    send("worker-2")
    wait_for(marker.exists, timeout=60)
    assert stack.sandbox.command_log("worker-1") == []


@pytest.mark.parametrize("argv", [
    ["kubeadm", "version", "-o", "short"],
    ["kubeadm", "upgrade", "plan", "v1.31.0"],
    ["kubeadm", "upgrade", "apply", "v1.30.2"],  # refused: a downgrade
    ["kubeadm", "upgrade", "apply", "v1.31.0"],  # refused: no confirmation on stdin
    ["kubelet", "--version"],
    ["apt-cache", "madison", "kubeadm"],
    ["dpkg-query", "-W", "-f=${Version}", "kubelet"],
    ["systemctl", "is-active", "kubelet"],
    ["dnf", "--version"],  # not on an apt host
])
def test_in_process_commands_answer_as_the_simulated_binaries_do(make_sandbox, argv):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4", os_family="apt")
    identity = identities(box.paths.root, ["cp-1"])[node_queue("cp-1")]
    assert identity.executor is not None
    lock = identity.host_root / "var/lib/kubeupgrade/host.lock"
    command = Command(tuple(argv), 60, stdin="n\n")
    as_process = LocalExecutor(identity.path, lock_file=lock).run(command)
    in_process = identity.executor(lock).run(command)
    assert (in_process.exit_code, in_process.stdout, in_process.stderr) == \
        (as_process.exit_code, as_process.stdout, as_process.stderr)
    runs = box.command_log("cp-1")
    if argv[0] in ("kubeadm", "kubelet", "apt-cache", "dpkg-query", "systemctl"):
        assert [run["argv"] for run in runs[-2:]] == [argv, argv]  # both logged, alike


def test_a_farm_asked_for_a_node_the_sandbox_lacks_says_so_in_one_line(make_sandbox):
    import subprocess
    import sys

    box = make_sandbox(control_planes=1, workers=1, version="1.30.4", os_family="apt")
    done = subprocess.run([sys.executable, "-m", "kubeupgrade.sandbox.agent_farm", "--dir", str(box.paths.root),
                           "--nodes", "cp-1,worker-9"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --nodes: not in the sandbox at {box.paths.root}: worker-9"
