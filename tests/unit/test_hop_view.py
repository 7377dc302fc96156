"""The dispatcher's per-hop view (kubeupgrade.workflow.hop_view), kept from tick to tick and
recomputed only for changed entries: after any sequence of entries changed, added and removed,
it says what a view built afresh from the same entries says, and decide_workers decides the
same with it as without it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeupgrade.model.campaign import WorkerStrategy
from kubeupgrade.workflow.decide import decide_workers, facts, first_open_phase
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
    return {name: facts(entry) for name, entry in entries.items()}, watched


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
        view.refresh(entries)
        assert (view.facts, view.watched) == expected(entries)
        order = sorted(entries)
        if order:
            with_view = decide_workers(order, limit, WorkerStrategy.WINDOW, entries, known=view.facts)
            assert with_view == decide_workers(order, limit, WorkerStrategy.WINDOW, entries)


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
    assert view.watched == {} and view.facts["worker-0"] == facts(replaced)
