"""Argv builders for the commands every host platform runs alike (kubeadm, etcdctl, hooks).
Pure; each returns a `Command`. The package manager's and service manager's commands belong to
the host platforms (`kubeupgrade.host.platforms`).

Arguments are validated here (package names from a closed set, versions parsed), so a phase can
never smuggle a shell fragment into an argv.
"""

from __future__ import annotations

from kubeupgrade.host.executor import Command
from kubeupgrade.model.versions import KubeVersion

PACKAGES = frozenset({"kubeadm", "kubelet", "kubectl"})

# Timeouts in seconds: generous, because a slow mirror or etcd restart is not a failure.
UPDATE_TIMEOUT = 300.0
INSTALL_TIMEOUT = 600.0
KUBEADM_APPLY_TIMEOUT = 900.0
KUBEADM_NODE_TIMEOUT = 600.0
QUICK_TIMEOUT = 60.0


def kube_packages(names: tuple[str, ...]) -> tuple[str, ...]:
    """`names` if every one is a Kubernetes package, else ValueError (never reaches an argv)."""
    unknown = [name for name in names if name not in PACKAGES]
    if unknown or not names:
        raise ValueError(f"not a Kubernetes package: {unknown or names}")
    return names


def kubeadm_version(kubeadm: str = "kubeadm") -> Command:
    return Command((kubeadm, "version", "-o", "short"), QUICK_TIMEOUT, reads_only=True)


def kubeadm_upgrade_plan(version: KubeVersion) -> Command:
    return Command(("kubeadm", "upgrade", "plan", version.tag), KUBEADM_NODE_TIMEOUT, reads_only=True)


def kubeadm_upgrade_apply(
    version: KubeVersion, *, certificate_renewal: bool, etcd_upgrade: bool,
    config_file: str | None = None, force: bool = False,
) -> Command:
    argv = ["kubeadm", "upgrade", "apply", version.tag]  # the argument wins over the file's version
    if config_file:
        # kubeadm >= 1.30 takes no other flag beside --config but --yes: the file carries the
        # rest, and steps checked it against these settings before.
        return Command((*argv, "--config", config_file, "--yes"), KUBEADM_APPLY_TIMEOUT)
    argv += ["--yes", f"--certificate-renewal={str(certificate_renewal).lower()}",
             f"--etcd-upgrade={str(etcd_upgrade).lower()}"]
    if force:
        argv.append("--force")
    return Command(tuple(argv), KUBEADM_APPLY_TIMEOUT)


def kubeadm_upgrade_node(*, certificate_renewal: bool, etcd_upgrade: bool,
                         kubeadm: str = "kubeadm", config_file: str | None = None) -> Command:
    if config_file:  # as for apply: the file carries the settings, checked before
        return Command((kubeadm, "upgrade", "node", "--config", config_file), KUBEADM_NODE_TIMEOUT)
    return Command((kubeadm, "upgrade", "node",
                    f"--certificate-renewal={str(certificate_renewal).lower()}",
                    f"--etcd-upgrade={str(etcd_upgrade).lower()}"), KUBEADM_NODE_TIMEOUT)


def swap_devices() -> Command:
    return Command(("swapon", "--show"), QUICK_TIMEOUT, reads_only=True)


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
