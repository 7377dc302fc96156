"""Windows workers, as the Kubernetes "Upgrading Windows nodes" procedure does it: kubeadm.exe
and kubelet.exe downloaded by version from dl.k8s.io (each checked against its published
.sha256, the previous binary kept beside it for rollback), the kubelet a Windows service driven
with sc.exe. There is no package repository: "setting the source" has nothing to do.

Windows hosts are workers only (a control plane cannot run on Windows). Binaries live in
`C:\\k` by default, `$KUBEUPGRADE_WINDOWS_DIR` (a path under the host root) otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import Any

from kubeupgrade.errors import PermanentError, TemporaryError
from kubeupgrade.host.commands import QUICK_TIMEOUT
from kubeupgrade.host.context import ALREADY_DONE, DONE, HostCommandFailed, HostContext, StepOutcome
from kubeupgrade.host.executor import Command
from kubeupgrade.host.listings import ListedPackage
from kubeupgrade.host.platforms.base import HostPlatform
from kubeupgrade.model.versions import (
    KubeVersion,
    MinorVersion,
    PackageVersion,
    VersionSpec,
    parse_version,
)

RELEASES = "https://dl.k8s.io"
DOWNLOAD_TIMEOUT = 600.0
SERVICE_WAIT = 60.0  # sc.exe returns at once; the service reaches its state within this
COMPONENTS = ("kubeadm", "kubelet")  # what a Windows node runs from C:\k (no kubectl needed)
_STATE = re.compile(r"^\s*STATE\s*:\s*\d+\s+([A-Z_]+)", re.M)
# sc.exe's answers that mean the service is already where we want it (its exit code is the
# same number, which only Windows keeps whole; the text is what every host shows).
_ALREADY_THERE = {"stop": "FAILED 1062:",  # "The service has not been started."
                  "start": "FAILED 1056:"}  # "An instance of the service is already running."


def binary_dir() -> str:
    return os.environ.get("KUBEUPGRADE_WINDOWS_DIR", "/k")


def binary(ctx: HostContext, component: str) -> str:
    return str(ctx.path(f"{binary_dir()}/{_component(component)}.exe"))


def release_url(version: KubeVersion, component: str) -> str:
    return f"{RELEASES}/{version.tag}/bin/windows/amd64/{_component(component)}.exe"


def stable_url(minor: MinorVersion) -> str:
    return f"{RELEASES}/release/stable-{minor.plain}.txt"


def _component(name: str) -> str:
    if name not in COMPONENTS:
        raise ValueError(f"not a Windows node binary: {name!r}")
    return name


def curl(url: str, output: str | None = None) -> Command:
    argv = ["curl.exe", "--fail", "--silent", "--show-error", "--location"]
    if output:
        argv += ["--output", output]
    return Command((*argv, url), DOWNLOAD_TIMEOUT)


def sc(action: str, service: str = "kubelet") -> Command:
    if action not in ("query", "start", "stop"):
        raise ValueError(f"sc.exe action {action!r} is not allowed")
    return Command(("sc.exe", action, service), QUICK_TIMEOUT, reads_only=action == "query")


def version_command(ctx: HostContext, component: str) -> Command:
    flag = ("version", "-o", "short") if component == "kubeadm" else ("--version",)
    return Command((binary(ctx, component), *flag), QUICK_TIMEOUT, reads_only=True)


def _as_package(version: KubeVersion) -> PackageVersion:
    return PackageVersion(version.tag, version, "")


class WindowsPlatform(HostPlatform):
    name = "windows"
    marker = "sc.exe"
    refusals = ("The requested URL returned error: 404",)
    components = COMPONENTS

    def kubeadm(self, ctx: HostContext) -> str:
        return binary(ctx, "kubeadm")

    def installed(self, ctx: HostContext, component: str) -> KubeVersion | None:
        if not ctx.path(f"{binary_dir()}/{_component(component)}.exe").exists():
            return None
        result = ctx.run(version_command(ctx, component), f"{component} version", check=False)
        if result is None or not result.ok:
            return None
        try:  # "v1.31.2" (kubeadm -o short) or "Kubernetes v1.31.2" (kubelet)
            return parse_version(result.stdout.split()[-1])
        except (ValueError, IndexError):
            return None

    def facts(self, ctx: HostContext) -> dict[str, Any]:
        installed = {name: (v.tag if (v := self.installed(ctx, name)) else None) for name in COMPONENTS}
        return {"installed": installed, "repository_minor": None, "swap_on": False}  # no swapon

    def set_source(self, ctx: HostContext, minor: MinorVersion) -> StepOutcome:
        return StepOutcome(ALREADY_DONE, f"no package repository on Windows: binaries come from "
                           f"{RELEASES} by version")

    def restore_source(self, ctx: HostContext, minor: MinorVersion) -> StepOutcome:
        return StepOutcome(ALREADY_DONE, "no package repository on Windows: nothing to restore")

    def offered(self, ctx: HostContext, component: str, target: VersionSpec) -> list[ListedPackage]:
        """dl.k8s.io lists nothing: a minor's newest patch is its stable-X.Y.txt, and a version
        is offered when its .sha256 is published."""
        if isinstance(target, KubeVersion):
            version = target
        else:
            latest = ctx.run(curl(stable_url(target)), f"newest {target.plain} release", check=False)
            if latest is None or not latest.ok:
                return []
            try:
                version = parse_version(latest.stdout.strip())
            except ValueError:
                return []
        published = ctx.run(curl(release_url(version, component) + ".sha256"),
                            f"{component} {version.tag} checksum", check=False)
        if published is None or not published.ok:
            return []
        return [ListedPackage(component, _as_package(version), RELEASES)]

    def _staged(self, ctx: HostContext, component: str, version: KubeVersion) -> str:
        return f"{binary_dir()}/{component}.exe.{version.tag}"

    def _fetch(self, ctx: HostContext, component: str, version: KubeVersion) -> str:
        """Download the binary beside the one in use, checked against its published .sha256;
        returns its host path. Idempotent: a staged binary with the right checksum is kept."""
        staged = self._staged(ctx, component, version)
        url = release_url(version, component)
        published = ctx.run(curl(url + ".sha256"), f"{component} {version.tag} checksum")
        assert published is not None
        expected = published.stdout.strip().split()[0].lower() if published.stdout.strip() else ""
        if not re.fullmatch(r"[0-9a-f]{64}", expected):
            raise PermanentError(f"{url}.sha256 is not a SHA-256 checksum: {published.stdout[:80]!r}")
        path = ctx.path(staged)
        if path.exists() and _sha256(path) == expected:
            return staged
        path.parent.mkdir(parents=True, exist_ok=True)
        ctx.run(curl(url, str(path)), f"download {component}.exe {version.tag}")
        actual = _sha256(path)
        if actual != expected:
            path.unlink(missing_ok=True)
            raise TemporaryError(f"{component}.exe {version.tag} from {url} has SHA-256 {actual}, "
                                 f"the published one is {expected}; downloaded file removed")
        return staged

    def install(self, ctx: HostContext, version: KubeVersion, package: str,
                components: tuple[str, ...], *, download_only: bool = False) -> StepOutcome:
        if package != version.tag:
            raise PermanentError(f"release {package} is not version {version.tag}")
        wanted = tuple(c for c in components if c in COMPONENTS)  # kubectl: not on Windows nodes
        if all(self.installed(ctx, c) == version for c in wanted):
            return StepOutcome(ALREADY_DONE, f"{', '.join(wanted)}.exe already at {version.tag}")
        staged = {c: self._fetch(ctx, c, version) for c in wanted}
        if download_only:
            return StepOutcome(DONE, f"downloaded {', '.join(wanted)}.exe {version.tag} "
                               "(checksums verified)", ctx.output())
        # One change under the host lock: stopping the service and swapping the files are not
        # commands the lock would otherwise cover, and nothing may run on the host in between.
        with ctx.changing(f"replace {', '.join(wanted)}.exe", SERVICE_WAIT * 2):
            for component, source in staged.items():
                if self.installed(ctx, component) == version:
                    continue
                if component == "kubelet":  # a running service holds its .exe: stop it first
                    self._service(ctx, "stop")
                current = ctx.path(f"{binary_dir()}/{component}.exe")
                if current.exists():  # kept for rollback, as the Windows procedure advises
                    current.replace(current.with_name(f"{component}.exe.previous"))
                ctx.path(source).replace(current)
        wrong = [c for c in wanted if self.installed(ctx, c) != version]
        if wrong:
            raise PermanentError(f"{', '.join(wrong)}.exe not at {version.tag} after replacing it")
        return StepOutcome(DONE, f"installed {', '.join(wanted)}.exe {version.tag} (previous kept "
                           "as .exe.previous)", ctx.output())

    def restart_kubelet(self, ctx: HostContext, version: KubeVersion) -> StepOutcome:
        marker = ctx.marked("restart-kubelet")
        if marker and marker.get("version") == version.tag and self._state(ctx) == "RUNNING":
            return StepOutcome(ALREADY_DONE, f"kubelet service already restarted at {version.tag}")
        with ctx.changing("restart the kubelet service", SERVICE_WAIT * 2):
            self._service(ctx, "stop")
            self._service(ctx, "start")
        ctx.mark("restart-kubelet", version=version.tag)
        return StepOutcome(DONE, f"kubelet service restarted ({version.tag})", ctx.output())

    # -- the kubelet service --------------------------------------------------------------------
    def _state(self, ctx: HostContext) -> str | None:
        result = ctx.run(sc("query"), "kubelet service state", check=False)
        match = _STATE.search(result.stdout) if result is not None and result.ok else None
        return match[1] if match else None

    def _service(self, ctx: HostContext, action: str) -> None:
        """`sc.exe stop|start kubelet`, then wait until the service has got there."""
        wanted = "STOPPED" if action == "stop" else "RUNNING"
        result = ctx.run(sc(action), f"{action} the kubelet service", check=False)
        assert result is not None
        if not result.ok and _ALREADY_THERE[action] not in result.stdout + result.stderr:
            raise HostCommandFailed(result, f"{action} the kubelet service")
        deadline = time.monotonic() + SERVICE_WAIT
        while (state := self._state(ctx)) != wanted:
            if time.monotonic() > deadline:
                raise TemporaryError(f"the kubelet service is {state or 'unknown'} {SERVICE_WAIT:g}s "
                                     f"after `sc.exe {action} kubelet`; expected {wanted}")
            time.sleep(0.5)


def _sha256(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
