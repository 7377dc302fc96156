"""Tell the upgrade's story where `kubectl describe node` and `kubectl get events` look: a core
v1 Event per step of a node (UpgradeStarted, Drained, KubeletUpgraded, UpgradeSucceeded,
UpgradeFailed) and a node annotation with the campaign, phase and state.

Best effort and off the dispatcher's path: a bounded queue drained by one thread, which waits
out an API server that is away for up to OUTAGE_SECONDS a batch (a single control plane's
kube-apiserver restarts during its upgrade, while the workers' preparation begins) and then
drops what it could not write (logged); it never delays a decision. The thread takes what
queued up within a second at once: every Event is created, but each node's annotation is
written once, with its latest state (a node often reaches two milestones within a second, and
the annotations were a third of a large campaign's API writes).
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kubeupgrade.errors import KubeupgradeError
from kubeupgrade.kube.client import KubeApi

log = logging.getLogger("kubeupgrade.events")

ANNOTATION = "kubeupgrade.io/upgrade"
COMPONENT = "kubeupgrade"
QUEUE_SIZE = 10_000
GATHER_SECONDS = 1.0  # how long the thread collects events before it writes them
BATCH_MOST = 1_000
OUTAGE_SECONDS = 60.0  # per batch: longer than a control plane's restart, short of the queue filling


@dataclass(frozen=True)
class NodeEvent:
    node: str
    reason: str  # UpgradeStarted, Drained, KubeletUpgraded, UpgradeSucceeded, UpgradeFailed
    message: str
    campaign: str
    phase: str
    state: str
    warning: bool = False


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def event_object(event: NodeEvent, at: float, instance: str) -> dict[str, Any]:
    """The core v1 Event, as kubelet and controllers write them for a node (namespace default)."""
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{event.node}.{uuid.uuid4().hex[:16]}", "namespace": "default",
                     "annotations": {"kubeupgrade.io/campaign": event.campaign}},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": event.node, "uid": event.node},
        "reason": event.reason, "message": event.message[:1024],
        "type": "Warning" if event.warning else "Normal",
        "source": {"component": COMPONENT, "host": instance},
        "firstTimestamp": _stamp(at), "lastTimestamp": _stamp(at), "count": 1,
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z",
        "action": event.reason,
        "reportingComponent": COMPONENT, "reportingInstance": instance,
    }


def latest_by_node(events: list[NodeEvent]) -> dict[str, NodeEvent]:
    """Each node's last event in `events`: the one its annotation must show."""
    return {event.node: event for event in events}


class EventRecorder:
    def __init__(self, api: KubeApi, gather_seconds: float = GATHER_SECONDS,
                 outage_seconds: float = OUTAGE_SECONDS) -> None:
        self.api = api
        self.gather_seconds = gather_seconds
        self.outage_seconds = outage_seconds
        # each with when it was reached: a batch is written up to a second later
        self.pending: queue.Queue[tuple[NodeEvent, float]] = queue.Queue(QUEUE_SIZE)
        self.instance = socket.gethostname()
        threading.Thread(target=self._run, daemon=True, name="node-events").start()

    def record(self, event: NodeEvent) -> None:
        try:
            self.pending.put_nowait((event, time.time()))
        except queue.Full:
            log.warning("event queue full: %s %s dropped", event.node, event.reason)

    def _run(self) -> None:
        while True:
            batch = [self.pending.get()]
            deadline = time.monotonic() + self.gather_seconds
            while len(batch) < BATCH_MOST and (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self.pending.get(timeout=left))
                except queue.Empty:
                    break
            self.send(batch)

    def send(self, reached: list[tuple[NodeEvent, float]]) -> None:
        """Create every event, stamped when it was reached, then annotate each node once with
        its latest."""
        api = self.api
        give_up = time.monotonic() + self.outage_seconds  # the whole batch's patience, not each call's
        for event, at in reached:
            self._best_effort(event, give_up, f"record event on {event.node}", api.core.create_namespaced_event,
                              "default", event_object(event, at, self.instance))
        for node, event in latest_by_node([event for event, _ in reached]).items():
            value = json.dumps({"campaign": event.campaign, "phase": event.phase, "state": event.state})
            self._best_effort(event, give_up, f"annotate {node}", api.core.patch_node, node,
                              {"metadata": {"annotations": {ANNOTATION: value}}})

    def _best_effort(self, event: NodeEvent, give_up: float, what: str, method: Any, *args: Any) -> None:
        try:
            self.api.tolerating(max(0.0, give_up - time.monotonic())).call(what, method, *args)
        except (KubeupgradeError, OSError, ValueError) as error:
            log.warning("could not record %s on %s: %s", event.reason, event.node, error)
