"""Render a campaign's status: per-node phase table with progress bars and durations. Pure."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from kubeupgrade.model.phases import hint as phase_hint
from kubeupgrade.workflow.schedule import schedule_of

STATE_STYLE = {"succeeded": "green", "running": "cyan", "pending": "dim", "failed": "bold red",
               "aborted": "yellow", "refused": "bold red"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _bar(done: int, total: int, width: int = 8) -> str:
    filled = round(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled) + f" {done}/{total}"


def node_rows(entries: dict[str, dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    rows = []
    now = time.time()
    for name in order + sorted(set(entries) - set(order)):
        entry = entries.get(name)
        if entry is None:
            continue
        phases = entry["phases"]
        done = sum(1 for p in phases if p["state"] == "succeeded")
        current = next((p for p in phases if p["state"] != "succeeded"), None)
        # Time on the node's own chain; the hop-wide prepare-host step is not part of it.
        started = min((p["started"] for p in phases[1:] if p["started"]), default=None)
        ended = max((p["ended"] or 0 for p in phases), default=None)
        duration = None
        if started:
            duration = (ended if entry["state"] in ("succeeded", "failed") and ended else now) - started
        rows.append({
            "node": name, "role": entry["role"], "state": entry["state"], "done": done,
            "total": len(phases), "phase": current["phase"] if current else "-",
            "detail": (current or phases[-1])["error"] or (current or phases[-1])["detail"],
            "attempts": sum(p["attempts"] for p in phases), "duration": duration,
            "cordoned": entry.get("cordoned_by_us", False),
        })
    return rows


def status_to_dict(doc: dict[str, Any]) -> dict[str, Any]:
    hops = []
    for index, hop in enumerate(doc["hops"]):
        order = list(schedule_of(doc, index).nodes) if hop.get("schedule") or doc.get("plan") else []
        hops.append({**{k: hop.get(k) for k in ("from", "target", "version", "stage")},
                     "nodes": node_rows(doc["entries"][index], order),
                     "drain_findings": hop.get("drain_findings", []),
                     "verification": hop.get("verification", [])})
    cordoned = sorted({row["node"] for hop in hops for row in hop["nodes"] if row["cordoned"]})
    data = {"id": doc["id"], "cluster": doc["cluster"], "state": doc["state"],
            "created": doc["created"], "current_hop": doc["current_hop"], "error": doc.get("error"),
            "left_cordoned": cordoned, "hops": hops,
            "events": [e["message"] for e in doc.get("events", [])[:10]]}
    data["next"] = recovery_hint(data)
    return data


def recovery_hint(data: dict[str, Any]) -> str:
    """What to do next, by where the campaign failed (README: "If an upgrade fails")."""
    error = data.get("error") or {}
    retry = f"kubeupgrade retry {data['id']}"
    specific = phase_hint(error.get("phase"), retry)
    if specific:
        return specific
    if data.get("state") in ("failed", "aborted"):
        return f"Next: `{retry}` resumes at the failed phase; `kubeupgrade abort {data['id']} --uncordon` gives up."
    return ""


def render_status(doc: dict[str, Any]) -> Group:
    data = status_to_dict(doc)
    parts: list[Any] = []
    header = Text(f"Campaign {data['id']}  cluster {data['cluster']}  ")
    header.append(data["state"].upper(), style=STATE_STYLE.get(data["state"], ""))
    parts.append(header)
    for index, hop in enumerate(data["hops"]):
        title = (f"Hop {index + 1}/{len(data['hops'])}: {hop['from']} -> "
                 f"{hop['version'] or hop['target']}  [{hop['stage']}]")
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("NODE", "ROLE", "STATE", "PROGRESS", "PHASE", "TIME", "TRIES", "DETAIL"):
            table.add_column(column, no_wrap=column != "DETAIL", overflow="fold")
        for row in hop["nodes"]:
            if row["node"] == "@cluster":
                continue
            role = {"control-plane": "cp", "worker": "worker"}.get(row["role"], row["role"])
            table.add_row(row["node"], role, Text(row["state"], style=STATE_STYLE.get(row["state"], "")),
                          _bar(row["done"], row["total"]), row["phase"], _duration(row["duration"]),
                          str(row["attempts"]), (row["detail"] or "")[:120])
        parts.append(table)
        for finding in hop["drain_findings"]:
            parts.append(Text(f"  drain simulation: {finding}", style="yellow"))
    if data["error"]:
        error = data["error"]
        parts.append(Text(f"FAILED at {error.get('node')} / {error.get('phase')}: {error.get('message')}",
                          style="bold red"))
        if error.get("tail"):
            parts.append(Text(error["tail"][-1500:], style="red"))
        hint = recovery_hint(data)
        if hint:
            parts.append(Text(hint, style="yellow"))
    if data["left_cordoned"]:
        parts.append(Text(f"Nodes left cordoned by this campaign: {', '.join(data['left_cordoned'])}",
                          style="yellow"))
    return Group(*parts)


def verification_table(doc: dict[str, Any]) -> Table:
    table = Table(title="Verification", title_justify="left")
    for column in ("NODE", "READY", "KUBELET", "CONTROL PLANE", "SCHEDULABLE"):
        table.add_column(column)
    hops = doc.get("hops") or []
    rows = hops[-1].get("verification", []) if hops else []
    for row in rows:
        table.add_row(row["name"], "yes" if row["ready"] else "NO", row["kubelet"],
                      row["control_plane"] or "-", "yes" if row["schedulable"] else "NO")
    return table


def follow(handle: Any, console: Any, interval: float = 0.5) -> dict[str, Any]:
    """Redraw a campaign's status in place until it ends; returns the final document."""
    import redis
    from rich.live import Live

    from kubeupgrade.api import TERMINAL

    doc = handle.status()
    with Live(render_status(doc), console=console, refresh_per_second=4) as live:
        while doc["state"] not in TERMINAL:
            time.sleep(interval)
            try:
                doc = handle.status()
            except redis.ConnectionError:
                continue  # the broker is restarting: keep the last picture until it is back
            live.update(render_status(doc))
    return doc
