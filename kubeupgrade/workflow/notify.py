"""Deliver the notifications the record queues (policies.notify): JSON POSTs, retried with
backoff, in the controller's notifier thread — never in the dispatcher or a phase, so a slow
or dead receiver can delay only other notifications, never the campaign.

At least once: an item moves from ku:notify to ku:notify:sending while it is sent (atomically,
so two controllers never send the same one) and is dropped from there only when every target
answered 2xx or ran out of attempts. Items a killed notifier left in ku:notify:sending go back
to the queue when a notifier starts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import redis

from kubeupgrade.workflow.names import valid_campaign_id
from kubeupgrade.workflow.record import NOTIFY_QUEUE, CampaignStore

log = logging.getLogger("kubeupgrade.notify")

SENDING = NOTIFY_QUEUE + ":sending"
ATTEMPTS = 5
FIRST_BACKOFF = 0.5  # seconds, doubled after each failed attempt
POST_TIMEOUT = 5.0


def post_json(url: str, payload: dict[str, Any]) -> None:
    """POST `payload`; raises OSError (urllib's errors included) unless the answer is 2xx."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "kubeupgrade"})
    with urllib.request.urlopen(request, timeout=POST_TIMEOUT) as response:  # noqa: S310 - http(s), validated
        if not 200 <= response.status < 300:
            raise OSError(f"HTTP {response.status}")


class Notifier:
    def __init__(self, client: redis.Redis, post: Callable[[str, dict[str, Any]], None] = post_json,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.redis = client
        self.store = CampaignStore(client)
        self.post = post
        self.sleep = sleep

    def recover(self) -> int:
        """Put back what a notifier that died mid-send left behind."""
        moved = 0
        while self.redis.lmove(SENDING, NOTIFY_QUEUE, "RIGHT", "RIGHT") is not None:
            moved += 1
        return moved

    def deliver(self, item: dict[str, Any]) -> list[str]:
        """Send to every target; returns the targets that never took it."""
        payload = {k: v for k, v in item.items() if k != "targets"}
        lost = []
        for url in item.get("targets", []):
            delay = FIRST_BACKOFF
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    self.post(url, payload)
                    break
                except (OSError, ValueError) as error:
                    if attempt == ATTEMPTS:
                        log.warning("notification to %s dropped after %d attempts: %s", url, attempt, error)
                        lost.append(url)
                    else:
                        self.sleep(delay)
                        delay *= 2
        return lost

    def step(self, wait: float = 1.0) -> bool:
        """Send the oldest queued notification, if one comes within `wait` seconds."""
        raw = self.redis.blmove(NOTIFY_QUEUE, SENDING, wait, "RIGHT", "LEFT")
        if raw is None:
            return False
        try:
            item = json.loads(raw)
        except ValueError:
            log.error("undecodable notification dropped: %.200s", raw)
        else:
            campaign = item.get("campaign")
            for url in self.deliver(item):
                if valid_campaign_id(campaign):
                    self.store.event(campaign, f"notification to {url} failed after {ATTEMPTS} attempts")
        self.redis.lrem(SENDING, 1, raw)
        return True

    def run_forever(self, stop: threading.Event) -> None:
        self.recover()
        while not stop.is_set():
            try:
                self.step()
            except redis.RedisError:
                log.warning("notifier: broker unreachable")
                stop.wait(1.0)
