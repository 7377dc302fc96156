"""Benchmark: what cluster phases that wait cost while they wait.

    python -m bench.waits [--waiting 100] [--seconds 30] [--controller-concurrency 8] [--workload]
                          [--flower]

A sandbox of one control plane and N workers whose kubelets never come back Ready (the
sandbox's `never-ready` fault, one per worker; no workload unless --workload), a real
redis-server, the real controller and
the agents emulated by one agent farm; one hop 1.30 -> 1.31 at `max_unavailable` N, so every
worker ends up in its readiness wait at once, looking again and again through the broker
(kubeupgrade.workflow.waiting). Once every wait has settled to its steady pace, for
--seconds: the looks made (from the waits' kept states), the task events they sent (counted on
the broker's event channel, which is what Flower reads), and the CPU the controller, the API
server and Redis spent, per look and per second. This is the price of a campaign at
`max_unavailable` N while its drains and readiness waits last, which at thousands of nodes is
most of the time. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
import yaml

from bench.scale import _command_calls, _tree_cpu_seconds, add_under_option, machine_speed, progress
from kubeupgrade.api import submit
from kubeupgrade.sandbox.manager import Sandbox
from kubeupgrade.sandbox.stack import Stack
from kubeupgrade.security.signing import KEY_ENV

# The settled pace: past the first looks (0.05 s doubling), a wait looks at most once a second
SETTLED_LOOKS = 6


class EventCounter:
    """Counts the task events published on the broker (every event channel of db 0, as a
    Flower attached to it would receive them), by type."""

    def __init__(self, client: redis.Redis) -> None:
        self.counts: dict[str, int] = {}
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe("*celeryev*")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            for kind in _event_types(message["data"]):
                self.counts[kind] = self.counts.get(kind, 0) + 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pubsub.close()


def _event_types(data: bytes) -> list[str]:
    """The types of the events in one message on the event channel (a worker sends its task
    events in batches, `task.multi`; the body is JSON, base64 in kombu's envelope)."""
    try:
        envelope = json.loads(data)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        events = json.loads(body)
    except (ValueError, KeyError, TypeError):
        return ["undecodable"]
    events = events if isinstance(events, list) else [events]
    return [str(event.get("type", "?")) if isinstance(event, dict) else "?" for event in events]


def _looks(client: redis.Redis, campaign_id: str) -> dict[str, int]:
    raw = client.hgetall(f"ku:c:{campaign_id}:waits:0")
    return {str(field, "utf-8"): json.loads(value)["looks"] for field, value in raw.items()}


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    box, _ = Sandbox.up(workdir / "sandbox", control_planes=1, workers=args.waiting, version="1.30.4",
                        os_family="apt", time_scale=0.01, workload=args.workload)
    os.environ[KEY_ENV] = str(box.signing_key)
    os.environ.update(box.message_identity("operator").env())
    stack = Stack(box)
    names = [node["name"] for node in box.nodes]
    workers = [node["name"] for node in box.nodes if node["role"] == "worker"]
    for worker in workers:
        box.add_fault("never-ready", node=worker)
    try:
        stack.start_redis(appendonly=False)
        stack.start_farm(names, concurrency=32)
        controller = stack.start_controller(concurrency=args.controller_concurrency)
        if args.flower:
            stack.start_flower()
        stack.wait_for_workers([f"agent@{name}" for name in names] + [f"controller@{socket.gethostname()}"],
                               timeout=600)
        campaign = workdir / "campaign.yaml"
        campaign.write_text(yaml.safe_dump({
            "cluster": "sandbox", "target": "1.31",
            "policies": {"max_unavailable": len(workers), "prepare_ahead": len(workers),
                         "drain": {"delete_emptydir_data": True, "timeout": 3600},
                         "agent_timeout": 3600, "ready_timeout": 3600}}))
        client = redis.Redis.from_url(stack.broker)
        handle = submit(campaign, broker=stack.broker, accept_timeout=600, key=box.signing_key)
        began = time.monotonic()
        while True:
            looks = _looks(client, handle.id)
            settled = sum(1 for count in looks.values() if count >= SETTLED_LOOKS)
            if settled == len(workers):
                break
            if time.monotonic() - began > 900:
                raise SystemExit(f"only {settled} of {len(workers)} waits settled after 900 s: "
                                 f"{handle.status().get('state')}")
            time.sleep(1.0)
        progress(f"{len(workers)} readiness waits settled after {time.monotonic() - began:.0f} s")
        counter = EventCounter(client)
        pids = {"controller": controller.pid, "apiserver": box.api_pid() or 0}
        if args.flower:
            pids["flower"] = stack.processes["flower"].pid
        try:
            time.sleep(1.0)  # the counter subscribed
            cpu_before = {name: _tree_cpu_seconds(pid) for name, pid in pids.items()}
            redis_before, looks_before = _redis_cpu(client), _looks(client, handle.id)
            commands_before = _command_calls(client)
            events_before, window_began = counter.snapshot(), time.monotonic()
            time.sleep(args.seconds)
            window = time.monotonic() - window_began
            events_after = counter.snapshot()
            commands = {name: calls - commands_before.get(name, 0) for name, calls in _command_calls(client).items()
                        if calls > commands_before.get(name, 0)}
            looks_after, redis_after = _looks(client, handle.id), _redis_cpu(client)
            cpu = {name: _tree_cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        finally:
            counter.close()
        cpu["redis"] = redis_after - redis_before
        # What Celery keeps of the looks until the phases end: a RETRY result per waiting task
        results = list(client.scan_iter("celery-task-meta-*", count=1000))
        result_bytes = sum(client.memory_usage(key) or 0 for key in results)
        looks = sum(looks_after[key] - looks_before.get(key, 0) for key in looks_after)
        events = {kind: count - events_before.get(kind, 0) for kind, count in events_after.items()
                  if count > events_before.get(kind, 0) and kind != "worker-heartbeat"}
        handle.abort()
        return {"waiting": len(workers), "seconds": window, "looks": looks,
                "looks_per_second": looks / window, "events_per_second": sum(events.values()) / window,
                "events": events, "redis_commands_per_look": sum(commands.values()) / max(looks, 1),
                "redis_commands": dict(sorted(commands.items(), key=lambda item: -item[1])),
                "cpu_seconds": cpu, "cpu_ms_per_look": {name: 1000 * s / max(looks, 1) for name, s in cpu.items()},
                "cores": {name: s / window for name, s in cpu.items()}, "load": os.getloadavg()[0],
                "results_kept": len(results), "result_bytes": result_bytes}
    finally:
        stack.stop_all()
        box.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=100, help="workers waiting at once")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to measure once settled")
    parser.add_argument("--controller-concurrency", type=int, default=8)
    parser.add_argument("--flower", action="store_true",
                        help="run Flower on the broker too, and measure what the looks' events cost it")
    parser.add_argument("--workload", action="store_true",
                        help="the sandbox's default workload: its budgets let one `web` pod go at a time, "
                             "so most waits are drains asking a budget again (an eviction per look)")
    add_under_option(parser)
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    args = parser.parse_args()
    if args.waiting < 1:
        parser.error("--waiting: at least 1")
    speed = machine_speed()
    with tempfile.TemporaryDirectory(dir=args.under) as tmp:
        r = run(args, Path(tmp))
    r["machine_ms"] = round(speed, 1)
    if args.output == "json":
        print(json.dumps(r, indent=2))
        return 0
    print("| waiting | looks/s | task events/s | Redis commands per look | CPU ms per look: controller "
          "| API server | Redis | cores busy: controller | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    per, cores = r["cpu_ms_per_look"], r["cores"]
    print(f"| {r['waiting']} | {r['looks_per_second']:.1f} | {r['events_per_second']:.0f} "
          f"| {r['redis_commands_per_look']:.1f} | {per['controller']:.1f} | {per['apiserver']:.1f} "
          f"| {per['redis']:.1f} | {cores['controller']:.2f} | {r['load']:.1f} |")
    print("\nEvents: " + ", ".join(f"{kind} {count}" for kind, count in sorted(r["events"].items())))
    print("Redis commands per look: " + ", ".join(f"{name} {calls / max(r['looks'], 1):.1f}"
                                                   for name, calls in r["redis_commands"].items()))
    if "flower" in cores:
        print(f"Flower: {cores['flower']:.2f} cores busy, {per['flower']:.1f} ms of CPU per look")
    print(f"Results kept while the phases wait: {r['results_kept']}, {r['result_bytes'] / 1024:.0f} KiB "
          f"({r['result_bytes'] / max(r['results_kept'], 1):.0f} bytes each)")
    print(f"Machine speed (bench.scale.machine_speed): {r['machine_ms']:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
