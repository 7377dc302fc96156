"""What one agent costs the broker, measured on real agent processes: thousands of them share
one redis-server (README, Capacity), so each must hold few connections and send few commands."""

import os
import time

import redis

from kubeupgrade.api import submit
from kubeupgrade.sandbox.processes import process_tree
from kubeupgrade.workflow.liveness import AGENT_TTL, alive_agents
from tests.helpers import write_campaign

MAX_IDLE_CONNECTIONS = 4  # per agent: README's capacity formula counts on it
MAX_IDLE_COMMANDS_PER_SECOND = 0.5


def _sockets_to(port: int) -> set[str]:
    """Inodes of the established TCP sockets whose remote end is 127.0.0.1:`port`."""
    found = set()
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].split(":")[1], 16) == port:
                found.add(fields[9])
    return found


def connections_of(root: int, port: int) -> int:
    inodes = _sockets_to(port)
    held = 0
    for pid in process_tree(root):
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        held += sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
    return held


def test_an_agent_holds_at_most_four_connections_between_tasks_and_sends_under_half_a_command_a_second(
        make_stack, tmp_path):
    from kubeupgrade.workflow.runners import AGENT_POLL_SECONDS

    # As shipped: the production poll, not the sandbox's shorter one.
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", agent_poll=AGENT_POLL_SECONDS)
    agents = {name: process for name, process in stack.processes.items() if name.startswith("agent-")}
    time.sleep(2)  # past start-up
    fresh = {name: connections_of(process.pid, stack.redis_port) for name, process in agents.items()}
    assert all(0 < count <= MAX_IDLE_CONNECTIONS for count in fresh.values()), fresh
    # After a whole campaign: every agent ran tasks (record, results, the chain's next link,
    # task events) in its pool process, and holds no more than before it began.
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", handle.status().get("error")
    stack.stop("controller")  # from here on, every command the broker sees is an agent's
    time.sleep(1)
    held = {name: connections_of(process.pid, stack.redis_port) for name, process in agents.items()}
    assert all(0 < count <= MAX_IDLE_CONNECTIONS for count in held.values()), held
    client = redis.Redis(port=stack.redis_port)
    window = 15.0  # three of the agents' 5 s blocking pops and refreshes
    before = sum(stats["calls"] for stats in client.info("commandstats").values())
    time.sleep(window)
    after = sum(stats["calls"] for stats in client.info("commandstats").values())
    rate = (after - before - 1) / window / len(agents)  # less this test's first INFO
    assert 0 < rate <= MAX_IDLE_COMMANDS_PER_SECOND, rate
    # Liveness is the key each agent refreshes, not an answer to a broadcast.
    nodes = [name.removeprefix("agent-") for name in agents]
    assert alive_agents(client, nodes) == set(nodes)
    assert all(0 < client.ttl(f"ku:agent:{node}") <= AGENT_TTL for node in nodes)
    # Each blocking pop names the agent's own queue once: one list per queue (a single priority
    # step), not kombu's default four (README, Capacity: what Redis scans per pop).
    pops = []
    with client.monitor() as watching:
        deadline = time.monotonic() + 6.0  # past every agent's 5 s pop
        for command in watching.listen():
            if command["command"].upper().startswith("BRPOP"):
                pops.append(command["command"].split()[1:-1])
            if time.monotonic() > deadline:
                break
    assert pops and all(len(keys) == 1 and keys[0].startswith("kubeupgrade.") for keys in pops), pops
