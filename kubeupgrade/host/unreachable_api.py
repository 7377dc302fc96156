"""Telling, from a kubeadm run's output, that it failed only because the API server did not answer.

kubeadm reads the cluster (the kubeadm-config ConfigMap, nodes, pods) before it changes anything
on a worker, and throughout `upgrade apply`. When the API server is restarting, behind a load
balancer that lost its backends, or frozen, kubeadm exits 1 with Go's words for the request that
failed, for example:

    [upgrade/config] FATAL: failed to get config map: Get "https://10.0.0.1:6443/api/v1/
    namespaces/kube-system/configmaps/kubeadm-config?timeout=10s": dial tcp 10.0.0.1:6443:
    connect: connection refused

Such a failure says nothing about the host: run again once the API server answers, kubeadm does
what it would have done. The phase wrapper retries it for as long as the campaign tolerates an
API outage (policies.api_outage_tolerance), as the controller's own cluster phases do, instead
of spending the few attempts meant for a host's own troubles.

Pure: text in, the matched cause (or None) out.
"""

from __future__ import annotations

import re

# A request Go's net/http could not complete: `<Method> "<url>": <cause>`.
_REQUEST_FAILED = re.compile(r'\b(?:Get|Post|Put|Patch|Delete|Head) "https?://[^"\s]+": (?P<cause>[^\n]+)')
# Causes that mean the server was not there, or did not answer in time.
_TRANSPORT_CAUSES = (
    "connect: connection refused",
    "i/o timeout",
    "TLS handshake timeout",
    "Client.Timeout exceeded",
    "context deadline exceeded",
    "connection reset by peer",
    "broken pipe",
    "no route to host",
    "network is unreachable",
    "http2: client connection lost",
    "http2: server sent GOAWAY",
    "server closed idle connection",
    "use of closed network connection",
)
_EOF = re.compile(r'(?:^|: )(?:unexpected )?EOF$')
# The API server reached but unable to serve: its own words (client-go's StatusError texts for
# 503, 504 and 429) and etcd's while its leader changes under a control-plane upgrade.
_SERVER_UNAVAILABLE = (
    "the server is currently unable to handle the request",
    "the server was unable to return a response in the time allotted",
    "the server has received too many requests and has asked us to try again later",
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: no leader",
    "etcdserver: too many requests",
)
# The API server's clients among the host commands.
_PROGRAMS = ("kubeadm", "kubectl")
_HINT = "To see the stack trace of this error"


def is_api_client(argv: tuple[str, ...]) -> bool:
    """The command is one of the API server's clients, whose failures may be an outage's."""
    program = argv[0].replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".exe") if argv else ""
    return program in _PROGRAMS


def outage_cause(stderr: str, stdout: str = "") -> str | None:
    """What says the API server did not answer, or None when the failure is anything else.

    Only the error kubeadm ended with counts (its last line on stderr, above the stack-trace
    hint): a request that failed and was retried with success on the way says nothing, and a
    run that then failed for another reason (a preflight check, a manifest) is that reason's
    failure, even where its lines mention a request."""
    lines = [line.strip() for line in (stderr.strip() or stdout).splitlines()
             if line.strip() and not line.strip().startswith(_HINT)]
    return _cause_in(lines[-1]) if lines else None


def _cause_in(line: str) -> str | None:
    request = _REQUEST_FAILED.search(line)
    if request:
        cause = request.group("cause").strip()
        if any(words in cause for words in _TRANSPORT_CAUSES) or _EOF.search(cause):
            return cause
    for words in _SERVER_UNAVAILABLE:
        if words in line:
            return words
    return None
