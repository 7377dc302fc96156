"""A worker whose acknowledgement never reached the broker goes on consuming once the broker is
back. With kombu's own Redis transport, the prefetch slot of that message stayed taken: an agent
(prefetch one) looked alive and never took another message (kubeupgrade.workflow.broker_transport).

Real redis-server, stopped and started again on the same port; real kombu connections made by the
app's own configuration."""

from __future__ import annotations

import socket
import time

import pytest
from celery import Celery
from kombu import Consumer, Exchange, Queue

from kubeupgrade.sandbox.processes import free_port
from kubeupgrade.workflow.app import configure
from tests.helpers import start_redis_server

QUEUE = Queue("ack-test", Exchange("ack-test", "direct"), "ack-test")


def publish(app: Celery, body: str) -> None:
    with app.connection_for_write() as connection:
        connection.Producer(serializer="json").publish(
            body, exchange=QUEUE.exchange, routing_key=QUEUE.routing_key, declare=[QUEUE])


@pytest.mark.parametrize("settle", ["ack", "reject"])
def test_a_consumer_whose_ack_was_lost_with_the_broker_consumes_again(tmp_path, settle):
    port = free_port()
    server = start_redis_server(port, tmp_path)
    app = configure(Celery("ack-test"), f"redis://127.0.0.1:{port}/0")
    received = []
    connection = app.connection_for_read()
    try:
        channel = connection.channel()
        consumer = Consumer(channel, queues=[QUEUE], accept=["json"],
                            callbacks=[lambda body, message: received.append((body, message))])
        consumer.qos(prefetch_count=1)  # as every agent: one message at a time
        consumer.consume()
        publish(app, "first")
        connection.drain_events(timeout=10)
        assert [body for body, _ in received] == ["first"]
        message = received.pop()[1]

        server.kill()  # the broker goes while the message is being worked on
        server.wait(10)
        with pytest.raises(connection.connection_errors):
            getattr(message, settle)()  # Celery logs this error and carries on
        assert channel.qos.can_consume(), "the lost acknowledgement kept the prefetch slot"

        server = start_redis_server(port, tmp_path)
        publish(app, "second")
        # The consumer asks the broker again: it gets the message, or it learns that its
        # connection broke (which makes a Celery worker reconnect). Before the repair it waited
        # in silence, however long: the channel no longer asked for messages at all.
        deadline = time.monotonic() + 10
        while not received:
            try:
                connection.drain_events(timeout=max(0.1, deadline - time.monotonic()))
            except socket.timeout:
                pass
            except connection.connection_errors:
                return
            if not received and time.monotonic() > deadline:
                pytest.fail("the consumer stopped asking the broker for messages")
        assert [body for body, _ in received] == ["second"]
    finally:
        connection.release()
        server.kill()
        server.wait(10)


def test_a_phase_chain_reaches_its_queue_on_a_broker_that_holds_no_binding_and_declares_nothing(redis_url):
    """A phase goes by queue name (the anonymous exchange): after a broker restart that lost every
    binding, before the agent declared its queue again, the message still lands in the node's
    list. Nothing is declared on the way, by the sender or by the agent that sends the next link."""
    import base64
    import json

    import redis
    from celery import chain

    from kubeupgrade.model.plan import Phase
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import phase_signature, queue_of

    client = redis.Redis.from_url(redis_url)
    assert not client.keys("_kombu.binding.*")
    links = [phase_signature(client_app(redis_url), phase, "worker-7", f"t-{phase.value}", campaign="c",
                             hop=0, attempt=1, version="1.31.2")
             for phase in (Phase.INSTALL_KUBELET, Phase.RESTART_KUBELET)]
    stats_before = client.info("commandstats")
    chain(*links).apply_async()
    stats = client.info("commandstats")
    assert stats.get("cmdstat_sadd") == stats_before.get("cmdstat_sadd")  # no binding written
    assert stats.get("cmdstat_llen") == stats_before.get("cmdstat_llen")  # no queue declared
    assert stats.get("cmdstat_subscribe") == stats_before.get("cmdstat_subscribe")  # no result awaited
    queue = queue_of(Phase.INSTALL_KUBELET, "worker-7")
    assert client.llen(queue) == 1 and not client.keys("_kombu.binding.*")
    message = json.loads(client.lindex(queue, 0))
    assert message["properties"]["delivery_info"]["exchange"] == ""
    assert message["properties"]["delivery_info"]["routing_key"] == queue
    assert message["headers"]["id"] == "t-install-kubelet"
    assert message["content-type"] == "application/json"  # unsigned here: the next link can be read
    _, _, embed = json.loads(base64.b64decode(message["body"]))
    assert [link["options"]["declare"] for link in embed["chain"]] == [[]]
