"""The Kubernetes version-skew rules an upgrade must keep, as pure checks returning findings.

Each rule cites the policy it comes from. Checks return `Violation` values instead of raising,
so a plan can show every problem at once (kubeadm's policy.go does the same with its
mandatory/skippable findings).
"""

from __future__ import annotations

from kubeupgrade.model.plan import Violation
from kubeupgrade.model.versions import KubeVersion, MinorVersion

# Version skew policy, kubelet: "kubelet must not be newer than kube-apiserver, and may be up
# to three minor versions older" — two minor versions for kubelets older than v1.25, where the
# window was widened from two to three (KEP-3935).
KUBELET_MAX_MINORS_BEHIND = 3
KUBELET_MAX_MINORS_BEHIND_BEFORE_1_25 = 2
_WIDER_KUBELET_SKEW_SINCE = MinorVersion(1, 25)

# Version skew policy, kube-apiserver: "In highly-available (HA) clusters, the newest and oldest
# kube-apiserver instances must be within one minor version."
APISERVER_MAX_MINOR_SPREAD = 1


def kubelet_max_minors_behind(kubelet: KubeVersion) -> int:
    if kubelet.minor_version < _WIDER_KUBELET_SKEW_SINCE:
        return KUBELET_MAX_MINORS_BEHIND_BEFORE_1_25
    return KUBELET_MAX_MINORS_BEHIND


def check_kubelet_against_apiserver(
    node: str, kubelet: KubeVersion, apiserver: MinorVersion, *, when: str
) -> Violation | None:
    """The kubelet rule for one node against the apiserver minor it will face `when`."""
    behind = kubelet.minor_version.minors_until(apiserver)
    if behind < 0:
        return Violation(
            rule="kubelet-newer-than-apiserver",
            node=node,
            component="kubelet",
            message=(
                f"node {node}: kubelet {kubelet.plain} is newer than kube-apiserver "
                f"{apiserver.plain} {when}; a kubelet must never be newer than the apiserver — "
                f"upgrade the control plane first or target at least {kubelet.minor_version.plain}"
            ),
        )
    allowed = kubelet_max_minors_behind(kubelet)
    if behind > allowed:
        oldest_ok = MinorVersion(apiserver.major, apiserver.minor - allowed)
        return Violation(
            rule="kubelet-too-old",
            node=node,
            component="kubelet",
            message=(
                f"node {node}: kubelet {kubelet.plain} would be {behind} minors older than "
                f"kube-apiserver {apiserver.plain} {when} (at most {allowed} allowed for kubelet "
                f"{kubelet.minor_version.plain}); upgrade {node}'s kubelet to "
                f"{oldest_ok.plain} or later first, or remove the node from the cluster"
            ),
        )
    return None


def check_apiserver_spread(versions: dict[str, KubeVersion]) -> Violation | None:
    """All kube-apiserver instances within one minor of each other."""
    if not versions:
        return None
    oldest = min(versions.values())
    newest = max(versions.values())
    spread = oldest.minor_version.minors_until(newest.minor_version)
    if spread <= APISERVER_MAX_MINOR_SPREAD:
        return None
    old_node = next(name for name, version in versions.items() if version == oldest)
    return Violation(
        rule="apiserver-skew",
        node=old_node,
        component="kube-apiserver",
        message=(
            f"kube-apiserver instances span {spread} minors ({oldest.plain} on {old_node} to "
            f"{newest.plain}); at most {APISERVER_MAX_MINOR_SPREAD} is allowed — bring {old_node} "
            f"to {newest.minor_version.plain} with `kubeadm upgrade node` before planning further"
        ),
    )
