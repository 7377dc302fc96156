"""Which workers of the cluster are out of service now, whoever took them out.

The limit an operator sets (`max_unavailable`, per pool too) is on the cluster's workers out of
service, not only on the campaign's own outages: a worker an operator cordoned for a repair, or
one whose kubelet stopped answering, takes capacity away as much as a drain does. The
controller reads the Node objects every few seconds (`AvailabilityPoller`, in its own thread)
and the dispatcher counts the workers found out of service that the campaign does not count
already. Reading is paged; a whole read costs the controller and the API server a few tenths of
a second at 5,000 nodes, so the poller spaces its reads to keep that a small share of a core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.discovery import CONTROL_PLANE_LABEL
from kubeupgrade.kube.nodes import CORDONED_BY, is_ready, read_nodes

log = logging.getLogger("kubeupgrade")

# Reads at most every FLOOR_SECONDS (how long a worker gone out of service may go unseen on a
# small cluster), no more often than keeps them within SHARE of the reading thread's time (a
# read of 0.5 s: every 10 s), and at least every CEILING_SECONDS: a slow read (a loaded API
# server) must not let the last one age past STALE_AFTER_SECONDS by the pacing alone, which
# would stop every outage from starting.
FLOOR_SECONDS = 1.0
SHARE = 0.05
# A snapshot older than this is not decided on: no outage starts until a fresh read.
STALE_AFTER_SECONDS = 60.0
CEILING_SECONDS = STALE_AFTER_SECONDS / 4
# The poller reads while a campaign wants it, and this long after it last asked.
WANTED_SECONDS = 30.0


@dataclass(frozen=True)
class Unavailable:
    """How one worker was out of service at the read."""

    cordoned: bool
    owner: str | None  # the kubeupgrade campaign that cordoned it; None: someone else (or nobody)
    ready: bool

    @property
    def why(self) -> str:
        reasons = []
        if self.cordoned:
            reasons.append(f"cordoned by campaign {self.owner}" if self.owner else "cordoned")
        if not self.ready:
            reasons.append("not Ready")
        return " and ".join(reasons)


@dataclass(frozen=True)
class OutOfService:
    """The cluster's workers out of service at one read."""

    read_at: float  # time.time() when the read began: a change after it may be missing
    workers: Mapping[str, Unavailable] = field(default_factory=dict)


def out_of_service(node: dict[str, Any]) -> tuple[str, Unavailable] | None:
    """(name, how) for a worker cordoned or not Ready; None for one in service, and for a
    control plane (the limit is on workers; control planes go one at a time anyway)."""
    metadata = node.get("metadata") or {}
    if CONTROL_PLANE_LABEL in (metadata.get("labels") or {}):
        return None
    name = str(metadata.get("name") or "")
    cordoned = bool((node.get("spec") or {}).get("unschedulable"))
    ready = is_ready(node)
    if not name or (ready and not cordoned):
        return None
    owner = (metadata.get("annotations") or {}).get(CORDONED_BY) if cordoned else None
    return name, Unavailable(cordoned, str(owner) if owner else None, ready)


def pause_after(took: float, floor: float = FLOOR_SECONDS, share: float = SHARE,
                ceiling: float = CEILING_SECONDS) -> float:
    """Seconds to wait after a read that took `took` before the next one."""
    return min(max(floor, took / share), max(floor, ceiling))


def why_unread(seen: OutOfService | None, error: str | None, now: float) -> str:
    """Why no outage may start on what was read ("" when one may): nothing read yet, or a read
    too old. Worded the same on every tick until a new read lands (it goes into the
    campaign's events each time it changes)."""
    failing = f" (the last read failed: {error})" if error else ""
    if seen is None:
        return f"the cluster's nodes have not been read yet{failing}"
    if now - seen.read_at > STALE_AFTER_SECONDS:
        at = time.strftime("%H:%M:%S UTC", time.gmtime(seen.read_at))
        return (f"the cluster's nodes were last read at {at}, more than "
                f"{STALE_AFTER_SECONDS:.0f}s ago{failing}")
    return ""


def read_out_of_service(api: KubeApi) -> OutOfService:
    started = time.time()
    return OutOfService(started, dict(read_nodes(api, out_of_service)))


class AvailabilityPoller:
    """Keeps the latest OutOfService read while a campaign wants it (`want`), for the
    dispatcher's thread to take (`latest`); the last failed read's reason in `error`."""

    def __init__(self, read: Callable[[], OutOfService], floor: float = FLOOR_SECONDS,
                 share: float = SHARE, ceiling: float = CEILING_SECONDS) -> None:
        self._read = read
        self._floor = floor
        self._share = share
        self._ceiling = ceiling
        self._latest: OutOfService | None = None
        self._wanted_until = 0.0  # monotonic
        self._wake = threading.Event()
        self.error: str | None = None

    def want(self) -> None:
        """A campaign runs: keep reading (and read now if nothing was read yet)."""
        first = self._wanted_until == 0.0 or time.monotonic() > self._wanted_until
        self._wanted_until = time.monotonic() + WANTED_SECONDS
        if first:
            self._wake.set()

    def latest(self) -> OutOfService | None:
        return self._latest

    def read_once(self) -> float:
        """One read; how long it took (seconds)."""
        began = time.monotonic()
        try:
            self._latest = self._read()
            self.error = None
        except Exception as error:  # noqa: BLE001 - said in status; the last good read ages out
            self.error = f"{type(error).__name__}: {error}".splitlines()[0]
            log.warning("reading the cluster's nodes for their availability failed: %s", self.error)
        return time.monotonic() - began

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if time.monotonic() > self._wanted_until:
                self._latest = None  # nobody asked for a while: a later campaign reads afresh
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            took = self.read_once()
            stop.wait(pause_after(took, self._floor, self._share, self._ceiling))
