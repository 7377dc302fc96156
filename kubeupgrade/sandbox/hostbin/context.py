"""What a simulated command knows about its host, and the helpers all tools share."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from contextlib import contextmanager

from kubeupgrade.sandbox.faults import FaultStore
from kubeupgrade.sandbox.layout import (
    KUBELET_STATE,
    PACKAGE_STATE,
    SandboxPaths,
    load_config,
    notify_kubelet_event,
)
from kubeupgrade.sandbox.timing import Timing

# `typing` itself is not imported at run time (it is a tenth of a simulated command's start);
# mypy treats this name as it treats typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:  # a simulated command is a new process: it imports only what it runs
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any, TextIO

    from kubeupgrade.sandbox.faults import Fault, FaultKind


# id(config) -> (that config, node name -> its entry): one config at a time (the farm's shared one).
_node_index: dict[int, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}


class ExitCommand(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Host:
    """One run of a simulated command on one node. A plain class, not a dataclass: importing
    `dataclasses` cost a simulated command more than its own work."""

    def __init__(self, paths: SandboxPaths, node: str, argv: list[str], *, exe_version: str = "",
                 stdin: TextIO | None = None, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, preloaded: dict[str, Any] | None = None) -> None:
        self.paths = paths
        self.node = node
        self.argv = argv
        self.exe_version = exe_version  # a Windows binary run by its path knows its own version
        # Where the command's input and output go: this process's own streams when the command
        # is a process (a shim), buffers when the agent farm runs it in its own process.
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.config: dict[str, Any] = preloaded if preloaded is not None else load_config(paths)
        self.timing = Timing.from_config(self.config)
        self.faults = FaultStore(paths.faults)
        self.crash: Fault | None = None
        self.crashed = False
        self.started = time.time()

    @property
    def root(self) -> Path:
        return self.paths.node_root(self.node)

    def path(self, absolute: str) -> Path:
        """A host path such as /etc/kubernetes/admin.conf inside this node's root."""
        return self.root / absolute.lstrip("/")

    @property
    def node_spec(self) -> dict[str, Any]:
        """This node's entry in the sandbox config (a scan of every node, once per config: an
        agent farm's commands share one config of thousands of nodes)."""
        index = _node_index.get(id(self.config))
        if index is None or index[0] is not self.config:
            index = (self.config, {n["name"]: n for n in self.config["nodes"]})
            _node_index.clear()
            _node_index[id(self.config)] = index
        return index[1][self.node]

    @property
    def family(self) -> str:
        return str(self.node_spec["os"])

    @property
    def is_control_plane(self) -> bool:
        return bool(self.node_spec["role"] == "control-plane")

    # -- output and flow ---------------------------------------------------------------
    def out(self, text: str = "", end: str = "\n") -> None:
        stream = self.stdout or sys.stdout
        stream.write(text + end)
        stream.flush()

    def err(self, text: str) -> None:
        stream = self.stderr or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def ask(self, question: str) -> str:
        """Write `question` without a newline and read one line of answer."""
        self.out(question, end="")
        return (self.stdin or sys.stdin).readline()

    def fail(self, text: str, code: int = 1) -> ExitCommand:
        if text:
            self.err(text)
        return ExitCommand(code)

    def sleep(self, step: str, fraction: float = 1.0) -> None:
        seconds = self.timing.seconds(step, key=f"{self.node}/{' '.join(self.argv)}") * fraction
        if seconds > 0:
            time.sleep(seconds)

    def maybe_crash(self, point: str) -> None:
        """Die here, half-way, if a crash fault was taken for this run."""
        if self.crash is not None:
            self.log(exit_code=-9, note=f"crashed at {point} (sandbox fault {self.crash.id})")
            self.crashed = True
            if self.stdout is not None:  # run inside the agent farm: end the command, not the farm
                raise ExitCommand(-9)
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    # -- state files -------------------------------------------------------------------
    @contextmanager
    def locked_state(self, relative: str) -> Iterator[dict[str, Any]]:
        """Read-modify-write a JSON state file under an exclusive lock."""
        path = self.root / relative
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(path.read_text())
            yield data
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1))
            temporary.replace(path)

    def read_state(self, relative: str) -> dict[str, Any]:
        return json.loads((self.root / relative).read_text())

    def packages(self) -> dict[str, Any]:
        return self.read_state(PACKAGE_STATE)

    def installed(self, component: str) -> str:
        """The version tag of kubeadm or kubelet on this host: the package installed on Linux,
        the binary in C:\\k on Windows (where `kubelet --version` is the file's own answer)."""
        if self.family == "windows":
            if self.exe_version and self.argv[0] == f"{component}.exe":
                return self.exe_version
            from kubeupgrade.sandbox import releases

            found = releases.windows_binary_identity(self.path(f"/k/{component}.exe").read_bytes())
            if found is None:
                raise self.fail(f"{component}.exe is not a Kubernetes binary", 1)
            return found[1].tag
        return "v" + self.packages()["installed"][component].split("-")[0]

    def kubelet(self) -> dict[str, Any]:
        return self.read_state(KUBELET_STATE)

    def notify_kubelet(self) -> None:
        notify_kubelet_event(self.paths, self.node)

    # -- command log -------------------------------------------------------------------
    def log(self, exit_code: int, note: str = "") -> None:
        record = {"argv": self.argv, "start": self.started, "end": time.time(), "exit": exit_code}
        if note:
            record["note"] = note
        line = json.dumps(record) + "\n"
        fd = os.open(self.paths.command_log(self.node), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def take_fault(self, *kinds: FaultKind) -> Fault | None:
        return self.faults.take(self.node, self.argv, kinds)
