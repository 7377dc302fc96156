"""The dispatcher's lease, taken or renewed by one script in one round trip (a SET NX, then a
renewal, every tick before). Real redis-server and the real dispatcher."""

from __future__ import annotations

import time

import pytest

from kubeupgrade.workflow import locks
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.dispatcher import Dispatcher
from kubeupgrade.workflow.record import LEADER_KEY, CampaignStore
from tests.helpers import spy_on_redis
from tests.integration.test_dispatcher_budget import at_worker_stage

pytestmark = pytest.mark.integration


def test_the_lease_is_taken_renewed_and_refused_by_one_script(redis_url):
    client = CampaignStore.from_url(redis_url).redis
    assert locks.lead(client, "lease", "me", 5000) == 2, "nobody held it: taken"
    assert client.get("lease") == "me" and 4000 < client.pttl("lease") <= 5000
    client.pexpire("lease", 1000)
    assert locks.lead(client, "lease", "me", 5000) == 1, "held by me: renewed"
    assert client.pttl("lease") > 1000
    assert locks.lead(client, "lease", "another", 5000) == 0, "held by me: refused to another"
    assert client.get("lease") == "me" and client.pttl("lease") > 1000
    client.pexpire("lease", 1)
    time.sleep(0.01)
    assert locks.lead(client, "lease", "another", 5000) == 2, "expired: the other takes it"
    assert locks.lead(client, "lease", "me", 5000) == 0 and client.get("lease") == "another"


def test_leading_costs_one_round_trip_and_a_new_lead_reads_every_entry_again(redis_url, monkeypatch):
    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    campaign = at_worker_stage(store, dispatcher, "window")
    assert dispatcher._lead("me")
    dispatcher.tick()
    assert dispatcher._entries, "the hop's entries are kept between ticks"
    alone, pipelines = spy_on_redis(monkeypatch, alone=("SET", "EVAL", "EVALSHA", "GET", "PEXPIRE"))
    assert dispatcher._lead("me")
    assert alone == ["EVAL"] and not pipelines
    assert dispatcher._entries, "renewing keeps what was read"
    store.redis.delete(LEADER_KEY)  # expired meanwhile: whoever takes it again starts afresh
    assert dispatcher._lead("me") and not dispatcher._entries
    store.redis.set(LEADER_KEY, "another", px=5000)
    assert not dispatcher._lead("me") and store.redis.get(LEADER_KEY) == "another"
    assert campaign in store.active_ids()
