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



def binding_writes(client) -> int:
    return int(client.info("commandstats").get("cmdstat_sadd", {}).get("calls", 0))


def publish_on(connection, body: str, queue: Queue = QUEUE) -> None:
    connection.Producer(serializer="json").publish(
        body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue],
        retry=True, retry_policy={"max_retries": 20, "interval_start": 0.1, "interval_step": 0.1})


def test_a_queue_is_declared_once_per_process_however_many_connections_publish_to_it(tmp_path):
    import redis

    port = free_port()
    server = start_redis_server(port, tmp_path)
    app = configure(Celery("declare-test"), f"redis://127.0.0.1:{port}/0")
    client = redis.Redis(port=port)
    other = Queue("other", Exchange("other", "direct"), "other")
    connections = [app.connection_for_write() for _ in range(3)]
    try:
        for connection in connections:  # as a pool's connections: made once, used many times
            connection.ensure_connection()
        before = binding_writes(client)
        publish_on(connections[0], "m0")
        one_declaration = binding_writes(client) - before
        assert one_declaration > 0
        publish_on(connections[1], "m1")
        publish_on(connections[2], "m2")
        assert binding_writes(client) - before == one_declaration  # kombu alone: once per connection
        publish_on(connections[1], "elsewhere", other)  # another queue is declared for itself
        assert binding_writes(client) - before == 2 * one_declaration
        assert client.llen("ack-test") == 3 and client.llen("other") == 1
    finally:
        for connection in connections:
            connection.release()
        server.kill()
        server.wait(10)


def test_a_connection_made_after_the_broker_lost_its_state_declares_again(tmp_path):
    """The shared record must not outlive the broker's state: a connection made after a broker
    restart declares its queue again, as it did with a record of its own, or its message would
    be routed through a binding the broker no longer has (and dropped)."""
    import redis

    port = free_port()
    server = start_redis_server(port, tmp_path)
    app = configure(Celery("declare-test"), f"redis://127.0.0.1:{port}/0")
    first = app.connection_for_write()
    second = None
    try:
        publish_on(first, "before")
        server.kill()  # it keeps nothing on disk: the binding is gone with it
        server.wait(10)
        server = start_redis_server(port, tmp_path)
        second = app.connection_for_write()
        publish_on(second, "after")
        client = redis.Redis(port=port)
        assert client.smembers("_kombu.binding.ack-test")
        assert client.lrange("ack-test", 0, -1) and client.llen("ack-test") == 1
    finally:
        first.release()
        if second is not None:
            second.release()
        server.kill()
        server.wait(10)
