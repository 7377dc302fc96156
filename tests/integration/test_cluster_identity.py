"""Cluster identity against the sandbox API server (real kubernetes client) and a real
redis-server: each sandbox is its own cluster, `plan --kubeconfig` names what it reaches and
refuses a campaign for another cluster, and a name is bound to one kube-system UID per broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.identity import NAME_ANNOTATION, mismatch, read_identity
from kubeupgrade.workflow.record import CampaignStore

pytestmark = pytest.mark.integration


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeupgrade", *argv], capture_output=True,
                          text=True, timeout=120, env={**os.environ})


def campaign_file(tmp_path, cluster: str) -> str:
    path = tmp_path / f"{cluster}.yaml"
    path.write_text(yaml.safe_dump({"cluster": cluster, "target": "1.31"}))
    return str(path)


def test_each_sandbox_is_its_own_cluster_and_an_annotation_names_it(make_sandbox):
    first = make_sandbox(workers=0)
    second = make_sandbox(workers=0, name="prod-eu1")
    api_first, api_second = KubeApi(str(first.kubeconfig)), KubeApi(str(second.kubeconfig))
    try:
        one, two = read_identity(api_first), read_identity(api_second)
        assert (one.name, two.name) == ("sandbox", "prod-eu1")
        assert one.uid and two.uid and one.uid != two.uid
        assert one.source == "kubeadm's clusterName"
        assert mismatch("sandbox", one) is None
        assert "reaches cluster prod-eu1" in (mismatch("sandbox", two) or "")

        api_first.call("annotate", api_first.core.patch_namespace, "kube-system",
                       {"metadata": {"annotations": {NAME_ANNOTATION: "staging"}}})
        renamed = read_identity(api_first)
        assert (renamed.name, renamed.uid) == ("staging", one.uid)
        assert NAME_ANNOTATION in renamed.source
    finally:
        api_first.close()
        api_second.close()


def test_plan_shows_the_identity_and_refuses_another_clusters_campaign(make_sandbox, tmp_path):
    box = make_sandbox(workers=1)
    uid = read_identity(KubeApi(str(box.kubeconfig))).uid
    shown = cli("plan", campaign_file(tmp_path, "sandbox"), "--kubeconfig", str(box.kubeconfig))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == (f"Connected to cluster sandbox (kube-system uid {uid}; "
                                           "name from kubeadm's clusterName)")
    as_json = cli("plan", campaign_file(tmp_path, "sandbox"), "--kubeconfig", str(box.kubeconfig),
                  "-o", "json")
    assert json.loads(as_json.stdout)["identity"]["uid"] == uid

    # submit --dry-run is that plan: nothing is written (the broker here does not even exist).
    dry = cli("submit", campaign_file(tmp_path, "sandbox"), "--dry-run", "--kubeconfig",
              str(box.kubeconfig), "--broker", "redis://127.0.0.1:1/0")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("Connected to cluster sandbox") and "Hop 1/1" in dry.stdout

    refused = cli("plan", campaign_file(tmp_path, "prod-eu1"), "--kubeconfig", str(box.kubeconfig))
    assert refused.returncode == 3
    assert refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "names cluster 'prod-eu1'" in refused.stderr and uid in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_name_is_bound_to_one_cluster_per_broker(redis_url):
    store = CampaignStore.from_url(redis_url)
    assert store.bind_identity("prod", "uid-a", "prod-1") is None
    assert store.bind_identity("prod", "uid-a", "prod-2") is None  # the same cluster again
    clash = store.bind_identity("prod", "uid-b", "prod-3")
    assert clash and "uid-a" in clash and "uid-b" in clash and "prod-1" in clash
    assert "forget-cluster prod" in clash
    assert store.bind_identity("staging", "uid-b", "staging-1") is None  # other names unaffected

    forgot = subprocess.run([sys.executable, "-m", "kubeupgrade", "forget-cluster", "prod",
                             "--broker", redis_url], capture_output=True, text=True, timeout=60)
    assert forgot.returncode == 0 and "forgotten" in forgot.stdout
    assert store.bind_identity("prod", "uid-b", "prod-4") is None
    assert store.bind_identity("prod", "uid-a", "prod-5") is not None

    store.redis.set("ku:identity:broken", "{not json")
    damaged = store.bind_identity("broken", "uid-a", "broken-1")
    assert damaged and "damaged record ku:identity:broken" in damaged
