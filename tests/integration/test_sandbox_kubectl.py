"""Fidelity: a real kubectl against the sandbox API server (skipped where kubectl is absent)."""

import os
import shutil
import subprocess

import pytest

from tests.helpers import wait_for

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


def kubectl(box, *args, timeout=60):
    env = {**os.environ, "KUBECONFIG": str(box.kubeconfig)}
    return subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def box(make_sandbox):
    return make_sandbox(control_planes=1, workers=3, version="1.31.2")


def test_get_nodes_prints_status_roles_and_versions(box):
    result = kubectl(box, "get", "nodes")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["cp-1"][1:3] == ["Ready", "control-plane"]
    assert rows["worker-1"][1:3] == ["Ready", "<none>"]
    assert {row[-1] for row in rows.values()} == {"v1.31.2"}


def test_cordon_and_uncordon(box):
    assert kubectl(box, "cordon", "worker-2").stdout.strip() == "node/worker-2 cordoned"
    row = kubectl(box, "get", "node", "worker-2").stdout.splitlines()[1].split()
    assert row[1] == "Ready,SchedulingDisabled"
    assert kubectl(box, "uncordon", "worker-2").stdout.strip() == "node/worker-2 uncordoned"
    row = kubectl(box, "get", "node", "worker-2").stdout.splitlines()[1].split()
    assert row[1] == "Ready"


def test_drain_evicts_and_skips_daemonsets(box):
    result = kubectl(box, "drain", "worker-1", "--ignore-daemonsets", "--delete-emptydir-data",
                     "--timeout=60s")
    assert result.returncode == 0, result.stderr
    assert "node/worker-1 cordoned" in result.stdout
    assert "node/worker-1 drained" in result.stdout
    assert "Warning: ignoring DaemonSet-managed Pods: kube-system/kube-proxy-" in result.stderr
    pods = kubectl(box, "get", "pods", "-A", "--field-selector", "spec.nodeName=worker-1", "-o", "name").stdout
    assert "pod/web-" not in pods and "pod/api-" not in pods
    assert "pod/kube-proxy-" in pods


def test_drain_without_emptydir_flag_refuses_like_kubectl(box):
    result = kubectl(box, "drain", "worker-1", "--ignore-daemonsets", "--timeout=20s")
    assert result.returncode != 0
    assert "cannot delete Pods with local storage" in result.stderr


def test_drain_held_by_a_pdb_prints_kubectls_retry_message(box):
    assert kubectl(box, "patch", "pdb", "api-pdb", "-n", "shop", "--type=merge",
                   "-p", '{"spec":{"minAvailable":3}}').returncode == 0
    result = kubectl(box, "drain", "worker-1", "--ignore-daemonsets", "--delete-emptydir-data",
                     "--timeout=8s", timeout=60)
    assert result.returncode != 0
    assert ("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption "
            "budget.") in result.stderr
    wait_for(lambda: "SchedulingDisabled" in kubectl(box, "get", "node", "worker-1").stdout)
