"""Bring sandboxes up and down, inject faults, and read what happened: the `Sandbox` handle.

Used by `kubeupgrade sandbox ...`, by tests and by `make demo`. Every process it starts is
recorded by pid in the sandbox directory, so `down` stops exactly those.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubeupgrade.errors import InvalidInput, RuntimeFailure
from kubeupgrade.model.versions import parse_version
from kubeupgrade.sandbox import hosts, releases
from kubeupgrade.sandbox.faults import Fault, FaultStore, new_fault
from kubeupgrade.sandbox.layout import SandboxPaths, load_config, write_json_atomically
from kubeupgrade.sandbox.objects import initial_objects
from kubeupgrade.sandbox.processes import child_env, free_port
from kubeupgrade.sandbox.timing import Timing
from kubeupgrade.sandbox.tls import create_certificates
from kubeupgrade.security.messages import MessageIdentity, create_identities
from kubeupgrade.security.signing import TRUSTED_DIR, create_key

# "windows": Linux (apt) control planes and Windows workers, since a control plane cannot run
# on Windows. "mixed": control planes apt and dnf in turn; workers too, every third on Windows.
# "dnf5": the dnf family on Fedora 41 and later, whose dnf (and yum) is dnf 5.
OS_CHOICES = ("apt", "dnf", "dnf5", "yum", "windows", "mixed")
_MIXED_ROTATION = ("apt", "dnf")
CLUSTER_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def _family(choice: str, index: int, node: str) -> str:
    worker = node.startswith("worker-")
    if choice == "dnf5":
        return "dnf"
    if choice == "windows":
        return "windows" if worker else "apt"
    if choice == "mixed":
        if worker and int(node.removeprefix("worker-")) % 3 == 0:
            return "windows"
        return _MIXED_ROTATION[index % len(_MIXED_ROTATION)]
    return choice


def _package_manager(name: str | None) -> dict[str, str]:
    """A node's package manager where its family has more than one (only dnf 5 so far: the
    dnf family's default is dnf 4)."""
    return {"package_manager": name} if name == "dnf5" else {}


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class NodeRow:
    name: str
    role: str
    os: str
    status: str
    version: str


class Sandbox:
    """A sandbox cluster in a directory."""

    def __init__(self, directory: str | Path) -> None:
        self.paths = SandboxPaths(Path(directory).resolve())

    # -- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        directory: str | Path,
        *,
        control_planes: int = 1,
        workers: int = 2,
        version: str = "1.30.4",
        os_family: str = "apt",
        seed: int = 0,
        time_scale: float = 0.01,
        jitter: float = 0.0,
        name: str = "sandbox",
        node_specs: list[dict[str, Any]] | None = None,
        workload: bool = True,
        objects: dict[str, list[dict[str, Any]]] | None = None,
    ) -> tuple[Sandbox, bool]:
        """Create and start a sandbox; returns (sandbox, created). A live one is left alone.
        `node_specs` ({name, role, os, labels, and optionally kubelet and control_plane versions})
        instead of counts builds a given topology's nodes, each at its own versions (the cluster's
        by default); `workload=False` leaves out the default workload, and `objects` (by plural)
        are the cluster's own from the start (a rehearsal's mirror: kubeupgrade.kube.snapshot)."""
        sandbox = cls(directory)
        if sandbox.paths.config.exists():
            if sandbox.api_pid() is not None:
                return sandbox, False
            raise InvalidInput(
                f"{sandbox.paths.root}: a sandbox exists here but its API server is not running; "
                f"run `kubeupgrade sandbox start --dir {sandbox.paths.root}` or "
                f"`kubeupgrade sandbox down --dir {sandbox.paths.root} --purge`")
        kube = _released_version(version)
        if control_planes < 1:
            raise InvalidInput(f"--control-planes {control_planes}: a cluster needs at least one")
        if workers < 0:
            raise InvalidInput(f"--workers {workers}: cannot be negative")
        if os_family not in OS_CHOICES:
            raise InvalidInput(f"--os {os_family!r} is not one of {', '.join(OS_CHOICES)}")
        if time_scale <= 0:
            raise InvalidInput(f"--time-scale {time_scale} must be greater than 0")
        if not CLUSTER_NAME.fullmatch(name):
            raise InvalidInput(f"--name {name!r}: use lower-case letters, digits and '-' "
                               "(at most 63, starting with a letter)")
        if node_specs is not None:
            nodes = [{"name": n["name"], "role": n["role"], "os": n["os"], "labels": dict(n.get("labels") or {}),
                      **_package_manager(n.get("package_manager")), **_node_versions(n, kube)}
                     for n in node_specs]
            names = [n["name"] for n in nodes]
        else:
            names = [f"cp-{i}" for i in range(1, control_planes + 1)]
            names += [f"worker-{i}" for i in range(1, workers + 1)]
            nodes = []
            for index, node in enumerate(names):
                role = "control-plane" if node.startswith("cp-") else "worker"
                nodes.append({"name": node, "role": role, "os": _family(os_family, index, node),
                              **_package_manager("dnf5" if os_family == "dnf5" else None)})
        config: dict[str, Any] = {
            "cluster": name,
            "version": kube.tag,
            "port": free_port(),
            "token": secrets.token_hex(16),
            "node_tokens": {node: secrets.token_hex(16) for node in names},
            "seed": seed,
            "timing": Timing(time_scale=time_scale, jitter=jitter, seed=seed).to_config(),
            "nodes": nodes,
            "workload": workload,
            "created": time.time(),
        }
        sandbox.paths.root.mkdir(parents=True, exist_ok=True)
        create_certificates(sandbox.paths.pki)
        write_json_atomically(sandbox.paths.config, config, indent=1)
        for spec in nodes:
            hosts.create_host(sandbox.paths, spec, config)
        # The sandbox's operator: its key signs the campaigns, every host trusts it.
        pair = create_key(sandbox.paths.root / "keys")
        for spec in nodes:
            trusted = sandbox.node_root(spec["name"]) / TRUSTED_DIR.lstrip("/")
            trusted.mkdir(parents=True, exist_ok=True)
            (trusted / pair.public.name).write_bytes(pair.public.read_bytes())
        snapshot = {"resourceVersion": 1, "objects": initial_objects(config, objects), "history": []}
        write_json_atomically(sandbox.paths.state, snapshot)
        sandbox.paths.kubeconfig.write_text(
            hosts.kubeconfig_text(sandbox.server, config["token"], "kubernetes-admin",
                                  sandbox.paths.ca.read_bytes()))
        sandbox.paths.events.mkdir(exist_ok=True)
        sandbox.start_api()
        return sandbox, True

    @property
    def signing_key(self) -> Path:
        """The sandbox operator's private key (`submit --key`); every host trusts its .pub."""
        return self.paths.root / "keys" / "operator.key"

    def message_identity(self, role: str) -> MessageIdentity:
        """The sandbox's message-signing identity for `role` (controller, agent, operator),
        made on first use (a sandbox made before message signing has none yet)."""
        directory = self.paths.root / "messages"
        if not (directory / f"{role}.key").exists():
            create_identities(directory)
        return MessageIdentity(directory / f"{role}.key", directory / f"{role}.pem", directory / "trusted")

    @property
    def config(self) -> dict[str, Any]:
        if not self.paths.config.exists():
            raise InvalidInput(f"{self.paths.root}: no sandbox here; create one with "
                               "`kubeupgrade sandbox up --dir ...`")
        return load_config(self.paths)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.config['port']}"

    @property
    def kubeconfig(self) -> Path:
        return self.paths.kubeconfig

    def service_account(self, manifest: Path, account: str, namespace: str = "kube-system") -> Path:
        """A kubeconfig for ServiceAccount `namespace/account` holding exactly the rights the
        RBAC `manifest` binds to it (as `kubectl apply -f manifest` would on a real cluster)."""
        import yaml

        from kubeupgrade.sandbox.rbac import grants_for

        try:
            documents = list(yaml.safe_load_all(manifest.read_text()))
        except (OSError, yaml.YAMLError) as error:
            raise InvalidInput(f"{manifest}: not a readable RBAC manifest: {error}") from None
        grants = grants_for(documents, namespace, account)
        if not grants.rules:
            raise InvalidInput(f"{manifest}: binds no role to ServiceAccount {namespace}/{account}")
        token = secrets.token_hex(16)
        config = self.config
        config.setdefault("identities", {})[token] = grants.to_doc()
        write_json_atomically(self.paths.config, config, indent=1)
        path = self.paths.root / f"{account}.kubeconfig"
        path.write_text(hosts.kubeconfig_text(self.server, token, account, self.paths.ca.read_bytes()))
        return path

    @property
    def nodes(self) -> list[dict[str, str]]:
        return list(self.config["nodes"])

    def api_pid(self) -> int | None:
        try:
            pid = json.loads(self.paths.apiserver_pid.read_text())["pid"]
        except (FileNotFoundError, ValueError, KeyError):
            return None
        return pid if _alive(pid) else None

    def start_api(self, timeout: float | None = None) -> int:
        """Start the API server (if it is not running) and wait until it answers: `timeout`
        seconds, by default 30 plus 20 ms per node (it loads the whole state before it serves;
        ~55 s for 5,000 nodes here). One that does not answer in time is stopped, not left."""
        pid = self.api_pid()
        if pid is not None:
            return pid
        nodes = len(self.config["nodes"])  # also a clear error when there is no sandbox
        hosts.compile_bytecode()  # before any host command, agent or controller of it runs
        timeout = 30.0 + 0.02 * nodes if timeout is None else timeout
        with open(self.paths.apiserver_log, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "kubeupgrade.sandbox.apiserver", "--dir", str(self.paths.root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=child_env(), cwd=str(self.paths.root))
        write_json_atomically(self.paths.apiserver_pid, {"pid": process.pid, "started": time.time()})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = self.paths.apiserver_log.read_text(errors="replace").strip().splitlines()[-1:]
                raise RuntimeFailure(f"sandbox API server exited with {process.returncode}: "
                                     f"{tail[0] if tail else 'no output'} (log: {self.paths.apiserver_log})")
            if self.healthy():
                return process.pid
            time.sleep(0.05)
        _terminate(process.pid, 10.0)
        self.paths.apiserver_pid.unlink(missing_ok=True)
        raise RuntimeFailure(f"sandbox API server did not answer within {timeout:.0f}s; stopped it "
                             f"(log: {self.paths.apiserver_log})")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.paths.ca))

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.server + "/readyz", timeout=1,
                                        context=self.ssl_context()) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop_api(self, timeout: float = 10.0) -> bool:
        """Stop the API server (state is flushed on SIGTERM). True if one was running."""
        pid = self.api_pid()
        if pid is None:
            return False
        _terminate(pid, timeout)
        return True

    def api_down(self, seconds: float) -> None:
        """Make the API server unreachable for `seconds`, then start it again (in background)."""
        if seconds <= 0:
            raise InvalidInput(f"--seconds {seconds} must be greater than 0")
        self.stop_api()
        restarter = subprocess.Popen(
            [sys.executable, "-m", "kubeupgrade.sandbox.manager", "restart-after",
             str(self.paths.root), str(seconds)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, env=child_env())
        write_json_atomically(self.paths.root / "restarter.pid", {"pid": restarter.pid})

    def down(self, purge: bool = False) -> list[int]:
        """Stop every process this sandbox started; with `purge`, delete the directory."""
        stopped = []
        for pid_file in (self.paths.root / "restarter.pid", self.paths.apiserver_pid):
            try:
                pid = json.loads(pid_file.read_text())["pid"]
            except (FileNotFoundError, ValueError, KeyError):
                continue
            if _alive(pid):
                _terminate(pid, 10.0)
                stopped.append(pid)
            pid_file.unlink(missing_ok=True)
        if purge and self.paths.config.exists():
            import shutil

            shutil.rmtree(self.paths.root)
        return stopped

    # -- reading -----------------------------------------------------------------------------
    def api_get(self, path: str, patience: float = 5.0) -> Any:
        """GET `path`, asking again for up to `patience` seconds while nothing answers (a single
        control plane's API server is away while it restarts during its upgrade)."""
        request = urllib.request.Request(self.server + path,
                                         headers={"Authorization": f"Bearer {self.config['token']}"})
        deadline = time.monotonic() + patience
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10, context=self.ssl_context()) as response:
                    return json.loads(response.read())
            except (urllib.error.URLError, OSError) as error:
                if isinstance(error, urllib.error.HTTPError) or time.monotonic() >= deadline:
                    raise RuntimeFailure(f"sandbox API server at {self.server} is not answering: "
                                         f"{getattr(error, 'reason', error)}") from None
                time.sleep(0.1)

    def node_rows(self) -> list[NodeRow]:
        from kubeupgrade.sandbox.tables import node_status_text

        specs = {n["name"]: n for n in self.nodes}
        rows = []
        for node in self.api_get("/api/v1/nodes")["items"]:
            name = node["metadata"]["name"]
            rows.append(NodeRow(name, specs[name]["role"], specs[name]["os"], node_status_text(node),
                                node["status"]["nodeInfo"]["kubeletVersion"]))
        return rows

    def history(self) -> list[dict[str, Any]]:
        return self.api_get("/sandbox/v1/history")["items"]

    def command_log(self, node: str) -> list[dict[str, Any]]:
        path = self.paths.command_log(node)
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def node_bin(self, node: str) -> Path:
        return self.paths.node_bin(node)

    def node_root(self, node: str) -> Path:
        return self.paths.node_root(node)

    # -- faults ------------------------------------------------------------------------------
    def add_fault(self, kind: str, *, node: str = "*", command: str = "", count: int | None = None,
                  seconds: float = 0.0, exit_code: int = 1, package: str = "", point: str = "") -> Fault:
        if node != "*" and node not in {n["name"] for n in self.nodes}:
            raise InvalidInput(f"--node {node!r} is not a node of this sandbox "
                               f"({', '.join(n['name'] for n in self.nodes)})")
        fault = new_fault(kind, node=node, command=command, count=count, seconds=seconds,
                          exit_code=exit_code, package=package, point=point)
        return FaultStore(self.paths.faults).add(fault)

    def faults(self) -> list[Fault]:
        return FaultStore(self.paths.faults).list()

    def clear_faults(self, fault_id: str | None = None) -> int:
        removed = FaultStore(self.paths.faults).clear(fault_id)
        # Conditions such as never-ready are re-evaluated by the API server's kubelet loop.
        return removed


def _node_versions(spec: dict[str, Any], cluster: Any) -> dict[str, str]:
    """A node's own kubelet and control-plane versions, where they differ from the cluster's:
    released, and within the skew a running cluster can have (a kubelet up to three minors
    behind and never ahead of the control plane, a control plane within one minor)."""
    found = {}
    for key in ("kubelet", "control_plane"):
        text = spec.get(key)
        if not text:
            continue
        version = parse_version(str(text))
        if version == cluster:
            continue
        low = 3 if key == "kubelet" else 1
        if not cluster.minor - low <= version.minor <= cluster.minor + 1:
            raise InvalidInput(f"node {spec['name']}: {key} {version.tag} is outside the skew a "
                               f"cluster at {cluster.tag} can run")
        try:
            found[key] = _released_version(str(text)).tag
        except InvalidInput as error:
            raise InvalidInput(f"node {spec['name']}: {key} {error}".replace("--version ", "")) from None
    if "control_plane" in found and spec.get("role") != "control-plane":
        raise InvalidInput(f"node {spec['name']}: only a control plane has a control_plane version")
    return found


def _released_version(text: str) -> Any:
    version = parse_version(text)
    if not releases.is_released(version):
        available = releases.releases(version.minor_version)
        span = (f"{available[0].plain} to {available[-1].plain}" if available
                else f"minors {releases.minors()[0].plain} to {releases.minors()[-1].plain}")
        raise InvalidInput(f"--version {text}: not a release the sandbox repository holds ({span})")
    return version


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _reap(pid)
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _restart_after(directory: str, seconds: str) -> int:
    time.sleep(float(seconds))
    sandbox = Sandbox(directory)
    sandbox.start_api()
    (sandbox.paths.root / "restarter.pid").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "restart-after":
        sys.exit(_restart_after(sys.argv[2], sys.argv[3]))
    sys.stderr.write("usage: python -m kubeupgrade.sandbox.manager restart-after DIR SECONDS\n")
    sys.exit(2)
