"""Where the time between two links of a chain goes, from a campaign's record and the task events
Flower reads.

A chain's link runs when the one before it ends: the earlier task publishes the next (Celery
sends `task-sent`), the worker of the next one's queue takes it from the broker (`task-received`),
hands it to its pool process (`task-started`), and the phase wrapper records it begun (the
record's `started`). So each link's gap splits into four parts:

- published: the earlier phase recorded ended -> the next link sent (the rest of the earlier
  task, Celery's trace, the message built, signed and pushed);
- delivered: sent -> received by the worker that serves the next link's queue;
- handed: received -> started in that worker's pool process;
- begun: started -> recorded as begun (the campaign read and the begin written).

A phase the dispatcher sends after the one before it ended (the head of a chain: a worker's
drain, once the window has room) counts as the link "dispatcher -> PHASE", published measured
from its `dispatched` (its entry written in the tick; the stage transitions, bench/stages.py,
measure the first of a stage). Events are each task's first of its kind: a phase that
looks again later (drain, wait-ready) keeps its first delivery's.

Pure: a record as `kubeupgrade status -o json` prints it, events as bench.event_log keeps them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PARTS = ("published", "delivered", "handed", "begun")


@dataclass(frozen=True)
class LinkTimes:
    link: str  # "install-kubelet -> restart-kubelet"
    side: str  # "agent" or "controller": where the later link ran
    published: float  # seconds
    delivered: float
    handed: float
    begun: float

    @property
    def total(self) -> float:
        return self.published + self.delivered + self.handed + self.begun


def link_times(doc: Mapping[str, Any], events: Mapping[str, Mapping[str, Any]]) -> list[LinkTimes]:
    """Every link of every node's chains in `doc` whose task has all three events."""
    found = []
    for hop in doc.get("entries") or []:
        after = _control_plane_predecessors(hop)
        for name, entry in hop.items():
            phases = entry["phases"]
            for earlier, later in zip(phases, phases[1:]):
                earlier = after.get((name, later["phase"]), earlier)
                seen = events.get(later.get("task_id") or "")
                if not seen or not earlier.get("ended") or not later.get("started"):
                    continue
                if not all(kind in seen for kind in ("task-sent", "task-received", "task-started")):
                    continue
                # A chain the dispatcher sent after the earlier phase ended starts at `dispatched`
                # (its entry written; the message goes when the tick's sends are flushed).
                sent_by_dispatcher = (later.get("dispatched") or 0.0) > earlier["ended"]
                host = str(seen.get("hostname") or "")
                found.append(LinkTimes(
                    link=f"{'dispatcher' if sent_by_dispatcher else earlier['phase']} -> {later['phase']}",
                    side="controller" if host.startswith("controller@") else "agent",
                    published=seen["task-sent"] - (later["dispatched"] if sent_by_dispatcher else earlier["ended"]),
                    delivered=seen["task-received"] - seen["task-sent"],
                    handed=seen["task-started"] - seen["task-received"],
                    begun=later["started"] - seen["task-started"]))
    return found


def _control_plane_predecessors(hop: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """The control planes go as one chain: the first phase a control plane runs after its
    `prepare-host` (sent with the hop's start) follows the last phase of the control plane
    before it, not its own `prepare-host`. (node, phase) -> the phase it follows, for every
    control plane but the first (in the order they began)."""
    def chain_part(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [p for p in entry["phases"][1:] if p.get("started")]

    planes = sorted(((name, chain_part(entry)) for name, entry in hop.items()
                     if entry.get("role") == "control-plane" and chain_part(entry)),
                    key=lambda item: item[1][0]["started"])
    return {(name, part[0]["phase"]): previous[-1]
            for (_, previous), (name, part) in zip(planes, planes[1:])}


def percentile(values: list[float], share: float) -> float:
    """The value at `share` of the sorted values (the nearest rank below; bench.scale's too)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def summary(times: list[LinkTimes]) -> list[dict[str, Any]]:
    """Per link (in the order first met) and side: how many, and each part's median and p90."""
    groups: dict[tuple[str, str], list[LinkTimes]] = defaultdict(list)
    for times_of_one in times:
        groups[(times_of_one.link, times_of_one.side)].append(times_of_one)
    rows = []
    for (link, side), group in groups.items():
        row: dict[str, Any] = {"link": link, "side": side, "count": len(group)}
        for part in (*PARTS, "total"):
            values = [getattr(one, part) for one in group]
            row[part] = (statistics.median(values), percentile(values, 0.9))
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table, milliseconds: median / p90."""
    lines = ["| link | runs on | links | published | delivered | handed | begun | total |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = " | ".join(f"{row[part][0] * 1000:.0f} / {row[part][1] * 1000:.0f}" for part in (*PARTS, "total"))
        lines.append(f"| {row['link']} | {row['side']} | {row['count']} | {cells} |")
    return "\n".join(lines)
