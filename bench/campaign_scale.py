"""Benchmark: a sandbox campaign over many workers, sliding window versus fixed batches.

    python -m bench.campaign_scale [--workers 100] [--limit 10] [--jitter 0.5] [--time-scale 0.01]

One sandbox (3 control planes + N workers, varied phase durations), real redis-server, one agent
process per node and the controller. Two consecutive campaigns: 1.30 -> 1.31 with the sliding
window, then 1.31 -> 1.32 with fixed batches. For each it prints the makespan of the upgrade
(control planes + workers), the lower bound (serial control-plane time + the larger of the
longest worker and the total worker out-of-service time divided by the limit), their ratio, the
dispatch overhead per task (time from a phase becoming eligible to it running: median and p99)
and Redis memory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import redis
import yaml

from kubeupgrade.api import submit
from kubeupgrade.sandbox import invariants
from kubeupgrade.sandbox.manager import Sandbox
from kubeupgrade.sandbox.stack import Stack
from kubeupgrade.workflow.schedule import schedule_of

OUT_OF_SERVICE = ("drain", "uncordon")


def _span(entry: dict, first: str | None = None, last: str | None = None) -> tuple[float, float]:
    phases = [p for p in entry["phases"] if p["phase"] != "prepare-host"]
    if first:
        phases = phases[[p["phase"] for p in phases].index(first):]
    if last:
        phases = phases[: [p["phase"] for p in phases].index(last) + 1]
    return min(p["started"] for p in phases), max(p["ended"] for p in phases)


def analyse(doc: dict, limit: int) -> dict[str, float]:
    entries = doc["entries"][0]
    cps = [e for e in entries.values() if e["role"] == "control-plane"]
    workers = [e for e in entries.values() if e["role"] == "worker"]
    cp_spans = [_span(e) for e in cps]
    cp_serial = sum(end - start for start, end in cp_spans)
    worker_spans = [_span(e) for e in workers]
    out = [end - start for start, end in (_span(e, *OUT_OF_SERVICE) for e in workers)]
    longest = max(end - start for start, end in worker_spans)
    lower = cp_serial + max(longest, sum(out) / limit)
    makespan = max(end for _, end in worker_spans) - min(start for start, _ in cp_spans)
    # Dispatch overhead: from a phase becoming eligible (its chain sent, or the previous link
    # ended) to it starting. The control planes form one chain, each worker its own two.
    order = list(schedule_of(doc, 0).nodes)
    cp_chain = [p for name in order if entries[name]["role"] == "control-plane"
                for p in entries[name]["phases"][1:]]
    chains = [cp_chain] + [e["phases"][1:] for e in workers]
    overheads = []
    for links in chains:
        previous_end = None
        for phase in links:
            eligible = max(previous_end or 0.0, phase.get("dispatched") or 0.0)
            if eligible and phase["started"]:
                overheads.append(max(0.0, phase["started"] - eligible))
            previous_end = phase["ended"]
    overheads.sort()
    return {"makespan": makespan, "lower": lower, "ratio": makespan / lower,
            "overhead_median": statistics.median(overheads),
            "overhead_p99": overheads[min(len(overheads) - 1, int(len(overheads) * 0.99))],
            "tasks": len(overheads)}


def run_campaign(stack: Stack, target: str, limit: int, strategy: str, workdir: Path) -> dict:
    campaign = workdir / f"campaign-{target}.yaml"
    campaign.write_text(yaml.safe_dump({
        "cluster": "sandbox", "target": target,
        "policies": {"max_unavailable": limit, "worker_strategy": strategy,
                     "drain": {"delete_emptydir_data": True, "timeout": 600},
                     "retries": {"attempts": 3, "backoff_seconds": 1},
                     "agent_timeout": 600, "ready_timeout": 600}}))
    handle = submit(campaign, broker=stack.broker, accept_timeout=300, key=stack.sandbox.signing_key)
    state = handle.wait(timeout=7200)
    if state != "succeeded":
        raise SystemExit(f"campaign {handle.id} {state}: {handle.status().get('error')}")
    return handle.status()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument("--time-scale", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        box, _ = Sandbox.up(workdir / "sandbox", control_planes=3, workers=args.workers,
                            version="1.30.4", os_family="mixed", time_scale=args.time_scale,
                            jitter=args.jitter, seed=7)
        stack = Stack(box)
        try:
            stack.start_redis()
            stack.start_agents()
            stack.start_controller(concurrency=max(8, args.limit * 2))
            started = time.monotonic()
            stack.wait_for_workers([f"agent@{n['name']}" for n in box.nodes], timeout=900)
            print(f"{len(box.nodes)} agents up in {time.monotonic() - started:.0f}s")
            results = {}
            for target, strategy in (("1.31", "window"), ("1.32", "batches")):
                doc = run_campaign(stack, target, args.limit, strategy, workdir)
                results[strategy] = analyse(doc, args.limit)
                problems = invariants.check_max_unavailable(box, args.limit)
                assert not problems, problems
            memory = redis.Redis(port=stack.redis_port).info("memory")["used_memory"] / 2**20
        finally:
            stack.stop_all()
            box.down()
    print(f"\ncampaign benchmark: 3 control planes + {args.workers} workers, max_unavailable "
          f"{args.limit}, jitter {args.jitter}, time scale {args.time_scale}")
    print(f"{'strategy':<9} {'makespan s':>10} {'lower bound s':>13} {'ratio':>6} "
          f"{'dispatch median ms':>18} {'dispatch p99 ms':>15} {'tasks':>6}")
    for strategy, r in results.items():
        print(f"{strategy:<9} {r['makespan']:>10.1f} {r['lower']:>13.1f} {r['ratio']:>6.2f} "
              f"{r['overhead_median'] * 1000:>18.0f} {r['overhead_p99'] * 1000:>15.0f} {r['tasks']:>6}")
    print(f"Redis used_memory after both campaigns: {memory:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
