"""Merge the cluster's live state (discovered nodes and versions) into a campaign. Pure."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.campaign import Campaign, NodeSpec
from kubeupgrade.model.versions import KubeVersion


def with_live_state(campaign: Campaign, live_nodes: list[NodeSpec], version: KubeVersion,
                    taken_over: Collection[str] = frozenset()) -> Campaign:
    """The campaign's nodes (or every live node) with the versions the cluster reports now.
    `taken_over`: the campaigns whose cordons this one takes over (lost with the broker's data,
    workflow/broker_loss.py); a node cordoned by any other keeps no owner here."""
    live_nodes = [node if node.left_cordoned_by in taken_over else replace(node, left_cordoned_by=None)
                  for node in live_nodes]
    live = {node.name: node for node in live_nodes}
    if campaign.nodes is None:
        nodes = tuple(live_nodes)
    else:
        missing = [node.name for node in campaign.nodes if node.name not in live]
        if missing:
            raise InvalidInput(f"{campaign.source}: nodes not in the cluster: {', '.join(missing)}")
        # Labels as the cluster has them (pools select on them), unless the file set its own.
        nodes = tuple(replace(node, kubelet=live[node.name].kubelet,
                              control_plane=live[node.name].control_plane,
                              os=node.os or live[node.name].os,
                              labels=node.labels or live[node.name].labels,
                              machine_id=live[node.name].machine_id,
                              left_cordoned_by=live[node.name].left_cordoned_by) for node in campaign.nodes)
    return replace(campaign, nodes=nodes, control_plane_version=version)
