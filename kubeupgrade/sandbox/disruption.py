"""PodDisruptionBudget arithmetic and the eviction decision, as the disruption controller and the
eviction subresource compute them. Pure functions over store objects."""

from __future__ import annotations

import math
from typing import Any

from kubeupgrade.kube import selectors


def selector_text(selector: dict[str, Any] | None) -> str:
    """A LabelSelector object (matchLabels / matchExpressions) as selector text."""
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = ",".join(expression.get("values") or [])
        terms.append({
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }[operator])
    return ",".join(terms)


def is_pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for owner in obj["metadata"].get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


def _scaled(value: Any, expected: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        fraction = expected * int(value[:-1]) / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(value)


def budget_status(
    pdb: dict[str, Any], pods: list[dict[str, Any]], replicas_of: dict[str, int]
) -> dict[str, Any]:
    """The status the disruption controller would report for `pdb`.

    `pods`: the namespace's pods; `replicas_of`: controller uid -> desired replicas.
    """
    matches = selectors.label_selector(selector_text(pdb["spec"].get("selector")))
    selected = [p for p in pods if matches(p)]
    controllers: set[str] = set()
    expected = 0
    for pod in selected:
        owner = controller_of(pod)
        if owner is None or owner.get("uid") not in replicas_of:
            expected += 1
        elif owner["uid"] not in controllers:
            controllers.add(owner["uid"])
            expected += replicas_of[owner["uid"]]
    healthy = sum(1 for pod in selected if is_pod_ready(pod))
    spec = pdb["spec"]
    if spec.get("minAvailable") is not None:
        desired = _scaled(spec["minAvailable"], expected, round_up=True)
    elif spec.get("maxUnavailable") is not None:
        desired = max(0, expected - _scaled(spec["maxUnavailable"], expected, round_up=True))
    else:
        desired = expected
    allowed = max(0, healthy - desired)
    return {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": "True" if allowed > 0 else "False",
            "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
            "message": "",
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "lastTransitionTime": pdb["metadata"].get("creationTimestamp", "2026-01-01T00:00:00Z"),
        }],
    }


def eviction_refusal(pdb: dict[str, Any], status: dict[str, Any], pod: dict[str, Any]) -> str | None:
    """Why evicting `pod` would violate `pdb`, or None when it may go.

    A ready pod needs a disruption to spare; an unready one may go while the budget is met
    (the default unhealthyPodEvictionPolicy, IfHealthyBudget).
    """
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed", "Pending") \
            or pod["metadata"].get("deletionTimestamp"):
        return None  # finished, not started, or already going: no budget applies (canIgnorePDB)
    healthy, desired = status["currentHealthy"], status["desiredHealthy"]
    if is_pod_ready(pod):
        if status["disruptionsAllowed"] > 0:
            return None
    elif healthy >= desired:
        return None
    return (f"The disruption budget {pdb['metadata']['name']} needs {desired} healthy pods "
            f"and has {healthy} currently")
