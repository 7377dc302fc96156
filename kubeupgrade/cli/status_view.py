"""Render a campaign's status: per-node phase table with progress bars and durations. Pure."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from kubeupgrade.api import TERMINAL
from kubeupgrade.cli.terminal import plain_text
from kubeupgrade.model.phases import hint as phase_hint
from kubeupgrade.planning.windows import describe, windows_of
from kubeupgrade.workflow.broker_memory import MORE_MEMORY
from kubeupgrade.workflow.decide import first_open_phase
from kubeupgrade.workflow.names import CLUSTER_ENTRY
from kubeupgrade.workflow.schedule import schedule_of

STATE_STYLE = {"succeeded": "green", "running": "cyan", "queued": "cyan", "waiting": "dim",
               "stopped": "yellow", "failed": "bold red", "pending": "dim", "aborted": "yellow",
               "refused": "bold red"}
WIDE = 120  # from this many columns the table carries each node's detail


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _timestamp(moment: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(moment)) if moment else ""


def _bar(done: int, total: int, width: int = 8) -> str:
    filled = round(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled) + f" {done}/{total}"


def display_state(entry: dict[str, Any], campaign_state: str, waiting_for_agent: bool = False) -> str:
    """What a node is doing, honestly: queued (sent, not begun), running, waiting (for a slot
    or its agent), stopped (the campaign ended before it ran), succeeded, failed."""
    if entry["state"] in ("succeeded", "failed"):
        return str(entry["state"])
    current = first_open_phase(entry)
    if current is not None and current["state"] == "running":
        return "stopped" if campaign_state in TERMINAL else "running"
    if campaign_state in TERMINAL:
        return "stopped"
    if current is not None and current.get("task_id"):
        return "queued"
    return "waiting"


def node_rows(entries: dict[str, dict[str, Any]], order: list[str], campaign_state: str = "running",
              waiting_for_agents: dict[str, float] | None = None,
              now: float | None = None) -> list[dict[str, Any]]:
    rows = []
    now = time.time() if now is None else now
    for name in order + sorted(set(entries) - set(order)):
        entry = entries.get(name)
        if entry is None:
            continue
        phases = entry["phases"]
        done = sum(1 for p in phases if p["state"] == "succeeded")
        current = first_open_phase(entry)
        # Time on the node's own chain; the hop-wide prepare-host step is not part of it.
        started = min((p["started"] for p in phases[1:] if p["started"]), default=None)
        ended = max((p["ended"] or 0 for p in phases), default=None)
        duration = None
        if started:
            duration = (ended if entry["state"] in ("succeeded", "failed") and ended else now) - started
        state = display_state(entry, campaign_state)
        detail = (current or phases[-1])["error"] or (current or phases[-1])["detail"]
        if state in ("waiting", "queued") and name in (waiting_for_agents or {}):
            # Queued: the message waits in its queue, for an agent that is silent or that
            # answers but takes nothing (dispatcher NOT_TAKING_AFTER); the event log says which.
            detail = ("its agent does not answer" if state == "waiting"
                      else "its agent does not take its task (see events)")
        rows.append({
            "node": name, "role": entry["role"], "state": state, "done": done,
            "total": len(phases), "phase": current["phase"] if current else "-",
            "detail": detail, "attempts": sum(p["attempts"] for p in phases),
            "retries": sum(max(0, p["attempts"] - 1) for p in phases),
            "duration": duration, "cordoned": entry.get("cordoned_by_us", False),
        })
    return rows


def status_to_dict(doc: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    hops = []
    for index, hop in enumerate(doc["hops"]):
        schedule = schedule_of(doc, index) if hop.get("schedule") or doc.get("plan") else None
        order = list(schedule.nodes) if schedule else []
        cluster = doc["entries"][index].get(CLUSTER_ENTRY) or {"phases": []}
        gates = [p for p in cluster["phases"] if p["phase"].endswith("gate")]
        gate = next((p for p in gates if p["state"] != "succeeded"), gates[-1] if gates else None)
        rows = node_rows(doc["entries"][index], order, doc["state"], hop.get("waiting_for_agents"), now)
        by_name = {row["node"]: row for row in rows}
        hops.append({**{k: hop.get(k) for k in ("from", "target", "version", "stage")},
                     "nodes": rows,
                     "pools": [{"name": pool.name, "limit": pool.limit, "workers": len(pool.workers),
                                "done": sum(1 for w in pool.workers if by_name.get(w, {}).get("state") == "succeeded"),
                                "out": sum(1 for w in pool.workers if by_name.get(w, {}).get("cordoned"))}
                               for pool in (schedule.pools if schedule else ())],
                     "gate": {"phase": gate["phase"], "state": gate["state"],
                              "detail": gate["error"] or gate["detail"]} if gate else None,
                     "etcd_snapshot": hop.get("etcd_snapshot"),
                     "drain_findings": hop.get("drain_findings", []),
                     "verification": hop.get("verification", [])})
    cordoned = sorted({row["node"] for hop in hops for row in hop["nodes"] if row["cordoned"]})
    paused = doc.get("paused") if doc["state"] not in TERMINAL else None
    if paused and not (isinstance(paused, dict) and isinstance(paused.get("since"), (int, float))):
        paused = {"since": 0.0, "reason": f"(unreadable pause record: {paused!r:.80})"}
    ended = doc["state"] in TERMINAL or bool(paused)
    if paused:
        for hop_data in hops:
            for row in hop_data["nodes"]:
                if row["state"] == "waiting" and not row["detail"]:
                    row["detail"] = "the campaign is paused"
    data = {"id": doc["id"], "cluster": doc["cluster"], "state": doc["state"],
            "created": doc["created"], "current_hop": doc["current_hop"], "error": doc.get("error"),
            "paused": {"since": _timestamp(paused["since"]), "reason": paused["reason"],
                       "in_flight": [row["node"] for hop_data in hops for row in hop_data["nodes"]
                                     if row["state"] in ("running", "queued")]} if paused else None,
            # Mid-run a cordon is the upgrade at work; once the campaign stopped (or paused) it
            # is left over.
            "left_cordoned": cordoned if ended else [], "cordoned_now": [] if ended else cordoned,
            "hops": hops,
            "events": [{"time": _timestamp(e["t"]), "message": e["message"]}
                       for e in doc.get("events", [])[:10]],
            "damaged": list(doc.get("damaged") or []),
            # What an active campaign waits for before anything else: a controller to act.
            "waiting_for_controller": doc["state"] in ("pending", "running") and doc.get("controller_leading") is False,
            # An active campaign the dispatcher no longer looks at: nothing moves, whatever runs.
            "not_acted_on": doc["state"] in ("pending", "running") and doc.get("acted_on") is False,
            "broker_memory": doc.get("broker_memory")}
    try:
        windows = windows_of(doc.get("campaign") or {})
        data["window"] = (describe(windows, datetime.fromtimestamp(now, UTC) if now else datetime.now(UTC))
                          if windows and not ended else None)
    except ValueError as error:
        data["window"] = f"unknown ({error})"
    data["next"] = recovery_hint(data)
    return data


def recovery_hint(data: dict[str, Any]) -> str:
    """What to do next, by where the campaign failed (README: "If an upgrade fails")."""
    if data.get("paused"):
        return f"Next: `kubeupgrade resume {data['id']}` goes on."
    error = data.get("error") or {}
    retry = f"kubeupgrade retry {data['id']}"
    specific = phase_hint(error.get("phase"), retry,
                          cordoned=error.get("node") in data.get("left_cordoned", []))
    snapshot = next((hop["etcd_snapshot"] for hop in data.get("hops", []) if hop.get("etcd_snapshot")), None)
    if specific and snapshot and error.get("phase") == "kubeadm-upgrade-apply":
        specific += (f" The etcd snapshot taken before apply is {snapshot['path']} on {snapshot['node']} "
                     "(`etcdutl snapshot restore` it only if etcd's data is lost).")
    if specific:
        return specific
    if data.get("state") in ("failed", "aborted"):
        return f"Next: `{retry}` resumes at the failed phase; `kubeupgrade abort {data['id']} --uncordon` gives up."
    return ""


def hint_lines(hint: str, width: int) -> list[str]:
    """The hint on one line if it fits; otherwise each `command` on a line of its own, so that
    no command (or campaign id) is ever split where a copy would break it."""
    if len(hint) <= width:
        return [hint] if hint else []
    lines = []
    for index, segment in enumerate(hint.split("`")):
        segment = segment.strip()
        if index % 2:
            lines.append(f"    {segment}")
        elif segment.strip(".;, "):
            lines.append(segment if not lines else f"  {segment}")
    return lines


def without_trailing_spaces(text: str) -> str:
    """Rich pads titles and wrapped lines to the table's width: harmless on a terminal, noise
    in a log file or a diff."""
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def render_status(doc: dict[str, Any], *, width: int = 80, plain: bool = False,
                  now: float | None = None) -> Group:
    """The status screen for a console `width` columns wide. Node names are never cut: below
    WIDE columns the detail moves under the table and the progress bar becomes a count;
    `plain` (not a terminal) drops colours and box lines so the columns stay aligned in logs."""
    data = status_to_dict(doc, now)
    wide = width >= WIDE
    parts: list[Any] = []

    def styled(text: str, style: str) -> Text:
        return plain_text(text) if plain else plain_text(text, style)

    header = plain_text(f"Campaign {data['id']}  cluster {data['cluster']}  ")
    header.append(styled(data["state"].upper(), STATE_STYLE.get(data["state"], "")))
    paused = data["paused"]
    if paused:
        header.append(styled(" PAUSED", "bold yellow"))
    parts.append(header)
    if data["window"] and data["window"] != "open":
        parts.append(styled(f"Maintenance window {data['window']}: no outage begins until then",
                            "yellow"))
    if paused:
        flying = ", ".join(paused["in_flight"]) or "nothing"
        parts.append(styled(f"Paused {paused['reason']} at {paused['since'][11:19]}; "
                            f"still under way: {flying}", "yellow"))
        parts += [styled(line, "yellow") for line in hint_lines(data["next"], width)]
    for index, hop in enumerate(data["hops"]):
        title = (f"Hop {index + 1}/{len(data['hops'])}: {hop['from']} -> "
                 f"{hop['version'] or hop['target']}  [{hop['stage']}]")
        rows = [row for row in hop["nodes"] if row["node"] != "@cluster"]
        table = Table(title=plain_text(title), title_justify="left", expand=False, box=None,
                      pad_edge=False, header_style="" if plain else "bold underline")
        longest = max((len(row["node"]) for row in rows), default=4)
        table.add_column("NODE", no_wrap=True, min_width=max(4, longest))
        if wide:  # narrow screens keep the node and its phase whole instead (control planes come first)
            table.add_column("ROLE", no_wrap=True)
        table.add_column("STATE", no_wrap=True)
        table.add_column("PROGRESS" if wide and not plain else "DONE", no_wrap=True)
        table.add_column("PHASE", overflow="fold")
        table.add_column("TIME", no_wrap=True, justify="right")
        table.add_column("RETRIES", no_wrap=True, justify="right")
        if wide:
            table.add_column("DETAIL", overflow="fold", ratio=1)
        for row in rows:
            role = {"control-plane": "cp", "worker": "worker"}.get(row["role"], row["role"])
            progress = (_bar(row["done"], row["total"]) if wide and not plain
                        else f"{row['done']}/{row['total']}")
            cells = [plain_text(row["node"]), styled(row["state"], STATE_STYLE.get(row["state"], "")),
                     progress, plain_text(row["phase"]), _duration(row["duration"]), str(row["retries"])]
            if wide:
                cells.insert(1, plain_text(role))
                cells.append(plain_text((row["detail"] or "")[:200]))
            table.add_row(*cells)
        parts.append(table)
        failure = (data["error"] or {}).get("message")
        details = [row for row in rows if row["detail"] and row["detail"] != failure
                   and row["state"] in ("failed", "running", "waiting", "queued")]
        if details and not wide:  # under the table, each wrapped beside its node
            grid = Table.grid(padding=(0, 1))
            grid.add_column(no_wrap=True)
            grid.add_column(overflow="fold")
            for row in details:
                grid.add_row(plain_text(f"  {row['node']}:"), plain_text(row["detail"][:300]))
            parts.append(grid)
        if hop["pools"]:
            parts.append(plain_text("  pools: " + "; ".join(
                f"{p['name']} {p['done']}/{p['workers']} done, {p['out']} out (limit {p['limit']})"
                for p in hop["pools"])))
        gate = hop["gate"]
        if gate and (gate["state"] != "pending" or gate["detail"]):
            verdict = "green" if gate["state"] == "succeeded" else gate["state"]
            parts.append(styled(f"  {gate['phase']}: {verdict}: {gate['detail']}"[:600],
                                "green" if verdict == "green" else "yellow"))
        if hop["etcd_snapshot"]:
            snap = hop["etcd_snapshot"]
            parts.append(plain_text(f"  etcd snapshot before apply: {snap['path']} on {snap['node']} "
                              f"({snap['bytes'] / 1_000_000:.1f} MB)"))
        for finding in hop["drain_findings"]:
            parts.append(styled(f"  drain simulation: {finding}", "yellow"))
    if data["error"]:
        error = data["error"]
        parts.append(styled(f"FAILED at {error.get('node')} / {error.get('phase')}: {error.get('message')}",
                            "bold red"))
        if error.get("tail"):
            parts.append(styled(error["tail"][-1500:], "red"))
        for line in hint_lines(data["next"], width):
            parts.append(styled(line, "yellow"))
    if data["left_cordoned"]:
        parts.append(styled(f"Nodes left cordoned by this campaign: {', '.join(data['left_cordoned'])}",
                            "yellow"))
    if data.get("broker_memory"):
        memory = data["broker_memory"]
        parts.append(styled(
            f"The broker is out of memory: {memory['used'] / 2**20:.1f} MiB used of its maxmemory "
            f"{memory['maxmemory'] / 2**20:.1f} MiB. It refuses writes (it evicts nothing), so phases "
            f"cannot record what they do and nothing moves. {MORE_MEMORY}", "bold red"))
    if data.get("waiting_for_controller"):
        parts.append(styled("Waiting for a controller: none is running against this broker, so nothing "
                            "moves (not even phases already sent). Start one: `systemctl start "
                            "kubeupgrade-controller` or `kubeupgrade controller --kubeconfig <file>`", "bold red"))
    if data.get("not_acted_on"):
        stopped = next((e["message"] for e in data["events"]
                        if e["message"].startswith("the dispatcher stopped acting on it")), "")
        parts.append(styled(
            f"Not acted on: the dispatcher no longer looks at this {data['state']} campaign (it is not "
            f"among ku:active: {stopped or 'taken out of the broker by hand, or by a damaged write'}), "
            f"so nothing more is sent for it. `kubeupgrade abort {data['id']}` releases its cluster; "
            f"`kubeupgrade retry {data['id']}` then resumes it", "bold red"))
    for damage in data.get("damaged", [])[:10]:
        parts.append(styled(f"Damaged, left out of this view: {damage}", "red"))
    if data["events"]:
        events = Table.grid(padding=(0, 1))
        events.add_column(no_wrap=True)
        events.add_column(overflow="fold")
        for event in reversed(data["events"][:5]):
            events.add_row(plain_text(event["time"][11:19]), plain_text(event["message"]))
        parts.append(Text("Recent events:"))
        parts.append(events)
    return Group(*parts)


def node_to_dict(doc: dict[str, Any], node: str) -> dict[str, Any]:
    """One node's every phase, in every hop it is part of."""
    hops = []
    for index, entries in enumerate(doc["entries"]):
        entry = entries.get(node)
        if entry is None:
            continue
        phases = [{"phase": p["phase"], "state": p["state"], "attempts": p["attempts"],
                   "started": _timestamp(p["started"]), "ended": _timestamp(p["ended"]),
                   "duration": (p["ended"] - p["started"]) if p["started"] and p["ended"] else None,
                   "detail": p["detail"], "error": p["error"], "output": p["tail"]}
                  for p in entry["phases"]]
        hops.append({"hop": index + 1, "state": display_state(entry, doc["state"]),
                     "attempt": entry["attempt"], "cordoned_by_us": entry.get("cordoned_by_us", False),
                     "repository": entry.get("repository"), "phases": phases})
    # Damage named by the status view (CampaignStore.entries and with_details) for this node:
    # its entry, a detail kept apart (its live versions, its package), a phase's output tail.
    # Without it, a node whose entry is damaged would read as not part of the campaign.
    mine = re.compile(rf" field {re.escape(node)}(/[^:]*)?: ")
    damaged = [damage for damage in doc.get("damaged") or [] if mine.search(damage)]
    return {"id": doc["id"], "node": node, "hops": hops, "damaged": damaged}


def render_node(doc: dict[str, Any], node: str, *, width: int = 80, plain: bool = False) -> Group:
    """`status ID --node N`: each phase with its state, tries, start, duration and what it said;
    the output of a failed phase (or the last one that ran) below."""
    data = node_to_dict(doc, node)
    parts: list[Any] = [plain_text(f"Campaign {doc['id']}  node {node}")]
    shown = None
    for hop in data["hops"]:
        table = Table(title=plain_text(f"Hop {hop['hop']}: {hop['state']} (attempt {hop['attempt']})"),
                      title_justify="left", box=None, pad_edge=False,
                      header_style="" if plain else "bold underline")
        for column, options in (("PHASE", {"no_wrap": True}), ("STATE", {"no_wrap": True}),
                                ("TRIES", {"justify": "right"}), ("STARTED", {"no_wrap": True}),
                                ("TIME", {"justify": "right"}), ("DETAIL", {"overflow": "fold"})):
            table.add_column(column, **options)
        for phase in hop["phases"]:
            table.add_row(*map(plain_text, (phase["phase"], phase["state"], str(phase["attempts"]),
                                            phase["started"][11:19], _duration(phase["duration"]),
                                            phase["error"] or phase["detail"])))
            if phase["output"] and (phase["state"] == "failed" or shown is None
                                    or shown["state"] != "failed"):
                shown = phase
        parts.append(table)
    for damage in data["damaged"]:
        parts.append(plain_text(f"Damaged, left out of this view: {damage}", "" if plain else "red"))
    if not data["hops"] and not data["damaged"]:
        parts.append(plain_text(f"{node} is not part of this campaign"))
    if shown:
        parts.append(plain_text(f"Output of {shown['phase']} (last lines):"))
        parts.append(plain_text(shown["output"]))
    return Group(*parts)


def verification_table(doc: dict[str, Any]) -> Table:
    table = Table(title="Verification", title_justify="left")
    for column in ("NODE", "READY", "KUBELET", "CONTROL PLANE", "SCHEDULABLE"):
        table.add_column(column)
    hops = doc.get("hops") or []
    rows = hops[-1].get("verification", []) if hops else []
    for row in rows:
        table.add_row(*map(plain_text, (row["name"], "yes" if row["ready"] else "NO", row["kubelet"],
                                        row["control_plane"] or "-", "yes" if row["schedulable"] else "NO")))
    return table


def follow(handle: Any, console: Any, interval: float = 0.5,
           interrupted: Any = None) -> dict[str, Any]:
    """Redraw a campaign's status in place until it ends; returns the final document. With
    `interrupted` (a callable), stop with KeyboardInterrupt as soon as it says so."""
    import redis
    from rich.live import Live

    doc = handle.status()
    def screen(doc: dict[str, Any]) -> Group:
        return render_status(doc, width=console.width, plain=not console.is_terminal)

    with Live(screen(doc), console=console, refresh_per_second=4) as live:
        while doc["state"] not in TERMINAL:
            if interrupted is not None and interrupted():
                raise KeyboardInterrupt
            time.sleep(interval)
            try:
                doc = handle.status()
            except (redis.ConnectionError, redis.TimeoutError):
                continue  # the broker is restarting or frozen: keep the last picture until it is back
            live.update(screen(doc))
    return doc
