"""The Kubernetes releases the sandbox's package repositories hold, and what each ships.

Real patch releases per minor, as published through February 2026, and the image versions
kubeadm of each minor deploys (CoreDNS, etcd). Pure data.
"""

from __future__ import annotations

from kubeupgrade.model.versions import KubeVersion, MinorVersion

# Highest patch release of each minor in the snapshot; every patch from .0 up to it exists.
LATEST_PATCH = {28: 15, 29: 15, 30: 14, 31: 14, 32: 12, 33: 8, 34: 4}

# The CoreDNS and etcd images kubeadm of each minor installs (kubeadm's constants).
COREDNS_VERSION = {28: "v1.10.1", 29: "v1.11.1", 30: "v1.11.1", 31: "v1.11.3", 32: "v1.11.3",
                   33: "v1.12.0", 34: "v1.12.1"}
ETCD_VERSION = {28: "3.5.9-0", 29: "3.5.10-0", 30: "3.5.15-0", 31: "3.5.15-0", 32: "3.5.16-0",
                33: "3.5.21-0", 34: "3.6.4-0"}

DEB_REVISION = "1.1"
RPM_REVISION = "150500.1.1"
PACKAGES = ("kubeadm", "kubelet", "kubectl")


def minors() -> list[MinorVersion]:
    return [MinorVersion(1, minor) for minor in sorted(LATEST_PATCH)]


def releases(minor: MinorVersion) -> list[KubeVersion]:
    """Every patch release of `minor`, oldest first; empty when the repository has none."""
    if minor.major != 1 or minor.minor not in LATEST_PATCH:
        return []
    return [KubeVersion(1, minor.minor, patch) for patch in range(LATEST_PATCH[minor.minor] + 1)]


def is_released(version: KubeVersion) -> bool:
    return version in releases(version.minor_version)


# Releases whose packages pkgs.k8s.io rebuilt: their revision counts 2 (deb `1.29.4-2.1`, rpm
# `1.29.4-150500.2.1`), so the package string of a version cannot be guessed from another's.
REBUILT = frozenset({KubeVersion(1, 29, 4)})


def package_version(version: KubeVersion, family: str) -> str:
    """The exact package string pkgs.k8s.io uses: deb `1.31.2-1.1`, rpm `1.31.2-150500.1.1`."""
    revision = DEB_REVISION if family == "apt" else RPM_REVISION
    if version in REBUILT:
        revision = revision.replace("1.1", "2.1") if family == "apt" else revision.replace(".1.1", ".2.1")
    return f"{version.plain}-{revision}"


def coredns_version(minor: MinorVersion) -> str:
    return COREDNS_VERSION.get(minor.minor, COREDNS_VERSION[max(COREDNS_VERSION)])


def etcd_version(minor: MinorVersion) -> str:
    return ETCD_VERSION.get(minor.minor, ETCD_VERSION[max(ETCD_VERSION)])


def repository_url(minor: MinorVersion, family: str) -> str:
    kind = "deb" if family == "apt" else "rpm"
    return f"https://pkgs.k8s.io/core:/stable:/{minor.tag}/{kind}/"


# -- dl.k8s.io: the Windows binaries -----------------------------------------------------------
WINDOWS_BINARIES = ("kubeadm", "kubelet", "kube-proxy")


def windows_binary(version: KubeVersion, component: str) -> bytes:
    """What dl.k8s.io serves at /<tag>/bin/windows/amd64/<component>.exe in the sandbox: a
    program that runs the simulated tool and knows its own version (so replacing the file is
    what changes the version, as on a real host). Executable on the Linux machine standing in
    for the Windows host; the same bytes for every node, so its checksum is one published file."""
    from kubeupgrade.sandbox.hostbin import launch

    return (f"#!/bin/sh\n{launch.EXE_HEADER}{component}.exe {version.tag} windows/amd64\n"
            f"{launch.exec_line()} --exe \"$0\" \"$@\"\n").encode()


def windows_binary_identity(content: bytes) -> tuple[str, KubeVersion] | None:
    """(component, version) of a sandbox Windows binary, None for anything else."""
    from kubeupgrade.model.versions import parse_version
    from kubeupgrade.sandbox.hostbin import launch

    found = launch.exe_identity(content)
    return (found[0], parse_version(found[1])) if found else None
