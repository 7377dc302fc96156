"""What a hop's record proves about safety, checked before a campaign may say it succeeded.

Pure: reads node entries (as the record stores them), no I/O. The window check uses the
controller's own timestamps: when the dispatcher first sent a worker's first out-of-service
phase, and when the phase that puts it back in service (uncordon, or the readiness wait when
the drain is skipped) ended. Not when that first phase began: where it runs on the host
(hooks before the drain, or the kubelet's install when the drain is skipped) the agent writes
that time with the host's clock, and a host clock an hour behind drew an outage an hour long
that overlapped every other worker's: a campaign that kept its window failed verification.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from kubeupgrade.model.phases import names_where
from kubeupgrade.workflow.schema import NodeEntry

OUTAGE_PHASES = names_where(takes_out_of_service=True)

BACK_IN_SERVICE = names_where(returns_to_service=True)


def outage_start(entry: NodeEntry) -> int:
    """Index of the first phase that takes the node out of service (or past the end)."""
    names = [p["phase"] for p in entry["phases"]]
    return next((i for i, name in enumerate(names) if name in OUTAGE_PHASES), len(names))


def outage_begun(entry: NodeEntry) -> bool:
    """Whether the node's first out-of-service phase has ever begun (in any attempt)."""
    phases = entry["phases"]
    split = outage_start(entry)
    if split >= len(phases):
        return False
    first = phases[split]
    return bool(first.get("started")) or first["state"] in ("running", "succeeded", "failed")


def outage_interval(entry: NodeEntry, now: float) -> tuple[float, float] | None:
    """When this worker was (or may have been) out of service; None if it never was."""
    phases = entry["phases"]
    split = outage_start(entry)
    if split >= len(phases):
        return None
    first = phases[split]
    if first["state"] == "pending" and not first.get("started"):
        return None
    # Records written before first_dispatched was kept: the earlier of the last send and the start.
    begun = [first["first_dispatched"]] if first.get("first_dispatched") else \
        [t for t in (first.get("dispatched"), first.get("started")) if t]
    if not begun:
        return None
    ended = back_in_service_at(entry)
    return min(begun), ended if ended is not None else now


def back_in_service_at(entry: NodeEntry) -> float | None:
    """When the phase that puts the node back in service ended (the controller's clock: the
    uncordon, or the readiness wait when the drain is skipped); None if it has not. Not when
    the entry ended: hooks after the node run on the host and end by the host's clock."""
    back = [p for p in entry["phases"] if p["phase"] in BACK_IN_SERVICE] or entry["phases"][-1:]
    last = back[-1]
    ended = last.get("ended")
    return float(ended) if last["state"] == "succeeded" and ended else None


def peak_overlap(intervals: list[tuple[float, float]]) -> tuple[int, float]:
    """The most intervals open at one moment, and that moment."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda point: (point[0], point[1]))  # an end before a start at one instant
    open_now = peak = 0
    when = 0.0
    for moment, change in points:
        open_now += change
        if open_now > peak:
            peak, when = open_now, moment
    return peak, when


def window_violations(entries: Mapping[str, NodeEntry] | Iterable[tuple[str, NodeEntry]], limit: int,
                      now: float | None = None) -> list[str]:
    """A message naming the workers out of service together if the record shows more than
    `limit` of them at once; empty when the window held. `entries` may be (node, entry) pairs
    decoded one at a time (CampaignStore.each_entry): only each worker's span is kept."""
    now = time.time() if now is None else now
    pairs = entries.items() if isinstance(entries, Mapping) else entries
    spans = {name: span for name, entry in pairs if entry.get("role") == "worker"
             and (span := outage_interval(entry, now)) is not None}
    peak, when = peak_overlap(list(spans.values()))
    if peak <= limit:
        return []
    together = sorted(name for name, (start, end) in spans.items() if start <= when < end)
    return [f"the record shows {peak} workers out of service at once ({', '.join(together)}); "
            f"the limit is {limit}"]
