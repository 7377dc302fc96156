"""An agent's task whose next link is its own opens the producer for that link beside its body
(agent_connections.warm_next_link), against a real redis-server: the link's send at the task's
end then opens no connection and declares nothing. Each send is measured in a fresh
interpreter, as a task's process meets it (what one app opened, another in the same process
may reuse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow.agent_connections import warm_next_link
from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.names import node_queue
from tests.unit.test_agent_connections import request_after

OWN = node_queue("worker-1")
ROOT = Path(__file__).resolve().parents[2]

SEND_NEXT_LINK = """
import json, sys
import redis
from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow.agent_connections import warm_next_link
from kubeupgrade.workflow.app import client_app
from tests.unit.test_agent_connections import request_after

url, own, warm = sys.argv[1], sys.argv[2], sys.argv[3] == "warm"
app = client_app(url)
app.conf.broker_pool_limit = 1  # as limit_connections sets it on an agent
if warm:
    warm_next_link(app, request_after(Phase.RESTART_KUBELET), own).join(10)
server = redis.Redis.from_url(url)
before = server.info("stats")
app.send_task("next.link", queue=own, ignore_result=True)
after = server.info("stats")
print(json.dumps({key: after[key] - before[key]
                  for key in ("total_connections_received", "total_commands_processed")}))
"""


def _send(url: str, how: str) -> dict[str, int]:
    env = {name: value for name, value in os.environ.items() if name != "KUBEUPGRADE_MESSAGE_KEY"}
    done = subprocess.run([sys.executable, "-c", SEND_NEXT_LINK, url, OWN, how], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_next_links_send_opens_nothing_after_the_warm_up(redis_url):
    cold = _send(redis_url, "cold")
    # What the warm-up takes off the link: the producer's connections, its handshake and the
    # queue's declaration.
    assert cold["total_connections_received"] >= 1 and cold["total_commands_processed"] >= 8, cold
    warmed = _send(redis_url, "warm")
    # The message, its task-sent event and the measuring INFO: nothing else.
    assert warmed == {"total_connections_received": 0, "total_commands_processed": 3}, warmed


def test_nothing_is_warmed_when_the_chain_leaves_the_agent_or_ends(redis_url):
    app = client_app(redis_url)
    assert warm_next_link(app, request_after(Phase.WAIT_READY), OWN) is None  # the controller's
    assert warm_next_link(app, request_after(Phase.RESTART_KUBELET, node="worker-2"), OWN) is None
    assert warm_next_link(app, None, OWN) is None  # the chain ends here


def test_a_broker_that_is_away_fails_nothing():
    app = client_app("redis://127.0.0.1:1/0")  # nothing listens there
    app.conf.broker_connection_timeout = 0.5
    thread = warm_next_link(app, request_after(Phase.RESTART_KUBELET), OWN)
    assert thread is not None
    thread.join(30)
    assert not thread.is_alive()  # it gave up, quietly: the send says why, if it still cannot
