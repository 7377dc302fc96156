"""Where the window audit starts a worker's outage: the dispatcher's send of its first
out-of-service phase, by the controller's clock, the last send before that phase first began.
Real redis-server and the real dispatcher (the messages go to queues nobody consumes)."""

from __future__ import annotations

import time

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


def test_a_worker_out_of_service_again_after_its_upgrade_counts_whatever_its_hosts_clock(redis_url):
    # The dispatcher leaves out of the cluster's count a worker of its own that finished after
    # the nodes were read (the read may show its own outage, since ended). "Finished" is when it
    # came back in service, by the controller's clock: hooks after the node end by the host's,
    # and a host an hour ahead kept a worker that went NotReady later out of the count for an
    # hour, leaving its slot to another outage.
    from kubeupgrade.kube.availability import AvailabilityPoller, OutOfService, Unavailable
    from kubeupgrade.workflow.record import new_phase

    read_at = time.time()
    poller = AvailabilityPoller(lambda: OutOfService(read_at, {"w-1": Unavailable(False, None, False)}))
    poller.read_once()
    dispatcher = Dispatcher(client_app(redis_url), CampaignStore.from_url(redis_url), availability=poller)
    phases = [new_phase(p) for p in ("drain", "install-kubelet", "restart-kubelet", "wait-ready", "uncordon",
                                     "hooks-after-node")]
    for phase in phases:
        phase.update(state="succeeded", started=read_at - 60, ended=read_at - 30)
    phases[-1].update(ended=read_at + 3600)  # the host's clock, an hour ahead
    entry = {"node": "w-1", "role": "worker", "state": "succeeded", "attempt": 1, "phases": phases,
             "ended": read_at + 3600}
    doc = {"id": "c-1"}
    outside, why = dispatcher._outside(doc, {"w-1": entry})
    assert why == "" and outside == frozenset({"w-1"})
    # Back in service after the read began: its own outage may be what the read saw.
    phases[4].update(ended=read_at + 1)
    assert dispatcher._outside(doc, {"w-1": entry})[0] == frozenset()


def test_maintenance_windows_are_judged_by_the_brokers_clock_on_every_process(redis_url, monkeypatch):
    # A host whose clock is two hours ahead: by it the window below is closed. The dispatcher
    # sends in the window and each agent checks it again before an outage begins: judged by two
    # clocks, the agent held what the dispatcher sent, and the dispatcher sent it again at once,
    # tick after tick, for as long as the clocks disagreed. Both now read the broker's.
    from datetime import UTC, datetime, timedelta

    from kubeupgrade.workflow import record as record_module
    from kubeupgrade.workflow.record import starts_disruption

    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    campaign = at_worker_stage(store, dispatcher, "window")
    now = datetime.now(UTC)
    window = {"days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], "timezone": "UTC",
              "start": (now - timedelta(minutes=30)).strftime("%H:%M"),
              "end": (now + timedelta(minutes=30)).strftime("%H:%M")}
    store.update(campaign, lambda doc: doc["campaign"]["policies"].update(windows=[window]))

    class HostClockAhead(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(hours=2)

    monkeypatch.setattr(record_module, "datetime", HostClockAhead)
    dispatcher.tick()
    sent = [n for n, e in store.entries(campaign, 0).items()
            if n.startswith("w-") and e["phases"][outage_start(e)].get("task_id")]
    assert sent, "the dispatcher sends in an open window"
    entry = store.entry(campaign, 0, sent[0])
    first = entry["phases"][outage_start(entry)]
    assert starts_disruption(entry, first["phase"])
    verdict = store.begin_phase(campaign, 0, sent[0], first["phase"], entry["attempt"], first["task_id"])
    assert verdict == "run"
