"""Task and queue names: the wire contract between the orchestrator and the agents.

Names are explicit and stable (never derived from module paths), so moving code never changes
what is on the wire.
"""

from __future__ import annotations

import re

from kubeupgrade.model.phases import PHASES
from kubeupgrade.model.plan import Phase

CONTROLLER_QUEUE = "kubeupgrade.controller"
NODE_QUEUE_PREFIX = "kubeupgrade.node."

RELEASE_NODE = "kubeupgrade.controller.release_node"
RESTORE_REPOSITORY = "kubeupgrade.node.restore_repository"

PHASE_TASKS = {spec.phase: spec.task for spec in PHASES}  # declared in kubeupgrade.model.phases

CLUSTER_ENTRY = "@cluster"  # the record entry holding a hop's cluster-level phases

_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_CAMPAIGN_ID = re.compile(r"^[a-z0-9-]{1,80}$")


def node_queue(node: str) -> str:
    return NODE_QUEUE_PREFIX + node


def agent_hostname(node: str) -> str:
    return f"agent@{node}"


def queue_for(phase: Phase, node: str) -> str:
    return node_queue(node) if phase.runs_on_host else CONTROLLER_QUEUE


def valid_node_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= 253 and bool(_NODE_NAME.match(name))


def valid_entry_name(name: object) -> bool:
    """A hop entry's name: a node's, or the entry of the hop's cluster phases."""
    return name == CLUSTER_ENTRY or valid_node_name(name)


def valid_hop(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 100


def valid_campaign_id(value: object) -> bool:
    return isinstance(value, str) and bool(_CAMPAIGN_ID.match(value))
