"""Cluster phases that wait give their pool process back between looks.

A drain waits for evicted pods to stop and for budgets to let evictions through, a readiness
wait for a kubelet to come back, a health gate for the cluster to turn green: seconds to
minutes each. Slept in the task, every wait held one of the controller's pool processes, so
the controller's `--concurrency` capped how many outages moved at once, whatever
`max_unavailable` allowed. Instead a phase body looks once and, if the cluster is not there
yet, raises StillWaiting. The wrapper (phase.py) looks again within the task while the wait is
short, then sends the task again to its own queue with a countdown (same task id, same chain,
the same Celery retry count: a look is not an attempt) and the process takes other work
meanwhile. What the body must remember between looks (when the wait began, how many looks,
what it did: the drain's evicted pods) is kept in Redis as a WaitState
(CampaignStore.keep_waiting), fenced by the task id like every other write of the phase.
Looks sent through the broker are paced (paced): together, a hop's waits send no more than the
controller's pool is sized for. Only controller phases declared to wait do so (phase_task
waits=True): the others, and agents, do not read the state (it would cost each task a round
trip).

A look sent through the broker is not free either: the controller's consumer takes every one
from the queue like any task, so while many phases wait, a drain the dispatcher has just sent
queues behind their looks. A pool process that holds a wait slot (wait_slot: half the pool has
one) therefore goes on looking in its task for up to HELD_WAIT_SECONDS; the other half of the
pool stays free for the phases that move outages along."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubeupgrade.host.executor import try_lock

# The controller's pool size, as `kubeupgrade controller --concurrency` set it for its processes.
PROCESSES_ENV = "KUBEUPGRADE_CONTROLLER_PROCESSES"
DEFAULT_PROCESSES = 8

# Looks a second the waiting phases may send through the broker, per controller pool process.
# A look so sent costs the controller ~20-23 ms of CPU on this project's 2-core machines
# (bench.waits: ~25 Redis commands, the message and its four task events, Celery's retry
# bookkeeping, and one API call of ~1.5 ms, all a look inside a held process used to cost).
# Unpaced, 500 phases waiting at once (max_unavailable 500) would ask 500 looks a second: more
# than two cores can give, and the drains and uncordons that move outages would queue behind
# the looks. At 5 a second per process a pool of 8 spends about a core on looks; each wait
# looks once a second until more than 40 phases wait, then less often (every N / 40 s for N).
LOOKS_PER_SECOND_PER_PROCESS = 5.0
# But never longer than this between two looks of one wait, whatever the count: a deadline is
# overshot by at most this much, and a pool too small for its waits looks more than paced for
# (at the default pool, past 1,200 waits at once) rather than leaving an outage unwatched.
MOST_PACED_SECONDS = 30.0


# The directory of the wait slots of this controller's pool (make_wait_slots), inherited by
# its pool processes.
WAIT_SLOTS_ENV = "KUBEUPGRADE_WAIT_SLOTS"
# How long a phase holding a wait slot looks within its task. Long enough that a drain held
# by a budget for a few seconds sends no look through the broker; short enough that a slot
# passes from one wait to another several times a minute.
HELD_WAIT_SECONDS = 3.0


class StillWaiting(Exception):  # noqa: N818 - not an error: the phase looks again later
    """Raised by a phase body whose cluster is not there yet: look again in `after` seconds.
    `detail` says what it waits for (the phase's detail while it waits); `carried` is what the
    next look must know (JSON-able)."""

    def __init__(self, detail: str, after: float, carried: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.after = after
        self.carried = carried or {}


@dataclass(frozen=True)
class WaitState:
    """A waiting phase between two looks: its task, the Celery retry count the next look is
    sent with (an error retry in between starts the wait over), when the first look began (wall
    clock: deadlines count from it), looks so far, the detail last written to the record, and
    what the body carries."""

    task_id: str
    retries: int
    since: float
    looks: int
    detail: str = ""
    carried: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "retries": self.retries, "since": self.since,
                "looks": self.looks, "detail": self.detail, "carried": self.carried}

    @classmethod
    def from_json(cls, value: Any) -> WaitState:
        """ValueError if `value` is not one (a damaged or forged entry)."""
        if not isinstance(value, dict):
            raise ValueError("not an object")
        fields: dict[str, Any] = value
        task_id, retries, since, looks = (fields.get(k, -1) for k in ("task_id", "retries", "since", "looks"))
        detail, carried = fields.get("detail", ""), fields.get("carried", {})
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("no task_id")
        if not _count(retries) or not _count(looks):
            raise ValueError("retries or looks is not a count")
        if not isinstance(since, (int, float)) or isinstance(since, bool) or since > time.time() + 60:
            raise ValueError("since is not a time in the past")
        if not isinstance(detail, str) or not isinstance(carried, dict):
            raise ValueError("detail or carried of the wrong type")
        return cls(task_id, int(retries), float(since), int(looks), detail, carried)

    def continues(self, task_id: str, retries: int) -> bool:
        """Whether a delivery of `task_id` at Celery retry count `retries` is the look this
        state scheduled (not a new attempt, nor the retry of an error)."""
        return self.task_id == task_id and self.retries == retries

    def next(self, carried: dict[str, Any], detail: str | None = None) -> WaitState:
        """After one more look: what it carries, and the detail written to the record (None:
        written by no look since, as for a look made within the same delivery)."""
        return WaitState(self.task_id, self.retries, self.since, self.looks + 1,
                         self.detail if detail is None else detail, carried)


def paced(after: float, waiting: int, processes: int) -> float:
    """The pause before a look sent through the broker: `after`, or longer while `waiting`
    phases look at once, so that together they send at most LOOKS_PER_SECOND_PER_PROCESS a
    second per pool process, up to MOST_PACED_SECONDS."""
    spread = min(waiting / (LOOKS_PER_SECOND_PER_PROCESS * max(processes, 1)), MOST_PACED_SECONDS)
    return max(after, spread)


def pool_processes() -> int:
    """This controller's pool size (PROCESSES_ENV), or DEFAULT_PROCESSES where not set or not a
    positive integer (a process not started by `kubeupgrade controller`)."""
    raw = os.environ.get(PROCESSES_ENV, "")
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) > 0 else DEFAULT_PROCESSES


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def first_look(task_id: str, retries: int) -> WaitState:
    """The state of a phase that has not waited yet (looks 0, starting now)."""
    return WaitState(task_id, retries, time.time(), 0)


_SLOTS_DIR_PREFIX = "kubeupgrade-waits-"
_SLOT_PREFIX = "slot-"
_OWNER = "owner"  # locked by the controller that made the directory, for as long as it runs
_owner_lock: list[int] = []  # its descriptor, kept open (and inherited by the pool) until exit
STALE_AFTER_SECONDS = 60.0  # a directory younger than this may be one still being made


def make_wait_slots(processes: int) -> str:
    """Before the pool forks: one slot file for every second pool process (none for a pool of
    one, whose only process must stay free for what moves outages along), in a directory only
    this user can read, removed when this process exits. Its path goes into WAIT_SLOTS_ENV for
    the pool to find. Directories left by controllers that did not exit (SIGKILLed, or
    restarted by exec, where exit handlers do not run) are removed first: theirs is the owner
    file nobody holds locked any more."""
    remove_stale_wait_slots(tempfile.gettempdir())
    directory = tempfile.mkdtemp(prefix=_SLOTS_DIR_PREFIX)
    owner_fd = os.open(os.path.join(directory, _OWNER), os.O_RDONLY | os.O_CREAT, 0o600)
    try_lock(owner_fd)
    _owner_lock.append(owner_fd)
    for number in range(processes // 2):
        with open(os.path.join(directory, f"{_SLOT_PREFIX}{number}"), "w"):
            pass
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not a forked child that happens to run exit handlers
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    os.environ[WAIT_SLOTS_ENV] = directory
    return directory


def remove_stale_wait_slots(parent: str) -> list[str]:
    """Remove this user's slot directories under `parent` whose controller is gone (its owner
    file is not locked, or missing in a directory older than STALE_AFTER_SECONDS); returns
    them. A live controller's directory is left alone: its lock is held."""
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(_SLOTS_DIR_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        try:
            info = os.lstat(path)  # a link is nobody's slot directory: never followed
            if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()
                    or time.time() - info.st_mtime < STALE_AFTER_SECONDS):
                continue
            fd = os.open(os.path.join(path, _OWNER), os.O_RDONLY)
        except FileNotFoundError:
            fd = -1  # made before owner files, or cut short while being made
        except OSError:
            continue
        try:
            if fd >= 0 and not try_lock(fd):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except OSError:
            continue
        finally:
            if fd >= 0:
                os.close(fd)
    return removed


def held_wait_seconds(visibility_timeout: float) -> float:
    """How long a slot holder looks in its task: HELD_WAIT_SECONDS, or a quarter of the
    broker's visibility timeout if that is shorter, so that a message held unacknowledged by a
    live wait is never old enough for the broker to hand it to a second consumer."""
    return max(0.0, min(HELD_WAIT_SECONDS, visibility_timeout / 4))


@contextlib.contextmanager
def wait_slot() -> Iterator[bool]:
    """Take a free wait slot for the block (True), or none is free or there are none (False:
    a process not started by `kubeupgrade controller`). A slot is an exclusive lock on its
    file, taken as the host lock is (executor.try_lock): the kernel lets it go when the holder
    closes it or dies, so a pool process killed mid-wait leaves no slot taken for ever."""
    directory = os.environ.get(WAIT_SLOTS_ENV, "")
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith(_SLOT_PREFIX)) if directory else []
    except OSError:
        names = []
    for name in names:
        try:
            held = os.open(os.path.join(directory, name), os.O_RDONLY)
        except OSError:
            continue
        try:
            taken = try_lock(held)
        except OSError:
            taken = False
        if not taken:
            os.close(held)
            continue
        try:
            yield True
        finally:
            os.close(held)  # and with it the lock
        return
    yield False
