"""`kubeupgrade doctor` against a real stack: all green as the sandbox ships it (the controller's
shipped ServiceAccount, every agent trusting the operator's key), then each fault it exists to
find, named with its fix: a right missing from the controller's role, an agent stopped, a key
no node trusts. It changes nothing: its writes are dry runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

from kubeupgrade.security.messages import KEY_ENV as MESSAGE_KEY
from kubeupgrade.security.signing import KEY_ENV, create_key
from tests.helpers import controller_rbac_without


def doctor(stack, *argv, env=None):
    return subprocess.run([sys.executable, "-m", "kubeupgrade", "doctor", "--broker", stack.broker, *argv,
                           "-o", "json"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def rows(result):
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_doctor_is_green_as_shipped_and_names_each_fault_with_its_fix(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="mixed")
    box = stack.sandbox
    controller = str(stack.controller_kubeconfig)
    writes = len(box.api_get("/sandbox/v1/writes")["items"])
    healthy = doctor(stack, "--kubeconfig", controller)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    found = rows(healthy)
    assert found["agents"]["detail"] == "3/3 live" and found["controller"]["ok"]
    assert found["agents verify messages"]["ok"] and found["operator message key"]["ok"]
    assert found["broker TLS"]["detail"] == "plain redis:// on this host"
    assert found["agents on their own hosts"]["ok"]
    assert all(w["dry_run"] for w in box.api_get("/sandbox/v1/writes")["items"][writes:])

    trimmed = controller_rbac_without(tmp_path, "pods/eviction")
    stack.stop("agent-worker-2")
    stack.stop("agent-worker-1")
    stack.start_agent("worker-1", unsigned_messages=True)
    stack.wait_for_workers(["agent@worker-1"])
    other = create_key(tmp_path / "other")
    sick = doctor(stack, "--kubeconfig", str(box.service_account(trimmed, "kubeupgrade-controller")),
                  env={KEY_ENV: str(other.private), MESSAGE_KEY: ""})
    assert sick.returncode == 1, sick.stdout
    found = rows(sick)
    assert found["controller RBAC"]["detail"] == "missing: create pods/eviction"
    assert "controller-rbac.yaml" in found["controller RBAC"]["fix"]
    assert found["agents"]["detail"] == "2/3 live; none on: worker-2"
    assert found["agents trust the key"]["detail"] == \
        f"key {other.id} is not trusted on: cp-1, worker-1"
    assert "/etc/kubeupgrade/trusted" in found["agents trust the key"]["fix"]
    assert found["agents verify messages"]["detail"] == "unsigned tasks accepted on: worker-1"
    assert "KUBEUPGRADE_MESSAGE_KEY" in found["operator message key"]["detail"]
    text = subprocess.run([sys.executable, "-m", "kubeupgrade", "doctor", "--broker", stack.broker],
                          capture_output=True, text=True, timeout=60)
    assert text.returncode == 0 and "operator key" in text.stdout and "Traceback" not in text.stderr
    assert Path(controller).exists()


def test_doctor_names_an_agent_started_for_another_node(make_stack):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    stack.kill("agent-worker-2")
    # worker-1's host with a second agent that says it serves worker-2: a swapped inventory line
    stack.start_agent("worker-2", host="worker-1")
    stack.wait_for_workers(["agent@worker-2"])
    result = doctor(stack, "--kubeconfig", str(stack.controller_kubeconfig))
    assert result.returncode == 1, result.stdout
    row = rows(result)["agents on their own hosts"]
    assert row["detail"] == "elsewhere: worker-2 (its agent runs on worker-1's host)"
    assert "--node" in row["fix"]

