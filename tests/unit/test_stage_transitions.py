"""bench.stages: stage-to-stage transitions read from a campaign record (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.stages import stage_transitions, summary


def phase(name: str, sent: float | None, started: float | None, ended: float | None) -> dict[str, Any]:
    return {"phase": name, "state": "succeeded" if ended else "pending", "dispatched": sent,
            "started": started, "ended": ended}


def node(role: str, *phases: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "phases": list(phases)}


def hop(at: float, *, gate: bool = False, verify_ends: float | None = None) -> dict[str, Any]:
    """One hop whose stages begin at `at`: times are offsets in seconds from it."""
    def t(offset: float) -> float:
        return at + offset

    cluster = [phase("preflight", t(1.0), t(1.1), t(1.5))]
    if gate:
        cluster.append(phase("control-plane-gate", t(4.05), t(4.1), t(4.6)))
    cluster.append(phase("verify", t(9.2), t(9.25), verify_ends))
    workers_sent = 4.65 if gate else 4.05
    return {
        "@cluster": node("cluster", *cluster),
        "cp-1": node("control-plane", phase("prepare-host", t(0.0), t(0.1), t(0.5)),
                     phase("kubeadm-upgrade-apply", t(1.6), t(1.7), t(3.0)),
                     phase("uncordon", t(1.6), t(3.1), t(4.0))),
        "w-1": node("worker", phase("prepare-host", t(0.0), t(0.2), t(0.9)),
                    # fetched early, while the control planes upgrade: not the worker stage
                    phase("set-repository", t(1.6), t(1.8), t(1.9)),
                    phase("kubeadm-upgrade-node", t(workers_sent), t(workers_sent + 0.3), t(6.0)),
                    phase("uncordon", t(workers_sent + 1.0), t(8.0), t(9.0))),
        "w-2": node("worker", phase("prepare-host", t(0.0), t(0.3), t(0.95)),
                    phase("kubeadm-upgrade-node", t(workers_sent + 0.01), t(workers_sent + 0.2), t(5.0)),
                    phase("uncordon", t(workers_sent + 2.0), t(8.5), t(9.1))),
    }


def measured(transitions: list[Any]) -> list[tuple[int, str, float, float]]:
    return [(t.hop, t.between, round(t.to_sent, 3), round(t.to_started, 3)) for t in transitions]


def test_every_stage_of_a_finished_hop_and_the_campaign_end() -> None:
    doc = {"entries": [hop(100.0, verify_ends=109.3)], "finished": 109.4}
    assert measured(stage_transitions(doc)) == [
        (1, "prepare-host -> preflight", 0.05, 0.15),  # the last prepare-host ended at 0.95
        (1, "preflight -> control planes", 0.1, 0.2),
        # the worker stage's first phase is w-1's kubeadm-upgrade-node, not its early fetch
        (1, "control planes -> workers", 0.05, 0.25),
        (1, "workers -> verify", 0.1, 0.15),
        (1, "verify -> campaign end", 0.1, 0.1),
    ]
    assert summary(stage_transitions(doc)) == pytest.approx(
        {"transition_sent_max": 0.1, "transition_started_max": 0.25})


def test_a_gate_is_a_stage_of_its_own() -> None:
    doc = {"entries": [hop(0.0, gate=True, verify_ends=9.3)], "finished": 9.4}
    between = [(t.between, round(t.to_sent, 3)) for t in stage_transitions(doc)]
    assert between[2:4] == [("control planes -> control-plane gate", 0.05),
                            ("control-plane gate -> workers", 0.05)]


def test_hops_follow_each_other_and_only_the_last_ends_the_campaign() -> None:
    second = hop(20.0, verify_ends=29.3)
    doc = {"entries": [hop(0.0, verify_ends=9.3), second], "finished": 29.5}
    found = measured(stage_transitions(doc))
    assert (1, "verify -> next hop's prepare-host", 10.7, 10.8) in found
    assert [t for t in found if t[1].endswith("campaign end")] == [(2, "verify -> campaign end", 0.2, 0.2)]


def test_a_stage_that_did_not_end_stops_the_hop_there() -> None:
    doc = {"entries": [hop(0.0)], "finished": None}  # verify never ended (the campaign failed)
    assert [t.between for t in stage_transitions(doc)][-1] == "workers -> verify"
    unfinished = hop(0.0)
    unfinished["w-2"]["phases"][2].update(ended=None, state="failed")  # a worker's outage stopped
    found = [t.between for t in stage_transitions({"entries": [unfinished]})]
    assert found == ["prepare-host -> preflight", "preflight -> control planes", "control planes -> workers"]


def test_phases_that_never_ran_are_not_a_stage_and_old_records_use_the_start() -> None:
    doc = {"entries": [hop(0.0, verify_ends=9.3)], "finished": 9.4}
    doc["entries"][0]["cp-1"]["phases"].append(phase("hooks-after-node", None, None, None))  # skipped
    for entry in doc["entries"][0].values():
        for each in entry["phases"]:
            each.pop("dispatched")  # a record from before phases kept when they were sent
    found = measured(stage_transitions(doc))
    assert found[2] == (1, "control planes -> workers", 0.25, 0.25)
    assert all(sent == started for _, between, sent, started in found)
