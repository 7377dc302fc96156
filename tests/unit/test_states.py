"""The allowed-transitions tables: what a record may move to, and what it may never."""

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubeupgrade.workflow.states import (
    CAMPAIGN_TRANSITIONS,
    CampaignState,
    IllegalTransition,
    RunState,
    check_campaign,
    check_entry,
)


def entry(state, **phases):
    return {"state": state, "phases": [{"phase": name.replace("_", "-"), "state": value}
                                       for name, value in phases.items()]}


@pytest.mark.parametrize(("before", "after"), [
    ("pending", "running"), ("pending", "refused"), ("running", "failed"), ("failed", "running"),
    ("aborted", "running"), ("running", "aborted"), ("running", "succeeded"), ("failed", "failed"),
])
def test_campaign_changes_that_happen(before, after):
    check_campaign("k", before, after)


@pytest.mark.parametrize(("before", "after"), [
    ("succeeded", "running"), ("refused", "running"), ("failed", "succeeded"),
    ("aborted", "succeeded"), ("running", "pending"), ("running", "exploded"),
])
def test_campaign_changes_that_must_not(before, after):
    with pytest.raises(IllegalTransition, match=f"k: campaign {before} -> {after}"):
        check_campaign("k", before, after)


def test_terminal_campaign_states_have_no_exit():
    assert CAMPAIGN_TRANSITIONS[CampaignState.SUCCEEDED] == frozenset()
    assert CAMPAIGN_TRANSITIONS[CampaignState.REFUSED] == frozenset()


def test_a_failed_phase_never_turns_succeeded():
    with pytest.raises(IllegalTransition, match="phase install-kubelet failed -> succeeded"):
        check_entry("k", entry("failed", install_kubelet="failed"),
                    entry("failed", install_kubelet="succeeded"))


def test_a_succeeded_node_is_never_reopened_and_only_a_drain_is_redone():
    with pytest.raises(IllegalTransition, match="node succeeded -> pending"):
        check_entry("k", entry("succeeded", drain="succeeded"), entry("pending", drain="succeeded"))
    with pytest.raises(IllegalTransition, match="install-kubelet succeeded -> pending"):
        check_entry("k", entry("running", install_kubelet="succeeded"),
                    entry("running", install_kubelet="pending"))
    check_entry("k", entry("failed", drain="succeeded", uncordon="failed"),
                entry("failed", drain="pending", uncordon="failed"))


def test_a_phase_cannot_appear_from_nowhere():
    with pytest.raises(IllegalTransition, match="appeared"):
        check_entry("k", entry("pending", drain="pending"),
                    entry("pending", drain="pending", uncordon="pending"))


states = st.sampled_from([s.value for s in RunState])


@given(st.lists(states, min_size=1, max_size=12))
def test_any_accepted_phase_history_never_goes_from_failed_to_succeeded(history):
    accepted = [history[0]]
    for state in history[1:]:
        try:
            check_entry("k", entry("running", verify=accepted[-1]), entry("running", verify=state))
        except IllegalTransition:
            continue
        accepted.append(state)
    assert all(not (a == "failed" and b == "succeeded") for a, b in pairwise(accepted))
    assert all(a != "succeeded" or b == "succeeded" for a, b in pairwise(accepted))
