"""The sandbox API server, driven by the official `kubernetes` Python client, unmodified:
discovery, nodes, pods, patches, evictions against PodDisruptionBudgets, Status errors,
the simulated controllers, and state surviving a restart."""

import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.helpers import wait_for


@pytest.fixture
def cluster(make_sandbox):
    box = make_sandbox(control_planes=3, workers=3, version="1.30.4", os_family="mixed")
    api_client = config.new_client_from_config(config_file=str(box.kubeconfig))
    yield box, client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.PolicyV1Api(api_client), api_client
    api_client.close()


def test_version_and_discovery(cluster):
    box, core, apps, policy, api_client = cluster
    info = client.VersionApi(api_client).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "30", "v1.30.4")
    groups = {g.name for g in client.ApisApi(api_client).get_api_versions().groups}
    assert {"apps", "policy"} <= groups
    resources = {r.name: r for r in core.get_api_resources().resources}
    assert resources["pods/eviction"].group == "policy" and resources["pods/eviction"].kind == "Eviction"
    assert resources["nodes"].namespaced is False


def test_nodes_roles_versions_and_label_selectors(cluster):
    box, core, *_ = cluster
    nodes = core.list_node().items
    assert [n.metadata.name for n in nodes] == ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2", "worker-3"]
    assert {n.status.node_info.kubelet_version for n in nodes} == {"v1.30.4"}
    control_planes = core.list_node(label_selector="node-role.kubernetes.io/control-plane").items
    assert [n.metadata.name for n in control_planes] == ["cp-1", "cp-2", "cp-3"]
    workers = core.list_node(label_selector="!node-role.kubernetes.io/control-plane").items
    assert len(workers) == 3
    assert all(c.status == "True" for n in nodes for c in n.status.conditions if c.type == "Ready")
    assert [t.key for t in control_planes[0].spec.taints] == ["node-role.kubernetes.io/control-plane"]


def test_cordon_with_strategic_merge_patch_adds_the_unschedulable_taint(cluster):
    box, core, *_ = cluster
    core.patch_node("worker-1", {"spec": {"unschedulable": True}})
    node = wait_for(lambda: (n := core.read_node("worker-1")).spec.taints and n)
    assert node.spec.unschedulable is True
    assert [t.key for t in node.spec.taints] == ["node.kubernetes.io/unschedulable"]
    core.patch_node("worker-1", {"spec": {"unschedulable": None}})
    wait_for(lambda: not core.read_node("worker-1").spec.taints)
    events = [(h["node"], h["event"]) for h in box.history()]
    assert events == [("worker-1", "cordon"), ("worker-1", "uncordon")]


def test_merge_and_json_patches(cluster):
    box, core, _, _, api_client = cluster
    body = [{"op": "add", "path": "/metadata/labels/tier", "value": "gold"}]
    core.patch_node("worker-2", body)  # a list body is sent as a JSON patch
    assert core.read_node("worker-2").metadata.labels["tier"] == "gold"
    with pytest.raises(ApiException) as failure:
        core.patch_node("worker-2", [{"op": "replace", "path": "/metadata/nothing/here", "value": 1}])
    assert failure.value.status == 422
    assert json.loads(failure.value.body)["kind"] == "Status"


def test_pods_by_node_and_mirror_pods_show_versions(cluster):
    box, core, apps, *_ = cluster
    on_cp1 = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=cp-1").items
    mirror = {p.metadata.name: p.spec.containers[0].image for p in on_cp1
              if "kubernetes.io/config.mirror" in (p.metadata.annotations or {})}
    assert mirror["kube-apiserver-cp-1"] == "registry.k8s.io/kube-apiserver:v1.30.4"
    assert mirror["etcd-cp-1"].startswith("registry.k8s.io/etcd:3.5.")
    assert len(mirror) == 4
    coredns = apps.read_namespaced_deployment("coredns", "kube-system")
    assert coredns.spec.template.spec.containers[0].image == "registry.k8s.io/coredns/coredns:v1.11.1"
    proxy = apps.read_namespaced_daemon_set("kube-proxy", "kube-system")
    assert proxy.spec.template.spec.containers[0].image == "registry.k8s.io/kube-proxy:v1.30.4"
    pods = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-proxy").items
    assert len(pods) == 5  # kubeadm's kube-proxy runs on Linux nodes; worker-3 runs Windows
    windows = core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-proxy-windows").items
    assert [p.spec.node_name for p in windows] == ["worker-3"]


def test_kubeadm_config_holds_the_cluster_configuration(cluster):
    box, core, *_ = cluster
    data = core.read_namespaced_config_map("kubeadm-config", "kube-system").data
    assert "kubernetesVersion: v1.30.4" in data["ClusterConfiguration"]
    assert "kind: ClusterConfiguration" in data["ClusterConfiguration"]
    assert "kubelet" in core.read_namespaced_config_map("kubelet-config", "kube-system").data


def test_errors_are_status_objects(cluster):
    box, core, *_ = cluster
    with pytest.raises(ApiException) as missing:
        core.read_node("nope")
    assert missing.value.status == 404
    status = json.loads(missing.value.body)
    assert (status["kind"], status["reason"], status["message"]) == ("Status", "NotFound", 'nodes "nope" not found')
    with pytest.raises(ApiException) as duplicate:
        core.create_namespace({"metadata": {"name": "shop"}})
    assert duplicate.value.status == 409 and json.loads(duplicate.value.body)["reason"] == "AlreadyExists"


def test_requests_without_the_token_get_401(cluster):
    box, *_ = cluster
    request = urllib.request.Request(box.server + "/api/v1/nodes")
    context = ssl.create_default_context(cafile=str(box.paths.ca))
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(request, context=context, timeout=5)
    assert failure.value.code == 401
    assert json.loads(failure.value.read())["reason"] == "Unauthorized"


def test_a_service_account_gets_exactly_what_its_shipped_manifest_binds(cluster):
    """RBAC as a cluster applies it: the rehearsal's account reads everything it needs and is
    refused every write with the real 403; a forged token is refused outright."""
    from pathlib import Path

    box, *_ = cluster
    manifest = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "rehearse-rbac.yaml"
    reader = config.new_client_from_config(config_file=str(box.service_account(manifest, "kubeupgrade-rehearse")))
    core = client.CoreV1Api(reader)
    try:
        assert len(core.list_node().items) == 6
        assert core.read_namespaced_config_map("kubeadm-config", "kube-system").data["ClusterConfiguration"]
        with pytest.raises(ApiException) as refused:
            core.patch_node("worker-1", {"spec": {"unschedulable": True}})
        assert refused.value.status == 403
        status = json.loads(refused.value.body)
        assert status["reason"] == "Forbidden" and status["message"] == (
            'nodes "worker-1" is forbidden: User "system:serviceaccount:kube-system:kubeupgrade-rehearse" '
            'cannot patch resource "nodes" in API group "" at the cluster scope')
        with pytest.raises(ApiException) as other_config:
            core.read_namespaced_config_map("kube-proxy", "kube-system")
        assert other_config.value.status == 403
        assert not box.api_get("/api/v1/nodes/worker-1")["spec"].get("unschedulable")
    finally:
        reader.close()
    forged = urllib.request.Request(box.server + "/api/v1/nodes", headers={"Authorization": "Bearer forged"})
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(forged, context=ssl.create_default_context(cafile=str(box.paths.ca)), timeout=5)
    assert failure.value.code == 401


def test_a_controller_role_missing_a_rule_fails_the_drain_naming_the_verb_and_resource(cluster, tmp_path):
    from kubeupgrade.errors import PermanentError
    from kubeupgrade.kube.client import KubeApi
    from kubeupgrade.kube.drain import drain_node
    from kubeupgrade.model.campaign import DrainPolicy
    from tests.helpers import controller_rbac_without

    box, core, *_ = cluster
    trimmed = controller_rbac_without(tmp_path, "pods/eviction")
    api = KubeApi(str(box.service_account(trimmed, "kubeupgrade-controller")))
    try:
        with pytest.raises(PermanentError) as refused:
            drain_node(api, "worker-1", DrainPolicy(timeout_seconds=5, delete_emptydir_data=True))
    finally:
        api.close()
    message = str(refused.value)
    assert 'cannot create resource "pods/eviction" in API group ""' in message, message
    assert "(HTTP 403)" in message and "deploy/kubernetes/" in message
    assert len(core.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-1").items) > 0


def _web_pod_on(core, node):
    pods = core.list_namespaced_pod("shop", label_selector="app=web", field_selector=f"spec.nodeName={node}").items
    return pods[0]


def test_eviction_honours_the_budget_and_evicted_pods_come_back_elsewhere(make_sandbox):
    # Pods take a second to start here (0.04 s in the shared cluster): the replacement must not
    # be Ready before the second eviction below arrives, which on a loaded machine it was.
    box = make_sandbox(control_planes=3, workers=3, version="1.30.4", os_family="mixed", time_scale=0.25)
    api_client = config.new_client_from_config(config_file=str(box.kubeconfig))
    core, policy = client.CoreV1Api(api_client), client.PolicyV1Api(api_client)
    core.patch_node("worker-1", {"spec": {"unschedulable": True}})
    victim = _web_pod_on(core, "worker-1")
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=victim.metadata.name, namespace="shop"))
    core.create_namespaced_pod_eviction(victim.metadata.name, "shop", body)
    # web-pdb allows one disruption: while the replacement starts, a second eviction is refused.
    second = _web_pod_on(core, "worker-2")
    budget = policy.read_namespaced_pod_disruption_budget("web-pdb", "shop")
    if budget.status.disruptions_allowed == 0:
        with pytest.raises(ApiException) as refused:
            core.create_namespaced_pod_eviction(second.metadata.name, "shop", client.V1Eviction(
                metadata=client.V1ObjectMeta(name=second.metadata.name, namespace="shop")))
        assert refused.value.status == 429
    replacement = wait_for(lambda: [
        p for p in core.list_namespaced_pod("shop", label_selector="app=web").items
        if p.metadata.name != victim.metadata.name and p.status.phase == "Running"
        and len(core.list_namespaced_pod("shop", label_selector="app=web").items) == 3
    ])
    assert all(p.spec.node_name != "worker-1" for p in replacement)
    api_client.close()


def test_blocked_eviction_answers_429_with_the_real_message(cluster):
    box, core, _, policy, _ = cluster
    policy.patch_namespaced_pod_disruption_budget("api-pdb", "shop", {"spec": {"minAvailable": 3}})
    pod = core.list_namespaced_pod("shop", label_selector="app=api").items[0]
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod_eviction(pod.metadata.name, "shop", client.V1Eviction(
            metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace="shop")))
    status = json.loads(refused.value.body)
    assert refused.value.status == 429
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"][0] == {
        "reason": "DisruptionBudget",
        "message": "The disruption budget api-pdb needs 3 healthy pods and has 3 currently"}
    budget = policy.read_namespaced_pod_disruption_budget("api-pdb", "shop").status
    assert (budget.current_healthy, budget.desired_healthy, budget.disruptions_allowed) == (3, 3, 0)


def test_dry_run_eviction_deletes_nothing(cluster):
    box, core, *_ = cluster
    pod = core.list_namespaced_pod("shop", label_selector="app=api").items[0]
    core.create_namespaced_pod_eviction(pod.metadata.name, "shop", client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace="shop")), dry_run="All")
    assert core.read_namespaced_pod(pod.metadata.name, "shop").metadata.uid == pod.metadata.uid


def test_deleted_daemonset_pod_is_recreated_on_its_node(cluster):
    box, core, *_ = cluster
    pod = core.list_namespaced_pod("monitoring", field_selector="spec.nodeName=worker-3").items[0]
    core.delete_namespaced_pod(pod.metadata.name, "monitoring")
    # As the DaemonSet controller does: the new pod once the old one has stopped.
    again = wait_for(lambda: core.list_namespaced_pod("monitoring", field_selector="spec.nodeName=worker-3").items
                     if all(p.metadata.name != pod.metadata.name for p in core.list_namespaced_pod(
                         "monitoring", field_selector="spec.nodeName=worker-3").items) else None)
    assert len(again) == 1 and again[0].metadata.name != pod.metadata.name


def test_an_evicted_pod_terminates_for_its_grace_period_and_is_replaced_meanwhile(make_sandbox):
    """As the API server and the kubelet do it: an eviction marks the pod for deletion (no
    longer Ready: the budget counts it out), its ReplicaSet starts a replacement at once, and
    the pod goes once its grace period (30 s, scaled to 1.5 s here) is over. Evicting a pod
    already terminating passes whatever its budget says; a delete with grace 0 is immediate."""
    box = make_sandbox(control_planes=1, workers=3, version="1.30.4", os_family="apt", time_scale=0.05)
    api_client = config.new_client_from_config(config_file=str(box.kubeconfig))
    core, policy = client.CoreV1Api(api_client), client.PolicyV1Api(api_client)
    try:
        wait_for(lambda: policy.read_namespaced_pod_disruption_budget("web-pdb", "shop").status.disruptions_allowed)
        victim = _web_pod_on(core, "worker-1")
        evicted_at = time.monotonic()
        core.create_namespaced_pod_eviction(victim.metadata.name, "shop", client.V1Eviction(
            metadata=client.V1ObjectMeta(name=victim.metadata.name, namespace="shop")))
        going = core.read_namespaced_pod(victim.metadata.name, "shop")
        assert going.metadata.deletion_timestamp is not None
        assert going.metadata.deletion_grace_period_seconds == 30
        budget = policy.read_namespaced_pod_disruption_budget("web-pdb", "shop").status
        assert budget.disruptions_allowed == 0  # the terminating pod is not healthy
        # Refused for a Running pod, but this one is already going: no budget applies.
        core.create_namespaced_pod_eviction(victim.metadata.name, "shop", client.V1Eviction(
            metadata=client.V1ObjectMeta(name=victim.metadata.name, namespace="shop")))
        replacement = wait_for(lambda: [p for p in core.list_namespaced_pod("shop", label_selector="app=web").items
                                        if p.metadata.deletion_timestamp is None and p.metadata.name != victim.metadata.name
                                        and p.spec.node_name != "worker-1" and len(core.list_namespaced_pod(
                                            "shop", label_selector="app=web").items) == 4])
        assert replacement  # created while the victim still terminates
        wait_for(lambda: victim.metadata.name not in {
            p.metadata.name for p in core.list_namespaced_pod("shop", label_selector="app=web").items})
        assert time.monotonic() - evicted_at >= 1.5
        other = _web_pod_on(core, "worker-2")
        core.delete_namespaced_pod(other.metadata.name, "shop", grace_period_seconds=0)
        assert other.metadata.name not in {p.metadata.name for p in core.list_namespaced_pod("shop").items}
    finally:
        api_client.close()


def test_an_api_server_that_does_not_answer_in_time_is_stopped_not_left_behind(cluster):
    """A large sandbox on a slow machine loads its state for long: the wait grows with the
    nodes, and a server that still does not answer is stopped, with a one-line error."""
    import os

    from kubeupgrade.errors import RuntimeFailure

    box, *_ = cluster
    assert box.stop_api()
    with pytest.raises(RuntimeFailure, match=r"did not answer within 0s; stopped it \(log: "):
        box.start_api(timeout=0.0)
    assert box.api_pid() is None and not box.healthy()
    def command_line(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                return cmdline.read().decode(errors="replace")
        except OSError:  # ended meanwhile
            return ""

    left = [pid for pid in os.listdir("/proc") if pid.isdigit() and
            "kubeupgrade.sandbox.apiserver" in command_line(pid) and str(box.paths.root) in command_line(pid)]
    assert left == [], "the API server it started is still running"
    box.start_api()  # the default wait (30 s + 20 ms a node) is enough here
    assert box.healthy()


def test_state_survives_an_api_server_restart(cluster):
    box, core, *_ = cluster
    core.patch_node("worker-3", {"spec": {"unschedulable": True}})
    assert box.stop_api()
    assert not box.healthy()
    box.start_api()
    assert core.read_node("worker-3").spec.unschedulable is True
    assert ("worker-3", "cordon") in [(h["node"], h["event"]) for h in box.history()]


def _last_acknowledged_write_through_a_stop(box, core):
    """Patch a label with a rising sequence number while the API server stops; the last number
    answered 2xx."""
    import threading

    acknowledged = []
    stop = threading.Event()

    def writer():
        sequence = 0
        while not stop.is_set():
            sequence += 1
            try:
                core.patch_node("worker-2", {"metadata": {"labels": {"sequence": str(sequence)}}},
                                _request_timeout=2)
            except Exception:  # noqa: BLE001 - refused or cut off while stopping: not acknowledged
                continue
            acknowledged.append(sequence)

    thread = threading.Thread(target=writer)
    thread.start()
    wait_for(lambda: len(acknowledged) >= 20)
    assert box.stop_api()
    stop.set()
    thread.join()
    return acknowledged[-1]


def test_every_write_the_server_acknowledged_survives_its_stop(cluster):
    """A write answered 2xx is durable, as etcd makes it: one that lands while the server is
    stopping (on a kept-alive connection, after the last flush began) must be there after the
    restart, or be refused so the client retries it."""
    box, core, *_ = cluster
    for _ in range(3):
        last = _last_acknowledged_write_through_a_stop(box, core)
        box.start_api()
        kept = int(core.read_node("worker-2").metadata.labels["sequence"])
        assert kept >= last, f"write {last} was acknowledged, the state has {kept}"


def test_the_event_recorder_creates_every_event_and_annotates_each_node_once_per_batch(cluster):
    """A burst of milestones: every Event is there, in order, and each node's annotation shows
    its latest state, written once for the burst (the real API server through the real client)."""
    from kubeupgrade.kube.client import KubeApi
    from kubeupgrade.kube.events import ANNOTATION, EventRecorder, NodeEvent

    box, core, *_ = cluster
    story = [("worker-1", "UpgradeStarted", "set-repository", "running"),
             ("worker-2", "UpgradeStarted", "set-repository", "running"),
             ("worker-1", "Drained", "drain", "running"),
             ("worker-1", "KubeletUpgraded", "wait-ready", "running"),
             ("worker-1", "UpgradeSucceeded", "", "succeeded")]
    before = len(box.api_get("/sandbox/v1/writes")["items"])
    recorder = EventRecorder(KubeApi(str(box.kubeconfig)), gather_seconds=2.0)
    for node, reason, phase, state in story:
        recorder.record(NodeEvent(node, reason, f"{reason} on {node}", "c-1", phase, state))
    recorded_by = time.time()

    def told():
        items = core.list_namespaced_event("default").items
        return [(e.involved_object.name, e.reason) for e in sorted(items, key=lambda e: e.event_time)]

    wait_for(lambda: len(told()) == len(story) and len(box.api_get("/sandbox/v1/writes")["items"]) >= before + 7)
    assert told() == [(node, reason) for node, reason, _, _ in story]
    # stamped when reached, not when the batch was written (2 s later)
    assert all(e.event_time.timestamp() <= recorded_by + 0.5
               for e in core.list_namespaced_event("default").items)
    annotations = {node: json.loads(core.read_node(node).metadata.annotations[ANNOTATION])
                   for node in ("worker-1", "worker-2")}
    assert annotations == {"worker-1": {"campaign": "c-1", "phase": "", "state": "succeeded"},
                           "worker-2": {"campaign": "c-1", "phase": "set-repository", "state": "running"}}
    writes = box.api_get("/sandbox/v1/writes")["items"][before:]
    patched = sorted(w["path"].rsplit("/", 1)[-1] for w in writes if w["method"] == "PATCH")
    assert patched == ["worker-1", "worker-2"]


def test_the_event_recorder_waits_out_a_short_api_outage_and_drops_a_batch_past_its_patience(cluster):
    """A single control plane's kube-apiserver restarts while the workers begin: the events
    reached meanwhile are written once it answers again. A batch that outlasts the recorder's
    patience is dropped, and the thread goes on with the next one."""
    from kubeupgrade.kube.client import KubeApi
    from kubeupgrade.kube.events import EventRecorder, NodeEvent

    box, core, *_ = cluster

    def reasons():
        try:
            return sorted(e.reason for e in core.list_namespaced_event("default").items
                          if e.reason.startswith("Outage"))
        except Exception:  # noqa: BLE001 - the API server is away: nothing to read yet
            return None

    patient = EventRecorder(KubeApi(str(box.kubeconfig)), gather_seconds=0.1, outage_seconds=30)
    box.api_down(2.0)
    patient.record(NodeEvent("worker-1", "OutageStarted", "during the outage", "c-1", "drain", "running"))
    wait_for(lambda: reasons() == ["OutageStarted"], timeout=30)

    hasty = EventRecorder(KubeApi(str(box.kubeconfig)), gather_seconds=0.1, outage_seconds=0.5)
    box.api_down(3.0)
    hasty.record(NodeEvent("worker-2", "OutageLost", "dropped", "c-1", "drain", "running"))
    time.sleep(1.5)  # past its patience, while the API is still away
    wait_for(lambda: reasons() is not None, timeout=30)
    hasty.record(NodeEvent("worker-2", "OutageAfter", "written", "c-1", "drain", "running"))
    wait_for(lambda: "OutageAfter" in reasons(), timeout=30)
    assert reasons() == ["OutageAfter", "OutageStarted"]


def test_an_api_slow_fault_holds_the_matching_requests_it_counts_and_no_others(cluster):
    from kubeupgrade.errors import InvalidInput

    box, core, *_ = cluster

    def timed(call):
        started = time.monotonic()
        call()
        return time.monotonic() - started

    box.add_fault("api-slow", command="GET /api/v1/nodes", seconds=1.5, count=2)
    assert timed(lambda: core.list_namespaced_pod("kube-system")) < 1.0  # another path
    assert timed(lambda: core.list_node(limit=2)) >= 1.5
    assert timed(lambda: core.read_node("worker-1")) >= 1.5  # a path under the prefix
    assert timed(core.list_node) < 1.0  # both counts taken
    assert box.faults() == []
    box.add_fault("api-slow", command="GET /api/v1/nodes", seconds=1.0)  # once by default
    assert timed(core.list_node) >= 1.0
    assert timed(core.list_node) < 1.0
    for command, seconds in (("list nodes", 1.0), ("GET nodes", 1.0), ("GET /api/v1/nodes", 0.0)):
        with pytest.raises(InvalidInput, match="api-slow"):
            box.add_fault("api-slow", command=command, seconds=seconds)
    with pytest.raises(InvalidInput, match="not a node's: leave out --node worker-1"):
        box.add_fault("api-slow", node="worker-1", command="GET /api/v1/nodes", seconds=1.0)
    assert box.faults() == []
