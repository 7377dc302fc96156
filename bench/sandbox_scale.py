"""Benchmark: bring sandboxes of 10, 100 and 1,000 nodes up and down; API server memory.

Run with `make bench` (or `python -m bench.sandbox_scale [--sizes 10,100,1000] [--repeat 3]`).
Prints a table of medians. Target: 1,000 nodes up in under 30 s, API server under 1 GiB.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from kubernetes import client, config

from kubeupgrade.sandbox.manager import Sandbox


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(nodes: int, workdir: Path) -> dict[str, float]:
    control_planes = 3 if nodes >= 10 else 1
    started = time.perf_counter()
    box, _ = Sandbox.up(workdir / f"sb-{nodes}", control_planes=control_planes,
                        workers=nodes - control_planes, os_family="mixed")
    up_seconds = time.perf_counter() - started
    api = config.new_client_from_config(config_file=str(box.kubeconfig))
    started = time.perf_counter()
    listed = client.CoreV1Api(api).list_node(_preload_content=False)
    listed.read()
    list_seconds = time.perf_counter() - started
    started = time.perf_counter()
    pods = client.CoreV1Api(api).list_pod_for_all_namespaces(_preload_content=False).read()
    pods_seconds = time.perf_counter() - started
    api.close()
    memory = rss_mib(box.api_pid())
    started = time.perf_counter()
    box.down(purge=True)
    down_seconds = time.perf_counter() - started
    return {"up": up_seconds, "list_nodes": list_seconds, "list_pods": pods_seconds,
            "pod_bytes": len(pods), "rss": memory, "down": down_seconds}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"sandbox scale benchmark, median of {args.repeat} runs")
    print(f"{'nodes':>6} {'up s':>8} {'down s':>8} {'list nodes s':>13} {'list pods s':>12} {'API RSS MiB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            runs = [measure(size, Path(tmp)) for _ in range(args.repeat)]
            med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            print(f"{size:>6} {med['up']:>8.2f} {med['down']:>8.2f} {med['list_nodes']:>13.3f} "
                  f"{med['list_pods']:>12.3f} {med['rss']:>12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
