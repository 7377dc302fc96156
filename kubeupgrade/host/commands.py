"""Argv builders for every command kubeupgrade runs on a host. Pure; each returns a `Command`.

Arguments are validated here (package names from a closed set, versions parsed), so a phase can
never smuggle a shell fragment into an argv.
"""

from __future__ import annotations

from kubeupgrade.host.executor import Command
from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.model.versions import KubeVersion, PackageVersion

PACKAGES = frozenset({"kubeadm", "kubelet", "kubectl"})

# Timeouts in seconds: generous, because a slow mirror or etcd restart is not a failure.
UPDATE_TIMEOUT = 300.0
INSTALL_TIMEOUT = 600.0
KUBEADM_APPLY_TIMEOUT = 900.0
KUBEADM_NODE_TIMEOUT = 600.0
QUICK_TIMEOUT = 60.0


def _packages(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in PACKAGES]
    if unknown or not names:
        raise ValueError(f"not a Kubernetes package: {unknown or names}")
    return names


def refresh_metadata(family: OsFamily) -> Command:
    if family is OsFamily.APT:
        return Command(("apt-get", "update", "-q"), UPDATE_TIMEOUT)
    return Command((family.value, "makecache", "--disableexcludes=kubernetes"), UPDATE_TIMEOUT)


def list_versions(family: OsFamily, package: str = "kubeadm") -> Command:
    _packages((package,))
    if family is OsFamily.APT:
        return Command(("apt-cache", "madison", package), QUICK_TIMEOUT)
    return Command((family.value, "list", "--showduplicates", package,
                    "--disableexcludes=kubernetes"), UPDATE_TIMEOUT)


def installed_version(family: OsFamily, package: str) -> Command:
    _packages((package,))
    if family is OsFamily.APT:
        return Command(("dpkg-query", "-W", "--showformat=${Version}", package), QUICK_TIMEOUT)
    return Command(("rpm", "-q", package), QUICK_TIMEOUT)


def repair_interrupted_dpkg() -> Command:
    return Command(("dpkg", "--configure", "-a"), INSTALL_TIMEOUT)


def hold(family: OsFamily, *packages: str) -> Command | None:
    """apt holds packages; the yum/dnf repository excludes them instead (nothing to run)."""
    if family is not OsFamily.APT:
        return None
    return Command(("apt-mark", "hold", *_packages(packages)), QUICK_TIMEOUT)


def unhold(family: OsFamily, *packages: str) -> Command | None:
    if family is not OsFamily.APT:
        return None
    return Command(("apt-mark", "unhold", *_packages(packages)), QUICK_TIMEOUT)


def install(family: OsFamily, pins: dict[str, PackageVersion], *, download_only: bool = False) -> Command:
    names = _packages(tuple(sorted(pins)))
    if family is OsFamily.APT:
        argv = ["apt-get", "install", "-y", "-q"]
        if download_only:
            argv.append("--download-only")
        argv += [f"{name}={pins[name].raw}" for name in names]
        return Command(tuple(argv), INSTALL_TIMEOUT)
    argv = [family.value, "install", "-y"]
    if download_only:
        argv.append("--downloadonly")
    argv += [f"{name}-{pins[name].raw}" for name in names]
    argv.append("--disableexcludes=kubernetes")
    return Command(tuple(argv), INSTALL_TIMEOUT)


def kubeadm_version() -> Command:
    return Command(("kubeadm", "version", "-o", "short"), QUICK_TIMEOUT)


def kubeadm_upgrade_plan(version: KubeVersion) -> Command:
    return Command(("kubeadm", "upgrade", "plan", version.tag), KUBEADM_NODE_TIMEOUT)


def kubeadm_upgrade_apply(
    version: KubeVersion, *, certificate_renewal: bool, etcd_upgrade: bool,
    config_file: str | None = None, force: bool = False,
) -> Command:
    argv = ["kubeadm", "upgrade", "apply"]
    if config_file:
        argv += ["--config", config_file]
    else:
        argv.append(version.tag)
    argv += ["--yes", f"--certificate-renewal={str(certificate_renewal).lower()}",
             f"--etcd-upgrade={str(etcd_upgrade).lower()}"]
    if force:
        argv.append("--force")
    return Command(tuple(argv), KUBEADM_APPLY_TIMEOUT)


def kubeadm_upgrade_node(*, certificate_renewal: bool, etcd_upgrade: bool) -> Command:
    return Command(("kubeadm", "upgrade", "node",
                    f"--certificate-renewal={str(certificate_renewal).lower()}",
                    f"--etcd-upgrade={str(etcd_upgrade).lower()}"), KUBEADM_NODE_TIMEOUT)


def systemctl(action: str, unit: str | None = "kubelet") -> Command:
    if action not in {"daemon-reload", "restart", "is-active", "stop", "start"}:
        raise ValueError(f"systemctl action {action!r} is not allowed")
    argv = ("systemctl", action) if unit is None else ("systemctl", action, unit)
    return Command(argv, QUICK_TIMEOUT)


def kubelet_version() -> Command:
    return Command(("kubelet", "--version"), QUICK_TIMEOUT)


def swap_devices() -> Command:
    return Command(("swapon", "--show"), QUICK_TIMEOUT)


def stop_kube_apiserver() -> Command:
    return Command(("killall", "-s", "SIGTERM", "kube-apiserver"), QUICK_TIMEOUT)


def hook(argv: tuple[str, ...]) -> Command:
    return Command(tuple(argv), KUBEADM_NODE_TIMEOUT)


ETCD_PKI = "/etc/kubernetes/pki/etcd"  # kubeadm's stacked etcd certificates
ETCD_SNAPSHOT_TIMEOUT = 300.0


def etcd_snapshot_save(path: str) -> Command:
    """kubeadm's local etcd member, with the certificates kubeadm wrote for it."""
    return Command(("etcdctl", "--endpoints=https://127.0.0.1:2379", f"--cacert={ETCD_PKI}/ca.crt",
                    f"--cert={ETCD_PKI}/server.crt", f"--key={ETCD_PKI}/server.key",
                    "snapshot", "save", path), ETCD_SNAPSHOT_TIMEOUT)
