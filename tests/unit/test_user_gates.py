"""The operator's gates: Prometheus answers judged against their threshold (every shape the
HTTP API can return, and broken ones), and command gates by exit code. Pure: fakes for the
command runner and the HTTP fetch."""

import pytest

from kubeupgrade.host.executor import Command, CommandResult
from kubeupgrade.model.campaign import PrometheusCheck, UserGate
from kubeupgrade.workflow.gates import prometheus_verdict, user_gate_findings

BELOW = PrometheusCheck("http://p:9090", "q", below=0.05)
BAND = PrometheusCheck("http://p:9090", "q", below=10, above=2)


def vector(*values, name="error_ratio"):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": name, "pod": f"p{i}"}, "value": [1.0, str(v)]} for i, v in enumerate(values)]}}


@pytest.mark.parametrize(("check", "body", "verdict"), [
    (BELOW, vector(0.01, 0.02), None),
    (BELOW, vector(0.01, 0.05), 'error_ratio{pod="p1"} = 0.05, must be below 0.05'),
    (BELOW, vector(), "the query returned no data"),
    (BELOW, vector("NaN"), 'error_ratio{pod="p0"} is NaN'),
    (BAND, vector(5), None),
    (BAND, vector(2), 'error_ratio{pod="p0"} = 2, must be above 2'),
    (BELOW, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "0.5"]}},
     "scalar = 0.5, must be below 0.05"),
    (BELOW, {"status": "success", "data": {"resultType": "matrix", "result": []}},
     "the query returned a matrix, not a vector or scalar"),
    (BELOW, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
     "query failed: bad_data parse error at char 3"),
    (BELOW, {"status": "success", "data": {"resultType": "vector", "result": [{"value": "x"}]}},
     "the answer is not a Prometheus query result"),
])
def test_prometheus_answers_are_judged_against_the_threshold(check, body, verdict):
    assert prometheus_verdict(check, body) == verdict


def test_each_red_gate_is_one_finding_naming_it():
    def run(command):
        return CommandResult(command, 0 if command.argv[0] == "true" else 3, "", "smoke: 2 of 5 failed\n")

    gates = (UserGate("ok", command=("true",)), UserGate("smoke", command=("smoke-test", "--fast")),
             UserGate("errors", prometheus=BELOW))
    findings = user_gate_findings(gates, run=run, fetch=lambda check: vector(0.3))
    assert findings == ["gate smoke: `smoke-test --fast` exited 3: smoke: 2 of 5 failed",
                        'gate errors: error_ratio{pod="p0"} = 0.3, must be below 0.05']
    timed_out = user_gate_findings(gates[1:2], run=lambda c: CommandResult(c, -1, timed_out=True))
    assert timed_out == ["gate smoke: `smoke-test --fast` timed out"]
    assert isinstance(Command(("true",)), Command)
