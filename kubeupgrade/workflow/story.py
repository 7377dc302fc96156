"""Which step of its upgrade a node has reached, for the Kubernetes events the controller
records (kubeupgrade.kube.events). Pure: a node entry in, a milestone out."""

from __future__ import annotations

from dataclasses import dataclass

from kubeupgrade.workflow.schema import NodeEntry


@dataclass(frozen=True)
class Milestone:
    reason: str
    phase: str
    state: str
    message: str
    warning: bool = False


def milestones(entry: NodeEntry, version: str) -> list[Milestone]:
    """Every step the node has reached, in order (a dispatcher tick can miss several)."""
    phases = entry["phases"]
    by_name = {p["phase"]: p for p in phases}
    if entry["state"] == "succeeded" and all(p.get("outcome") == "already-done" for p in phases[1:]):
        return []  # already at the version: nothing happened to this node
    reached = []
    begun = next((p for p in phases[1:] if p.get("started")), None)
    if begun is not None:
        reached.append(Milestone("UpgradeStarted", begun["phase"], "running", f"upgrade to v{version} started"))
    drain = by_name.get("drain")
    if drain and drain["state"] == "succeeded":
        reached.append(Milestone("Drained", "drain", "running", drain.get("detail") or "drained"))
    ready = by_name.get("wait-ready")
    if ready and ready["state"] == "succeeded":
        reached.append(Milestone("KubeletUpgraded", "wait-ready", "running", f"kubelet v{version} Ready"))
    if entry["state"] == "succeeded":
        reached.append(Milestone("UpgradeSucceeded", "", "succeeded", f"upgraded to v{version}"))
    elif entry["state"] == "failed":
        failed = next((p for p in phases if p["state"] == "failed"), None)
        name = failed["phase"] if failed else "?"
        error = failed.get("error", "") if failed else ""
        reached.append(Milestone("UpgradeFailed", name, "failed", f"{name} failed: {error}", warning=True))
    return reached


def to_tell(told: tuple[str, ...], reached: list[Milestone]) -> list[Milestone]:
    """What is new since `told` (the reasons already told, in order). After a retry reopened a
    failed node its story restarts from what it reached: only its latest step is new."""
    reasons = tuple(m.reason for m in reached)
    if reasons[: len(told)] == told:
        return reached[len(told):]
    return reached[-1:] if reached and (not told or told[-1] != reached[-1].reason) else []
