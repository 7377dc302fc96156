"""kube-proxy on Windows workers. kubeadm's kube-proxy DaemonSet runs on Linux nodes only; on
Windows, kube-proxy runs from a DaemonSet of its own in kube-system (sig-windows-tools'
`kube-proxy-windows`, selecting `kubernetes.io/os: windows`) whose image carries the Kubernetes
version in its tag. The Windows procedure upgrades it once the Windows workers are done, by
applying that manifest with the new version substituted: here, the version in each such
DaemonSet's kube-proxy image tag is replaced through the API, which changes nothing else.
"""

from __future__ import annotations

import re
from typing import Any

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.model.versions import KubeVersion

_VERSION_IN_TAG = re.compile(r"v\d+\.\d+\.\d+")


def windows_proxy_daemonsets(api: KubeApi) -> list[dict[str, Any]]:
    """The kube-system DaemonSets that run kube-proxy on Windows nodes."""
    found = api.call("list DaemonSets in kube-system", api.apps.list_namespaced_daemon_set, "kube-system")
    return [ds for ds in found.get("items", [])
            if (ds["spec"]["template"]["spec"].get("nodeSelector") or {}).get("kubernetes.io/os") == "windows"
            and any("kube-proxy" in c.get("image", "") for c in ds["spec"]["template"]["spec"]["containers"])]


def retagged(image: str, version: KubeVersion) -> str:
    """`image` with the Kubernetes version in its tag replaced by `version` (unchanged when its
    tag names no version: a digest or `latest` is the operator's to move)."""
    if "@" in image or ":" not in image.rsplit("/", 1)[-1]:
        return image
    name, tag = image.rsplit(":", 1)
    return f"{name}:{_VERSION_IN_TAG.sub(version.tag, tag, count=1)}"


def stale_images(ds: dict[str, Any], version: KubeVersion) -> dict[str, str]:
    """container name -> the image it should run, for the kube-proxy containers not at `version`."""
    return {c["name"]: retagged(c["image"], version)
            for c in ds["spec"]["template"]["spec"]["containers"]
            if "kube-proxy" in c["image"] and retagged(c["image"], version) != c["image"]}


def upgrade_windows_proxy(api: KubeApi, version: KubeVersion) -> tuple[list[str], list[str]]:
    """Move every Windows kube-proxy DaemonSet to `version`; (changed, already at version)."""
    changed, current = [], []
    for ds in windows_proxy_daemonsets(api):
        name = ds["metadata"]["name"]
        images = stale_images(ds, version)
        if not images:
            current.append(name)
            continue
        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": container, "image": image} for container, image in images.items()]}}}}
        api.call(f"update DaemonSet kube-system/{name}", api.apps.patch_namespaced_daemon_set,
                 name, "kube-system", patch)
        changed.append(f"{name} ({', '.join(images.values())})")
    return changed, current
