"""Drain a node through the eviction API, the way `kubectl drain --ignore-daemonsets` does.

Mirror pods and DaemonSet pods stay; pods outside the campaign's pod selector stay; pods with
emptyDir data are evicted only with `delete_emptydir_data`; pods with no controller are refused
(their data would be lost for good). A PodDisruptionBudget's 429 is retried until the drain
timeout, then the campaign's `on_pdb_block` policy applies: fail (naming the pod and the PDB),
wait without a deadline, or delete the pod (explicit opt-in).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kubeupgrade.errors import PermanentError
from kubeupgrade.kube.client import KubeApi, KubeNotFound, KubeUnavailable
from kubeupgrade.kube.polling import poll_delays
from kubeupgrade.model.campaign import DrainPolicy, OnPdbBlock

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


class DrainBlocked(PermanentError):
    """A PodDisruptionBudget kept refusing an eviction until the drain timeout."""


@dataclass
class DrainReport:
    evicted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    blocked_retries: int = 0


def _controller(pod: dict[str, Any]) -> dict[str, Any] | None:
    for owner in pod["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


def namespaced_name(obj: dict[str, Any]) -> str:
    """namespace/name, as kubectl and PodDisruptionBudget messages name a namespaced object."""
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"


def pods_to_evict(pods: list[dict[str, Any]], policy: DrainPolicy,
                  selected: set[str] | None) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Split the node's pods into (to evict, skipped, refusals). Pure."""
    evict, skipped, refusals = [], [], []
    for pod in pods:
        key = namespaced_name(pod)
        owner = _controller(pod)
        if MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}):
            skipped.append(key)
        elif owner and owner.get("kind") == "DaemonSet":
            skipped.append(key)
        elif selected is not None and key not in selected:
            skipped.append(key)
        elif pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            evict.append(pod)
        elif owner is None:
            refusals.append(f"{key} has no controller (evicting it would lose it for good; run it "
                            "under a Deployment or StatefulSet, or delete it before the upgrade)")
        elif any("emptyDir" in volume for volume in pod.get("spec", {}).get("volumes") or []) \
                and not policy.delete_emptydir_data:
            refusals.append(f"{key} uses emptyDir (set policies.drain.delete_emptydir_data: true "
                            "to evict it and lose that data)")
        else:
            evict.append(pod)
    return evict, skipped, refusals


def _list_pods(api: KubeApi, node: str | None = None, selector: str | None = None) -> list[dict[str, Any]]:
    """The pods on `node` (every node's if None), those `selector` selects if given."""
    kwargs: dict[str, Any] = {"field_selector": f"spec.nodeName={node}"} if node else {}
    if selector:
        kwargs["label_selector"] = selector
    where = f"on {node}" if node else "of the cluster"
    return api.call(f"list pods {where}", api.core.list_pod_for_all_namespaces, **kwargs)["items"]


def _evict(api: KubeApi, pod: dict[str, Any], policy: DrainPolicy, dry_run: bool = False) -> None:
    meta = pod["metadata"]
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction",
                            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    if policy.grace_period_seconds is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": policy.grace_period_seconds}
    kwargs = {"dry_run": "All"} if dry_run else {}
    api.call(f"evict {namespaced_name(pod)}", api.core.create_namespaced_pod_eviction,
             meta["name"], meta["namespace"], body, throttle_is_answer=True, **kwargs)


def _blocking_budget(error: KubeUnavailable) -> str:
    causes = (error.status.get("details") or {}).get("causes") or []
    return "; ".join(c.get("message", "") for c in causes) or error.status.get("message", str(error))


def drain_node(api: KubeApi, node: str, policy: DrainPolicy, *,
               report: Callable[[str], None] = lambda message: None,
               retry_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> DrainReport:
    """Evict everything evictable from a (cordoned) node. Idempotent: an empty node is done."""
    selected = None
    if policy.pod_selector:
        selected = {namespaced_name(p) for p in _list_pods(api, node, policy.pod_selector)}
    pods = _list_pods(api, node)
    evict, skipped, refusals = pods_to_evict(pods, policy, selected)
    result = DrainReport(skipped=skipped)
    if refusals:
        raise PermanentError(f"cannot drain {node}: " + "; ".join(refusals))
    deadline = clock() + policy.timeout_seconds
    pending = {namespaced_name(p): p for p in evict}
    while pending:
        for key, pod in list(pending.items()):
            try:
                _evict(api, pod, policy)
                result.evicted.append(key)
                del pending[key]
            except KubeNotFound:
                del pending[key]  # already gone
            except KubeUnavailable as error:
                if error.code != 429:
                    raise
                result.blocked_retries += 1
                why = _blocking_budget(error)
                if clock() < deadline or policy.on_pdb_block is OnPdbBlock.WAIT:
                    report(f"eviction of {key} refused, will retry: {why}")
                    continue
                if policy.on_pdb_block is OnPdbBlock.DELETE:
                    meta = pod["metadata"]
                    api.call(f"delete {key}", api.core.delete_namespaced_pod, meta["name"], meta["namespace"])
                    result.deleted.append(key)
                    del pending[key]
                    continue
                raise DrainBlocked(
                    f"drain of {node} timed out after {policy.timeout_seconds}s: evicting {key} "
                    f"is refused by a PodDisruptionBudget ({why}); free capacity or relax the "
                    f"budget, then `kubeupgrade retry`") from None
        if pending:
            time.sleep(retry_interval)
    _wait_gone(api, node, [*result.evicted, *result.deleted], deadline + 60, clock)
    return result


def _wait_gone(api: KubeApi, node: str, keys: list[str], deadline: float,
               clock: Callable[[], float], sleep: Callable[[float], None] = time.sleep) -> None:
    wanted = set(keys)
    delays = poll_delays()
    while wanted:
        present = {namespaced_name(p) for p in _list_pods(api, node)} & wanted
        if not present:
            return
        if clock() > deadline:
            raise PermanentError(f"pods still on {node} after eviction: {', '.join(sorted(present))}")
        sleep(next(delays))


@dataclass
class DrainPreview:
    """What draining a node would do now: pods evicted, pods left (DaemonSet, mirror, not
    selected), and pods a budget or our policy would refuse, each with what to change."""
    evicts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


def preview_drains(api: KubeApi, nodes: Iterable[str], policy: DrainPolicy) -> dict[str, DrainPreview]:
    """A server-side dry run of draining each of `nodes` (evictions with dryRun=All): nothing is
    evicted. The pods come from one list of the whole cluster (two with a pod selector), not one
    per node: at thousands of nodes the lists were most of a preflight's time."""
    wanted = list(nodes)
    on: dict[str, list[dict[str, Any]]] = {node: [] for node in wanted}
    for pod in _list_pods(api):
        on.get(pod.get("spec", {}).get("nodeName") or "", []).append(pod)
    selected = None
    if policy.pod_selector:
        selected = {namespaced_name(p) for p in _list_pods(api, selector=policy.pod_selector)}
    previews = {}
    for node in wanted:
        evict, skipped, refusals = pods_to_evict(on[node], policy, selected)
        preview = previews[node] = DrainPreview(skipped=skipped, blocked=list(refusals))
        for pod in evict:
            try:
                _evict(api, pod, policy, dry_run=True)
            except KubeUnavailable as error:
                if error.code != 429:
                    raise
                preview.blocked.append(f"{namespaced_name(pod)}: {_blocking_budget(error)} (scale the "
                                       "workload up or relax the budget's minAvailable/maxUnavailable)")
                continue
            preview.evicts.append(namespaced_name(pod))
    return previews
