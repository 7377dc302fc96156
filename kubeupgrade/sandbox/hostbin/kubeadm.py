"""Simulated kubeadm: `version`, `upgrade plan`, `upgrade apply`, `upgrade node`.

Behaviour follows kubeadm's: `apply` refuses a target more than one minor above the cluster, a
kubeadm older than the target, and NotReady control-plane nodes; it backs up manifests (and etcd
data) under /etc/kubernetes/tmp, rewrites the static pod manifests and waits for the kubelet to
run them, updates `kubeadm-config` and the kubelet configuration, and upgrades CoreDNS and
kube-proxy only once every control-plane instance runs the new version (kubeadm >= 1.28).
`upgrade node` follows the version in `kubeadm-config`. Every step converges on a re-run.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any

import yaml

from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.versions import KubeVersion, parse_version
from kubeupgrade.sandbox import objects, releases
from kubeupgrade.sandbox.disruption import is_pod_ready
from kubeupgrade.sandbox.hostbin.apiclient import ApiFailure, ApiUnavailable, KubeClient
from kubeupgrade.sandbox.hostbin.context import Host
from kubeupgrade.sandbox.hosts import static_pod_manifest

CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
KUBELET_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/kubelet-config"
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"


def kubeadm_version(host: Host) -> KubeVersion:
    return parse_version(host.installed("kubeadm"))


def main(host: Host, args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        host.out("Usage:\n  kubeadm [command]\n\nAvailable Commands:\n  upgrade     Upgrade your "
                 "cluster smoothly to a newer version with this command\n  version     Print the "
                 "version of kubeadm")
        return 0
    if args[0] == "version":
        return _version(host, args[1:])
    if args[0] == "upgrade" and len(args) > 1 and args[1] in ("plan", "apply", "node"):
        return {"plan": _plan, "apply": _apply, "node": _node}[args[1]](host, args[2:])
    raise host.fail(f'unknown command "{" ".join(args[:2])}" for "kubeadm"\n{STACK_HINT}', 1)


# -- arguments --------------------------------------------------------------------------------
_BOOLEAN_FLAGS = {"--yes", "-y", "--force", "-f", "--dry-run", "--certificate-renewal",
                  "--etcd-upgrade", "--allow-experimental-upgrades",
                  "--allow-release-candidate-upgrades", "--print-config"}
_VALUE_FLAGS = {"--config", "--kubeconfig", "--ignore-preflight-errors", "--v", "-v", "-o",
                "--output", "--patches", "--skip-phases"}


def _parse(host: Host, args: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, has_value, value = arg.partition("=")
        if name in _BOOLEAN_FLAGS:
            flags[_canonical(name)] = value if has_value else "true"
        elif name in _VALUE_FLAGS:
            if not has_value:
                index += 1
                if index >= len(args):
                    raise host.fail(f"flag needs an argument: {name}\n{STACK_HINT}", 1)
                value = args[index]
            flags[_canonical(name)] = value
        elif arg.startswith("-"):
            raise host.fail(f"unknown flag: {name}\n{STACK_HINT}", 1)
        else:
            positional.append(arg)
        index += 1
    for name in ("certificate-renewal", "etcd-upgrade", "yes", "force", "dry-run"):
        if flags.get(name, "true") not in ("true", "false"):
            raise host.fail(f'invalid argument "{flags[name]}" for "--{name}" flag: '
                            f'strconv.ParseBool: parsing "{flags[name]}": invalid syntax', 1)
    return flags, positional


def _canonical(flag: str) -> str:
    return {"-y": "yes", "-f": "force", "-v": "v", "-o": "output"}.get(flag, flag.lstrip("-"))


def _enabled(flags: dict[str, str], name: str, default: bool) -> bool:
    return flags.get(name, "true" if default else "false") == "true"


# -- commands ---------------------------------------------------------------------------------
def _version(host: Host, args: list[str]) -> int:
    flags, _ = _parse(host, args)
    version = kubeadm_version(host)
    info = {"major": str(version.major), "minor": str(version.minor), "gitVersion": version.tag,
            "gitCommit": "sandbox", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64"}
    output = flags.get("output", "")
    if output == "short":
        host.out(version.tag)
    elif output == "json":
        host.out(json.dumps({"clientVersion": info}, indent=2))
    elif output == "yaml":
        host.out(yaml.safe_dump({"clientVersion": info}, sort_keys=False).rstrip())
    elif output == "":
        fields = ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
        host.out(f"kubeadm version: &version.Info{{{fields}}}")
    else:
        raise host.fail(f'error: invalid output format "{output}"; valid formats: short, json, yaml\n{STACK_HINT}', 1)
    return 0


def _client(host: Host, flags: dict[str, str], default: str) -> KubeClient:
    path = flags.get("kubeconfig", default)
    try:
        return KubeClient(host.path(path))
    except FileNotFoundError:
        raise host.fail(f'couldn\'t create a Kubernetes client from file "{path}": failed to load '
                        f"admin kubeconfig: open {path}: no such file or directory\n{STACK_HINT}", 1) from None


def _call(host: Host, what: str, action: Any) -> Any:
    try:
        return action()
    except ApiUnavailable as error:
        raise host.fail(f"{what}: {error}\n{STACK_HINT}", 1) from None
    except ApiFailure as error:
        raise host.fail(f"{what}: {error}\n{STACK_HINT}", 1) from None


def _cluster_configuration(host: Host, client: KubeClient) -> tuple[dict[str, Any], dict[str, Any]]:
    host.out('[upgrade/config] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...')
    configmap = _call(host, "[upgrade/config] FATAL: unable to fetch the kubeadm-config ConfigMap",
                      lambda: client.get(CONFIGMAP))
    return configmap, yaml.safe_load(configmap["data"]["ClusterConfiguration"])


def _control_plane_versions(host: Host, client: KubeClient) -> dict[str, KubeVersion]:
    pods = _call(host, "[upgrade] FATAL: unable to list control plane pods", lambda: client.get(
        "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver"))["items"]
    return {pod["spec"]["nodeName"]: parse_version(pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1])
            for pod in pods}


def _preflight(host: Host, client: KubeClient, flags: dict[str, str]) -> None:
    host.out("[preflight] Running pre-flight checks.")
    nodes = _call(host, "[preflight] FATAL: unable to list nodes", lambda: client.get(
        "/api/v1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane"))["items"]
    not_ready = [n["metadata"]["name"] for n in nodes if objects.condition(n, "Ready") != "True"]
    ignored = flags.get("ignore-preflight-errors", "").lower().split(",")
    if not_ready and "controlplanenodesready" not in ignored and "all" not in ignored:
        raise host.fail(
            "[preflight] Some fatal errors occurred:\n"
            f"\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: "
            f"[{' '.join(not_ready)}]\n"
            "[preflight] If you know what you are doing, you can make a check non-fatal with "
            "`--ignore-preflight-errors=...`\n"
            f"error execution phase preflight: preflight checks failed\n{STACK_HINT}", 1)


def _enforce_version_policy(host: Host, cluster: KubeVersion, target: KubeVersion,
                            kubeadm: KubeVersion, force: bool) -> None:
    mandatory, skippable = [], []
    if target.minor_version.minor > cluster.minor_version.minor + 1 or target.major != cluster.major:
        mandatory.append(f'Specified version to upgrade to "{target.tag}" is too high; kubeadm can '
                         "upgrade only 1 minor version at a time")
    if kubeadm < target:
        if kubeadm.minor_version < target.minor_version:
            mandatory.append(f'Specified version to upgrade to "{target.tag}" is at least one minor '
                             f"release higher than the kubeadm minor release ({target.minor} > "
                             f"{kubeadm.minor}). Such an upgrade is not supported")
        else:
            skippable.append(f'Specified version to upgrade to "{target.tag}" is higher than the '
                             f'kubeadm version "{kubeadm.tag}". Upgrade kubeadm first using the tool '
                             "you used to install kubeadm")
    if target < cluster:
        skippable.append(f'Specified version to upgrade to "{target.tag}" is equal to or lower than '
                         f'the cluster version "{cluster.tag}". Downgrades are not supported yet')
    if mandatory:
        lines = "\n".join(f"\t- {m}" for m in mandatory + skippable)
        raise host.fail("[upgrade/version] FATAL: the --version argument is invalid due to these "
                        f"fatal errors:\n\n{lines}\n\nPlease fix the misalignments highlighted "
                        f"above and try upgrading again\n{STACK_HINT}", 1)
    if skippable and not force:
        lines = "\n".join(f"\t- {s}" for s in skippable)
        raise host.fail("[upgrade/version] FATAL: the --version argument is invalid due to these "
                        f"errors:\n\n{lines}\n\nCan be bypassed if you pass the --force flag\n"
                        f"{STACK_HINT}", 1)


def _confirm(host: Host, flags: dict[str, str]) -> None:
    if _enabled(flags, "yes", False) or _enabled(flags, "force", False) or _enabled(flags, "dry-run", False):
        return
    sys.stdout.write("[upgrade] Are you sure you want to proceed? [y/N]: ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise host.fail("won't proceed; the user didn't answer (Y|y) in order to continue\n"
                        f"{STACK_HINT}", 1)


def _target_from(host: Host, flags: dict[str, str], positional: list[str]) -> KubeVersion:
    text = positional[0] if positional else None
    if text is None and "config" in flags:
        try:
            document = yaml.safe_load(host.path(flags["config"]).read_text())
        except FileNotFoundError:
            raise host.fail(f'unable to read config from "{flags["config"]}" : open '
                            f'{flags["config"]}: no such file or directory\n{STACK_HINT}', 1) from None
        if not isinstance(document, dict) or document.get("kind") != "UpgradeConfiguration":
            raise host.fail(f'no UpgradeConfiguration found in "{flags["config"]}"\n{STACK_HINT}', 1)
        apply = document.get("apply") or {}
        text = apply.get("kubernetesVersion")
        for key, flag in (("certificateRenewal", "certificate-renewal"), ("etcdUpgrade", "etcd-upgrade"),
                          ("forceUpgrade", "force"), ("dryRun", "dry-run")):
            if key in apply and flag not in flags:
                flags[flag] = "true" if apply[key] else "false"
    if text is None:
        raise host.fail(f"missing one or more required arguments. Required arguments: [version]\n{STACK_HINT}", 1)
    try:
        return parse_version(text)
    except InvalidInput:
        raise host.fail(f'[upgrade/version] FATAL: unable to parse version "{text}"\n{STACK_HINT}', 1) from None


def _plan(host: Host, args: list[str]) -> int:
    flags, positional = _parse(host, args)
    client = _client(host, flags, "/etc/kubernetes/admin.conf")
    _, config = _cluster_configuration(host, client)
    _preflight(host, client, flags)
    host.sleep("kubeadm upgrade plan")
    cluster = parse_version(config["kubernetesVersion"])
    kubeadm = kubeadm_version(host)
    target = parse_version(positional[0]) if positional else max(kubeadm, cluster)
    latest_in_series = max(releases.releases(cluster.minor_version) or [cluster])
    host.out("[upgrade] Running cluster health checks\n[upgrade] Fetching available versions to upgrade to")
    host.out(f"[upgrade/versions] Cluster version: {cluster.tag}\n"
             f"[upgrade/versions] kubeadm version: {kubeadm.tag}\n"
             f"[upgrade/versions] Target version: {target.tag}\n"
             f"[upgrade/versions] Latest version in the {cluster.minor_version.tag} series: "
             f"{latest_in_series.tag}\n")
    nodes = _call(host, "[upgrade] FATAL: unable to list nodes", lambda: client.get("/api/v1/nodes"))["items"]
    host.out("Components that must be upgraded manually after you have upgraded the control plane "
             "with 'kubeadm upgrade apply':\nCOMPONENT   NODE" + " " * 20 + "CURRENT   TARGET")
    for node in nodes:
        host.out(f"kubelet     {node['metadata']['name']:<24}"
                 f"{node['status']['nodeInfo']['kubeletVersion']:<10}{target.tag}")
    host.out("\nUpgrade to the latest stable version:\n\nCOMPONENT                 NODE"
             + " " * 20 + "CURRENT   TARGET")
    apiservers = _control_plane_versions(host, client)
    for component in objects.STATIC_COMPONENTS:
        for node_name, version in sorted(apiservers.items()):
            current = releases.etcd_version(version.minor_version) if component == "etcd" else version.tag
            wanted = releases.etcd_version(target.minor_version) if component == "etcd" else target.tag
            host.out(f"{component:<26}{node_name:<24}{current:<10}{wanted}")
    host.out(f"kube-proxy                                        {cluster.tag:<10}{target.tag}")
    host.out(f"CoreDNS                                           "
             f"{releases.coredns_version(cluster.minor_version):<10}"
             f"{releases.coredns_version(target.minor_version)}")
    host.out(f"\nYou can now apply the upgrade by executing the following command:\n\n"
             f"\tkubeadm upgrade apply {target.tag}\n\n" + "_" * 69 + "\n")
    host.out("The table below shows the current state of component configs as understood by this "
             "version of kubeadm.\n\nAPI GROUP                 CURRENT VERSION   PREFERRED VERSION   "
             "MANUAL UPGRADE REQUIRED\nkubeproxy.config.k8s.io   v1alpha1          v1alpha1          "
             "  no\nkubelet.config.k8s.io     v1beta1           v1beta1             no\n" + "_" * 69)
    return 0


def _stamp() -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S")


def _upgrade_static_pods(host: Host, client: KubeClient, target: KubeVersion, etcd: bool,
                         step: str) -> None:
    """Back up and rewrite the manifests that change, then wait for the kubelet to run them."""
    manifests = host.path("/etc/kubernetes/manifests")
    backup = host.path(f"/etc/kubernetes/tmp/kubeadm-backup-manifests-{_stamp()}")
    changed: list[str] = []
    components = [c for c in objects.STATIC_COMPONENTS if etcd or c != "etcd"]
    for component in components:
        path = manifests / f"{component}.yaml"
        image = objects.component_image(component, target.tag)
        current = yaml.safe_load(path.read_text()) if path.exists() else None
        if current and current["spec"]["containers"][0]["image"] == image:
            host.out(f"[upgrade/staticpods] Current and new manifests of {component} are equal, skipping upgrade")
            continue
        if component == "etcd":
            etcd_backup = host.path(f"/etc/kubernetes/tmp/kubeadm-backup-etcd-{_stamp()}")
            host.out(f"[upgrade/etcd] Backing up etcd data to {etcd_backup.relative_to(host.root).as_posix()}")
            shutil.copytree(host.path("/var/lib/etcd"), etcd_backup / "etcd", dirs_exist_ok=True)
        backup.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.copy2(path, backup / path.name)
        host.out(f'[upgrade/staticpods] Moving new manifest to "/etc/kubernetes/manifests/{component}.yaml" '
                 f'and backing up old manifest to "/{backup.relative_to(host.root).as_posix()}/{component}.yaml"')
        path.write_text(static_pod_manifest(component, image))
        changed.append(component)
        host.notify_kubelet()
        host.sleep(step, 0.5 / max(1, len(components)))
        host.maybe_crash(f"after writing the {component} manifest")
    host.out("[upgrade/staticpods] Waiting for the kubelet to restart the components")
    deadline = time.monotonic() + max(10.0, host.timing.seconds("static pod restart") * 20)
    for component in changed:
        name = f"{component}-{host.node}"
        image = objects.component_image(component, target.tag)
        while True:
            pod = _call(host, f"[upgrade/staticpods] FATAL: unable to get pod {name}", lambda n=name: client.get(
                f"/api/v1/namespaces/kube-system/pods/{n}"))
            if pod["spec"]["containers"][0]["image"] == image and is_pod_ready(pod):
                host.out(f"[upgrade/staticpods] Component {component!r} upgraded successfully!")
                break
            if time.monotonic() > deadline:
                for restore in changed:
                    saved = backup / f"{restore}.yaml"
                    if saved.exists():
                        shutil.copy2(saved, manifests / saved.name)
                host.notify_kubelet()
                raise host.fail("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has "
                                "tried to recover everything into the earlier state. Errors faced: "
                                f"timed out waiting for the condition\n{STACK_HINT}", 1)
            time.sleep(0.05)


def _renew_certificates(host: Host) -> None:
    pki = host.path("/etc/kubernetes/pki")
    for certificate in sorted(pki.glob("*.crt")):
        certificate.write_text(f"sandbox certificate, renewed at {time.time():.0f}\n")
    host.out("[upgrade/postupgrade] Renewed the certificates managed by kubeadm on this node")


def _write_kubelet_config(host: Host, client: KubeClient, version: KubeVersion) -> None:
    configmap = _call(host, "[upgrade/kubelet-config] FATAL: unable to fetch the kubelet-config ConfigMap",
                      lambda: client.get(KUBELET_CONFIGMAP))
    host.path("/var/lib/kubelet/config.yaml").write_text(configmap["data"]["kubelet"])
    host.out("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!")


def _upgrade_addons(host: Host, client: KubeClient, target: KubeVersion) -> None:
    versions = _control_plane_versions(host, client)
    behind = sorted(node for node, version in versions.items() if version != target)
    if behind:
        host.out("[upgrade/addon] Skipping upgrade of addons because control plane instances "
                 f"[{' '.join(behind)}] have not been upgraded")
        return
    coredns = {"spec": {"template": {"spec": {"containers": [
        {"name": "coredns", "image": objects.coredns_image(target)}]}}}}
    proxy = {"spec": {"template": {"spec": {"containers": [
        {"name": "kube-proxy", "image": f"registry.k8s.io/kube-proxy:{target.tag}"}]}}}}
    _call(host, "[upgrade/addon] FATAL: unable to update CoreDNS", lambda: client.patch(
        "/apis/apps/v1/namespaces/kube-system/deployments/coredns", coredns))
    host.out("[addons] Applied essential addon: CoreDNS")
    _call(host, "[upgrade/addon] FATAL: unable to update kube-proxy", lambda: client.patch(
        "/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy", proxy))
    host.out("[addons] Applied essential addon: kube-proxy")


def _apply(host: Host, args: list[str]) -> int:
    flags, positional = _parse(host, args)
    target = _target_from(host, flags, positional)
    client = _client(host, flags, "/etc/kubernetes/admin.conf")
    configmap, config = _cluster_configuration(host, client)
    _preflight(host, client, flags)
    cluster = parse_version(config["kubernetesVersion"])
    kubeadm = kubeadm_version(host)
    host.out(f'[upgrade/version] You have chosen to change the cluster version to "{target.tag}"\n'
             f"[upgrade/versions] Cluster version: {cluster.tag}\n"
             f"[upgrade/versions] kubeadm version: {kubeadm.tag}")
    force = _enabled(flags, "force", False)
    _enforce_version_policy(host, cluster, target, kubeadm, force)
    _confirm(host, flags)
    etcd = _enabled(flags, "etcd-upgrade", True)
    if _enabled(flags, "dry-run", False):
        host.out(f"[dryrun] Would back up and rewrite the static pod manifests for {target.tag} "
                 f"(etcd: {'yes' if etcd else 'no'}), update the kubeadm-config and kubelet-config "
                 "ConfigMaps and, once every control plane runs it, CoreDNS and kube-proxy\n"
                 "[upgrade/successful] Finished dryrunning successfully!")
        return 0
    host.out(f'[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "{target.tag}" (timeout: 5m0s)...')
    _upgrade_static_pods(host, client, target, etcd, "kubeadm upgrade apply")
    host.sleep("kubeadm upgrade apply", 0.3)
    if _enabled(flags, "certificate-renewal", True):
        _renew_certificates(host)
    config["kubernetesVersion"] = target.tag
    configmap["data"]["ClusterConfiguration"] = yaml.safe_dump(config, sort_keys=True)
    _call(host, "[upgrade/postupgrade] FATAL: unable to update the kubeadm-config ConfigMap",
          lambda: client.put(CONFIGMAP, configmap))
    host.out('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    kubelet_cm = _call(host, "[upgrade/kubelet-config] FATAL", lambda: client.get(KUBELET_CONFIGMAP))
    kubelet_cm["data"]["kubelet"] = objects.kubelet_configuration(target.tag)
    _call(host, "[upgrade/kubelet-config] FATAL: unable to update the kubelet-config ConfigMap",
          lambda: client.put(KUBELET_CONFIGMAP, kubelet_cm))
    _write_kubelet_config(host, client, target)
    host.sleep("kubeadm upgrade apply", 0.2)
    _upgrade_addons(host, client, target)
    host.out(f'\n[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target.tag}". Enjoy!\n\n'
             "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading "
             "your kubelets if you haven't already done so.")
    return 0


def _node(host: Host, args: list[str]) -> int:
    flags, _ = _parse(host, args)
    default = "/etc/kubernetes/admin.conf" if host.path("/etc/kubernetes/admin.conf").exists() \
        else "/etc/kubernetes/kubelet.conf"
    client = _client(host, flags, default)
    _, config = _cluster_configuration(host, client)
    cluster = parse_version(config["kubernetesVersion"])
    kubeadm = kubeadm_version(host)
    if kubeadm.minor_version < cluster.minor_version:
        raise host.fail(f"[upgrade] FATAL: the kubeadm version ({kubeadm.tag}) is older than the "
                        f"cluster version ({cluster.tag}); upgrade kubeadm first\n{STACK_HINT}", 1)
    control_plane = host.path("/etc/kubernetes/manifests/kube-apiserver.yaml").exists()
    if control_plane:
        _preflight(host, client, flags)
        host.out(f'[upgrade] Upgrading your Static Pod-hosted control plane instance to version "{cluster.tag}"...')
        _upgrade_static_pods(host, client, cluster, _enabled(flags, "etcd-upgrade", True),
                             "kubeadm upgrade node")
        if _enabled(flags, "certificate-renewal", True):
            _renew_certificates(host)
        host.out("[upgrade] The control plane instance for this node was successfully updated!")
    else:
        host.out("[upgrade] Skipping phase. Not a control plane node.")
    host.sleep("kubeadm upgrade node", 0.5)
    host.maybe_crash("before writing the kubelet configuration")
    _write_kubelet_config(host, client, cluster)
    if control_plane:
        _upgrade_addons(host, client, cluster)
    host.out("[upgrade] The configuration for this node was successfully upgraded!\n"
             "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
    return 0
