"""Pure pieces of the workflow layer: campaign serialisation for the record, the split of a
worker's phases into preparation and outage, task-name contract, status rendering."""

import json

import pytest
import yaml
from rich.console import Console

from kubeupgrade.campaign_file import (
    campaign_from_dict,
    campaign_to_dict,
    load_campaign,
    parse_campaign,
)
from kubeupgrade.cli.status_view import render_status, status_to_dict
from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow.audit import outage_start
from kubeupgrade.workflow.decide import first_open_phase, in_flight, prepared
from kubeupgrade.workflow.names import PHASE_TASKS, queue_for, valid_campaign_id, valid_node_name
from kubeupgrade.workflow.record import new_phase
from tests.unit.test_campaign_file import EXAMPLE


def test_campaign_survives_the_record_round_trip():
    campaign = load_campaign(EXAMPLE)
    again = parse_campaign(yaml.safe_dump(campaign_to_dict(campaign)), source=campaign.source)
    assert again == campaign
    # The engine reads it back from the record's JSON, with no YAML text in between.
    stored = json.loads(json.dumps(campaign_to_dict(campaign)))
    assert campaign_from_dict(stored, source=campaign.source) == campaign


def test_a_stored_campaign_is_validated_like_a_file():
    stored = campaign_to_dict(load_campaign(EXAMPLE))
    stored["policies"]["max_unavailable"] = 0
    with pytest.raises(InvalidInput, match="campaign c1: policies.max_unavailable: 0 must be at least 1"):
        campaign_from_dict(stored, source="campaign c1")


def entry(states):
    names = ["prepare-host", "set-repository", "install-kubeadm", "kubeadm-upgrade-node",
             "download-packages", "drain", "install-kubelet", "restart-kubelet", "wait-ready", "uncordon"]
    phases = [new_phase(n) for n in names]
    for phase, (state, task_id) in zip(phases, states, strict=False):
        phase.update(state=state, task_id=task_id)
    return {"node": "w1", "role": "worker", "state": "running", "phases": phases}


def test_outage_starts_at_the_drain():
    e = entry([])
    assert outage_start(e) == 5
    assert not prepared(e)
    done = entry([("succeeded", "t")] * 5)
    assert prepared(done) and not in_flight(done)
    assert first_open_phase(done)["phase"] == "drain"
    sent = entry([("succeeded", "t")] * 5 + [("pending", "t6")])
    assert in_flight(sent)


def test_task_names_are_explicit_and_queues_follow_the_phase():
    assert all(name.startswith(("kubeupgrade.node.", "kubeupgrade.controller.")) for name in PHASE_TASKS.values())
    assert queue_for(Phase.KUBEADM_APPLY, "cp-1") == "kubeupgrade.node.cp-1"
    assert queue_for(Phase.DRAIN, "cp-1") == "kubeupgrade.controller"
    assert valid_node_name("worker-1.eu") and not valid_node_name("Worker_1") and not valid_node_name("a;b")
    assert valid_campaign_id("sandbox-20261128-004609-5636aa") and not valid_campaign_id("../x")


def test_status_rendering_names_failures_and_cordoned_nodes():
    failed = entry([("succeeded", "t")] * 5 + [("failed", "t6")])
    failed["state"] = "failed"
    failed["cordoned_by_us"] = True
    failed["phases"][5]["error"] = "drain of w1 timed out"
    doc = {"id": "c-1", "cluster": "prod", "state": "failed", "created": 0, "current_hop": 0,
           "error": {"node": "w1", "phase": "drain", "message": "drain of w1 timed out", "tail": ""},
           "hops": [{"from": "1.30.4", "target": "1.31", "version": "1.31.14", "stage": "workers",
                     "schedule": {"control_planes": [], "first_control_plane": None, "workers": ["w1"],
                                  "strategy": "window", "limit": 1}}],
           "plan": {}, "entries": [{"w1": failed}], "events": []}
    data = status_to_dict(doc)
    assert data["left_cordoned"] == ["w1"]
    assert data["hops"][0]["nodes"][0]["phase"] == "drain"
    console = Console(width=200, record=True)
    console.print(render_status(doc, width=200))
    text = console.export_text()
    assert "FAILED at w1 / drain: drain of w1 timed out" in text
    assert "Nodes left cordoned by this campaign: w1" in text
    assert "████░░░░ 5/10" in text


def test_the_engine_keeps_its_own_hop_schedule_and_reads_older_records_the_same_way():
    from kubeupgrade.model.plan import plan_to_dict
    from kubeupgrade.planning.planner import plan_campaign
    from kubeupgrade.workflow.schedule import HopSchedule, schedule_of

    plan = plan_campaign(load_campaign(EXAMPLE))
    (hop,) = plan.hops
    schedule = HopSchedule.of(hop)
    assert schedule.first_control_plane == hop.control_planes[0].name
    assert schedule.nodes == tuple(n.name for n in hop.control_planes + hop.workers)
    stored = json.loads(json.dumps(schedule.to_dict()))
    assert schedule_of({"hops": [{"schedule": stored}]}, 0) == schedule
    older = {"plan": plan_to_dict(plan), "hops": [{}]}  # accepted before the schedule was kept
    assert schedule_of(older, 0) == schedule


def test_the_clusters_identity_survives_an_unreachable_api_server_without_stalling_ticks(monkeypatch):
    from kubeupgrade.errors import TemporaryError
    from kubeupgrade.kube.identity import ClusterIdentity
    from kubeupgrade.workflow import dispatcher as module

    calls = []
    answers = [TemporaryError("down"), ClusterIdentity("prod", "u1", "x"), TemporaryError("down")]

    def identify():
        calls.append(1)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clock = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    dispatcher = module.Dispatcher(app=None, store=None, identify=identify)
    with pytest.raises(TemporaryError):
        dispatcher._cluster_identity()  # never known, unreachable
    with pytest.raises(TemporaryError, match="not known yet"):
        dispatcher._cluster_identity()  # within 5 s: not asked again
    assert len(calls) == 1
    clock[0] += 6
    assert dispatcher._cluster_identity().uid == "u1"
    clock[0] += module.IDENTITY_TTL + 1
    assert dispatcher._cluster_identity().uid == "u1"  # unreachable again: the known one stands
    assert len(calls) == 3
    with pytest.raises(TemporaryError):
        answers.append(TemporaryError("down"))
        dispatcher._cluster_identity(fresh=True)  # an acceptance needs a fresh answer


def test_host_facts_come_from_each_nodes_entry_and_from_the_document_of_older_records():
    from kubeupgrade.workflow.record import hop_facts

    older = {"cp-1": {"available": {"1.31.2": "1.31.2-1.1"}}, "worker-1": {"available": {}}}
    entries = {
        "worker-1": {"node": "worker-1", "facts": {"available": {"1.31.2": "1.31.2-1.1"}}},
        "worker-2": {"node": "worker-2", "facts": {"available": {"1.31.1": "1.31.1-1.1"}}},
        "worker-3": {"node": "worker-3"},  # not prepared yet
        "@cluster": {"node": "@cluster"},
    }
    facts = hop_facts({"facts": older}, entries)
    assert set(facts) == {"cp-1", "worker-1", "worker-2"}
    assert facts["worker-1"] == entries["worker-1"]["facts"]  # the entry is newer than the document
    assert facts["cp-1"] == older["cp-1"]
    assert hop_facts({}, {}) == {}
