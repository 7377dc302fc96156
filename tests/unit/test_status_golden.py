"""Golden renderings of the status screen: a running, a failed and an aborted campaign, on an
80- and a 160-column terminal and piped. Node names are never cut, no line is wider than the
screen, states say what each node is really doing. Regenerate after a deliberate change with
KUBEUPGRADE_GOLDEN=update."""

import os
from pathlib import Path

import pytest
from rich.console import Console

from kubeupgrade.cli.status_view import render_status, status_to_dict, without_trailing_spaces
from kubeupgrade.workflow.record import new_phase

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_800_000_000.0
CP_PHASES = ["prepare-host", "set-repository", "install-kubeadm", "kubeadm-upgrade-plan",
             "kubeadm-upgrade-apply", "hooks-after-first-control-plane", "download-packages",
             "drain", "install-kubelet", "restart-kubelet", "wait-ready", "uncordon"]
WORKER_PHASES = ["prepare-host", "set-repository", "install-kubeadm", "kubeadm-upgrade-node",
                 "download-packages", "drain", "install-kubelet", "restart-kubelet", "wait-ready",
                 "uncordon"]


def node(name, role, names, done, current=None, attempts=1, detail="", error="", task=True):
    phases = [new_phase(p) for p in names]
    for index, phase in enumerate(phases[:done]):
        phase.update(state="succeeded", attempts=1, task_id=f"t{index}", started=NOW - 300 + index * 10,
                     ended=NOW - 295 + index * 10, detail="done")
    state = "succeeded" if done == len(phases) else "pending"
    if current and done < len(phases):
        phase = phases[done]
        phase.update(state=current, attempts=attempts, detail=detail, error=error,
                     task_id="t-now" if task else None, started=NOW - 42 if current != "pending" else None)
        state = {"running": "running", "failed": "failed", "pending": "running" if task else "pending"}[current]
        if current == "failed":
            phase["ended"] = NOW - 5
    return {"node": name, "role": role, "state": state, "attempt": 1, "phases": phases,
            "cordoned_by_us": done >= names.index("drain") + 1 and state != "succeeded"}


def campaign(state, entries, error=None, stage="workers"):
    cps = [n for n, e in entries.items() if e["role"] == "control-plane"]
    workers = [n for n, e in entries.items() if e["role"] == "worker"]
    return {"id": "prod-eu1-20261128-101500-3f9a2c", "cluster": "prod-eu1", "state": state,
            "created": NOW - 600, "current_hop": 0, "error": error, "events": [],
            "hops": [{"from": "1.30.4", "target": "1.31", "version": "1.31.14", "stage": stage,
                      "schedule": {"control_planes": cps, "first_control_plane": cps[0],
                                   "workers": workers, "strategy": "window", "limit": 2}}],
            "plan": {}, "entries": [entries]}


def running():
    return campaign("running", {
        "cp-eu-west-1a-01": node("cp-eu-west-1a-01", "control-plane", CP_PHASES, 12),
        "worker-eu-west-1a-17": node("worker-eu-west-1a-17", "worker", WORKER_PHASES, 7, "running",
                                     detail="installing kubelet, kubectl 1.31.14-1.1"),
        "worker-eu-west-1b-03": node("worker-eu-west-1b-03", "worker", WORKER_PHASES, 5, "pending"),
        "worker-eu-west-1c-09": node("worker-eu-west-1c-09", "worker", WORKER_PHASES, 5, "pending",
                                     task=False),
    })


def failed():
    message = ("drain of worker-eu-west-1a-17 timed out after 300s: evicting shop/api-7d9f-xk2lp "
               "refused by the PodDisruptionBudget shop/api-pdb (minAvailable 2, 2 healthy)")
    entries = {
        "cp-eu-west-1a-01": node("cp-eu-west-1a-01", "control-plane", CP_PHASES, 12),
        "worker-eu-west-1a-17": node("worker-eu-west-1a-17", "worker", WORKER_PHASES, 5, "failed",
                                     attempts=3, error=message) | {"cordoned_by_us": True},
        "worker-eu-west-1b-03": node("worker-eu-west-1b-03", "worker", WORKER_PHASES, 5, "pending",
                                     task=False),
    }
    return campaign("failed", entries, {"hop": 0, "node": "worker-eu-west-1a-17", "phase": "drain",
                                        "message": message, "tail": ""})


def paused():
    """Paused mid-hop: one worker still finishing its outage (cordoned), the others held."""
    doc = running()
    doc["paused"] = {"since": NOW - 30, "reason": "by the operator"}
    return doc


def aborted():
    return campaign("aborted", {
        "cp-eu-west-1a-01": node("cp-eu-west-1a-01", "control-plane", CP_PHASES, 4, "running"),
        "worker-eu-west-1a-17": node("worker-eu-west-1a-17", "worker", WORKER_PHASES, 1),
    }, stage="control-planes")


def render(doc, width, piped):
    console = Console(width=width, record=True, force_terminal=not piped, color_system=None,
                      file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the console
    console.print(render_status(doc, width=width, plain=piped, now=NOW))
    text = console.export_text(styles=False)
    return without_trailing_spaces(text) if piped else text


@pytest.mark.parametrize("case", [running, failed, aborted, paused], ids=lambda c: c.__name__)
@pytest.mark.parametrize(("width", "piped"), [(80, False), (160, False), (80, True)],
                         ids=["80", "160", "piped"])
def test_status_screens_match_their_golden_rendering(case, width, piped):
    doc = case()
    text = render(doc, width, piped)
    for line in text.splitlines():
        assert len(line.rstrip()) <= width, line
    for name in doc["entries"][0]:
        assert name in text  # whole, never cut
    if piped:
        assert "█" not in text and "─" not in text
        assert all(line == line.rstrip() for line in text.splitlines())  # logs diff cleanly
    if doc.get("paused"):
        assert "PAUSED" in text and f"kubeupgrade resume {doc['id']}" in text
        assert "still under way: worker-eu-west-1a-17" in text
    if doc["state"] == "failed":  # the command to paste is never split, whatever the width
        assert f"kubeupgrade retry {doc['id']}" in text
    path = GOLDEN / f"status-{case.__name__}-{'piped' if piped else width}.txt"
    if os.environ.get("KUBEUPGRADE_GOLDEN") == "update":
        path.write_text(text)
    assert text == path.read_text()


def test_states_are_honest():
    rows = {r["node"]: r for r in status_to_dict(running(), NOW)["hops"][0]["nodes"]}
    assert rows["worker-eu-west-1a-17"]["state"] == "running"
    assert rows["worker-eu-west-1b-03"]["state"] == "queued"  # sent, not begun
    assert rows["worker-eu-west-1c-09"]["state"] == "waiting"  # for a slot
    assert rows["cp-eu-west-1a-01"]["retries"] == 0  # a clean node did not retry 12 times
    stopped = {r["node"]: r for r in status_to_dict(aborted(), NOW)["hops"][0]["nodes"]}
    assert stopped["worker-eu-west-1a-17"]["state"] == "stopped"
    assert stopped["cp-eu-west-1a-01"]["state"] == "stopped"
    data = status_to_dict(running(), NOW)
    assert data["left_cordoned"] == [] and data["cordoned_now"] == ["worker-eu-west-1a-17"]
    assert status_to_dict(failed(), NOW)["left_cordoned"] == ["worker-eu-west-1a-17"]
    assert {r["node"]: r["retries"] for r in status_to_dict(failed(), NOW)["hops"][0]["nodes"]}[
        "worker-eu-west-1a-17"] == 2


@pytest.mark.parametrize("width", [80, 160])
def test_what_a_host_or_the_record_says_is_shown_as_it_is_never_read_as_markup_or_escapes(width):
    # kubeadm prefixes its lines with "[upgrade/apply]", "[preflight]": rich read them as markup
    # and they vanished, and a "[/etc/kubernetes]" stopped `status` with a MarkupError. An
    # escape sequence in a host's output, or written to the record with a broker credential,
    # reached the operator's terminal as it was.
    said = ("[upgrade/apply] FATAL: [/etc/kubernetes/manifests] \x1b[2J\x1b[31mall good[preflight]")
    doc = failed()
    doc["error"]["message"] = said
    doc["entries"][0]["worker-eu-west-1a-17"]["phases"][5]["error"] = said
    doc["events"] = [{"t": NOW - 5, "message": f"worker-eu-west-1a-17: drain failed: {said}"}]
    doc["error"]["tail"] = "E: \x1b]0;title\x07[/x]"
    text = render(doc, width, piped=False)
    flat = text.replace("\n", "")
    assert "\x1b" not in text and "\x07" not in text
    assert "[upgrade/apply] FATAL: [/etc/kubernetes/manifests] \\x1b[2J\\x1b[31mall good[preflight]" in flat
    assert "E: \\x1b]0;title\\x07[/x]" in flat


def test_the_next_step_says_a_failed_node_stays_cordoned_only_when_it_does():
    # A drain or readiness wait that failed on a worker the campaign cordoned: it stays cordoned.
    assert "(it stays cordoned)" in status_to_dict(failed(), NOW)["next"]
    # A control plane whose kubelet was already at the target (a hop resumed after its install)
    # waits for its components without a drain: nothing of ours cordons it, so the hint must not
    # send the operator looking for a cordon.
    message = "cp-eu-west-1a-01's components do not run v1.31.14: kube-scheduler at v1.30.4"
    entries = {"cp-eu-west-1a-01": node("cp-eu-west-1a-01", "control-plane", CP_PHASES, 10, "failed",
                                        error=message) | {"cordoned_by_us": False}}
    doc = campaign("failed", entries, {"hop": 0, "node": "cp-eu-west-1a-01", "phase": "wait-ready",
                                       "message": message, "tail": ""}, stage="control-planes")
    data = status_to_dict(doc, NOW)
    assert data["left_cordoned"] == []
    assert data["next"] == "Next: fix the node, then `kubeupgrade retry prod-eu1-20261128-101500-3f9a2c`."
