"""The host phases of an upgrade, each idempotent: probe first, act only if needed, verify.

Called by the node agent's Celery tasks (`workers/`). Everything goes through the `Executor`
seam with argv lists; files are read and written under the host root (`/` on a real host, the
node's directory in the sandbox). A phase whose effect is already there returns "already-done"
without side effects — this is what makes retries and duplicate deliveries safe.
"""

from __future__ import annotations

import time
from typing import Any

from kubeupgrade.errors import PermanentError
from kubeupgrade.host import commands
from kubeupgrade.host.context import (
    ALREADY_DONE,
    DONE,
    HostCommandFailed,
    HostCommandRefused,
    HostContext,
    StepOutcome,
)
from kubeupgrade.host.listings import select_package_version
from kubeupgrade.host.upgrade_configuration import FIRST_MINOR, Wanted, configuration_problems
from kubeupgrade.model.versions import KubeVersion, MinorVersion, VersionSpec, parse_version

__all__ = ["ALREADY_DONE", "DONE", "HostCommandFailed", "HostCommandRefused", "HostContext",
           "StepOutcome"]


# -- facts -------------------------------------------------------------------------------------
def kubeadm_version(ctx: HostContext) -> KubeVersion | None:
    result = ctx.run(commands.kubeadm_version(ctx.platform.kubeadm(ctx)), "kubeadm version", check=False)
    if result is None or not result.ok:
        return None
    try:
        return parse_version(result.stdout.strip())
    except ValueError:
        return None


def host_facts(ctx: HostContext) -> dict[str, Any]:
    platform = ctx.platform
    return {
        "os": platform.name,
        **platform.facts(ctx),  # installed versions, source, swap (where the platform has it)
        "admin_conf": ctx.path("/etc/kubernetes/admin.conf").exists(),
    }


# -- where binaries come from -------------------------------------------------------------------
def set_repository(ctx: HostContext, minor: MinorVersion) -> StepOutcome:
    """Point the host's source of Kubernetes binaries at `minor` (its package repository)."""
    return ctx.platform.set_source(ctx, minor)


def restore_repository(ctx: HostContext, minor: MinorVersion) -> StepOutcome:
    """Put back the repository configuration this campaign's hop replaced when it pointed the
    host at `minor` (after the hop failed or was aborted), and refresh metadata."""
    return ctx.platform.restore_source(ctx, minor)


def resolve_target(ctx: HostContext, target: VersionSpec) -> StepOutcome:
    """Set the source to the target's minor and list what it offers there.

    `data["available"]` maps each version of the minor for which every component the host
    runs is published to this host's exact package string; the dispatcher picks the one
    version every node has.
    """
    platform = ctx.platform
    set_repository(ctx, target.minor_version)
    components = platform.components
    listing = platform.offered_all(ctx, components, target)
    try:
        chosen = select_package_version(listing["kubeadm"], target)
    except ValueError as error:
        raise PermanentError(f"{error}") from None
    complete = set.intersection(*({row.version for row in listing[name]} for name in components))
    available = {row.version.plain: row.package.raw for row in listing["kubeadm"]
                 if row.version.minor_version == target.minor_version and row.version in complete}
    if chosen.version.plain not in available:
        missing = " or ".join(c for c in components if chosen.version not in {r.version for r in listing[c]})
        raise PermanentError(f"{missing} {chosen.version.plain} is not published for this host; "
                             "wait for the mirror or pin another version")
    facts = host_facts(ctx)
    return StepOutcome(DONE, f"{target.plain}: {len(available)} versions available, "
                       f"{chosen.version.plain} as {chosen.package.raw}",
                       ctx.output(), {"available": available, **facts})


# -- binaries ----------------------------------------------------------------------------------
def install_kubeadm(ctx: HostContext, version: KubeVersion, package: str) -> StepOutcome:
    outcome = ctx.platform.install(ctx, version, package, ("kubeadm",))
    reported = kubeadm_version(ctx)
    if reported != version:
        raise PermanentError(f"`kubeadm version` reports {reported.tag if reported else 'nothing'}, "
                             f"expected {version.tag}")
    return outcome


def download_packages(ctx: HostContext, version: KubeVersion, package: str) -> StepOutcome:
    """Everything the node installs later, into the package cache: it runs on a worker while
    the control planes upgrade, and it changes nothing the node runs."""
    return ctx.platform.install(ctx, version, package, ("kubeadm", "kubelet", "kubectl"), download_only=True)


def install_kubelet(ctx: HostContext, version: KubeVersion, package: str) -> StepOutcome:
    return ctx.platform.install(ctx, version, package, ("kubelet", "kubectl"))


# -- kubeadm -----------------------------------------------------------------------------------
def kubeadm_plan(ctx: HostContext, version: KubeVersion) -> StepOutcome:
    result = ctx.run(commands.kubeadm_upgrade_plan(version), "kubeadm upgrade plan")
    assert result is not None
    return StepOutcome(DONE, "kubeadm upgrade plan recorded", result.stdout + result.stderr)


SNAPSHOT_DIR = "/var/lib/kubeupgrade/etcd-snapshots"


def etcd_snapshot(ctx: HostContext, version: KubeVersion) -> StepOutcome:
    """Save the local etcd member before `kubeadm upgrade apply`: kubeadm keeps a copy of the
    etcd data directory on this host, this is one an operator can restore anywhere. Its
    `data` says where it is ({"path", "bytes"}), for the record; empty when none was taken."""
    if (saved := snapshot_saved(ctx)) is not None:
        return StepOutcome(ALREADY_DONE, f"etcd snapshot already saved at {saved[0]} ({_size(saved[1])})",
                           data={"path": saved[0], "bytes": saved[1]})
    if not ctx.path("/etc/kubernetes/manifests/etcd.yaml").exists():
        return StepOutcome(DONE, "no local etcd member (external etcd): no snapshot taken; back "
                           "etcd up where it runs")
    path = f"{SNAPSHOT_DIR}/{ctx.campaign}-hop{ctx.hop + 1}-before-{version.tag}.db"
    ctx.path(SNAPSHOT_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    result = ctx.run(commands.etcd_snapshot_save(path), "etcd snapshot", check=False)
    assert result is not None
    if result.exit_code == 127:
        raise PermanentError("etcdctl is not installed on this control plane: install it (Debian/"
                             "Ubuntu: etcd-client; RHEL: etcd), or set policies.etcd_snapshot: false")
    if not result.ok:
        raise HostCommandFailed(result, "etcd snapshot")
    size = ctx.path(path).stat().st_size
    ctx.mark("etcd-snapshot", path=path, bytes=size)
    return StepOutcome(DONE, f"etcd snapshot saved at {path} ({_size(size)})", ctx.output(),
                       {"path": path, "bytes": size})


def snapshot_saved(ctx: HostContext) -> tuple[str, int] | None:
    """(path, bytes) of the snapshot this hop saved here, if its marker says so and the file is
    still there; a marker without a path in SNAPSHOT_DIR or a size counts as none."""
    marker = ctx.marked("etcd-snapshot") or {}
    path, size = marker.get("path"), marker.get("bytes")
    if not isinstance(path, str) or not path.startswith(SNAPSHOT_DIR + "/") or ".." in path.split("/"):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or not ctx.path(path).is_file():
        return None
    return path, size


def _size(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB" if count >= 100_000 else f"{count} bytes"


def stop_apiserver(ctx: HostContext, wait_seconds: float) -> StepOutcome:
    if ctx.marked("kubeadm-upgrade-apply"):
        return StepOutcome(ALREADY_DONE, "apply already done; no need to stop kube-apiserver")
    ctx.run(commands.stop_kube_apiserver(), "stop kube-apiserver", check=False)
    time.sleep(wait_seconds)
    return StepOutcome(DONE, f"kube-apiserver sent SIGTERM; waited {wait_seconds:g}s", ctx.output())


def kubeadm_apply(ctx: HostContext, version: KubeVersion, *, certificate_renewal: bool,
                  etcd_upgrade: bool, config_file: str | None, force: bool = False) -> StepOutcome:
    if (marker := ctx.marked("kubeadm-upgrade-apply")) and marker.get("version") == version.tag:
        return StepOutcome(ALREADY_DONE, f"kubeadm upgrade apply {version.tag} already succeeded")
    if config_file:
        text = _upgrade_configuration(ctx, version, config_file)
        if text is None:
            raise PermanentError(f"policies.upgrade_configuration: {config_file} is not on this node "
                                 "(the first control plane of the hop); put it there and retry")
        _refuse_upgrade_configuration(text, config_file, Wanted("apply", certificate_renewal, etcd_upgrade, force))
    ctx.run(commands.kubeadm_upgrade_apply(version, certificate_renewal=certificate_renewal,
                                           etcd_upgrade=etcd_upgrade, config_file=config_file,
                                           force=force),
            "kubeadm upgrade apply")
    ctx.mark("kubeadm-upgrade-apply", version=version.tag)
    what = f"control plane re-applied at {version.tag} (--force)" if force else f"control plane upgraded to {version.tag}"
    if config_file:
        what += f" with --config {config_file}"
    return StepOutcome(DONE, what, ctx.output())


def kubeadm_node(ctx: HostContext, version: KubeVersion, *, certificate_renewal: bool,
                 etcd_upgrade: bool, config_file: str | None = None) -> StepOutcome:
    """`kubeadm upgrade node`, with the campaign's UpgradeConfiguration where this node has the
    file (its `node` section: patches, skipped phases, the same checks as apply's); a node
    without it upgrades with kubeadm's defaults, as before the policy reached this phase."""
    if (marker := ctx.marked("kubeadm-upgrade-node")) and marker.get("version") == version.tag:
        return StepOutcome(ALREADY_DONE, f"kubeadm upgrade node ({version.tag}) already succeeded")
    text = _upgrade_configuration(ctx, version, config_file) if config_file else None
    if config_file and text is not None:
        _refuse_upgrade_configuration(text, config_file, Wanted("node", certificate_renewal, etcd_upgrade))
    used = config_file if text is not None else None
    ctx.run(commands.kubeadm_upgrade_node(certificate_renewal=certificate_renewal, etcd_upgrade=etcd_upgrade,
                                          kubeadm=ctx.platform.kubeadm(ctx), config_file=used),
            "kubeadm upgrade node")
    ctx.mark("kubeadm-upgrade-node", version=version.tag)
    what = f"node configuration upgraded to {version.tag}"
    if used:
        what += f" with --config {used}"
    elif config_file:
        what += f" ({config_file} is not on this node: kubeadm's defaults)"
    return StepOutcome(DONE, what, ctx.output())


def _upgrade_configuration(ctx: HostContext, version: KubeVersion, path: str) -> str | None:
    """The file's text, or None where this node has none. Refuses a hop whose kubeadm reads no
    UpgradeConfiguration (the planner refuses such campaigns; a record from before it did not)."""
    if version.minor_version < FIRST_MINOR:
        raise PermanentError(f"policies.upgrade_configuration: kubeadm {version.tag} reads no "
                             f"UpgradeConfiguration (from v{FIRST_MINOR.plain} on); remove the policy "
                             "for this hop")
    text, unreadable = _read_upgrade_configuration(ctx, path)
    if unreadable:
        raise PermanentError(f"policies.upgrade_configuration: {unreadable}")
    return text


def _read_upgrade_configuration(ctx: HostContext, path: str) -> tuple[str | None, str]:
    """(the file's text, "") ; (None, "") where the host has no such file; (None, why) where
    it has one kubeadm could not read either (a directory, no permission)."""
    try:
        return ctx.path(path).read_text(errors="replace"), ""
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    except OSError as error:
        return None, f"{path} cannot be read: {error.strerror or error}"


def upgrade_configuration_facts(ctx: HostContext, path: str, *, certificate_renewal: bool,
                                etcd_upgrade: bool) -> dict[str, list[str]] | None:
    """The file judged for each run that may read it on this host (preflight picks the one this
    node will run), or None where the host has no such file. Problems only: never its text."""
    text, unreadable = _read_upgrade_configuration(ctx, path)
    if unreadable:
        return {"apply": [unreadable], "apply_forced": [unreadable], "node": [unreadable]}
    if text is None:
        return None

    def judged(section: str, force: bool = False) -> list[str]:
        return configuration_problems(text, path, Wanted(section, certificate_renewal, etcd_upgrade, force))

    return {"apply": judged("apply"), "apply_forced": judged("apply", True), "node": judged("node")}


def _refuse_upgrade_configuration(text: str, path: str, wanted: Wanted) -> None:
    problems = configuration_problems(text, path, wanted)
    if problems:  # before kubeadm runs: nothing on the host has changed
        raise PermanentError("policies.upgrade_configuration: " + "; ".join(problems))


# -- kubelet and hooks ---------------------------------------------------------------------------
def restart_kubelet(ctx: HostContext, version: KubeVersion) -> StepOutcome:
    return ctx.platform.restart_kubelet(ctx, version)


def run_hooks(ctx: HostContext, kind: str, hooks: list[tuple[str, ...]]) -> StepOutcome:
    ran = 0
    for index, argv in enumerate(hooks):
        name = f"hook-{kind}-{index}"
        if ctx.marked(name):
            continue
        ctx.run(commands.hook(argv), f"{kind} hook {index + 1}")
        ctx.mark(name, argv=list(argv))
        ran += 1
    if ran == 0:
        return StepOutcome(ALREADY_DONE, f"{kind} hooks already ran")
    return StepOutcome(DONE, f"ran {ran} {kind} hook(s)", ctx.output())
