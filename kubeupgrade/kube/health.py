"""The built-in health gate: what must hold before a campaign goes past its canaries.

Each check names what is unhealthy, so a red gate says why (status, events, the pause reason):
every node Ready; every kube-system pod Ready; every pod on the nodes just upgraded Ready; no
PodDisruptionBudget below its minimum (fewer healthy pods than it requires: the workloads have
not recovered from the drains yet).
"""

from __future__ import annotations

from typing import Any

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.discovery import pod_ready, unready_nodes
from kubeupgrade.kube.drain import namespaced_name
from kubeupgrade.kube.pages import read_list
from kubeupgrade.model.wording import some_names

SHOWN = 5  # names per finding; the rest are counted


def _named(what: str, names: list[str]) -> str:
    return f"{what}: {some_names(names, SHOWN)}"


def _ready(pod: dict[str, Any]) -> bool:
    # A finished Job's pod is not a sick one.
    return (pod.get("status") or {}).get("phase") == "Succeeded" or pod_ready(pod)


def _name_if_sick(pod: dict[str, Any]) -> str | None:
    return None if _ready(pod) else namespaced_name(pod)


def health_findings(api: KubeApi, upgraded: list[str]) -> list[str]:
    """What is unhealthy now; empty when the gate is green."""
    findings = []
    unready = unready_nodes(api)
    if unready:
        findings.append(_named("nodes not Ready", sorted(unready)))
    # A kube-proxy pod per node: read in pages, keeping only the names of the sick.
    sick = sorted(read_list(api, "list kube-system pods", api.core.list_namespaced_pod, _name_if_sick,
                            namespace="kube-system"))
    if sick:
        findings.append(_named("kube-system pods not Ready", sick))
    for node in upgraded:
        pods = api.call(f"list pods on {node}", api.core.list_pod_for_all_namespaces,
                        field_selector=f"spec.nodeName={node}")["items"]
        sick = sorted(namespaced_name(p) for p in pods if not _ready(p))
        if sick:
            findings.append(_named(f"pods not Ready on {node}", sick))
    budgets = api.call("list PodDisruptionBudgets",
                       api.policy.list_pod_disruption_budget_for_all_namespaces)["items"]
    for pdb in budgets:
        status = pdb.get("status") or {}
        healthy, desired = status.get("currentHealthy", 0), status.get("desiredHealthy", 0)
        if healthy < desired:
            findings.append(f"PodDisruptionBudget {namespaced_name(pdb)} below its minimum "
                            f"({healthy} healthy, {desired} required)")
    return findings
