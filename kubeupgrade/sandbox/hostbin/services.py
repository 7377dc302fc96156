"""Simulated systemctl (the kubelet unit), kubelet --version, swapon --show, killall.

Restarting the kubelet runs the installed kubelet binary; the API server's kubelet simulation
then reports the node NotReady and, after a moment, Ready at that version.
"""

from __future__ import annotations

import time

from kubeupgrade.sandbox.faults import FaultKind
from kubeupgrade.sandbox.hostbin.context import Host
from kubeupgrade.sandbox.layout import KUBELET_STATE, STATIC_COMPONENTS


def installed_kubelet(host: Host) -> str:
    return host.installed("kubelet")


def kubelet(host: Host, args: list[str]) -> int:
    if args in (["--version"], ["version"]):
        host.out(f"Kubernetes {installed_kubelet(host)}")
        return 0
    raise host.fail("kubelet: the sandbox kubelet runs as a service; use `kubelet --version`", 1)


def systemctl(host: Host, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        raise host.fail("Too few arguments.", 1)
    command, units = words[0], [u.removesuffix(".service") for u in words[1:]]
    if command == "daemon-reload":
        with host.locked_state(KUBELET_STATE) as state:
            state["unit_changed"] = False
        return 0
    if units and units != ["kubelet"]:
        raise host.fail(f"Unit {units[0]}.service not found.", 5 if command != "is-active" else 4)
    if not units:
        raise host.fail("Too few arguments.", 1)
    if command == "is-active":
        state = host.kubelet()
        host.out("active" if state["active"] else "activating" if state.get("auto_restart") else "inactive")
        return 0 if state["active"] else 3
    if command == "status":
        state = host.kubelet()
        active = ("active (running)" if state["active"] else "activating (auto-restart) (Result: exit-code)"
                  if state.get("auto_restart") else "inactive (dead)")
        host.out("● kubelet.service - kubelet: The Kubernetes Node Agent\n"
                 "     Loaded: loaded (/lib/systemd/system/kubelet.service; enabled; preset: enabled)\n"
                 "    Drop-In: /usr/lib/systemd/system/kubelet.service.d\n"
                 "             └─10-kubeadm.conf\n"
                 f"     Active: {active}\n"
                 f"       Docs: https://kubernetes.io/docs/\n   Version: {state['running']}")
        return 0 if state["active"] else 3
    if command in ("restart", "start", "stop"):
        return _kubelet_service(host, command)
    raise host.fail(f"Unknown command verb {command}.", 1)


def _kubelet_service(host: Host, command: str) -> int:
    state = host.kubelet()
    if state.get("unit_changed") and command != "stop":
        host.err("Warning: The unit file, source configuration file or drop-ins of kubelet.service "
                 "changed on disk. Run 'systemctl daemon-reload' to reload units.")
    if command in ("restart", "stop"):
        with host.locked_state(KUBELET_STATE) as current:
            current.update(active=False, auto_restart=False)  # a stopped unit does not restart
        host.notify_kubelet()
    if command == "stop":
        return 0
    host.sleep("systemctl restart kubelet", 0.5)
    host.maybe_crash("kubelet stopped, not yet started")
    binary = installed_kubelet(host)
    if host.faults.condition(host.node, FaultKind.SWAP_ON) and _refuses_swap(host):
        # The kubelet exits at once ("running with swap on is not supported"); the unit's
        # Restart=always has systemd start it again and again: `restart` itself succeeded.
        with host.locked_state(KUBELET_STATE) as current:
            current.update(active=False, auto_restart=True)
        host.notify_kubelet()
        return 0
    with host.locked_state(KUBELET_STATE) as current:
        current.update(active=True, auto_restart=False, running=binary, restarts=current["restarts"] + 1,
                       restarted_at=time.time())
    host.notify_kubelet()
    host.sleep("systemctl restart kubelet", 0.5)
    return 0


def _refuses_swap(host: Host) -> bool:
    from kubeupgrade.host.kubelet_flags import (
        KUBELET_CONFIG_FILE,
        KUBELET_FLAG_FILES,
        fails_swap_on,
    )

    def text(path: str) -> str | None:
        try:
            return host.read_file(path)
        except FileNotFoundError:
            return None

    flags = [found for path in KUBELET_FLAG_FILES if (found := text(path)) is not None]
    return fails_swap_on(flags, text(KUBELET_CONFIG_FILE))


def swapon(host: Host, args: list[str]) -> int:
    if "--show" not in args and "-s" not in args:
        raise host.fail("swapon: sandbox supports --show", 1)
    if host.faults.condition(host.node, FaultKind.SWAP_ON):
        host.out("NAME      TYPE SIZE USED PRIO\n/swap.img file   2G   0B   -2")
    return 0


def killall(host: Host, args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-") and not a.startswith("SIG")]
    if not names:
        raise host.fail("Usage: killall [OPTION]... [--] NAME...", 1)
    code = 0
    for name in names:
        if name not in STATIC_COMPONENTS or not host.is_control_plane:
            host.err(f"{name}: no process found")
            code = 1
            continue
        # The kubelet restarts a killed static pod container: its restart count goes up and
        # the mirror pod is briefly not Ready.
        with host.locked_state(KUBELET_STATE) as state:
            restarts = state.setdefault("container_restarts", {})
            restarts[name] = int(restarts.get(name, 0)) + 1
        host.notify_kubelet()
    return code
