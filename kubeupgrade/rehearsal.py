"""`kubeupgrade rehearse`: run a campaign on a sandbox that mirrors a live cluster, before it
touches the cluster itself, and say what would block it and whether every promise held.

The live cluster is only read (kubeupgrade.kube.snapshot). The mirror has the same node names,
roles, labels, host OS and versions, the same workloads, pods per node and PodDisruptionBudgets;
every node's drain is previewed there (dry-run evictions), then the real engine (agents,
controller, the campaign's policies) runs on it. What a rehearsal cannot tell: it runs
simulated kubeadm and kubelets, so a real one can still fail; the mirror runs at once (where
the run would land in the maintenance windows is worked out from the estimate); user gates,
which would query the live cluster's monitoring, are not run; a drain that would wait on a
PodDisruptionBudget fails at once instead.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeupgrade.campaign_file import load_campaign
from kubeupgrade.kube.drain import DrainPreview
from kubeupgrade.kube.snapshot import ClusterSnapshot
from kubeupgrade.model.campaign import Campaign, OnPdbBlock
from kubeupgrade.planning.estimate import DEFAULTS, Durations, estimate, hop_stages, minutes
from kubeupgrade.planning.windows import fit

DRAIN_SECONDS = 5  # a rehearsal's drain: long enough for the mirror's evictions, not for hopes


@dataclass
class Rehearsal:
    campaign: str
    state: str  # succeeded | failed | refused | timed-out
    error: str
    nodes: list[dict[str, Any]]  # per node: name, state, failed phase and its detail, its drain
    blockers: list[str]  # every pod a drain would be refused, and what stopped the run
    invariants: list[tuple[str, str, list[str]]]
    estimate_seconds: int
    rehearsal_seconds: float
    mirrored: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    estimate_source: str = ""  # recorded durations of earlier campaigns, or the defaults
    stages: list[dict[str, Any]] = field(default_factory=list)  # hop, stage, seconds, windowed
    windows: dict[str, Any] | None = None  # how the estimate lands in the maintenance windows

    @property
    def passed(self) -> bool:
        return self.state == "succeeded" and not any(found for _, _, found in self.invariants)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["invariants"] = [{"name": n, "measured": m, "violations": v} for n, m, v in self.invariants]
        data["passed"] = self.passed
        return data


def rehearsable(campaign: Campaign, notes: list[str]) -> Campaign:
    """The campaign as the mirror runs it: drains that fail fast instead of waiting on a budget,
    no maintenance windows or user gates (they are about the live cluster's time and monitoring)."""
    policies = campaign.policies
    drain = dataclasses.replace(policies.drain, timeout_seconds=min(policies.drain.timeout_seconds, DRAIN_SECONDS),
                                on_pdb_block=OnPdbBlock.FAIL)
    if policies.windows:
        notes.append("the mirror runs at once; where the estimate lands in the maintenance windows "
                     "is worked out from the estimate, not from the rehearsal's own timing")
    if policies.gates:
        notes.append(f"user gates not run ({', '.join(g.name for g in policies.gates)}): they query the "
                     "live cluster's monitoring; the built-in health checks run")
    changed = dataclasses.replace(policies, drain=drain, windows=(), gates=(),
                                  retries=dataclasses.replace(policies.retries, backoff_seconds=0.2))
    return dataclasses.replace(campaign, policies=changed)


def schedule_estimate(plan: Any, campaign: Campaign, durations: Durations, now: datetime
                      ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The estimate per stage, and, with maintenance windows, where a run started `now` would
    land in them (when it ends, how many openings it needs, how much of their time it fills)."""
    stages = [{"hop": index + 1, "stage": stage, "seconds": round(seconds), "windowed": windowed}
              for index, hop in enumerate(plan.hops) for stage, seconds, windowed in hop_stages(hop, durations)]
    windows = campaign.policies.windows
    if not windows:
        return stages, None
    landed = fit(windows, now, [(s["seconds"], s["windowed"]) for s in stages])
    return stages, {"windows": [w.describe() for w in windows], "started": landed.started.isoformat(timespec="minutes"),
                    "finished": landed.finished.isoformat(timespec="minutes"), "openings": landed.openings,
                    "occupancy": round(landed.occupancy, 2), "stalled": landed.stalled}


def rehearse(campaign_path: str | Path, kubeconfig: str, *, time_scale: float = 0.005,
             timeout: float = 900.0, durations: Durations = DEFAULTS, now: datetime | None = None) -> Rehearsal:
    from kubeupgrade.api import submit
    from kubeupgrade.kube.client import KubeApi
    from kubeupgrade.kube.discovery import cluster_version, discover_nodes
    from kubeupgrade.kube.drain import preview_drains
    from kubeupgrade.kube.snapshot import mirror_objects, take_snapshot
    from kubeupgrade.planning.live import with_live_state
    from kubeupgrade.planning.planner import plan_campaign
    from kubeupgrade.sandbox import invariants
    from kubeupgrade.sandbox.manager import Sandbox
    from kubeupgrade.sandbox.stack import Stack

    campaign = load_campaign(campaign_path)
    live = KubeApi(kubeconfig)
    try:
        snapshot = take_snapshot(live)
    finally:
        live.close()
    notes = [f"{n.name}: osImage names no distribution kubeupgrade knows; rehearsed as apt"
             for n in snapshot.nodes if n.guessed_os]
    directory = Path(tempfile.mkdtemp(prefix="kubeupgrade-rehearsal-"))
    started = time.monotonic()
    workloads = mirror_objects(snapshot)
    mirrored = {plural: len(items) for plural, items in workloads.items()}
    box, _ = Sandbox.up(directory / "mirror", node_specs=[dataclasses.asdict(n) for n in snapshot.nodes],
                        version=snapshot.version, name=campaign.cluster, workload=False,
                        time_scale=time_scale, objects=workloads)
    stack = Stack(box)
    try:
        mirror = KubeApi(str(box.kubeconfig))
        try:
            # The plan on the mirror is the plan on the live cluster: same nodes and versions.
            plan = plan_campaign(with_live_state(campaign, discover_nodes(mirror), cluster_version(mirror)))
            _wait_for_pods(box, snapshot)
            # Every node's drain as it would go now, before the run: the run stops at the first
            # refusal, the operator wants them all.
            drained = [n.name for hop in plan.hops[:1] for n in (*hop.control_planes, *hop.workers) if n.drain]
            previews = preview_drains(mirror, drained, campaign.policies.drain)
        finally:
            mirror.close()
        stack.start_redis()
        stack.start_agents()
        stack.start_controller()
        stack.wait_for_workers([f"agent@{n.name}" for n in snapshot.nodes])
        rehearsed = rehearsable(campaign, notes)
        handle = submit(rehearsed, broker=stack.broker, key=box.signing_key)
        state = handle.wait(timeout=timeout) or "timed-out"
        doc = handle.status()
        limit = plan.hops[0].schedule.limit if plan.hops else 1
        checked = invariants.report(box, max_unavailable=limit, succeeded=state == "succeeded")
        nodes, blockers = _outcome(doc, previews)
        stages, windows = schedule_estimate(plan, campaign, durations, now or datetime.now(UTC))
        guess = estimate(plan, durations)
        return Rehearsal(handle.id, state, ((doc.get("error") or {}).get("message") or ""), nodes,
                         blockers, checked, guess.total_seconds, time.monotonic() - started,
                         mirrored, notes, guess.source, stages, windows)
    finally:
        stack.stop_all()
        box.down()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for_pods(box: Any, snapshot: ClusterSnapshot, timeout: float = 60.0) -> None:
    """Until every mirrored pod runs, so budgets count them healthy as the live cluster does."""
    deadline = time.monotonic() + timeout
    wanted = snapshot.count("pods")
    while time.monotonic() < deadline:
        pods = box.api_get("/api/v1/pods")["items"]
        ready = sum(1 for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                           for c in p.get("status", {}).get("conditions", [])))
        if ready >= wanted:
            return
        time.sleep(0.2)


def _outcome(doc: dict[str, Any], previews: dict[str, DrainPreview]
             ) -> tuple[list[dict[str, Any]], list[str]]:
    """Per node: how the run left it and what its drain evicts or meets; the blockers: every
    refusal the previews found, then what stopped the run if they did not already say it."""
    nodes: list[dict[str, Any]] = []
    blockers = [f"{name}: {why}" for name, preview in previews.items() for why in preview.blocked]
    for hop in (doc.get("entries") or [])[:1]:
        for name, entry in sorted(hop.items()):
            if name.startswith("@"):
                continue
            failed = next((p for p in entry["phases"] if p["state"] == "failed"), None)
            preview = previews.get(name)
            nodes.append({"node": name, "state": entry["state"],
                          "failed_phase": failed["phase"] if failed else None,
                          "detail": failed["detail"] if failed else "",
                          "evicts": preview.evicts if preview else [],
                          "blocked": preview.blocked if preview else []})
            if failed and failed["phase"] == "drain" and not (preview and preview.blocked):
                # The failure names the pod and the budget as the engine would on the real cluster.
                error = (doc.get("error") or {}).get("message") or ""
                blockers.append(error if name in error else f"{name}: {failed['detail']}")
    return nodes, blockers


def render(report: Rehearsal) -> str:
    verdict = "would succeed" if report.passed else f"would NOT succeed ({report.state})"
    lines = [f"Rehearsal of campaign {report.campaign} on a mirror of the cluster: {verdict}",
             f"Mirrored: {', '.join(f'{n} {k}' for k, n in sorted(report.mirrored.items())) or 'nothing'}",
             f"Estimated duration on the real cluster: {minutes(report.estimate_seconds)} "
             f"({report.estimate_source or 'typical phase durations'}; rehearsed in "
             f"{report.rehearsal_seconds:.0f}s)"]
    for stage in report.stages:
        lines.append(f"  hop {stage['hop']}  {stage['stage']:<36} {minutes(stage['seconds'])}"
                     + ("  (in a window)" if stage["windowed"] and report.windows else ""))
    if report.windows:
        fitted = report.windows
        lines.append(f"Windows {', '.join(fitted['windows'])}: started {fitted['started']}, it would "
                     + ("stall: no window opens in the coming week" if fitted["stalled"] else
                        f"end {fitted['finished']} after {fitted['openings']} opening(s), filling "
                        f"{fitted['occupancy']:.0%} of their time"
                        + (" (it overruns them: steps begun inside run past the close)"
                           if fitted["occupancy"] > 1 else "")))
    if report.error:
        lines.append(f"Stopped: {report.error}")
    for blocker in report.blockers:
        lines.append(f"Blocker: {blocker}")
    lines.append("Nodes:")
    for node in report.nodes:
        lines.append(f"  {node['node']:<24} {node['state']:<10} "
                     + (f"{node['failed_phase']}: {node['detail']}" if node["failed_phase"] else ""))
        if node["evicts"]:
            lines.append(f"    drain evicts {len(node['evicts'])}: {', '.join(node['evicts'])}")
        for why in node["blocked"]:
            lines.append(f"    drain refused: {why}")
    lines.append("Safety invariants:")
    for name, measured, found in report.invariants:
        lines.append(f"  {name:<42} {measured:<28} {'held' if not found else 'BROKEN: ' + '; '.join(found)}")
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(line.rstrip() for line in lines)
