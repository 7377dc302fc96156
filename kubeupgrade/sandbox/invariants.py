"""Safety invariants of an upgrade, checked from what the sandbox saw: the hosts' command logs
and the API server's cordon/readiness history. Used by the end-to-end and fault tests, the soak
run, and anyone rehearsing a campaign on a sandbox.

Each check returns a list of violations (empty when the invariant held), never raises.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kubeupgrade.sandbox.manager import Sandbox

# Commands that change a host as part of an upgrade (repository switches and listings do not).
_DISRUPTIVE = (("kubeadm", "upgrade", "apply"), ("kubeadm", "upgrade", "node"),
               ("apt-get", "install"), ("dnf", "install"), ("yum", "install"),
               ("systemctl", "restart"), ("apt-mark", "unhold"),
               ("sc.exe", "stop"), ("sc.exe", "start"))


def _is_disruptive(argv: list[str]) -> bool:
    if "--download-only" in argv or "--downloadonly" in argv:
        return False
    return any(tuple(argv[: len(prefix)]) == prefix for prefix in _DISRUPTIVE)


def _log(box: Sandbox, node: str) -> list[dict[str, Any]]:
    """A host's command log, with Windows' kubeadm.exe read as kubeadm (the same tool)."""
    entries = box.command_log(node)
    for entry in entries:
        if entry["argv"] and entry["argv"][0] == "kubeadm.exe":
            entry["argv"] = ["kubeadm", *entry["argv"][1:]]
    return entries


def logs(box: Sandbox) -> dict[str, list[dict[str, Any]]]:
    return {node["name"]: _log(box, node["name"]) for node in box.nodes}


def roles(box: Sandbox) -> dict[str, str]:
    return {node["name"]: node["role"] for node in box.nodes}


def max_workers_out(box: Sandbox, among: set[str] | None = None) -> int:
    """The most workers cordoned or NotReady at the same moment, per the API server's history
    (only those `among`, e.g. one pool's, when given)."""
    workers = {n for n, r in roles(box).items() if r == "worker" and (among is None or n in among)}
    cordoned: set[str] = set()
    unready: set[str] = set()
    peak = 0
    for event in box.history():
        node = event["node"]
        if node not in workers:
            continue
        kind = event["event"]
        if kind == "cordon":
            cordoned.add(node)
        elif kind == "uncordon":
            cordoned.discard(node)
        elif kind in ("not-ready", "unknown"):
            unready.add(node)
        elif kind == "ready":
            unready.discard(node)
        peak = max(peak, len(cordoned | unready))
    return peak


def check_pools(box: Sandbox, pools: dict[str, tuple[int, set[str]]]) -> list[str]:
    """Each pool (name -> its limit, its workers) within its own limit."""
    problems = []
    for name, (limit, members) in pools.items():
        peak = max_workers_out(box, members)
        if peak > limit:
            problems.append(f"{peak} workers of pool {name} were out of service at once; its limit is {limit}")
    return problems


def check_max_unavailable(box: Sandbox, limit: int) -> list[str]:
    peak = max_workers_out(box)
    return [f"{peak} workers were out of service at once; the limit is {limit}"] if peak > limit else []


def _windows(entries: list[dict[str, Any]]) -> tuple[float, float] | None:
    disruptive = [e for e in entries if _is_disruptive(e["argv"])]
    if not disruptive:
        return None
    return min(e["start"] for e in disruptive), max(e["end"] for e in disruptive)


def control_plane_windows(box: Sandbox) -> list[tuple[float, float, str]]:
    """Per control plane and hop: from its first disruptive command to its kubelet restart."""
    spans = []
    for node, entries in logs(box).items():
        if roles(box)[node] != "control-plane":
            continue
        opened: float | None = None
        for entry in entries:
            if not _is_disruptive(entry["argv"]):
                continue
            if opened is None:
                opened = entry["start"]
            if entry["argv"][:2] == ["systemctl", "restart"] and entry["exit"] == 0:
                spans.append((opened, entry["end"], node))
                opened = None
        if opened is not None:
            spans.append((opened, max(e["end"] for e in entries), node))
    return sorted(spans)


def check_control_planes_serial(box: Sandbox) -> list[str]:
    """No two control planes change at the same time."""
    spans = control_plane_windows(box)
    return [f"control planes {a} and {b} were upgraded at the same time"
            for (_, end_a, a), (start_b, _, b) in zip(spans, spans[1:], strict=False) if start_b < end_a and a != b]


def check_apply_once_per_version(box: Sandbox) -> list[str]:
    """`kubeadm upgrade apply vX` succeeded on exactly one node per version."""
    succeeded: dict[str, set[str]] = {}
    for node, entries in logs(box).items():
        for entry in entries:
            if entry["argv"][:3] == ["kubeadm", "upgrade", "apply"] and entry["exit"] == 0:
                version = next((a for a in entry["argv"][3:] if a.startswith("v")), "?")
                succeeded.setdefault(version, set()).add(node)
    return [f"kubeadm upgrade apply {v} succeeded on {sorted(nodes)}" for v, nodes in succeeded.items()
            if len(nodes) != 1]


def control_plane_spans(box: Sandbox) -> list[tuple[float, float]]:
    """Per hop, from the first control plane's first change to the last one's kubelet restart.
    A hop's span starts at the window holding `kubeadm upgrade apply`."""
    entries = logs(box)
    applies = [(e["start"], n) for n, es in entries.items() for e in es
               if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]
    spans: list[list[float]] = []
    for start, end, node in control_plane_windows(box):
        begins_hop = any(n == node and start <= t <= end for t, n in applies)
        if begins_hop or not spans:
            spans.append([start, end])
        else:
            spans[-1][1] = max(spans[-1][1], end)
    return [(a, b) for a, b in spans]


def check_workers_after_control_planes(box: Sandbox) -> list[str]:
    """No worker changes while the control planes of a hop are being upgraded, nor before."""
    spans = control_plane_spans(box)
    if not spans:
        return []
    problems = []
    for node, entries in logs(box).items():
        if roles(box)[node] != "worker":
            continue
        for entry in entries:
            if not _is_disruptive(entry["argv"]):
                continue
            inside = any(low <= entry["start"] <= high for low, high in spans)
            if inside or entry["start"] < spans[0][0]:
                problems.append(f"worker {node} ran `{' '.join(entry['argv'])}` before every "
                                "control plane had finished the hop")
                break
    return problems


def check_host_commands_serial(box: Sandbox) -> list[str]:
    """No two mutating commands ran on one host at the same time (a duplicate delivery, a
    command left running by a killed agent)."""
    problems = []
    for node, entries in logs(box).items():
        ordered = sorted((e for e in entries if _is_disruptive(e["argv"])), key=lambda e: e["start"])
        for first, second in zip(ordered, ordered[1:], strict=False):
            if second["start"] < first["end"]:
                problems.append(f"{node}: `{' '.join(second['argv'])}` started while "
                                f"`{' '.join(first['argv'])}` was still running")
    return problems


def command_counts(box: Sandbox, node: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for entry in _log(box, node):
        argv = entry["argv"]
        key = " ".join(argv[:3]) if argv[0] == "kubeadm" else " ".join(argv[:2])
        counts[key] += 1
    return counts


def check_nothing_left_cordoned(box: Sandbox) -> list[str]:
    nodes = box.api_get("/api/v1/nodes")["items"]
    return [f"{n['metadata']['name']} is still cordoned" for n in nodes if n["spec"].get("unschedulable")]


def report(box: Sandbox, max_unavailable: int, *, succeeded: bool = True) -> list[tuple[str, str, list[str]]]:
    """Each invariant checked, with what was measured and its violations (empty: it held)."""
    peak = max_workers_out(box)
    applies = sum(1 for entries in logs(box).values() for e in entries
                  if e["argv"][:3] == ["kubeadm", "upgrade", "apply"] and e["exit"] == 0)
    commands = sum(1 for entries in logs(box).values() for e in entries if _is_disruptive(e["argv"]))
    rows = [
        ("workers out of service", f"peak {peak}, limit {max_unavailable}",
         check_max_unavailable(box, max_unavailable)),
        ("control planes one at a time", f"{len(control_plane_windows(box))} control-plane windows",
         check_control_planes_serial(box)),
        ("kubeadm upgrade apply once per version", f"{applies} successful apply",
         check_apply_once_per_version(box)),
        ("no worker before the control planes", f"{len(control_plane_spans(box))} hop(s)",
         check_workers_after_control_planes(box)),
        ("one mutating command per host at a time", f"{commands} mutating commands",
         check_host_commands_serial(box)),
    ]
    if succeeded:
        cordoned = check_nothing_left_cordoned(box)
        rows.append(("nothing left cordoned", f"{len(cordoned)} cordoned", cordoned))
    return rows


def check_all(box: Sandbox, max_unavailable: int, *, succeeded: bool = True) -> list[str]:
    problems = (check_max_unavailable(box, max_unavailable) + check_control_planes_serial(box)
                + check_apply_once_per_version(box) + check_workers_after_control_planes(box)
                + check_host_commands_serial(box))
    if succeeded:
        problems += check_nothing_left_cordoned(box)
    return problems


CHECKS = 6  # the invariants check_all applies to a successful campaign
