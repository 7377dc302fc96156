"""Broker-restart sweep: restart redis-server at many seeded points of the worker stage.

    python -m bench.broker_sweep [--placements 20] [--seed 1]      (also: make soak-broker)

Each placement is a fresh sandbox (1 control plane + 3 workers, mixed apt/dnf, limit 1) with
its own redis-server, agents and controller, and a 1.30 -> 1.31 campaign. When the chosen
worker's chosen phase (drain, install-kubelet, restart-kubelet, wait-ready or uncordon) starts
running, redis-server is stopped (SIGTERM, AOF on) after a seeded delay and started again.
The campaign must converge (retries allowed) and every safety invariant must hold. Prints one
row per placement and the number that broke a promise.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubeupgrade.api import submit
from kubeupgrade.sandbox import invariants
from kubeupgrade.sandbox.manager import Sandbox
from kubeupgrade.sandbox.stack import Stack

PHASES = ("drain", "install-kubelet", "restart-kubelet", "wait-ready", "uncordon")
WORKERS = ("worker-1", "worker-2", "worker-3")
LIMIT = 1


@dataclass(frozen=True)
class Placement:
    node: str
    phase: str
    delay: float  # seconds after the phase is seen running
    outage: float  # seconds redis-server stays down


def placements(count: int, seed: int) -> list[Placement]:
    """Every phase at least once per five placements, nodes and delays drawn from the seed."""
    rng = random.Random(seed)
    return [Placement(rng.choice(WORKERS), PHASES[i % len(PHASES)],
                      rng.choice([0.0, 0.0, round(rng.uniform(0.0, 0.3), 2)]),
                      round(rng.uniform(0.5, 2.5), 1)) for i in range(count)]


def campaign_file(path: Path) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"cluster": "sandbox", "target": "1.31", "policies": {
        "max_unavailable": LIMIT, "drain": {"delete_emptydir_data": True, "timeout": 30},
        "retries": {"attempts": 2, "backoff_seconds": 0.2}, "ready_timeout": 30,
        "agent_timeout": 30}}))
    return path


def phase_state(handle, node: str, phase: str) -> str:  # type: ignore[no-untyped-def]
    try:
        entry = handle.status()["entries"][0].get(node) or {"phases": []}
    except Exception:  # noqa: BLE001 - the broker may be away while we look
        return ""
    return next((p["state"] for p in entry["phases"] if p["phase"] == phase), "")


def run_placement(workdir: Path, placement: Placement, seed: int) -> tuple[str, int, list[str], bool]:
    """(campaign state, retries, invariant violations, whether the restart happened)."""
    box, _ = Sandbox.up(workdir / "sandbox", control_planes=1, workers=3, version="1.30.4",
                        os_family="mixed", time_scale=0.005, seed=seed)
    stack = Stack(box)  # the deployed visibility timeout: lost tasks are the dispatcher's to find
    try:
        stack.start_redis()
        stack.start_agents()
        stack.start_controller()
        stack.wait_for_workers([f"agent@{n['name']}" for n in box.nodes])
        handle = submit(campaign_file(workdir / "c.yaml"), broker=stack.broker, accept_timeout=60,
                        key=box.signing_key)
        restarted = False
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = phase_state(handle, placement.node, placement.phase)
            if state in ("running", "succeeded", "failed"):
                if state == "running":
                    time.sleep(placement.delay)
                    stack.stop_redis()
                    time.sleep(placement.outage)
                    stack.start_redis()
                    restarted = True
                break
            time.sleep(0.02)
        state = handle.wait(timeout=300)
        retries = 0
        while state != "succeeded" and retries < 2:
            retries += 1
            handle.retry()
            state = handle.wait(timeout=300)
        problems = invariants.check_all(box, max_unavailable=LIMIT, succeeded=state == "succeeded")
        if state != "succeeded":
            problems.append(f"campaign {state}: {(handle.status().get('error') or {}).get('message')}")
        if state == "succeeded":
            problems += [f"not at v1.31.14: {r.name} {r.version}" for r in box.node_rows()
                         if r.version != "v1.31.14"]
        return state, retries, problems, restarted
    finally:
        stack.stop_all()
        box.down()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--placements", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    broken = missed = 0
    print(f"{'#':>2} {'node':<9} {'phase':<16} {'delay':>5} {'down':>4} {'result':<10} {'retries':>7}  problems")
    for index, placement in enumerate(placements(args.placements, args.seed), start=1):
        with tempfile.TemporaryDirectory() as tmp:
            state, retries, problems, restarted = run_placement(Path(tmp), placement, args.seed + index)
        missed += not restarted
        broken += bool(problems) or state != "succeeded"
        shown = "; ".join(problems) if problems else ("-" if restarted else "(phase passed before the restart)")
        print(f"{index:>2} {placement.node:<9} {placement.phase:<16} {placement.delay:>5.2f} "
              f"{placement.outage:>4.1f} {state:<10} {retries:>7}  {shown}", flush=True)
    print(f"\n{args.placements} placements ({missed} missed their phase): {broken} broke a promise")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
