"""bench.event_log counts a worker's tasks by name: a task received again (a look sent through
the broker, a redelivery) is one task and two deliveries; other workers' tasks are left out."""

from __future__ import annotations

from bench.event_log import TaskEventLog, tasks_by_name


def _received(log: TaskEventLog, task_id: str, name: str, hostname: str) -> None:
    log._keep({"uuid": task_id, "type": "task-received", "timestamp": 1.0, "name": name, "hostname": hostname})


def test_a_task_received_twice_is_one_task_and_two_deliveries_and_other_workers_are_left_out():
    log = TaskEventLog("redis://127.0.0.1:1/0")  # never started: no connection is made
    _received(log, "a", "kubeupgrade.controller.drain_node", "controller@h")
    _received(log, "a", "kubeupgrade.controller.drain_node", "controller@h")  # sent again
    _received(log, "b", "kubeupgrade.controller.drain_node", "controller@h")
    _received(log, "c", "kubeupgrade.controller.uncordon_node", "controller@h")
    _received(log, "d", "kubeupgrade.phase.restart_kubelet", "agent@worker-1")
    log._keep({"uuid": "c", "type": "task-started", "timestamp": 2.0, "hostname": "controller@h"})
    counts = tasks_by_name(log.events, "controller@")
    assert counts == {"kubeupgrade.controller.drain_node": {"tasks": 2, "deliveries": 3},
                      "kubeupgrade.controller.uncordon_node": {"tasks": 1, "deliveries": 1}}
    assert list(counts) == ["kubeupgrade.controller.drain_node", "kubeupgrade.controller.uncordon_node"]
