"""`make demo`: a whole upgrade campaign on a sandbox cluster, with Flower, in the terminal.

Starts redis-server (unless $KUBEUPGRADE_BROKER answers), a sandbox of 3 control planes and
5 workers (mixed apt/dnf, every third worker Windows) at v1.30.4, one agent per node, the controller and Flower; submits a
1.30 -> 1.31 campaign; shows live progress; ends with the verification table; stops everything
it started unless run with --keep.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
import yaml
from rich.console import Console

from kubeupgrade.api import submit
from kubeupgrade.cli.status_view import follow, verification_table
from kubeupgrade.sandbox import invariants
from kubeupgrade.sandbox.manager import Sandbox
from kubeupgrade.sandbox.stack import Stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeupgrade-demo")
    parser.add_argument("--dir", default=".demo")
    parser.add_argument("--keep", action="store_true", help="leave everything running")
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--down", action="store_true", help="stop what a --keep demo left running")
    args = parser.parse_args(argv)
    # Line by line even into a pipe (`make demo | tee demo.log`): an operator watches it live.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    console = Console()
    interrupted = _catch_interrupts()
    directory = Path(args.dir).resolve()
    if args.down:
        return _down(directory, console)
    if directory.exists():
        Sandbox(directory / "sandbox").down()
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    started = time.monotonic()
    console.print("[bold]kubeupgrade demo[/]: sandbox with 3 control planes and "
                  f"{args.workers} workers (apt, dnf and, from the third, Windows), v1.30.4 -> 1.31")
    box, _ = Sandbox.up(directory / "sandbox", control_planes=3, workers=args.workers,
                        version="1.30.4", os_family="mixed", time_scale=0.01)
    stack = Stack(box)
    try:
        broker = _broker(stack, console)
        stack.start_agents()
        stack.start_controller(metrics=True)
        flower = stack.start_flower()
        stack.wait_for_workers([f"agent@{n['name']}" for n in box.nodes])
        console.print(f"API server  {box.server}   kubeconfig {box.kubeconfig}", soft_wrap=True, markup=False)
        console.print(f"Flower      {flower}   (user:password {stack.flower_auth}, read-only)", soft_wrap=True, markup=False)
        console.print(f"Broker      {broker}", soft_wrap=True, markup=False)
        console.print(f"Metrics     http://127.0.0.1:{stack.metrics_port}/metrics   "
                      f"(user:password {stack.metrics_auth})", soft_wrap=True, markup=False)
        campaign = directory / "campaign.yaml"
        campaign.write_text(yaml.safe_dump({
            "cluster": "sandbox", "target": "1.31",
            # One canary worker, then the health gate (nodes, kube-system, the canary's pods,
            # PodDisruptionBudgets) before the others; a gate after the control planes too.
            "policies": {"max_unavailable": 2, "canary": 1, "gate_timeout": "2m",
                         "drain": {"delete_emptydir_data": True, "timeout": "2m"},
                         "retries": {"attempts": 3, "backoff_seconds": 1},
                         "hooks": {"after_first_control_plane": [["kubeadm", "version", "-o", "short"]]}},
        }))
        handle = submit(campaign, broker=broker, key=box.signing_key)
        # Commands are printed on one line whatever the terminal's width, so they paste as printed.
        console.print(f"Campaign    {handle.id}  ({sys.executable} -m kubeupgrade status {handle.id} "
                      f"--broker {broker})", soft_wrap=True, markup=False)
        doc = follow(handle, console, interval=0.25, interrupted=interrupted.is_set)
        if interrupted.is_set():
            raise KeyboardInterrupt
        console.print(verification_table(doc))
        checked = invariants.report(box, max_unavailable=2, succeeded=doc["state"] == "succeeded")
        problems = [problem for _, _, found in checked for problem in found]
        console.print("Safety invariants (from the hosts' command logs and the API server):")
        for name, measured, found in checked:
            verdict = "[green]held[/]" if not found else "[bold red]BROKEN[/]: " + "; ".join(found)
            console.print(f"  {name:<42} {measured:<28} {verdict}")
        cluster = doc["entries"][0].get("@cluster", {"phases": []}) if doc.get("entries") else {"phases": []}
        gates = [p for p in cluster["phases"] if p["phase"].endswith("gate")]
        for gate in gates:
            console.print(f"Health gate {gate['phase']:<20} {gate['state']}: {gate['detail']}")
        console.print("Metrics (an excerpt of what the controller serves):")
        for line in _metrics_excerpt(stack, handle.id):
            console.print(f"  {line}", soft_wrap=True, markup=False)  # whole lines, to copy
        console.print(f"Campaign {doc['state']} in {time.monotonic() - started:.0f}s (including start-up)")
        if args.keep:
            _write_pids(stack, directory)
            console.print(f"Left running. Stop everything with: {sys.executable} -m kubeupgrade.demo "
                          f"--down --dir {directory}", soft_wrap=True, markup=False)
            return 0 if doc["state"] == "succeeded" else 1
        return 0 if doc["state"] == "succeeded" and not problems else 1
    except KeyboardInterrupt:
        console.print("interrupted; stopping what the demo started")
        args.keep = False
        return 130
    finally:
        if not args.keep:
            _ignore_interrupts()  # clean-up is bounded (stop_all's timeouts); it runs to its end
            stack.stop_all()
            box.down()


def _catch_interrupts() -> threading.Event:
    """Ctrl-C is remembered as well as raised: a KeyboardInterrupt raised while the garbage
    collector runs a finalizer (a redis connection pool's, say) is swallowed by Python, which
    would let the demo run on. The flag it leaves is checked while following the campaign, and
    such a swallowed interrupt is not printed as a traceback."""
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        interrupted.set()
        _ignore_interrupts()  # a second Ctrl-C must not cut short the stopping the first began
        raise KeyboardInterrupt

    def unraisable(report: Any) -> None:
        if not isinstance(report.exc_value, KeyboardInterrupt):
            sys.__unraisablehook__(report)

    signal.signal(signal.SIGINT, on_sigint)
    sys.unraisablehook = unraisable
    return interrupted


def _ignore_interrupts() -> None:
    """From here on SIGINT does nothing, also while the interpreter exits: Python puts the
    default action back for handlers it installed, not for an ignored signal."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _metrics_excerpt(stack: Stack, campaign: str) -> list[str]:
    """The campaign's state, gates and drain durations, as Prometheus would scrape them."""
    from base64 import b64encode

    request = urllib.request.Request(f"http://127.0.0.1:{stack.metrics_port}/metrics", headers={
        "Authorization": "Basic " + b64encode(stack.metrics_auth.encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
    except OSError as error:
        return [f"(metrics unreachable: {error})"]
    wanted = (f'kubeupgrade_campaign_state{{campaign="{campaign}",cluster="sandbox",state="succeeded"}}',
              "kubeupgrade_gate_green{", 'kubeupgrade_phase_duration_seconds_count{phase="drain"}',
              'kubeupgrade_phase_duration_seconds_sum{phase="drain"}')
    return [line for line in text.splitlines() if line.startswith(wanted)]


def _broker(stack: Stack, console: Console) -> str:
    url = os.environ.get("KUBEUPGRADE_BROKER")
    if url:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
            console.print(f"Using the redis-server at {url}")
            stack.redis_port = 0
            return url
        except redis.RedisError:
            console.print(f"No redis-server answers at {url}; starting one")
    stack.start_redis()
    return stack.broker


def _down(directory: Path, console: Console) -> int:
    """Stop every process a --keep demo started (from its pids.txt), then the sandbox."""
    pids = directory / "pids.txt"
    stopped = []
    for line in pids.read_text().splitlines() if pids.exists() else []:
        name, _, pid = line.partition(" ")
        try:
            os.killpg(int(pid), signal.SIGTERM)
            stopped.append(name)
        except (ProcessLookupError, PermissionError, ValueError):
            continue
    stopped += [f"API server {pid}" for pid in Sandbox(directory / "sandbox").down()] \
        if (directory / "sandbox").exists() else []
    pids.unlink(missing_ok=True)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def _write_pids(stack: Stack, directory: Path) -> None:
    (directory / "pids.txt").write_text(
        "\n".join(f"{name} {process.pid}" for name, process in stack.processes.items()) + "\n")


def _exit(code: int) -> None:
    """Leave with `code` and nothing after it. Once main() has stopped what it started, the
    interpreter's own shutdown (library threads, finalizers, atexit) has nothing left to do for
    the demo, yet once in CI a Ctrl-C'd demo that had returned 130 ended as if killed by SIGINT
    (-2) during that shutdown; the exit status is what scripts and the tests read."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    try:
        _exit(main())
    except KeyboardInterrupt:  # before the demo's own clean-up took over: nothing to stop yet
        _exit(130)
