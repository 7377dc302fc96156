"""Where the window audit starts a worker's outage: the dispatcher's send of its first
out-of-service phase, by the controller's clock, the last send before that phase first began.
Real redis-server and the real dispatcher (the messages go to queues nobody consumes)."""

from __future__ import annotations

import pytest

from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.audit import outage_start
from kubeupgrade.workflow.dispatcher import Dispatcher
from kubeupgrade.workflow.record import CampaignStore, new_attempt
from tests.integration.test_dispatcher_budget import at_worker_stage

pytestmark = pytest.mark.integration


def first_out(store, campaign, node):
    entry = store.entry(campaign, 0, node)
    return entry["phases"][outage_start(entry)]


def test_the_audits_start_is_the_send_before_the_outage_first_began(redis_url):
    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    campaign = at_worker_stage(store, dispatcher, "window")
    dispatcher.tick()
    sent = sorted(n for n in store.entries(campaign, 0)
                  if n.startswith("w-") and first_out(store, campaign, n).get("task_id"))
    node = sent[0]
    first = first_out(store, campaign, node)
    assert first["first_dispatched"] == first["dispatched"]

    # Sent, never begun (held outside a window, or its message lost), sent again: the first send
    # took nothing out of service, so the audit starts at the new one.
    store.update_entry(campaign, 0, node, new_attempt)
    dispatcher.tick()
    again = first_out(store, campaign, node)
    assert again["dispatched"] > first["dispatched"] and again["first_dispatched"] == again["dispatched"]

    # Begun (by a host clock an hour behind), then sent again as a new attempt: the audit keeps
    # the send before it began, whatever the host wrote.
    def began_then_failed(entry):
        entry["phases"][outage_start(entry)].update(started=again["dispatched"] - 3600)
        new_attempt(entry)

    store.update_entry(campaign, 0, node, began_then_failed)
    dispatcher.tick()
    third = first_out(store, campaign, node)
    assert third["dispatched"] > again["dispatched"] and third["first_dispatched"] == again["dispatched"]
