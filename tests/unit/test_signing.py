"""Operator signatures: what verifies, and every way a campaign record can fail to."""

import copy
import os
import stat

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.security.authorize import authorize
from kubeupgrade.security.signing import (
    Unauthorized,
    create_key,
    load_private_key,
    sign,
    trusted_keys,
    verify,
)

CAMPAIGN = {"cluster": "prod", "target": "1.31",
            "policies": {"hooks": {"after_node": [["systemctl", "restart", "containerd"]]}}}


@pytest.fixture
def keys(tmp_path):
    operator = create_key(tmp_path / "operator")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "operator.pub").write_bytes(operator.public.read_bytes())
    return operator, trusted


def record(operator, campaign=CAMPAIGN, campaign_id="prod-1", hops=()):
    key = load_private_key(operator.private)
    return {"id": campaign_id, "cluster": "prod", "campaign": copy.deepcopy(campaign),
            "signature": sign(key, campaign_id, "prod", campaign), "hops": list(hops)}


def test_a_signed_record_verifies_and_names_its_key(keys):
    operator, trusted = keys
    assert verify(trusted_keys(trusted), trusted, record(operator)) == operator.id


@pytest.mark.parametrize(("damage", "why"), [
    (lambda d: d.update(signature=None), "is not signed by an operator"),
    (lambda d: d["campaign"]["policies"]["hooks"]["after_node"].append(["sh", "-c", "id"]), "altered"),
    (lambda d: d.update(id="prod-2"), "altered"),
    (lambda d: d.update(cluster="other"), "altered"),
    (lambda d: d["signature"].update(value="not base64!"), "altered"),
    (lambda d: d["signature"].update(key="0000000000000000"), "which"),
])
def test_any_change_or_missing_signature_runs_nothing(keys, damage, why):
    operator, trusted = keys
    doc = record(operator)
    damage(doc)
    with pytest.raises(Unauthorized, match=why):
        verify(trusted_keys(trusted), trusted, doc)


def test_a_node_trusting_no_key_runs_nothing(keys, tmp_path):
    operator, _ = keys
    with pytest.raises(Unauthorized, match="no trusted operator key"):
        verify(trusted_keys(tmp_path / "empty"), tmp_path / "empty", record(operator))


def test_hops_may_not_go_past_the_signed_target(keys):
    operator, trusted = keys
    fine = record(operator, hops=[{"target": "1.31", "version": "1.31.14"}])
    assert authorize(fine, 0, trusted) == operator.id
    beyond = record(operator, hops=[{"target": "1.32", "version": None}])
    with pytest.raises(Unauthorized, match="beyond the signed target 1.31"):
        authorize(beyond, 0, trusted)
    exact = dict(CAMPAIGN, target="v1.31.2")
    other_patch = record(operator, exact, hops=[{"target": "1.31.2", "version": "1.31.9"}])
    with pytest.raises(Unauthorized, match="asks for 1.31.9"):
        authorize(other_patch, 0, trusted)


def test_keys_are_private_and_never_overwritten(tmp_path):
    pair = create_key(tmp_path)
    assert stat.S_IMODE(os.stat(pair.private).st_mode) == 0o600
    with pytest.raises(InvalidInput, match="a key exists already"):
        create_key(tmp_path)
    with pytest.raises(InvalidInput, match="kubeupgrade keys create"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(InvalidInput, match="not an unencrypted Ed25519 private key"):
        load_private_key(pair.public)


@pytest.fixture
def hosts(tmp_path):
    """Two host roots: a control plane (its API server's static pod manifest) and a worker."""
    control_plane, worker = tmp_path / "cp-1", tmp_path / "w-1"
    manifest = control_plane / "etc/kubernetes/manifests/kube-apiserver.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("kind: Pod\n")
    worker.mkdir()
    return control_plane, worker


@pytest.mark.parametrize(("extra", "runs_on_worker", "runs_on_control_plane"), [
    ({}, True, True),  # the whole cluster
    ({"scope": {"only": "control-planes"}}, False, True),
    ({"scope": {"workers": ["w-2"]}}, False, True),  # control planes are always in scope
    ({"scope": {"workers": ["w-1"]}}, True, True),
    ({"scope": {"selector": "pool=a"}}, True, True),  # labels: judged by the controller only
    ({"nodes": [{"name": "cp-1", "role": "control-plane"}]}, False, True),
    ({"nodes": [{"name": "w-1", "role": "worker"}]}, True, False),
])
def test_an_agent_acts_only_for_a_node_the_signed_campaign_upgrades(keys, hosts, extra,
                                                                     runs_on_worker,
                                                                     runs_on_control_plane):
    # The record's entries and roles are the controller's writing; the scope is the operator's.
    operator, trusted = keys
    doc = record(operator, dict(CAMPAIGN, **extra))
    control_plane, worker = hosts
    for node, root, runs in (("w-1", worker, runs_on_worker),
                             ("cp-1", control_plane, runs_on_control_plane)):
        if runs:
            assert authorize(doc, 0, trusted, node=node, host_root=root) == operator.id
        else:
            with pytest.raises(Unauthorized, match=f"node {node}|{node} is not"):
                authorize(doc, 0, trusted, node=node, host_root=root)


def test_a_worker_named_like_a_control_plane_is_still_judged_by_its_own_host(keys, hosts):
    # A forged entry may call a worker a control plane; the host's files decide.
    operator, trusted = keys
    doc = record(operator, dict(CAMPAIGN, scope={"only": "control-planes"}))
    doc["entries"] = [{"w-1": {"role": "control-plane"}}]
    _, worker = hosts
    with pytest.raises(Unauthorized, match="control planes only and node w-1 is not one"):
        authorize(doc, 0, trusted, node="w-1", host_root=worker)
