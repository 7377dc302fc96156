"""A controller phase whose task was superseded while it ran changes nothing on the cluster.

A task that froze right after it began (a stopped controller, a pool process stuck in the
kernel) stops refreshing its beat; the dispatcher sends the phase again as a new attempt, and
that attempt may cordon, drain, uncordon and finish the node before the old task wakes. The
woken task must not then cordon a node of a finished campaign (left cordoned on success) nor
uncordon a node the new attempt holds. Here the real phase tasks run in this process against a
real redis-server and the sandbox's API server; the freeze is the moment their body starts
(phase.body_starting), when the record is made to say what the dispatcher would have written
meanwhile."""

from __future__ import annotations

import os

import pytest

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.nodes import CORDONED_BY, cordon_node, get_node, is_cordoned
from kubeupgrade.workflow.record import CampaignStore, new_attempt, new_phase
from tests.helpers import begin_sent, sandbox_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with sandbox_up(tmp_path_factory.mktemp("superseded") / "box", control_planes=1, workers=3,
                    version="1.30.4") as box:
        yield box


@pytest.fixture
def tasks(box, redis_url, monkeypatch):
    """The controller's phase tasks, run in this process as a pool process runs them."""
    monkeypatch.setenv("KUBEUPGRADE_BROKER", redis_url)
    monkeypatch.setenv("KUBEUPGRADE_KUBECONFIG", str(box.kubeconfig))
    from kubeupgrade.workflow import controller_tasks

    # The client kube_api() keeps for this process is this sandbox's: it goes with it, or a
    # later test in this process would reach a sandbox already taken down.
    controller_tasks._apis.pop(os.getpid(), None)
    yield controller_tasks
    controller_tasks._apis.pop(os.getpid(), None)


def running_campaign(store: CampaignStore, node: str, phases: list[str]) -> str:
    campaign = store.create("sandbox", {"cluster": "sandbox", "target": "1.31",
                                        "policies": {"drain": {"delete_emptydir_data": True}}}, "c.yaml")
    store.update(campaign, lambda doc: doc.update(
        state="running", hops=[{"target": "1.31", "version": "1.31.14", "stage": "workers"}]))
    store.put_entry(campaign, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "pending",
                                        "attempt": 1, "phases": [new_phase(p) for p in phases]})
    return campaign


def sent(store: CampaignStore, campaign: str, node: str, task_id: str) -> None:
    """The dispatcher's record of the task it sends for the node's (only) phase."""
    store.update_entry(campaign, 0, node, lambda entry: entry["phases"][0].update(task_id=task_id) or True)


def run_superseded(store: CampaignStore, task, campaign: str, node: str, phase: str, task_id: str) -> dict:
    """Run the real phase task (attempt 1, under `task_id`) in this process; the moment its body
    starts (phase.body_starting), the dispatcher gives the node a new attempt, as it does for a
    task that stopped beating. Returns what the task answered."""
    from kubeupgrade.workflow.phase import body_starting

    def supersede(sender, **_):
        store.update_entry(campaign, 0, node, lambda entry: new_attempt(entry) or True)

    body_starting.connect(supersede, weak=False)
    try:
        kwargs = {"campaign": campaign, "hop": 0, "node": node, "phase": phase, "attempt": 1}
        return task.apply(kwargs=kwargs, task_id=task_id).get(propagate=True)
    finally:
        body_starting.disconnect(supersede)


def test_a_drain_superseded_before_its_cordon_cordons_nothing(box, redis_url, tasks):
    store = CampaignStore.from_url(redis_url)
    campaign = running_campaign(store, "worker-1", ["drain"])
    sent(store, campaign, "worker-1", "t-drain")
    api = KubeApi(str(box.kubeconfig))
    before = get_node(api, "worker-1")["metadata"]["resourceVersion"]
    answer = run_superseded(store, tasks.drain_node, campaign, "worker-1", "drain", "t-drain")
    assert answer["status"] == "stale"
    node = get_node(api, "worker-1")
    assert not is_cordoned(node) and node["metadata"]["resourceVersion"] == before
    entry = store.entry(campaign, 0, "worker-1")
    assert entry["attempt"] == 2 and not entry.get("cordoned_by_us")  # nothing written for attempt 1
    assert entry["phases"][0]["state"] == "pending"
    assert any("drain of attempt 1 (task t-drain) no longer owns the phase" in e["message"]
               for e in store.events(campaign))


def test_an_uncordon_superseded_leaves_the_new_attempts_cordon(box, redis_url, tasks):
    store = CampaignStore.from_url(redis_url)
    campaign = running_campaign(store, "worker-2", ["uncordon"])
    api = KubeApi(str(box.kubeconfig))
    assert cordon_node(api, "worker-2", campaign).value == "cordoned"  # the new attempt's drain
    store.update_entry(campaign, 0, "worker-2", lambda e: e.update(cordoned_by_us=True) or True)
    sent(store, campaign, "worker-2", "t-uncordon")
    answer = run_superseded(store, tasks.uncordon_node, campaign, "worker-2", "uncordon", "t-uncordon")
    assert answer["status"] == "stale"
    node = get_node(api, "worker-2")
    assert is_cordoned(node) and node["metadata"]["annotations"][CORDONED_BY] == campaign
    assert store.entry(campaign, 0, "worker-2")["cordoned_by_us"] is True  # still named on a failure


def test_a_drain_look_superseded_evicts_nothing(box, redis_url, tasks):
    # A look after the first: cordoned already, it would evict what is left on the node.
    store = CampaignStore.from_url(redis_url)
    campaign = running_campaign(store, "worker-3", ["drain"])
    api = KubeApi(str(box.kubeconfig))
    cordon_node(api, "worker-3", campaign)
    pods = {p["metadata"]["name"] for p in api.call("pods", api.core.list_pod_for_all_namespaces,
                                                     field_selector="spec.nodeName=worker-3")["items"]}
    assert pods, "the sandbox puts pods on every worker"
    from kubeupgrade.workflow.waiting import first_look

    begin_sent(store, campaign, 0, "worker-3", "drain", 1, "t-look")
    looked = first_look("t-look", 0).next({"owner": "CORDONED"}, "waiting for pods to stop")
    store.keep_waiting(campaign, 0, "worker-3", "drain", looked)
    answer = run_superseded(store, tasks.drain_node, campaign, "worker-3", "drain", "t-look")
    assert answer["status"] == "stale"
    after = {p["metadata"]["name"] for p in api.call("pods", api.core.list_pod_for_all_namespaces,
                                                      field_selector="spec.nodeName=worker-3")["items"]}
    assert after == pods
    assert store.waiting(campaign, 0, "worker-3", "drain") is not None  # the node's, kept for its owner


def test_a_health_gate_superseded_while_it_looked_does_not_pause_the_campaign(box, redis_url, tasks):
    # Red (an operator's gate that always fails, no time to wait), on_gate_failure: pause.
    from kubeupgrade.model.campaign import WorkerStrategy
    from kubeupgrade.workflow.schedule import HopSchedule

    store = CampaignStore.from_url(redis_url)
    campaign = store.create("sandbox", {"cluster": "sandbox", "target": "1.31", "policies": {
        "gates": [{"name": "never", "command": ["false"]}], "gate_timeout": 0}}, "c.yaml")
    store.update(campaign, lambda doc: doc.update(
        state="running", hops=[{"target": "1.31", "version": "1.31.14", "stage": "control-planes"}]))
    store.put_schedules(campaign, [HopSchedule(("cp-1",), "cp-1", ("worker-1",), WorkerStrategy.WINDOW, 1)])
    store.put_entry(campaign, 0, "@cluster", {"node": "@cluster", "role": "cluster", "hop": 0, "state": "pending",
                                              "attempt": 1, "phases": [new_phase("control-plane-gate")]})
    sent(store, campaign, "@cluster", "t-gate")
    answer = run_superseded(store, tasks.health_gate, campaign, "@cluster", "control-plane-gate", "t-gate")
    assert answer["status"] == "stale"
    doc = store.get(campaign)
    assert doc["state"] == "running" and not doc.get("paused")
    assert any("control-plane-gate of attempt 1 (task t-gate) no longer owns the phase; it did not "
               "pause the campaign" in e["message"] for e in store.events(campaign))


def test_a_verification_superseded_keeps_none_of_the_rows_it_read(box, redis_url, tasks):
    """Woken after its phase was sent again, a verify task's rows (read before the freeze) must
    not replace what the current attempt found."""
    from kubeupgrade.model.campaign import WorkerStrategy
    from kubeupgrade.workflow.schedule import HopSchedule

    store = CampaignStore.from_url(redis_url)
    campaign = store.create("sandbox", {"cluster": "sandbox", "target": "1.31"}, "c.yaml")
    store.update(campaign, lambda doc: doc.update(
        state="running", hops=[{"target": "1.31", "version": "1.31.14", "stage": "verify"}]))
    store.put_schedules(campaign, [HopSchedule(("cp-1",), "cp-1", ("worker-1", "worker-2", "worker-3"),
                                               WorkerStrategy.WINDOW, 1)])
    store.put_entry(campaign, 0, "@cluster", {"node": "@cluster", "role": "cluster", "hop": 0, "state": "pending",
                                              "attempt": 1, "phases": [new_phase("verify")]})
    sent(store, campaign, "@cluster", "t-verify")
    answer = run_superseded(store, tasks.verify, campaign, "@cluster", "verify", "t-verify")
    assert answer["status"] == "stale"
    assert store.redis.get(f"ku:c:{campaign}:verification:0") is None
    entry = store.entry(campaign, 0, "@cluster")
    assert entry["attempt"] == 2 and entry["phases"][0]["state"] == "pending"
    assert any("verify of attempt 1 (task t-verify) no longer owns the phase" in e["message"]
               for e in store.events(campaign))
