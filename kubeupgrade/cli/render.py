"""Render plans and version listings as text tables or JSON. Pure: values in, strings out."""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from typing import Any

from kubeupgrade.host.listings import ListedPackage
from kubeupgrade.model.campaign import Policies, WorkerStrategy
from kubeupgrade.model.plan import Plan, plan_to_dict, version_label
from kubeupgrade.planning.estimate import (
    DEFAULTS,
    FORMULA,
    Durations,
    estimate,
    minutes,
    node_seconds,
)


def document(data: object, output: str) -> str:
    """A read command's document as `-o json` or `-o yaml` prints it (the same data either way)."""
    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False))
    return json.dumps(data, indent=2) + "\n"


def plan_to_dict_full(plan: Plan, identity: dict[str, str] | None = None,
                      policies: Policies | None = None, durations: Durations = DEFAULTS) -> dict[str, Any]:
    """The plan as `-o json` and `-o yaml` print it."""
    document = plan_to_dict(plan)
    guess = estimate(plan, durations)
    document["estimate"] = {"seconds": guess.total_seconds, "per_hop": list(guess.per_hop),
                            "formula": FORMULA, "source": guess.source}
    if identity:
        document["identity"] = identity
    if policies:
        document["drain"] = policy_lines(policies)["drain"]
        document["controls"] = {"canary": policies.canary, "gate_every": policies.gate_every,
                                "gate_timeout": policies.gate_timeout_seconds,
                                "on_gate_failure": policies.on_gate_failure.value,
                                "max_failed_workers": policies.max_failed_workers}
        document["hooks"] = {kind: [list(argv) for argv in getattr(policies.hooks, kind)]
                             for kind in HOOK_POINTS}
    return document


HOOK_POINTS = {"after_first_control_plane": "on the first control plane, after `kubeadm upgrade apply`",
               "before_drain": "on each node, before its drain",
               "after_node": "on each node, once it is back"}


def policy_lines(policies: Policies) -> dict[str, Any]:
    """The drain policy and hooks as an operator reads them."""
    drain = policies.drain
    grace = f"{drain.grace_period_seconds}s" if drain.grace_period_seconds is not None else "each pod's own"
    return {
        "drain": {"timeout": f"{drain.timeout_seconds}s", "grace_period": grace,
                  "delete_emptydir_data": drain.delete_emptydir_data,
                  "pod_selector": drain.pod_selector or "all pods",
                  "on_pdb_block": drain.on_pdb_block.value, "skip_for_patch": drain.skip_for_patch},
        "hooks": [f"{where}: {shlex.join(argv)}" for kind, where in HOOK_POINTS.items()
                  for argv in getattr(policies.hooks, kind)],
    }


def control_lines(policies: Policies) -> list[str]:
    """The canary and health gates, the failure budget, windows and notifications."""
    budget = (f"up to {policies.max_failed_workers} worker(s) may fail while the others go on"
              if policies.max_failed_workers else "the first failed worker stops new ones")
    gate = (f"the health gate (timeout {policies.gate_timeout_seconds}s, then "
            f"{policies.on_gate_failure.value})")
    waves = f" after every {policies.gate_every} worker(s)" if policies.gate_every else ""
    if policies.canary:
        first = f"Canary: the first {policies.canary} worker(s) of each hop go alone, then {gate}"
        first += f", and again{waves}" if waves else ""
    else:
        first = f"Canary: none; {gate}{waves}" if waves else "Canary: none"
    lines = [f"{first}. Failure budget: {budget}."]
    for user_gate in policies.gates:
        if user_gate.command:
            what = f"`{shlex.join(user_gate.command)}` exits 0"
        else:
            check = user_gate.prometheus
            assert check is not None
            bounds = " and ".join(f"{word} {value:g}" for word, value in
                                  (("below", check.below), ("above", check.above)) if value is not None)
            what = f"{check.query} {bounds} at {check.url}"
        lines.append(f"Gate {user_gate.name}: {what}")
    if policies.windows:
        lines.append("Maintenance windows: " + "; ".join(w.describe() for w in policies.windows))
    for target in policies.notify:
        lines.append(f"Notify {target.url}: {', '.join(sorted(target.events))}")
    return lines


def fit(lines: list[str], width: int) -> str:
    """Wrap lines longer than `width` between words (never inside a name or a phase), each
    continuation hanging under the text it continues."""
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        labelled = re.match(r"^(\s+\S+\s{2,})", line)
        hang = len(labelled.group(1)) if labelled else len(line) - len(line.lstrip()) + 2
        out += textwrap.wrap(line, width, subsequent_indent=" " * hang, break_long_words=False,
                             break_on_hyphens=False) or [line]
    return "\n".join(out)


def plan_to_text(plan: Plan, policies: Policies | None = None, columns: int = 80,
                 durations: Durations = DEFAULTS, wide: bool = False) -> str:
    """The plan for people: wrapped at `columns` between words; `wide` adds each node's
    duration and wraps nothing."""
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
            for pool in schedule.pools:
                lines.append(f"    pool {pool.name}: at most {pool.limit} of its {len(pool.workers)} "
                             f"out of service: {', '.join(pool.workers) or 'no worker'}")
        if hop.already_at_target:
            lines.append(f"  Already at {hop.target_label}: {', '.join(hop.already_at_target)}")
        if hop.out_of_scope:
            lines.append(f"  Out of scope, keeping their kubelet: {', '.join(hop.out_of_scope)}")
        lines.append("  Phases per node, with each node's phases back to back:" if wide
                     else "  Phases per node:")
        width = max(len(node.name) for node in hop.control_planes + hop.workers)
        for node in hop.control_planes + hop.workers:
            drain = "" if node.drain else "  (no drain)"
            phases = " > ".join(phase.value for phase in node.phases)
            took = f"{minutes(node_seconds(node, durations)):>7}  " if wide else ""
            lines.append(f"    {node.name:<{width}}  {took}{phases}{drain}")
    if policies is not None and plan.hops:
        described = policy_lines(policies)
        drain = described["drain"]
        lines.append("")
        lines.append(f"Drain: timeout {drain['timeout']}, grace period {drain['grace_period']}, "
                     f"pods: {drain['pod_selector']}, emptyDir data "
                     f"{'deleted' if drain['delete_emptydir_data'] else 'refused'}, "
                     f"on a PDB block: {drain['on_pdb_block']}"
                     f"{', patch upgrades skip the drain' if drain['skip_for_patch'] else ''}")
        lines += control_lines(policies)
        lines.append("Hooks (argv, run as root by the agent):" if described["hooks"] else "Hooks: none")
        lines += [f"  {hook}" for hook in described["hooks"]]
    if plan.hops:
        guess = estimate(plan, durations)
        per_hop = ", ".join(minutes(s) for s in guess.per_hop)
        lines.append("")
        lines.append(f"Estimated duration: about {minutes(guess.total_seconds)}"
                     + (f" (hops: {per_hop})" if len(guess.per_hop) > 1 else "")
                     + f", {guess.source}; {FORMULA}")
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
    return "\n".join(lines) if wide else fit(lines, columns)


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
