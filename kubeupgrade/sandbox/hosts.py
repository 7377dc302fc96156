"""Lay out a sandbox node's host: its root filesystem and its bin directory of simulated tools.

The root holds what kubeadm and the package managers read and write on a real host
(`etc/kubernetes`, the package repository configuration, `var/lib/kubelet`, `var/lib/etcd`, a
package database). The bin directory holds one small shim per tool that runs
`python -m kubeupgrade.sandbox.hostbin` for this node; an agent finds them on its PATH.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from kubeupgrade.model.versions import KubeVersion, parse_version
from kubeupgrade.sandbox import objects, releases
from kubeupgrade.sandbox.hostbin import launch
from kubeupgrade.sandbox.layout import (  # noqa: F401 - re-exported
    APT_LISTS,
    APT_SOURCE,
    PACKAGE_STATE,
    YUM_REPO,
    SandboxPaths,
)

_LINUX = ("kubeadm", "kubelet", "systemctl", "swapon", "killall", "etcdctl")
TOOLS_BY_FAMILY = {
    "apt": _LINUX + ("apt-get", "apt-mark", "apt-cache", "dpkg", "dpkg-query"),
    "dnf": _LINUX + ("dnf", "yum", "rpm"),
    "yum": _LINUX + ("yum", "rpm"),
    # kubeadm.exe and kubelet.exe are files in C:\\k, downloaded from the simulated dl.k8s.io.
    "windows": ("curl.exe", "sc.exe"),
}


APT_KEYRING = "etc/apt/keyrings/kubernetes-apt-keyring.gpg"


def apt_source_line(minor: str) -> str:
    url = releases.repository_url(parse_version(minor + ".0").minor_version, "apt")
    return f"deb [signed-by=/{APT_KEYRING}] {url} /\n"


def yum_repo_text(minor: str) -> str:
    url = releases.repository_url(parse_version(minor + ".0").minor_version, "rpm")
    return ("[kubernetes]\nname=Kubernetes\n"
            f"baseurl={url}\nenabled=1\ngpgcheck=1\ngpgkey={url}repodata/repomd.xml.key\n"
            "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")


def kubeconfig_text(server: str, token: str, user: str, ca_pem: bytes) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": f"{user}@kubernetes", "context": {"cluster": "kubernetes", "user": user}}],
        "current-context": f"{user}@kubernetes",
    }, sort_keys=False)


def static_pod_manifest(component: str, image: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": component, "namespace": "kube-system",
                     "labels": {"component": component, "tier": "control-plane"}},
        "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical",
                 "containers": [{"name": component, "image": image}]},
    }, sort_keys=False)


# What a shim runs (see hostbin/launch.py): re-exported for the tests that swap it.
HOSTBIN_ENTRY = launch.ENTRY


def compile_bytecode(packages: tuple[str, ...] = ("kubeupgrade", "workers")) -> None:
    """Byte-compile this package and the agents' (`workers`) where they live, what is stale only.
    Every simulated host command is a new interpreter, and one that may not write bytecode
    (PYTHONDONTWRITEBYTECODE, which CI machines set) compiles each module it imports on every
    run: ~20 of a `systemctl`'s ~50 ms here, and the same again in every agent and controller
    process at its start. compileall writes regardless of that setting; with nothing stale it
    takes ~5 ms. An installation it may not write to was compiled by pip and is left alone."""
    import compileall
    import importlib.util

    for package in packages:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(location, quiet=2)  # unwritable or unreadable: skipped


def write_shims(paths: SandboxPaths, node: str, family: str) -> None:
    bin_dir = paths.node_bin(node)
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = launch.exec_line()
    for tool in TOOLS_BY_FAMILY[family]:
        shim = bin_dir / tool
        shim.write_text(f"#!/bin/sh\n{launcher} --dir '{paths.root}' --node '{node}' {tool} \"$@\"\n")
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def create_host(paths: SandboxPaths, spec: dict[str, Any], config: dict[str, Any]) -> None:
    node, family = spec["name"], spec["os"]
    version = spec.get("kubelet") or config["version"]  # the packages and the kubelet
    static = spec.get("control_plane") or config["version"]  # the static pods
    kube = parse_version(version)
    minor = kube.minor_version.plain
    root = paths.node_root(node)
    for directory in ("etc/kubernetes/manifests", "etc/kubernetes/tmp", "etc/kubernetes/pki",
                      "var/lib/kubelet", "var/lib/sandbox", "var/lib/dpkg", "var/lib/apt/lists",
                      "var/cache/sandbox-packages"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    server = f"https://127.0.0.1:{config['port']}"
    ca_pem = paths.ca.read_bytes()
    (root / "etc/kubernetes/kubelet.conf").write_text(
        kubeconfig_text(server, config["node_tokens"][node], f"system:node:{node}", ca_pem))
    (root / "var/lib/kubelet/config.yaml").write_text(objects.kubelet_configuration(version))
    control_plane = spec["role"] == "control-plane"
    if control_plane:
        (root / "etc/kubernetes/admin.conf").write_text(
            kubeconfig_text(server, config["token"], "kubernetes-admin", ca_pem))
        for component in objects.STATIC_COMPONENTS:
            (root / f"etc/kubernetes/manifests/{component}.yaml").write_text(
                static_pod_manifest(component, objects.component_image(component, static)))
        (root / "etc/kubernetes/pki/apiserver.crt").write_text("sandbox certificate, issued at creation\n")
        (root / "etc/kubernetes/pki/etcd").mkdir(parents=True, exist_ok=True)
        for name in ("ca.crt", "server.crt", "server.key"):  # what `kubeadm init` writes for etcd
            (root / "etc/kubernetes/pki/etcd" / name).write_text(f"sandbox etcd {name}\n")
        (root / "var/lib/etcd/member/snap").mkdir(parents=True, exist_ok=True)
        (root / "var/lib/etcd/member/snap/db").write_text(f"sandbox etcd data for {node}\n")
    if family != "windows":  # Windows keeps its machine id in the registry
        (root / "etc/machine-id").write_text(objects.machine_id(node) + "\n")
    if family == "windows":
        _create_windows_binaries(root, kube)
    elif family == "apt":
        (root / APT_SOURCE).parent.mkdir(parents=True, exist_ok=True)
        (root / APT_SOURCE).write_text(apt_source_line(minor))
        # the key the source's signed-by names, as kubeadm's install guide puts it there
        (root / APT_KEYRING).parent.mkdir(parents=True, exist_ok=True)
        (root / APT_KEYRING).write_bytes(b"sandbox OpenPGP key of pkgs.k8s.io (234654DA9A296436)\n")
        url = releases.repository_url(parse_version(minor + ".0").minor_version, "apt")
        (root / APT_LISTS).write_text(json.dumps({"repositories": [{"minor": minor, "url": url}]}))
    else:
        (root / YUM_REPO).parent.mkdir(parents=True, exist_ok=True)
        (root / YUM_REPO).write_text(yum_repo_text(minor))
    if family != "windows":  # a Windows host has no package manager: its binaries are files
        package = releases.package_version(kube, family)
        state = {
            "family": family,
            "installed": {name: package for name in releases.PACKAGES},
            "configured": {name: True for name in releases.PACKAGES},
            "held": list(releases.PACKAGES) if family == "apt" else [],
            "cache": [],
        }
        (root / PACKAGE_STATE).write_text(json.dumps(state, indent=1))
    (root / objects.KUBELET_STATE).write_text(json.dumps(
        {"running": version, "active": True, "restarts": 0, "unit_changed": False,
         "container_restarts": {}}, indent=1))
    write_shims(paths, node, family)
    os.makedirs(paths.node_dir(node), exist_ok=True)
    paths.command_log(node).touch()


def _create_windows_binaries(root: Path, version: KubeVersion) -> None:
    """C:\\k with the kubeadm.exe and kubelet.exe of the cluster's version, as a Windows node
    joined with the Windows procedure has them."""
    directory = root / "k"
    directory.mkdir(parents=True, exist_ok=True)
    for component in ("kubeadm", "kubelet"):
        path = directory / f"{component}.exe"
        path.write_bytes(releases.windows_binary(version, component))
        path.chmod(0o755)
