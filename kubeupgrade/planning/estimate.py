"""How long a plan should take, from phase durations. Pure.

Per hop: prepare-host (every node at once) + preflight + every control-plane phase, one after
another + the first worker's preparation (later ones prepare while others are out of service)
+ ceil(workers / limit) rounds of one worker's outage + verification. Windows and batches are
estimated alike; a slow node, image pulls or a PodDisruptionBudget make a real run longer.

A phase lasts its median over the runs recorded on the broker by earlier campaigns
(kubeupgrade.workflow.history) when there are at least MIN_SAMPLES of them, otherwise its
documented typical duration (kubeupgrade.model.phases).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubeupgrade.model.phases import SPECS, Part
from kubeupgrade.model.plan import Hop, NodePlan, Phase, Plan

FORMULA = ("per hop: prepare + preflight + each control plane's phases in turn + one worker's "
           "preparation + ceil(workers / limit) x one worker's outage + verify")
MIN_SAMPLES = 3  # fewer recorded runs than this say more about one node than about the phase


@dataclass(frozen=True)
class Durations:
    """Seconds per phase: recorded medians where there are enough runs, else the defaults."""

    recorded: Mapping[Phase, float] = field(default_factory=dict)
    runs: int = 0  # recorded phase runs behind `recorded`
    campaigns: int = 0  # earlier campaigns they came from

    @classmethod
    def from_samples(cls, samples: Mapping[Phase, Sequence[float]], campaigns: int) -> Durations:
        enough = {phase: values for phase, values in samples.items() if len(values) >= MIN_SAMPLES}
        return cls({phase: statistics.median(values) for phase, values in enough.items()},
                   sum(len(values) for values in enough.values()), campaigns)

    def of(self, phase: Phase) -> float:
        return self.recorded.get(phase, SPECS[phase].typical_seconds)

    def source(self) -> str:
        if not self.recorded:
            return "from typical phase durations"
        return (f"from the median of {self.runs} phase runs recorded by {self.campaigns} earlier "
                f"campaign(s) on this broker ({len(self.recorded)} of {len(SPECS)} phases; "
                "typical durations for the rest)")


DEFAULTS = Durations()


def _seconds(phases: Sequence[Phase], durations: Durations) -> float:
    return sum(durations.of(phase) for phase in phases)


def _preparation(node: NodePlan, durations: Durations) -> float:
    """Before the outage, after the control planes: kubeadm and its configuration (the
    repository and the packages were fetched while the control planes upgraded)."""
    return _seconds([p for p in node.phases
                     if SPECS[p].part is Part.KUBEADM and not SPECS[p].before_control_planes], durations)


def _outage(node: NodePlan, durations: Durations) -> float:
    return _seconds([p for p in node.phases
                     if SPECS[p].part is Part.KUBELET and p is not Phase.DOWNLOAD_PACKAGES], durations)


def node_seconds(node: NodePlan, durations: Durations = DEFAULTS) -> int:
    """One node's phases back to back (the `plan -o wide` column)."""
    return round(_seconds(node.phases, durations))


def hop_seconds(hop: Hop, durations: Durations = DEFAULTS) -> int:
    return round(sum(seconds for _, seconds, _ in hop_stages(hop, durations)))


def hop_stages(hop: Hop, durations: Durations = DEFAULTS) -> list[tuple[str, float, bool]]:
    """The hop as steps (stage, seconds, windowed) in the order the engine runs them: a control
    plane's upgrade and a round of worker outages begin only inside a maintenance window."""
    steps = [("prepare and preflight", _seconds((Phase.PREPARE_HOST, Phase.PREFLIGHT), durations), False)]
    steps += [(f"control plane {node.name}", _seconds(node.phases, durations), True) for node in hop.control_planes]
    if hop.workers:
        steps.append(("workers: kubeadm", _preparation(hop.workers[0], durations), False))
        outage = max(_outage(node, durations) for node in hop.workers)
        rounds = math.ceil(len(hop.workers) / max(1, hop.schedule.limit))
        steps += [(f"workers: round {i + 1} of {rounds}", outage, True) for i in range(rounds)]
    steps.append(("verify", durations.of(Phase.VERIFY), False))
    return steps


@dataclass(frozen=True)
class Estimate:
    total_seconds: int
    per_hop: tuple[int, ...]
    source: str


def estimate(plan: Plan, durations: Durations = DEFAULTS) -> Estimate:
    per_hop = tuple(hop_seconds(hop, durations) for hop in plan.hops)
    return Estimate(sum(per_hop), per_hop, durations.source())


def minutes(seconds: int) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds} s"
