"""The sandbox's RBAC reading of the manifests we ship: what each ServiceAccount may and may not
do. No I/O beyond reading the manifests."""

from pathlib import Path

import pytest
import yaml

from kubeupgrade.sandbox.rbac import Grants, Request, forbidden_message, grants_for, request_of

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
READ_VERBS = {"get", "list", "watch"}


def grants(manifest: str, account: str) -> Grants:
    return grants_for(yaml.safe_load_all((DEPLOY / manifest).read_text()), "kube-system", account)


@pytest.fixture(scope="module")
def controller():
    return grants("controller-rbac.yaml", "kubeupgrade-controller")


@pytest.fixture(scope="module")
def rehearse():
    return grants("rehearse-rbac.yaml", "kubeupgrade-rehearse")


def test_the_controller_may_drain_and_cordon_and_read_kubeadms_config_only_in_kube_system(controller):
    assert controller.allows(Request("patch", "", "nodes", None, "worker-1"))
    assert controller.allows(Request("create", "", "pods/eviction", "shop", "api-1"))
    assert controller.allows(Request("get", "", "configmaps", "kube-system", "kubeadm-config"))
    assert not controller.allows(Request("get", "", "configmaps", "kube-system", "coredns"))
    assert not controller.allows(Request("get", "", "configmaps", "shop", "kubeadm-config"))
    assert not controller.allows(Request("patch", "apps", "daemonsets", "shop", "agent"))
    assert not controller.allows(Request("delete", "", "nodes", None, "worker-1"))
    assert not controller.allows(Request("get", "", "secrets", "kube-system", "bootstrap-token-abc"))


def test_the_rehearsal_can_only_read_and_never_a_secret(rehearse):
    rules = [rule for scoped in rehearse.rules.values() for rule in scoped]
    assert rules and all(rule.verbs <= READ_VERBS for rule in rules)
    assert all("secrets" not in rule.resources and "*" not in rule.resources for rule in rules)
    assert all(rule.resource_names == {"kubeadm-config"} for rule in rules if "configmaps" in rule.resources)
    for verb in ("create", "update", "patch", "delete"):
        assert not rehearse.allows(Request(verb, "", "nodes", None, "worker-1"))
    assert rehearse.allows(Request("list", "apps", "statefulsets", None, None))


def test_a_binding_for_another_subject_gives_nothing():
    docs = list(yaml.safe_load_all((DEPLOY / "controller-rbac.yaml").read_text()))
    assert grants_for(docs, "kube-system", "someone-else").rules == {}
    assert grants_for(docs, "default", "kubeupgrade-controller").rules == {}


def test_requests_and_refusals_read_as_a_real_api_server_words_them():
    assert request_of("GET", "", "pods", "shop", None, None, watch=True).verb == "watch"
    assert request_of("DELETE", "", "pods", "shop", None, None, watch=False).verb == "deletecollection"
    eviction = request_of("POST", "", "pods", "shop", "api-1", "eviction", watch=False)
    assert forbidden_message("system:serviceaccount:kube-system:x", eviction) == (
        'pods "api-1" is forbidden: User "system:serviceaccount:kube-system:x" cannot create resource '
        '"pods/eviction" in API group "" in the namespace "shop"')
    assert forbidden_message("u", request_of("GET", "", "nodes", None, None, None, watch=False)) == (
        'nodes is forbidden: User "u" cannot list resource "nodes" in API group "" at the cluster scope')


def test_grants_survive_their_stored_form(controller):
    assert Grants.from_doc(controller.to_doc()) == controller
