"""What a simulated command knows about its host, and the helpers all tools share."""

from __future__ import annotations

import os
import sys
import time

# SIGKILL from the interpreter's own `_signal`, loaded at start: `signal` imports `enum`.
from _signal import SIGKILL

from kubeupgrade.sandbox import quickjson
from kubeupgrade.sandbox.faults import FaultStore
from kubeupgrade.sandbox.layout import (
    CONFIG_FILE,
    FAULTS_FILE,
    KUBELET_STATE,
    PACKAGE_STATE,
    node_entry,
    notify_kubelet_event,
)
from kubeupgrade.sandbox.timing import Timing

# Neither `typing` nor `pathlib` is imported at run time: a simulated command is a new process,
# and the files it reads and writes are named by plain strings (`file`). Tools that work on
# trees (kubeadm upgrade, etcdctl, the Windows binaries) ask for pathlib's `path` and `root`.
# mypy treats this name as it treats typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TextIO

    from kubeupgrade.sandbox.faults import Fault


# id(config) -> (that config, node name -> its entry): one config at a time (the farm's shared one).
_node_index: dict[int, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {}


class ExitCommand(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Host:
    """One run of a simulated command on one node. A plain class, not a dataclass: importing
    `dataclasses` cost a simulated command more than its own work."""

    def __init__(self, sandbox_dir: str, node: str, argv: list[str], *, exe_version: str = "",
                 stdin: TextIO | None = None, stdout: TextIO | None = None,
                 stderr: TextIO | None = None, preloaded: dict[str, Any] | None = None) -> None:
        self.sandbox_dir = sandbox_dir
        self.node = node
        self.root_dir = os.path.join(sandbox_dir, node_entry(node, "root"))
        self.argv = argv
        self.exe_version = exe_version  # a Windows binary run by its path knows its own version
        # Where the command's input and output go: this process's own streams when the command
        # is a process (a shim), buffers when the agent farm runs it in its own process.
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        if preloaded is None:
            with open(os.path.join(sandbox_dir, CONFIG_FILE)) as file:
                preloaded = quickjson.loads(file.read())
        self.config: dict[str, Any] = preloaded
        self.timing = Timing.from_config(self.config)
        self.faults = FaultStore(os.path.join(sandbox_dir, FAULTS_FILE))
        self.crash: Fault | None = None
        self.crashed = False
        self.started = time.time()
        # What the command opened that must not outlive it when it runs inside an agent farm's
        # process (the API client's kept-alive connection): closed by the entry point.
        self.connections: list[Any] = []

    def file(self, absolute: str) -> str:
        """A host path such as /var/lib/sandbox/packages.json inside this node's root (relative
        paths are taken from the host's /)."""
        return os.path.join(self.root_dir, absolute.lstrip("/"))

    def read_file(self, absolute: str) -> str:
        with open(self.file(absolute)) as file:
            return file.read()

    def write_file(self, absolute: str, text: str) -> None:
        with open(self.file(absolute), "w") as file:
            file.write(text)

    @property
    def root(self) -> Path:
        """This node's root as a pathlib path, for the tools that work on trees."""
        from pathlib import Path

        return Path(self.root_dir)

    def path(self, absolute: str) -> Path:
        """`file`, as a pathlib path."""
        from pathlib import Path

        return Path(self.file(absolute))

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
        """Die here, half-way, if a crash fault was taken for this run and names this point
        (or none: then the first point the command reaches)."""
        if self.crash is not None and self.crash.point in point:
            self.log(exit_code=-9, note=f"crashed at {point} (sandbox fault {self.crash.id})")
            self.crashed = True
            if self.stdout is not None:  # run inside the agent farm: end the command, not the farm
                raise ExitCommand(-9)
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), SIGKILL)

    # -- state files -------------------------------------------------------------------
    def locked_state(self, relative: str) -> quickjson.LockedJson:
        """Read-modify-write a JSON state file of this host under its lock (see LockedJson)."""
        return quickjson.LockedJson(self.file(relative))

    def read_state(self, relative: str) -> dict[str, Any]:
        data: dict[str, Any] = quickjson.loads(self.read_file(relative))
        return data

    def packages(self) -> dict[str, Any]:
        return self.read_state(PACKAGE_STATE)

    def installed(self, component: str) -> str:
        """The version tag of kubeadm or kubelet on this host: the package installed on Linux,
        the binary in C:\\k on Windows (where `kubelet --version` is the file's own answer)."""
        if self.family == "windows":
            if self.exe_version and self.argv[0] == f"{component}.exe":
                return self.exe_version
            from kubeupgrade.sandbox.hostbin.launch import exe_identity

            with open(self.file(f"/k/{component}.exe"), "rb") as binary:
                found = exe_identity(binary.read(4096))  # the header is on its first lines
            if found is None:
                raise self.fail(f"{component}.exe is not a Kubernetes binary", 1)
            return found[1]
        return "v" + self.packages()["installed"][component].split("-")[0]

    def kubelet(self) -> dict[str, Any]:
        return self.read_state(KUBELET_STATE)

    def notify_kubelet(self) -> None:
        notify_kubelet_event(self.sandbox_dir, self.node)

    # -- command log -------------------------------------------------------------------
    def log(self, exit_code: int, note: str = "") -> None:
        record = {"argv": self.argv, "start": self.started, "end": time.time(), "exit": exit_code}
        if note:
            record["note"] = note
        line = quickjson.dumps(record) + "\n"
        log = os.path.join(self.sandbox_dir, node_entry(self.node, "commands.jsonl"))
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def take_fault(self, *kinds: str) -> Fault | None:
        """The first fault of these FaultKinds that triggers for this command, consumed."""
        return self.faults.take(self.node, self.argv, kinds)

