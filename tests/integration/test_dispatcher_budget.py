"""A tick sends chains only until its time budget is spent, then the next tick goes on: the
loop is never held for a whole window's worth of sends. Real redis-server and the real
dispatcher; the messages go to queues nobody consumes, and are read back from them."""

from __future__ import annotations

import time

import pytest

from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow import dispatcher as dispatcher_module
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.audit import outage_start
from kubeupgrade.workflow.dispatcher import Dispatcher, queue_of
from kubeupgrade.workflow.liveness import agent_key
from kubeupgrade.workflow.record import CampaignStore
from kubeupgrade.workflow.undelivered import queued
from tests.helpers import spy_on_redis

pytestmark = pytest.mark.integration

WORKERS, LIMIT = 9, 3


def at_worker_stage(store: CampaignStore, dispatcher: Dispatcher, strategy: str) -> str:
    """A campaign accepted by the dispatcher, then moved on as its first stages would leave it:
    versions resolved, control planes done, every worker prepared for its outage (so what a tick
    wants is the outage chains: the whole window), every agent alive."""
    nodes = [{"name": "cp-1", "role": "control-plane", "kubelet": "v1.30.4"}]
    nodes += [{"name": f"w-{i}", "role": "worker", "kubelet": "v1.30.4"} for i in range(WORKERS)]
    campaign = store.create("budget", {
        "cluster": "budget", "target": "1.31.14", "control_plane_version": "v1.30.4", "nodes": nodes,
        "policies": {"max_unavailable": LIMIT, "worker_strategy": strategy}}, "budget.yaml")
    dispatcher.advance(campaign)  # accepted: the plan and one entry per node
    now = time.time()
    for name, entry in store.entries(campaign, 0).items():
        done = entry["phases"] if entry["role"] != "worker" else entry["phases"][:outage_start(entry)]
        for phase in done:
            if phase["phase"] not in ("verify", "health-gate"):
                phase.update(state="succeeded", started=now, ended=now, task_id="done")
        store.put_entry(campaign, 0, name, entry)
        store.redis.set(agent_key(name), "alive", ex=600)

    def workers_stage(doc):
        doc["hops"][0].update(stage="workers", version="1.31.14")

    store.put_packages(campaign, 0, {f"w-{i}": "1.31.14-1.1" for i in range(WORKERS)})

    store.update(campaign, workers_stage)
    return campaign


def sent_chains(store: CampaignStore, campaign: str) -> set[str]:
    """Workers whose outage chain has its task ids recorded. Each chain's first link must also be
    a message in its queue: a tick that stops at its budget leaves nothing recorded but unsent."""
    first_links, names = {}, set()
    for name, entry in store.entries(campaign, 0).items():
        sent = [p for p in entry["phases"] if p["task_id"] not in (None, "done")]
        if sent:
            assert entry["role"] == "worker" and sent[0]["phase"] == "drain", (name, sent[0])
            first_links[sent[0]["task_id"]] = queue_of(Phase.DRAIN, name)
            names.add(name)
    assert queued(store.redis, first_links) == set(first_links), "recorded but never sent"
    return names


def dispatching(redis_url: str, strategy: str) -> tuple[CampaignStore, Dispatcher, str]:
    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    return store, dispatcher, at_worker_stage(store, dispatcher, strategy)


def test_a_tick_stops_sending_at_its_budget_and_the_next_goes_on(redis_url, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "SEND_BUDGET_SECONDS", 0.0)  # every tick over budget
    store, dispatcher, campaign = dispatching(redis_url, "window")
    sent: list[set[str]] = []
    for _ in range(LIMIT):
        dispatcher.tick()
        sent.append(sent_chains(store, campaign))
    # One chain per tick, however many the window wants (never none), and the tick says when
    # more is wanted, so the loop ticks again at once instead of sleeping.
    assert [len(s) for s in sent] == list(range(1, LIMIT + 1))
    assert all(earlier < later for earlier, later in zip(sent, sent[1:]))
    assert not dispatcher.more_to_send
    dispatcher.tick()
    assert sent_chains(store, campaign) == sent[-1], "the window is full: nothing more sent"


def test_a_batch_is_never_split_by_the_budget(redis_url, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "SEND_BUDGET_SECONDS", 0.0)
    store, dispatcher, campaign = dispatching(redis_url, "batches")
    dispatcher.tick()
    assert len(sent_chains(store, campaign)) == LIMIT, "the whole batch in one tick"


def test_with_time_to_spare_one_tick_fills_the_window(redis_url, monkeypatch):
    monkeypatch.setattr(dispatcher_module, "SEND_BUDGET_SECONDS", 60.0)
    store, dispatcher, campaign = dispatching(redis_url, "window")
    dispatcher.tick()
    assert len(sent_chains(store, campaign)) == LIMIT and not dispatcher.more_to_send


def test_a_ticks_chains_leave_in_one_round_trip(redis_url, monkeypatch):
    """Every chain of a tick goes out in one pipelined round trip at the end of its campaign's
    advance: not one command per message and another per task-sent event."""
    monkeypatch.setattr(dispatcher_module, "SEND_BUDGET_SECONDS", 60.0)
    store, dispatcher, campaign = dispatching(redis_url, "window")
    pushes, pipelines = spy_on_redis(monkeypatch, alone=("LPUSH", "PUBLISH"))
    dispatcher.tick()
    assert len(sent_chains(store, campaign)) == LIMIT
    sends = [p for p in pipelines if "LPUSH" in p]
    assert not pushes and len(sends) == 1, (pushes, pipelines)
    assert sends[0].count("LPUSH") == LIMIT and sends[0].count("PUBLISH") == LIMIT


def test_chains_recorded_before_a_tick_stops_midway_are_still_sent(redis_url, monkeypatch):
    """A tick that fails after recording some chains (a bug, Redis gone for a moment, the lease
    lost) still sends those: recorded and not sent would leave them to the lost-task look."""
    monkeypatch.setattr(dispatcher_module, "SEND_BUDGET_SECONDS", 60.0)
    monkeypatch.setattr(dispatcher_module, "SEND_CHUNK", 1)
    store, dispatcher, campaign = dispatching(redis_url, "window")
    record = dispatcher._chains
    calls = []

    def second_fails(*args, **options):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("stopped midway")
        return record(*args, **options)

    monkeypatch.setattr(dispatcher, "_chains", second_fails)
    dispatcher.tick()  # logs the campaign's error and goes on, as for any failure in a campaign
    assert len(sent_chains(store, campaign)) == 1, "the chain recorded before the failure was sent"
    monkeypatch.setattr(dispatcher, "_chains", record)
    dispatcher.tick()
    assert len(sent_chains(store, campaign)) == LIMIT


@pytest.mark.parametrize("strategy", ["window", "batches"])
def test_a_ticks_chains_are_recorded_in_one_round_trip(redis_url, monkeypatch, strategy):
    """The task ids of the chains a tick sends are written in pipelined round trips (each
    entry's own compare-and-set): the first chain alone (it measures what a chain costs), then
    the rest together while the budget has room, not one round trip per chain."""
    monkeypatch.setattr(dispatcher_module, "SEND_BUDGET_SECONDS", 60.0)
    store, dispatcher, campaign = dispatching(redis_url, strategy)
    alone, pipelines = spy_on_redis(monkeypatch, alone=("EVALSHA", "EVAL"))
    dispatcher.tick()
    assert len(sent_chains(store, campaign)) == LIMIT
    writes = [p for p in pipelines if "EVALSHA" in p]
    assert not alone and writes == [["EVALSHA"], ["EVALSHA"] * (LIMIT - 1)], (alone, pipelines)


def test_the_prepare_stage_sends_its_group_without_watching_a_result(redis_url, monkeypatch):
    """The dispatcher's app (sender_app) never waits for a result, so the prepare-host group's
    tasks are not subscribed to one by one (Celery's group watches each for its barrier); their
    task ids are recorded in one round trip, and every message is queued."""
    import redis.client

    from kubeupgrade.workflow.app import sender_app

    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(sender_app(redis_url), store)
    nodes = [{"name": "cp-1", "role": "control-plane", "kubelet": "v1.30.4"}]
    nodes += [{"name": f"w-{i}", "role": "worker", "kubelet": "v1.30.4"} for i in range(WORKERS)]
    campaign = store.create("prepare", {"cluster": "prepare", "target": "1.31.14",
                                        "control_plane_version": "v1.30.4", "nodes": nodes}, "prepare.yaml")
    dispatcher.advance(campaign)
    for node in nodes:
        store.redis.set(agent_key(node["name"]), "alive", ex=600)
    subscribed, real_pubsub = [], redis.client.PubSub.execute_command

    def pubsub(self, *args):
        subscribed.append(args[0])
        return real_pubsub(self, *args)

    monkeypatch.setattr(redis.client.PubSub, "execute_command", pubsub)
    _, pipelines = spy_on_redis(monkeypatch)
    dispatcher.tick()
    entries = store.entries(campaign, 0)
    first = {e["phases"][0]["task_id"]: queue_of(Phase.PREPARE_HOST, name)
             for name, e in entries.items() if e["role"] != "cluster"}
    assert None not in first and len(first) == len(nodes)
    assert queued(store.redis, first) == set(first)
    assert subscribed == []
    assert [p for p in pipelines if "EVALSHA" in p] == [["EVALSHA"] * len(nodes)]
