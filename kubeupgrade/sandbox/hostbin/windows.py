"""Simulated Windows host tools: curl.exe (against a simulated dl.k8s.io) and sc.exe (the
kubelet service), with their real argv, output and exit codes.

dl.k8s.io serves, for every release the sandbox knows (`releases`), the Windows binaries and
their `.sha256` files (the bare hex digest, as the real ones), and `release/stable-X.Y.txt` with
the newest patch of a minor. Anything else is a 404; another host does not resolve.
"""

from __future__ import annotations

import os
import time

from kubeupgrade.sandbox.hostbin.context import Host
from kubeupgrade.sandbox.layout import KUBELET_STATE

# curl.exe's URLs are read with `re`, and what it serves comes from the version model and the
# release tables: all imported by curl only. `sc.exe`, which every probe of a Windows host runs,
# is a new process that needs none of them.
_BINARY = r"^/(v\d+\.\d+\.\d+)/bin/windows/amd64/([a-z-]+)\.exe(\.sha256)?$"
_STABLE = r"^/release/stable-(\d+)\.(\d+)\.txt$"
_NOT_FOUND = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchKey</Code>"
              b"<Message>The specified key does not exist.</Message></Error>")


def _serve(url: str) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET on the simulated dl.k8s.io."""
    import hashlib
    import re

    from kubeupgrade.model.versions import MinorVersion, parse_version
    from kubeupgrade.sandbox import releases

    path = url.removeprefix("https://dl.k8s.io")
    if (stable := re.match(_STABLE, path)) is not None:
        known = releases.releases(MinorVersion(int(stable[1]), int(stable[2])))
        return (200, f"{known[-1].tag}".encode()) if known else (404, _NOT_FOUND)
    if (binary := re.match(_BINARY, path)) is not None:
        version, component = parse_version(binary[1]), binary[2]
        if component not in releases.WINDOWS_BINARIES or not releases.is_released(version):
            return 404, _NOT_FOUND
        content = releases.windows_binary(version, component)
        if binary[3]:
            return 200, hashlib.sha256(content).hexdigest().encode()
        return 200, content
    return 404, _NOT_FOUND


def curl(host: Host, args: list[str]) -> int:
    fail = False
    output: str | None = None
    url: str | None = None
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in ("--fail", "-f"):
            fail = True
        elif arg in ("--output", "-o"):
            if not rest:
                raise host.fail("curl: option --output: requires parameter", 2)
            output = rest.pop(0)
        elif arg in ("--silent", "-s", "--show-error", "-S", "--location", "-L"):
            continue
        elif arg.startswith("-"):
            raise host.fail(f"curl: option {arg}: is unknown", 2)
        else:
            url = arg
    if url is None:
        raise host.fail("curl: no URL specified!", 2)
    if not url.startswith("https://dl.k8s.io/"):
        host_name = url.split("://", 1)[-1].split("/", 1)[0]
        raise host.fail(f"curl: (6) Could not resolve host: {host_name}", 6)
    status, body = _serve(url)
    if status != 200 and fail:
        raise host.fail(f"curl: (22) The requested URL returned error: {status}", 22)
    if output is None:
        host.out(body.decode(errors="replace"))
        return 0
    host.sleep("binary download")
    host.maybe_crash("half-way through the download")
    # `output` as given: the agent names the file inside the host's root
    with open(output, "wb") as target:
        target.write(body)
    os.chmod(output, 0o755)  # the Linux stand-in must be able to execute it
    return 0


# -- sc.exe ------------------------------------------------------------------------------------
_STATES = {"STOPPED": 1, "START_PENDING": 2, "STOP_PENDING": 3, "RUNNING": 4}
_PENDING = 0.3  # seconds a service stays in a *_PENDING state before it gets there


def _block(state: str, pid: int | None = None) -> str:
    controls = ("(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)" if state in ("RUNNING", "STOP_PENDING")
                else "(NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)")
    lines = ["", "SERVICE_NAME: kubelet",
             "        TYPE               : 10  WIN32_OWN_PROCESS",
             f"        STATE              : {_STATES[state]}  {state}",
             f"                                {controls}",
             "        WIN32_EXIT_CODE    : 0  (0x0)",
             "        SERVICE_EXIT_CODE  : 0  (0x0)",
             "        CHECKPOINT         : 0x0",
             f"        WAIT_HINT          : {'0x7d0' if state.endswith('PENDING') else '0x0'}"]
    if pid is not None:
        lines += [f"        PID                : {pid}", "        FLAGS              :"]
    return "\n".join(lines)


def _service_state(host: Host) -> str:
    state = host.kubelet()
    pending = state.get("pending_until", 0.0) > time.time()
    if state["active"]:
        return "START_PENDING" if pending else "RUNNING"
    return "STOP_PENDING" if pending else "STOPPED"


def sc(host: Host, args: list[str]) -> int:
    if len(args) < 2 or args[0] not in ("query", "start", "stop"):
        raise host.fail("DESCRIPTION:\n        SC is a command line program used for communicating "
                        "with the\n        Service Control Manager and services.\nUSAGE:\n        "
                        "sc <server> [command] [service name] <option1> <option2>...", 1639)
    action, service = args[0], args[1]
    if service != "kubelet":
        raise host.fail("[SC] OpenService FAILED 1060:\n\nThe specified service does not exist "
                        "as an installed service.\n", 1060)
    state = _service_state(host)
    if action == "query":
        host.out(_block(state))
        return 0
    if action == "stop":
        if state in ("STOPPED", "STOP_PENDING"):
            host.out("[SC] ControlService FAILED 1062:\n\nThe service has not been started.\n")
            return 1062
        with host.locked_state(KUBELET_STATE) as current:
            current.update(active=False, pending_until=time.time() + _PENDING)
        host.notify_kubelet()
        host.out(_block("STOP_PENDING"))
        return 0
    if state == "STOP_PENDING":
        host.out("[SC] StartService FAILED 1061:\n\nThe service cannot accept control messages at "
                 "this time.\n")
        return 1061
    if state in ("RUNNING", "START_PENDING"):
        host.out("[SC] StartService FAILED 1056:\n\nAn instance of the service is already running.\n")
        return 1056
    host.maybe_crash("kubelet service stopped, not yet started")
    binary = host.installed("kubelet")
    with host.locked_state(KUBELET_STATE) as current:
        current.update(active=True, running=binary, restarts=current["restarts"] + 1,
                       restarted_at=time.time(), pending_until=time.time() + _PENDING)
        pid = 4000 + current["restarts"]
    host.notify_kubelet()
    host.out(_block("START_PENDING", pid))
    return 0
