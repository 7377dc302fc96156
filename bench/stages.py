"""How long a campaign's record says each of its hops took to pass from one stage to the next.

A hop runs in stages, each the set of phases the dispatcher sends once the stage before has
ended: every node's prepare-host, the preflight, the control planes, the control-plane gate
(when the campaign has one), the workers, the Windows kube-proxy step (when there are Windows
workers), the verification; after it, the next hop's prepare-host or the campaign's end.

A transition is measured from the last phase of a stage ending to the first phase of the next:
`sent` when the dispatcher recorded it as sent (what the engine decides), `started` when an
agent or the controller began it (that, plus the time the message waited to be taken: in
`bench.scale` that is the agent farms' queue, a cost of emulating thousands of hosts on a few
cores). A worker's early phases (its repository and package download, sent while the control
planes upgrade) belong to no transition: the worker stage's first phase is the first one sent
after the control planes (and their gate) ended.

Pure: reads a record as `kubeupgrade status -o json` prints it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CLUSTER = "@cluster"
ORDER = ("prepare-host", "preflight", "control planes", "control-plane gate", "workers",
         "windows kube-proxy", "verify")
_CLUSTER_STAGES = {"preflight": "preflight", "control-plane gate": "control-plane-gate",
                   "windows kube-proxy": "windows-kube-proxy", "verify": "verify"}


@dataclass(frozen=True)
class Transition:
    hop: int  # from 1, as the events say
    between: str  # "control planes -> workers"
    ended: float  # the earlier stage's last phase ended (epoch seconds)
    sent: float  # the later stage's first phase was sent (or the campaign ended)
    started: float  # ... and was begun

    @property
    def to_sent(self) -> float:
        return self.sent - self.ended

    @property
    def to_started(self) -> float:
        return self.started - self.ended


def stage_transitions(doc: dict[str, Any]) -> list[Transition]:
    """Every stage-to-stage transition of the record's hops, in order. A stage with no phase
    that ran (no gate, no Windows worker, a hop that was not reached) is left out; a hop whose
    stages did not all end yields the transitions up to the first that did not."""
    found: list[Transition] = []
    hops = doc.get("entries") or []
    for index, entries in enumerate(hops):
        stages = list(_stages(entries))
        if index + 1 < len(hops):
            following = [p for e in hops[index + 1].values() for p in e["phases"]
                         if p["phase"] == "prepare-host" and p.get("started")]
            if following:
                stages.append(("next hop's prepare-host", following))
        for (earlier, done), (later, begun) in zip(stages, stages[1:]):
            if not all(p.get("ended") for p in done):
                break
            found.append(Transition(index + 1, f"{earlier} -> {later}", max(p["ended"] for p in done),
                                    min(_sent(p) for p in begun), min(p["started"] for p in begun)))
        else:
            if index == len(hops) - 1 and doc.get("finished") and stages and all(p.get("ended") for p in stages[-1][1]):
                last, done = stages[-1]
                found.append(Transition(index + 1, f"{last} -> campaign end", max(p["ended"] for p in done),
                                        doc["finished"], doc["finished"]))
    return found


def _stages(entries: dict[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The hop's stages that have phases, in the order the dispatcher runs them."""
    cluster = entries.get(CLUSTER, {"phases": []})["phases"]
    nodes = [e for name, e in entries.items() if name != CLUSTER]

    def by_role(role: str) -> list[dict[str, Any]]:
        return [p for e in nodes if e["role"] == role for p in e["phases"] if p["phase"] != "prepare-host"]

    ended_before = 0.0
    for stage in ORDER:
        if stage == "prepare-host":
            phases = [p for e in nodes for p in e["phases"] if p["phase"] == "prepare-host"]
        elif stage == "control planes":
            phases = by_role("control-plane")
        elif stage == "workers":
            # Sent once the stages before ended: the early fetch, sent before, is not the stage.
            phases = [p for p in by_role("worker") if p.get("started") and _sent(p) >= ended_before]
        else:
            phases = [p for p in cluster if p["phase"] == _CLUSTER_STAGES[stage]]
        ran = [p for p in phases if p.get("started")]  # not those skipped or never reached
        if ran:
            yield stage, ran
            ended_before = max((p["ended"] for p in ran if p.get("ended")), default=ended_before)


def _sent(phase: dict[str, Any]) -> float:
    """When the phase's chain was sent; a record without it (written before it was kept), when
    the phase began."""
    return phase.get("dispatched") or phase["started"]


def summary(transitions: list[Transition]) -> dict[str, float]:
    """The slowest transition to sent and to started (0 when there is none)."""
    return {"transition_sent_max": max((t.to_sent for t in transitions), default=0.0),
            "transition_started_max": max((t.to_started for t in transitions), default=0.0)}
