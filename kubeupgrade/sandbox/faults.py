"""Injectable faults, per node and per command, shared by the host binaries and the API server.

A fault is a rule in `DIR/faults.json`. Host binaries consult it at start (under a file lock, so
"fail the next N runs" counts exactly across concurrent processes); the API server consults it
for conditions that live on its side (a kubelet that never becomes Ready).
"""

from __future__ import annotations

import os

from kubeupgrade.errors import InvalidInput
from kubeupgrade.sandbox import quickjson
from kubeupgrade.sandbox.layout import STATIC_COMPONENTS

# `typing` itself is not imported at run time (it is a tenth of a simulated command's start);
# mypy treats this name as it treats typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


class FaultKind:
    """The kinds of fault, as the fault file spells them. Plain strings, not an Enum: every
    simulated command reads the fault file, and `enum` was a tenth of such a command's start."""

    FAIL = "fail"  # the command exits non-zero (exit_code) without doing anything
    HANG = "hang"  # the command sleeps `seconds` first, then runs normally
    # The command dies half-way (SIGKILL), leaving a half-applied state: at the first of its
    # crash points, or at the first whose description holds the fault's `point` (apt-get
    # install: "after unpacking", "configuring kubelet"; kubeadm upgrade apply: "etcd manifest").
    CRASH = "crash"
    NEVER_READY = "never-ready"  # the node's kubelet never reports Ready (until cleared)
    DPKG_LOCK = "dpkg-lock"  # the package manager's lock is held by another process
    MISSING_PACKAGE = "missing-package"  # a package version is absent from the repository
    SWAP_ON = "swap-on"  # swap is enabled on the host
    # The API server answers a request (`command`: method and path prefix, as "GET
    # /api/v1/nodes") only after `seconds`: a slow etcd or an overloaded API server. The next
    # N matching requests (1 by default).
    API_SLOW = "api-slow"
    # The node's kubelet does not restart a static pod whose manifest changed (`command`: the
    # component, as "etcd"; "" = any), as in kubeadm#2957: kubeadm's wait for the pod's hash
    # to change times out, and it puts the old manifests (and etcd's data) back.
    STATIC_POD_STUCK = "static-pod-stuck"

    ALL = (FAIL, HANG, CRASH, NEVER_READY, DPKG_LOCK, MISSING_PACKAGE, SWAP_ON, API_SLOW, STATIC_POD_STUCK)
    # Conditions hold until cleared; the others trigger a number of times.
    CONDITIONS = (NEVER_READY, MISSING_PACKAGE, SWAP_ON, STATIC_POD_STUCK)

# The node name API faults are matched with: they are the API server's, not a host's.
API_SERVER = "apiserver"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class Fault:
    """One rule of the fault file. A plain class, not a dataclass: every simulated command is a
    new process that reads the fault file, and `dataclasses` (with `inspect`) was a fifth of its
    imports."""

    __slots__ = ("id", "kind", "node", "command", "count", "seconds", "exit_code", "package", "point")

    def __init__(self, id: str, kind: str, node: str = "*", command: str = "",  # noqa: A002
                 count: int | None = 1, seconds: float = 0.0, exit_code: int = 1,
                 package: str = "", point: str = "") -> None:
        self.id = id
        self.kind = kind
        self.node = node  # a node name, or * for every node
        self.command = command  # argv prefix it applies to, e.g. "kubeadm upgrade apply"; "" = any
        self.count = count  # remaining triggers; None = until cleared
        self.seconds = seconds  # for hang
        self.exit_code = exit_code  # for fail
        self.package = package  # for missing-package: "kubelet" or "kubelet=1.31.2"
        self.point = point  # for crash: where the command dies ("" = its first crash point)

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def with_count(self, count: int | None) -> Fault:
        return Fault(self.id, self.kind, self.node, self.command, count, self.seconds, self.exit_code,
                     self.package, self.point)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fault) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.to_dict().values()))

    def __repr__(self) -> str:
        return "Fault(" + ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items()) + ")"

    def matches(self, node: str, argv: list[str] | None = None) -> bool:
        if self.node not in ("*", node):
            return False
        if argv is None or not self.command:
            return True
        return " ".join(argv).startswith(self.command)


def new_fault(
    kind: str,
    *,
    node: str = "*",
    command: str = "",
    count: int | None = None,
    seconds: float = 0.0,
    exit_code: int = 1,
    package: str = "",
    point: str = "",
) -> Fault:
    if kind not in FaultKind.ALL:
        options = ", ".join(FaultKind.ALL)
        raise InvalidInput(f"fault kind {kind!r} is not one of {options}")
    if count is None and kind not in FaultKind.CONDITIONS:
        count = 1
    if count is not None and count < 1:
        raise InvalidInput(f"fault count {count} must be at least 1")
    if kind in (FaultKind.HANG, FaultKind.API_SLOW) and seconds <= 0:
        article = "an" if kind == FaultKind.API_SLOW else "a"
        raise InvalidInput(f"{article} {kind} fault needs --seconds greater than 0")
    if kind == FaultKind.API_SLOW and (command.split(" ")[0] not in _METHODS
                                       or not command.partition(" ")[2].startswith("/")):
        raise InvalidInput(f"an api-slow fault needs --command METHOD /PATH-PREFIX, such as "
                           f"\"GET /api/v1/nodes\" (got {command!r})")
    if kind == FaultKind.API_SLOW and node != "*":
        raise InvalidInput(f"an api-slow fault is the API server's, not a node's: leave out --node {node}")
    if kind == FaultKind.STATIC_POD_STUCK and command not in ("", *STATIC_COMPONENTS):
        raise InvalidInput(f"a static-pod-stuck fault's --command is a component, one of "
                           f"{', '.join(STATIC_COMPONENTS)} (or none for any; got {command!r})")
    if kind == FaultKind.MISSING_PACKAGE and not package:
        raise InvalidInput("a missing-package fault needs --package, e.g. kubelet=1.31.2")
    if point and kind != FaultKind.CRASH:
        raise InvalidInput(f"--point is where a crash fault's command dies; a {kind} fault has none")
    return Fault(
        id=os.urandom(4).hex(),
        kind=kind,
        node=node,
        command=command,
        count=count,
        seconds=seconds,
        exit_code=exit_code,
        package=package,
        point=point,
    )


class FaultStore:
    def __init__(self, path: str | Path) -> None:
        self.path = os.fspath(path)

    def _locked(self) -> quickjson.LockedJson:
        """The fault file's entries (dicts) under its lock, written back if changed."""
        return quickjson.LockedJson(self.path, missing=[])

    def _read(self) -> list[Fault]:
        try:
            with open(self.path) as file:
                text = file.read()
        except FileNotFoundError:
            return []
        return [Fault(**item) for item in quickjson.loads(text)]

    def list(self) -> list[Fault]:
        return self._read()

    def add(self, fault: Fault) -> Fault:
        with self._locked() as entries:
            entries.append(fault.to_dict())
        return fault

    def clear(self, fault_id: str | None = None) -> int:
        """Remove one fault (by id) or all; returns how many were removed."""
        with self._locked() as entries:
            keep = [e for e in entries if fault_id is not None and e.get("id") != fault_id]
            removed = len(entries) - len(keep)
            entries[:] = keep
        if fault_id is not None and removed == 0:
            raise InvalidInput(f"no fault with id {fault_id!r}; see `kubeupgrade sandbox fault list`")
        return removed

    def take(self, node: str, argv: list[str], kinds: tuple[str, ...]) -> Fault | None:
        """The first triggering fault for this command (of the FaultKind `kinds`), consuming one
        of its counts."""
        wanted = set(kinds)
        # Most commands meet no fault: a look at the file as it is (written whole, by rename)
        # answers them without the lock every command of every node would otherwise queue on.
        if not any(f.kind in wanted and f.matches(node, argv) for f in self._read()):
            return None
        with self._locked() as entries:
            for index, entry in enumerate(entries):
                fault = Fault(**entry)
                if fault.kind in wanted and fault.matches(node, argv):
                    if fault.count is not None:
                        remaining = fault.count - 1
                        if remaining <= 0:
                            del entries[index]
                        else:
                            entries[index] = fault.with_count(remaining).to_dict()
                    return fault
        return None

    def condition(self, node: str, kind: str) -> list[Fault]:
        """Active conditions of FaultKind `kind` on `node` (not consumed)."""
        return [f for f in self._read() if f.kind == kind and f.matches(node)]
