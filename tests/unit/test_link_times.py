"""bench.links: where a chain link's time goes, from a record and task events (pure, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.links import link_times, summary, table


def phase(name: str, task_id: str | None, sent: float | None, started: float | None,
          ended: float | None) -> dict[str, Any]:
    return {"phase": name, "task_id": task_id, "dispatched": sent, "started": started, "ended": ended}


def events(sent: float, received: float, started: float, host: str) -> dict[str, Any]:
    return {"task-sent": sent, "task-received": received, "task-started": started, "hostname": host}


def record(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"entries": [{f"w-{i}": {"role": "worker", "phases": list(p)} for i, p in enumerate(entries)}]}


def test_each_link_of_a_chain_splits_into_its_four_parts():
    doc = record([phase("drain", "d", 10.0, 10.2, 12.0),  # the chain's first: sent by the dispatcher
                  phase("install-kubelet", "i", 10.0, 12.1, 13.0),
                  phase("wait-ready", "w", 10.0, 13.3, 14.0)])
    seen = {"d": events(10.0, 10.1, 10.15, "controller@c"),
            "i": events(12.03, 12.05, 12.06, "agent@w-0"),
            "w": events(13.1, 13.2, 13.25, "controller@c")}
    first, second = link_times(doc, seen)
    assert (first.link, first.side) == ("drain -> install-kubelet", "agent")
    assert (first.published, first.delivered, first.handed, first.begun) == pytest.approx((0.03, 0.02, 0.01, 0.04))
    assert first.total == pytest.approx(0.1)
    assert (second.link, second.side) == ("install-kubelet -> wait-ready", "controller")
    assert (second.published, second.delivered, second.handed, second.begun) == pytest.approx((0.1, 0.1, 0.05, 0.05))


def test_a_phase_the_dispatcher_sent_is_timed_from_its_dispatch_and_one_without_events_is_no_link():
    doc = record([phase("kubeadm-upgrade-node", "k", 1.0, 1.1, 2.0),
                  phase("drain", "d", 5.0, 5.2, 6.0),  # sent after the one before ended: a new chain
                  phase("install-kubelet", "i", 5.0, 6.1, 7.0),  # no task-started event
                  phase("restart-kubelet", "r", 5.0, None, None)])  # not begun
    seen = {"d": events(5.03, 5.1, 5.15, "controller@c"),
            "i": {"task-sent": 6.02, "task-received": 6.03, "hostname": "agent@w-0"},
            "r": events(7.01, 7.02, 7.03, "agent@w-0")}
    (head,) = link_times(doc, seen)
    assert (head.link, head.side) == ("dispatcher -> drain", "controller")
    assert (head.published, head.delivered, head.handed, head.begun) == pytest.approx((0.03, 0.07, 0.05, 0.05))


def test_summary_groups_by_link_and_side_with_median_and_p90():
    chains = [[phase("a", f"a{i}", 0.0, 0.0, 1.0), phase("b", f"b{i}", 0.0, 1.0 + i / 100, 2.0)]
              for i in range(1, 11)]
    seen = {f"b{i}": events(1.0, 1.0, 1.0, "agent@x") for i in range(1, 11)}
    rows = summary(link_times(record(*chains), seen))
    assert len(rows) == 1 and rows[0]["count"] == 10 and rows[0]["side"] == "agent"
    median, p90 = rows[0]["begun"]
    assert median == pytest.approx(0.055) and p90 == pytest.approx(0.10)
    assert "| a -> b | agent | 10 | 0 / 0 | 0 / 0 | 0 / 0 | 55 / 100 | 55 / 100 |" in table(rows)


def test_a_control_plane_after_the_first_follows_the_one_before_it_not_its_own_prepare_host():
    def plane(prefix: str, started: float) -> list[dict[str, Any]]:
        return [phase("prepare-host", f"{prefix}p", 0.0, 0.1, 0.2),  # all sent with the hop's start
                phase("set-repository", f"{prefix}s", 1.0, started, started + 1.0),
                phase("uncordon", f"{prefix}u", 1.0, started + 1.02, started + 2.0)]

    doc = {"entries": [{"cp-2": {"role": "control-plane", "phases": plane("b", 3.01)},
                        "cp-1": {"role": "control-plane", "phases": plane("a", 1.0)}}]}
    seen = {"bs": events(3.002, 3.004, 3.006, "agent@cp-2")}
    (link,) = link_times(doc, seen)
    # cp-2's set-repository waited for cp-1's uncordon (ended at 3.0), not its own prepare-host
    assert link.link == "uncordon -> set-repository" and link.total == pytest.approx(0.01)
