"""The Kubernetes package repository configuration on a host (pkgs.k8s.io, one per minor).

Pure: renders the apt source line and yum/dnf repo file for a minor, and reads the minor back.
"""

from __future__ import annotations

import re

from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.model.versions import MinorVersion

APT_SOURCE = "/etc/apt/sources.list.d/kubernetes.list"
YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"
_MINOR = re.compile(r"pkgs\.k8s\.io/core:/stable:/v(\d+)\.(\d+)/")


def repository_path(family: OsFamily) -> str:
    return APT_SOURCE if family is OsFamily.APT else YUM_REPO


def render(family: OsFamily, minor: MinorVersion) -> str:
    if family is OsFamily.APT:
        return (f"deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                f"https://pkgs.k8s.io/core:/stable:/{minor.tag}/deb/ /\n")
    base = f"https://pkgs.k8s.io/core:/stable:/{minor.tag}/rpm/"
    return ("[kubernetes]\nname=Kubernetes\n"
            f"baseurl={base}\nenabled=1\ngpgcheck=1\ngpgkey={base}repodata/repomd.xml.key\n"
            "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")


def configured_minor(text: str) -> MinorVersion | None:
    match = _MINOR.search(text)
    return MinorVersion(int(match[1]), int(match[2])) if match else None
