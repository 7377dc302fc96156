"""Soak: consecutive sandbox campaigns with random faults; every one must converge.

    python -m bench.soak [--campaigns 20] [--seed 1] [--faults 1] [--kinds KIND ...]   (also: make soak)

One sandbox (2 control planes + 3 workers, mixed apt/dnf) with real redis-server, agents and
controller. Each campaign moves the cluster to the next version (patch and minor upgrades from
1.29 to 1.31) with one random fault from the fault list injected: failing or hanging host
commands, a crashed command, a killed agent or controller, a redis restart, an API-server
outage, requests the API server holds for seconds, a kubelet that never comes back (cleared
later), a control plane's kubelet that never restarts a static pod (kubeadm rolls back; cleared
later), a PDB that blocks drains (relaxed later), an agent or the controller frozen (SIGSTOP)
past the timeouts and resumed (SIGCONT), a host command SIGKILLed at whatever moment it is in,
a node's markers overwritten with what is not one, the previous campaign's record damaged
beside the live one, redis-server SIGKILLed and started again without its data (the
campaign is then submitted again, as its notice says), the API server or redis-server frozen
(SIGSTOP: connects complete, nothing answers) for seconds, and the broker out of memory
(maxmemory below its use, then lifted), and every message under way delivered a second time
while its original still runs (as kombu redelivers after the visibility timeout). With `--faults N`, N faults of
distinct kinds at once. Failed campaigns are retried once the faults are cleared. Prints, per
campaign, the faults, the retries needed and the invariant checks passed, then the totals.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from kubeupgrade.api import CampaignHandle, submit
from kubeupgrade.errors import KubeupgradeError
from kubeupgrade.sandbox import invariants
from kubeupgrade.sandbox.manager import Sandbox
from kubeupgrade.sandbox.processes import host_commands
from kubeupgrade.sandbox.stack import Stack
from kubeupgrade.workflow.record import CampaignStore

TARGETS = ["1.29.9", "1.29.12", "1.30.2", "1.30.5", "1.30.8", "1.30.11", "1.30.14", "1.31.1",
           "1.31.3", "1.31.5", "1.31.7", "1.31.9", "1.31.11", "1.31.14", "1.32.1", "1.32.3",
           "1.32.5", "1.32.7", "1.32.9", "1.32.12"]
HOST_COMMANDS = ["kubeadm upgrade apply", "kubeadm upgrade node", "systemctl restart kubelet",
                 "apt-get install", "dnf install", "apt-get update"]
FAULTS = ["fail", "hang", "crash", "kill-agent", "kill-controller", "restart-redis", "api-down", "api-slow",
          "never-ready", "pdb-block", "dpkg-lock", "freeze-agent", "freeze-controller",
          "damage-record", "static-pod-stuck", "kill-command", "damage-markers", "wipe-redis",
          "freeze-api", "freeze-redis", "broker-full", "redeliver"]
# With --faults N, this many at once; these need a process or the cluster to themselves.
ALONE = {"damage-record", "pdb-block"}
AGENT_TIMEOUT = 20  # seconds, in every soak campaign
# A restart and a wipe of redis-server drawn for one moment take turns: interleaved, each
# started a redis-server, the second could not bind, and the first ran on untracked, so every
# later "wipe" killed nothing and the broker kept its data (seed 44, campaigns 8 to 12).
BROKER_RESTARTS = threading.Lock()


def for_a_while(delay: float, seconds: float, begin: callable, end: callable) -> callable:
    """`begin()` after `delay`, then `end()` `seconds` later, or at once when cleared (in a
    thread); returns the clear, which also ends it."""
    cleared = threading.Event()

    def run() -> None:
        if cleared.wait(delay):
            return
        begin()
        cleared.wait(seconds)
        end()

    threading.Thread(target=run, daemon=True).start()

    def clear() -> None:
        cleared.set()
        end()

    return clear


def freeze(stack: Stack, name: str, delay: float, seconds: float) -> callable:
    """SIGSTOP a process group after `delay` for `seconds` (or until cleared), then SIGCONT."""
    def send(sig: int) -> None:
        process = stack.processes.get(name)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, sig)

    return for_a_while(delay, seconds, lambda: send(signal.SIGSTOP), lambda: send(signal.SIGCONT))


def freeze_api(box: Sandbox, delay: float, seconds: float) -> callable:
    """SIGSTOP the API server after `delay` for `seconds`: connects still complete (the listen
    backlog), nothing answers, so every client waits out its timeouts."""
    def send(sig: int) -> None:
        pid = box.api_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    return for_a_while(delay, seconds, lambda: send(signal.SIGSTOP), lambda: send(signal.SIGCONT))


def broker_full(stack: Stack, delay: float, seconds: float) -> callable:
    """After `delay`, the broker's maxmemory set below what it uses for `seconds` (it evicts
    nothing, so it refuses writes), then lifted."""
    import redis

    client = redis.Redis.from_url(stack.broker_for("admin"))  # CONFIG is an administrator's

    def fill() -> None:
        with contextlib.suppress(redis.RedisError):
            client.config_set("maxmemory", int(client.info("memory")["used_memory"]) // 2)

    def lift() -> None:
        with contextlib.suppress(redis.RedisError):
            client.config_set("maxmemory", 0)

    return for_a_while(delay, seconds, fill, lift)


KILLED: list[str] = []  # what kill-command faults killed, "node: argv", said after each campaign
REDELIVERED: list[str] = []  # what redeliver faults copied, "phase on queue", said likewise


def after(delay: float, act: Callable[[threading.Event], None]) -> Callable[[], None]:
    """Run `act(cleared)` in a thread after `delay`, unless cleared first; returns the clearing."""
    cleared = threading.Event()

    def run() -> None:
        if not cleared.wait(delay):
            act(cleared)

    threading.Thread(target=run, daemon=True).start()
    return cleared.set


def kill_command_later(box: Sandbox, node: str, delay: float) -> Callable[[], None]:
    """After `delay`, SIGKILL the first host command seen running on `node` (within 20 s): a
    crash at whatever moment it is in, not at a crash point the sandbox names."""
    def kill(cleared: threading.Event) -> None:
        deadline = time.monotonic() + 20
        while not cleared.is_set() and time.monotonic() < deadline:
            for pid, argv in host_commands(box.paths.root, node).items():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    KILLED.append(f"{node}: {argv}")
                    return
            time.sleep(0.005)

    return after(delay, kill)


def redeliver_later(stack: Stack, delay: float) -> Callable[[], None]:
    """After `delay`, a second delivery of every message under way (Stack.deliver_again); on
    the controller's pool a copy can run beside its original."""
    def copy(_: threading.Event) -> None:
        try:
            copied = stack.deliver_again()
        except Exception as error:  # noqa: BLE001 - a broker away (another fault) copies nothing
            REDELIVERED.append(f"nothing copied ({type(error).__name__}: {error})")
            return
        REDELIVERED.extend(f"{task.rsplit('.', 1)[-1]} on {queue}" for task, queue in copied)
        if not copied:
            REDELIVERED.append("nothing was under way")

    return after(delay, copy)


MARKER_DAMAGE = (b"", b"{", b"[1]", b'"done"', b"\xff\xfe", b"null")


def damage_markers_later(box: Sandbox, node: str, delay: float, rng: random.Random) -> Callable[[], None]:
    """After `delay`, overwrite every marker the agent of `node` has left so far with something
    that is not one (cut short, not a JSON object, not UTF-8), as a disk error or a hand edit
    would: each must count as absent and be set aside, and the steps check their effect again."""
    damage = [rng.choice(MARKER_DAMAGE) for _ in range(64)]

    def overwrite(_: threading.Event) -> None:
        markers = box.node_root(node) / "var/lib/kubeupgrade/markers"
        for index, marker in enumerate(sorted(markers.glob("*")) if markers.is_dir() else []):
            if marker.is_file() and not marker.name.endswith((".damaged", "~")):
                with contextlib.suppress(OSError):
                    marker.write_bytes(damage[index % len(damage)])

    return after(delay, overwrite)


def inject(kind: str, stack: Stack, rng: random.Random, nodes: list[str],
           previous: str | None) -> tuple[str, callable]:
    """Inject a fault; returns its description and a function that clears it."""
    box = stack.sandbox
    node = rng.choice(nodes)
    if kind == "freeze-agent":
        delay, seconds = rng.uniform(1.0, 6.0), rng.uniform(AGENT_TIMEOUT + 2, AGENT_TIMEOUT + 10)
        return (f"agent of {node} frozen {seconds:.0f}s after {delay:.1f}s",
                freeze(stack, f"agent-{node}", delay, seconds))
    if kind == "freeze-controller":
        delay, seconds = rng.uniform(1.0, 6.0), rng.uniform(6.0, 15.0)
        return (f"controller frozen {seconds:.0f}s after {delay:.1f}s",
                freeze(stack, "controller", delay, seconds))
    if kind == "freeze-api":
        delay, seconds = rng.uniform(1.0, 6.0), rng.uniform(20.0, 45.0)
        return f"API server frozen {seconds:.0f}s after {delay:.1f}s", freeze_api(box, delay, seconds)
    if kind == "freeze-redis":
        delay, seconds = rng.uniform(1.0, 6.0), rng.uniform(5.0, 30.0)
        return f"redis-server frozen {seconds:.0f}s after {delay:.1f}s", freeze(stack, "redis", delay, seconds)
    if kind == "broker-full":
        delay, seconds = rng.uniform(1.0, 6.0), rng.uniform(5.0, 15.0)
        return f"broker out of memory for {seconds:.0f}s after {delay:.1f}s", broker_full(stack, delay, seconds)
    if kind == "damage-record":
        if previous is None:
            return "no earlier record to damage", lambda: None
        store = CampaignStore.from_url(stack.broker)
        store.redis.set(f"ku:c:{previous}", rng.choice(['{"truncated', '[]', '{"id": 1}']))
        return f"record of {previous[-13:]} damaged", lambda: None
    if kind in ("fail", "hang", "crash"):
        command = rng.choice(HOST_COMMANDS)
        box.add_fault(kind, node=node, command=command, count=rng.choice([1, 2, 5]), seconds=1.5)
        return f"{kind} `{command}` on {node}", box.clear_faults
    if kind == "damage-markers":
        delay = rng.uniform(1.0, 6.0)
        return (f"markers on {node} damaged after {delay:.1f}s", damage_markers_later(box, node, delay, rng))
    if kind == "redeliver":
        delay = rng.uniform(1.0, 8.0)
        return (f"every message under way delivered again after {delay:.1f}s",
                redeliver_later(stack, delay))
    if kind == "kill-command":
        delay = rng.uniform(0.5, 8.0)
        return (f"the first command on {node} after {delay:.1f}s SIGKILLed",
                kill_command_later(box, node, delay))
    if kind == "dpkg-lock":
        box.add_fault("dpkg-lock", node=node, count=2)
        return f"dpkg lock held on {node}", box.clear_faults
    if kind == "api-slow":
        # Reads or writes of nodes, or anything namespaced (pods, evictions, budgets), each held
        # a few seconds (under the client's 15 s request timeout), six times.
        request = rng.choice(["GET /api/v1/nodes", "PATCH /api/v1/nodes", "GET /api/v1/namespaces",
                              "POST /api/v1/namespaces"])
        seconds = round(rng.uniform(2.0, 8.0), 1)
        box.add_fault("api-slow", command=request, seconds=seconds, count=6)
        return f"API holds `{request}` {seconds}s x6", box.clear_faults
    if kind == "static-pod-stuck":  # kubeadm waits out its timeout, rolls back and fails
        control_plane = rng.choice([name for name in nodes if name.startswith("cp-")])
        component = rng.choice(["kube-apiserver", "kube-controller-manager", "kube-scheduler"])
        box.add_fault("static-pod-stuck", node=control_plane, command=component)
        return f"kubelet of {control_plane} never restarts {component}", box.clear_faults
    if kind == "never-ready":
        box.add_fault("never-ready", node=node)
        return f"kubelet of {node} never Ready", box.clear_faults
    if kind == "pdb-block":
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(box.kubeconfig))
        client.PolicyV1Api(api).patch_namespaced_pod_disruption_budget(
            "api-pdb", "shop", {"spec": {"minAvailable": 3}})

        def relax() -> None:
            client.PolicyV1Api(api).patch_namespaced_pod_disruption_budget(
                "api-pdb", "shop", {"spec": {"minAvailable": 2}})

        return "PDB api-pdb blocks every eviction", relax
    delay = rng.uniform(1.0, 6.0)

    def later() -> None:
        time.sleep(delay)
        if kind == "kill-agent":
            stack.kill(f"agent-{node}")
            time.sleep(1)
            stack.start_agent(node)
        elif kind == "kill-controller":
            stack.kill("controller")
            time.sleep(1)
            stack.start_controller()
        elif kind == "restart-redis":
            with BROKER_RESTARTS:
                stack.stop_redis()
                time.sleep(1)
                stack.start_redis()
        elif kind == "wipe-redis":
            with BROKER_RESTARTS:
                stack.kill("redis")
                shutil.rmtree(box.paths.root / "redis", ignore_errors=True)
                time.sleep(1)
                stack.start_redis()
        elif kind == "api-down":
            box.api_down(3.0)

    threading.Thread(target=later, daemon=True).start()
    what = {"kill-agent": f"agent of {node} SIGKILLed and restarted", "kill-controller":
            "controller SIGKILLed and restarted", "restart-redis": "redis-server restarted",
            "wipe-redis": "redis-server SIGKILLed, back without its data",
            "api-down": "API server down for 3 s"}[kind]
    return f"{what} after {delay:.1f}s", lambda: None


def ended(handle: CampaignHandle) -> tuple[str, str | None]:
    """How the campaign ended, or ("lost", what status says) when the broker lost it."""
    try:
        return handle.wait(timeout=600), None
    except KubeupgradeError as error:
        if handle.id not in str(error):
            raise
        said = str(error)
    deadline = time.monotonic() + 15  # the controller writes its notice once it leads again
    while "lost with the broker's data" not in said and time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            return handle.wait(timeout=600), None  # back (an AOF restart), it runs on
        except KubeupgradeError as error:
            said = str(error)
    return "lost", said


def draw_faults(rng: random.Random, count: int, among: list[str] = FAULTS) -> list[str]:
    """`count` distinct fault kinds of `among`, at most one of those that want the campaign to
    themselves."""
    kinds = rng.sample(among, len(among))
    chosen: list[str] = []
    for kind in kinds:
        if kind in ALONE and any(k in ALONE for k in chosen):
            continue
        chosen.append(kind)
        if len(chosen) == count:
            break
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", type=int, default=1, metavar="N",
                        help="faults injected into each campaign at once (distinct kinds)")
    parser.add_argument("--kinds", nargs="+", choices=FAULTS, default=FAULTS, metavar="KIND",
                        help=f"draw only these kinds of fault ({', '.join(FAULTS)})")
    parser.add_argument("--keep", action="store_true",
                        help="keep the sandbox (its logs, state and command logs) when a campaign fails")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    total_retries = total_checks = 0
    previous: str | None = None
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="kubeupgrade-soak-"))
        kept = [False]
        cleanup.callback(lambda: kept[0] or shutil.rmtree(workdir, ignore_errors=True))
        box, _ = Sandbox.up(workdir / "sandbox", control_planes=2, workers=3, version="1.29.8",
                            os_family="mixed", time_scale=0.005, seed=args.seed)
        stack = Stack(box, visibility_timeout=15)
        nodes = [n["name"] for n in box.nodes]
        try:
            stack.start_redis()
            stack.start_agents()
            stack.start_controller()
            stack.wait_for_workers([f"agent@{n}" for n in nodes])
            print(f"{'#':>2} {'target':<8} {'fault':<52} {'result':<10} {'retries':>7} {'checks':>6} {'time s':>7}")
            for index, target in enumerate(TARGETS[: args.campaigns], start=1):
                started = time.monotonic()
                kinds = draw_faults(rng, args.faults, args.kinds)
                campaign = workdir / f"c{index}.yaml"
                campaign.write_text(yaml.safe_dump({"cluster": "sandbox", "target": target, "policies": {
                    "max_unavailable": 1, "drain": {"delete_emptydir_data": True, "timeout": 5},
                    "retries": {"attempts": 3, "backoff_seconds": 0.5},
                    "ready_timeout": 8, "agent_timeout": AGENT_TIMEOUT}}))
                handle = submit(campaign, broker=stack.broker, accept_timeout=60, key=box.signing_key)
                injected = [inject(kind, stack, rng, nodes, previous) for kind in kinds]
                what = "; ".join(description for description, _ in injected)

                def clear(injected: list = injected) -> None:
                    for _, clear_one in injected:
                        clear_one()
                previous = handle.id
                retries = 0
                state, lost = ended(handle)
                while state != "succeeded" and retries < 3:
                    clear()
                    time.sleep(2)
                    retries += 1
                    if lost is not None:  # what its notice says to do: submit it again
                        print(f"   lost: {lost[:160]}", flush=True)
                        handle = submit(campaign, broker=stack.broker, accept_timeout=60, key=box.signing_key)
                    else:
                        error = handle.status().get("error") or {}
                        print(f"   retried after: {error.get('node')} / {error.get('phase')}: "
                              f"{(error.get('message') or '')[:240]}", flush=True)
                        handle.retry()
                    state, lost = ended(handle)
                clear()
                problems = invariants.check_all(box, max_unavailable=1, succeeded=state == "succeeded")
                checks = invariants.CHECKS - min(invariants.CHECKS, len(problems))
                total_retries += retries
                total_checks += checks
                print(f"{index:>2} {target:<8} {what[:52]:<52} {state:<10} {retries:>7} {checks:>4}/{invariants.CHECKS} "
                      f"{time.monotonic() - started:>7.1f}", flush=True)
                if len(what) > 52:
                    print(f"   faults: {what}", flush=True)
                if KILLED:
                    print(f"   killed: {'; '.join(KILLED)}", flush=True)
                    KILLED.clear()
                if REDELIVERED:
                    print(f"   delivered again: {'; '.join(REDELIVERED)}", flush=True)
                    REDELIVERED.clear()
                if state != "succeeded" or problems:
                    print(f"   error: {handle.status().get('error')} problems: {problems}")
                    if args.keep:
                        kept[0] = True
                        print(f"   kept: {workdir} (campaign {handle.id})")
                    return 1
        finally:
            stack.stop_all()
            box.down()
    print(f"\n{args.campaigns} campaigns converged; {total_retries} retries; "
          f"{total_checks}/{invariants.CHECKS * args.campaigns} invariant checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
