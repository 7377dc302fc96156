"""The operator's own health checks (policies.gates), run by the controller at each health gate
beside the built-in ones (kubeupgrade.kube.health): an argv whose exit 0 means healthy, or a
Prometheus instant query whose every sample must stay within a threshold.

Each red gate is one finding naming the gate and why, like the built-in checks.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from kubeupgrade.host.executor import Command, CommandResult, LocalExecutor
from kubeupgrade.model.campaign import PrometheusCheck, UserGate

COMMAND_TIMEOUT = 60.0
QUERY_TIMEOUT = 10.0


def _series(metric: dict[str, str]) -> str:
    name = metric.get("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels or not name else name


def prometheus_verdict(check: PrometheusCheck, body: dict[str, Any]) -> str | None:
    """Why the query's answer is red, or None when every sample is within the threshold. Pure."""
    if body.get("status") != "success":
        return f"query failed: {body.get('errorType', '')} {body.get('error', 'no status')}".strip()
    data = body.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "scalar":
            samples = [("scalar", float(result[1]))]
        elif kind == "vector":
            samples = [(_series(s.get("metric", {})), float(s["value"][1])) for s in result]
        else:
            return f"the query returned a {kind}, not a vector or scalar"
    except (TypeError, ValueError, KeyError, IndexError):
        return "the answer is not a Prometheus query result"
    if not samples:
        return "the query returned no data"
    for series, value in samples:
        if math.isnan(value):
            return f"{series} is NaN"
        if check.below is not None and not value < check.below:
            return f"{series} = {value:g}, must be below {check.below:g}"
        if check.above is not None and not value > check.above:
            return f"{series} = {value:g}, must be above {check.above:g}"
    return None


def query_prometheus(check: PrometheusCheck) -> dict[str, Any]:
    url = f"{check.url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': check.query})}"
    try:
        with urllib.request.urlopen(url, timeout=QUERY_TIMEOUT) as response:  # noqa: S310 - http(s) only, validated
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as error:
        try:  # Prometheus answers 4xx/5xx with its error body
            return dict(json.loads(error.read()))
        except ValueError:
            return {"status": "error", "error": f"HTTP {error.code} from {check.url}"}
    except (OSError, ValueError) as error:
        return {"status": "error", "error": f"{check.url} did not answer: {error}"}


def user_gate_findings(gates: Sequence[UserGate],
                       run: Callable[[Command], CommandResult] = LocalExecutor().run,
                       fetch: Callable[[PrometheusCheck], dict[str, Any]] = query_prometheus) -> list[str]:
    findings = []
    for gate in gates:
        if gate.command is not None:
            result = run(Command(gate.command, timeout=COMMAND_TIMEOUT))
            if not result.ok:
                how = "timed out" if result.timed_out else f"exited {result.exit_code}"
                tail = " | ".join(result.tail(3).splitlines())
                findings.append(f"gate {gate.name}: `{result.command}` {how}" + (f": {tail}" if tail else ""))
        elif gate.prometheus is not None:
            why = prometheus_verdict(gate.prometheus, fetch(gate.prometheus))
            if why:
                findings.append(f"gate {gate.name}: {why}")
    return findings
