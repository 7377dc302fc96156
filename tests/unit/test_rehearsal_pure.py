"""What a rehearsal keeps of a live cluster and how it runs the campaign: no I/O."""

from pathlib import Path

from kubeupgrade.campaign_file import load_campaign
from kubeupgrade.kube.snapshot import _kept, _shape, host_os, package_manager
from kubeupgrade.model.campaign import OnPdbBlock
from kubeupgrade.rehearsal import DRAIN_SECONDS, rehearsable


def node(os_image, system="linux"):
    return {"status": {"nodeInfo": {"osImage": os_image, "operatingSystem": system}}}


def test_the_host_os_comes_from_what_the_node_reports():
    assert host_os(node("Ubuntu 22.04.5 LTS")) == ("apt", False)
    assert host_os(node("Rocky Linux 9.5 (Blue Onyx)")) == ("dnf", False)
    assert host_os(node("Red Hat Enterprise Linux 9.4 (Plow)")) == ("dnf", False)
    assert host_os(node("CentOS Linux 7 (Core)")) == ("yum", False)
    assert host_os(node("Windows Server 2022 Datacenter", "windows")) == ("windows", False)
    assert host_os(node("Flatcar Container Linux 3975.2.0")) == ("apt", True)  # guessed, and said so


def test_a_rehearsal_mirrors_dnf_5_where_the_node_runs_a_release_that_has_it():
    """Fedora 41 made dnf 5 its dnf (it refuses --disableexcludes); RHEL and its rebuilds, 10
    included, keep dnf 4."""
    for image in ("Fedora Linux 41 (Server Edition)", "Fedora Linux 42 (Cloud Edition)", "Fedora 43"):
        assert host_os(node(image)) == ("dnf", False) and package_manager(node(image)) == "dnf5", image
    for image in ("Fedora Linux 40 (Server Edition)", "Fedora 39 (Thirty Nine)", "Rocky Linux 9.5 (Blue Onyx)",
                  "Red Hat Enterprise Linux 10.0 (Coughlan)", "AlmaLinux 10.0 (Purple Lion)", "Ubuntu 24.04.1 LTS"):
        assert package_manager(node(image)) == "", image


def test_a_shaped_object_keeps_what_an_upgrade_meets_and_no_secret_or_server_field():
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "api-1", "namespace": "shop", "uid": "u", "resourceVersion": "9",
                        "managedFields": [{}], "labels": {"app": "api"},
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "a"},
                        "ownerReferences": [{"kind": "ReplicaSet", "name": "api-x", "uid": "r", "controller": True}]},
           "spec": {"nodeName": "worker-1", "volumes": [{"name": "c", "emptyDir": {}}],
                    "containers": [{"name": "api", "image": "api:1", "env": [{"name": "PASSWORD", "value": "p"}],
                                    "envFrom": [{"secretRef": {"name": "s"}}]}]},
           "status": {"phase": "Running"}}
    shaped = _shape(pod)
    assert shaped["metadata"] == {"name": "api-1", "namespace": "shop", "labels": {"app": "api"},
                                  "annotations": {"team": "a"}, "owner": {"kind": "ReplicaSet", "name": "api-x"}}
    assert "status" not in shaped and shaped["spec"]["nodeName"] == "worker-1"
    assert shaped["spec"]["containers"] == [{"name": "api", "image": "api:1"}]
    assert pod["spec"]["containers"][0]["env"]  # the live object is left as it was


def test_the_mirror_makes_kubeadms_addons_and_daemonset_pods_itself():
    mirror = {"metadata": {"name": "etcd-cp-1", "namespace": "kube-system",
                           "annotations": {"kubernetes.io/config.mirror": "x"}}}
    daemon = {"metadata": {"name": "exporter-a", "namespace": "monitoring",
                           "ownerReferences": [{"kind": "DaemonSet", "name": "exporter", "controller": True}]}}
    bare = {"metadata": {"name": "debug", "namespace": "default"}}
    assert not _kept("pods", mirror) and not _kept("pods", daemon) and _kept("pods", bare)
    assert not _kept("deployments", {"metadata": {"name": "coredns", "namespace": "kube-system"}})
    assert _kept("deployments", {"metadata": {"name": "coredns", "namespace": "dns"}})


def test_a_rehearsal_fails_fast_on_a_blocked_drain_and_leaves_out_windows_and_user_gates(tmp_path):
    path = Path(tmp_path / "c.yaml")
    path.write_text("cluster: prod\ntarget: '1.31'\npolicies:\n  drain: {timeout: 10m, on_pdb_block: wait}\n"
                    "  windows: [{days: [Sat], start: '02:00', end: '04:00', timezone: UTC}]\n"
                    "  gates: [{name: errors, command: [/bin/true]}]\n")
    notes: list[str] = []
    rehearsed = rehearsable(load_campaign(path), notes)
    drain = rehearsed.policies.drain
    assert (drain.timeout_seconds, drain.on_pdb_block) == (DRAIN_SECONDS, OnPdbBlock.FAIL)
    assert rehearsed.policies.windows == () and rehearsed.policies.gates == ()
    assert len(notes) == 2 and "errors" in notes[1]


def test_the_report_lists_each_nodes_drain_and_every_refusal_once():
    from kubeupgrade.kube.drain import DrainPreview
    from kubeupgrade.rehearsal import Rehearsal, _outcome, render

    doc = {"entries": [{
        "@cluster": {"state": "pending", "phases": []},
        "worker-1": {"state": "failed", "phases": [{"phase": "drain", "state": "failed", "detail": "refused"}]},
        "worker-2": {"state": "stopped", "phases": [{"phase": "drain", "state": "pending"}]},
        "worker-3": {"state": "failed", "phases": [{"phase": "drain", "state": "failed", "detail": "x"}]}}],
        "error": {"message": "drain of worker-3 timed out: evicting shop/db-0 is refused"}}
    previews = {"worker-1": DrainPreview(evicts=["shop/api-1"], blocked=["default/debug has no controller (...)"]),
                "worker-2": DrainPreview(evicts=["shop/api-2", "shop/web-1"]),
                "worker-3": DrainPreview()}
    nodes, blockers = _outcome(doc, previews)
    # worker-1's run failure is its preview's refusal; worker-3's is news (pods moved there).
    assert blockers == ["worker-1: default/debug has no controller (...)",
                        "drain of worker-3 timed out: evicting shop/db-0 is refused"]
    assert [n["node"] for n in nodes] == ["worker-1", "worker-2", "worker-3"]
    text = render(Rehearsal("c1", "failed", "refused", nodes, blockers, [], 600, 12.0))
    assert "    drain evicts 2: shop/api-2, shop/web-1" in text.splitlines()
    assert "    drain refused: default/debug has no controller (...)" in text.splitlines()


def test_the_mirror_links_each_object_to_its_owners_new_uid_and_leaves_out_what_it_makes_itself():
    from kubeupgrade.kube.snapshot import ClusterSnapshot, mirror_objects

    def shaped(kind, name, owner=None, **spec):
        meta = {"name": name, "namespace": "shop"}
        if owner:
            meta["owner"] = {"kind": owner[0], "name": owner[1]}
        return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": spec}

    snapshot = ClusterSnapshot("v1.30.4", (), {
        "namespaces": [{"metadata": {"name": "shop"}, "spec": {}}],
        "deployments": [shaped("Deployment", "api", replicas=2)],
        "replicasets": [shaped("ReplicaSet", "api-5f6", ("Deployment", "api"), replicas=2)],
        "pods": [shaped("Pod", "api-5f6-a", ("ReplicaSet", "api-5f6"), nodeName="worker-1"),
                 shaped("Pod", "old-77c-b", ("ReplicaSet", "old-77c"), nodeName="worker-2"),  # owner not mirrored
                 shaped("Pod", "debug", nodeName="worker-2")]})
    mirrored = mirror_objects(snapshot)
    deployment, = mirrored["deployments"]
    rs, = mirrored["replicasets"]
    assert rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
    pods = {p["metadata"]["name"]: p for p in mirrored["pods"]}
    assert sorted(pods) == ["api-5f6-a", "debug"]
    assert pods["api-5f6-a"]["metadata"]["ownerReferences"][0] == {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5f6", "uid": rs["metadata"]["uid"],
        "controller": True, "blockOwnerDeletion": True}
    assert "ownerReferences" not in pods["debug"]["metadata"] and pods["debug"]["spec"]["nodeName"] == "worker-2"
    assert len({o["metadata"]["uid"] for items in mirrored.values() for o in items}) == 5  # all new, all distinct
    # The snapshot itself is left as it was (mirrored objects are copies).
    assert snapshot.objects["pods"][0]["metadata"]["owner"] == {"kind": "ReplicaSet", "name": "api-5f6"}
