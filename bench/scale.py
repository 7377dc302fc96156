"""Benchmark: a whole zero-duration campaign on N sandbox nodes, measuring the engine.

    python -m bench.scale --nodes 1000 [--limit 100] [--farms F] [--concurrency 32]
        [--controller-concurrency 8] [--links] [--split-cores] [--cluster-nice N] [--pool-nice N]
        [-o json]

A sandbox of 3 control planes and N - 3 workers (apt; every simulated step takes a millionth of
its real time; no workload but CoreDNS and the DaemonSets unless --workload), a real
redis-server, the real controller, and the agents emulated by agent farms
(kubeupgrade.sandbox.agent_farm: every node's own queue on the real broker, the real phase
wrapper and host steps, the simulated commands run in-process), then one hop 1.30 -> 1.31 at
`max_unavailable` = --limit (10% of the workers by default). Prints: nodes, makespan (submit to
succeeded), accept (submit to accepted), the dispatcher's tick p50/p99 and the CPU its thread
spent per tick p50/p99 and its wall time less its wait on the run queue for a core p50/p99
(its own record, see dispatcher.TICKS_KEY), the link gap p50/p99 (a phase eligible -> running), the controller's
peak memory (PSS of its process tree, sampled), Redis' peak used memory and connections, the
bytes Redis sent to its clients during the campaign (what every agent's reads cost the network), idle
slot-seconds by cause (bench.campaign_scale.idle_slots), the machine's load, each
process's CPU-seconds and every stage transition (bench.stages); with --links, where each chain
link's time goes (bench.links) and how many tasks of each name the controller received, and how
many times (bench.event_log.tasks_by_name). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
import yaml

from bench import links
from bench.campaign_scale import analyse
from bench.event_log import TaskEventLog, tasks_by_name
from bench.stages import stage_transitions
from kubeupgrade.api import submit
from kubeupgrade.cli.engine import POOL_NICE
from kubeupgrade.sandbox import invariants
from kubeupgrade.sandbox.manager import Sandbox
from kubeupgrade.sandbox.processes import process_tree
from kubeupgrade.sandbox.stack import Stack
from kubeupgrade.security.signing import KEY_ENV
from kubeupgrade.workflow.dispatcher import (
    TICK_CPU_KEY,
    TICK_QUEUED_KEY,
    TICK_REPORT_SECONDS,
    TICKS_KEY,
)


def _tree_memory_mib(root: int) -> dict[int, float]:
    """The proportional set size of each process of `root`'s tree: pages its pool processes
    share with their parent (copy-on-write after the fork) count once in the sum, not once per
    process as RSS would."""
    sizes = {}
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    sizes[pid] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return sizes


def _tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root`'s process tree so far (its waited-for children included)."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class Sampler:
    """Peaks of the controller's memory (PSS, every 2 s) and of Redis' memory and connections
    (every half second)."""

    def __init__(self, controller_pid: int, client: redis.Redis) -> None:
        self.controller_pid = controller_pid
        self.client = client
        # the whole tree, and apart: its main process and its largest pool process (a pool
        # process keeps the memory of the biggest task it ran, e.g. preflight's listings)
        self.peaks = {"controller_mib": 0.0, "controller_main_mib": 0.0, "controller_pool_mib": 0.0,
                      "redis_mib": 0.0, "connections": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        # The controller's PSS every 2 s only: reading it walks the page tables of its 17
        # processes (~28 ms of CPU at 1,000 nodes), which the campaign measured would pay.
        samples = 0
        while not self._stop.wait(0.5):
            info = self.client.info()
            now = {"redis_mib": info["used_memory"] / 2**20, "connections": info["connected_clients"]}
            if samples % 4 == 0:
                sizes = _tree_memory_mib(self.controller_pid)
                pool = [size for pid, size in sizes.items() if pid != self.controller_pid]
                now |= {"controller_mib": sum(sizes.values()),
                        "controller_main_mib": sizes.get(self.controller_pid, 0.0),
                        "controller_pool_mib": max(pool, default=0.0)}
            samples += 1
            self.peaks = {key: max(value, now.get(key, value)) for key, value in self.peaks.items()}


def progress(line: str) -> None:
    """On stderr: stdout carries only the result (a table, or JSON with -o json)."""
    print(line, file=sys.stderr, flush=True)


def machine_speed() -> float:
    """Milliseconds of CPU for a fixed piece of pure Python (JSON round trips), the median of five:
    this machine's speed now. A like workload took 0.45-0.74 s from one minute to the next on one
    machine of this kind, so a makespan means little without it."""
    doc = {"items": [{"name": f"node-{i}", "ready": i % 2 == 0, "n": i} for i in range(2000)]}
    times = []
    for _ in range(5):
        began = time.process_time()
        for _ in range(10):
            json.loads(json.dumps(doc))
        times.append(time.process_time() - began)
    return statistics.median(times) * 1000


# A farm is one Celery worker consuming every queue it serves, and kombu's Redis consumer names
# every one of them in the blocking pop it sends again after each message: a farm's cost per
# message grows with the queues it serves. That is the harness's cost (an agent serves one
# queue), so the default keeps a farm at about 250 queues. Measured on 2 cores (README,
# Benchmarks): 1,000 nodes took 71.4-71.5 s with 2 farms, 64.3-66.8 s with 4, 61.1-68.4 s with 8
# and 70.0 s with 16; 5,000 nodes 353.5 s with 2 farms, 303.0 s with 8 and 301.6 s with 16.
NODES_PER_FARM = 250
MOST_FARMS = 8


def default_farms(nodes: int) -> int:
    return max(1, min(MOST_FARMS, -(-nodes // NODES_PER_FARM)))


@contextlib.contextmanager
def on_cores(cores: set[int] | None) -> Iterator[None]:
    """Processes started within run on `cores` (a child inherits its parent thread's CPU
    affinity); None leaves the affinity alone."""
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def lower_priority(roots: list[int], nice: int) -> None:
    """Every thread of `roots` and of their descendants runs at least `nice` (raising one's own
    processes' niceness needs no privilege). Linux keeps niceness per thread and a new thread
    takes its creator's, so this is done once every thread that creates others exists."""
    for root in filter(None, roots):  # 0: a process not running (its pid unknown)
        for pid in process_tree(root):
            try:
                threads = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
            except OSError:
                continue  # ended meanwhile
            for tid in threads:
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, tid, max(nice, os.getpriority(os.PRIO_PROCESS, tid)))


def split_cores(split: bool) -> tuple[set[int] | None, set[int] | None]:
    """(the engine's cores, the simulated cluster's): with --split-cores, the controller and
    redis-server get the first core and the API server, the agent farms (every simulated host
    command) and this process the others, as in a real cluster, where hosts run on their own
    CPUs and the controller's machine serves only it; otherwise both None (every process on
    every core)."""
    if not split:
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--split-cores: needs at least 2 cores")
    return {cores[0]}, set(cores[1:])


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    workers = args.nodes - 3
    args.farms = args.farms or default_farms(args.nodes)
    limit = args.limit or max(1, workers // 10)
    engine, hosts = split_cores(args.split_cores)
    if hosts is not None:
        # This process and what it starts but the engine: the API server, the farms, its sampler
        # and the task events it keeps.
        os.sched_setaffinity(0, hosts)
    started = time.monotonic()
    box, _ = Sandbox.up(workdir / "sandbox", control_planes=3, workers=workers, version="1.30.4",
                        os_family="apt", time_scale=1e-6, workload=args.workload)
    os.environ[KEY_ENV] = str(box.signing_key)
    os.environ.update(box.message_identity("operator").env())
    stack = Stack(box)
    names = [node["name"] for node in box.nodes]
    try:
        with on_cores(engine):
            stack.start_redis(appendonly=False)
        share = -(-len(names) // args.farms)
        for index in range(args.farms):
            stack.start_farm(names[index * share:(index + 1) * share], name=f"farm-{index}",
                             concurrency=args.concurrency)
        with on_cores(engine):
            controller = stack.start_controller(concurrency=args.controller_concurrency,
                                                pool_nice=args.pool_nice)
        # The controller too (by its leader key): accept is timed from a running dispatcher.
        stack.wait_for_workers([f"agent@{name}" for name in names] + [f"controller@{socket.gethostname()}"],
                               timeout=600)
        progress(f"{len(names)} nodes up in {time.monotonic() - started:.0f} s")
        if args.cluster_nice:
            farms = [process.pid for name, process in stack.processes.items() if name.startswith("farm-")]
            lower_priority([box.api_pid() or 0, *farms], args.cluster_nice)
        campaign = workdir / "campaign.yaml"
        campaign.write_text(yaml.safe_dump({
            "cluster": "sandbox", "target": "1.31",
            "policies": {"max_unavailable": limit, "drain": {"delete_emptydir_data": True, "timeout": 600},
                         "retries": {"attempts": 3, "backoff_seconds": 1},
                         "agent_timeout": 600, "ready_timeout": 600}}))
        client = redis.Redis.from_url(stack.broker)
        sent_before = client.info("stats")["total_net_output_bytes"]
        commands_before = _command_calls(client)
        events_kept = TaskEventLog(stack.broker_for("flower")) if args.links else contextlib.nullcontext()
        with events_kept as events, Sampler(controller.pid, client) as sampler:
            began, own_before = time.monotonic(), sum(os.times()[:2])
            handle = submit(campaign, broker=stack.broker, accept_timeout=600, key=box.signing_key)
            accept = time.monotonic() - began
            state = handle.wait(timeout=7200)
            makespan = time.monotonic() - began
            own_cpu = sum(os.times()[:2]) - own_before
        redis_sent = client.info("stats")["total_net_output_bytes"] - sent_before
        # What the campaign leaves in Redis besides its record: task results (kept result_expires)
        results = list(client.scan_iter("celery-task-meta-*", count=1000))
        redis_left = client.info("memory")["used_memory"] / 2**20
        kept = kept_by_kind(client, handle.id, names)
        commands = _command_calls(client)
        redis_commands = {name: calls - commands_before.get(name, 0) for name, calls in commands.items()
                          if calls > commands_before.get(name, 0)}
        if state != "succeeded":
            raise SystemExit(f"campaign {handle.id} {state}: {handle.status().get('error')}")
        problems = invariants.check_max_unavailable(box, limit)
        if problems:
            raise SystemExit(f"invariant broken: {problems[:3]}")
        doc = handle.status()
        if args.record:
            Path(args.record).write_text(json.dumps(doc))
        pids = {name: process.pid for name, process in stack.processes.items()}
        pids["apiserver"] = box.api_pid() or 0
        cpu = {name: _tree_cpu_seconds(pid) for name, pid in sorted(pids.items()) if pid}
        cpu["bench"] = own_cpu  # this process during the campaign: its sampler and the wait
        if not client.exists(TICKS_KEY):  # a campaign quicker than the dispatcher's first report
            time.sleep(TICK_REPORT_SECONDS + 1.5)
        ticks = [int(t) / 1e6 for t in client.lrange(TICKS_KEY, 0, -1)]
        tick_cpu = [int(t) / 1e6 for t in client.lrange(TICK_CPU_KEY, 0, -1)] or [0.0]
        queued = [int(t) / 1e6 for t in client.lrange(TICK_QUEUED_KEY, 0, -1)]
        # Each tick's wall time less its wait on the run queue: what is left when the machine
        # has a core free (CPU, Redis, the interpreter lock); none where Linux gives no schedstat.
        off_queue = [t - q for t, q in zip(ticks, queued)] if len(queued) == len(ticks) and ticks else []
        result = analyse(doc, limit)
        link_rows = links.summary(links.link_times(doc, events.events)) if events is not None else []
        transitions = [{"hop": t.hop, "between": t.between, "sent": t.to_sent, "started": t.to_started}
                       for t in stage_transitions(doc)]
        return {"nodes": len(names), "farms": args.farms, "limit": limit, "makespan": makespan, "accept": accept,
                "tick_p50": statistics.median(ticks), "tick_p99": links.percentile(ticks, 0.99), "ticks": len(ticks),
                "tick_cpu_p50": statistics.median(tick_cpu), "tick_cpu_p99": links.percentile(tick_cpu, 0.99),
                "tick_off_queue_p50": statistics.median(off_queue) if off_queue else None,
                "tick_off_queue_p99": links.percentile(off_queue, 0.99) if off_queue else None,
                "gap_p50": result["overhead_median"], "gap_p99": result["overhead_p99"],
                **sampler.peaks, "redis_sent_mib": redis_sent / 2**20, "results_left": len(results),
                "redis_left_mib": redis_left, "redis_kept_mib": kept, "idle_not_started": result["not started"],
                "idle_preparation": result["preparation"], "idle_tail": result["tail"],
                "transitions": transitions, "links": link_rows, "load": os.getloadavg()[0], "cpu_seconds": cpu,
                "cluster_nice": args.cluster_nice,
                "pool_nice": POOL_NICE if args.pool_nice is None else args.pool_nice,
                "redis_commands": dict(sorted(redis_commands.items(), key=lambda item: -item[1])),
                "controller_tasks": tasks_by_name(events.events, "controller@") if events is not None else {}}
    finally:
        stack.stop_all()
        box.down()


def kept_by_kind(client: redis.Redis, campaign_id: str, nodes: list[str]) -> dict[str, float]:
    """MiB of the keys left in Redis, by kind: each key's name with the campaign's id and any
    node's name taken out (`MEMORY USAGE`, which counts a key's own allocations)."""
    named = set(nodes)
    kinds: dict[str, float] = {}
    for raw in client.scan_iter(count=1000):
        parts = re.split(r"([:.@/])", raw.decode("utf-8", "replace"))
        kind = "".join("<id>" if part == campaign_id else "<node>" if part in named else part for part in parts)
        kinds[kind] = kinds.get(kind, 0.0) + (client.memory_usage(raw) or 0) / 2**20
    return dict(sorted(kinds.items(), key=lambda item: -item[1]))


def _command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls per Redis command so far (`INFO commandstats`), to see what a change saved."""
    return {name.removeprefix("cmdstat_"): int(stats["calls"])
            for name, stats in client.info("commandstats").items()}


def add_under_option(parser: argparse.ArgumentParser) -> None:
    """--under: where the sandbox directory is made. The simulated hosts' files (state, logs,
    host locks) live in memory by default: on this disk (ext4 with `discard`) their writes and
    renames were a sixth of the farms' samples at 1,000 nodes, a cost of the simulator that a
    real host pays once, not a thousand times."""
    parser.add_argument("--under", default="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
                        help="where the sandbox directory is made [default: /dev/shm if writable]")


def _off_queue(r: dict[str, Any]) -> str:
    """The tick's wall time less its wait for a core, p50 / p99, or a dash where unknown."""
    if r["tick_off_queue_p50"] is None:
        return "–"
    return f"{r['tick_off_queue_p50'] * 1000:.1f} / {r['tick_off_queue_p99'] * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=0, help="max_unavailable [default: 10%% of the workers]")
    parser.add_argument("--farms", type=int, default=0,
                        help="agent farm processes [default: one per 250 nodes, at most 8]")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per farm")
    # The controller's own default (`kubeupgrade controller --concurrency`). 16 was this bench's
    # choice before: at 1,000 nodes on 2 cores it finished no sooner (202-206 s against 189 s
    # at 8) and its pool cost far more memory (PSS 589-693 MiB against 376).
    parser.add_argument("--controller-concurrency", type=int, default=8)
    parser.add_argument("--workload", action="store_true",
                        help="the sandbox's default workload: its budgets let one `web` pod go at a "
                             "time, so drains wait for each other (the budget's pace, not the engine's)")
    add_under_option(parser)
    parser.add_argument("--record", metavar="FILE", help="also write the campaign's record (JSON) here")
    parser.add_argument("--links", action="store_true",
                        help="also print where each chain link's time goes (bench/links.py) and the "
                             "controller's tasks by name (the events are kept by this process, whose CPU "
                             "competes with what is measured)")
    parser.add_argument("--split-cores", action="store_true",
                        help="the controller and redis-server on the first core, the simulated "
                             "cluster (API server, agent farms) and this process on the others")
    parser.add_argument("--cluster-nice", type=int, default=0, metavar="N",
                        help="run the simulated cluster (API server, agent farms) at niceness N once "
                             "every agent is up: the engine (controller, redis-server) then has both "
                             "cores when it wants them, as on a machine of its own [default: 0, all equal]")
    parser.add_argument("--pool-nice", type=int, choices=range(20), default=None, metavar="N",
                        help="the controller's --pool-nice: its pool processes this much nicer than "
                             f"its dispatcher [default: the controller's, {POOL_NICE}]")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args()
    if args.nodes < 4:
        parser.error("--nodes: at least 4 (3 control planes and a worker)")
    speed_before = machine_speed()
    with tempfile.TemporaryDirectory(dir=args.under) as tmp:
        r = run(args, Path(tmp))
    r["machine_ms"] = [round(speed_before, 1), round(machine_speed(), 1)]  # before and after
    if args.output == "json":
        print(json.dumps(r, indent=2))
        return 0
    print("| nodes | limit | makespan | accept | tick p50 | tick p99 | its CPU p50 / p99 | off the run queue p50 / p99 "
          "| link gap p50 | p99 | controller PSS (main / largest pool process) "
          "| Redis used | Redis sent | connections | idle slot-s: not started | preparation | tail | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {r['nodes']:,} | {r['limit']} | {r['makespan']:.1f} s | {r['accept']:.2f} s "
          f"| {r['tick_p50'] * 1000:.1f} ms | {r['tick_p99'] * 1000:.0f} ms "
          f"| {r['tick_cpu_p50'] * 1000:.1f} / {r['tick_cpu_p99'] * 1000:.0f} ms "
          f"| {_off_queue(r)} | {r['gap_p50'] * 1000:.0f} ms "
          f"| {r['gap_p99'] * 1000:.0f} ms | {r['controller_mib']:.0f} MiB "
          f"({r['controller_main_mib']:.0f} / {r['controller_pool_mib']:.0f}) | {r['redis_mib']:.1f} MiB "
          f"| {r['redis_sent_mib']:,.0f} MiB | {r['connections']:.0f} | {r['idle_not_started']:.0f} | {r['idle_preparation']:.0f} "
          f"| {r['idle_tail']:.0f} | {r['load']:.1f} |")
    print("\nStage transitions, from a stage's last phase ending to the next one's first phase sent / "
          "begun: " + "; ".join(f"{t['between']} {t['sent'] * 1000:.0f} / {t['started'] * 1000:.0f} ms"
                                for t in r["transitions"]))
    if r["links"]:
        print("\nFrom a link's predecessor ending to it begun (bench/links.py), milliseconds, median / p90:")
        print(links.table(r["links"]))
        print("\nThe controller's tasks (tasks / deliveries; a look sent through the broker delivers a "
              "task again): " + ", ".join(f"{name.rsplit('.', 1)[-1]} {row['tasks']:,} / {row['deliveries']:,}"
                                          for name, row in r["controller_tasks"].items()))
    print(f"\nMachine speed (bench.scale.machine_speed, before and after): {r['machine_ms'][0]:.0f} and "
          f"{r['machine_ms'][1]:.0f} ms")
    print(f"Left in Redis after the campaign: {r['redis_left_mib']:.1f} MiB used, {r['results_left']} task results; "
          "by kind (MiB): " + ", ".join(f"{kind} {mib:.1f}" for kind, mib in list(r["redis_kept_mib"].items())[:12]))
    if r["cluster_nice"]:
        print(f"The simulated cluster (API server, agent farms) ran at niceness {r['cluster_nice']}.")
    if r["pool_nice"]:
        print(f"The controller's pool processes ran {r['pool_nice']} nicer than its dispatcher (--pool-nice).")
    print("\nCPU seconds: " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in r["cpu_seconds"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
