"""The dispatcher's per-hop view (kubeupgrade.workflow.hop_view), kept from tick to tick and
recomputed only for changed entries: after any sequence of entries changed, added and removed,
it says what a view built afresh from the same entries says, and decide_workers decides the
same with it as without it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeupgrade.model.campaign import WorkerStrategy
from kubeupgrade.workflow.decide import decide_workers, first_open_phase, worker_facts
from kubeupgrade.workflow.hop_view import HopView
from tests.unit.test_decide import NEXT, WORKER_PHASES, worker

NAMES = [f"worker-{i}" for i in range(6)]
drawn_entry = st.tuples(st.integers(0, len(WORKER_PHASES)), st.sampled_from(NEXT))
# One tick's changes: node -> its new entry (done, next state), or None for a node gone.
drawn_tick = st.dictionaries(st.sampled_from(NAMES), st.none() | drawn_entry, max_size=4)


def expected(entries):
    watched = {}
    for name, entry in entries.items():
        phase = first_open_phase(entry)
        if phase is not None and phase["task_id"] and phase["state"] != "failed":
            watched[name] = phase
    return {name: worker_facts(entry) for name, entry in entries.items()}, watched


@settings(max_examples=300)
@given(st.lists(drawn_tick, min_size=1, max_size=8), st.integers(1, 3))
def test_the_view_after_any_changes_is_the_view_of_the_entries_read_afresh(ticks, limit):
    entries = {name: worker(name, 0) for name in NAMES}
    view = HopView()
    view.refresh(entries)
    for changes in ticks:
        entries = dict(entries)  # the dispatcher's read: unchanged entries are the same objects
        for name, drawn in changes.items():
            if drawn is None:
                entries.pop(name, None)
            else:
                entries[name] = worker(name, *drawn)
        before = dict(view._seen)
        view.refresh(entries)
        assert set(view.changed) == {name for name, entry in entries.items() if before.get(name) is not entry}
        assert (view.facts, view.watched) == expected(entries)
        assert view.failed == {name for name, entry in entries.items() if entry["state"] == "failed"}
        order = sorted(entries)
        if order:
            without = decide_workers(order, limit, WorkerStrategy.WINDOW, entries)
            assert decide_workers(order, limit, WorkerStrategy.WINDOW, entries, known=view.facts) == without
            assert decide_workers(order, limit, WorkerStrategy.WINDOW, entries, known=view.workers_index(order)) == without


# One tick's changes to a hop whose workers all stay: node -> its new entry.
drawn_change = st.dictionaries(st.sampled_from(NAMES), drawn_entry, max_size=4)
drawn_decision = st.fixed_dictionaries({
    "limit": st.integers(1, 4), "strategy": st.sampled_from(list(WorkerStrategy)),
    "max_failed": st.integers(0, 2), "canary": st.integers(0, 3), "gate_passed": st.booleans(),
    "paused": st.booleans(), "outage_allowed": st.booleans(), "prepare_ahead": st.integers(0, 3),
    "pools": st.none() | st.just({"odd": (1, frozenset(NAMES[1::2]))}),
    # out of service outside the campaign: some of this hop's workers, or another of the cluster
    "outside": st.frozensets(st.sampled_from([*NAMES, "not-in-this-hop"]), max_size=3)})


@settings(max_examples=500)
@given(st.lists(drawn_change, min_size=1, max_size=8), st.lists(drawn_decision, min_size=8, max_size=8))
def test_deciding_on_the_kept_index_is_deciding_on_every_entry(ticks, decisions):
    # The index answers the window's decision from counts and sorted positions; it must be the
    # walk over every worker's entry, whatever the entries and the policies (other strategies,
    # pools and a canary still to pass fall back to the walk).
    entries = {name: worker(name, 0) for name in NAMES}
    view = HopView()
    for changes, decision in zip(ticks, decisions, strict=False):
        entries = {**entries, **{name: worker(name, *drawn) for name, drawn in changes.items()}}
        view.refresh(entries)
        limit, strategy = decision["limit"], decision["strategy"]
        options = {k: v for k, v in decision.items() if k not in ("limit", "strategy")}
        assert (decide_workers(NAMES, limit, strategy, entries, known=view.workers_index(NAMES), **options)
                == decide_workers(NAMES, limit, strategy, entries, **options))


def test_an_entry_is_derived_again_only_when_it_is_a_new_object():
    first = worker("worker-0", 2, "sent")
    view = HopView()
    view.refresh({"worker-0": first})
    assert view.watched == {"worker-0": first["phases"][2]}
    # The same object again: nothing is recomputed (a later in-place change would go unseen,
    # which is why entries are only ever replaced, never changed in place).
    first["phases"][2]["state"] = "failed"
    view.refresh({"worker-0": first})
    assert "worker-0" in view.watched
    replaced = worker("worker-0", 2, "failed")
    view.refresh({"worker-0": replaced})
    assert view.watched == {} and view.facts["worker-0"] == worker_facts(replaced)
