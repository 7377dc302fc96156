"""Run the real processes around a sandbox: redis-server, one agent per node, the controller
and Flower. Used by `make demo`, the end-to-end tests and the benchmarks; every process is
started with an argv list, logged to the sandbox directory, and stopped by pid.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from kubeupgrade.errors import RuntimeFailure
from kubeupgrade.sandbox.manager import Sandbox
from kubeupgrade.sandbox.processes import child_env, free_port
from kubeupgrade.security.messages import NO_IDENTITY

# The controller runs with the rights we ship for it, not as the sandbox's admin: a rule missing
# from the manifest fails every sandbox campaign (the tests, the demo) before it fails an operator.
CONTROLLER_RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "controller-rbac.yaml"
# With secure_broker, redis-server runs this very file (TLS, ACL users per role), with only the
# port and the paths changed.
SHIPPED_REDIS_CONF = Path(__file__).resolve().parents[2] / "deploy" / "redis" / "kubeupgrade-redis.conf"


def wait_for_redis(where: int | str, hint: str, timeout: float = 10.0) -> None:
    """Return once a redis-server answers at `where` (a port on 127.0.0.1, or a URL);
    RuntimeFailure at the timeout."""
    client = redis.Redis.from_url(where) if isinstance(where, str) else redis.Redis(port=where)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"redis-server did not start; {hint}") from None
            time.sleep(0.05)


@dataclass
class Stack:
    sandbox: Sandbox
    redis_port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    visibility_timeout: float = 3600.0
    flower_port: int = 0
    flower_auth: str = ""
    metrics_port: int = 0
    metrics_auth: str = ""
    controller_kubeconfig: Path | None = None
    agent_poll: float = 1.0  # seconds per idle BRPOP; production agents use 5 (runners.py)
    # TLS and one ACL user per role, as deploy/redis ships them: each process connects as its
    # role (role -> URL here); this process, like an operator's CLI, as "cli".
    secure_broker: bool = False
    broker_urls: dict[str, str] = field(default_factory=dict)
    # INFO logs every task the controller receives and ends: what a failed test's log tail
    # needs to tell a task never run from an answer never seen (tests set it; benchmarks do not).
    controller_loglevel: str = "WARNING"
    # How to start an agent: this Python's `kubeupgrade agent`, or another installation's
    # entry point (a Python 3.9 venv's `kubeupgrade-agent`, which takes the same options).
    agent_command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "kubeupgrade", "agent"])

    @property
    def logs(self) -> Path:
        path = self.sandbox.paths.root / "logs"
        path.mkdir(exist_ok=True)
        return path

    @property
    def broker(self) -> str:
        return self.broker_for("cli")

    def broker_for(self, role: str) -> str:
        """The URL a process of `role` (controller, agent, cli, flower, admin) connects with."""
        if self.secure_broker:
            return self.broker_urls[role]
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=child_env(KUBEUPGRADE_VISIBILITY_TIMEOUT=str(self.visibility_timeout), **env),
                                   start_new_session=True, cwd=str(self.sandbox.paths.root))
        log.close()
        self.processes[name] = process
        return process

    # -- redis ---------------------------------------------------------------------------------
    def start_redis(self, *, appendonly: bool = True) -> None:
        """A private redis-server on a free port, with AOF persistence as deploy/ configures it
        (with secure_broker: deploy/redis's whole configuration, TLS and ACL users included)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeFailure("redis-server is not installed (apt-get install redis-server)")
        self.redis_port = self.redis_port or free_port()
        data = self.sandbox.paths.root / "redis"
        data.mkdir(exist_ok=True)
        durability = ["--appendonly", "yes" if appendonly else "no"]
        running = self.processes.get("redis")
        if running is not None and running.poll() is None:
            raise RuntimeFailure(f"this stack's redis-server still runs (pid {running.pid}); stop it first")
        if self.secure_broker:
            process = self._spawn("redis", [binary, str(self._secure_redis_conf(data)), *durability])
            where: int | str = self.broker_for("admin")
        else:
            process = self._spawn("redis", [
                binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(data),
                *durability, "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction"])
            where = self.redis_port
        wait_for_redis(where, "see logs/redis.log")
        # The one answering must be this one: a redis-server left on the port (one nobody
        # stopped) answers while the new one exits unable to bind, and a "wiped" broker would
        # keep its data.
        client = redis.Redis.from_url(where) if isinstance(where, str) else redis.Redis(port=where)
        answering = client.info("server").get("process_id")
        if answering != process.pid:
            raise RuntimeFailure(f"another redis-server (pid {answering}) answers on port {self.redis_port}; "
                                 "stop it, see logs/redis.log")

    def _secure_redis_conf(self, data: Path) -> Path:
        """The shipped configuration, included unchanged, then this sandbox's port, paths,
        certificates and users (made once, so a restarted redis-server keeps them)."""
        from kubeupgrade.sandbox.tls import create_certificates
        from kubeupgrade.security.broker_users import ACL_FILE, ROLES, create_broker_users

        where = self.sandbox.paths.root / "broker"
        ca, cert, key = where / "ca.crt", where / "redis.crt", where / "redis.key"
        if not (where / ACL_FILE).exists():
            ca, cert, key = create_certificates(where, server="redis", common_name="redis")
            base = f"rediss://127.0.0.1:{self.redis_port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
            create_broker_users(where, base)
        self.broker_urls = {role: (where / f"{role}.env").read_text().split("=", 1)[1].strip()
                            for role in ROLES}
        conf = where / "redis.conf"
        conf.write_text(f"include {SHIPPED_REDIS_CONF}\n"
                        f"tls-port {self.redis_port}\nbind 127.0.0.1\ndir {data}\n"
                        f"tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n"
                        f"aclfile {where / ACL_FILE}\n")
        return conf

    def stop_redis(self) -> None:
        self.stop("redis")

    # -- kubeupgrade processes ----------------------------------------------------------------------
    def start_agent(self, node: str, *, unsigned_messages: bool = False,
                    options: tuple[str, ...] = (), host: str | None = None) -> subprocess.Popen:
        """The node's agent, verifying messages with the sandbox's agent identity (or, to
        rehearse a misconfigured node, with --unsigned-messages and no identity; or on another
        node's `host`, as a swapped inventory line would start it)."""
        identity = NO_IDENTITY if unsigned_messages else self.sandbox.message_identity("agent").env()
        extra = [*options, *(["--unsigned-messages"] if unsigned_messages else [])]
        host = host or node
        return self._spawn(f"agent-{node}", [
            *self.agent_command, "--node", node,
            "--host-root", str(self.sandbox.node_root(host)), "--path", str(self.sandbox.node_bin(host)),
            "--loglevel", "WARNING", *extra], KUBEUPGRADE_AGENT_POLL=str(self.agent_poll),
            KUBEUPGRADE_BROKER=self.broker_for("agent"),
            **identity)

    def start_agents(self, nodes: list[str] | None = None) -> None:
        for node in nodes if nodes is not None else [n["name"] for n in self.sandbox.nodes]:
            self.start_agent(node)

    def start_farm(self, nodes: list[str] | None = None, *, name: str = "farm",
                   concurrency: int = 16) -> subprocess.Popen:
        """One process serving many nodes' queues, their commands run in-process (agent_farm):
        for benchmarks at thousands of nodes, not for rehearsing faults."""
        argv = [sys.executable, "-m", "kubeupgrade.sandbox.agent_farm", "--dir", str(self.sandbox.paths.root),
                "--name", name, "--concurrency", str(concurrency)]
        if nodes is not None:
            argv += ["--nodes", ",".join(nodes)]
        return self._spawn(name, argv, KUBEUPGRADE_AGENT_POLL=str(self.agent_poll),
                           KUBEUPGRADE_BROKER=self.broker_for("agent"),
                           **self.sandbox.message_identity("agent").env())

    def start_controller(self, concurrency: int = 8, kubeconfig: Path | None = None,
                         metrics: bool = False, pool_nice: int | None = None) -> subprocess.Popen:
        """The controller, connected to this sandbox (or, to rehearse a mistake, to `kubeconfig`);
        with `metrics`, serving them on `metrics_port` behind `metrics_auth`; its pool processes
        `pool_nice` nicer than it (None: the command's default)."""
        if kubeconfig is None and self.controller_kubeconfig is None and CONTROLLER_RBAC.exists():
            self.controller_kubeconfig = self.sandbox.service_account(CONTROLLER_RBAC, "kubeupgrade-controller")
        argv = [sys.executable, "-m", "kubeupgrade", "controller", "--kubeconfig",
                str(kubeconfig or self.controller_kubeconfig or self.sandbox.kubeconfig),
                "--concurrency", str(concurrency), "--loglevel", self.controller_loglevel]
        if pool_nice is not None:
            argv += ["--pool-nice", str(pool_nice)]
        env = {**self.sandbox.message_identity("controller").env(),
               "KUBEUPGRADE_BROKER": self.broker_for("controller")}
        if metrics:
            self.metrics_port = self.metrics_port or free_port()
            self.metrics_auth = self.metrics_auth or f"prometheus:{secrets.token_urlsafe(12)}"
            argv += ["--metrics-port", str(self.metrics_port)]
            env["KUBEUPGRADE_METRICS_AUTH"] = self.metrics_auth
        return self._spawn("controller", argv, **env)

    def start_flower(self) -> str:
        self.flower_port = self.flower_port or free_port()
        self.flower_auth = self.flower_auth or f"operator:{secrets.token_urlsafe(12)}"
        # Flower holds no message key: it reads task events (plain JSON) and sends nothing.
        self._spawn("flower", [sys.executable, "-m", "kubeupgrade", "flower", "--port", str(self.flower_port)],
                    KUBEUPGRADE_BROKER=self.broker_for("flower"), KUBEUPGRADE_FLOWER_AUTH=self.flower_auth, **NO_IDENTITY)
        return f"http://127.0.0.1:{self.flower_port}"

    def wait_for_workers(self, names: list[str], timeout: float = 60.0) -> None:
        """Wait until every worker named answers, by the keys they refresh (no worker takes
        remote control): agents (`agent@<node>`) by their liveness key, the controller
        (`controller@<host>`) by the dispatcher's leader key, which names its host."""
        from kubeupgrade.workflow.liveness import alive_agents
        from kubeupgrade.workflow.record import LEADER_KEY

        client = redis.Redis.from_url(self.broker)
        agents = {name.split("@", 1)[1]: name for name in names if name.startswith("agent@")}
        controllers = {name.split("@", 1)[1]: name for name in names if name.startswith("controller@")}
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen = {agents[node] for node in alive_agents(client, agents)}
                leader = client.get(LEADER_KEY) if controllers else None
                if leader is not None:
                    seen |= {name for host, name in controllers.items() if leader.decode().startswith(f"{host}:")}
            except redis.ConnectionError:
                # A redis-server that came back on the same port (a restart, or a port reused by
                # the next test) first shows up as a broken pooled connection; the next read
                # gets a fresh one.
                seen = set()
            if set(names) <= seen:
                return
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"workers not answering: {', '.join(sorted(set(names) - seen))}")
            for name, process in self.processes.items():
                if process.poll() is not None and name != "redis":
                    raise RuntimeFailure(f"{name} exited with {process.returncode}; see logs/{name}.log")
            time.sleep(0.1)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def deliver_again(self) -> list[tuple[str, str]]:
        """Put a copy of every message a consumer took and has not acknowledged back in its
        queue, as kombu does once the visibility timeout passes, but while the originals still
        run: each copy is a genuine, signed second delivery of a task under way. Returns (task
        name, queue) of each copy."""
        import json

        from kombu import Connection

        copied = []
        with Connection(self.broker_for("admin")) as connection:
            channel = connection.default_channel
            held = channel.client.hgetall(channel.unacked_key)
            with channel.client.pipeline() as pipe:
                for text in held.values():
                    payload, exchange, routing_key = json.loads(text)
                    channel._do_restore_message(payload, exchange, routing_key, pipe)
                    copied.append(((payload.get("headers") or {}).get("task", "?"), routing_key))
                pipe.execute()
        return copied

    def kill(self, name: str) -> None:
        """SIGKILL a process and its children (a crash, not a shutdown)."""
        self.stop(name, signal.SIGKILL, 5)

    def stop_all(self, timeout: float = 20.0) -> None:
        """TERM every process at once (redis last), then wait; KILL what is left."""
        names = [n for n in self.processes if n != "redis"]
        for name in names:
            process = self.processes[name]
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for name in names:
            process = self.processes.pop(name)
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(5)
        self.stop("redis")
