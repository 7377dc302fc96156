"""What the dispatcher keeps of each tick for the benchmarks (bench.scale): its wall time, its
CPU time and its wait on the run queue for a core, one of each per tick. Real redis-server, the
real dispatcher loop, and real processes competing for the cores."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from kubeupgrade.workflow import dispatcher as dispatching
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.dispatcher import TICK_CPU_KEY, TICK_QUEUED_KEY, TICKS_KEY, Dispatcher
from kubeupgrade.workflow.record import CampaignStore
from tests.integration.test_dispatcher_budget import at_worker_stage

pytestmark = pytest.mark.integration


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="schedstat is Linux's")
def test_each_tick_is_kept_with_its_cpu_and_its_wait_for_a_core(redis_url, monkeypatch):
    monkeypatch.setattr(dispatching, "TICK_REPORT_SECONDS", 0.3)
    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    at_worker_stage(store, dispatcher, "window")
    # Twice as many busy processes as cores: the dispatcher's thread waits on the run queue at times.
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 2))]
    stop = threading.Event()
    loop = threading.Thread(target=dispatcher.run_forever, args=(stop, 0.01), daemon=True)
    try:
        loop.start()
        # Until a dozen ticks are kept (about 2 s alone), not for a fixed time: under a loaded
        # CI machine (the other test worker's processes besides these) one tick once took 1.8 s.
        deadline = time.monotonic() + 30
        while store.redis.llen(TICKS_KEY) <= 12 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join(5)
        for process in busy:
            process.kill()
            process.wait(5)
    took, used, queued = ([int(v) for v in store.redis.lrange(key, 0, -1)]
                          for key in (TICKS_KEY, TICK_CPU_KEY, TICK_QUEUED_KEY))
    assert len(took) > 10 and len(took) == len(used) == len(queued), (took, queued)
    assert all(q >= 0 for q in queued)
    # A wait for a core is part of the tick's wall time (1 ms for the reads around it)
    assert all(q <= t + 1000 for t, q in zip(took, queued))
    assert sum(queued) > 0, "busy processes on every core never kept the tick waiting"
