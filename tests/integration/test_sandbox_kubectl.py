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


def test_get_in_small_chunks_prints_every_node_once_under_one_header(box):
    # kubectl reads lists in chunks (limit / continue, 500 by default) and prints them as one
    whole = kubectl(box, "get", "nodes", "--chunk-size=0")
    chunked = kubectl(box, "get", "nodes", "--chunk-size=1")
    assert chunked.returncode == 0, chunked.stderr
    assert [line.split()[0] for line in chunked.stdout.splitlines()] == ["NAME", "cp-1", "worker-1", "worker-2", "worker-3"]
    assert [line.split()[0] for line in whole.stdout.splitlines()] == ["NAME", "cp-1", "worker-1", "worker-2", "worker-3"]
    names = kubectl(box, "get", "pods", "-A", "--chunk-size=2", "-o", "name").stdout.split()
    assert len(names) == len(set(names)) > 2
    assert sorted(names) == sorted(kubectl(box, "get", "pods", "-A", "--chunk-size=0", "-o", "name").stdout.split())


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


def test_events_written_through_core_v1_list_in_kubectl_and_in_events_k8s_io(box):
    from kubernetes import client, config

    from kubeupgrade.kube.events import NodeEvent, event_object

    api = config.new_client_from_config(str(box.kubeconfig))
    core, events = client.CoreV1Api(api), client.EventsV1Api(api)
    drained = NodeEvent("worker-1", "Drained", "cordoned; evicted 3 pod(s)", "c-1", "drain", "running")
    core.create_namespaced_event("default", event_object(drained, 1_800_000_000.0, "controller-host"))
    result = kubectl(box, "get", "events", "--field-selector", "involvedObject.name=worker-1")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[0], result.stdout.splitlines()[1]
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert row.split()[1:5] == ["Normal", "Drained", "node/worker-1", "cordoned;"]
    listed = events.list_namespaced_event("default").items
    assert [(e.reason, e.regarding.name, e.note, e.reporting_controller) for e in listed] == [
        ("Drained", "worker-1", "cordoned; evicted 3 pod(s)", "kubeupgrade")]
    created = events.create_namespaced_event("default", client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="worker-2.1"), event_time="2026-11-28T12:00:00.000000Z",
        reason="Rebooted", note="by hand", type="Normal", action="Reboot", reporting_controller="ops",
        reporting_instance="ops-1", regarding=client.V1ObjectReference(kind="Node", name="worker-2")))
    assert created.note == "by hand"
    assert core.read_namespaced_event("worker-2.1", "default").message == "by hand"  # one object, two views


def test_workload_tables_have_kubectls_columns_in_key_order(box):
    pdb = kubectl(box, "get", "pdb", "-A").stdout.splitlines()
    assert pdb[0].split() == ["NAMESPACE", "NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE",
                              "ALLOWED", "DISRUPTIONS", "AGE"]
    assert [row.split()[:5] for row in pdb[1:]] == [["shop", "api-pdb", "2", "N/A", "1"],
                                                   ["shop", "web-pdb", "N/A", "1", "1"]]
    ds = kubectl(box, "get", "ds", "-n", "kube-system").stdout.splitlines()
    assert ds[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                             "NODE", "SELECTOR", "AGE"]
    assert ds[1].split()[:7] == ["kube-proxy", "4", "4", "4", "4", "4", "kubernetes.io/os=linux"]
    deploy = kubectl(box, "get", "deploy", "-n", "shop").stdout.splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert [row.split()[:2] for row in deploy[1:]] == [["api", "3/3"], ["web", "3/3"]]
    rs = kubectl(box, "get", "rs", "-n", "shop").stdout.splitlines()
    assert rs[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    wait_for(lambda: all(row.split()[1:4] == ["3", "3", "3"]
                         for row in kubectl(box, "get", "rs", "-n", "shop").stdout.splitlines()[1:]))
    assert kubectl(box, "get", "cm", "-n", "kube-system").stdout.splitlines()[0].split() == ["NAME", "DATA", "AGE"]
    namespaces = kubectl(box, "get", "ns").stdout.splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    names = [row.split()[0] for row in namespaces[1:]]
    assert names == sorted(names) and all(row.split()[1] == "Active" for row in namespaces[1:])
    assert "<unknown>" not in "".join(kubectl(box, "get", kind, "-A").stdout
                                      for kind in ("pdb", "ds", "deploy", "rs", "cm", "pods", "nodes"))


def test_a_node_whose_kubelet_stopped_reporting_reads_notready_as_in_kubectl():
    from kubeupgrade.sandbox.tables import node_status_text

    def node(ready, unschedulable=False):
        conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
        return {"status": {"conditions": conditions}, "spec": {"unschedulable": unschedulable}}

    assert node_status_text(node("True")) == "Ready"
    assert node_status_text(node("False")) == "NotReady"
    assert node_status_text(node("Unknown", True)) == "NotReady,SchedulingDisabled"
    assert node_status_text(node(None)) == "Unknown"


TOPOLOGY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: shopfront, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: shopfront}}
  template:
    metadata: {labels: {app: shopfront}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: postgres, image: postgres:16}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: db, namespace: default}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: db}}
"""


def test_a_topology_built_with_kubectl_apply_gets_its_pods_and_scales(box, tmp_path):
    manifest = tmp_path / "topology.yaml"
    manifest.write_text(TOPOLOGY)
    applied = kubectl(box, "apply", "-f", str(manifest))  # with kubectl's default validation
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.split("\n")[:3] == ["deployment.apps/shopfront created", "statefulset.apps/db created",
                                              "poddisruptionbudget.policy/db created"]

    def pods():
        rows = kubectl(box, "get", "pods", "-n", "default", "-o", "wide").stdout.splitlines()[1:]
        return {row.split()[0]: (row.split()[2], row.split()[6]) for row in rows}

    wait_for(lambda: sum(1 for name, (state, _) in pods().items() if state == "Running") == 4)
    names = set(pods())
    assert {"db-0", "db-1"} <= names
    assert len([n for n in names if n.startswith("shopfront-")]) == 2
    assert all(node.startswith("worker-") for _, node in pods().values())  # the control plane is tainted
    assert kubectl(box, "apply", "-f", str(manifest)).stdout.startswith("deployment.apps/shopfront unchanged")
    assert kubectl(box, "scale", "deployment/shopfront", "--replicas=3").returncode == 0
    wait_for(lambda: len([n for n in pods() if n.startswith("shopfront-")]) == 3)
    sts = kubectl(box, "get", "sts", "db").stdout.splitlines()
    assert sts[0].split() == ["NAME", "READY", "AGE"] and sts[1].split()[:2] == ["db", "2/2"]
    pdb = kubectl(box, "get", "pdb", "db").stdout.splitlines()[1].split()
    assert pdb[:4] == ["db", "2", "N/A", "0"]  # both replicas needed: a drain would be refused
    evicted = kubectl(box, "drain", pods()["db-0"][1], "--ignore-daemonsets", "--delete-emptydir-data",
                      "--timeout=3s")
    assert evicted.returncode != 0 and "Cannot evict pod as it would violate the pod's disruption budget" \
        in evicted.stderr + evicted.stdout
