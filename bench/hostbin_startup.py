"""What one simulated host command costs: every one is a new Python process, so a sandbox
campaign's CPU goes mostly here (README, Benchmarks). Median wall time of N runs of a few
commands on a fresh one-node sandbox, beside the interpreter alone.

    python -m bench.hostbin_startup [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_ms(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--runs", type=int, default=15)
    args = options.parse_args(argv)
    from kubeupgrade.sandbox.manager import Sandbox

    directory = Path(tempfile.mkdtemp(prefix="kubeupgrade-bench-hostbin-"))
    # Linux control plane, Windows worker (`--os windows`)
    box, _ = Sandbox.up(directory / "sandbox", control_planes=1, workers=1, os_family="windows")
    try:
        bin_dir = box.node_bin("cp-1")
        windows = box.node_root("worker-1") / "k"
        cases = [
            ("python -c pass (site)", [sys.executable, "-c", "pass"]),
            ("python -S -c pass", [sys.executable, "-S", "-c", "pass"]),
            ("systemctl is-active kubelet", [str(bin_dir / "systemctl"), "is-active", "kubelet"]),
            ("dpkg-query -W kubelet", [str(bin_dir / "dpkg-query"), "-W", "-f=${Version}", "kubelet"]),
            ("apt-mark showhold", [str(bin_dir / "apt-mark"), "showhold"]),
            ("kubeadm version -o short", [str(bin_dir / "kubeadm"), "version", "-o", "short"]),
            ("sc.exe query kubelet (Windows)", [str(box.node_bin("worker-1") / "sc.exe"), "query", "kubelet"]),
            ("kubelet.exe --version (Windows)", [str(windows / "kubelet.exe"), "--version"]),
        ]
        print(f"| command | median of {args.runs} |")
        print("|---|---|")
        for label, command in cases:
            print(f"| {label} | {median_ms(command, args.runs):.1f} ms |")
    finally:
        box.down()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
