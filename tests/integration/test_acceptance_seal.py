"""The controller acts only on what it accepted (kubeupgrade/workflow/seal.py), on a real
redis-server: a schedule or document written into the record after acceptance, a forged or
copied acceptance, or a record the controller never accepted is named as damaged, and no
cluster phase runs for it."""

from __future__ import annotations

import json

import pytest

from kubeupgrade.errors import PermanentError
from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow import record as record_module
from kubeupgrade.workflow import seal
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.dispatcher import Dispatcher
from kubeupgrade.workflow.names import CLUSTER_ENTRY
from kubeupgrade.workflow.phase import Job, read_record, require_accepted
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord
from kubeupgrade.workflow.waiting import first_look

pytestmark = pytest.mark.integration

WORKERS = 12


@pytest.fixture
def sealing():
    """This test process is the controller: it seals and checks with a key of its own."""
    controller = seal.RecordSeal(b"the controller's message key")
    seal.use(controller)
    record_module._sealed_schedules.clear()
    yield controller
    seal.use(None)
    record_module._sealed_schedules.clear()


def accepted(redis_url: str, cluster: str = "prod", limit: int = 2) -> tuple[CampaignStore, str]:
    store = CampaignStore.from_url(redis_url)
    nodes = [{"name": "cp-1", "role": "control-plane", "kubelet": "v1.30.4"}]
    nodes += [{"name": f"worker-{i}", "role": "worker", "kubelet": "v1.30.4"} for i in range(WORKERS)]
    campaign = store.create(cluster, {"cluster": cluster, "target": "1.31.14",
                                      "control_plane_version": "v1.30.4", "nodes": nodes,
                                      "policies": {"max_unavailable": limit}}, "a.yaml")
    Dispatcher(client_app(redis_url), store).advance(campaign)  # accept
    assert store.get(campaign)["state"] == "running"
    return store, campaign


def job(store: CampaignStore, campaign: str, node: str, phase: Phase = Phase.DRAIN) -> Job:
    read = read_record(store, campaign)
    assert read is not None
    return Job(store, campaign, 0, node, phase, 1, "task-1", read, first_look("task-1", 0))


def forget_checked_schedules() -> None:
    """As a new process would start: nothing verified yet."""
    record_module._sealed_schedules.clear()


def test_what_the_controller_accepted_reads_back_and_its_phases_may_run(redis_url, sealing):
    store, campaign = accepted(redis_url)
    schedule = store.schedule(campaign, 0, store.get(campaign))
    assert schedule.limit == 2 and len(schedule.workers) == WORKERS
    for node in ("cp-1", "worker-3", CLUSTER_ENTRY):
        require_accepted(job(store, campaign, node))  # raises if anything is off
    assert store.dump(campaign)["accepted"]["campaign"] == campaign


@pytest.mark.parametrize("forgery", ["limit raised", "pool limit raised", "worker moved first",
                                     "control plane dropped", "deleted"])
def test_a_schedule_changed_after_acceptance_is_named_and_never_used(redis_url, sealing, forgery):
    store, campaign = accepted(redis_url)
    key = f"ku:c:{campaign}:schedule:0"
    stored = json.loads(store.redis.get(key))
    if forgery == "limit raised":
        stored["limit"] = WORKERS
    elif forgery == "pool limit raised":
        stored["pools"] = [{"name": "gpu", "limit": WORKERS, "workers": stored["workers"]}]
    elif forgery == "worker moved first":
        stored["workers"] = stored["workers"][::-1]
    elif forgery == "control plane dropped":
        stored["control_planes"], stored["first_control_plane"] = [], None
    if forgery == "deleted":
        store.redis.delete(key)
    else:
        store.redis.set(key, json.dumps(stored))
    forget_checked_schedules()
    with pytest.raises(DamagedRecord, match=f"{key}: (missing|hop 1's schedule is not the one)"):
        store.schedule(campaign, 0, store.get(campaign))
    # The dispatcher isolates the campaign, naming the key; it sends nothing for it.
    dispatcher = Dispatcher(client_app(redis_url), store)
    resolved_genuinely(store, campaign)  # as a campaign at its worker stage has it
    store.update(campaign, lambda d: d["hops"][0].update(stage="workers"))
    dispatcher.tick()
    assert campaign not in store.active_ids()
    # The CLI, without the controller's key, reads the schedule fine: the events say why
    # nothing moves any more.
    assert any(f"the dispatcher stopped acting on it: damaged record {key}" in e["message"]
               for e in store.events(campaign))
    assert not any(e.get("phases") and any(p.get("task_id") for p in e["phases"])
                   for e in store.entries(campaign, 0).values())
    # Nor does any cluster phase run for one of its nodes.
    with pytest.raises(DamagedRecord, match=key):
        require_accepted(job(store, campaign, "worker-0"))


def test_a_process_that_checked_a_schedule_keeps_the_genuine_one(redis_url, sealing):
    store, campaign = accepted(redis_url)
    genuine = store.schedule(campaign, 0, store.get(campaign))
    key = f"ku:c:{campaign}:schedule:0"
    stored = json.loads(store.redis.get(key))
    store.redis.set(key, json.dumps({**stored, "limit": WORKERS}))
    assert store.schedule(campaign, 0, store.get(campaign)) == genuine  # from what it verified
    forget_checked_schedules()
    with pytest.raises(DamagedRecord):
        store.schedule(campaign, 0, store.get(campaign))


def test_a_document_changed_after_acceptance_runs_no_cluster_phase(redis_url, sealing):
    store, campaign = accepted(redis_url)
    store.update(campaign, lambda d: d["campaign"]["policies"].update(
        drain={"on_pdb_block": "delete"}))
    with pytest.raises(PermanentError, match="not the one the controller accepted.*nothing done"):
        require_accepted(job(store, campaign, "worker-1"))
    # What the controller writes itself (stage, state) is not the operator's document.
    store.update(campaign, lambda d: d["campaign"]["policies"].pop("drain"))
    store.update(campaign, lambda d: d.update(paused={"reason": "operator"}, current_hop=0))
    require_accepted(job(store, campaign, "worker-1"))


def test_a_node_outside_the_accepted_hop_gets_no_cluster_phase(redis_url, sealing):
    store, campaign = accepted(redis_url)
    with pytest.raises(PermanentError, match="stranger is not in hop 1 .* nothing done"):
        require_accepted(job(store, campaign, "stranger"))


@pytest.mark.parametrize("forgery", ["missing", "another key", "copied", "edited", "garbage"])
def test_an_acceptance_the_controller_did_not_seal_is_refused(redis_url, sealing, forgery):
    store, campaign = accepted(redis_url)
    key = f"ku:c:{campaign}:accepted"
    genuine = store.redis.get(key)
    if forgery == "missing":
        store.redis.delete(key)
    elif forgery == "another key":
        body = seal.Acceptance(**{k: v for k, v in zip(
            ("campaign_id", "cluster", "signed_sha256", "schedules", "targets"),
            (campaign, "prod", json.loads(genuine)["signed_sha256"],
             tuple(json.loads(genuine)["schedules"]), tuple(json.loads(genuine)["targets"])), strict=True)})
        store.redis.set(key, seal.RecordSeal(b"an agent's guess").seal(body))
    elif forgery == "copied":  # another campaign's genuine acceptance, sealed by this controller
        store.release_cluster("prod", campaign)
        _, other = accepted(redis_url, cluster="staging")
        store.redis.set(key, store.redis.get(f"ku:c:{other}:accepted"))
    elif forgery == "edited":
        stored = json.loads(genuine)
        stored["schedules"] = [seal.digest(b"whatever the agent likes")]
        store.redis.set(key, json.dumps(stored))
    else:
        store.redis.set(key, "{not json")
    forget_checked_schedules()
    with pytest.raises(DamagedRecord, match=key):
        store.schedule(campaign, 0, store.get(campaign))
    with pytest.raises(DamagedRecord, match=key):
        require_accepted(job(store, campaign, "worker-0"))


def test_a_record_the_controller_never_accepted_runs_no_cluster_phase(redis_url, sealing):
    """What an agent's credentials can write: a whole running campaign, and an entry its task
    will find. The controller would cordon and drain for it; it refuses, naming why."""
    store = CampaignStore.from_url(redis_url)
    campaign = store.create("forged", {"cluster": "forged", "target": "1.31"}, "attacker")
    store.update(campaign, lambda d: d.update(state="running", hops=[{
        "index": 0, "from": "1.30.4", "target": "1.31", "version": "1.31.14", "stage": "workers"}]))
    with pytest.raises(DamagedRecord, match="never accepted the campaign"):
        require_accepted(job(store, campaign, "worker-0"))


def test_without_a_seal_key_nothing_is_sealed_or_checked(redis_url):
    """`--unsigned-messages`: the broker is trusted whole, as before."""
    store, campaign = accepted(redis_url)
    assert store.redis.get(f"ku:c:{campaign}:accepted") is None
    require_accepted(job(store, campaign, "stranger"))
    assert store.schedule(campaign, 0, store.get(campaign)).limit == 2


def resolved_genuinely(store: CampaignStore, campaign: str, version: str = "1.31.14") -> None:
    """What the dispatcher writes once it resolved hop 1's version from the nodes' facts."""
    store.put_resolved(campaign, 0, version)
    store.update(campaign, lambda d: d["hops"][0].update(version=version, stage="control-planes"))


def verified_genuinely(store: CampaignStore, campaign: str, hop: int = 0) -> None:
    """What the verify phase writes, in the controller, once the hop's verification passed."""
    store.put_verified(campaign, hop, "1.31.14")


def test_a_hop_goes_by_and_the_campaign_succeeds_on_the_verify_phases_seal(redis_url, sealing):
    store, campaign = accepted(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    resolved_genuinely(store, campaign)
    store.update(campaign, lambda d: d["hops"][0].update(stage="done"))
    verified_genuinely(store, campaign)
    dispatcher.advance(campaign)
    assert store.get(campaign)["current_hop"] == 1
    dispatcher.advance(campaign)
    assert store.get(campaign)["state"] == "succeeded"
    assert store.dump(campaign)["verified"]["0"]["campaign"] == campaign


# What an agent's broker credential can write into the record to walk a campaign to its end
# while cp-1 is still being upgraded (each forgery as the dispatcher would find it).
FORGED_PROGRESS = {
    "hop done": lambda d: d["hops"][0].update(stage="done"),
    "past the last hop": lambda d: d.update(current_hop=1),
    "far past the last hop": lambda d: d.update(current_hop=7),
    "hops emptied": lambda d: d.update(hops=[]),
    "state succeeded": lambda d: d.update(state="succeeded"),
}


@pytest.mark.parametrize("forgery", sorted(FORGED_PROGRESS))
@pytest.mark.parametrize("verified", ["never", "another key", "another campaign", "another hop", "garbage"])
def test_progress_written_into_the_record_never_ends_a_campaign_as_succeeded(
        redis_url, sealing, forgery, verified):
    """Forged progress fails the campaign, naming the hop without a genuine seal and what the
    record claimed; nothing more is sent for it, and it never reads as succeeded."""
    store, campaign = accepted(redis_url)
    resolved_genuinely(store, campaign)
    key = f"ku:c:{campaign}:verified:0"
    version = "1.31.14"
    if verified == "another key":
        store.redis.set(key, seal.RecordSeal(b"an agent's guess").seal_hop("verified", campaign, 0, version))
    elif verified == "another campaign":  # genuine, for a campaign that did pass
        store.release_cluster("prod", campaign)
        _, other = accepted(redis_url, cluster="staging")
        resolved_genuinely(store, other)
        verified_genuinely(store, other)
        store.redis.set(key, store.redis.get(f"ku:c:{other}:verified:0"))
    elif verified == "another hop":
        store.redis.set(key, sealing.seal_hop("verified", campaign, 3, version))
    elif verified == "garbage":
        store.redis.set(key, '{"fact": "verified"}')
    dispatcher = Dispatcher(client_app(redis_url), store)
    dispatcher.advance(campaign)  # the campaign as accepted: nothing unproven yet
    assert store.get(campaign)["state"] == "running"
    store.update(campaign, FORGED_PROGRESS[forgery])
    for _ in range(3):
        dispatcher.tick()
    doc = store.get(campaign)
    assert doc["state"] == "failed", doc.get("error")
    message = doc["error"]["message"]
    assert "the record was changed in the broker, not by this controller" in message
    assert f"kubeupgrade abort {campaign} --uncordon" in message
    if forgery == "hops emptied":
        assert "it holds 0 hop(s) where this controller accepted 1" in message
    elif forgery == "far past the last hop":
        assert "its current hop is 8 where this controller accepted 1 hop(s)" in message
    else:
        assert {"never": "hop 1 has no sealed verification",
                "another key": "does not verify with this controller's key",
                "another campaign": "copied here", "another hop": "copied here",
                "garbage": "unreadable"}[verified] in message, message
    assert campaign not in store.active_ids()
    if verified != "another campaign":  # (which let go of it for the other one)
        assert store.cluster_holder("prod") == campaign  # a failed campaign keeps its cluster
    assert any(e["message"].startswith("failed: the record says") for e in store.events(campaign))


def test_a_verification_seal_needs_the_controllers_key_to_be_checked(redis_url):
    """Without a seal key (`--unsigned-messages`) the record's progress is trusted, as before."""
    store, campaign = accepted(redis_url)
    store.put_verified(campaign, 0, "1.31.14")
    assert store.redis.get(f"ku:c:{campaign}:verified:0") is None
    dispatcher = Dispatcher(client_app(redis_url), store)
    store.update(campaign, lambda d: d.update(current_hop=1))
    dispatcher.advance(campaign)
    assert store.get(campaign)["state"] == "succeeded"


@pytest.mark.parametrize("sealed", ["genuine", "missing", "another key", "another campaign"])
def test_a_hops_version_written_back_in_the_record_is_never_checked_against(redis_url, sealing, sealed):
    """Every check of the cluster is made against the hop's version: written back to the one
    the nodes run already (or with its seal forged), the campaign fails before the dispatcher
    asks the cluster anything of it, and no cluster phase judges the cluster by it."""
    store, campaign = accepted(redis_url)
    resolved_genuinely(store, campaign)
    key = f"ku:c:{campaign}:resolved:0"
    if sealed == "missing":
        store.redis.delete(key)
    elif sealed == "another key":
        store.redis.set(key, seal.RecordSeal(b"an agent's guess").seal_hop("resolved", campaign, 0, "1.30.4"))
    elif sealed == "another campaign":
        store.release_cluster("prod", campaign)
        _, other = accepted(redis_url, cluster="staging")
        resolved_genuinely(store, other, version="1.30.4")
        store.redis.set(key, store.redis.get(f"ku:c:{other}:resolved:0"))
    store.update(campaign, lambda d: d["hops"][0].update(version="1.30.4"))
    with pytest.raises(DamagedRecord, match="resolved"):
        print(job(store, campaign, CLUSTER_ENTRY, Phase.VERIFY).version)  # what verify judges by
    Dispatcher(client_app(redis_url), store).tick()
    doc = store.get(campaign)
    assert doc["state"] == "failed"
    message = doc["error"]["message"]
    assert message.startswith("the record says hop 1 goes to 1.30.4, but ")
    assert {"genuine": "this controller resolved 1.31.14 for it",
            "missing": "hop 1 has no sealed version: this controller never resolved one for it",
            "another key": "does not verify with this controller's key",
            "another campaign": "copied here"}[sealed] in message, message


def test_a_hops_version_as_resolved_is_what_the_controllers_phases_use(redis_url, sealing):
    store, campaign = accepted(redis_url)
    resolved_genuinely(store, campaign)
    assert str(job(store, campaign, "worker-1", Phase.WAIT_READY).version) == "1.31.14"
    dispatcher = Dispatcher(client_app(redis_url), store)
    dispatcher.tick()
    assert store.get(campaign)["state"] == "running"


def test_a_hop_target_written_into_the_record_is_never_resolved(redis_url, sealing):
    """The hop's version is resolved from its target, which the record holds: written back to
    the minor the nodes run, the version resolved (and sealed) from it would pass every check
    with nothing upgraded. The controller resolves only the target it accepted and sealed."""
    store, campaign = accepted(redis_url)
    assert store.acceptance(campaign).targets == ("1.31.14",)
    store.update(campaign, lambda d: d["hops"][0].update(target="1.30"))
    dispatcher = Dispatcher(client_app(redis_url), store)
    dispatcher._resolve_version(store.get(campaign), 0, store.entries(campaign, 0))
    doc = store.get(campaign)
    assert doc["state"] == "failed"
    assert doc["error"]["message"].startswith(
        "the record says hop 1 targets 1.30, but this controller accepted it with target 1.31.14")
    assert doc["hops"][0]["version"] is None
    assert store.redis.get(f"ku:c:{campaign}:resolved:0") is None
