"""A host whose clock runs ahead does not hide a lost task from the dispatcher.

The time a link's predecessor ended is written by the agent that ran it, with its own clock; the
dispatcher looks for the next link's message once that time is a few seconds past. Real
redis-server and the real dispatcher; the chain's next message is simply never published (its
publisher died), and the queues are read back."""

from __future__ import annotations

import time

import pytest

from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow import dispatcher as dispatcher_module
from kubeupgrade.workflow.dispatcher import queue_of
from kubeupgrade.workflow.undelivered import queued
from tests.integration.test_dispatcher_budget import dispatching

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("ahead", [0.0, 3600.0], ids=["clock right", "clock an hour ahead"])
def test_a_link_never_published_after_a_drain_is_sent_again_whatever_the_agents_clock(redis_url, monkeypatch, ahead):
    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_AFTER", 0.2)
    monkeypatch.setattr(dispatcher_module, "UNDELIVERED_LOOK_PERIOD", 0.1)
    monkeypatch.setattr(dispatcher_module, "LOST_TASK_GRACE", 0.3)
    store, dispatcher, campaign = dispatching(redis_url, "window")
    dispatcher.tick()  # the window's outage chains sent
    name, entry = next((n, e) for n, e in sorted(store.entries(campaign, 0).items()) if e["role"] == "worker"
                       and any(p["phase"] == Phase.DRAIN.value and p["task_id"] not in (None, "done")
                               for p in e["phases"]))
    phases = entry["phases"]
    at = next(i for i, p in enumerate(phases) if p["phase"] == Phase.DRAIN.value)
    following = phases[at + 1]
    assert following["state"] == "pending" and following["task_id"]
    lost = following["task_id"]
    # The drain ran and its end was written with a clock `ahead` seconds fast; whoever was to
    # publish the next link died first, so no message carries it.
    phases[at].update(state="succeeded", started=time.time() + ahead - 1, ended=time.time() + ahead)
    store.put_entry(campaign, 0, name, entry)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        dispatcher.tick()
        again = next(p for p in store.entries(campaign, 0)[name]["phases"] if p["phase"] == following["phase"])
        if again["task_id"] not in (lost, None):  # sent again: a new attempt's task
            break
        time.sleep(0.05)
    assert again["task_id"] not in (lost, None), "the lost link was never sent again"
    assert again.get("redeliveries") == 1
    assert queued(store.redis, {again["task_id"]: queue_of(Phase(following["phase"]), name)}) == {again["task_id"]}
