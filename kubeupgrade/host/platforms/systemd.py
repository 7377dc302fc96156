"""The kubelet as a systemd unit (apt and rpm hosts)."""

from __future__ import annotations

from kubeupgrade.host.commands import QUICK_TIMEOUT
from kubeupgrade.host.context import ALREADY_DONE, DONE, HostContext, StepOutcome
from kubeupgrade.host.executor import Command
from kubeupgrade.model.versions import KubeVersion


def systemctl(action: str, unit: str | None = "kubelet") -> Command:
    if action not in {"daemon-reload", "restart", "is-active", "stop", "start"}:
        raise ValueError(f"systemctl action {action!r} is not allowed")
    argv = ("systemctl", action) if unit is None else ("systemctl", action, unit)
    return Command(argv, QUICK_TIMEOUT, reads_only=action == "is-active")


def restart_kubelet(ctx: HostContext, version: KubeVersion) -> StepOutcome:
    active = ctx.run(systemctl("is-active"), "kubelet state", check=False)
    marker = ctx.marked("restart-kubelet")
    if marker and marker.get("version") == version.tag and active is not None and active.ok:
        return StepOutcome(ALREADY_DONE, f"kubelet already restarted at {version.tag}")
    ctx.run(systemctl("daemon-reload", None), "systemctl daemon-reload")
    ctx.run(systemctl("restart"), "restart kubelet")
    ctx.run(systemctl("is-active"), "kubelet is active after restart")
    ctx.mark("restart-kubelet", version=version.tag)
    return StepOutcome(DONE, f"kubelet restarted ({version.tag})", ctx.output())
