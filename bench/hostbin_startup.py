"""What one simulated host command costs: every one is a new Python process, so a sandbox
campaign's CPU goes mostly here (README, Benchmarks). Median wall time and CPU time of N runs
of the commands an upgrade runs, on fresh sandboxes, beside the interpreter alone: the everyday
probes, the package managers' reads of the repository, and a worker's `kubeadm upgrade node`
(after the control plane's `apply`). Wall time includes the simulated durations (the sandbox's
time scale); the CPU column is what a command costs the machine.

    python -m bench.hostbin_startup [--runs 15]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_ms(argv: list[str], runs: int) -> tuple[float, float]:
    """(wall, CPU) medians in milliseconds; a command that fails stops the benchmark."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()[-300:]}")
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def _run(argv: list[str]) -> None:
    median_ms(argv, 1)


def everyday(directory: Path) -> list[tuple[str, list[str]]]:
    from kubeupgrade.sandbox.manager import Sandbox

    # Linux control plane, Windows worker (`--os windows`)
    box, _ = Sandbox.up(directory / "windows", control_planes=1, workers=1, os_family="windows")
    bin_dir = box.node_bin("cp-1")
    windows = box.node_root("worker-1") / "k"
    return [
        ("python -c pass (site)", [sys.executable, "-c", "pass"]),
        ("python -S -c pass", [sys.executable, "-S", "-c", "pass"]),
        ("systemctl is-active kubelet", [str(bin_dir / "systemctl"), "is-active", "kubelet"]),
        ("dpkg-query -W kubelet", [str(bin_dir / "dpkg-query"), "-W", "-f=${Version}", "kubelet"]),
        ("apt-mark showhold", [str(bin_dir / "apt-mark"), "showhold"]),
        ("kubeadm version -o short", [str(bin_dir / "kubeadm"), "version", "-o", "short"]),
        ("sc.exe query kubelet (Windows)", [str(box.node_bin("worker-1") / "sc.exe"), "query", "kubelet"]),
        ("kubelet.exe --version (Windows)", [str(windows / "kubelet.exe"), "--version"]),
    ]


def upgrade(directory: Path) -> list[tuple[str, list[str]]]:
    """The heavier commands, on a 1.30 cluster whose control plane is upgraded to 1.31 first:
    each is run again and again with the same effect (a re-run converges)."""
    from kubeupgrade.sandbox import hosts, releases
    from kubeupgrade.sandbox.manager import Sandbox

    box, _ = Sandbox.up(directory / "mixed", control_planes=1, workers=3, os_family="mixed",
                        version="1.30.4", workload=False)
    target = max(releases.releases(releases.minors()[3]))  # the newest 1.31
    deb, rpm = releases.package_version(target, "apt"), releases.package_version(target, "dnf")
    workers = [n["name"] for n in box.nodes if n["role"] == "worker"]
    apt_worker = next(n for n in workers if (box.node_root(n) / hosts.APT_SOURCE).exists())
    dnf_worker = next(n for n in workers if (box.node_root(n) / hosts.YUM_REPO).exists())
    cp, apt, dnf = (str(box.node_bin(n)) for n in ("cp-1", apt_worker, dnf_worker))
    for node in ("cp-1", apt_worker):
        (box.node_root(node) / hosts.APT_SOURCE).write_text(hosts.apt_source_line(target.minor_version.plain))
    (box.node_root(dnf_worker) / hosts.YUM_REPO).write_text(hosts.yum_repo_text(target.minor_version.plain))
    for bin_dir in (cp, apt):
        _run([f"{bin_dir}/apt-get", "update"])
        _run([f"{bin_dir}/apt-mark", "unhold", "kubeadm"])
        _run([f"{bin_dir}/apt-get", "install", "-y", f"kubeadm={deb}"])
    _run([f"{cp}/kubeadm", "upgrade", "apply", target.tag, "--yes"])
    return [
        ("apt-get update", [f"{apt}/apt-get", "update", "-q"]),
        ("apt-cache madison kubeadm kubelet kubectl", [f"{apt}/apt-cache", "madison", "kubeadm", "kubelet", "kubectl"]),
        ("apt-get install -y kubeadm=… (installed)", [f"{apt}/apt-get", "install", "-y", "-q", f"kubeadm={deb}"]),
        ("dnf list --showduplicates kubeadm kubelet kubectl",
         [f"{dnf}/dnf", "list", "--showduplicates", "kubeadm", "kubelet", "kubectl", "--disableexcludes=kubernetes"]),
        ("dnf install -y --downloadonly kubeadm-…",
         [f"{dnf}/dnf", "install", "-y", "--downloadonly", f"kubeadm-{rpm}", "--disableexcludes=kubernetes"]),
        ("kubeadm upgrade node (worker)", [f"{apt}/kubeadm", "upgrade", "node"]),
    ]


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--runs", type=int, default=15)
    args = options.parse_args(argv)
    from kubeupgrade.sandbox.manager import Sandbox

    directory = Path(tempfile.mkdtemp(prefix="kubeupgrade-bench-hostbin-"))
    try:
        cases = everyday(directory) + upgrade(directory)
        print(f"| command | wall, median of {args.runs} | CPU, median |")
        print("|---|---|---|")
        for label, command in cases:
            wall, cpu = median_ms(command, args.runs)
            print(f"| {label} | {wall:.1f} ms | {cpu:.1f} ms |", flush=True)
    finally:
        for name in ("windows", "mixed"):
            if (directory / name).exists():
                Sandbox(directory / name).down()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
