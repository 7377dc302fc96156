"""Putting the package repository back after a hop failed or was aborted.

A hop points every node's Kubernetes repository at the target minor before anything else
(prepare-host). When the hop stops, a node that installed nothing from that repository is
better off on the repository it had: its packages match it, and a later `apt-get upgrade` or
`dnf update` will not pull half an upgrade. A node that did install from it keeps it unless the
operator asks (`abort --restore-repositories`). Decisions here are pure; the agent's
`restore_repository` task does the work, on the node, under the host lock.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from kubeupgrade.model.phases import names_where
from kubeupgrade.workflow.names import CLUSTER_ENTRY, RESTORE_REPOSITORY, node_queue

_SETS_REPOSITORY = names_where(sets_repository=True)
_INSTALLS = names_where(installs_packages=True)
RESTORE_EXPIRES = 3600  # a restore not run within the hour is dropped: the cluster moved on


def _attempted(entry: dict[str, Any], phases: frozenset[str]) -> bool:
    return any(p["phase"] in phases and (p.get("attempts", 0) > 0 or p["state"] != "pending")
               for p in entry["phases"])


def installed_from_new_repository(entry: dict[str, Any]) -> bool:
    """Whether the node may have installed packages in this hop (an install phase began)."""
    return _attempted(entry, _INSTALLS)


def nodes_to_restore(entries: dict[str, dict[str, Any]], *, force: bool) -> list[str]:
    """The nodes of a stopped hop whose repository to put back: every node whose repository the
    hop changed, except (unless forced) those that installed from the new one."""
    return sorted(name for name, entry in entries.items()
                  if name != CLUSTER_ENTRY and _attempted(entry, _SETS_REPOSITORY)
                  and (force or not installed_from_new_repository(entry)))


RESTORE_SILENT = "not yet: its agent has not answered (it restores when it is back, within the hour)"


def send_restores(app: Celery, campaign_id: str, hop: int, nodes: list[str], *,
                  force: bool = False) -> dict[str, Any]:
    """One restore task per node, on the node's own queue; returns node -> AsyncResult."""
    # Keyword arguments only: Flower shows campaign and node by name, as for every phase task.
    return {node: app.signature(RESTORE_REPOSITORY, kwargs={"campaign": campaign_id, "hop": hop,
                                                            "node": node, "force": force},
                                immutable=True).apply_async(
                                    queue=node_queue(node), expires=RESTORE_EXPIRES)
            for node in nodes}
