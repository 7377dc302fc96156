"""kombu's Redis transport, with one repair and one saving. The repair: an acknowledgement the
broker did not get still frees the consumer's prefetch slot. (The saving: Channel._create_client.)

kombu's Redis QoS first removes the message from the broker's unacked index and only then frees
the slot. When the removal fails (the broker went away at that moment), the slot stays taken,
and with a prefetch of one (every agent: late acks, prefetch multiplier 1, one process) the
channel never asks the broker for a message again. Nothing tells the worker: the failed ack is
logged and swallowed, and a worker busy with its one task has no other socket open to see the
broker go. The agent then looks alive (its liveness key is refreshed) while its queue fills; a
campaign waited on such an agent for ever after a broker restart that fell between a phase's end
and its acknowledgement.

Here the slot is freed either way. The message stays in the broker's unacked set until the
visibility timeout brings it back, and the phase wrapper answers that copy as the duplicate it
is. The error still reaches the caller, so the worker logs it as before.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES, redis, virtual

SCHEMES = ("redis", "rediss")


class QoS(redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        try:
            self._remove_from_indices(delivery_tag).execute()
        finally:
            virtual.QoS.ack(self, delivery_tag)  # the local slot, whatever the broker heard

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            if requeue:
                self.restore_by_tag(delivery_tag, leftmost=True)
            else:
                self._remove_from_indices(delivery_tag).execute()
        finally:
            virtual.QoS.ack(self, delivery_tag)


class Channel(redis.Channel):
    QoS = QoS

    def _create_client(self, asynchronous: bool = False) -> Any:
        """kombu makes a new client object for every publish and acknowledgement; building its
        table of reply callbacks was a tenth of an agent farm's consumer loop. A client over a
        pool holds no connection of its own, so the synchronous one is made once per pool (the
        asynchronous one keeps its connection for BRPOP: kombu already makes it once)."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        made = self.__dict__.get("_made_client")
        if made is None or made[0] is not pool:  # a reconnect replaces the pool
            made = self.__dict__["_made_client"] = (pool, super()._create_client())
        return made[1]


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    """Make redis:// and rediss:// URLs use this transport in this process (kombu resolves a
    URL's scheme through TRANSPORT_ALIASES when it opens a connection; the scheme itself is
    kept, so rediss:// still means TLS)."""
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
