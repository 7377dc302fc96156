"""Render plans and version listings as text tables or JSON. Pure: values in, strings out."""

from __future__ import annotations

import json

from kubeupgrade.host.listings import ListedPackage
from kubeupgrade.model.campaign import WorkerStrategy
from kubeupgrade.model.plan import Plan, plan_to_dict, version_label


def plan_to_json(plan: Plan, identity: dict[str, str] | None = None) -> str:
    document = plan_to_dict(plan)
    if identity:
        document["identity"] = identity
    return json.dumps(document, indent=2)


def plan_to_text(plan: Plan) -> str:
    lines = [f"Cluster {plan.cluster}: {plan.current.plain} -> {version_label(plan.target)}"]
    for index, hop in enumerate(plan.hops, start=1):
        kind = "minor" if hop.is_minor_upgrade else "patch"
        lines.append("")
        lines.append(f"Hop {index}/{len(plan.hops)}: {hop.source_label} -> {hop.target_label} ({kind})")
        if hop.control_planes:
            lines.append("  Control planes, strictly one at a time:")
            for position, node in enumerate(hop.control_planes, start=1):
                step = {"apply": "kubeadm upgrade apply", "node": "kubeadm upgrade node",
                        "none": "control plane already upgraded"}[node.kubeadm_step.value]
                lines.append(f"    {position}. {node.name:<24} {step}")
        if hop.workers:
            schedule = hop.schedule
            if schedule.strategy is WorkerStrategy.WINDOW:
                how = (f"sliding window, at most {schedule.limit} out of service at once; "
                       "a finished worker frees its slot at once")
            else:
                how = (f"{len(schedule.batches)} batches of at most {schedule.limit}; "
                       "a batch starts when the previous one is done")
            lines.append(f"  Workers ({len(hop.workers)}), after every control plane: {how}")
            for batch_index, batch in enumerate(schedule.batches, start=1):
                lines.append(f"    batch {batch_index}: {', '.join(batch)}")
        if hop.already_at_target:
            lines.append(f"  Already at {hop.target_label}: {', '.join(hop.already_at_target)}")
        lines.append("  Phases per node:")
        width = max(len(node.name) for node in hop.control_planes + hop.workers)
        for node in hop.control_planes + hop.workers:
            drain = "" if node.drain else "  (no drain)"
            phases = " > ".join(phase.value for phase in node.phases)
            lines.append(f"    {node.name:<{width}}  {phases}{drain}")
    for note in plan.notes:
        lines.append("")
        lines.append(f"Note: {note}")
    lines.append("")
    if plan.violations:
        lines.append(f"Plan REFUSED: {len(plan.violations)} policy violation(s):")
        for violation in plan.violations:
            lines.append(f"  [{violation.rule}] {violation.message}")
    else:
        lines.append("Policy: no violations.")
    return "\n".join(lines)


def listing_to_dict(rows: list[ListedPackage]) -> list[dict[str, str]]:
    return [
        {"version": row.version.plain, "package": row.package.raw, "source": row.source}
        for row in rows
    ]


def listing_to_text(rows: list[ListedPackage]) -> str:
    width = max(len(row.package.raw) for row in rows)
    lines = [f"{'VERSION':<14}{'PACKAGE':<{width + 2}}SOURCE"]
    for row in rows:
        lines.append(f"{row.version.plain:<14}{row.package.raw:<{width + 2}}{row.source}")
    return "\n".join(lines)
