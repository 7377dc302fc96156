"""Which sent tasks have no message anywhere: the evidence for sending them again.

The record keeps a phase's task id from the moment the dispatcher signs it, before its message
is published; the next link of a chain is published by the worker that ran the link before it,
after that link recorded its end. Either publisher can die or lose the broker in between, and a
message taken by a consumer that is then killed waits in kombu's unacked set until the
visibility timeout (hours). In all three cases the phase stays pending with a task id that no
message carries, and nothing else would move the campaign.

A message that exists is in one of the places its life goes through, in this order: its queue
(a Redis list, one per priority step), a consumer (which at once marks the phase running, so the
dispatcher stops asking), running (its phase's beat key), ended (its result). `nowhere` reads
them in that order, so a message moving on while it reads is still found at a later place. A
slow queue is not a lost message: the message is in its list, however long it waits.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel

from kubeupgrade.workflow.liveness import beating


def queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue's messages in: the plain name holds priority 0
    (every message we send), one more list per other priority step."""
    return [queue] + [f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS if step]


def queued(client: redis.Redis, queues: Mapping[str, str]) -> set[str]:
    """The task ids (of `queues`: task id -> its queue) that some message waiting in that
    queue carries. Each queue is read once, whatever the number of tasks asked about it."""
    by_queue: dict[str, list[str]] = {}
    for task_id, queue in queues.items():
        by_queue.setdefault(queue, []).append(task_id)
    # We never send with a priority, so the other steps' lists are almost never there: one
    # EXISTS over all of them first spares three reads of four (a look at 500 waiting tasks
    # was 2,000 reads, the dispatcher's slowest regular tick at 5,000 nodes).
    others = [key for queue in by_queue for key in queue_keys(queue)[1:]]
    every_step = bool(others) and bool(client.exists(*others))
    keys = {queue: queue_keys(queue) if every_step else [queue] for queue in by_queue}
    with client.pipeline(transaction=False) as reads:
        for queue in by_queue:
            for key in keys[queue]:
                reads.lrange(key, 0, -1)
        lists = iter(reads.execute())
    found: set[str] = set()
    for queue, task_ids in by_queue.items():
        messages = [message if isinstance(message, bytes) else message.encode()
                    for _ in keys[queue] for message in next(lists)]
        named, unread = _named(messages)
        found.update(t for t in task_ids if t.encode() in named)
        if unread:  # a message that names no task where kombu puts it: looked in as text
            text = b"\n".join(unread)
            found.update(t for t in task_ids if t.encode() in text)
    return found


def _named(messages: list[bytes]) -> tuple[set[bytes], list[bytes]]:
    """The task ids the messages carry (kombu's correlation id, in the message's properties),
    and the messages that carry none there. One pass over each message: searching the queue's
    whole text for every task id, as this did, grew with their product (500 drains waiting on
    the controller's queue: 500 searches of 1.3 MB, ~55 ms), and took an id named anywhere in a
    message (a chain's first task is, in every later link's headers) for a waiting task."""
    named: set[bytes] = set()
    unread: list[bytes] = []
    for message in messages:
        at = message.find(_CORRELATION)
        if at < 0:
            unread.append(message)
            continue
        start = at + len(_CORRELATION)
        named.add(message[start:message.find(b'"', start)])
    return named, unread


_CORRELATION = b'"correlation_id": "'


def nowhere(client: redis.Redis, result_keys: Mapping[str, bytes | str],
            queues: Mapping[str, str]) -> set[str]:
    """The task ids (of `queues`: task id -> its queue) with no message in their queue, no
    beat and no result (`result_keys`: task id -> the key of its result)."""
    found = queued(client, queues)
    missing = [task_id for task_id in queues if task_id not in found]
    running = beating(client, missing)
    missing = [task_id for task_id in missing if task_id not in running]
    if not missing:
        return set()
    with client.pipeline(transaction=False) as reads:
        for task_id in missing:
            reads.exists(result_keys[task_id])
        ended = reads.execute()
    return {task_id for task_id, exists in zip(missing, ended, strict=True) if not exists}
