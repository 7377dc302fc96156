"""Liveness from keys on a real redis-server: agents and running phases refresh their keys,
silence expires them, the dispatcher reads them in bulk and sleeps until something changes."""

from __future__ import annotations

import json
import threading
import time

import pytest

from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow import dispatcher as dispatcher_module
from kubeupgrade.workflow import liveness
from kubeupgrade.workflow.names import queue_for
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord, new_phase
from tests.helpers import begin_sent

pytestmark = pytest.mark.integration


def running_drain(store: CampaignStore, node: str, task_id: str) -> str:
    cluster = f"prod-{node}"
    campaign = store.create(cluster, {"cluster": cluster, "target": "1.31"}, "a.yaml")
    store.update(campaign, lambda doc: doc.update(state="running", hops=[{"target": "1.31", "stage": "workers"}]))
    store.put_entry(campaign, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "pending",
                                        "attempt": 1, "phases": [new_phase("drain")]})
    assert begin_sent(store, campaign, 0, node, "drain", 1, task_id) == "run"
    return campaign


def at_worker_stage(store: CampaignStore, workers: list[str] | None = None, limit: int = 1,
                    policies: dict | None = None) -> str:
    """A running campaign in its worker stage, its schedule written by hand: no control plane,
    `workers` in this order, a window of `limit`."""
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31", **({"policies": policies} if policies else {})},
                            "a.yaml")
    schedule = {"control_planes": [], "first_control_plane": None, "workers": workers or [], "strategy": "window",
                "limit": limit}
    store.update(campaign, lambda doc: doc.update(
        state="running", hops=[{"target": "1.31", "stage": "workers", "schedule": schedule}]))
    return campaign


def recover_undelivered(dispatcher, store: CampaignStore, campaign: str) -> bool:
    """One look of the dispatcher's check for reached tasks without a taker, on hop 0 as now."""
    entries = store.entries(campaign, 0)
    return dispatcher._recover_undelivered(store.get(campaign), 0, entries,
                                           dispatcher._view(campaign, 0, entries).watched)


def phase_kwargs(campaign: str, node: str, phase: Phase) -> dict:
    """A phase task's arguments, as the dispatcher sends them (a process that imported the
    tasks checks them when sending)."""
    return {"campaign": campaign, "hop": 0, "node": node, "phase": phase.value, "attempt": 1}


def test_an_agent_is_alive_while_it_refreshes_and_silent_once_it_stops_or_freezes(redis_url):
    store = CampaignStore.from_url(redis_url)
    beat = liveness.AgentHeartbeat(store.redis, "w1", period=0.1, ttl=1)
    beat.start()
    time.sleep(0.3)
    assert liveness.alive_agents(store.redis, ["w1", "w2"]) == {"w1"}
    assert store.redis.ttl(liveness.agent_key("w1")) <= 1  # expires unless refreshed
    beat.stop()
    assert liveness.alive_agents(store.redis, ["w1"]) == set()  # a clean stop says so at once
    # A frozen agent writes nothing more: its key expires by itself.
    store.redis.set(liveness.agent_key("w2"), "frozen", ex=1)
    time.sleep(1.2)
    assert liveness.alive_agents(store.redis, ["w2"]) == set()
    assert liveness.alive_agents(store.redis, []) == set()


def test_a_phase_beats_while_its_body_runs_and_not_after(redis_url):
    store = CampaignStore.from_url(redis_url)
    with liveness.phase_beating(store.redis, "task-1", period=0.1, ttl=1):
        time.sleep(1.5)  # longer than the ttl: kept alive by the refreshes
        assert liveness.beating(store.redis, ["task-1", "task-2"]) == {"task-1"}
    assert liveness.beating(store.redis, ["task-1"]) == set()
    liveness.beat_for(store.redis, "task-3", 30)  # waiting for its retry countdown
    assert liveness.beating(store.redis, ["task-3"]) == {"task-3"}
    assert store.redis.ttl(liveness.beat_key("task-3")) > 30


def test_a_phase_beats_from_the_write_that_begins_it_to_the_write_that_ends_it(redis_url):
    """begin_phase sets the phase's beat key in the same script that marks it running, and the
    write that ends it (success, failure, release) removes the key in its own script: a phase
    is never running without its key, nor ended with one. A verdict other than "run", a progress
    note and an end written by a stale task leave the key alone."""
    store = CampaignStore.from_url(redis_url)
    campaign = running_drain(store, "w1", "task-1")
    key = liveness.beat_key("task-1")
    assert 0 < store.redis.ttl(key) <= liveness.BEAT_TTL
    with liveness.phase_beating(store.redis, "task-1", period=0.1, ttl=1, begun=True):
        time.sleep(1.3)  # past the body's ttl: kept by the refreshes
        assert liveness.beating(store.redis, ["task-1"]) == {"task-1"}
    assert store.redis.exists(key), "the body's end is not the phase's end: the record's write is"
    assert store.note_phase(campaign, 0, "w1", "drain", "halfway", attempt=1, task_id="task-1")
    assert store.redis.exists(key)
    assert not store.finish_phase(campaign, 0, "w1", "drain", "done", "", "", attempt=1, task_id="old-task")
    assert store.redis.exists(key), "a stale task's end changes nothing"
    assert store.finish_phase(campaign, 0, "w1", "drain", "done", "", "", attempt=1, task_id="task-1")
    assert not store.redis.exists(key)
    assert begin_sent(store, campaign, 0, "w1", "drain", 1, "task-again") == "already-done"
    assert not store.redis.exists(liveness.beat_key("task-again"))
    for end, node in ((lambda c: store.fail_phase(c, 0, "w2", "drain", "boom", attempt=1, task_id="task-2"), "w2"),
                      (lambda c: store.release_phase(c, 0, "w3", "drain", "paused", attempt=1, task_id="task-3"), "w3")):
        other = running_drain(store, node, f"task-{node[1]}")
        assert store.redis.exists(liveness.beat_key(f"task-{node[1]}"))
        assert end(other)
        assert not store.redis.exists(liveness.beat_key(f"task-{node[1]}"))


def test_phases_running_together_beat_from_one_thread_which_ends_when_they_do(redis_url):
    store = CampaignStore.from_url(redis_url)

    def beat_threads():
        return [t for t in threading.enumerate() if t.name == "phase-beats"]

    with liveness.phase_beating(store.redis, "task-a", period=0.1, ttl=1):
        with liveness.phase_beating(store.redis, "task-b", period=0.1, ttl=1):
            time.sleep(1.5)
            assert liveness.beating(store.redis, ["task-a", "task-b"]) == {"task-a", "task-b"}
            assert len(beat_threads()) == 1
        time.sleep(1.2)  # a refresh after task-b ended would have brought its key back
        assert liveness.beating(store.redis, ["task-a", "task-b"]) == {"task-a"}
    assert liveness.beating(store.redis, ["task-a"]) == set()
    time.sleep(0.3)
    assert beat_threads() == []


def test_the_dispatcher_sleeps_until_a_change_and_never_misses_or_piles_up_wakes(redis_url):
    store = CampaignStore.from_url(redis_url)
    started = time.monotonic()
    assert not liveness.sleep_until_woken(store.redis, 0.3)
    assert time.monotonic() - started >= 0.25
    for _ in range(50):
        liveness.wake(store.redis)
    assert store.redis.llen(liveness.WAKE_KEY) == 1  # coalesced
    assert liveness.sleep_until_woken(store.redis, 5)
    assert store.redis.llen(liveness.WAKE_KEY) == 0
    # Writes that need a decision wake a sleeping dispatcher within milliseconds.
    campaign = running_drain(store, "w1", "task-1")
    woken: list[float] = []
    sleeper = threading.Thread(target=lambda: woken.append(
        time.monotonic() if liveness.sleep_until_woken(store.redis, 10) else -1))
    store.redis.delete(liveness.WAKE_KEY)
    sleeper.start()
    time.sleep(0.2)
    ended = time.monotonic()
    assert store.finish_phase(campaign, 0, "w1", "drain", "done", "", "", attempt=1, task_id="task-1")
    sleeper.join(10)
    assert woken and 0 <= woken[0] - ended < 1.0


def test_a_running_phase_that_stops_beating_is_sent_again_after_the_grace_and_only_then(redis_url, monkeypatch):
    from kubeupgrade.workflow.app import client_app

    monkeypatch.setattr(dispatcher_module, "LOST_TASK_GRACE", 0.5)
    store = CampaignStore.from_url(redis_url)
    beating = running_drain(store, "w1", "task-1")
    silent = running_drain(store, "w2", "task-2")
    store.redis.set(liveness.beat_key("task-1"), 1, ex=30)
    # Its worker died after begin_phase: the key that began it has expired, nothing refreshed it.
    store.redis.delete(liveness.beat_key("task-2"))
    dispatcher = dispatcher_module.Dispatcher(client_app(redis_url), store)
    for campaign in (beating, silent):
        assert not dispatcher._recover_lost_tasks(store.get(campaign), 0, store.entries(campaign, 0))
    time.sleep(0.6)
    assert not dispatcher._recover_lost_tasks(store.get(beating), 0, store.entries(beating, 0))
    assert dispatcher._recover_lost_tasks(store.get(silent), 0, store.entries(silent, 0))
    assert store.entry(beating, 0, "w1")["attempt"] == 1
    resent = store.entry(silent, 0, "w2")
    assert resent["attempt"] == 2 and resent["phases"][0]["state"] == "pending"
    assert "task-2" not in dispatcher._missing_since.get(silent, {})  # forgotten once handled


def test_the_watch_reads_every_task_result_in_one_batch_and_keeps_only_failures(redis_url):
    from kubeupgrade.workflow.app import client_app

    app = client_app(redis_url)
    app.backend.mark_as_failure("t-failed", ConnectionError("Connection closed by server."))
    app.backend.mark_as_done("t-done", {"status": "done"})
    app.backend.mark_as_revoked("t-revoked")
    dispatcher = dispatcher_module.Dispatcher(app, CampaignStore.from_url(redis_url))
    ended = dispatcher._ended_badly(["t-failed", "t-done", "t-revoked", "t-unknown"])
    assert set(ended) == {"t-failed", "t-revoked"}
    state, outcome = ended["t-failed"]
    assert state == "FAILURE" and "ConnectionError" in repr(outcome)  # what the resend decision reads
    assert ended["t-revoked"][0] == "REVOKED"


def test_the_watch_looks_at_a_bounded_round_of_tasks_per_tick_and_finds_every_ended_one(redis_url, monkeypatch):
    # At thousands of tasks in flight a tick looks up at most WATCH_BATCH results; a task that
    # ended without recording it is still found, whichever place it has in the round.
    from kubeupgrade.workflow.app import client_app

    monkeypatch.setattr(dispatcher_module, "WATCH_BATCH", 2)
    app = client_app(redis_url)
    store = CampaignStore.from_url(redis_url)
    campaign = running_drain(store, "w0", "t-0")
    for index in range(1, 7):
        node = f"w{index}"
        store.put_entry(campaign, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "pending",
                                            "attempt": 1, "phases": [new_phase("drain")]})
        assert begin_sent(store, campaign, 0, node, "drain", 1, f"t-{index}") == "run"
    dispatcher = dispatcher_module.Dispatcher(app, store)
    looked: list[list[str]] = []
    real = dispatcher._ended_badly
    monkeypatch.setattr(dispatcher, "_ended_badly", lambda ids: looked.append(list(ids)) or real(ids))
    for ended in ("t-6", "t-0", "t-3"):  # last, first and middle of a round
        app.backend.mark_as_failure(ended, RuntimeError("boom"))
        node = "w" + ended[2:]
        for _ in range(8):  # two rounds of four ticks
            dispatcher._watch(store.get(campaign), 0, store.entries(campaign, 0))
            if store.entry(campaign, 0, node)["state"] == "failed":
                break
        assert store.entry(campaign, 0, node)["state"] == "failed", ended
        assert "boom" in store.entry(campaign, 0, node)["phases"][0]["error"]
    assert looked and max(len(ids) for ids in looked) == 2


def test_the_dispatcher_reads_what_changed_and_sweeps_the_rest_a_slice_per_tick(redis_url, monkeypatch):
    from kubeupgrade.workflow.app import client_app

    store = CampaignStore.from_url(redis_url)
    campaign = running_drain(store, "w1", "task-1")
    names = [f"w{i}" for i in range(2, 41)]
    for name in names:
        store.put_entry(campaign, 0, name, {"node": name, "role": "worker", "hop": 0, "state": "pending",
                                            "attempt": 1, "phases": [new_phase("drain")]})
    monkeypatch.setattr(dispatcher_module, "SWEEP_SECONDS", 3600.0)  # a slice of SWEEP_LEAST a tick
    monkeypatch.setattr(dispatcher_module, "SWEEP_LEAST", 4)
    dispatcher = dispatcher_module.Dispatcher(client_app(redis_url), store)
    first = dispatcher._hop_entries(campaign, 0)
    assert set(first) == {"w1", *names} and first["w1"]["phases"][0]["state"] == "running"
    assert store.changed_entry_texts(campaign, 0) == {}  # the full read started tracking from there
    # A task's write is seen at the next tick; an entry whose text did not change is never
    # decoded again, by the sweep either: it stays the very same object.
    assert store.finish_phase(campaign, 0, "w1", "drain", "done", "", "", attempt=1, task_id="task-1")
    seen = dispatcher._hop_entries(campaign, 0)
    assert seen["w1"]["phases"][0]["state"] == "succeeded"
    # Writes that bypass the store: one entry edited, one deleted, one added by hand. The sweep
    # sees each within one pass (ten ticks of four for these 40 entries, with a margin).
    key = f"ku:c:{campaign}:hop:0"
    edited = {**store.entry(campaign, 0, "w2"), "state": "running"}
    store.redis.hset(key, "w2", json.dumps(edited))
    store.redis.hdel(key, "w3")
    store.redis.hset(key, "w99", json.dumps({**edited, "node": "w99"}))
    ticks = 0
    while ticks < 25:
        ticks += 1
        now = dispatcher._hop_entries(campaign, 0)
        if now["w2"]["state"] == "running" and "w3" not in now and "w99" in now:
            break
    assert ticks < 25, "a pass of the sweep missed a write that bypassed the store"
    assert ticks > 1  # a slice a tick, not the whole hop at once
    assert all(now[name] is first[name] for name in names if name not in ("w2", "w3"))
    # A damaged entry stops the read, naming its key, whether the changed set or the sweep
    # finds it; then the next tick reads everything again.
    for how in ("changed", "by hand"):
        store.redis.hset(key, "w1", "{not json")
        if how == "changed":
            store.redis.sadd(f"{key}:changed", "w1")
        with pytest.raises(DamagedRecord, match=key):
            for _ in range(25):
                dispatcher._hop_entries(campaign, 0)
        assert (campaign, 0) not in dispatcher._entries
        store.redis.hset(key, "w1", json.dumps({**edited, "node": "w1"}))
        assert dispatcher._hop_entries(campaign, 0)["w1"]["node"] == "w1"  # a full read


def test_a_reached_task_no_message_carries_is_sent_again_at_the_second_look_and_only_it(redis_url, monkeypatch):
    """Whatever lost the message (its publisher died between recording the task and sending it,
    a broker restart, a consumer killed holding it), a task its chain has reached that is in no
    queue, not running and has no result is sent again; one waiting in its queue, however long,
    one that beats and one that ended are not. Real messages, sent by Celery to real queues."""
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.names import PHASE_TASKS

    monkeypatch.setattr(dispatcher_module, "LOST_TASK_GRACE", 0.5)
    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_LOOK_PERIOD", 0.0)
    store = CampaignStore.from_url(redis_url)
    app = client_app(redis_url)
    campaign = at_worker_stage(store, limit=1)
    dispatcher = dispatcher_module.Dispatcher(app, store)
    long_ago = time.time() - 60

    def worker(node, task_id, dispatched=long_ago):
        done = {**new_phase("download-packages"), "state": "succeeded", "started": long_ago - 2,
                "ended": long_ago - 1, "task_id": f"{node}-download"}
        drain = {**new_phase("drain"), "task_id": task_id, "dispatched": dispatched}
        upgrade = {**new_phase("kubeadm-upgrade-node"), "task_id": f"{task_id}-next", "dispatched": dispatched}
        store.put_entry(campaign, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "running",
                                            "attempt": 1, "phases": [done, drain, upgrade]})

    worker("w-lost", "t-lost")  # recorded, never published
    worker("w-queued", "t-queued")  # waits in its queue (a real message; nobody consumes it)
    app.signature(PHASE_TASKS[Phase.DRAIN], kwargs=phase_kwargs(campaign, "w-queued", Phase.DRAIN),
                  immutable=True).set(queue=queue_for(Phase.DRAIN, "w-queued"), task_id="t-queued").apply_async()
    worker("w-urgent", "t-urgent")  # the same, in another priority step's list
    app.signature(PHASE_TASKS[Phase.DRAIN], kwargs=phase_kwargs(campaign, "w-urgent", Phase.DRAIN),
                  immutable=True).set(queue=queue_for(Phase.DRAIN, "w-urgent"), task_id="t-urgent",
                                      priority=9).apply_async()
    worker("w-beating", "t-beating")
    store.redis.set(liveness.beat_key("t-beating"), 1, ex=30)
    worker("w-ended", "t-ended")
    app.backend.mark_as_failure("t-ended", RuntimeError("boom"))
    # Just sent (here: dated ahead, so that a slow test run cannot age it): not looked for yet.
    worker("w-fresh", "t-fresh", dispatched=time.time() + 3600)

    def recover():
        return dispatcher._recover_undelivered(store.get(campaign), 0, store.entries(campaign, 0),
                                               dispatcher._view(campaign, 0, store.entries(campaign, 0)).watched)

    assert not recover()  # first look: it may be on its way
    assert set(dispatcher._unseen_since[campaign]) == {"t-lost"}
    time.sleep(0.6)
    assert recover()
    attempts = {node: store.entry(campaign, 0, node)["attempt"]
                for node in ("w-lost", "w-queued", "w-urgent", "w-beating", "w-ended", "w-fresh")}
    assert attempts == {"w-lost": 2, "w-queued": 1, "w-urgent": 1, "w-beating": 1, "w-ended": 1, "w-fresh": 1}
    resent = store.entry(campaign, 0, "w-lost")["phases"][1]
    assert (resent["state"], resent["task_id"], resent["redeliveries"]) == ("pending", None, 1)
    assert any("w-lost: no message carries its task" in event
               for event in store.redis.lrange(f"ku:c:{campaign}:events", 0, -1))
    assert not recover() and dispatcher._unseen_since.get(campaign, {}) == {}  # handled once


def test_the_lost_task_look_reads_a_bounded_round_and_still_finds_every_lost_task(redis_url, monkeypatch):
    """A look reads at most UNDELIVERED_BATCH waiting tasks' queues (their reads were a look's
    whole cost: 20-32 ms for 1,000 at 5,003 nodes); the others keep what earlier looks found
    of them until their turn. Every lost task is still sent again, each only after two looks
    at it LOST_TASK_GRACE apart, and no task that waits in its queue ever is."""
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.names import PHASE_TASKS

    monkeypatch.setattr(dispatcher_module, "LOST_TASK_GRACE", 0.3)
    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_LOOK_PERIOD", 0.0)
    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_BATCH", 2)
    read: list[int] = []
    real_nowhere = dispatcher_module.nowhere

    def counted(client, result_keys, queues):  # a spy: notes how many it reads, then reads them
        read.append(len(queues))
        return real_nowhere(client, result_keys, queues)

    monkeypatch.setattr(dispatcher_module, "nowhere", counted)
    store = CampaignStore.from_url(redis_url)
    app = client_app(redis_url)
    campaign = at_worker_stage(store, limit=5)
    long_ago = time.time() - 60
    lost, waiting = ["w-lost-1", "w-lost-2", "w-lost-3"], ["w-queued-1", "w-queued-2"]
    for node in lost + waiting:
        done = {**new_phase("download-packages"), "state": "succeeded", "started": long_ago - 2,
                "ended": long_ago - 1, "task_id": f"{node}-download"}
        drain = {**new_phase("drain"), "task_id": f"t-{node}", "dispatched": long_ago}
        store.put_entry(campaign, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "running",
                                            "attempt": 1, "phases": [done, drain]})
    for node in waiting:
        app.signature(PHASE_TASKS[Phase.DRAIN], kwargs=phase_kwargs(campaign, node, Phase.DRAIN),
                      immutable=True).set(queue=queue_for(Phase.DRAIN, node), task_id=f"t-{node}").apply_async()
    dispatcher = dispatcher_module.Dispatcher(app, store)
    first_seen: dict[str, float] = {}
    resent_at: dict[str, float] = {}
    deadline = time.monotonic() + 20
    while len(resent_at) < len(lost) and time.monotonic() < deadline:
        recover_undelivered(dispatcher, store, campaign)
        now = time.monotonic()
        for task_id in dispatcher._unseen_since.get(campaign, {}):
            first_seen.setdefault(task_id, now)
        for node in lost:
            if node not in resent_at and store.entry(campaign, 0, node)["attempt"] == 2:
                resent_at[node] = now
        time.sleep(0.05)
    assert set(resent_at) == set(lost), "every lost task is found, round after round"
    assert read and max(read) <= 2, read
    for node in lost:  # never on a single look: seen missing, then again past the grace
        assert resent_at[node] - first_seen[f"t-{node}"] >= 0.3
    assert all(store.entry(campaign, 0, node)["attempt"] == 1 for node in waiting)
    assert all(store.entry(campaign, 0, node)["phases"][1].get("redeliveries", 0) == 1 for node in lost)


def test_a_task_queued_for_an_agent_that_is_gone_is_a_named_wait_then_a_failure(redis_url, monkeypatch):
    """The agent died after its chain's next link was queued for it: the message is there, so
    nothing is lost, but nobody will take it. The campaign says it waits for that agent, and
    fails the phase after agent_timeout, as it does before sending to a silent agent."""
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.names import PHASE_TASKS

    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_LOOK_PERIOD", 0.0)
    store = CampaignStore.from_url(redis_url)
    app = client_app(redis_url)
    campaign = at_worker_stage(store, workers=["w1"], limit=1, policies={"agent_timeout": 1})
    long_ago = time.time() - 60
    done = {**new_phase("install-kubeadm"), "state": "succeeded", "started": long_ago - 2,
            "ended": long_ago - 1, "task_id": "w1-kubeadm"}
    upgrade = {**new_phase("kubeadm-upgrade-node"), "task_id": "t-held", "dispatched": long_ago}
    store.put_entry(campaign, 0, "w1", {"node": "w1", "role": "worker", "hop": 0, "state": "running",
                                        "attempt": 1, "phases": [done, upgrade]})
    app.signature(PHASE_TASKS[Phase.KUBEADM_NODE], kwargs=phase_kwargs(campaign, "w1", Phase.KUBEADM_NODE),
                  immutable=True).set(queue=queue_for(Phase.KUBEADM_NODE, "w1"), task_id="t-held").apply_async()
    dispatcher = dispatcher_module.Dispatcher(app, store)

    def recover():
        return recover_undelivered(dispatcher, store, campaign)

    assert not recover()  # its message is there: nothing to send again
    assert set(store.get(campaign)["hops"][0]["waiting_for_agents"]) == {"w1"}
    assert any("waiting for the agent of w1" in event["message"] for event in store.events(campaign))
    assert store.entry(campaign, 0, "w1")["phases"][1]["state"] == "pending"
    time.sleep(1.3)
    recover()
    failed = store.entry(campaign, 0, "w1")["phases"][1]
    assert failed["state"] == "failed" and "the agent of w1 did not answer within 1s" in failed["error"]
    # Not sent again, and fenced off: the agent, back, must not start it (nor the rest of its
    # chain, which may begin an outage the window no longer has room for).
    assert store.entry(campaign, 0, "w1")["attempt"] == 2
    assert begin_sent(store, campaign, 0, "w1", "kubeadm-upgrade-node", 1, "t-held") == "stale"


def test_an_agent_that_answers_but_takes_nothing_is_a_named_wait_then_a_failure(redis_url, monkeypatch):
    """Its heartbeat thread lives, its consumer does not (a dead broker socket, a wedged loop):
    the message sits in the node's own queue. Waited for by name once it has sat there past
    NOT_TAKING_AFTER, failed (and fenced off) after agent_timeout; a task sitting there for less
    is no one's concern, and an agent that takes its task is no longer waited for."""
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.names import PHASE_TASKS, node_queue

    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_LOOK_PERIOD", 0.0)
    monkeypatch.setattr(dispatcher_module, "NOT_TAKING_AFTER", 30.0)
    store = CampaignStore.from_url(redis_url)
    app = client_app(redis_url)
    campaign = at_worker_stage(store, workers=["w1", "w2"], limit=2, policies={"agent_timeout": 1})

    def queued_upgrade(node: str, sent: float) -> None:
        done = {**new_phase("install-kubeadm"), "state": "succeeded", "started": sent - 2,
                "ended": sent - 1, "task_id": f"{node}-kubeadm"}
        upgrade = {**new_phase("kubeadm-upgrade-node"), "task_id": f"{node}-upgrade", "dispatched": sent}
        store.put_entry(campaign, 0, node, {"node": node, "role": "worker", "hop": 0, "state": "running",
                                            "attempt": 1, "phases": [done, upgrade]})
        app.signature(PHASE_TASKS[Phase.KUBEADM_NODE], kwargs=phase_kwargs(campaign, node, Phase.KUBEADM_NODE),
                      immutable=True).set(queue=queue_for(Phase.KUBEADM_NODE, node),
                                          task_id=f"{node}-upgrade").apply_async()
        store.redis.set(liveness.agent_key(node), "{}", ex=60)  # it answers

    queued_upgrade("w1", time.time() - 45)  # past NOT_TAKING_AFTER
    queued_upgrade("w2", time.time() - 10)  # queued a while, not for long
    dispatcher = dispatcher_module.Dispatcher(app, store)

    def recover():
        return recover_undelivered(dispatcher, store, campaign)

    assert not recover()  # its message is there: nothing to send again
    assert set(store.get(campaign)["hops"][0]["waiting_for_agents"]) == {"w1"}
    told = [e["message"] for e in store.events(campaign) if "waiting for the agent of w1" in e["message"]]
    assert told and f"left its task in queue {node_queue('w1')}" in told[0]
    # A send to another node in the meantime does not clear w1's wait.
    assert dispatcher._agents_ready(store.get(campaign), 0, ["w2"]) == {"w2"}
    assert set(store.get(campaign)["hops"][0]["waiting_for_agents"]) == {"w1"}
    time.sleep(1.3)
    recover()
    failed = store.entry(campaign, 0, "w1")["phases"][1]
    assert failed["state"] == "failed" and "answers but did not take its task" in failed["error"]
    assert store.entry(campaign, 0, "w1")["attempt"] == 2  # fenced off: stale if it is ever taken
    assert begin_sent(store, campaign, 0, "w1", "kubeadm-upgrade-node", 1, "w1-upgrade") == "stale"
    assert store.entry(campaign, 0, "w2")["phases"][1]["state"] == "pending"
    # w2's agent, stuck as long, is waited for; once it takes its task, it is not any more.
    monkeypatch.setattr(dispatcher_module, "NOT_TAKING_AFTER", 5.0)
    recover()
    assert "w2" in store.get(campaign)["hops"][0]["waiting_for_agents"]
    store.redis.delete(node_queue("w2"))
    store.update_entry(campaign, 0, "w2", lambda e: e["phases"][1].update(state="running"))  # taken
    recover()
    assert "w2" not in store.get(campaign)["hops"][0]["waiting_for_agents"]


def test_a_task_whose_message_is_lost_again_and_again_fails_naming_its_queue(redis_url, monkeypatch):
    """Never a loop without end: past MAX_REDELIVERIES the phase fails and says where to look."""
    from kubeupgrade.workflow.app import client_app

    monkeypatch.setattr(dispatcher_module, "LOST_TASK_GRACE", 0.0)
    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_LOOK_PERIOD", 0.0)
    store = CampaignStore.from_url(redis_url)
    campaign = running_drain(store, "w1", "task-1")
    drain = {**new_phase("drain"), "task_id": "t-gone", "dispatched": time.time() - 60,
             "redeliveries": dispatcher_module.MAX_REDELIVERIES}
    store.put_entry(campaign, 0, "w1", {"node": "w1", "role": "worker", "hop": 0, "state": "running",
                                        "attempt": 6, "phases": [drain]})
    store.update(campaign, lambda doc: doc["hops"][0].update(schedule={
        "control_planes": [], "first_control_plane": None, "workers": ["w1"], "strategy": "window",
        "limit": 1}))
    dispatcher = dispatcher_module.Dispatcher(client_app(redis_url), store)
    entries = store.entries(campaign, 0)
    assert dispatcher._recover_undelivered(store.get(campaign), 0, entries,
                                           dispatcher._view(campaign, 0, entries).watched)
    failed = store.entry(campaign, 0, "w1")
    assert failed["state"] == "failed" and failed["attempt"] == 7  # fenced off: stale if it ever comes
    assert begin_sent(store, campaign, 0, "w1", "drain", 6, "t-gone") == "stale"
    assert f"not in queue {queue_for(Phase.DRAIN, 'w1')}" in failed["phases"][0]["error"]


def test_a_long_tick_renews_the_lease_and_stops_before_recording_more_once_another_leads(redis_url, monkeypatch):
    """A tick sending a whole window can outlast the lease it began with: before recording a
    chain's task ids it renews the lease, and if another dispatcher took it meanwhile it stops,
    having recorded nothing for that chain (so nothing is left recorded but unsent)."""
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.record import LEADER_KEY

    store = CampaignStore.from_url(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "a.yaml")
    store.update(campaign, lambda doc: doc.update(state="running", hops=[{"target": "1.31", "stage": "workers"}]))
    store.put_entry(campaign, 0, "w1", {"node": "w1", "role": "worker", "hop": 0, "state": "pending",
                                        "attempt": 1, "phases": [new_phase("drain")]})
    dispatcher = dispatcher_module.Dispatcher(client_app(redis_url), store)
    assert dispatcher._lead("me")
    dispatcher._token = "me"
    entry = store.entry(campaign, 0, "w1")
    # Within LEASE_RENEW_SECONDS of the last renewal: no extra round trip.
    store.redis.pexpire(LEADER_KEY, 1000)
    dispatcher._signatures(store.get(campaign), 0, entry, entry["phases"])
    assert store.redis.pttl(LEADER_KEY) <= 1000
    # Later in a long tick: renewed before recording.
    dispatcher._renewed -= dispatcher_module.LEASE_RENEW_SECONDS
    store.redis.pexpire(LEADER_KEY, 1000)
    entry = store.entry(campaign, 0, "w1")
    dispatcher._signatures(store.get(campaign), 0, entry, entry["phases"])
    assert store.redis.pttl(LEADER_KEY) > 1000
    # Another dispatcher leads now: the tick stops, and this chain's ids are not recorded.
    recorded = store.entry(campaign, 0, "w1")["phases"][0]["task_id"]
    store.redis.set(LEADER_KEY, "another", px=5000)
    dispatcher._renewed -= dispatcher_module.LEASE_RENEW_SECONDS
    with pytest.raises(dispatcher_module.LeaseLost):
        dispatcher._signatures(store.get(campaign), 0, entry, entry["phases"])
    assert store.entry(campaign, 0, "w1")["phases"][0]["task_id"] == recorded
    assert store.redis.get(LEADER_KEY) == "another"


def test_a_waiting_message_is_found_in_its_queue_whatever_priority_list_holds_it(redis_url):
    from kubeupgrade.workflow.undelivered import queue_keys, queued

    store = CampaignStore.from_url(redis_url)
    plain, other_step = queue_keys("node.w1")[0], queue_keys("node.w2")[2]
    store.redis.lpush(plain, json.dumps({"headers": {"id": "task-a"}}))
    asked = {"task-a": "node.w1", "task-b": "node.w2", "task-c": "node.w3"}
    assert queued(store.redis, asked) == {"task-a"}  # no other step's list anywhere: plain lists only
    # A message in another priority step's list (we never send one there, but kombu would keep
    # it there) is still found: then every step's list is read.
    store.redis.lpush(other_step, json.dumps({"headers": {"id": "task-b"}}))
    assert queued(store.redis, asked) == {"task-a", "task-b"}


def test_the_tasks_waiting_in_one_queue_are_told_apart_by_the_id_each_message_carries(redis_url):
    """Many phases waiting on one queue (drains on the controller's): each real message is
    found by the id it carries, and an id that is only mentioned inside another message (as a
    chain's first task is, in every later link's headers) is not taken for a waiting one."""
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.names import PHASE_TASKS
    from kubeupgrade.workflow.undelivered import _named, queued

    store = CampaignStore.from_url(redis_url)
    app = client_app(redis_url)
    campaign, queue = "prod-20990101-000000-000001", queue_for(Phase.DRAIN, "w0")
    waiting = [f"{i:032x}" for i in range(40)]
    for index, task_id in enumerate(waiting):
        app.signature(PHASE_TASKS[Phase.DRAIN], kwargs=phase_kwargs(campaign, f"w{index}", Phase.DRAIN),
                      immutable=True).set(queue=queue, task_id=task_id, root_id="f" * 32).apply_async()
    messages = [message.encode() for message in store.redis.lrange(queue, 0, -1)]
    # kombu's message names its task where the fast path looks (if this fails, every look
    # falls back to searching the whole queue's text for each id: right, but slow).
    assert _named(messages) == ({t.encode() for t in waiting}, [])
    assert all(b"f" * 32 in message for message in messages)  # the chain's first task, named in each
    asked = {task_id: queue for task_id in [*waiting, "e" * 32, "f" * 32]}
    assert queued(store.redis, asked) == set(waiting)


def test_a_wait_for_silent_agents_noted_in_a_tick_is_read_back_and_never_undoes_a_retry(redis_url):
    """The dispatcher notes which agents it waits for (and since when) in the record. Within a
    tick it reads back what it wrote, not the record again; a retry that starts the waits over
    meanwhile is not undone by a note computed from the waits as they were."""
    from kubeupgrade.workflow.app import client_app

    store = CampaignStore.from_url(redis_url)
    campaign = running_drain(store, "w1", "task-1")
    dispatcher = dispatcher_module.Dispatcher(client_app(redis_url), store)
    as_read = store.get(campaign)  # the tick's copy of the record: no agent is alive
    assert dispatcher._agents_ready(as_read, 0, ["w2"]) == set()
    first = store.get(campaign)["hops"][0]["waiting_for_agents"]
    assert list(first) == ["w2"]
    assert dispatcher._agents_ready(as_read, 0, ["w3"]) == set()  # the same tick, the same copy
    both = store.get(campaign)["hops"][0]["waiting_for_agents"]
    assert both == {"w2": first["w2"], "w3": both["w3"]}  # w2's wait kept its start
    store.update(campaign, lambda doc: doc["hops"][0].update(waiting_for_agents={}))  # a retry
    dispatcher._agents_ready(as_read, 0, ["w4"])
    # Not undone: the waits the retry ended do not come back with their old start.
    assert not {"w2", "w3"} & set(store.get(campaign)["hops"][0]["waiting_for_agents"])
    dispatcher.tick()  # the next tick reads the record again and waits for w4 from now
    dispatcher._agents_ready(store.get(campaign), 0, ["w4"])
    waits = store.get(campaign)["hops"][0]["waiting_for_agents"]
    assert list(waits) == ["w4"] and waits["w4"] > both["w3"]


def test_an_agent_wait_a_retry_started_over_does_not_expire_on_the_ticks_older_copy(redis_url):
    from kubeupgrade.workflow.app import client_app

    store = CampaignStore.from_url(redis_url)
    campaign = running_drain(store, "w1", "task-1")
    store.put_entry(campaign, 0, "w5", {"node": "w5", "role": "worker", "hop": 0, "state": "pending",
                                        "attempt": 1, "phases": [new_phase("drain")]})
    store.update(campaign, lambda doc: (doc["campaign"].setdefault("policies", {}).update(agent_timeout=30),
                                        doc["hops"][0].update(waiting_for_agents={"w5": time.time() - 100})))
    as_read = store.get(campaign)  # the tick's copy: w5 waited for longer than agent_timeout
    store.update(campaign, lambda doc: doc["hops"][0].update(waiting_for_agents={}))  # a retry
    dispatcher = dispatcher_module.Dispatcher(client_app(redis_url), store)
    dispatcher._agents_ready(as_read, 0, ["w5"])
    assert store.entry(campaign, 0, "w5")["state"] == "pending"  # waited for afresh, not failed
    assert list(store.get(campaign)["hops"][0]["waiting_for_agents"]) == ["w5"]
    # Without the retry, the same copy fails it: the wait is over.
    store.update(campaign, lambda doc: doc["hops"][0].update(waiting_for_agents={"w5": time.time() - 100}))
    dispatcher.tick()
    dispatcher._agents_ready(store.get(campaign), 0, ["w5"])
    assert store.entry(campaign, 0, "w5")["state"] == "failed"


def test_a_task_the_broker_refused_for_memory_fails_its_phase_saying_what_to_do_not_sent_again(redis_url):
    """A phase task that ended with the broker refusing its writes (out of memory; kubeupgrade's
    Redis evicts nothing) fails with what to do, and is not sent again: the next attempt would
    meet the same refusal until someone gives the broker memory."""
    import redis as redis_module

    from kubeupgrade.workflow.app import client_app

    app = client_app(redis_url)
    store = CampaignStore.from_url(redis_url)
    campaign = running_drain(store, "w-oom", "t-oom")
    app.backend.mark_as_failure("t-oom", redis_module.exceptions.OutOfMemoryError(
        "command not allowed when used memory > 'maxmemory'."))
    dispatcher = dispatcher_module.Dispatcher(app, store)
    assert not dispatcher._watch(store.get(campaign), 0, store.entries(campaign, 0))  # not re-sent
    entry = store.entry(campaign, 0, "w-oom")
    assert entry["state"] == "failed" and entry["attempt"] == 1
    error = entry["phases"][0]["error"]
    assert "OutOfMemoryError" in error and "the broker refused the phase's writes: it is out of memory" in error
    assert error.endswith("(`kubeupgrade prune`), then `kubeupgrade retry`")
