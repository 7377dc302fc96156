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
from kubeupgrade.kube.pages import PAGE_SIZE, read_list
from kubeupgrade.kube.polling import look_delay
from kubeupgrade.model.campaign import DrainPolicy, OnPdbBlock

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# How soon an eviction a budget refused is asked again: every drain blocked on a budget asks at
# this one pace, however long it has waited, so whichever asks first after the budget frees
# wins and none is starved by newer drains asking sooner (a backoff per drain did that: one
# drain waited 21 s of a 38 s window benchmark). Each ask is one eviction request; many waits at
# once are paced by kubeupgrade.workflow.waiting. A flat second left a budget that frees in a
# fraction of it unused for most of that second, in every blocked drain.
BUDGET_RETRY_SECONDS = 0.25


class DrainBlocked(PermanentError):
    """A PodDisruptionBudget kept refusing an eviction until the drain timeout."""


@dataclass
class DrainReport:
    """What the drain did so far. Between two looks it travels as `carried()` (the phase gives
    its process back while it waits: see kubeupgrade.workflow.waiting)."""
    evicted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    blocked_retries: int = 0

    def carried(self) -> dict[str, Any]:
        return {"evicted": self.evicted, "deleted": self.deleted, "blocked_retries": self.blocked_retries}

    @classmethod
    def from_carried(cls, carried: dict[str, Any]) -> DrainReport:
        def names(key: str) -> list[str]:
            value = carried.get(key)
            return [str(v) for v in value] if isinstance(value, list) else []

        retries = carried.get("blocked_retries")
        return cls(names("evicted"), names("deleted"),
                   blocked_retries=retries if isinstance(retries, int) and not isinstance(retries, bool) else 0)


@dataclass
class DrainLook:
    """What one look at a draining node found: the pods it still waits for (evicted and not
    gone yet, or refused by a budget) and why, for the phase's detail; none: drained.
    `refused`: a budget refused an eviction (asked again after BUDGET_RETRY_SECONDS)."""
    waiting_for: list[str]
    why: str = ""
    refused: bool = False

    def next_look(self, looks: int) -> float:
        """Seconds until the next look after `looks` looks: a refused eviction is asked again
        after BUDGET_RETRY_SECONDS, at the same pace however long the drain has waited (see
        there); pods leaving are looked for soon at first, then less and less often."""
        return BUDGET_RETRY_SECONDS if self.refused else look_delay(looks)


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
        elif (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            evict.append(pod)
        elif owner is None:
            refusals.append(f"{key} has no controller (evicting it would lose it for good; run it "
                            "under a Deployment or StatefulSet, or delete it before the upgrade)")
        elif any("emptyDir" in volume for volume in (pod.get("spec") or {}).get("volumes") or []) \
                and not policy.delete_emptydir_data:
            refusals.append(f"{key} uses emptyDir (set policies.drain.delete_emptydir_data: true "
                            "to evict it and lose that data)")
        else:
            evict.append(pod)
    return evict, skipped, refusals


def drain_view(pod: dict[str, Any]) -> dict[str, Any]:
    """Of a pod, only what pods_to_evict and _evict read (and its node), in the same shape:
    pods_to_evict decides the same on the view as on the whole pod. Pure. Keep the two in
    step: a field pods_to_evict comes to read must be kept here too."""
    meta = pod["metadata"]
    kept: dict[str, Any] = {"name": meta["name"], "namespace": meta["namespace"]}
    annotations = meta.get("annotations") or {}
    if MIRROR_ANNOTATION in annotations:
        kept["annotations"] = {MIRROR_ANNOTATION: annotations[MIRROR_ANNOTATION]}
    owner = _controller(pod)
    if owner is not None:
        kept["ownerReferences"] = [{"kind": owner.get("kind"), "controller": True}]
    spec = pod.get("spec") or {}
    view: dict[str, Any] = {"metadata": kept, "spec": {"nodeName": spec.get("nodeName")}}
    if any("emptyDir" in volume for volume in spec.get("volumes") or []):
        view["spec"]["volumes"] = [{"emptyDir": {}}]
    phase = (pod.get("status") or {}).get("phase")
    if phase is not None:
        view["status"] = {"phase": phase}
    return view


def _list_pods(api: KubeApi, node: str, selector: str | None = None) -> list[dict[str, Any]]:
    """The pods on `node`, those `selector` selects if given (one node's: one page)."""
    kwargs: dict[str, Any] = {"field_selector": f"spec.nodeName={node}"}
    if selector:
        kwargs["label_selector"] = selector
    return api.call(f"list pods on {node}", api.core.list_pod_for_all_namespaces, **kwargs)["items"]


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


def drain_look(api: KubeApi, node: str, policy: DrainPolicy, done: DrainReport, *,
               started: float, now: float, fence: Callable[[], None] | None = None) -> DrainLook:
    """One look at draining a (cordoned) node: evict every pod that must leave and that this
    drain has not evicted yet, and name the pods it still waits for. `done` is what earlier looks
    did (updated here); `started` is when the first look began, on the clock of `now`: a budget
    may refuse an eviction until `policy.timeout_seconds` after it, evicted pods may take a
    minute more to go. `fence` is asked before each eviction or deletion and raises to stop
    them (the task no longer owns its phase). Idempotent: an empty node is drained."""
    selected = None
    if policy.pod_selector:
        selected = {namespaced_name(p) for p in _list_pods(api, node, policy.pod_selector)}
    pods = _list_pods(api, node)
    sent = {*done.evicted, *done.deleted}
    evict, done.skipped, refusals = pods_to_evict(
        [p for p in pods if namespaced_name(p) not in sent], policy, selected)
    if refusals:
        raise PermanentError(f"cannot drain {node}: " + "; ".join(refusals))
    deadline = started + policy.timeout_seconds
    leaving = sorted({namespaced_name(p) for p in pods} & sent)
    blocked: list[str] = []
    why = ""
    for pod in evict:
        key = namespaced_name(pod)
        if fence is not None:
            fence()
        try:
            _evict(api, pod, policy)
            done.evicted.append(key)
            leaving.append(key)
        except KubeNotFound:
            pass  # already gone
        except KubeUnavailable as error:
            if error.code != 429:
                raise
            done.blocked_retries += 1
            refused = _blocking_budget(error)
            if now < deadline or policy.on_pdb_block is OnPdbBlock.WAIT:
                blocked.append(key)
                why = why or f"eviction of {key} refused, will retry: {refused}"
                continue
            if policy.on_pdb_block is OnPdbBlock.DELETE:
                if fence is not None:
                    fence()
                meta = pod["metadata"]
                api.call(f"delete {key}", api.core.delete_namespaced_pod, meta["name"], meta["namespace"])
                done.deleted.append(key)
                leaving.append(key)
                continue
            raise DrainBlocked(
                f"drain of {node} timed out after {policy.timeout_seconds}s: evicting {key} "
                f"is refused by a PodDisruptionBudget ({refused}); free capacity or relax the "
                f"budget, then `kubeupgrade retry`") from None
    if not blocked and len(done.evicted) + len(done.deleted) > len(sent):
        # Evicted in this look: in a quick cluster gone already, and a list costs less than a look.
        leaving = sorted({namespaced_name(p) for p in _list_pods(api, node)} & set(leaving))
    if leaving and not blocked:
        if now > deadline + 60:
            raise PermanentError(f"pods still on {node} after eviction: {', '.join(sorted(leaving))}")
        why = f"waiting for {len(leaving)} evicted pod(s) to stop: {', '.join(sorted(leaving)[:5])}"
    return DrainLook(blocked + leaving, why, refused=bool(blocked))


def drain_node(api: KubeApi, node: str, policy: DrainPolicy, *,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> DrainReport:
    """Drain a (cordoned) node in this process, looking again until it is drained (a phase
    task looks once per delivery instead: kubeupgrade.workflow.controller_tasks)."""
    done = DrainReport()
    started = clock()
    looks = 0
    while (look := drain_look(api, node, policy, done, started=started, now=clock())).waiting_for:
        sleep(look.next_look(looks))
        looks += 1
    return done


@dataclass
class DrainPreview:
    """What draining a node would do now: pods evicted, pods left (DaemonSet, mirror, not
    selected), and pods a budget or our policy would refuse, each with what to change."""
    evicts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


def preview_drains(api: KubeApi, nodes: Iterable[str], policy: DrainPolicy,
                   page_size: int = PAGE_SIZE) -> dict[str, DrainPreview]:
    """A server-side dry run of draining each of `nodes` (evictions with dryRun=All): nothing is
    evicted. The pods come from one list of the whole cluster (two with a pod selector), not one
    per node: at thousands of nodes the lists were most of a preflight's time. The list is read
    in pages and of each pod only its drain_view is kept: whole, a 5,000-node cluster's 15,000
    pods took ~110 MiB, held until every node's preview was done."""
    wanted = list(nodes)
    on: dict[str, list[dict[str, Any]]] = {node: [] for node in wanted}

    def on_a_wanted_node(pod: dict[str, Any]) -> dict[str, Any] | None:
        return drain_view(pod) if (pod.get("spec") or {}).get("nodeName") in on else None

    for pod in read_list(api, "list pods of the cluster", api.core.list_pod_for_all_namespaces,
                         on_a_wanted_node, page_size):
        on[pod["spec"]["nodeName"]].append(pod)
    selected = None
    if policy.pod_selector:
        selected = set(read_list(api, "list the pods of the campaign's pod selector",
                                 api.core.list_pod_for_all_namespaces, namespaced_name, page_size,
                                 label_selector=policy.pod_selector))
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
