"""When an agent's task process keeps its broker connections: only while its chain goes on here
(the next link is already on this agent's queue); otherwise the four-connection budget holds
(tests/e2e/test_agent_budget.py measures it on real agents)."""

import json
from types import SimpleNamespace

from celery import Celery

from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow.agent_connections import keeps_connections, next_link_queue
from kubeupgrade.workflow.dispatcher import phase_signature
from kubeupgrade.workflow.names import node_queue

APP = Celery("agent-connections-test")


def request_after(*phases: Phase, node: str = "worker-1"):
    """The request of a task whose chain goes on with `phases`, as its message carries them:
    JSON signatures, the next link last."""
    links = [phase_signature(APP, phase, node, f"t{index}", campaign="c", hop=0, attempt=1, version="1.31.2")
             for index, phase in enumerate(phases)]
    return SimpleNamespace(chain=json.loads(json.dumps(list(reversed(links)))))


def test_the_next_link_is_read_from_the_end_of_the_chain():
    assert next_link_queue(request_after(Phase.KUBEADM_NODE, Phase.DOWNLOAD_PACKAGES)) == node_queue("worker-1")
    assert next_link_queue(request_after(Phase.WAIT_READY, Phase.UNCORDON)) != node_queue("worker-1")


def test_a_task_keeps_its_connections_only_when_its_chain_goes_on_here_after_a_success():
    own = node_queue("worker-1")
    assert keeps_connections("SUCCESS", request_after(Phase.RESTART_KUBELET, Phase.WAIT_READY), own)
    # the chain leaves for the controller, ends, or was cut (a held phase sets it to None)
    assert not keeps_connections("SUCCESS", request_after(Phase.WAIT_READY, Phase.UNCORDON), own)
    assert not keeps_connections("SUCCESS", SimpleNamespace(chain=[]), own)
    assert not keeps_connections("SUCCESS", SimpleNamespace(chain=None), own)
    assert not keeps_connections("SUCCESS", None, own)
    # another node's queue is not this agent's
    assert not keeps_connections("SUCCESS", request_after(Phase.RESTART_KUBELET, node="worker-2"), own)
    # nothing more runs here after a failure or before a retry's countdown
    for state in ("FAILURE", "RETRY", "REVOKED", None):
        assert not keeps_connections(state, request_after(Phase.RESTART_KUBELET), own)


def test_a_malformed_chain_releases_rather_than_fails():
    own = node_queue("worker-1")
    for chain in (["not a signature"], [{"options": "x"}], [{"options": {"queue": 7}}], [{}]):
        assert next_link_queue(SimpleNamespace(chain=chain)) is None
        assert not keeps_connections("SUCCESS", SimpleNamespace(chain=chain), own)
