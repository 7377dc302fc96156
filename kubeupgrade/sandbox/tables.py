"""Server-side printing: `meta.k8s.io/v1` Table responses, the columns kubectl shows. Pure."""

from __future__ import annotations

import calendar
import time
from typing import Any

from kubeupgrade.sandbox.disruption import is_pod_ready

_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."}
_AGE = {"name": "Age", "type": "string", "format": "", "priority": 0,
        "description": "CreationTimestamp is a timestamp representing the server time when this "
                       "object was created."}


def _column(name: str, priority: int = 0, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "type": kind, "format": "", "priority": priority, "description": name}


def human_duration(seconds: float) -> str:
    """Ages the way kubectl prints them (5s, 3m20s, 42m, 5h10m, 3d4h, 45d, 2y30d)."""
    seconds = int(max(seconds, 0))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        years, rest = days // 365, days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{days // 365}y"


def _age(obj: dict[str, Any]) -> str:
    stamp = obj["metadata"].get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    return human_duration(time.time() - created)


def node_status_text(node: dict[str, Any]) -> str:
    """kubectl's STATUS: "Ready" when the Ready condition is True, "NotReady" when it is False
    or Unknown, "Unknown" only when the node has no Ready condition at all."""
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    ready = conditions.get("Ready")
    text = "Unknown" if ready is None else "Ready" if ready == "True" else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        text += ",SchedulingDisabled"
    return text


def node_roles(node: dict[str, Any]) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in node["metadata"].get("labels", {}) if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _node_row(node: dict[str, Any]) -> list[Any]:
    status = node.get("status", {})
    info = status.get("nodeInfo", {})
    internal = next((a["address"] for a in status.get("addresses", []) if a["type"] == "InternalIP"),
                    "<none>")
    return [node["metadata"]["name"], node_status_text(node), node_roles(node), _age(node),
            info.get("kubeletVersion", ""), internal, "<none>", info.get("osImage", ""),
            info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


_NODE_COLUMNS = [_NAME, _column("Status"), _column("Roles"), _AGE, _column("Version"),
                 _column("Internal-IP", 1), _column("External-IP", 1), _column("OS-Image", 1),
                 _column("Kernel-Version", 1), _column("Container-Runtime", 1)]


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    status = pod.get("status", {})
    containers = pod.get("spec", {}).get("containers", [])
    ready = len(containers) if is_pod_ready(pod) else 0
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses", []))
    phase = "Terminating" if pod["metadata"].get("deletionTimestamp") else status.get("phase", "Pending")
    return [pod["metadata"]["name"], f"{ready}/{len(containers)}", phase, restarts, _age(pod),
            status.get("podIP", "<none>"), pod.get("spec", {}).get("nodeName", "<none>"), "<none>",
            "<none>"]


_POD_COLUMNS = [_NAME, _column("Ready"), _column("Status"), _column("Restarts", kind="string"),
                _AGE, _column("IP", 1), _column("Node", 1), _column("Nominated Node", 1),
                _column("Readiness Gates", 1)]


def _since(stamp: str | None) -> str:
    if not stamp:
        return "<unknown>"
    return human_duration(time.time() - calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))


def _event_row(event: dict[str, Any]) -> list[Any]:
    regarding = event.get("involvedObject", {})
    source = event.get("source", {})
    last = event.get("lastTimestamp") or event.get("eventTime")
    return [_since(last), event.get("type", ""), event.get("reason", ""),
            f"{regarding.get('kind', '').lower()}/{regarding.get('name', '')}", regarding.get("fieldPath", ""),
            ", ".join(v for v in (source.get("component"), source.get("host")) if v) or
            event.get("reportingComponent", ""), event.get("message", ""),
            _since(event.get("firstTimestamp") or last), event.get("count", 1), event["metadata"]["name"]]


_EVENT_COLUMNS = [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
                  _column("Subobject", 1), _column("Source", 1), _column("Message"),
                  _column("First Seen", 1), _column("Count", 1, "integer"), _column("Name", 1)]


def _or_na(value: Any) -> Any:
    return "N/A" if value is None else value


def _pdb_row(pdb: dict[str, Any]) -> list[Any]:
    spec, status = pdb.get("spec", {}), pdb.get("status", {})
    return [pdb["metadata"]["name"], _or_na(spec.get("minAvailable")), _or_na(spec.get("maxUnavailable")),
            status.get("disruptionsAllowed", 0), _age(pdb)]


def _containers(obj: dict[str, Any]) -> tuple[str, str]:
    containers = obj["spec"]["template"]["spec"].get("containers", [])
    return ",".join(c["name"] for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(obj: dict[str, Any]) -> str:
    labels = obj["spec"].get("selector", {}).get("matchLabels", {})
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _deployment_row(obj: dict[str, Any]) -> list[Any]:
    status = obj.get("status", {})
    return [obj["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{obj['spec'].get('replicas', 1)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(obj),
            *_containers(obj), _selector(obj)]


def _replica_set_row(obj: dict[str, Any]) -> list[Any]:
    status = obj.get("status", {})
    return [obj["metadata"]["name"], obj["spec"].get("replicas", 1), status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(obj), *_containers(obj), _selector(obj)]


def _daemon_set_row(obj: dict[str, Any]) -> list[Any]:
    status = obj.get("status", {})
    selector = obj["spec"]["template"]["spec"].get("nodeSelector") or {}
    return [obj["metadata"]["name"], status.get("desiredNumberScheduled", 0),
            status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
            status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>", _age(obj),
            *_containers(obj), _selector(obj)]


_INT = "integer"
_TABLES: dict[str, tuple[list[dict[str, Any]], Any]] = {
    "poddisruptionbudgets": ([_NAME, _column("Min Available"), _column("Max Unavailable"),
                              _column("Allowed Disruptions", kind=_INT), _AGE], _pdb_row),
    "deployments": ([_NAME, _column("Ready"), _column("Up-to-date", kind=_INT),
                     _column("Available", kind=_INT), _AGE, _column("Containers", 1),
                     _column("Images", 1), _column("Selector", 1)], _deployment_row),
    "replicasets": ([_NAME, _column("Desired", kind=_INT), _column("Current", kind=_INT),
                     _column("Ready", kind=_INT), _AGE, _column("Containers", 1), _column("Images", 1),
                     _column("Selector", 1)], _replica_set_row),
    "daemonsets": ([_NAME, _column("Desired", kind=_INT), _column("Current", kind=_INT),
                    _column("Ready", kind=_INT), _column("Up-to-date", kind=_INT),
                    _column("Available", kind=_INT), _column("Node Selector"), _AGE,
                    _column("Containers", 1), _column("Images", 1), _column("Selector", 1)],
                   _daemon_set_row),
    "statefulsets": ([_NAME, _column("Ready"), _AGE, _column("Containers", 1), _column("Images", 1)],
                     lambda o: [o["metadata"]["name"],
                                f"{o.get('status', {}).get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}",
                                _age(o), *_containers(o)]),
    "configmaps": ([_NAME, _column("Data", kind=_INT), _AGE],
                   lambda o: [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                              _age(o)]),
    "namespaces": ([_NAME, _column("Status"), _AGE],
                   lambda o: [o["metadata"]["name"], o.get("status", {}).get("phase", "Active"), _age(o)]),
}


def to_table(
    plural: str, items: list[dict[str, Any]], resource_version: str, include_object: str
) -> dict[str, Any]:
    if plural == "nodes":
        columns, row_of = _NODE_COLUMNS, _node_row
    elif plural == "pods":
        columns, row_of = _POD_COLUMNS, _pod_row
    elif plural == "events":
        columns, row_of = _EVENT_COLUMNS, _event_row
    elif plural in _TABLES:
        columns, row_of = _TABLES[plural]
    else:
        columns, row_of = [_NAME, _AGE], (lambda obj: [obj["metadata"]["name"], _age(obj)])
    rows = []
    for obj in items:
        row: dict[str, Any] = {"cells": row_of(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns, "rows": rows}
