"""The API outage budget of a host phase, kept on a real redis-server: it counts from the first
failed run's start, pauses grow and stay short, the tolerance ends it, and damage ends it too."""

from __future__ import annotations

import pytest
import redis

from kubeupgrade.workflow.outage_budget import (
    LONGEST_PAUSE,
    next_outage_retry,
    outage_key,
    retries_spent_on_outages,
)

pytestmark = pytest.mark.integration


def test_an_outage_is_ridden_out_for_the_tolerance_counted_from_the_first_failed_runs_start(redis_url):
    client = redis.Redis.from_url(redis_url)
    assert retries_spent_on_outages(client, "c1", "t1") == 0
    pauses, now = [], 1000.0
    while True:
        # Each run against the silent API server took kubeadm's 10 s timeout before it failed.
        again = next_outage_retry(client, "c1", "t1", now=now + 10, run_began=now, tolerance=120, first_pause=1)
        if again is None:
            break
        pauses.append(again.pause)
        assert again.silent_for == pytest.approx(now + 10 - 1000.0)
        now += 10 + again.pause
    assert pauses[:4] == [1, 2, 4, 8] and max(pauses) == LONGEST_PAUSE
    assert now + 10 - 1000.0 >= 120  # gave up only once the tolerance was spent, no earlier
    assert now - 1000.0 < 120 + LONGEST_PAUSE + 10
    assert retries_spent_on_outages(client, "c1", "t1") == len(pauses) + 1
    # Another task of the same campaign (another node) has its own count; the key expires.
    assert retries_spent_on_outages(client, "c1", "t2") == 0
    assert 120 < client.ttl(outage_key("c1", "t1")) <= 120 + 3600


def test_the_last_pause_ends_at_the_tolerance(redis_url):
    client = redis.Redis.from_url(redis_url)
    first = next_outage_retry(client, "c", "t", now=100.0, run_began=100.0, tolerance=20, first_pause=5)
    assert first.pause == 5
    late = next_outage_retry(client, "c", "t", now=117.0, run_began=115.0, tolerance=20, first_pause=5)
    assert late.pause == pytest.approx(3.0) and late.left == pytest.approx(0.0)


def test_a_damaged_outage_record_ends_the_retries_and_never_adds_attempts(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.hset(outage_key("c", "t"), mapping={"since": "not a time", "retries": "lots"})
    assert retries_spent_on_outages(client, "c", "t") == 0
    assert next_outage_retry(client, "c", "t", now=50.0, run_began=40.0, tolerance=120, first_pause=1) is None
    client.hset(outage_key("c", "u"), mapping={"since": "nan"})
    assert next_outage_retry(client, "c", "u", now=50.0, run_began=40.0, tolerance=120, first_pause=1) is None
