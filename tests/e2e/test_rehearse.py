"""`kubeupgrade rehearse` on a "live" cluster that is itself a sandbox with a topology built the
ordinary way (kubectl apply): the rehearsal, holding only the read-only rights we ship
(deploy/kubernetes/rehearse-rbac.yaml), names every blocker planted (a budget, a bare pod, pods
with emptyDir data the campaign keeps) and nothing else, writes nothing to the live cluster and
runs nothing on its hosts; once the operator fixes them it passes, and the real campaign on the
live cluster then succeeds (a StatefulSet, DaemonSets and a Windows worker along)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubeupgrade.api import submit
from kubeupgrade.sandbox import invariants
from tests.helpers import wait_for, write_campaign

KUBECTL = __import__("shutil").which("kubectl")

TOPOLOGY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: payments, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: payments}}
  template:
    metadata: {labels: {app: payments}}
    spec: {containers: [{name: api, image: payments:3.1, env: [{name: TOKEN, value: s3cret}]}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: payments, namespace: default}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: payments}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ledger, namespace: default}
spec:
  replicas: 1
  serviceName: ledger
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger}}
    spec: {containers: [{name: db, image: postgres:16}]}
---
apiVersion: v1
kind: Pod
metadata: {name: debug-shell, namespace: default}
spec: {nodeName: worker-1, containers: [{name: sh, image: busybox:1.36}]}
"""


REHEARSE_RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "rehearse-rbac.yaml"


def rehearse(box, campaign):
    env = {**os.environ, "KUBECONFIG": str(box.service_account(REHEARSE_RBAC, "kubeupgrade-rehearse"))}
    return subprocess.run([sys.executable, "-m", "kubeupgrade", "rehearse", campaign, "-o", "json"],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")
def test_a_rehearsal_names_every_planted_blocker_touches_nothing_and_passes_once_they_are_fixed(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=3, version="1.30.4", os_family="mixed")  # worker-3: Windows
    live = stack.sandbox
    env = {**os.environ, "KUBECONFIG": str(live.kubeconfig)}
    (tmp_path / "topology.yaml").write_text(TOPOLOGY)
    subprocess.run([KUBECTL, "apply", "-f", str(tmp_path / "topology.yaml")], env=env, check=True,
                   capture_output=True)
    wait_for(lambda: sum(1 for p in live.api_get("/api/v1/namespaces/default/pods")["items"]
                         if p["metadata"]["name"].startswith(("payments-", "ledger-"))) == 3)
    # As first written, the campaign keeps emptyDir data: the sandbox's shop/web pods use emptyDir.
    careful = write_campaign(tmp_path / "careful.yaml", "1.31", max_unavailable=1,
                             drain={"delete_emptydir_data": False, "timeout": 30})
    campaign = write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1)
    writes_before = len(live.api_get("/sandbox/v1/writes")["items"])
    logs_before = {n["name"]: len(live.command_log(n["name"])) for n in live.nodes}

    blocked = rehearse(live, careful)
    assert blocked.returncode == 3, blocked.stdout[-2000:] + blocked.stderr[-2000:]
    report = json.loads(blocked.stdout)
    assert report["state"] == "failed" and not report["passed"]
    # Every planted blocker, each named with what to change, and nothing else.
    refused = {why.split(":")[0].split(" ")[0]: why for node in report["nodes"] for why in node["blocked"]}
    payments = {p["metadata"]["namespace"] + "/" + p["metadata"]["name"]
                for p in live.api_get("/api/v1/namespaces/default/pods")["items"]
                if p["metadata"]["name"].startswith("payments-")}
    scratch = {p["metadata"]["namespace"] + "/" + p["metadata"]["name"]
               for p in live.api_get("/api/v1/pods")["items"]
               if any("emptyDir" in v for v in p["spec"].get("volumes") or [])}
    assert scratch and set(refused) == payments | scratch | {"default/debug-shell"}, report["nodes"]
    assert "has no controller" in refused["default/debug-shell"]
    assert all("uses emptyDir (set policies.drain.delete_emptydir_data: true" in refused[p] for p in scratch)
    assert all("The disruption budget payments needs 2 healthy pods" in refused[p] and "minAvailable" in refused[p]
               for p in payments)
    assert len(report["blockers"]) == len(refused)
    assert any(node["evicts"] for node in report["nodes"])
    assert report["mirrored"]["deployments"] >= 3 and report["mirrored"]["statefulsets"] == 1
    assert report["estimate_seconds"] > 0 and report["windows"] is None
    assert sum(stage["seconds"] for stage in report["stages"]) == report["estimate_seconds"]
    assert all(found == [] for found in (i["violations"] for i in report["invariants"]))
    # Read only: no write reached the live API server, no command ran on a live host.
    assert len(live.api_get("/sandbox/v1/writes")["items"]) == writes_before
    assert {n["name"]: len(live.command_log(n["name"])) for n in live.nodes} == logs_before
    assert "s3cret" not in blocked.stdout

    subprocess.run([KUBECTL, "patch", "pdb", "payments", "--type=merge", "-p", '{"spec":{"minAvailable":1}}'],
                   env=env, check=True, capture_output=True)
    subprocess.run([KUBECTL, "delete", "pod", "debug-shell", "--wait=false"], env=env, check=True, capture_output=True)
    fixed = rehearse(live, campaign)  # and the operator accepts losing emptyDir scratch data
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-2000:]
    assert json.loads(fixed.stdout)["passed"]
    assert {n["name"]: len(live.command_log(n["name"])) for n in live.nodes} == logs_before

    handle = submit(campaign, broker=stack.broker)
    assert handle.wait(timeout=300) == "succeeded", handle.status().get("error")
    assert invariants.check_all(live, max_unavailable=1) == []
