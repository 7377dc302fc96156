"""The host phases of an upgrade, each idempotent: probe first, act only if needed, verify.

Called by the node agent's Celery tasks (`workers/`). Everything goes through the `Executor`
seam with argv lists; files are read and written under the host root (`/` on a real host, the
node's directory in the sandbox). A phase whose effect is already there returns "already-done"
without side effects — this is what makes retries and duplicate deliveries safe.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeupgrade.errors import PermanentError, TemporaryError
from kubeupgrade.host import commands, repository
from kubeupgrade.host.executor import Command, CommandResult, Executor
from kubeupgrade.host.listings import ListedPackage, parse_listing, select_package_version
from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.model.versions import (
    KubeVersion,
    MinorVersion,
    PackageVersion,
    VersionSpec,
    parse_package_version,
    parse_version,
)

DONE = "done"
ALREADY_DONE = "already-done"


class HostCommandFailed(TemporaryError):
    """A host command failed; carries the argv, exit code and output tail. Retryable."""

    def __init__(self, result: CommandResult, what: str) -> None:
        self.result = result
        code = "timed out" if result.timed_out else f"exit {result.exit_code}"
        tail = result.tail(5).replace("\n", " | ")
        super().__init__(f"{what}: `{result.command}` failed ({code}): {tail}")


class HostCommandRefused(PermanentError):
    """A host command failed in a way retrying cannot fix (a version missing from the repo)."""

    def __init__(self, result: CommandResult, what: str) -> None:
        self.result = result
        tail = result.tail(5).replace("\n", " | ")
        super().__init__(f"{what}: `{result.command}` failed (exit {result.exit_code}): {tail}")


@dataclass(frozen=True)
class StepOutcome:
    status: str  # DONE or ALREADY_DONE
    detail: str
    output: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class HostContext:
    executor: Executor
    root: Path
    family: OsFamily
    campaign: str = ""
    hop: int = 0
    transcript: list[CommandResult] = field(default_factory=list)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def run(self, command: Command | None, what: str, *, check: bool = True) -> CommandResult | None:
        if command is None:
            return None
        result = self.executor.run(command)
        self.transcript.append(result)
        if check and not result.ok:
            if _is_permanent(result):
                raise HostCommandRefused(result, what)
            raise HostCommandFailed(result, what)
        return result

    def output(self) -> str:
        return "\n".join(f"$ {r.command}\n{r.tail(40)}" for r in self.transcript)

    # -- markers: the effect of a step that leaves no other trace we can read locally ---------
    def _marker(self, phase: str) -> Path:
        safe = "".join(c for c in f"{self.campaign}-{self.hop}-{phase}" if c.isalnum() or c in "-_.")
        return self.path(f"/var/lib/kubeupgrade/markers/{safe}")

    def marked(self, phase: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._marker(phase).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def unmark(self, phase: str) -> None:
        self._marker(phase).unlink(missing_ok=True)

    def mark(self, phase: str, **data: Any) -> None:
        marker = self._marker(phase)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"at": time.time(), **data}))


_PERMANENT_PATTERNS = ("was not found", "Unable to find a match", "Unable to locate package",
                       "is too high", "Downgrades are not supported", "not supported")


def _is_permanent(result: CommandResult) -> bool:
    text = result.stdout + result.stderr
    return not result.timed_out and any(pattern in text for pattern in _PERMANENT_PATTERNS)


# -- facts -------------------------------------------------------------------------------------
def installed_package(ctx: HostContext, package: str) -> PackageVersion | None:
    result = ctx.run(commands.installed_version(ctx.family, package), f"query {package}", check=False)
    if result is None or not result.ok:
        return None
    text = result.stdout.strip()
    if ctx.family is not OsFamily.APT:  # rpm -q: kubeadm-1.31.2-150500.1.1.x86_64
        text = text.removeprefix(f"{package}-").rsplit(".", 1)[0]
    try:
        return parse_package_version(text)
    except ValueError:
        return None


def kubeadm_version(ctx: HostContext) -> KubeVersion | None:
    result = ctx.run(commands.kubeadm_version(), "kubeadm version", check=False)
    if result is None or not result.ok:
        return None
    try:
        return parse_version(result.stdout.strip())
    except ValueError:
        return None


def host_facts(ctx: HostContext) -> dict[str, Any]:
    swap = ctx.run(commands.swap_devices(), "swapon --show", check=False)
    repo = ctx.path(repository.repository_path(ctx.family))
    minor = repository.configured_minor(repo.read_text()) if repo.exists() else None
    installed = {name: (p.raw if (p := installed_package(ctx, name)) else None)
                 for name in ("kubeadm", "kubelet", "kubectl")}
    return {
        "os": ctx.family.value,
        "installed": installed,
        "swap_on": bool(swap and swap.stdout.strip()),
        "admin_conf": ctx.path("/etc/kubernetes/admin.conf").exists(),
        "repository_minor": minor.plain if minor else None,
    }


# -- repository ---------------------------------------------------------------------------------
def set_repository(ctx: HostContext, minor: MinorVersion) -> StepOutcome:
    """Point the package repository at `minor` and refresh metadata."""
    path = ctx.path(repository.repository_path(ctx.family))
    current = path.read_text() if path.exists() else ""
    wanted = repository.render(ctx.family, minor)
    if repository.configured_minor(current) == minor and ctx.marked(f"repository-{minor.plain}"):
        return StepOutcome(ALREADY_DONE, f"repository already at {minor.tag}")
    if current and repository.configured_minor(current) != minor:
        backup = path.with_name(path.name + ".kubeupgrade-backup")
        backup.write_text(current)  # back up before mutating, as kubeadm does with manifests
        # What this campaign's hop replaced, kept before the change so a hop that fails even
        # while refreshing (the minor's repository does not exist) can put it back.
        ctx.mark(f"repository-replaced-{minor.plain}", previous=current)
    if current != wanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted)
    _repair_dpkg(ctx)
    ctx.run(commands.refresh_metadata(ctx.family), "refresh package metadata")
    ctx.mark(f"repository-{minor.plain}")
    return StepOutcome(DONE, f"repository set to pkgs.k8s.io {minor.tag}", ctx.output())


def restore_repository(ctx: HostContext, minor: MinorVersion) -> StepOutcome:
    """Put back the repository configuration this campaign's hop replaced when it pointed the
    host at `minor` (after the hop failed or was aborted), and refresh metadata."""
    path = ctx.path(repository.repository_path(ctx.family))
    current = path.read_text() if path.exists() else ""
    replaced = ctx.marked(f"repository-replaced-{minor.plain}")
    if replaced is None or not isinstance(replaced.get("previous"), str):
        return StepOutcome(ALREADY_DONE, "this campaign did not change the repository here")
    previous = replaced["previous"]
    earlier = repository.configured_minor(previous)
    label = earlier.tag if earlier else "its previous configuration"
    if current == previous:
        return StepOutcome(ALREADY_DONE, f"repository already restored to {label}")
    if repository.configured_minor(current) != minor:
        return StepOutcome(ALREADY_DONE, "repository changed since this campaign set it; left as is")
    path.write_text(previous)
    ctx.unmark(f"repository-{minor.plain}")
    _repair_dpkg(ctx)
    ctx.run(commands.refresh_metadata(ctx.family), "refresh package metadata")
    return StepOutcome(DONE, f"repository restored to {label}", ctx.output())


def ensure_repository(ctx: HostContext, minor: MinorVersion) -> None:
    """Installing needs the target's repository: set it again if it was restored or changed
    since set-repository ran (a retry after a failed hop)."""
    path = ctx.path(repository.repository_path(ctx.family))
    current = path.read_text() if path.exists() else ""
    if repository.configured_minor(current) != minor or not ctx.marked(f"repository-{minor.plain}"):
        set_repository(ctx, minor)


def available_packages(ctx: HostContext, package: str = "kubeadm") -> list[ListedPackage]:
    result = ctx.run(commands.list_versions(ctx.family, package), f"list {package} versions", check=False)
    if result is None or not result.ok:
        return []
    try:
        return parse_listing(result.stdout, package)
    except ValueError:
        return []


def resolve_target(ctx: HostContext, target: VersionSpec) -> StepOutcome:
    """Set the repository to the target's minor and list what it offers there.

    `data["available"]` maps each version of the minor for which kubeadm, kubelet and kubectl
    are all published to this host's exact kubeadm package string; the dispatcher picks the one
    version every node has.
    """
    set_repository(ctx, target.minor_version)
    listing = {name: available_packages(ctx, name) for name in ("kubeadm", "kubelet", "kubectl")}
    try:
        chosen = select_package_version(listing["kubeadm"], target)
    except ValueError as error:
        raise PermanentError(f"{error}") from None
    complete = {row.version for row in listing["kubelet"]} & {row.version for row in listing["kubectl"]}
    available = {row.version.plain: row.package.raw for row in listing["kubeadm"]
                 if row.version.minor_version == target.minor_version and row.version in complete}
    if chosen.version.plain not in available:
        raise PermanentError(f"kubelet or kubectl {chosen.version.plain} is not in the package "
                             "repository; wait for the mirror or pin another version")
    facts = host_facts(ctx)
    return StepOutcome(DONE, f"{target.plain}: {len(available)} versions available, "
                       f"{chosen.version.plain} as {chosen.package.raw}",
                       ctx.output(), {"available": available, **facts})


# -- packages ----------------------------------------------------------------------------------
def _repair_dpkg(ctx: HostContext) -> None:
    """An apt run killed half-way leaves dpkg 'interrupted'; finish its configuration first."""
    if ctx.family is not OsFamily.APT:
        return
    for package in ("kubeadm", "kubelet", "kubectl"):
        result = ctx.run(Command(("dpkg-query", "-W", "--showformat=${Status}", package),
                                 commands.QUICK_TIMEOUT), f"query {package}", check=False)
        if result is not None and result.ok and "unpacked" in result.stdout:
            ctx.run(commands.repair_interrupted_dpkg(), "dpkg --configure -a")
            return


def _pin(version: KubeVersion, package: str) -> PackageVersion:
    pinned = parse_package_version(package)
    if pinned.version != version:
        raise PermanentError(f"package {package} is not version {version.plain}")
    return pinned


def install_packages(ctx: HostContext, version: KubeVersion, package: str, names: tuple[str, ...],
                     *, download_only: bool = False) -> StepOutcome:
    _repair_dpkg(ctx)
    current = {name: installed_package(ctx, name) for name in names}
    if all(p is not None and p.version == version for p in current.values()):
        return StepOutcome(ALREADY_DONE, f"{', '.join(names)} already at {version.plain}")
    ensure_repository(ctx, version.minor_version)
    pins = {name: _pin(version, package) for name in names}
    if download_only:
        ctx.run(commands.install(ctx.family, pins, download_only=True), "download packages")
        return StepOutcome(DONE, f"downloaded {', '.join(names)} {package}", ctx.output())
    ctx.run(commands.unhold(ctx.family, *names), "unhold packages")
    ctx.run(commands.install(ctx.family, pins), f"install {', '.join(names)}")
    ctx.run(commands.hold(ctx.family, *names), "hold packages")
    after = {name: installed_package(ctx, name) for name in names}
    wrong = [name for name, p in after.items() if p is None or p.version != version]
    if wrong:
        raise PermanentError(f"{', '.join(wrong)} not at {version.plain} after installing")
    return StepOutcome(DONE, f"installed {', '.join(names)} {package}", ctx.output())


def install_kubeadm(ctx: HostContext, version: KubeVersion, package: str) -> StepOutcome:
    outcome = install_packages(ctx, version, package, ("kubeadm",))
    reported = kubeadm_version(ctx)
    if reported != version:
        raise PermanentError(f"`kubeadm version` reports {reported.tag if reported else 'nothing'}, "
                             f"expected {version.tag}")
    return outcome


def download_packages(ctx: HostContext, version: KubeVersion, package: str) -> StepOutcome:
    return install_packages(ctx, version, package, ("kubelet", "kubectl"), download_only=True)


def install_kubelet(ctx: HostContext, version: KubeVersion, package: str) -> StepOutcome:
    return install_packages(ctx, version, package, ("kubelet", "kubectl"))


# -- kubeadm -----------------------------------------------------------------------------------
def kubeadm_plan(ctx: HostContext, version: KubeVersion) -> StepOutcome:
    result = ctx.run(commands.kubeadm_upgrade_plan(version), "kubeadm upgrade plan")
    assert result is not None
    return StepOutcome(DONE, "kubeadm upgrade plan recorded", result.stdout + result.stderr)


SNAPSHOT_DIR = "/var/lib/kubeupgrade/etcd-snapshots"


def etcd_snapshot(ctx: HostContext, version: KubeVersion) -> StepOutcome:
    """Save the local etcd member before `kubeadm upgrade apply`: kubeadm keeps a copy of the
    etcd data directory on this host, this is one an operator can restore anywhere."""
    if (marker := ctx.marked("etcd-snapshot")) and ctx.path(marker["path"]).exists():
        return StepOutcome(ALREADY_DONE, f"etcd snapshot already saved at {marker['path']} "
                           f"({_size(marker['bytes'])})")
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
    return StepOutcome(DONE, f"etcd snapshot saved at {path} ({_size(size)})", ctx.output())


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
    ctx.run(commands.kubeadm_upgrade_apply(version, certificate_renewal=certificate_renewal,
                                           etcd_upgrade=etcd_upgrade, config_file=config_file,
                                           force=force),
            "kubeadm upgrade apply")
    ctx.mark("kubeadm-upgrade-apply", version=version.tag)
    what = f"control plane re-applied at {version.tag} (--force)" if force else f"control plane upgraded to {version.tag}"
    return StepOutcome(DONE, what, ctx.output())


def kubeadm_node(ctx: HostContext, version: KubeVersion, *, certificate_renewal: bool,
                 etcd_upgrade: bool) -> StepOutcome:
    if (marker := ctx.marked("kubeadm-upgrade-node")) and marker.get("version") == version.tag:
        return StepOutcome(ALREADY_DONE, f"kubeadm upgrade node ({version.tag}) already succeeded")
    ctx.run(commands.kubeadm_upgrade_node(certificate_renewal=certificate_renewal,
                                          etcd_upgrade=etcd_upgrade), "kubeadm upgrade node")
    ctx.mark("kubeadm-upgrade-node", version=version.tag)
    return StepOutcome(DONE, f"node configuration upgraded to {version.tag}", ctx.output())


# -- kubelet and hooks ---------------------------------------------------------------------------
def restart_kubelet(ctx: HostContext, version: KubeVersion) -> StepOutcome:
    active = ctx.run(commands.systemctl("is-active"), "kubelet state", check=False)
    marker = ctx.marked("restart-kubelet")
    if marker and marker.get("version") == version.tag and active is not None and active.ok:
        return StepOutcome(ALREADY_DONE, f"kubelet already restarted at {version.tag}")
    ctx.run(commands.systemctl("daemon-reload", None), "systemctl daemon-reload")
    ctx.run(commands.systemctl("restart"), "restart kubelet")
    ctx.run(commands.systemctl("is-active"), "kubelet is active after restart")
    ctx.mark("restart-kubelet", version=version.tag)
    return StepOutcome(DONE, f"kubelet restarted ({version.tag})", ctx.output())


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
