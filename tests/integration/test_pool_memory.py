"""A pool process shares its parent's heap: every object alive when the controller (or an agent)
forks a pool process is frozen first, so the child's collector never writes to the pages it
shares; garbage is collected before the fork rather than frozen with the rest (runners.
share_heap_with_pool). Run in a fresh interpreter: the fork hook cannot be removed once set."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import gc, os, sys, weakref

    gc.disable()  # no collection by chance: only the hook's own

    if sys.argv[1] == "share":
        from kubeupgrade.workflow.runners import share_heap_with_pool
        share_heap_with_pool()

    class Cycle:
        pass

    def fork_and_report(alive):
        dropped = Cycle()
        dropped.itself = dropped  # garbage only the collector can free
        gone = weakref.ref(dropped)
        del dropped
        pid = os.fork()
        if pid == 0:
            tracked = {id(thing) for thing in gc.get_objects()}
            unfrozen = sum(id(thing) in tracked for thing in alive)
            os._exit(min(unfrozen, 100) + (0 if gone() is None else 101))
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    first = [[] for _ in range(50)]  # built after the hook, as Celery builds its worker
    at_start = fork_and_report(first)
    later = [[] for _ in range(50)]  # built while serving, before a pool process is replaced
    replaced = fork_and_report(first + later)
    print(at_start, replaced)
""")


def _run(mode: str) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          timeout=60, check=True)
    at_start, replaced = done.stdout.split()
    return int(at_start), int(replaced)


def test_everything_alive_at_a_fork_is_frozen_and_garbage_is_freed_first() -> None:
    assert _run("share") == (0, 0)


def test_without_it_the_child_would_examine_the_parents_objects() -> None:
    # The control: the same objects, no hook, are all still the collector's in the child, and
    # the dropped cycle is still there to be copied.
    at_start, replaced = _run("plain")
    assert at_start == 50 + 101 and replaced == 100 + 101
