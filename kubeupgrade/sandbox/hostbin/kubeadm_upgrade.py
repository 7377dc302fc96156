"""Simulated `kubeadm upgrade plan|apply|node` (`kubeadm` parses the command line and runs
`version` itself).

Behaviour follows kubeadm's: `apply` refuses a target more than one minor above the cluster, a
kubeadm older than the target, and NotReady control-plane nodes; it backs up manifests (and etcd
data) under /etc/kubernetes/tmp, rewrites the static pod manifests and waits for the kubelet to
run them, updates `kubeadm-config` and the kubelet configuration, and upgrades CoreDNS and
kube-proxy only once every control-plane instance runs the new version (kubeadm >= 1.28).
`upgrade node` follows the version in `kubeadm-config`. Every step converges on a re-run.
"""

from __future__ import annotations

import os
import time

from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.versions import KubeVersion, MinorVersion, parse_version
from kubeupgrade.sandbox import releases
from kubeupgrade.sandbox.hostbin.apiclient import ApiFailure, ApiUnavailable, KubeClient, load_yaml
from kubeupgrade.sandbox.hostbin.context import TYPE_CHECKING, Host
from kubeupgrade.sandbox.hostbin.kubeadm import (
    STACK_HINT,
    flag_enabled,
    kubeadm_version,
    parse_flags,
)
from kubeupgrade.sandbox.hostbin.kubeadm_dialect import dialect_of, klog_stamp, tabulate

# `kubeadm upgrade node` on a worker, a new process on every worker of every upgrade, reads two
# ConfigMaps and writes one file: the object factory, the static pod manifests, `shutil` and
# `typing` are imported by the parts of a control plane's upgrade that use them (with them, the
# imports were most of a worker's run).
if TYPE_CHECKING:
    from typing import Any

CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
KUBELET_CONFIGMAP = "/api/v1/namespaces/kube-system/configmaps/kubelet-config"


def _client(host: Host, flags: dict[str, str], default: str) -> KubeClient:
    path = flags.get("kubeconfig", default)
    try:
        client = KubeClient(host.file(path))
    except FileNotFoundError:
        raise host.fail(f'couldn\'t create a Kubernetes client from file "{path}": failed to load '
                        f"admin kubeconfig: open {path}: no such file or directory\n{STACK_HINT}", 1) from None
    except (ValueError, KeyError, IndexError, TypeError, OSError) as error:  # kubeadm's words, no traceback
        reason = f"missing {error}" if isinstance(error, (KeyError, IndexError)) else str(error)
        raise host.fail(f'couldn\'t create a Kubernetes client from file "{path}": failed to load '
                        f"admin kubeconfig: invalid configuration: {reason}\n{STACK_HINT}", 1) from None
    host.connections.append(client)
    return client


def _call(host: Host, what: str, action: Any) -> Any:
    try:
        return action()
    except ApiUnavailable as error:
        raise host.fail(f"{what}: {error}\n{STACK_HINT}", 1) from None
    except ApiFailure as error:
        raise host.fail(f"{what}: {error}\n{STACK_HINT}", 1) from None


def _cluster_configuration(host: Host, client: KubeClient, command: str
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
    for line in dialect_of(kubeadm_version(host)).reading_config(command):
        host.out(line)
    configmap = _call(host, "[upgrade/config] FATAL: unable to fetch the kubeadm-config ConfigMap",
                      lambda: client.get(CONFIGMAP))
    config = load_yaml(configmap["data"]["ClusterConfiguration"])
    # kubeadm supports control planes from one minor below its own (MinimumControlPlaneVersion).
    kubeadm, cluster = kubeadm_version(host), parse_version(config["kubernetesVersion"])
    if cluster.minor_version.minor < kubeadm.minor_version.minor - 1:
        raise host.fail("[upgrade/config] FATAL: this version of kubeadm only supports deploying "
                        f"clusters with the control plane version >= v1.{kubeadm.minor - 1}.0. Current "
                        f"version: {config['kubernetesVersion']}\n{STACK_HINT}", 1)
    return configmap, config


def _control_plane_versions(host: Host, client: KubeClient) -> dict[str, KubeVersion]:
    pods = _call(host, "[upgrade] FATAL: unable to list control plane pods", lambda: client.get(
        "/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver"))["items"]
    return {pod["spec"]["nodeName"]: parse_version(pod["spec"]["containers"][0]["image"].rsplit(":", 1)[1])
            for pod in pods}


def _preflight(host: Host, client: KubeClient, flags: dict[str, str], command: str) -> None:
    from kubeupgrade.sandbox import objects

    host.out(dialect_of(kubeadm_version(host)).preflight(command))
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
                            kubeadm: KubeVersion, kubelets: list[KubeVersion], force: bool) -> None:
    """kubeadm's version skew policy: what no flag gets past, and what only --force does."""
    mandatory, skippable = [], []
    if target.minor > cluster.minor + 1 or target.major != cluster.major:
        mandatory.append(f'Specified version to upgrade to "{target.tag}" is too high; kubeadm can '
                         "upgrade only 1 minor version at a time")
    if target.minor < cluster.minor - 1:
        mandatory.append(f'Specified version to downgrade to "{target.tag}" is too low; kubeadm can '
                         "downgrade only 1 minor version at a time")
    if kubeadm < target:
        if target.minor > kubeadm.minor:
            mandatory.append(f'Specified version to upgrade to "{target.tag}" is at least one minor '
                             f"release higher than the kubeadm minor release ({target.minor} > "
                             f"{kubeadm.minor}). Such an upgrade is not supported")
        else:
            skippable.append(f'Specified version to upgrade to "{target.tag}" is higher than the '
                             f'kubeadm version "{kubeadm.tag}". Upgrade kubeadm first using the tool '
                             "you used to install kubeadm")
    if kubeadm.major > target.major or kubeadm.minor > target.minor:
        skippable.append(f"Kubeadm version {kubeadm.tag} can only be used to upgrade to Kubernetes "
                         f"version {kubeadm.major}.{kubeadm.minor}")
    too_old = sorted({k.tag for k in kubelets if target.minor > k.minor + 1})
    if too_old:
        skippable.append("There are kubelets in this cluster that are too old that have these "
                         f"versions [{' '.join(too_old)}]")
    dialect = dialect_of(kubeadm)
    if mandatory:
        raise host.fail(dialect.version_errors(True, mandatory) + f"\n{STACK_HINT}", 1)
    if skippable and not force:
        raise host.fail(dialect.version_errors(False, skippable) + f"\n{STACK_HINT}", 1)
    if skippable:
        host.out(f"[upgrade/version] Found {len(skippable)} potential version compatibility errors but "
                 "skipping since the --force flag is set: \n\n" + "".join(f"\t- {e}\n" for e in skippable))


def _confirm(host: Host, flags: dict[str, str]) -> None:
    if any(flag_enabled(flags, name, False) for name in ("yes", "force", "dry-run")):
        return
    answer = host.ask("[upgrade] Are you sure you want to proceed? [y/N]: ").strip().lower()
    if answer not in ("y", "yes"):
        raise host.fail("won't proceed; the user didn't answer (Y|y) in order to continue\n"
                        f"{STACK_HINT}", 1)


# Flags kubeadm lets stand beside --config (validation.ValidateMixedArguments). From 1.30 on,
# `kubeadm upgrade` checks: any other flag given with --config is refused, `--certificate-renewal`
# and `--etcd-upgrade` included (their settings belong in the file). `--yes` joined the list in
# 1.31.0 and, backported, in 1.30.4: 1.30.0-1.30.3 cannot take --config without a prompt.
_MIXABLE_WITH_CONFIG = frozenset({"config", "ignore-preflight-errors", "dry-run", "kubeconfig", "v"})
_CHECKS_MIXED_FROM = KubeVersion(1, 30, 0)
_YES_MIXABLE_FROM = KubeVersion(1, 30, 4)
# kubeadm reads an UpgradeConfiguration (kubeadm.k8s.io/v1beta4) from --config, for `upgrade node`
# too, from 1.31; before, `upgrade node` has no --config flag.
UPGRADE_CONFIGURATION_FROM = KubeVersion(1, 31, 0)


def _refuse_mixed_config(host: Host, flags: dict[str, str], kubeadm: KubeVersion) -> None:
    if "config" not in flags or kubeadm < _CHECKS_MIXED_FROM:
        return
    mixable = _MIXABLE_WITH_CONFIG | ({"yes"} if kubeadm >= _YES_MIXABLE_FROM else set())
    mixed = sorted(name for name in flags if name not in mixable and not name.startswith("skip-"))
    if mixed:  # pflag visits the flags set in lexical order
        raise host.fail(f"can not mix '--config' with arguments [{' '.join(mixed)}]\n{STACK_HINT}", 1)


def _upgrade_configuration(host: Host, path: str) -> dict[str, Any]:
    """kubeadm >= 1.31's reading of --config: the UpgradeConfiguration document, or kubeadm's
    defaults when the file has none; InitConfiguration and ClusterConfiguration documents are
    warned about and ignored (an upgrade does not reconfigure the cluster)."""
    import yaml

    try:
        text = host.path(path).read_text()
    except FileNotFoundError:
        raise host.fail(f'unable to load config from file "{path}": open {path}: no such file or '
                        f"directory\n{STACK_HINT}", 1) from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise host.fail(f"error converting YAML to JSON: yaml: {str(error).splitlines()[0]}\n{STACK_HINT}", 1) from None
    found: dict[str, Any] = {}
    for document in documents:
        if not isinstance(document, dict):
            continue
        kind, group_version = document.get("kind"), document.get("apiVersion", "")
        gvk = f"{group_version}, Kind={kind}"  # as Go's GroupVersionKind prints itself
        if kind in ("InitConfiguration", "ClusterConfiguration"):
            host.err(f"W{klog_stamp()} upgradeconfiguration.go:58] [config] WARNING: YAML document "
                     f"with GroupVersionKind {gvk} is deprecated for upgrade, please use config file "
                     "with kind of UpgradeConfiguration instead ")
        elif kind == "UpgradeConfiguration":
            found = document
    return found


def _section_flags(section: dict[str, Any], flags: dict[str, str], keys: tuple[tuple[str, str], ...]) -> None:
    """Settings of the configuration's section, for the flags not given (which --config forbids
    from 1.30 anyway): the flag wins where both are set."""
    for key, flag in keys:
        if key in section and flag not in flags:
            flags[flag] = "true" if section[key] else "false"


_APPLY_KEYS = (("certificateRenewal", "certificate-renewal"), ("etcdUpgrade", "etcd-upgrade"),
               ("forceUpgrade", "force"), ("dryRun", "dry-run"))
_NODE_KEYS = (("certificateRenewal", "certificate-renewal"), ("etcdUpgrade", "etcd-upgrade"),
              ("dryRun", "dry-run"))


def _target_from(host: Host, flags: dict[str, str], positional: list[str], kubeadm: KubeVersion) -> KubeVersion:
    text = positional[0] if positional else None  # the argument wins over the file's version
    if "config" in flags and kubeadm >= UPGRADE_CONFIGURATION_FROM:
        apply = _upgrade_configuration(host, flags["config"]).get("apply") or {}
        text = text or apply.get("kubernetesVersion")
        _section_flags(apply, flags, _APPLY_KEYS)
    elif text is None and "config" in flags:
        try:
            document = load_yaml(host.path(flags["config"]).read_text())
        except FileNotFoundError:
            raise host.fail(f'unable to read config from "{flags["config"]}" : open '
                            f'{flags["config"]}: no such file or directory\n{STACK_HINT}', 1) from None
        if not isinstance(document, dict) or document.get("kind") != "UpgradeConfiguration":
            raise host.fail(f'no UpgradeConfiguration found in "{flags["config"]}"\n{STACK_HINT}', 1)
        apply = document.get("apply") or {}
        text = apply.get("kubernetesVersion")
        _section_flags(apply, flags, _APPLY_KEYS)
    if text is None:
        raise host.fail(f"missing one or more required arguments. Required arguments: [version]\n{STACK_HINT}", 1)
    try:
        return parse_version(text)
    except InvalidInput:
        raise host.fail(f'[upgrade/version] FATAL: unable to parse version "{text}"\n{STACK_HINT}', 1) from None


def _plan(host: Host, args: list[str]) -> int:
    from kubeupgrade.sandbox import objects

    flags, positional = parse_flags(host, args)
    client = _client(host, flags, "/etc/kubernetes/admin.conf")
    kubeadm = kubeadm_version(host)
    dialect = dialect_of(kubeadm)
    if dialect.plan_per_node:  # until 1.30 the configuration was read before the preflight checks
        _preflight(host, client, flags, "plan")
    _, config = _cluster_configuration(host, client, "plan")
    if not dialect.plan_per_node:
        _preflight(host, client, flags, "plan")
    host.sleep("kubeadm upgrade plan")
    cluster = parse_version(config["kubernetesVersion"])
    # Until 1.30 kubeadm took the cluster's version from the API server it talked to.
    shown = config["kubernetesVersion"] if dialect.plan_per_node else _call(
        host, "[upgrade/versions] FATAL: unable to get the cluster version",
        lambda: client.get("/version"))["gitVersion"]
    series = max(releases.releases(cluster.minor_version) or [cluster])
    if positional:  # a given version stands for every release kubeadm would look up
        stable = series = parse_version(positional[0])
    else:  # the newest release of the next minor, else of this one
        stable = max(releases.releases(MinorVersion(cluster.major, cluster.minor + 1)) or [series])
    host.out("[upgrade] Running cluster health checks\n[upgrade] Fetching available versions to upgrade to")
    host.out(f"[upgrade/versions] Cluster version: {shown}\n"
             f"[upgrade/versions] kubeadm version: {kubeadm.tag}\n"
             f"[upgrade/versions] Target version: {stable.tag}\n"
             f"[upgrade/versions] Latest version in the {cluster.minor_version.tag} series: {series.tag}\n")
    upgrades = []
    if series > cluster and series.minor_version == cluster.minor_version:
        upgrades.append((f"version in the {cluster.minor_version.tag} series", series))
    if stable > cluster and stable.minor == cluster.minor + 1:
        upgrades.append(("stable version", stable))
    if not upgrades:
        return 0  # kubeadm says "Awesome, you're up-to-date!" only at -v1
    nodes = _call(host, "[upgrade] FATAL: unable to list nodes", lambda: client.get("/api/v1/nodes"))["items"]
    apiservers = sorted(_control_plane_versions(host, client).items())
    for description, target in upgrades:
        kubelets = [(n["metadata"]["name"], n["status"]["nodeInfo"]["kubeletVersion"]) for n in nodes
                    if n["status"]["nodeInfo"]["kubeletVersion"] != target.tag]
        host.out("Components that must be upgraded manually after you have upgraded the control plane "
                 "with 'kubeadm upgrade apply':")
        for line in tabulate(dialect.plan_kubelets(kubelets, target.tag)):
            host.out(line)
        host.out(f"\nUpgrade to the latest {description}:\n")
        static = [(component, node, version.tag if dialect.plan_per_node else shown)
                  for component in objects.STATIC_COMPONENTS[1:] for node, version in apiservers]
        proxy = config["kubernetesVersion"] if dialect.plan_per_node else shown
        coredns = (releases.coredns_version(cluster.minor_version), releases.coredns_version(target.minor_version))
        etcd = [(node, releases.etcd_version(version.minor_version), releases.etcd_version(target.minor_version))
                for node, version in apiservers]
        for line in tabulate(dialect.plan_components(static, proxy, coredns, etcd, target.tag)):
            host.out(line)
        host.out(f"\nYou can now apply the upgrade by executing the following command:\n\n"
                 f"\tkubeadm upgrade apply {target.tag}\n")
        if kubeadm < target:
            host.out(f"Note: Before you can perform this upgrade, you have to update kubeadm to {target.tag}.\n")
        host.out("_" * 69 + "\n")
    host.out("\nThe table below shows the current state of component configs as understood by this "
             "version of kubeadm.\nConfigs that have a \"yes\" mark in the \"MANUAL UPGRADE REQUIRED\" "
             "column require manual config upgrade or\nresetting to kubeadm defaults before a successful "
             "upgrade can be performed. The version to manually\nupgrade to is denoted in the "
             "\"PREFERRED VERSION\" column.\n")
    for line in tabulate([["API GROUP", "CURRENT VERSION", "PREFERRED VERSION", "MANUAL UPGRADE REQUIRED"],
                          ["kubeproxy.config.k8s.io", "v1alpha1", "v1alpha1", "no"],
                          ["kubelet.config.k8s.io", "v1beta1", "v1beta1", "no"]]):
        host.out(line)
    host.out("_" * 69 + "\n")
    return 0


def _stamp() -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S")


_CERTIFICATES = {"etcd": ("etcd-server", "etcd-peer", "etcd-healthcheck-client"),
                 "kube-apiserver": ("apiserver", "apiserver-kubelet-client", "front-proxy-client",
                                    "apiserver-etcd-client"),
                 "kube-controller-manager": ("controller-manager.conf",),
                 "kube-scheduler": ("scheduler.conf",)}


def _upgrade_static_pods(host: Host, client: KubeClient, target: KubeVersion, etcd: bool,
                         renew: bool, step: str) -> None:
    """Back up and rewrite the manifests that change, and wait for the kubelet to run each one
    before the next, as kubeadm does; on a timeout put the old manifests back."""
    import shutil

    import yaml

    from kubeupgrade.sandbox import objects
    from kubeupgrade.sandbox.hosts import static_pod_manifest

    dialect = dialect_of(kubeadm_version(host))
    manifests = host.path("/etc/kubernetes/manifests")
    backup = host.path(f"/etc/kubernetes/tmp/kubeadm-backup-manifests-{_stamp()}")
    shown = f"/{backup.relative_to(host.root).as_posix()}"
    writing = ('[upgrade/staticpods] Writing new Static Pod manifests to '
               f'"/etc/kubernetes/tmp/kubeadm-upgraded-manifests{_suffix()}"')
    if dialect.phased:
        host.out(writing)
    elif etcd:
        host.out("[upgrade/etcd] Upgrading to TLS for etcd")
    changed: list[str] = []
    etcd_backup = None
    components = [c for c in objects.STATIC_COMPONENTS if etcd or c != "etcd"]
    for component in components:
        if component == "kube-apiserver" and not dialect.phased:
            host.out(writing)
        host.out(f'[upgrade/staticpods] Preparing for "{component}" upgrade')
        path = manifests / f"{component}.yaml"
        image = objects.component_image(component, target.tag)
        current = yaml.safe_load(path.read_text()) if path.exists() else None
        if current and current["spec"]["containers"][0]["image"] == image:
            host.out(f"[upgrade/staticpods] Current and new manifests of {component} are equal, skipping upgrade")
            if component == "etcd":
                host.out("[upgrade/etcd] Waiting for etcd to become available")
            continue
        if renew:
            for certificate in _CERTIFICATES[component]:
                host.out(f"[upgrade/staticpods] Renewing {certificate} certificate")
        if component == "etcd":  # kubeadm keeps a copy of the member's data beside the manifests
            etcd_backup = host.path(f"/etc/kubernetes/tmp/kubeadm-backup-etcd-{_stamp()}")
            shutil.copytree(host.path("/var/lib/etcd"), etcd_backup / "etcd", dirs_exist_ok=True)
        backup.mkdir(parents=True, exist_ok=True)
        if path.exists():
            shutil.copy2(path, backup / path.name)
        host.out(dialect.moved_manifest(component, shown))
        path.write_text(static_pod_manifest(component, image))
        changed.append(component)
        host.notify_kubelet()
        host.out("[upgrade/staticpods] Waiting for the kubelet to restart the component\n"
                 "[upgrade/staticpods] This can take up to 5m0s")
        host.sleep(step, 0.5 / max(1, len(components)))
        host.maybe_crash(f"after writing the {component} manifest")
        _wait_for_component(host, client, component, image, changed, backup, etcd_backup,
                            step.rsplit(" ", 1)[-1])
        if component == "etcd":
            host.out("[upgrade/etcd] Waiting for etcd to become available")


def _wait_for_component(host: Host, client: KubeClient, component: str, image: str,
                        changed: list[str], backup: Any, etcd_backup: Any, command: str) -> None:
    """Wait for the kubelet to run the new manifest (kubeadm waits for the mirror pod's hash to
    change); on a timeout put back every manifest changed so far, and etcd's data if etcd's was
    one of them, then fail in the words of kubeadm's minor (`command`: apply or node). Like
    kubeadm, it looks through API errors until the timeout: the API server it asks may be the
    one restarting (a single control plane's, during its own upgrade)."""
    import shutil

    from kubeupgrade.sandbox.disruption import is_pod_ready

    manifests = host.path("/etc/kubernetes/manifests")
    name = f"{component}-{host.node}"
    deadline = time.monotonic() + max(10.0, host.timing.seconds("static pod restart") * 20)
    unreadable = ""
    while True:
        try:
            pod = client.get(f"/api/v1/namespaces/kube-system/pods/{name}")
            running = pod["spec"]["containers"][0]["image"] == image and is_pod_ready(pod)
            pods = client.get(f"/api/v1/namespaces/kube-system/pods?labelSelector=component%3D{component}"
                              )["items"] if running else []
            unreadable = ""
        except (ApiUnavailable, ApiFailure) as error:
            running, unreadable = False, str(error)
        if running:
            host.out(f"[apiclient] Found {len(pods)} Pods for label selector component={component}\n"
                     f'[upgrade/staticpods] Component "{component}" upgraded successfully!')
            return
        if time.monotonic() > deadline:
            for restore in changed:
                saved = backup / f"{restore}.yaml"
                if saved.exists():
                    shutil.copy2(saved, manifests / saved.name)
            if "etcd" in changed and etcd_backup is not None:
                shutil.rmtree(host.path("/var/lib/etcd"), ignore_errors=True)
                shutil.copytree(etcd_backup / "etcd", host.path("/var/lib/etcd"))
            host.notify_kubelet()
            lines, error = dialect_of(kubeadm_version(host)).static_pod_timed_out(
                component, host.node, command, unreadable)
            for line in lines:
                host.out(line)
            raise host.fail(f"{error}\n{STACK_HINT}", 1)
        time.sleep(0.05)


def _suffix() -> str:
    return str(int(time.time() * 1000) % 10**10)


def _renew_certificates(host: Host) -> None:
    pki = host.path("/etc/kubernetes/pki")
    for certificate in sorted(pki.glob("*.crt")):
        certificate.write_text(f"sandbox certificate, renewed at {time.time():.0f}\n")


def _write_kubelet_config(host: Host, client: KubeClient, version: KubeVersion) -> None:
    configmap = _call(host, "[upgrade/kubelet-config] FATAL: unable to fetch the kubelet-config ConfigMap",
                      lambda: client.get(KUBELET_CONFIGMAP))
    temporary = f"/etc/kubernetes/tmp/kubeadm-kubelet-config{_suffix()}"
    os.makedirs(host.file(temporary), exist_ok=True)
    current = "/var/lib/kubelet/config.yaml"
    try:
        previous = host.read_file(current)
    except FileNotFoundError:
        previous = None
    if previous is not None:
        host.write_file(f"{temporary}/config.yaml", previous)
    lines, warning = dialect_of(kubeadm_version(host)).kubelet_config(temporary)
    if warning:
        host.err(warning)
    host.write_file(current, configmap["data"]["kubelet"])
    for line in lines:
        host.out(line)


def _upgrade_addons(host: Host, client: KubeClient, target: KubeVersion) -> None:
    from kubeupgrade.sandbox import objects

    versions = _control_plane_versions(host, client)
    behind = sorted(node for node, version in versions.items() if version != target)
    if behind:  # kubeadm >= 1.28 moves the addons only once every control plane runs the version
        for line in dialect_of(kubeadm_version(host)).addons_waiting_for(behind):
            host.out(line)
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
    import yaml

    from kubeupgrade.sandbox import objects

    flags, positional = parse_flags(host, args)
    kubeadm = kubeadm_version(host)
    _refuse_mixed_config(host, flags, kubeadm)
    target = _target_from(host, flags, positional, kubeadm)
    client = _client(host, flags, "/etc/kubernetes/admin.conf")
    dialect = dialect_of(kubeadm)
    if not dialect.phased:
        _preflight(host, client, flags, "apply")
    configmap, config = _cluster_configuration(host, client, "apply")
    if dialect.phased:
        _preflight(host, client, flags, "apply")
    cluster = parse_version(config["kubernetesVersion"])
    host.out(f"[upgrade] Running cluster health checks\n{dialect.chosen(target)}\n"
             f"[upgrade/versions] Cluster version: {config['kubernetesVersion']}\n"
             f"[upgrade/versions] kubeadm version: {kubeadm.tag}")
    nodes = _call(host, "[upgrade] FATAL: unable to list nodes", lambda: client.get("/api/v1/nodes"))["items"]
    kubelets = [parse_version(n["status"]["nodeInfo"]["kubeletVersion"]) for n in nodes]
    _enforce_version_policy(host, cluster, target, kubeadm, kubelets, flag_enabled(flags, "force", False))
    _confirm(host, flags)
    etcd = flag_enabled(flags, "etcd-upgrade", True)
    renew = flag_enabled(flags, "certificate-renewal", True)
    if flag_enabled(flags, "dry-run", False):
        host.out(f"[dryrun] Would back up and rewrite the static pod manifests for {target.tag} "
                 f"(etcd: {'yes' if etcd else 'no'}), update the kubeadm-config and kubelet-config "
                 "ConfigMaps and, once every control plane runs it, CoreDNS and kube-proxy\n"
                 "[upgrade/successful] Finished dryrunning successfully!")
        return 0
    for line in dialect.prepull("apply"):
        host.out(line)
    host.out(dialect.upgrading_control_plane(target, instance=False))
    _upgrade_static_pods(host, client, target, etcd, renew, "kubeadm upgrade apply")
    host.sleep("kubeadm upgrade apply", 0.3)
    if renew:
        _renew_certificates(host)
    if dialect.phased:
        host.out(dialect.control_plane_done())
    config["kubernetesVersion"] = target.tag
    configmap["data"]["ClusterConfiguration"] = yaml.safe_dump(config, sort_keys=True)
    _call(host, "[upgrade/postupgrade] FATAL: unable to update the kubeadm-config ConfigMap",
          lambda: client.put(CONFIGMAP, configmap))
    host.out('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
    kubelet_cm = _call(host, "[upgrade/kubelet-config] FATAL", lambda: client.get(KUBELET_CONFIGMAP))
    kubelet_cm["data"]["kubelet"] = objects.kubelet_configuration(target.tag, kubelet_cm["data"].get("kubelet"))
    _call(host, "[upgrade/kubelet-config] FATAL: unable to update the kubelet-config ConfigMap",
          lambda: client.put(KUBELET_CONFIGMAP, kubelet_cm))
    host.out('[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the '
             "configuration for the kubelets in the cluster")
    for line in dialect.kubeconfig_done():
        host.out(line)
    _write_kubelet_config(host, client, target)
    for line in dialect.bootstrap_token():
        host.out(line)
    host.sleep("kubeadm upgrade apply", 0.2)
    _upgrade_addons(host, client, target)
    for line in dialect.apply_succeeded(target):
        host.out(line)
    return 0


def _node(host: Host, args: list[str]) -> int:
    flags, _ = parse_flags(host, args)
    kubeadm = kubeadm_version(host)
    if "config" in flags:
        if kubeadm < UPGRADE_CONFIGURATION_FROM:
            raise host.fail(f"unknown flag: --config\n{STACK_HINT}", 1)
        _refuse_mixed_config(host, flags, kubeadm)
        _section_flags(_upgrade_configuration(host, flags["config"]).get("node") or {}, flags, _NODE_KEYS)
    default = "/etc/kubernetes/admin.conf" if os.path.exists(host.file("/etc/kubernetes/admin.conf")) \
        else "/etc/kubernetes/kubelet.conf"
    client = _client(host, flags, default)
    dialect = dialect_of(kubeadm)
    _, config = _cluster_configuration(host, client, "node")
    cluster = parse_version(config["kubernetesVersion"])
    if kubeadm.minor_version < cluster.minor_version:
        raise host.fail(f"[upgrade] FATAL: the kubeadm version ({kubeadm.tag}) is older than the "
                        f"cluster version ({cluster.tag}); upgrade kubeadm first\n{STACK_HINT}", 1)
    control_plane = os.path.exists(host.file("/etc/kubernetes/manifests/kube-apiserver.yaml"))
    if control_plane:
        _preflight(host, client, flags, "node")
        for line in dialect.prepull("node"):
            host.out(line)
        host.out(dialect.upgrading_control_plane(cluster, instance=True))
        renew = flag_enabled(flags, "certificate-renewal", True)
        _upgrade_static_pods(host, client, cluster, flag_enabled(flags, "etcd-upgrade", True), renew,
                             "kubeadm upgrade node")
        if renew:
            _renew_certificates(host)
        if not dialect.phased:
            _upgrade_addons(host, client, cluster)
        host.out(dialect.control_plane_done())
        for line in dialect.kubeconfig_done():
            host.out(line)
    else:
        host.out(dialect.preflight("node"))
        for line in dialect.not_a_control_plane():
            host.out(line)
    host.sleep("kubeadm upgrade node", 0.5)
    host.maybe_crash("before writing the kubelet configuration")
    _write_kubelet_config(host, client, cluster)
    if control_plane and dialect.phased:
        _upgrade_addons(host, client, cluster)
    elif not control_plane:
        for line in dialect.addons_skipped_on_worker():
            host.out(line)
    for line in dialect.node_succeeded():
        host.out(line)
    return 0


COMMANDS = {"plan": _plan, "apply": _apply, "node": _node}
