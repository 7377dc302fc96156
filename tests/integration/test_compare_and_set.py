"""The record's read-modify-write (kubeupgrade.workflow.cas): no update is lost by concurrent
writers, the further writes land only with the change, and a guessed text (this process's last
write) is never the ground for a decision the value as it is would not make. Real redis-server."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import redis

from kubeupgrade.workflow.cas import CompareAndSet, Writes
from tests.helpers import begin_sent, spy_on_redis

pytestmark = pytest.mark.integration

KEY, FIELD = "ku:c:test:hop:0", "worker-1"


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def increment(value: dict[str, Any] | None) -> dict[str, Any]:
    return {"n": (value or {"n": 0})["n"] + 1}


def test_no_update_is_lost_and_further_writes_land_only_with_their_change(redis_url: str) -> None:
    # Two "processes" (each its own connection and its own guesses), four threads each.
    writers = [CompareAndSet(client(redis_url)) for _ in range(2)]
    rounds = 150

    def work(cas: CompareAndSet) -> None:
        for _ in range(rounds):
            cas.update(KEY, FIELD, json.loads, increment,
                       lambda writes: writes.rpush("log", 1), track_changed=True)

    threads = [threading.Thread(target=work, args=(cas,)) for cas in writers for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    plain = client(redis_url)
    assert json.loads(plain.hget(KEY, FIELD))["n"] == 8 * rounds
    assert plain.llen("log") == 8 * rounds  # one further write per change written, none per retry
    assert plain.smembers(f"{KEY}:changed") == {FIELD}


def test_a_guess_overtaken_by_another_writer_is_recomputed_on_the_value_as_it_is(redis_url: str) -> None:
    cas, other = CompareAndSet(client(redis_url)), client(redis_url)
    cas.update(KEY, FIELD, json.loads, increment)  # n = 1, and the text is remembered
    other.hset(KEY, FIELD, json.dumps({"n": 41}))
    written, value = cas.update(KEY, FIELD, json.loads, increment)
    assert written and value == {"n": 42} == json.loads(other.hget(KEY, FIELD))


def test_writing_nothing_is_decided_on_the_value_as_it_is_not_on_a_guess(redis_url: str) -> None:
    # The fence of a task's write: only while the phase is still running. This process last
    # wrote "succeeded"; an operator's retry has since opened it again: the write must happen.
    cas, other = CompareAndSet(client(redis_url)), client(redis_url)
    cas.update(KEY, FIELD, json.loads, lambda _: {"state": "succeeded"})
    other.hset(KEY, FIELD, json.dumps({"state": "running"}))
    seen: list[str] = []

    def finish(value: dict[str, Any] | None) -> dict[str, Any] | None:
        seen.append(value["state"] if value else "absent")
        return {"state": "succeeded", "by": "this task"} if value and value["state"] == "running" else None

    written, value = cas.update(KEY, FIELD, json.loads, finish)
    assert seen == ["succeeded", "running"]  # the guess said "nothing to do"; the value was read
    assert written and json.loads(other.hget(KEY, FIELD))["by"] == "this task"


def test_a_value_deleted_under_a_guess_is_seen_as_absent_and_nothing_is_created(redis_url: str) -> None:
    cas, other = CompareAndSet(client(redis_url)), client(redis_url)
    cas.update(KEY, FIELD, json.loads, increment)
    other.delete(KEY)

    def only_existing(value: dict[str, Any] | None) -> dict[str, Any] | None:
        return increment(value) if value is not None else None

    assert cas.update(KEY, FIELD, json.loads, only_existing) == (False, None)
    assert other.exists(KEY) == 0


def test_a_string_key_and_a_flushed_script_cache(redis_url: str) -> None:
    # A restarted Redis has no scripts loaded: the next update loads it again.
    cas, other = CompareAndSet(client(redis_url)), client(redis_url)
    cas.update("ku:c:test", "", json.loads, increment)
    other.script_flush()
    assert cas.update("ku:c:test", "", json.loads, increment) == (True, {"n": 2})
    assert json.loads(other.get("ku:c:test")) == {"n": 2}
    assert not other.exists("ku:c:test:changed")  # only a hash field is tracked


def test_a_change_failing_to_decode_writes_nothing(redis_url: str) -> None:
    cas, other = CompareAndSet(client(redis_url)), client(redis_url)
    other.hset(KEY, FIELD, "{not json")
    with pytest.raises(json.JSONDecodeError):
        cas.update(KEY, FIELD, json.loads, increment)
    assert other.hget(KEY, FIELD) == "{not json"


def test_only_plain_writes_ride_along() -> None:
    writes = Writes()
    writes.hset("k", "f", 1)
    writes.delete("k2")
    assert writes.arguments == ["4", "HSET", "k", "f", "1", "2", "DEL", "k2"]
    with pytest.raises(AttributeError, match="eval is not a write"):
        writes.eval("return 1", 0)  # type: ignore[operator]


def test_a_new_attempt_runs_where_this_process_last_wrote_the_old_one(redis_url: str) -> None:
    # An agent's store remembers the entry it wrote at attempt 1; an operator's retry (another
    # process) opens attempt 2. The agent's first reading (its guess) says "stale"; the
    # verdict must come from the value as it is, and so must the write.
    from kubeupgrade.workflow.record import CampaignStore, new_attempt
    from tests.integration.test_record_details import accepted

    agent, operator = CampaignStore.from_url(redis_url), CampaignStore.from_url(redis_url)
    campaign = accepted(operator, "c1", 2)
    node = "c1-worker-00000"
    phase = agent.entry(campaign, 0, node)["phases"][0]["phase"]
    assert begin_sent(agent, campaign, 0, node, phase, 1, "task-1") == "run"
    operator.update_entry(campaign, 0, node, new_attempt)
    assert begin_sent(agent, campaign, 0, node, phase, 2, "task-2") == "run"
    record = agent.entry(campaign, 0, node)["phases"][0]
    assert (record["state"], record["task_id"]) == ("running", "task-2")
    assert begin_sent(agent, campaign, 0, node, phase, 1, "task-1") == "stale"


def test_a_callers_own_read_is_written_on_in_one_round_trip_and_never_over_a_newer_value(redis_url: str) -> None:
    from kubeupgrade.workflow.cas import text_sha1

    plain = client(redis_url)
    plain.hset(KEY, FIELD, json.dumps({"n": 1}))
    read_text = plain.hget(KEY, FIELD)
    as_read = (text_sha1(read_text), json.loads(read_text))
    cas = CompareAndSet(client(redis_url))
    reads: list[tuple[str, str]] = []
    read = cas._read
    cas._read = lambda key, field: reads.append((key, field)) or read(key, field)  # type: ignore[method-assign]
    written, value = cas.update(KEY, FIELD, json.loads, lambda v: {**v, "n": v["n"] + 1}, as_read=as_read)
    assert written and value == {"n": 2} == json.loads(plain.hget(KEY, FIELD))
    assert as_read[1] == {"n": 1}  # the caller's object is not changed: a copy is
    assert reads == []  # the script alone: no read first
    # A read another writer has overtaken since: the change is made on the value as it is.
    plain.hset(KEY, FIELD, json.dumps({"n": 40}))
    written, value = CompareAndSet(client(redis_url)).update(KEY, FIELD, json.loads,
                                                            lambda v: {**v, "n": v["n"] + 1}, as_read=as_read)
    assert written and value == {"n": 41} == json.loads(plain.hget(KEY, FIELD))


def _as_read(plain: redis.Redis, field: str) -> tuple[str, Any]:
    from kubeupgrade.workflow.cas import text_sha1

    text = plain.hget(KEY, field)
    return text_sha1(text), json.loads(text)


def test_many_fields_in_one_round_trip_lose_no_update_under_concurrent_writers(redis_url: str) -> None:
    # Writers of single fields race writers of many at once, every many-field writer with
    # guesses that go stale as it runs: every increment lands exactly once.
    fields = [f"worker-{i}" for i in range(12)]
    plain = client(redis_url)
    for field in fields:
        plain.hset(KEY, field, json.dumps({"n": 0}))
    rounds = 60

    def many() -> None:
        cas = CompareAndSet(client(redis_url))
        mine = client(redis_url)
        for _ in range(rounds):
            guesses = {field: (increment, _as_read(mine, field)) for field in fields}
            results = cas.update_fields(KEY, lambda _, text: json.loads(text), guesses, track_changed=True)
            assert all(written for written, _ in results.values())

    def single() -> None:
        cas = CompareAndSet(client(redis_url))
        for i in range(rounds * 2):
            cas.update(KEY, fields[i % len(fields)], json.loads, increment)

    threads = [threading.Thread(target=many) for _ in range(3)] + [threading.Thread(target=single) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = {field: json.loads(plain.hget(KEY, field))["n"] for field in fields}
    assert counts == {field: 3 * rounds + 2 * rounds * 2 // len(fields) for field in fields}
    assert plain.smembers(f"{KEY}:changed") == set(fields)


def test_many_fields_take_one_round_trip_when_every_guess_holds(redis_url: str, monkeypatch) -> None:
    plain = client(redis_url)
    fields = [f"worker-{i}" for i in range(20)]
    for field in fields:
        plain.hset(KEY, field, json.dumps({"n": 1}))
    guesses = {field: (increment, _as_read(plain, field)) for field in fields}
    cas = CompareAndSet(client(redis_url))
    cas.update(KEY, "warm", json.loads, increment)  # the script is loaded, as in a running process
    reads: list[str] = []
    read = cas._read
    cas._read = lambda key, field: reads.append(field) or read(key, field)  # type: ignore[method-assign]
    _, pipelines = spy_on_redis(monkeypatch)
    results = cas.update_fields(KEY, lambda _, text: json.loads(text), guesses)
    assert pipelines == [["EVALSHA"] * 20] and reads == []
    assert results == {field: (True, {"n": 2}) for field in fields}
    assert all(json.loads(plain.hget(KEY, field)) == {"n": 2} for field in fields)


def test_many_fields_each_decided_on_the_value_as_it_is_when_its_guess_fails(redis_url: str) -> None:
    plain = client(redis_url)
    for field in ("overtaken", "deleted", "reopened", "held"):
        plain.hset(KEY, field, json.dumps({"n": 1, "state": "running"}))
    guesses = {field: _as_read(plain, field) for field in ("overtaken", "deleted", "reopened", "held")}
    plain.hset(KEY, "overtaken", json.dumps({"n": 40, "state": "running"}))
    plain.hdel(KEY, "deleted")
    plain.hset(KEY, "reopened", json.dumps({"n": 1, "state": "pending"}))
    plain.script_flush()  # and a Redis restarted without the script: every write fails once

    def finish(value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None or value["state"] != "running":
            return None  # only a running phase is finished: nothing to write otherwise
        return {**value, "n": value["n"] + 1, "state": "succeeded"}

    cas = CompareAndSet(client(redis_url))
    results = cas.update_fields(KEY, lambda _, text: json.loads(text),
                                {field: (finish, guess) for field, guess in guesses.items()})
    assert results["overtaken"] == (True, {"n": 41, "state": "succeeded"})
    assert results["held"] == (True, {"n": 2, "state": "succeeded"})
    assert results["deleted"] == (False, None) and not plain.hexists(KEY, "deleted")
    assert results["reopened"] == (False, {"n": 1, "state": "pending"})
    assert json.loads(plain.hget(KEY, "reopened"))["state"] == "pending"


class Refused(Exception):
    """What a change raises for a value it may not change (a state change not allowed)."""


def _finish_running(seen: list[str]):
    def finish(value: dict[str, Any] | None) -> dict[str, Any]:
        seen.append(value["state"] if value else "absent")
        if value is None or value["state"] != "running":
            raise Refused(f"{value['state'] if value else 'absent'} -> succeeded is not allowed")
        return {"state": "succeeded"}
    return finish


def test_a_refusal_is_decided_on_the_value_as_it_is_not_on_a_guess(redis_url: str) -> None:
    # This process last wrote "aborted"; the record has since been written "running" by
    # another writer: the change it refuses on the guess is allowed on the value as it is.
    cas, other = CompareAndSet(client(redis_url)), client(redis_url)
    cas.update(KEY, FIELD, json.loads, lambda _: {"state": "aborted"})
    other.hset(KEY, FIELD, json.dumps({"state": "running"}))
    seen: list[str] = []
    written, value = cas.update(KEY, FIELD, json.loads, _finish_running(seen))
    assert seen == ["aborted", "running"]
    assert written and json.loads(other.hget(KEY, FIELD)) == {"state": "succeeded"}
    # Refused on the value as it is: the caller hears it, and nothing is written.
    other.hset(KEY, FIELD, json.dumps({"state": "aborted"}))
    with pytest.raises(Refused, match="aborted -> succeeded"):
        cas.update(KEY, FIELD, json.loads, _finish_running(seen))
    assert json.loads(other.hget(KEY, FIELD)) == {"state": "aborted"}


def test_many_fields_each_refused_only_on_the_value_as_it_is(redis_url: str) -> None:
    plain = client(redis_url)
    for field in ("reopened", "ended"):
        plain.hset(KEY, field, json.dumps({"state": "aborted"}))
    guesses = {field: _as_read(plain, field) for field in ("reopened", "ended")}
    plain.hset(KEY, "reopened", json.dumps({"state": "running"}))
    cas = CompareAndSet(client(redis_url))
    seen: list[str] = []
    with pytest.raises(Refused, match="aborted -> succeeded"):  # "ended", on its value as it is
        cas.update_fields(KEY, lambda _, text: json.loads(text),
                          {field: (_finish_running(seen), guess) for field, guess in guesses.items()})
    assert json.loads(plain.hget(KEY, "reopened")) == {"state": "succeeded"}
    assert json.loads(plain.hget(KEY, "ended")) == {"state": "aborted"}
