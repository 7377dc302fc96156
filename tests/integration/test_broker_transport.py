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
