"""A cluster's shape read with the rehearsal's read-only rights and rebuilt as a mirror sandbox:
nodes keep their own kubelet and control-plane versions (a cluster caught mid-upgrade, a worker
left behind), hosts included."""

import dataclasses
from pathlib import Path

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.snapshot import mirror_objects, take_snapshot
from tests.helpers import run_on

REHEARSE_RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "rehearse-rbac.yaml"
SKEWED = [
    {"name": "cp-a", "role": "control-plane", "os": "apt", "control_plane": "1.31.14", "kubelet": "1.31.14"},
    {"name": "cp-b", "role": "control-plane", "os": "apt"},
    {"name": "old-worker", "role": "worker", "os": "dnf", "kubelet": "1.28.15"},
    {"name": "worker", "role": "worker", "os": "apt"},
]


def versions_of(box):
    return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in box.api_get("/api/v1/nodes")["items"]}


def test_a_mirror_keeps_every_nodes_own_versions(make_sandbox):
    live = make_sandbox(node_specs=SKEWED, version="1.30.4")
    assert versions_of(live) == {"cp-a": "v1.31.14", "cp-b": "v1.30.4", "old-worker": "v1.28.15", "worker": "v1.30.4"}
    api = KubeApi(str(live.service_account(REHEARSE_RBAC, "kubeupgrade-rehearse")))
    try:
        snapshot = take_snapshot(api)
    finally:
        api.close()
    shapes = {n.name: n for n in snapshot.nodes}
    assert snapshot.version == "v1.30.4"
    assert (shapes["cp-a"].kubelet, shapes["cp-a"].control_plane) == ("v1.31.14", "v1.31.14")
    assert (shapes["cp-b"].control_plane, shapes["old-worker"].kubelet) == ("v1.30.4", "v1.28.15")
    assert shapes["worker"].control_plane == "" and shapes["old-worker"].os == "dnf"

    mirror = make_sandbox(node_specs=[dataclasses.asdict(n) for n in snapshot.nodes], version=snapshot.version,
                          workload=False, objects=mirror_objects(snapshot))
    assert versions_of(mirror) == versions_of(live)
    # The workloads too: read back from the mirror, the same pods on the same nodes under the
    # same owners, and the same budgets.
    api = KubeApi(str(mirror.kubeconfig))
    try:
        again = take_snapshot(api)
    finally:
        api.close()

    def placed(snap):
        return {(p["metadata"]["namespace"], p["metadata"]["name"]): (p["spec"].get("nodeName"), p["metadata"].get("owner"))
                for p in snap.objects["pods"]}

    assert placed(again) == placed(snapshot) and len(placed(snapshot)) >= 4
    assert [b["metadata"]["name"] for b in again.objects["poddisruptionbudgets"]] == \
        [b["metadata"]["name"] for b in snapshot.objects["poddisruptionbudgets"]]
    apiservers = {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
                  for p in mirror.api_get("/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver")["items"]}
    assert apiservers == {"cp-a": "v1.31.14", "cp-b": "v1.30.4"}
    # The hosts too: what the packages installed is what the node reports.
    assert run_on(mirror, "old-worker", "kubeadm", "version", "-o", "short").stdout.strip() == "v1.28.15"
    assert run_on(mirror, "cp-a", "kubelet", "--version").stdout.strip() == "Kubernetes v1.31.14"


@pytest.mark.parametrize(("spec", "words"), [
    ({"name": "w", "role": "worker", "os": "apt", "kubelet": "1.28.15"}, "node w: kubelet v1.28.15 is outside the skew"),
    ({"name": "w", "role": "worker", "os": "apt", "control_plane": "1.31.14"}, "only a control plane"),
    ({"name": "w", "role": "worker", "os": "apt", "kubelet": "1.32.99"}, "node w: kubelet 1.32.99: not a release"),
])
def test_a_node_version_no_cluster_could_run_is_refused_in_one_line(tmp_path, spec, words):
    from kubeupgrade.sandbox.manager import Sandbox

    nodes = [{"name": "cp", "role": "control-plane", "os": "apt"}, spec]
    with pytest.raises(InvalidInput) as refused:
        Sandbox.up(tmp_path / "s", node_specs=nodes, version="1.32.4")
    assert words in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "s").exists()
