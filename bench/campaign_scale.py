"""Benchmark: one sandbox campaign over many workers, run once per worker strategy on the same
drawn durations.

    python -m bench.campaign_scale [--workers 100] [--limit 10] [--jitter 0.5] [--time-scale 0.01]
                                   [--strategies window batches serial] [--controller-concurrency N]
                                   [--pool-nice N] [--links]

For each strategy: a fresh sandbox (3 control planes + N workers, seed 7, so every node's
every step draws the same duration in every run), real redis-server, one agent process per node
and the controller; then the same hop, 1.30 -> 1.31. Strategies: `window` (sliding window of
`--limit`), `batches` (fixed batches of `--limit`), and `serial` (Kubespray's default, `serial:
20%`: batches of a fifth of the workers, each waiting for the previous one; it takes more
workers out of service than `--limit`). For each it prints the makespan of the upgrade (control
planes + workers), the lower bound (serial control-plane time + the larger of the longest worker
and the total worker out-of-service time divided by `--limit`; the smallest of the runs' bounds
is the one all are compared with), their ratio, idle slot-seconds by cause, how long after the
control planes the first outage began and the first wave's last (the `--limit`-th), the dispatch
overhead per task (time from a phase becoming eligible to it running: median and p99), the
slowest stage transition (bench/stages.py: from a stage's last phase ending to the next stage's
first phase sent, and begun) and Redis memory. With `--links`, also where the time between two
links of a chain goes (bench/links.py: published, delivered, handed to a pool process, begun),
from the task events Flower reads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import yaml

from bench import links
from bench.event_log import TaskEventLog
from bench.stages import stage_transitions, summary
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


def analyse(doc: dict, limit: int, slots: int | None = None) -> dict[str, float]:
    """`limit`: the one the lower bound is computed at; `slots`: the workers the run could take
    out of service at once (its idle slot-seconds count against those; `limit` by default)."""
    entries = doc["entries"][0]
    cps = [e for e in entries.values() if e["role"] == "control-plane"]
    workers = [e for e in entries.values() if e["role"] == "worker"]
    cp_spans = [_span(e) for e in cps]
    cp_serial = sum(end - start for start, end in cp_spans)
    worker_spans = [_span(e) for e in workers]
    outages = [_span(e, *OUT_OF_SERVICE) for e in workers]
    out = [end - start for start, end in outages]
    longest = max(end - start for start, end in worker_spans)
    lower = cp_serial + max(longest, sum(out) / limit)
    # The same bound under the rule that no worker changes before the control planes are done:
    # none is out of service before the quickest preparation after them (the phases between
    # the control planes' end and the worker's drain, their own durations only; what a worker
    # fetched while the control planes upgraded is not in it).
    cp_end = max(end for _, end in cp_spans)
    quickest = min(_preparation(e, cp_end) for e in workers)
    ruled = cp_serial + max(longest, quickest + sum(out) / limit)
    makespan = max(end for _, end in worker_spans) - min(start for start, _ in cp_spans)
    # Dispatch overhead: from a phase becoming eligible (its chain sent, or the previous link
    # ended) to it starting. The control planes form one chain, each worker its own two.
    order = list(schedule_of(doc, 0).nodes)
    cp_chain = [p for name in order if entries[name]["role"] == "control-plane"
                for p in entries[name]["phases"][1:]]
    chains = [cp_chain] + [e["phases"][1:] for e in workers]
    overheads = []
    for chain in chains:
        previous_end = None
        for phase in chain:
            eligible = max(previous_end or 0.0, phase.get("dispatched") or 0.0)
            if eligible and phase["started"]:
                overheads.append(max(0.0, phase["started"] - eligible))
            previous_end = phase["ended"]
    overheads.sort()
    prepared_at = [_prepared_at(e) for e in workers]
    stage = (max(end for _, end in cp_spans), max(end for _, end in outages))
    return {"makespan": makespan, "lower": lower, "ratio": makespan / lower, "ruled": ruled,
            "quickest_preparation": quickest, **first_wave(cp_end, outages, slots or limit),
            "overhead_median": statistics.median(overheads),
            "overhead_p99": overheads[min(len(overheads) - 1, int(len(overheads) * 0.99))],
            "tasks": len(overheads), **idle_slots(stage, outages, prepared_at, slots or limit),
            **summary(stage_transitions(doc))}


def first_wave(cp_end: float, outages: list[tuple[float, float]], limit: int) -> dict[str, float]:
    """How long after the control planes' end the first outage began (`first_outage`) and the
    `limit`-th (`wave_formed`: the first wave's last to begin): what the first wave waited
    for, its preparation and the dispatcher's reaction, which no later wave waits for."""
    starts = sorted(start for start, _ in outages)
    return {"first_outage": starts[0] - cp_end, "wave_formed": starts[min(limit, len(starts)) - 1] - cp_end}


def _before_outage(entry: dict) -> list[dict]:
    """The worker's phases before its drain (prepare-host, at the hop's start, included)."""
    names = [p["phase"] for p in entry["phases"]]
    return entry["phases"][: names.index(OUT_OF_SERVICE[0])]


def _preparation(entry: dict, after: float) -> float:
    """How long the worker's own preparation phases that began `after` (the control planes'
    end) ran, up to its drain."""
    return sum(p["ended"] - p["started"] for p in _before_outage(entry)
               if p["phase"] != "prepare-host" and p["started"] >= after)


def _prepared_at(entry: dict) -> float:
    """When the worker's last phase before its outage ended."""
    return max(p["ended"] for p in _before_outage(entry))


def idle_slots(stage: tuple[float, float], outages: list[tuple[float, float]],
               prepared_at: list[float], limit: int, step: float = 0.01) -> dict[str, float]:
    """Slot-seconds of the `limit` left unused during the worker stage, by cause, sampled every
    `step` seconds: `tail` (fewer workers left to start than free slots), `preparation` (none of
    the workers left to start was prepared yet), `not started` (one was prepared and did not
    start: the dispatcher's lag, or for batches the wait for the batch to end)."""
    idle = {"tail": 0.0, "preparation": 0.0, "not started": 0.0}
    now = stage[0]
    while now < stage[1]:
        out = sum(1 for start, end in outages if start <= now < end)
        free = max(0, limit - out)
        if free:
            waiting = [i for i, (start, _) in enumerate(outages) if start > now]
            ready = sum(1 for i in waiting if prepared_at[i] <= now)
            if ready:
                idle["not started"] += min(free, ready) * step
                free -= min(free, ready)
            if free and len(waiting) - ready >= free:
                idle["preparation"] += free * step
            elif free:
                idle["preparation"] += (len(waiting) - ready) * step
                idle["tail"] += (free - (len(waiting) - ready)) * step
        now += step
    return idle


def run_campaign(stack: Stack, target: str, limit: int, strategy: str, workdir: Path,
                 prepare_ahead: int = 0) -> dict:
    campaign = workdir / f"campaign-{target}.yaml"
    campaign.write_text(yaml.safe_dump({
        "cluster": "sandbox", "target": target,
        "policies": {"max_unavailable": limit, "worker_strategy": strategy,
                     "drain": {"delete_emptydir_data": True, "timeout": 600},
                     "retries": {"attempts": 3, "backoff_seconds": 1},
                     "agent_timeout": 600, "ready_timeout": 600, "prepare_ahead": prepare_ahead}}))
    handle = submit(campaign, broker=stack.broker, accept_timeout=300, key=stack.sandbox.signing_key)
    state = handle.wait(timeout=7200)
    if state != "succeeded":
        raise SystemExit(f"campaign {handle.id} {state}: {handle.status().get('error')}")
    return handle.status()


STRATEGIES = {  # name -> (worker_strategy, max_unavailable as a function of the workers and --limit)
    "window": ("window", lambda workers, limit: limit),
    "batches": ("batches", lambda workers, limit: limit),
    "serial": ("batches", lambda workers, limit: max(1, workers // 5)),  # Kubespray's serial: 20%
}


def run_strategy(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A fresh sandbox with the same seed, so every run draws the same durations."""
    strategy, limit_of = STRATEGIES[name]
    limit = limit_of(args.workers, args.limit)
    box, _ = Sandbox.up(workdir / f"sandbox-{name}", control_planes=3, workers=args.workers,
                        version="1.30.4", os_family="mixed", time_scale=args.time_scale,
                        jitter=args.jitter, seed=7)
    stack = Stack(box)
    try:
        stack.start_redis()
        stack.start_agents()
        stack.start_controller(concurrency=args.controller_concurrency or max(8, args.limit * 2),
                               pool_nice=args.pool_nice)
        started = time.monotonic()
        stack.wait_for_workers([f"agent@{n['name']}" for n in box.nodes], timeout=900)
        print(f"{name}: {len(box.nodes)} agents up in {time.monotonic() - started:.0f}s", flush=True)
        with TaskEventLog(stack.broker_for("flower")) if args.links else contextlib.nullcontext() as events:
            doc = run_campaign(stack, "1.31", limit, strategy, workdir, args.prepare_ahead)
        if args.record:
            Path(f"{args.record}-{name}.json").write_text(json.dumps(doc))
        problems = invariants.check_max_unavailable(box, limit)
        assert not problems, problems
        result: dict[str, Any] = dict(analyse(doc, args.limit, limit))  # the bound at --limit, the same for every strategy
        result["out_at_once"] = limit
        if events is not None:
            result["links"] = links.summary(links.link_times(doc, events.events))
        result["redis_mib"] = redis.Redis(port=stack.redis_port).info("memory")["used_memory"] / 2**20
        return result
    finally:
        stack.stop_all()
        box.down()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--prepare-ahead", type=int, default=0,
                        help="policies.prepare_ahead [default: 0, the campaign's own default]")
    parser.add_argument("--controller-concurrency", type=int, default=0, metavar="N",
                        help="the controller's pool processes [default: twice --limit, at least 8]")
    parser.add_argument("--pool-nice", type=int, choices=range(20), default=None, metavar="N",
                        help="the controller's --pool-nice [default: the controller's own]")
    parser.add_argument("--record", metavar="PREFIX",
                        help="also write each run's campaign record (JSON) to PREFIX-STRATEGY.json")
    parser.add_argument("--strategies", nargs="+", choices=sorted(STRATEGIES), default=list(STRATEGIES))
    parser.add_argument("--links", action="store_true",
                        help="also print where each chain link's time goes (bench/links.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: run_strategy(name, args, Path(tmp)) for name in args.strategies}
    bound = min(r["lower"] for r in results.values())
    own = ", ".join(f"{r['lower']:.1f}" for r in results.values())
    print(f"\ncampaign benchmark: 3 control planes + {args.workers} workers, 1.30 -> 1.31, the same "
          f"drawn durations (seed 7), jitter {args.jitter}, time scale {args.time_scale}; lower bound "
          f"at max_unavailable {args.limit}: {bound:.1f} s (each run's own: "
          f"{own})")
    ruled = min(r["ruled"] for r in results.values())
    print(f"The bound when no worker may change before the control planes are done (the quickest "
          f"preparation after them, {min(r['quickest_preparation'] for r in results.values()):.1f} s, "
          f"comes first): {ruled:.1f} s")
    print("| strategy | out at once | makespan | ratio to the bound | to the ruled bound | idle slot-s: not started | "
          "preparation | tail | first outage / first wave formed | dispatch median | p99 | "
          "slowest stage transition: sent / started | tasks | Redis used |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['out_at_once']} | {r['makespan']:.1f} s | {r['makespan'] / bound:.2f} | "
              f"{r['makespan'] / ruled:.2f} | "
              f"{r['not started']:.0f} | {r['preparation']:.0f} | {r['tail']:.0f} | "
              f"{r['first_outage']:.2f} / {r['wave_formed']:.2f} s | "
              f"{r['overhead_median'] * 1000:.0f} ms | {r['overhead_p99'] * 1000:.0f} ms | "
              f"{r['transition_sent_max'] * 1000:.0f} / {r['transition_started_max'] * 1000:.0f} ms | {r['tasks']} | "
              f"{r['redis_mib']:.1f} MiB |")
    for name, r in results.items():
        if "links" in r:
            print(f"\n{name}: from a link's predecessor ending to it begun, milliseconds, median / p90")
            print(links.table(r["links"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
