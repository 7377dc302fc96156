"""How long a plan should take, from typical phase durations (kubeupgrade.model.phases). Pure.

Per hop: prepare-host (every node at once) + preflight + every control-plane phase, one after
another + the first worker's preparation (later ones prepare while others are out of service)
+ ceil(workers / limit) rounds of one worker's outage + verification. Windows and batches are
estimated alike; a slow node, image pulls or a PodDisruptionBudget make a real run longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubeupgrade.model.phases import SPECS, Part
from kubeupgrade.model.plan import Hop, NodePlan, Phase, Plan

FORMULA = ("per hop: prepare + preflight + each control plane's phases in turn + one worker's "
           "preparation + ceil(workers / limit) x one worker's outage + verify")


def _seconds(phases: tuple[Phase, ...]) -> int:
    return sum(SPECS[phase].typical_seconds for phase in phases)


def _preparation(node: NodePlan) -> int:
    """Before the outage: kubeadm and its configuration, then the packages downloaded."""
    return _seconds(tuple(p for p in node.phases
                          if SPECS[p].part is Part.KUBEADM or p is Phase.DOWNLOAD_PACKAGES))


def _outage(node: NodePlan) -> int:
    return _seconds(tuple(p for p in node.phases
                          if SPECS[p].part is Part.KUBELET and p is not Phase.DOWNLOAD_PACKAGES))


def hop_seconds(hop: Hop) -> int:
    fixed = _seconds((Phase.PREPARE_HOST, Phase.PREFLIGHT, Phase.VERIFY))
    control_planes = sum(_seconds(node.phases) for node in hop.control_planes)
    if not hop.workers:
        return fixed + control_planes
    rounds = math.ceil(len(hop.workers) / max(1, hop.schedule.limit))
    return (fixed + control_planes + _preparation(hop.workers[0])
            + rounds * max(_outage(node) for node in hop.workers))


@dataclass(frozen=True)
class Estimate:
    total_seconds: int
    per_hop: tuple[int, ...]


def estimate(plan: Plan) -> Estimate:
    per_hop = tuple(hop_seconds(hop) for hop in plan.hops)
    return Estimate(sum(per_hop), per_hop)


def minutes(seconds: int) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds} s"
