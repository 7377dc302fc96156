"""Benchmark: how long a rehearsal takes to mirror a large cluster (read it, build the mirror,
see every mirrored pod running), before any campaign runs on the mirror.

Run with `make bench-mirror` (or `python -m bench.mirror_scale [--nodes 1000] [--pods 30000]
[--repeat 3]`). The "live" cluster is itself a sandbox, built once with a synthetic workload:
100 namespaces of Deployments (30 replicas each, a PodDisruptionBudget each), one bare pod per
namespace, spread over the workers. It is read with the rehearsal's read-only ServiceAccount,
as a real one would be. Prints the median of each step. Target: under 60 s in all at 1,000
nodes and 30,000 pods.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.snapshot import mirror_objects, take_snapshot
from kubeupgrade.sandbox.manager import Sandbox

NAMESPACES = 100
REPLICAS = 30
REHEARSE_RBAC = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes" / "rehearse-rbac.yaml"


def workload(workers: list[str], pods: int) -> dict[str, list[dict[str, Any]]]:
    """Deployments of REPLICAS pods across NAMESPACES namespaces, each with a budget, pods
    spread round-robin over `workers`, and one bare pod per namespace."""
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in ("namespaces", "deployments", "replicasets",
                                                            "poddisruptionbudgets", "pods")}
    deployments = max(1, (pods - NAMESPACES) // REPLICAS)
    placed = 0
    for index in range(deployments):
        namespace, name = f"team-{index % NAMESPACES:03d}", f"svc-{index:05d}"
        if index < NAMESPACES:
            out["namespaces"].append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            out["pods"].append(_pod(namespace, "debug", workers[index % len(workers)], None))
        labels = {"app": name}
        template = {"metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": f"registry.example/{name}:1.0"}]}}
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
                      "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels}, "template": template}}
        rs_name = f"{name}-7d9f"
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": rs_name, "namespace": namespace, "uid": str(uuid.uuid4()), "labels": labels,
                           "ownerReferences": [_owner(deployment)]},
              "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels}, "template": template}}
        out["deployments"].append(deployment)
        out["replicasets"].append(rs)
        out["poddisruptionbudgets"].append({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}})
        for replica in range(REPLICAS):
            pod = _pod(namespace, f"{rs_name}-{replica:05x}", workers[placed % len(workers)], rs)
            pod["metadata"]["labels"] = dict(labels)
            pod["spec"]["containers"] = template["spec"]["containers"]
            out["pods"].append(pod)
            placed += 1
    return out


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _pod(namespace: str, name: str, node: str, owner: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner is not None:
        meta["ownerReferences"] = [_owner(owner)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "sh", "image": "busybox:1.36"}]}}


def mirror_once(live: Sandbox, workdir: Path) -> tuple[dict[str, float], dict[str, int]]:
    steps: dict[str, float] = {}
    started = time.perf_counter()
    api = KubeApi(str(live.service_account(REHEARSE_RBAC, "kubeupgrade-rehearse")))
    try:
        snapshot = take_snapshot(api)
    finally:
        api.close()
    steps["read"] = time.perf_counter() - started
    mark = time.perf_counter()
    objects = mirror_objects(snapshot)
    box, _ = Sandbox.up(workdir / f"mirror-{uuid.uuid4().hex[:6]}", version=snapshot.version, workload=False,
                        node_specs=[dataclasses.asdict(n) for n in snapshot.nodes], objects=objects)
    steps["build"] = time.perf_counter() - mark
    mark = time.perf_counter()
    try:
        wanted = len(objects.get("pods", []))
        while True:
            pods = box.api_get("/api/v1/pods")["items"]
            running = sum(1 for p in pods if p.get("status", {}).get("phase") == "Running")
            if running >= wanted:
                break
            time.sleep(0.2)
        steps["running"] = time.perf_counter() - mark
        steps["total"] = time.perf_counter() - started
    finally:
        box.down(purge=True)
    return steps, {"nodes": len(snapshot.nodes), "pods": wanted,
                   "deployments": len(objects.get("deployments", [])),
                   "budgets": len(objects.get("poddisruptionbudgets", []))}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workers = [f"worker-{i:04d}" for i in range(1, args.nodes - 2)]
        specs = [{"name": f"cp-{i}", "role": "control-plane", "os": "apt"} for i in (1, 2, 3)]
        specs += [{"name": name, "role": "worker", "os": "apt"} for name in workers]
        started = time.perf_counter()
        live, _ = Sandbox.up(Path(tmp) / "live", node_specs=specs, workload=False,
                             objects=workload(workers, args.pods))
        print(f"live cluster built in {time.perf_counter() - started:.1f}s (not measured below)")
        try:
            runs = [mirror_once(live, Path(tmp)) for _ in range(args.repeat)]
        finally:
            live.down(purge=True)
    shape = runs[0][1]
    print(f"mirror of {shape['nodes']} nodes, {shape['pods']} pods, {shape['deployments']} Deployments, "
          f"{shape['budgets']} PodDisruptionBudgets; median of {args.repeat}")
    print(f"{'step':<10} {'seconds':>8}")
    for step in ("read", "build", "running", "total"):
        print(f"{step:<10} {statistics.median(r[0][step] for r in runs):>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
