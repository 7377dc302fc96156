"""Notifications on a real redis-server to a real local HTTP receiver: queued by record writes,
delivered at least once with retries, filtered by event kind, a dead receiver given up on (and
named in the events) without holding back the others, and a crashed notifier's item resent."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from kubeupgrade.sandbox.processes import free_port
from kubeupgrade.workflow.notify import ATTEMPTS, SENDING, Notifier
from kubeupgrade.workflow.record import NOTIFY_QUEUE, CampaignStore, new_phase

pytestmark = pytest.mark.integration


class Receiver:
    def __init__(self, failures: int = 0):
        self.received: list[dict] = []
        self.failures = failures
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server interface
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if outer.failures:
                    outer.failures -= 1
                    self.send_response(500)
                else:
                    outer.received.append(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def campaign_with(store, notify):
    campaign_id = store.create("prod", {"cluster": "prod", "target": "1.31",
                                        "policies": {"notify": notify}}, "c.yaml")
    store.update(campaign_id, lambda doc: doc.update(state="running", hops=[{"index": 0}]))
    phase = new_phase("drain")
    phase.update(state="running", task_id="t1", attempts=1, started=1.0)
    store.put_entry(campaign_id, 0, "w-1", {"node": "w-1", "role": "worker", "hop": 0, "state": "running",
                                            "attempt": 1, "phases": [phase]})
    return campaign_id


def test_notifications_reach_each_receiver_for_the_events_it_wants(redis_url):
    store = CampaignStore.from_url(redis_url)
    flaky, nodes_only = Receiver(failures=2), Receiver()
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    campaign_id = campaign_with(store, [{"url": flaky.url, "events": ["campaign", "gate", "node"]},
                                        {"url": nodes_only.url, "events": ["node"]},
                                        {"url": dead, "events": ["node"]}])
    store.fail_phase(campaign_id, 0, "w-1", "drain", "PDB shop/web refused", attempt=1, task_id="t1")
    store.update(campaign_id, lambda doc: doc.update(state="failed", error={"message": "drain failed"}))
    slept: list[float] = []
    notifier = Notifier(store.redis, sleep=slept.append)
    while notifier.step(wait=0.1):
        pass
    kinds = [(n["kind"], n["state"]) for n in flaky.received]
    assert kinds == [("campaign", "running"), ("node", "running"), ("campaign", "failed")]
    assert flaky.received[0]["message"] == f"campaign {campaign_id} pending -> running"
    assert flaky.received[2]["message"] == f"campaign {campaign_id} running -> failed: drain failed"
    assert [(n["node"], n["phase"]) for n in nodes_only.received] == [("w-1", "drain")]
    assert "targets" not in nodes_only.received[0]  # receivers never see each other
    assert slept[:2] == [0.5, 1.0]  # the flaky one: two retries, backing off
    assert slept.count(0.5) == 2 and len(slept) == 2 + (ATTEMPTS - 1)  # the dead one, then given up
    assert any(e["message"] == f"notification to {dead} failed after {ATTEMPTS} attempts"
               for e in store.events(campaign_id))
    assert store.redis.llen(NOTIFY_QUEUE) == 0 and store.redis.llen(SENDING) == 0


def test_an_item_a_killed_notifier_was_sending_is_sent_again(redis_url):
    store = CampaignStore.from_url(redis_url)
    receiver = Receiver()
    store.redis.lpush(SENDING, json.dumps({"campaign": "c", "kind": "campaign", "message": "m",
                                           "targets": [receiver.url]}))
    notifier = Notifier(store.redis)
    assert notifier.recover() == 1
    assert notifier.step(wait=0.1) and [n["message"] for n in receiver.received] == ["m"]


def test_a_campaign_without_targets_queues_nothing(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign_id = campaign_with(store, [])
    store.fail_phase(campaign_id, 0, "w-1", "drain", "x", attempt=1, task_id="t1")
    assert store.redis.llen(NOTIFY_QUEUE) == 0


def test_a_damaged_notify_list_never_stops_the_write_that_caused_it(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign_id = store.create("prod", {"cluster": "prod", "target": "1.31", "policies": {"notify": 7}}, "c.yaml")
    store.update(campaign_id, lambda doc: doc.update(state="running"))
    assert store.get(campaign_id)["state"] == "running" and store.redis.llen(NOTIFY_QUEUE) == 0
