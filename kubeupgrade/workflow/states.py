"""Every state a campaign, a node entry and a phase can be in, and the changes allowed between
them. The record store checks each write against these tables and refuses (writes nothing)
a change not listed: a bug, or a late writer, can never move a record somewhere impossible,
such as a failed phase turning succeeded.
"""

from __future__ import annotations

from enum import Enum

from kubeupgrade.errors import RuntimeFailure


class _Named(str, Enum):
    """A state is its name as text (enum.StrEnum without Python 3.11: the agent runs on 3.9)."""

    def __str__(self) -> str:
        return str(self.value)


class CampaignState(_Named):
    PENDING = "pending"  # submitted; no controller has accepted it yet
    RUNNING = "running"
    FAILED = "failed"  # stopped at a failure; holds its cluster until retried or aborted
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"
    REFUSED = "refused"  # the controller's plan broke a rule, or another cluster answered


class RunState(_Named):
    """Of a node entry and of each of its phases."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


C, R = CampaignState, RunState

CAMPAIGN_TRANSITIONS: dict[CampaignState, frozenset[CampaignState]] = {
    C.PENDING: frozenset({C.RUNNING, C.SUCCEEDED, C.REFUSED, C.ABORTED}),
    C.RUNNING: frozenset({C.FAILED, C.SUCCEEDED, C.ABORTED}),
    C.FAILED: frozenset({C.RUNNING, C.ABORTED}),  # retry, abort
    C.ABORTED: frozenset({C.RUNNING}),  # retry
    C.SUCCEEDED: frozenset(),
    C.REFUSED: frozenset(),
}

ENTRY_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    R.PENDING: frozenset({R.RUNNING, R.SUCCEEDED, R.FAILED}),  # succeeded: already at target
    R.RUNNING: frozenset({R.SUCCEEDED, R.FAILED, R.PENDING}),  # pending: re-sent as a new attempt
    R.FAILED: frozenset({R.PENDING}),  # retry
    R.SUCCEEDED: frozenset(),  # a finished node is never reopened
}

PHASE_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    R.PENDING: frozenset({R.RUNNING, R.SUCCEEDED, R.FAILED}),  # failed: its agent never answered
    R.RUNNING: frozenset({R.SUCCEEDED, R.FAILED, R.PENDING}),
    R.FAILED: frozenset({R.PENDING}),  # never straight to succeeded: a late result is stale
    # Only the phases in REOPENABLE: a drain when `abort --uncordon` put the node back in
    # service (it must drain again), the health gate for the next wave of workers, and
    # prepare-host when a retry after a failed preflight gathers the hosts' facts again (it
    # changes nothing a second run would not leave the same).
    R.SUCCEEDED: frozenset({R.PENDING}),
}
REOPENABLE = frozenset({"drain", "health-gate", "prepare-host"})


class IllegalTransition(RuntimeFailure):
    pass


def check_campaign(key: str, before: str, after: str) -> None:
    _check(key, "campaign", CampaignState, CAMPAIGN_TRANSITIONS, before, after)


def check_entry(key: str, before: dict[str, object], after: dict[str, object]) -> None:
    """A node entry's own state and each phase's (phases matched by name)."""
    _check(key, "node", RunState, ENTRY_TRANSITIONS, str(before["state"]), str(after["state"]))
    earlier = {p["phase"]: p["state"] for p in before["phases"]}  # type: ignore[attr-defined]
    for phase in after["phases"]:  # type: ignore[attr-defined]
        was = earlier.get(phase["phase"])
        if was is None:
            raise IllegalTransition(f"{key}: phase {phase['phase']} appeared in a written entry")
        if phase["phase"] not in REOPENABLE and was == R.SUCCEEDED.value and phase["state"] != was:
            raise IllegalTransition(f"{key}: phase {phase['phase']} succeeded -> {phase['state']} "
                                    "is not allowed")
        _check(key, f"phase {phase['phase']}", RunState, PHASE_TRANSITIONS, was, phase["state"])


def _check(key: str, what: str, kind: type[Enum], table: dict, before: str, after: str) -> None:
    if before == after:
        return
    try:
        allowed = after and kind(after) in table[kind(before)]
    except ValueError:
        allowed = False
    if not allowed:
        raise IllegalTransition(f"{key}: {what} {before} -> {after} is not allowed; nothing written")
