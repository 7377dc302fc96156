"""The outbox: a thread's sends held in kombu's publish batch and sent together on flush.
Real redis-server and real Celery sends; the messages go to queues nobody consumes."""

from __future__ import annotations

import threading

import pytest
import redis
from celery import Celery, chain, group

from kubeupgrade.workflow.app import Outbox, client_app, configure

pytestmark = pytest.mark.integration


def link(sender, name: str, queue: str):  # type: ignore[no-untyped-def]
    return sender.signature(name, kwargs={}, immutable=True).set(queue=queue, ignore_result=True)


def test_held_sends_of_every_shape_leave_together_on_flush(redis_url):
    sender, broker = client_app(redis_url), redis.Redis.from_url(redis_url)
    outbox = Outbox(sender, 1000)
    chain([link(sender, "t.a", "q-one"), link(sender, "t.b", "q-one")]).apply_async()
    link(sender, "t.c", "q-two").apply_async()
    group([chain([link(sender, "t.d", "q-three"), link(sender, "t.e", "q-three")]),
           link(sender, "t.f", "q-three")]).apply_async()
    held = (broker.llen("q-one"), broker.llen("q-two"), broker.llen("q-three"))
    outbox.flush()
    assert held == (0, 0, 0), "nothing leaves before the flush"
    # A chain is one message (its first link; the rest travel in it), a group one per member.
    assert (broker.llen("q-one"), broker.llen("q-two"), broker.llen("q-three")) == (1, 1, 2)


def test_another_threads_sends_are_not_held(redis_url):
    sender, broker = client_app(redis_url), redis.Redis.from_url(redis_url)
    outbox = Outbox(sender, 1000)
    link(sender, "t.mine", "q-mine").apply_async()
    other = threading.Thread(target=lambda: link(sender, "t.theirs", "q-theirs").apply_async())
    other.start()
    other.join(10)
    assert broker.llen("q-theirs") == 1 and broker.llen("q-mine") == 0
    outbox.flush()
    assert broker.llen("q-mine") == 1
    link(sender, "t.after", "q-mine").apply_async()  # no outbox any more: sent at once
    assert broker.llen("q-mine") == 2


def test_a_full_batch_is_sent_before_the_flush(redis_url):
    sender, broker = client_app(redis_url), redis.Redis.from_url(redis_url)
    outbox = Outbox(sender, 4)  # a message and its task-sent event: two commands each
    for index in range(3):
        link(sender, f"t.{index}", "q-many").apply_async()
    early = broker.llen("q-many")
    outbox.flush()
    assert early == 2 and broker.llen("q-many") == 3


def test_an_app_without_an_outbox_sends_at_once(redis_url):
    plain, broker = configure(Celery("plain"), redis_url), redis.Redis.from_url(redis_url)
    outbox = Outbox(plain, 1000)
    link(plain, "t.now", "q-now").apply_async()
    assert broker.llen("q-now") == 1
    outbox.flush()
