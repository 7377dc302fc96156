"""Only operator-signed work runs as root: a record forged in Redis, signed by an unknown key,
or altered after signing makes an agent run nothing, with real agents and a real broker."""

import json
import time
import uuid

import pytest

from kubeupgrade.api import submit
from kubeupgrade.model.plan import Phase
from kubeupgrade.security.signing import create_key, load_private_key, sign
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.liveness import agent_descriptions, alive_agents
from kubeupgrade.workflow.names import CONTROLLER_QUEUE, PHASE_TASKS, node_queue
from kubeupgrade.workflow.record import CampaignStore, new_phase
from kubeupgrade.workflow.schema import SCHEMA_VERSION
from tests.e2e.test_faults import finish, phase_record, phase_running
from tests.helpers import wait_for, write_campaign


def forged_task(campaign_id):
    """The id of the attacker's message, written into their entry too: a phase runs only under
    the task id recorded for it, and whoever writes the record can write that."""
    return f"{campaign_id}-task"


def forged_phase(phase, campaign_id):
    return {**new_phase(phase.value), "task_id": forged_task(campaign_id)}


def forge(store, marker, signer=None, scope=None):
    """What an attacker with write access to Redis writes: a running campaign whose hook is
    theirs, and an entry the hook task will find, under the id their message will carry. The record is written running in one step,
    as such an attacker would: written pending and then made running, the controller could
    refuse it in between (its cluster is not the controller's), and did on CI."""
    campaign = {"cluster": "forged", "target": "1.31",
                "policies": {"hooks": {"after_node": [["touch", str(marker)]]}}}
    if scope:
        campaign["scope"] = scope
    campaign_id = f"forged-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    now = time.time()
    store.take_cluster("forged", campaign_id)
    store.redis.set(f"ku:c:{campaign_id}", json.dumps({
        "schema": SCHEMA_VERSION, "id": campaign_id, "cluster": "forged", "state": "running",
        "created": now, "updated": now, "source": "attacker", "campaign": campaign,
        "signature": signer(campaign_id, campaign) if signer else None, "plan": None,
        "hops": [{"index": 0, "from": "1.30.4", "target": "1.31", "version": "1.31.14",
                  "packages": {}, "facts": {}, "stage": "workers"}],
        "current_hop": 0, "error": None, "notes": []}))
    store.redis.zadd("ku:campaigns", {campaign_id: now})
    store.redis.sadd("ku:active", campaign_id)
    store.put_entry(campaign_id, 0, "worker-2", {
        "node": "worker-2", "role": "worker", "hop": 0, "state": "pending", "attempt": 1,
        "phases": [forged_phase(Phase.HOOKS_AFTER_NODE, campaign_id)]})
    return campaign_id


def test_forged_records_run_nothing_on_any_node(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    store = CampaignStore.from_url(stack.broker)
    app = client_app(stack.broker)
    stranger = load_private_key(create_key(tmp_path / "stranger").private)
    cases = {"unsigned": (None, "is not signed by an operator"),
             "untrusted": (lambda cid, c: sign(stranger, cid, "forged", c), "does not hold")}
    for name, (signer, why) in cases.items():
        marker = tmp_path / f"owned-{name}"
        campaign_id = forge(store, marker, signer)
        result = app.signature(PHASE_TASKS[Phase.HOOKS_AFTER_NODE], kwargs={
            "campaign": campaign_id, "hop": 0, "node": "worker-2",
            "phase": Phase.HOOKS_AFTER_NODE.value, "attempt": 1}).apply_async(
                queue=node_queue("worker-2"), task_id=forged_task(campaign_id), ignore_result=False)  # none kept unless asked
        with pytest.raises(Exception, match=why):
            result.get(timeout=60, propagate=True)
        assert not marker.exists(), f"{name}: the forged hook ran as root"
        recorded = store.entry(campaign_id, 0, "worker-2")["phases"][0]
        assert recorded["state"] == "failed" and why in recorded["error"]
        store.update(campaign_id, lambda d: d.update(state="failed"))
        store.release_cluster("forged", campaign_id)
    assert stack.sandbox.command_log("worker-2") == []  # not one command ran on the host
    # Each side knows only its own tasks: a controller task sent to an agent's queue is
    # refused as unregistered, and the controller registers no host phase.
    app.signature(PHASE_TASKS[Phase.DRAIN], kwargs={
        "campaign": campaign_id, "hop": 0, "node": "worker-2", "phase": Phase.DRAIN.value,
        "attempt": 1}).apply_async(queue=node_queue("worker-2"))
    agent_log = stack.logs / "agent-worker-2.log"
    wait_for(lambda: f"unregistered task of type '{PHASE_TASKS[Phase.DRAIN]}'" in agent_log.read_text(),
             timeout=30)
    app.signature(PHASE_TASKS[Phase.HOOKS_AFTER_NODE], kwargs={
        "campaign": campaign_id, "hop": 0, "node": "worker-2", "phase": Phase.HOOKS_AFTER_NODE.value,
        "attempt": 1}).apply_async(queue=CONTROLLER_QUEUE)
    controller_log = stack.logs / "controller.log"
    wait_for(lambda: f"unregistered task of type '{PHASE_TASKS[Phase.HOOKS_AFTER_NODE]}'"
             in controller_log.read_text(), timeout=30)
    # No worker takes remote control: a control message, even one the operator signed, cannot
    # stop or change an agent or the controller, nor inspect them.
    assert app.control.inspect(timeout=2.0).registered() is None
    app.control.shutdown(destination=["agent@worker-2"])
    app.control.broadcast("pool_shrink", arguments={"n": 1}, destination=["agent@worker-2"])
    app.control.shutdown()
    time.sleep(3)  # what a worker obeying the shutdown would need to be gone
    assert stack.processes["agent-worker-2"].poll() is None  # still running
    assert stack.processes["controller"].poll() is None
    assert alive_agents(store.redis, ["worker-2"]) == {"worker-2"}
    assert stack.sandbox.command_log("worker-2") == []


def test_the_controller_cordons_nothing_for_a_campaign_it_did_not_accept(make_stack, tmp_path):
    """An agent's message key can sign a task for the controller's queue, and agents write the
    record: a forged running campaign (even one the operator signed) with a drain entry. The
    controller refuses the drain, naming why, and the node stays schedulable; then a genuine
    campaign still runs (the refusal was the seal's doing, not a broken controller)."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    store = CampaignStore.from_url(stack.broker)
    app = client_app(stack.broker)
    operator_key = load_private_key(stack.sandbox.signing_key)
    campaign_id = forge(store, tmp_path / "unused", lambda cid, c: sign(operator_key, cid, "forged", c))
    store.put_entry(campaign_id, 0, "worker-2", {
        "node": "worker-2", "role": "worker", "hop": 0, "state": "pending", "attempt": 1,
        "phases": [forged_phase(Phase.DRAIN, campaign_id)]})
    result = app.signature(PHASE_TASKS[Phase.DRAIN], kwargs={
        "campaign": campaign_id, "hop": 0, "node": "worker-2", "phase": Phase.DRAIN.value,
        "attempt": 1}).apply_async(queue=CONTROLLER_QUEUE, task_id=forged_task(campaign_id), ignore_result=False)
    with pytest.raises(Exception, match="never accepted the campaign"):
        result.get(timeout=60, propagate=True)
    node = stack.sandbox.api_get("/api/v1/nodes/worker-2")
    assert not node["spec"].get("unschedulable")
    assert "kubeupgrade" not in str(node["metadata"].get("annotations") or {})
    assert "never accepted" in store.entry(campaign_id, 0, "worker-2")["phases"][0]["error"]
    store.update(campaign_id, lambda d: d.update(state="failed"))
    store.release_cluster("forged", campaign_id)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle, timeout=240)
    assert state == "succeeded", error


def test_a_campaign_altered_after_signing_stops_before_its_next_host_phase(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="cp-1", command="apt-get install -y -q kubeadm", seconds=3.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    wait_for(phase_running(handle, "cp-1", "install-kubeadm"), timeout=120)
    marker = tmp_path / "owned"
    store = CampaignStore.from_url(stack.broker)
    store.update(handle.id, lambda d: d["campaign"]["policies"]["hooks"].update(
        after_node=[["touch", str(marker)]]))
    state, error = finish(handle, timeout=120)
    assert state == "failed", error
    assert "altered after it was signed" in error["message"]
    assert phase_record(handle, "cp-1", "kubeadm-upgrade-plan")["state"] == "failed"
    assert not marker.exists()
    ran = [" ".join(e["argv"]) for e in box.command_log("cp-1")]
    assert not [c for c in ran if c.startswith("kubeadm upgrade")]


def _celery_auth_app(broker):
    """An app that signs with Celery's own `auth` serializer and an RSA key of its own."""
    import datetime

    from celery import Celery
    from celery.security.serialization import register_auth
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kubeupgrade.workflow.app import configure
    from tests.helpers import self_signed_certificate

    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    register_auth(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode(),
                  None, self_signed_certificate(key, datetime.timedelta(days=30)).decode(), None, "sha256")
    app = configure(Celery("celery-auth"), broker)
    app.conf.task_serializer = "auth"
    return app


def test_a_task_or_control_message_without_a_trusted_signature_runs_nothing(make_stack, tmp_path,
                                                                            monkeypatch):
    """Message signing, the second layer: even for a campaign the operator did sign, a task
    sent with only a broker credential (unsigned) or signed by a key no one trusts is refused
    before it is decoded."""
    from celery import Celery

    from kubeupgrade.security.messages import MessageIdentity, create_identities, sign_messages
    from kubeupgrade.workflow.app import configure

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    store = CampaignStore.from_url(stack.broker)
    operator_key = load_private_key(stack.sandbox.signing_key)
    operator = MessageIdentity.from_env()
    assert operator is not None
    for name in operator.env():
        monkeypatch.delenv(name)
    unsigned = configure(Celery("broker-credential-only"), stack.broker)
    stranger = configure(Celery("stranger"), stack.broker)
    signed = configure(Celery("operator"), stack.broker)

    def hook_task(app, marker):
        campaign_id = forge(store, marker, lambda cid, c: sign(operator_key, cid, "forged", c))
        app.signature(PHASE_TASKS[Phase.HOOKS_AFTER_NODE], kwargs={
            "campaign": campaign_id, "hop": 0, "node": "worker-2",
            "phase": Phase.HOOKS_AFTER_NODE.value, "attempt": 1}).apply_async(queue=node_queue("worker-2"),
                                                                             task_id=forged_task(campaign_id))
        return campaign_id

    def settle(campaign_id):
        store.update(campaign_id, lambda d: d.update(state="failed"))
        store.release_cluster("forged", campaign_id)

    agent_log = stack.logs / "agent-worker-2.log"
    settle(hook_task(unsigned, tmp_path / "unsigned"))
    wait_for(lambda: "untrusted content of type json" in agent_log.read_text(), timeout=30)
    sign_messages(stranger, create_identities(tmp_path / "stranger")["operator"])
    settle(hook_task(stranger, tmp_path / "stranger-signed"))
    wait_for(lambda: "signed by a key that is not trusted here" in agent_log.read_text(), timeout=30)
    # The form of Celery's `auth` serializer (RSA), as kubeupgrade sent before its own envelope:
    # kombu hands its type (application/data) over undecoded whatever a worker accepts, so the
    # envelope refuses the type itself.
    settle(hook_task(_celery_auth_app(stack.broker), tmp_path / "old-format"))
    wait_for(lambda: "only signed messages are taken" in agent_log.read_text(), timeout=30)
    assert not (tmp_path / "old-format").exists()
    assert not (tmp_path / "unsigned").exists() and not (tmp_path / "stranger-signed").exists()
    assert stack.sandbox.command_log("worker-2") == []
    # The same task, signed by the operator: the hook runs (so the refusals above were the
    # signatures' doing, not a broken path).
    sign_messages(signed, operator)
    campaign_id = hook_task(signed, tmp_path / "operator-signed")
    wait_for(lambda: (tmp_path / "operator-signed").exists(), timeout=60)
    settle(campaign_id)
    # Signed, and for a signed campaign, but for another node than the queue's: refused by the
    # agent that received it, whatever queue it came through.
    misrouted = tmp_path / "misrouted"
    campaign_id = forge(store, misrouted, lambda cid, c: sign(operator_key, cid, "forged", c))
    result = signed.signature(PHASE_TASKS[Phase.HOOKS_AFTER_NODE], kwargs={
        "campaign": campaign_id, "hop": 0, "node": "worker-2", "phase": Phase.HOOKS_AFTER_NODE.value,
        "attempt": 1}).apply_async(queue=node_queue("worker-1"), task_id=forged_task(campaign_id), ignore_result=False)
    with pytest.raises(Exception, match="refused by the agent of 'worker-1': misrouted message"):
        result.get(timeout=60, propagate=True)
    assert not misrouted.exists()
    assert stack.sandbox.command_log("worker-1") == []
    settle(campaign_id)


def test_a_nodes_hook_allowlist_stops_a_signed_hook_it_does_not_list(make_stack, tmp_path):
    """The node owner's word over the operator's: a hook the operator signed, but outside the
    node's --hooks-allowlist, runs nowhere on that node (the phase fails, naming the list),
    while a node without a list runs it."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    allowlist = tmp_path / "allowlist"
    allowlist.write_text("/usr/local/bin/drain-check\n")
    stack.stop("agent-worker-1")
    stack.start_agent("worker-1", options=("--hooks-allowlist", str(allowlist)))
    stack.wait_for_workers(["agent@worker-1"])
    ran = tmp_path / "ran"
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", hooks={"after_node": [["mkdir", "-p", str(ran)]]}),
                    broker=stack.broker)
    state, error = finish(handle, timeout=180)
    assert state == "failed", error
    assert error["node"] == "worker-1" and error["phase"] == "hooks-after-node", error
    assert f"`mkdir -p {ran}` is not in this node's allowlist {allowlist}" in error["message"]
    assert phase_record(handle, "cp-1", "hooks-after-node")["state"] == "succeeded"
    assert ran.exists()  # cp-1, which has no list, ran it
    store = CampaignStore.from_url(stack.broker)
    described = agent_descriptions(store.redis, ["worker-1", "cp-1"])
    assert described["worker-1"]["hooks_allowlist"] is True and described["cp-1"]["hooks_allowlist"] is False


def test_an_agent_key_cannot_uncordon_a_node_of_a_running_campaign(make_stack, tmp_path):
    """The release task uncordons a node on `abort --uncordon`. Every node holds the agent's
    message key, so a node's root can sign it: sent for a running campaign's drained node, it
    is refused and the node stays cordoned; after the abort, the genuine release works."""
    from celery import Celery

    from kubeupgrade.security.messages import sign_messages
    from kubeupgrade.workflow.app import configure
    from kubeupgrade.workflow.names import RELEASE_NODE

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="worker-1", command="apt-get install -y -q kubectl", seconds=8.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(phase_running(handle, "worker-1", "install-kubelet"), timeout=120)
    agent = configure(Celery("agent-root"), stack.broker)
    sign_messages(agent, box.message_identity("agent"))
    result = agent.signature(RELEASE_NODE, kwargs={"campaign": handle.id, "node": "worker-1"}).apply_async(
        queue=CONTROLLER_QUEUE, ignore_result=False)
    with pytest.raises(Exception, match=f"release of worker-1 refused: campaign {handle.id} is running"):
        result.get(timeout=60, propagate=True)
    assert box.api_get("/api/v1/nodes/worker-1")["spec"].get("unschedulable") is True
    assert handle.status()["state"] == "running"
    assert handle.abort(uncordon=True) == []
    assert not box.api_get("/api/v1/nodes/worker-1")["spec"].get("unschedulable")


def test_a_signed_task_the_dispatcher_did_not_send_starts_no_outage(make_stack, tmp_path):
    """Every node holds the agent's message key, and it may sign for the controller's queue. A
    drain signed so, for a prepared worker while the window (max_unavailable 1) is full, would
    take a second worker out of service: it is refused (the dispatcher recorded no such task),
    the worker stays schedulable, the campaign's events name it, and the campaign goes on to
    succeed within its window."""
    from celery import Celery

    from kubeupgrade.sandbox import invariants
    from kubeupgrade.security.messages import sign_messages
    from kubeupgrade.workflow.app import configure

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    workers = ("worker-1", "worker-2")
    for worker in workers:  # whichever goes first holds the window a while
        box.add_fault("hang", node=worker, command="apt-get install -y -q kubectl", seconds=12.0, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    wait_for(lambda: any(phase_running(handle, n, "install-kubelet")() for n in workers), timeout=120)
    waiting = next(n for n in workers if not phase_running(handle, n, "install-kubelet")())
    wait_for(lambda: phase_record(handle, waiting, "kubeadm-upgrade-node").get("state") == "succeeded",
             timeout=60)
    assert phase_record(handle, waiting, "drain")["state"] == "pending"  # the window is full
    attempt = handle.status()["entries"][0][waiting]["attempt"]
    agent = configure(Celery("agent-root"), stack.broker)
    sign_messages(agent, box.message_identity("agent"))
    result = agent.signature(PHASE_TASKS[Phase.DRAIN], kwargs={
        "campaign": handle.id, "hop": 0, "node": waiting, "phase": Phase.DRAIN.value,
        "attempt": attempt}).apply_async(queue=CONTROLLER_QUEUE, ignore_result=False)
    assert result.get(timeout=60)["status"] == "unsent"
    assert not box.api_get(f"/api/v1/nodes/{waiting}")["spec"].get("unschedulable")
    assert any(f"{waiting}: a task for drain refused, nothing run: the dispatcher did not send task "
               f"{result.id}" in event["message"] for event in handle.status()["events"])
    state, error = finish(handle, timeout=240)
    assert state == "succeeded", error
    assert invariants.check_max_unavailable(box, 1) == []


def test_an_entry_for_a_node_the_operator_left_out_runs_nothing_on_it(make_stack, tmp_path):
    """The record's entries are the controller's writing, not the operator's. A campaign the
    operator signed for worker-1 only, given an entry for worker-2 by whoever can write the
    record (a forged write, or a planner bug), and a task for it signed with a message key the
    nodes trust: worker-2's agent refuses it and nothing runs on its host. Its control plane
    (always in scope) and worker-1 stay allowed."""
    from kubeupgrade.security.authorize import authorize
    from kubeupgrade.security.signing import TRUSTED_DIR

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    store = CampaignStore.from_url(stack.broker)
    app = client_app(stack.broker)
    operator = load_private_key(box.signing_key)
    campaign_id = forge(store, tmp_path / "unused", lambda cid, c: sign(operator, cid, "forged", c),
                        scope={"workers": ["worker-1"]})
    doc = store.get(campaign_id)
    for allowed in ("worker-1", "cp-1"):  # the same check, on the hosts still in scope
        root = box.node_root(allowed)
        assert authorize(doc, 0, root / TRUSTED_DIR.lstrip("/"), node=allowed, host_root=root)
    store.put_entry(campaign_id, 0, "worker-2", {
        "node": "worker-2", "role": "control-plane", "hop": 0, "state": "pending", "attempt": 1,
        "phases": [forged_phase(Phase.INSTALL_KUBELET, campaign_id)]})
    commands_before = list(box.command_log("worker-2"))
    result = app.signature(PHASE_TASKS[Phase.INSTALL_KUBELET], kwargs={
        "campaign": campaign_id, "hop": 0, "node": "worker-2", "phase": Phase.INSTALL_KUBELET.value,
        "attempt": 1}).apply_async(queue=node_queue("worker-2"), task_id=forged_task(campaign_id),
                                   ignore_result=False)
    with pytest.raises(Exception, match="node worker-2 is not among the workers"):
        result.get(timeout=60, propagate=True)
    recorded = store.entry(campaign_id, 0, "worker-2")["phases"][0]
    assert recorded["state"] == "failed" and "signed for (scope.workers)" in recorded["error"]
    assert box.command_log("worker-2") == commands_before  # not one command ran on the host
    store.update(campaign_id, lambda d: d.update(state="failed"))
    store.release_cluster("forged", campaign_id)


def while_apply_hangs_on_cp1(make_stack, tmp_path, seconds):
    """A campaign on 1 control plane and 2 workers, once cp-1's `kubeadm upgrade apply` runs
    (held `seconds`): the sandbox, the handle, and a Redis client with the agent role's broker
    credential, as the root of any node holds it."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="cp-1", command="kubeadm upgrade apply", seconds=seconds, count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    wait_for(phase_running(handle, "cp-1", "kubeadm-upgrade-apply"), timeout=120)
    return box, handle, CampaignStore.from_url(stack.broker_for("agent")).redis


def marked_done(entry):
    """A node's entry with every phase written `succeeded`, as a forger would."""
    now = time.time()
    for phase in entry["phases"]:
        phase.update(state="succeeded", started=phase["started"] or now, ended=now, task_id=phase["task_id"] or "x")
    entry["state"] = "succeeded"
    return entry


def test_control_planes_marked_done_in_the_record_change_no_worker_until_the_cluster_shows_them(
        make_stack, tmp_path):
    """Agents write the record, so the root of any node can mark a control plane's phases done:
    here cp-1's every phase is written `succeeded` with the agent's broker credential while its
    `kubeadm upgrade apply` still runs. The dispatcher asks the cluster before the worker stage,
    which shows cp-1's kubelet still at the old version (the forgery skipped its own upgrade):
    no worker changes, and the campaign's events say what the cluster shows until the operator
    aborts it."""
    from kubeupgrade.sandbox import invariants

    box, handle, forger = while_apply_hangs_on_cp1(make_stack, tmp_path, seconds=6.0)
    key = f"ku:c:{handle.id}:hop:0"
    forger.hset(key, "cp-1", json.dumps(marked_done(json.loads(forger.hget(key, "cp-1")))))
    forger.sadd(f"{key}:changed", "cp-1")

    def applied():
        return [e for e in box.command_log("cp-1") if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]

    def told():
        return [e["message"] for e in handle.status()["events"]
                if "the record says every control plane is done, but the cluster shows cp-1: kubelet at v1.30.4"
                in e["message"]]

    wait_for(lambda: applied() and told(), timeout=120)
    time.sleep(4.0)  # past the apply, time enough for any worker to have begun
    assert handle.state() == "running"
    assert "no worker changes until each runs its kubelet" in told()[-1]
    for node in ("worker-1", "worker-2"):
        changed = [e["argv"] for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed == [], f"{node} changed on the record's word alone: {changed}"
    assert handle.abort() == []
    assert handle.state() == "aborted"


def test_a_hop_moved_to_the_worker_stage_in_the_record_changes_no_worker_until_the_cluster_shows_the_control_planes(
        make_stack, tmp_path):
    """The hop's stage is the record's word too: written `workers` with an agent's credential
    while cp-1's `kubeadm upgrade apply` runs, it starts no worker before cp-1's mirror pods run
    the version. cp-1's own chain goes on, and the campaign finishes with every promise kept."""
    from kubeupgrade.sandbox import invariants

    box, handle, forger = while_apply_hangs_on_cp1(make_stack, tmp_path, seconds=8.0)
    doc = json.loads(forger.get(f"ku:c:{handle.id}"))
    assert doc["hops"][0]["stage"] == "control-planes"
    doc["hops"][0]["stage"] = "workers"
    forger.set(f"ku:c:{handle.id}", json.dumps(doc))
    state, error = finish(handle, timeout=240)
    assert state == "succeeded", error
    applied = [e for e in box.command_log("cp-1") if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]
    assert len(applied) == 1
    for node in ("worker-1", "worker-2"):
        changed = [e for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed and min(e["start"] for e in changed) > applied[0]["end"], (node, changed[:1])
    assert invariants.check_all(box, max_unavailable=1) == []


@pytest.mark.parametrize("forgery", ["past the last hop", "state succeeded"])
def test_a_campaign_walked_to_its_end_in_the_record_fails_and_never_reads_succeeded(
        make_stack, tmp_path, forgery):
    """The record's progress is the agents' to write: with the agent's broker credential,
    while cp-1's `kubeadm upgrade apply` runs, the campaign is moved past its last hop or
    written `succeeded`. The controller ends a campaign as succeeded only on the seals its
    verify phase writes (seal.py), one per hop: it fails this one, naming what the record
    claimed and why it is not the controller's, and no worker changes."""
    from kubeupgrade.sandbox import invariants

    box, handle, forger = while_apply_hangs_on_cp1(make_stack, tmp_path, seconds=4.0)
    key = f"ku:c:{handle.id}"
    doc = json.loads(forger.get(key))
    if forgery == "past the last hop":
        doc["current_hop"] = len(doc["hops"])
    else:
        doc["state"] = "succeeded"
    forger.set(key, json.dumps(doc))
    forger.sadd("ku:active", handle.id)  # in case the dispatcher had let go of it
    wait_for(lambda: handle.state() == "failed", timeout=60)
    error = handle.status()["error"]["message"]
    claimed = "every hop is done" if forgery == "past the last hop" else "the campaign succeeded"
    assert f"the record says {claimed}, but hop 1 has no sealed verification" in error, error
    assert "not by this controller" in error
    time.sleep(6.0)  # past the apply, time enough for any worker to have begun
    assert handle.state() == "failed"
    for node in ("worker-1", "worker-2"):
        changed = [e["argv"] for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed == [], f"{node} changed after a forged end: {changed}"
    assert handle.abort() == []
    assert handle.state() == "aborted"


def test_each_hop_a_campaign_passes_is_sealed_by_the_controllers_verify_phase(make_stack, tmp_path):
    """The other side of the test above: a campaign of two hops goes from one to the next and
    ends as succeeded on its verify phases' seals."""
    stack = make_stack(control_planes=1, workers=2, version="1.29.9", os_family="apt")
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    state, error = finish(handle, timeout=300)
    assert state == "succeeded", error
    store = CampaignStore.from_url(stack.broker)
    sealed = store.dump(handle.id)["verified"]
    assert sorted(sealed) == ["0", "1"] and {s["hop"] for s in sealed.values()} == {0, 1}
    assert [s["version"] for _, s in sorted(sealed.items())] == [
        f"v{h['version']}" for h in store.get(handle.id)["hops"]]


def test_a_hops_version_written_back_to_the_old_one_lets_no_worker_change(make_stack, tmp_path):
    """The cluster's word on the control planes is asked against the hop's version, which the
    record holds: written back to v1.30.4 (what every node runs) along with cp-1's phases
    marked done, the cluster would agree at once, and the workers would go while `kubeadm
    upgrade apply` still runs. The dispatcher checks the version against the one it resolved
    and sealed, fails the campaign naming both, and no worker changes."""
    from kubeupgrade.sandbox import invariants

    box, handle, forger = while_apply_hangs_on_cp1(make_stack, tmp_path, seconds=6.0)
    hop_key = f"ku:c:{handle.id}:hop:0"
    entry = marked_done(json.loads(forger.hget(hop_key, "cp-1")))
    doc = json.loads(forger.get(f"ku:c:{handle.id}"))
    resolved = doc["hops"][0]["version"]
    doc["hops"][0]["version"] = "1.30.4"
    pipe = forger.pipeline()
    pipe.set(f"ku:c:{handle.id}", json.dumps(doc))
    pipe.hset(hop_key, "cp-1", json.dumps(entry))
    pipe.sadd(f"{hop_key}:changed", "cp-1")
    pipe.execute()
    wait_for(lambda: handle.state() == "failed", timeout=60)
    error = handle.status()["error"]["message"]
    assert f"the record says hop 1 goes to 1.30.4, but this controller resolved {resolved} for it" in error
    time.sleep(8.0)  # past the apply, time enough for any worker to have begun
    for node in ("worker-1", "worker-2"):
        changed = [e["argv"] for e in box.command_log(node) if invariants._is_disruptive(e["argv"])]
        assert changed == [], f"{node} changed on a forged version: {changed}"
    assert handle.abort() == []


def test_an_aborted_campaign_written_back_to_running_never_acts_beside_the_one_holding_the_cluster(
        make_stack, tmp_path):
    """One campaign acts on a cluster at a time, whatever the record says. The first campaign
    is aborted and a second one submitted; while the second's `kubeadm upgrade apply` runs, the
    first is written back to running with the agent's broker credential (and put back among
    the dispatcher's campaigns). It fails, naming the holder, without a single task sent for
    it; the second finishes with every promise kept."""
    from kubeupgrade.sandbox import invariants

    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    box.add_fault("hang", node="cp-1", command="kubeadm upgrade apply", seconds=6.0, count=1)
    path = write_campaign(tmp_path / "c.yaml", "1.31")
    first = submit(path, broker=stack.broker)
    wait_for(lambda: first.state() == "running", timeout=60)
    first.abort()
    assert first.state() == "aborted"
    sent_before = {name: [p["task_id"] for p in e["phases"]]
                   for name, e in CampaignStore.from_url(stack.broker).entries(first.id, 0).items()}
    second = submit(path, broker=stack.broker)
    wait_for(phase_running(second, "cp-1", "kubeadm-upgrade-apply"), timeout=120)
    forger = CampaignStore.from_url(stack.broker_for("agent")).redis
    doc = json.loads(forger.get(f"ku:c:{first.id}"))
    doc["state"] = "running"
    forger.set(f"ku:c:{first.id}", json.dumps(doc))
    forger.sadd("ku:active", first.id)
    wait_for(lambda: first.state() == "failed", timeout=60)
    assert first.status()["error"]["message"].startswith(
        f"the record says this campaign is running, but cluster {doc['cluster']} is held by "
        f"campaign {second.id}")
    sent_after = {name: [p["task_id"] for p in e["phases"]]
                  for name, e in CampaignStore.from_url(stack.broker).entries(first.id, 0).items()}
    assert sent_after == sent_before  # not one task sent for it
    state, error = finish(second, timeout=240)
    assert state == "succeeded", error
    assert invariants.check_all(box, max_unavailable=1) == []
