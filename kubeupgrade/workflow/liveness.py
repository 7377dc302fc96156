"""Who is alive, read from keys in Redis instead of asked by broadcast.

Agents refresh `ku:agent:<node>` and every running phase refreshes `ku:beat:<task id>`, each
with a time to live a few refresh periods long. The dispatcher reads them in bulk (one MGET per
tick for the nodes it cares about), so it never waits on a broadcast that only returns at its
timeout, and an idle agent costs a single SET every few seconds. A frozen or killed process
stops refreshing and its key expires: silence, as a missing ping reply was before.

The dispatcher sleeps on `ku:wake` (a blocking pop with a deadline); a phase ending and every
operator command push to it, so the dispatcher acts within milliseconds of a change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis

log = logging.getLogger("kubeupgrade.liveness")

AGENT_PERIOD = 5.0  # seconds between an agent's refreshes
AGENT_TTL = 15  # seconds an agent's key outlives its last refresh (a silent agent is gone after it)
BEAT_PERIOD = 2.0  # seconds between a running phase's refreshes
BEAT_TTL = 8  # seconds a phase's key outlives its last refresh
WAKE_KEY = "ku:wake"
STOP_JOIN_SECONDS = 5.0  # how long a stopping heartbeat waits for a refresh in flight


def agent_key(node: str) -> str:
    return f"ku:agent:{node}"


def beat_key(task_id: str) -> str:
    return f"ku:beat:{task_id}"


# -- the dispatcher's side -------------------------------------------------------------------
def alive_agents(client: redis.Redis, nodes: Iterable[str]) -> set[str]:
    """The nodes among `nodes` whose agent refreshed its key within AGENT_TTL seconds."""
    return _present(client, nodes, agent_key)


def agent_descriptions(client: redis.Redis, nodes: Iterable[str]) -> dict[str, dict[str, object]]:
    """What each live agent among `nodes` says of itself (empty for an older agent's value)."""
    found = {}
    for node, value in _values(client, nodes, agent_key).items():
        try:
            described = json.loads(value)
        except ValueError:
            described = {}
        found[node] = described if isinstance(described, dict) else {}
    return found


def beating(client: redis.Redis, task_ids: Iterable[str]) -> set[str]:
    """The task ids among `task_ids` whose phase refreshed its key within BEAT_TTL seconds."""
    return _present(client, task_ids, beat_key)


def _present(client: redis.Redis, names: Iterable[str], key: Callable[[str], str]) -> set[str]:
    return set(_values(client, names, key))


def _values(client: redis.Redis, names: Iterable[str], key: Callable[[str], str]) -> dict[str, Any]:
    """The value under each name's key, for the names whose key exists (one MGET)."""
    wanted = list(names)
    if not wanted:
        return {}
    values = client.mget([key(name) for name in wanted])
    return {name: value for name, value in zip(wanted, values) if value is not None}


def wake(client: redis.Redis) -> None:
    """Tell the dispatcher something changed. The list holds one element at most: the
    dispatcher empties it before reading the record, so a wake is never lost nor piled up."""
    pipe = client.pipeline(transaction=False)
    queue_wake(pipe)
    pipe.execute()


def queue_wake(pipe: Any) -> None:
    """wake() as part of a pipeline or transaction the caller executes."""
    pipe.rpush(WAKE_KEY, 1)
    pipe.ltrim(WAKE_KEY, -1, -1)


def sleep_until_woken(client: redis.Redis, timeout: float) -> bool:
    """Block until a wake arrives or `timeout` seconds pass; True if woken."""
    woken = client.blpop([WAKE_KEY], timeout=timeout) is not None
    if woken:
        client.delete(WAKE_KEY)
    return woken


# -- the agent's and the phase's side -------------------------------------------------------------
class AgentHeartbeat:
    """A daemon thread in the agent's main process refreshing `ku:agent:<node>` (the keys of
    every node it serves: the sandbox's agent farm serves many)."""

    def __init__(self, client: redis.Redis, node: str | Sequence[str], period: float = AGENT_PERIOD,
                 ttl: int = AGENT_TTL, describe: Callable[[], dict[str, object]] | None = None) -> None:
        self.client = client
        self.nodes = (node,) if isinstance(node, str) else tuple(node)
        self.period = period
        self.ttl = ttl
        # What the key says of the agent (its version, the keys it trusts: `doctor` reads it),
        # asked afresh at every refresh so a newly installed key shows within a period.
        self.describe = describe or (lambda: {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="agent-heartbeat")

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def stop(self) -> None:
        """Stop refreshing and say so at once (a stopped agent is not waited for TTL seconds).
        The thread is joined before the delete: a refresh already past its stop check would
        otherwise write the key again after it, and the stopped agent would look alive for TTL
        seconds (seen as a flaky test under load). Bounded: a refresh stuck on an unreachable
        Redis does not hold the agent's shutdown."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=STOP_JOIN_SECONDS)
        with contextlib.suppress(redis.RedisError):
            self.client.delete(*(agent_key(node) for node in self.nodes))

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                try:
                    described = self.describe()
                except Exception as error:  # noqa: BLE001 - liveness must not depend on it
                    described = {"describe_error": str(error)}
                value = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), **described})
                with self.client.pipeline(transaction=False) as refresh:
                    for node in self.nodes:
                        refresh.set(agent_key(node), value, ex=self.ttl)
                    refresh.execute()
                if first:  # a returning agent may be what the dispatcher waits for
                    wake(self.client)
                    first = False
            except redis.RedisError as error:
                log.warning("agent heartbeat: %s", error)
            self._stop.wait(self.period)


class _PhaseBeats:
    """Every phase running in this process, refreshed together by one thread: a thread per
    phase was a thread started and joined per task, thousands a minute in an agent farm."""

    def __init__(self, client: redis.Redis, period: float, ttl: int) -> None:
        self.client, self.period, self.ttl = client, period, ttl
        self.running: set[str] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, task_id: str, begun: bool = False) -> None:
        if not begun:  # beating before the body starts, as the dispatcher may look now
            self._set([task_id])
        with self.lock:
            self.running.add(task_id)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, daemon=True, name="phase-beats")
                self.thread.start()

    def remove(self, task_id: str, begun: bool = False) -> None:
        with self.lock:  # not between a refresh's snapshot and its write: no beat after the end
            self.running.discard(task_id)
        if not begun:
            with contextlib.suppress(redis.RedisError):
                self.client.delete(beat_key(task_id))

    def _set(self, task_ids: list[str]) -> None:
        try:
            with self.client.pipeline(transaction=False) as refresh:
                for task_id in task_ids:
                    refresh.set(beat_key(task_id), int(time.time()), ex=self.ttl)
                refresh.execute()
        except redis.RedisError as error:
            log.warning("phase heartbeat of %s: %s", ", ".join(task_ids), error)

    def _run(self) -> None:
        while True:
            time.sleep(self.period)
            with self.lock:
                if not self.running:
                    self.thread = None  # the next phase starts another
                    return
                self._set(sorted(self.running))


_beats: dict[tuple[int, int, float, int], _PhaseBeats] = {}  # (pid, client, period, ttl) -> its keeper
_beats_lock = threading.Lock()


@contextlib.contextmanager
def phase_beating(client: redis.Redis, task_id: str, period: float = BEAT_PERIOD,
                  ttl: int = BEAT_TTL, begun: bool = False) -> Iterator[None]:
    """Refresh `ku:beat:<task id>` while the block runs (a phase body), from this process's
    beat thread, so a long command does not stop it; the key is removed when the block ends.
    `begun`: the record's own writes set the key as the phase began and remove it as the phase
    ends (CampaignStore.begin_phase and the writes that end it), in the same script as the
    state: two round trips fewer per phase, and never a running phase without its key."""
    key = (os.getpid(), id(client), period, ttl)  # a forked pool process makes its own
    with _beats_lock:
        beats = _beats.get(key)
        if beats is None or beats.client is not client:
            beats = _beats[key] = _PhaseBeats(client, period, ttl)
    beats.add(task_id, begun)
    try:
        yield
    finally:
        beats.remove(task_id, begun)


def beat_for(client: redis.Redis, task_id: str, seconds: float) -> None:
    """Keep a phase counted as running for `seconds` without a thread: a task waiting for its
    retry countdown in its worker is held, not lost."""
    with contextlib.suppress(redis.RedisError):
        client.set(beat_key(task_id), int(time.time()), ex=max(1, int(seconds) + BEAT_TTL))
