"""Worker scheduling policies: sliding window and fixed batches, table-driven."""

import pytest

from kubeupgrade.model.campaign import MaxUnavailable, WorkerStrategy
from kubeupgrade.planning.scheduling import NodeState, fixed_batches, workers_to_start

P, R, S, F = NodeState.PENDING, NodeState.RUNNING, NodeState.SUCCEEDED, NodeState.FAILED
ORDER = ["w1", "w2", "w3", "w4", "w5"]


@pytest.mark.parametrize(
    ("strategy", "states", "limit", "expected"),
    [
        (WorkerStrategy.WINDOW, {}, 2, ["w1", "w2"]),
        (WorkerStrategy.WINDOW, {"w1": R, "w2": R}, 2, []),
        (WorkerStrategy.WINDOW, {"w1": S, "w2": R}, 2, ["w3"]),  # a slot frees at once
        (WorkerStrategy.WINDOW, {"w1": S, "w2": S, "w3": S, "w4": S, "w5": R}, 2, []),
        (WorkerStrategy.WINDOW, {"w1": F, "w2": R}, 2, []),  # a failure stops new starts
        (WorkerStrategy.BATCHES, {}, 2, ["w1", "w2"]),
        (WorkerStrategy.BATCHES, {"w1": S, "w2": R}, 2, []),  # the batch waits for its slowest
        (WorkerStrategy.BATCHES, {"w1": S, "w2": S}, 2, ["w3", "w4"]),
        (WorkerStrategy.BATCHES, {"w1": S, "w2": S, "w3": S, "w4": S}, 2, ["w5"]),
        (WorkerStrategy.BATCHES, {"w1": S, "w2": F}, 2, []),
    ],
)
def test_workers_to_start(strategy, states, limit, expected):
    assert workers_to_start(ORDER, states, limit, strategy) == expected


def test_fixed_batches():
    assert fixed_batches(ORDER, 2) == [["w1", "w2"], ["w3", "w4"], ["w5"]]
    with pytest.raises(ValueError):
        fixed_batches(ORDER, 0)


@pytest.mark.parametrize(
    ("limit", "workers", "expected"),
    [
        (MaxUnavailable(count=2), 10, 2),
        (MaxUnavailable(count=20), 10, 10),
        (MaxUnavailable(percent=25), 10, 2),  # rounded down
        (MaxUnavailable(percent=25), 3, 1),  # but at least one
        (MaxUnavailable(percent=100), 7, 7),
        (MaxUnavailable(percent=10), 100, 10),
        (MaxUnavailable(count=1), 0, 0),
    ],
)
def test_max_unavailable(limit, workers, expected):
    assert limit.resolve(workers) == expected


@pytest.mark.parametrize(
    ("eligible", "states", "expected"),
    [
        ({"w2", "w3"}, {}, ["w2", "w3"]),  # w1 is still being prepared: later ones may go first
        ({"w1"}, {"w2": R}, ["w1"]),
        (set(), {}, []),
    ],
)
def test_only_prepared_workers_go_out_of_service(eligible, states, expected):
    assert workers_to_start(ORDER, states, 2, WorkerStrategy.WINDOW, eligible=eligible) == expected


@pytest.mark.parametrize(
    ("preparing", "waiting", "unprepared", "ahead", "expected"),
    [
        (set(), set(), {"w1", "w2", "w3"}, 2, ["w1", "w2"]),
        ({"w1"}, set(), {"w2", "w3"}, 2, ["w2"]),
        ({"w1"}, {"w2"}, {"w3"}, 2, []),
        (set(), set(), {"w5", "w3"}, 5, ["w3", "w5"]),  # in campaign order
        (set(), set(), {"w1", "w2", "w3", "w4", "w5"}, 0, ["w1", "w2"]),  # default: twice the limit of 1
    ],
)
def test_workers_to_prepare(preparing, waiting, unprepared, ahead, expected):
    from kubeupgrade.planning.scheduling import workers_to_prepare

    assert workers_to_prepare(ORDER, preparing, waiting, unprepared, 1, ahead_per_lane=ahead) == expected


def test_each_pool_prepares_ahead_in_its_own_lane():
    from kubeupgrade.planning.scheduling import workers_to_prepare

    pools = {"a": (1, frozenset({"w1", "w2", "w3"})), "b": (2, frozenset({"w4", "w5"}))}
    everyone = set(ORDER)
    # Default: twice each lane's limit (a: 2, b: 4).
    chosen = workers_to_prepare(ORDER, set(), set(), everyone, 1, pools)
    assert [n for n in chosen if n in {"w1", "w2", "w3"}] == ["w1", "w2"]
    assert [n for n in chosen if n in {"w4", "w5"}] == ["w4", "w5"]
    # An explicit prepare_ahead is the room of every lane; pool a full does not hold back b.
    chosen = workers_to_prepare(ORDER, {"w1"}, set(), everyone - {"w1"}, 1, pools, ahead_per_lane=1)
    assert "w2" not in chosen and "w4" in chosen and "w5" not in chosen


def test_the_health_gate_waits_after_the_canary_and_every_wave_but_never_after_the_last():
    from kubeupgrade.planning.scheduling import gate_boundaries

    assert gate_boundaries(10, canary=1, every=0) == [1]
    assert gate_boundaries(10, canary=0, every=3) == [3, 6, 9]
    assert gate_boundaries(10, canary=1, every=3) == [1, 4, 7]
    assert gate_boundaries(6, canary=2, every=2) == [2, 4]  # not after worker 6: verify follows
    assert gate_boundaries(1, canary=1, every=0) == [] and gate_boundaries(10, canary=0, every=0) == []
    assert gate_boundaries(3, canary=5, every=1) == []  # the canary is the whole hop
