"""Benchmark: what one dispatcher tick costs at N nodes, without agents or a simulator.

    python -m bench.dispatcher_tick [--nodes 1000 5000] [--ticks 30] [--pause SECONDS]

For each N: a private redis-server; a campaign listing 3 control planes and N workers
(`max_unavailable` 10%), accepted by the real dispatcher (timed: "accept"); the hop moved to the
worker stage with the control planes done, every agent's liveness key set, then ticks timed
while the first window of workers is in flight and nothing changes (the common tick: read,
decide, send nothing), `--pause` seconds apart (so that the ticks span the dispatcher's sweep of
every entry, SWEEP_SECONDS). Prints accept time, tick p50/p99 and the slowest, the hop's size in
Redis and the process's peak RSS. The tasks the first tick sends go to queues nobody consumes.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from kubeupgrade.sandbox.processes import free_port
from kubeupgrade.sandbox.stack import wait_for_redis


def _campaign(workers: int) -> dict:
    nodes = [{"name": f"cp-{i}", "role": "control-plane", "kubelet": "v1.30.4"} for i in range(1, 4)]
    nodes += [{"name": f"worker-{i:05d}", "role": "worker", "kubelet": "v1.30.4"} for i in range(workers)]
    return {"cluster": "bench", "target": "1.31.14", "control_plane_version": "v1.30.4", "nodes": nodes,
            "policies": {"max_unavailable": max(1, workers // 10)}}


def measure(workers: int, ticks: int, pause: float = 0.0) -> dict[str, float]:
    from kubeupgrade.workflow.app import client_app
    from kubeupgrade.workflow.dispatcher import Dispatcher
    from kubeupgrade.workflow.liveness import agent_key
    from kubeupgrade.workflow.record import CampaignStore

    directory = Path(tempfile.mkdtemp(prefix="bench-tick-"))
    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                               "--save", "", "--appendonly", "no", "--dir", str(directory)],
                              stdout=subprocess.DEVNULL)
    try:
        wait_for_redis(port, "bench")
        url = f"redis://127.0.0.1:{port}/0"
        store = CampaignStore.from_url(url)
        dispatcher = Dispatcher(client_app(url), store)
        campaign_id = store.create("bench", _campaign(workers), "bench")
        started = time.perf_counter()
        dispatcher.advance(campaign_id)  # accept: plan, one entry per node
        accept = time.perf_counter() - started
        _to_worker_stage(store, campaign_id)
        pipe = store.redis.pipeline(transaction=False)
        for name in store.entries(campaign_id, 0):
            pipe.set(agent_key(name), "bench", ex=3600)
        pipe.execute()
        dispatcher.tick()  # sends the first window and the preparation ahead, over some ticks
        while dispatcher.more_to_send:
            dispatcher.tick()
        durations = []
        for _ in range(ticks):
            time.sleep(pause)
            started = time.perf_counter()
            dispatcher.tick()
            durations.append(time.perf_counter() - started)
        durations.sort()
        hop_bytes = store.redis.memory_usage(f"ku:c:{campaign_id}:hop:0") or 0
        return {"nodes": workers + 3, "accept": accept, "p50": statistics.median(durations),
                "p99": durations[min(len(durations) - 1, int(0.99 * len(durations)))], "max": durations[-1],
                "hop_mib": hop_bytes / 2**20, "used_mib": store.redis.info("memory")["used_memory"] / 2**20,
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        server.kill()
        server.wait(5)
        shutil.rmtree(directory, ignore_errors=True)


def _to_worker_stage(store, campaign_id: str) -> None:
    """What the first stages leave behind: versions resolved, control planes done."""
    now = time.time()
    entries = store.entries(campaign_id, 0)
    for name, entry in entries.items():
        if entry["role"] == "control-plane" or name == "@cluster":
            for phase in entry["phases"]:
                if phase["phase"] in ("verify", "health-gate"):
                    continue
                phase.update(state="succeeded", started=now, ended=now, task_id="done")
            entry["state"] = "succeeded" if entry["role"] == "control-plane" else entry["state"]
        else:
            entry["phases"][0].update(state="succeeded", started=now, ended=now, task_id="done")
        store.put_entry(campaign_id, 0, name, entry)

    def workers_stage(doc):
        doc["hops"][0].update(stage="workers", version="1.31.14")

    store.put_packages(campaign_id, 0, {name: "1.31.14-1.1" for name in entries})

    store.update(campaign_id, workers_stage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between measured ticks")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args()
    rows = [measure(n, args.ticks, args.pause) for n in args.nodes]
    if args.output == "json":
        print(json.dumps(rows, indent=2))
        return
    print("| nodes | accept | tick p50 | tick p99 | slowest tick | hop hash | Redis used | bench RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['nodes']:,} | {r['accept']:.2f} s | {r['p50'] * 1000:.0f} ms | {r['p99'] * 1000:.0f} ms "
              f"| {r['max'] * 1000:.0f} ms "
              f"| {r['hop_mib']:.1f} MiB | {r['used_mib']:.1f} MiB | {r['rss_mib']:.0f} MiB |")


if __name__ == "__main__":
    main()
