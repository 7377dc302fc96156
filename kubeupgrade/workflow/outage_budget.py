"""How long a host phase goes on retrying a kubeadm run that failed only because the API server
did not answer (host/unreachable_api.py tells which failures those are).

The campaign says how long an API outage is to be ridden out (policies.api_outage_tolerance,
120 s by default): the controller's cluster phases retry each call that long. A host phase's
kubeadm failing on the same outage used to spend the phase's few attempts (policies.retries,
meant for a host's own troubles: a dpkg lock, a mirror) within seconds and fail the campaign
while the outage was still one it tolerated.

The outage's start and the retries spent on it are kept in the broker per task (a Celery retry
keeps the task's id and its signed arguments, which must not change), so that:
- the phase fails once the API server has been silent for the tolerance since its first failed
  run, naming the tolerance; a later run that fails for another reason starts no new outage
  count but is judged by the retries it has left;
- retries spent on an outage are not taken from `policies.retries.attempts`.
The times are the agent host's own clock, read by the same agent each time (the task goes to
the node's own queue): only differences of its readings are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

# Longest pause between two runs while the API server is away: it is back within seconds once
# a control plane's static pods are up, and a run costs a kubeadm start and one request.
LONGEST_PAUSE = 15.0
# Kept a while past the tolerance, so a retry that comes late still finds the outage's start.
_KEPT_BEYOND_TOLERANCE = 3600


def outage_key(campaign_id: str, task_id: str) -> str:
    return f"ku:c:{campaign_id}:outage:{task_id}"


@dataclass(frozen=True)
class OutageRetry:
    """The next run of a phase whose kubeadm found the API server silent."""

    pause: float  # seconds before the next run
    silent_for: float  # seconds since its first run that found the API server silent
    left: float  # seconds of the tolerance left after this pause


def next_outage_retry(client: redis.Redis, campaign_id: str, task_id: str, *, now: float, run_began: float,
                      tolerance: float, first_pause: float) -> OutageRetry | None:
    """Count one more run lost to the outage (the one that began at `run_began`); the next run,
    or None when the tolerance is spent. The outage counts from the first such run's start: a
    run against a frozen API server waits out kubeadm's own timeouts before it fails."""
    key = outage_key(campaign_id, task_id)
    pipe = client.pipeline()
    pipe.hsetnx(key, "since", repr(min(run_began, now)))
    pipe.hincrby(key, "retries", 1)
    pipe.hget(key, "since")
    pipe.expire(key, int(tolerance) + _KEPT_BEYOND_TOLERANCE)
    _, retries, since_text, _ = pipe.execute(raise_on_error=False)
    # A damaged record (a start or a count that is not a number) counts as the tolerance spent:
    # the phase fails, naming the outage, rather than retrying without an end.
    if not isinstance(retries, int):
        return None
    since = _number(since_text, now - tolerance)
    silent_for = max(0.0, now - since)
    left = tolerance - silent_for
    if left <= 0:
        return None
    pause = min(max(first_pause, 1.0) * 2 ** max(int(retries) - 1, 0), LONGEST_PAUSE, left)
    return OutageRetry(pause=pause, silent_for=silent_for, left=left - pause)


def retries_spent_on_outages(client: redis.Redis, campaign_id: str, task_id: str) -> int:
    """How many of the task's retries went to riding out an outage (0 if none, or unreadable:
    a damaged count leaves the phase fewer attempts, never more)."""
    value = _number(client.hget(outage_key(campaign_id, task_id), "retries"), 0.0)
    return max(0, int(value))


def _number(text: bytes | str | None, default: float) -> float:
    try:
        value = float(text) if text is not None else default
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default
