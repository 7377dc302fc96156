"""What the simulated kubeadm prints, per kubeadm minor: the words real kubeadm uses changed
with 1.32, when `upgrade apply` became a workflow of phases (`[upgrade/preflight]`,
`[upgrade/control-plane]`, ...), and again in small ways after. Each string here was checked
against outputs real kubeadm printed (1.28 to 1.31 for the first form, 1.32 to 1.35 for the
second); the tests pin one minor of each form. Pure data and formatting.
"""

from __future__ import annotations

from kubeupgrade.model.versions import FrozenValue, KubeVersion

# Release day of each minor's .0 (patches follow about monthly) and the Go it was built with:
# only the shape of `kubeadm version` is at stake, never the engine.
_GA = {28: (2023, 8, 15), 29: (2023, 12, 13), 30: (2024, 4, 17), 31: (2024, 8, 13),
       32: (2024, 12, 11), 33: (2025, 4, 23), 34: (2025, 8, 27)}
_GO = {28: "go1.20.7", 29: "go1.21.5", 30: "go1.22.2", 31: "go1.22.5", 32: "go1.23.3",
       33: "go1.24.2", 34: "go1.24.6"}


class Dialect(FrozenValue):
    """The kubeadm of one minor. Not a dataclass: every simulated kubeadm run is a new process,
    and `dataclasses` cost it more than its own work."""

    __slots__ = ("minor",)
    minor: int

    def __init__(self, minor: int) -> None:
        super().__init__(minor)

    @property
    def phased(self) -> bool:
        """1.32 and later: `upgrade apply` and `upgrade node` run as workflow phases."""
        return self.minor >= 32

    # -- reading the configuration -----------------------------------------------------------
    def reading_config(self, command: str) -> list[str]:
        if not self.phased:
            tag = "[upgrade]" if command == "node" else "[upgrade/config]"
            return [f"{tag} Reading configuration from the cluster...",
                    f"{tag} FYI: You can look at this config file with 'kubectl -n kube-system get cm "
                    "kubeadm-config -o yaml'"]
        tag = "[upgrade/config]" if command == "plan" else "[upgrade]"
        upload = {32: "--config your-config.yaml", 33: "--config your-config-file"}.get(
            self.minor, "kubeadm --config your-config-file")
        return [f'{tag} Reading configuration from the "kubeadm-config" ConfigMap in namespace '
                '"kube-system"...', f"{tag} Use 'kubeadm init phase upload-config {upload}' to re-upload it."]

    def preflight(self, command: str) -> str:
        if command == "plan" or (command == "apply" and not self.phased):
            return "[preflight] Running pre-flight checks."
        if command == "apply":
            return "[upgrade/preflight] Running preflight checks"
        return "[upgrade/preflight] Running pre-flight checks" if self.phased else "[preflight] Running pre-flight checks"

    def chosen(self, target: KubeVersion) -> str:
        if self.phased:
            return f'[upgrade/preflight] You have chosen to upgrade the cluster version to "{target.tag}"'
        return f'[upgrade/version] You have chosen to change the cluster version to "{target.tag}"'

    def version_errors(self, fatal: bool, errors: list[str]) -> str:
        listed = "".join(f"\t- {error}\n" for error in errors)
        prefix = ("error execution phase preflight: the version argument" if self.phased
                  else "[upgrade/version] FATAL: the --version argument")
        if fatal:
            return (f"{prefix} is invalid due to these fatal errors:\n\n{listed}\nPlease fix the "
                    "misalignments highlighted above and try upgrading again")
        return f"{prefix} is invalid due to these errors:\n\n{listed}\nCan be bypassed if you pass the --force flag"

    def prepull(self, command: str) -> list[str]:
        if command == "node":
            tag, also = ("[upgrade/preflight]", "beforehand") if self.phased else ("[preflight]", "in beforehand")
        else:
            tag, also = ("[upgrade/preflight]", "beforehand") if self.phased else ("[upgrade/prepull]", "in beforehand")
        return [f"{tag} Pulling images required for setting up a Kubernetes cluster",
                f"{tag} This might take a minute or two, depending on the speed of your internet connection",
                f"{tag} You can also perform this action {also} using 'kubeadm config images pull'"]

    def not_a_control_plane(self) -> list[str]:
        if self.phased:
            return ["[upgrade/preflight] Skipping prepull. Not a control plane node.",
                    "[upgrade/control-plane] Skipping phase. Not a control plane node.",
                    "[upgrade/kubeconfig] Skipping phase. Not a control plane node."]
        return ["[preflight] Skipping prepull. Not a control plane node.",
                "[upgrade] Skipping phase. Not a control plane node."]

    # -- upgrade plan ------------------------------------------------------------------------------
    @property
    def plan_per_node(self) -> bool:
        """1.30 and later: `upgrade plan` has a NODE column and a row per node; before, one row
        per component (kubelets counted per version) and the cluster version is the API server's."""
        return self.minor >= 30

    def plan_kubelets(self, kubelets: list[tuple[str, str]], target: str) -> list[list[str]]:
        """The table of kubelets (node, current version) still to upgrade to `target`."""
        if self.plan_per_node:
            return [["COMPONENT", "NODE", "CURRENT", "TARGET"],
                    *(["kubelet", node, current, target] for node, current in kubelets)]
        counts: dict[str, int] = {}
        for _, current in kubelets:
            counts[current] = counts.get(current, 0) + 1
        return [["COMPONENT", "CURRENT", "TARGET"],
                *([("" if i else "kubelet"), f"{counts[current]} x {current}", target]
                  for i, current in enumerate(sorted(counts)))]

    def plan_components(self, static: list[tuple[str, str, str]], proxy: str, coredns: tuple[str, str],
                        etcd: list[tuple[str, str, str]], target: str) -> list[list[str]]:
        """The control plane's table: `static` and `etcd` as (component or node, node, current) rows
        per control plane; the grouped form keeps the first row of each component."""
        if self.plan_per_node:
            rows = [["COMPONENT", "NODE", "CURRENT", "TARGET"]]
            rows += [[component, node, current, target] for component, node, current in static]
            rows += [["kube-proxy", "", proxy, target], ["CoreDNS", "", *coredns]]
            return rows + [["etcd", node, current, wanted] for node, current, wanted in etcd]
        seen: set[str] = set()
        rows = [["COMPONENT", "CURRENT", "TARGET"]]
        for component, _, current in static:
            if component not in seen:
                seen.add(component)
                rows.append([component, current, target])
        rows += [["kube-proxy", proxy, target], ["CoreDNS", *coredns]]
        return rows + [["etcd", current, wanted] for _, current, wanted in etcd[:1]]

    # -- static pods -----------------------------------------------------------------------------
    def upgrading_control_plane(self, target: KubeVersion, instance: bool) -> str:
        if instance:
            tag = "[upgrade/control-plane]" if self.phased else "[upgrade]"
            pod = "static Pod" if self.phased else "Static Pod"
            return f'{tag} Upgrading your {pod}-hosted control plane instance to version "{target.tag}"...'
        if self.phased:
            return (f'[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version '
                    f'"{target.tag}" (timeout: 5m0s)...')
        return (f'[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "{target.tag}" '
                "(timeout: 5m0s)...")

    def moved_manifest(self, component: str, backup: str) -> str:
        if self.phased:
            return (f'[upgrade/staticpods] Moving new manifest to "/etc/kubernetes/manifests/{component}.yaml" '
                    f'and backing up old manifest to "{backup}/{component}.yaml"')
        return (f'[upgrade/staticpods] Moved new manifest to "/etc/kubernetes/manifests/{component}.yaml" '
                f'and backed up old manifest to "{backup}/{component}.yaml"')

    def static_pod_timed_out(self, component: str, node: str, command: str,
                             unreadable: str = "") -> tuple[list[str], str]:
        """What kubeadm prints when the kubelet did not restart `component` in time and the old
        manifests (and etcd's data) were put back: lines for stdout, and the error for stderr.
        kubeadm polls the mirror pod through API errors; if its last look failed, that error is
        the one given (`unreadable`). The poll's own timeout error changed when kubeadm moved to
        context-based polling (1.29)."""
        waited = "context deadline exceeded" if self.minor >= 29 else "timed out waiting for the condition"
        cause = (f"failed to obtain static Pod hash for component {component} on Node {node}: {unreadable}"
                 if unreadable else
                 f"static Pod hash for component {component} on Node {node} did not change after 5m0s: {waited}")
        faced = ("couldn't upgrade control plane. kubeadm has tried to recover everything into the "
                 f"earlier state. Errors faced: {cause}")
        lines = ([f"[upgrade/etcd] Failed to upgrade etcd: {faced}",
                  "[upgrade/etcd] Waiting for previous etcd to become available",
                  "[upgrade/etcd] Etcd was rolled back and is now available"] if component == "etcd" else [])
        if self.phased or command == "node":  # `upgrade node` has run as phases since long before
            return lines, f"error execution phase control-plane: couldn't complete the static pod upgrade: {faced}"
        return lines, f"[upgrade/apply] FATAL: {faced}"

    def control_plane_done(self) -> str:
        if self.phased:
            return "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!"
        return "[upgrade] The control plane instance for this node was successfully updated!"

    def kubeconfig_done(self) -> list[str]:
        if not self.phased:
            return []
        tag = "[upgrad/kubeconfig]" if self.minor == 32 else "[upgrade/kubeconfig]"  # 1.32's own typo
        return [f"{tag} The kubeconfig files for this node were successfully upgraded!"]

    def kubelet_config(self, temporary: str) -> tuple[list[str], str]:
        """(stdout lines, the klog warning on stderr) of writing the node's kubelet configuration."""
        lines = [f"[upgrade] Backing up kubelet config file to {temporary}/config.yaml",
                 '[kubelet-start] Writing kubelet configuration to file "/var/lib/kubelet/config.yaml"']
        if not self.phased:
            return lines, ""
        line = 116 if self.minor >= 34 else 117
        warning = (f"W{klog_stamp()} postupgrade.go:{line}] Using temporary directory {temporary} for "
                   "kubelet config. To override it set the environment variable KUBEADM_UPGRADE_DRYRUN_DIR")
        return lines + ["[upgrade/kubelet-config] The kubelet configuration for this node was successfully "
                        "upgraded!"], warning

    def bootstrap_token(self) -> list[str]:
        lines = ["[upgrade/bootstrap-token] Configuring bootstrap token and cluster-info RBAC rules"] if self.phased else []
        return lines + [
            "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes",
            "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order "
            "for nodes to get long term certificate credentials",
            "[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically "
            "approve CSRs from a Node Bootstrap Token",
            "[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client "
            "certificates in the cluster"]

    def addons_skipped_on_worker(self) -> list[str]:
        if not self.phased:
            return []
        return ["[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.",
                "[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node."]

    def addons_waiting_for(self, behind: list[str]) -> list[str]:
        """Addons move only once every control plane runs the version; phased kubeadm says so
        once per addon phase (CoreDNS, kube-proxy)."""
        if self.phased:
            return [f"[upgrade/addon] Skipping upgrade of addons because control plane instances "
                    f"[{' '.join(behind)}] have not been upgraded"] * 2
        return [f"[upgrade/addons] skip upgrade addons because control plane instances [{' '.join(behind)}] "
                "have not been upgraded"]

    def apply_succeeded(self, target: KubeVersion) -> list[str]:
        if self.phased:
            return ["", f'[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target.tag}".',
                    "", "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order."]
        return ["", f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target.tag}". Enjoy!', "",
                "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading "
                "your kubelets if you haven't already done so."]

    def node_succeeded(self) -> list[str]:
        if self.phased:
            return []  # the phases' own lines say it
        return ["[upgrade] The configuration for this node was successfully updated!",
                "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."]

    # -- kubeadm version -----------------------------------------------------------------------
    def version_info(self, version: KubeVersion) -> dict[str, str]:
        year, month, day = _GA.get(self.minor, _GA[max(_GA)])
        month += version.patch  # a patch release about every month
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        import hashlib  # only `kubeadm version` in its long forms

        digest = hashlib.sha1(f"kubernetes {version.tag}".encode()).hexdigest()
        info = {"major": str(version.major), "minor": str(version.minor)}
        if self.minor >= 33:
            info.update(emulationMajor="", emulationMinor="", minCompatibilityMajor="",
                        minCompatibilityMinor="")
        info.update(gitVersion=version.tag, gitCommit=digest, gitTreeState="clean",
                    buildDate=f"{year:04d}-{month:02d}-{min(day, 28):02d}T{int(digest[:2], 16) % 24:02d}:"
                              f"{int(digest[2:4], 16) % 60:02d}:{int(digest[4:6], 16) % 60:02d}Z",
                    goVersion=_GO.get(self.minor, _GO[max(_GO)]), compiler="gc", platform="linux/amd64")
        return info


def dialect_of(kubeadm: KubeVersion) -> Dialect:
    return Dialect(kubeadm.minor)


def tabulate(rows: list[list[str]]) -> list[str]:
    """Go's tabwriter as kubeadm configures it (minimum width 10, padding 3): every column but
    the last as wide as its widest cell plus three."""
    widths = [max(10, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]) - 1)]
    return ["".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + row[-1]
            for row in rows]


def klog_stamp() -> str:
    import os
    import time

    now = time.time()
    return (time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d} "
            f"{os.getpid():>7}")
