"""Which kubeadm failures are an API server outage (retried for the campaign's tolerance) and
which are not (the phase's own attempts). The outputs are real kubeadm's, as operators have
posted them (addresses changed), and the sandbox's, which must read the same."""

import pytest

from kubeupgrade.host.executor import Command, CommandResult
from kubeupgrade.host.steps import HostCommandFailed
from kubeupgrade.host.unreachable_api import is_api_client, outage_cause

HINT = "To see the stack trace of this error execute with --v=5 or higher"

OUTAGES = {
    # kubeadm 1.19 upgrade apply behind a load balancer whose backends were down
    "refused, old wording": (
        "[upgrade/config] FATAL: failed to get config map: Get \"https://lb.example:6443/api/v1/namespaces/"
        "kube-system/configmaps/kubeadm-config?timeout=10s\": dial tcp 10.0.0.47:6443: connect: connection refused",
        "dial tcp 10.0.0.47:6443: connect: connection refused"),
    # kubeadm 1.31 upgrade node: the error printed by CheckErr, no phase prefix
    "refused, 1.31 wording": (
        "unable to fetch the kubeadm-config ConfigMap: failed to get config map: Get \"https://10.0.0.1:6443/api/"
        "v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": dial tcp 10.0.0.1:6443: connect: "
        "connection refused",
        "dial tcp 10.0.0.1:6443: connect: connection refused"),
    "a frozen server": (
        "[upgrade/config] FATAL: unable to fetch the kubeadm-config ConfigMap: Get \"https://10.0.0.1:6443/api/v1/"
        "namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": net/http: TLS handshake timeout",
        "net/http: TLS handshake timeout"),
    "no answer in time": (
        "error execution phase control-plane: couldn't create a Kubernetes client from file: Get "
        "\"https://10.0.0.1:6443/api/v1/nodes/cp-2?timeout=10s\": net/http: request canceled "
        "(Client.Timeout exceeded while awaiting headers)",
        "net/http: request canceled (Client.Timeout exceeded while awaiting headers)"),
    "a dropped connection": (
        "[upgrade] FATAL: unable to list control plane pods: Get \"https://10.0.0.1:6443/api/v1/namespaces/"
        "kube-system/pods?labelSelector=component%3Dkube-apiserver&timeout=10s\": unexpected EOF",
        "unexpected EOF"),
    "etcd electing a leader": (
        "[upgrade/postupgrade] FATAL: unable to update the kubeadm-config ConfigMap: etcdserver: leader changed",
        "etcdserver: leader changed"),
    "the API server overloaded": (
        "unable to fetch the kubeadm-config ConfigMap: failed to get config map: the server is currently unable "
        "to handle the request (get configmaps kubeadm-config)",
        "the server is currently unable to handle the request"),
}


@pytest.mark.parametrize("name", sorted(OUTAGES))
def test_an_api_server_that_does_not_answer_is_an_outage(name):
    line, cause = OUTAGES[name]
    stderr = f"{line}\n{HINT}\n"
    assert outage_cause(stderr, "[upgrade] Reading configuration from the cluster...\n") == cause


NOT_OUTAGES = {
    "a preflight check": (
        "[preflight] Some fatal errors occurred:\n"
        "\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [cp-1]\n"
        "[preflight] If you know what you are doing, you can make a check non-fatal with "
        "`--ignore-preflight-errors=...`"),
    "static pods that did not come up": (
        "[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover everything into "
        "the earlier state. Errors faced: timed out waiting for the condition"),
    "the version skew": (
        "[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n"
        "\t- Specified version to upgrade to \"v1.33.0\" is too high; kubeadm can upgrade only 1 minor version "
        "at a time"),
    "forbidden": (
        "unable to fetch the kubeadm-config ConfigMap: failed to get config map: configmaps \"kubeadm-config\" "
        "is forbidden: User \"system:node:worker-1\" cannot get resource \"configmaps\""),
    "a bad certificate": (
        "[upgrade/config] FATAL: failed to get config map: Get \"https://10.0.0.1:6443/api/v1/namespaces/"
        "kube-system/configmaps/kubeadm-config?timeout=10s\": tls: failed to verify certificate: x509: "
        "certificate signed by unknown authority"),
    # A request failed and was retried with success; the run then failed for something else.
    "an earlier retried request": (
        "W1207 03:05:31.000000    1234 retry.go:41] Get \"https://10.0.0.1:6443/api/v1/nodes?timeout=10s\": "
        "dial tcp 10.0.0.1:6443: connect: connection refused\n"
        "[upgrade/apply] FATAL: couldn't upgrade control plane. Errors faced: the manifest is invalid"),
}


@pytest.mark.parametrize("name", sorted(NOT_OUTAGES))
def test_any_other_failure_is_not_an_outage(name):
    assert outage_cause(f"{NOT_OUTAGES[name]}\n{HINT}\n") is None


def test_the_sandbox_kubeadm_reads_as_the_real_one():
    # What the sandbox's kubeadm prints for a frozen API server (see test_sandbox_hosts).
    stderr = ("[upgrade/config] FATAL: unable to fetch the kubeadm-config ConfigMap: Get "
              "\"https://127.0.0.1:37695/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": "
              "dial tcp 127.0.0.1:37695: i/o timeout\n" + HINT)
    assert outage_cause(stderr) == "dial tcp 127.0.0.1:37695: i/o timeout"


@pytest.mark.parametrize(("argv", "client"), [
    (("kubeadm", "upgrade", "node"), True),
    (("/usr/bin/kubeadm", "upgrade", "apply", "v1.31.2", "--yes"), True),
    (("C:\\k\\kubeadm.exe", "upgrade", "node"), True),
    (("kubectl", "get", "nodes"), True),
    (("apt-get", "install", "-y", "kubeadm=1.31.2-1.1"), False),
    (("systemctl", "restart", "kubelet"), False),
    (("kubeadm-helper",), False),
])
def test_only_the_api_servers_clients_can_fail_on_an_outage(argv, client):
    assert is_api_client(argv) is client


def test_a_failed_command_carries_its_outage_only_from_a_client_and_not_when_timed_out():
    line, cause = OUTAGES["refused, 1.31 wording"]
    kubeadm = Command(("kubeadm", "upgrade", "node"))
    assert HostCommandFailed(CommandResult(kubeadm, 1, stderr=f"{line}\n{HINT}"), "x").api_outage == cause
    # An apt source on the same address saying the same is the mirror's trouble, not the API's.
    apt = Command(("apt-get", "update"))
    assert HostCommandFailed(CommandResult(apt, 100, stderr=line), "x").api_outage is None
    # A kubeadm killed at its timeout is not known to have failed on the API server.
    timed_out = CommandResult(kubeadm, -9, stderr=line, timed_out=True)
    assert HostCommandFailed(timed_out, "x").api_outage is None
