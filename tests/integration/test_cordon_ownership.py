"""Cordon ownership against the sandbox API server, with the real client: a campaign uncordons
only a node it cordoned and that is still cordoned, whoever else touched the node meanwhile."""

from __future__ import annotations

import pytest

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.nodes import (
    CORDONED_BY,
    CordonOwner,
    cordon_node,
    get_node,
    is_cordoned,
    uncordon_node,
)

pytestmark = pytest.mark.integration

CAMPAIGN = "prod-20990101-000000-aaaaaa"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from kubeupgrade.sandbox.manager import Sandbox

    box, _ = Sandbox.up(tmp_path_factory.mktemp("cordon") / "box", control_planes=1, workers=6,
                        version="1.30.4")
    yield KubeApi(str(box.kubeconfig))
    box.down()


def _merge(api: KubeApi, node: str, body: dict) -> None:
    api.call("edit by hand", api.core.patch_node, node, body)


def _owner(api: KubeApi, node: str) -> str | None:
    return (get_node(api, node)["metadata"].get("annotations") or {}).get(CORDONED_BY)


def test_a_node_this_campaign_cordoned_is_uncordoned_and_its_mark_removed(api):
    assert cordon_node(api, "worker-1", CAMPAIGN) is CordonOwner.CORDONED
    assert cordon_node(api, "worker-1", CAMPAIGN) is CordonOwner.OURS
    assert uncordon_node(api, "worker-1", CAMPAIGN) is True
    assert not is_cordoned(get_node(api, "worker-1")) and _owner(api, "worker-1") is None
    assert uncordon_node(api, "worker-1", CAMPAIGN) is False  # again: nothing left to do


@pytest.mark.parametrize("node, meanwhile", [
    ("worker-2", {"metadata": {"annotations": {CORDONED_BY: "prod-20990101-000000-bbbbbb"}}}),
    ("worker-3", {"metadata": {"annotations": {CORDONED_BY: None}}}),
])
def test_a_node_whose_mark_names_another_campaign_or_none_stays_cordoned(api, node, meanwhile):
    cordon_node(api, node, CAMPAIGN)
    _merge(api, node, meanwhile)
    assert uncordon_node(api, node, CAMPAIGN) is False
    assert is_cordoned(get_node(api, node))
    assert _owner(api, node) == meanwhile["metadata"]["annotations"][CORDONED_BY]


def test_a_node_uncordoned_by_hand_is_left_alone_with_its_mark(api):
    cordon_node(api, "worker-4", CAMPAIGN)
    _merge(api, "worker-4", {"spec": {"unschedulable": None}})
    assert uncordon_node(api, "worker-4", CAMPAIGN) is False
    assert not is_cordoned(get_node(api, "worker-4")) and _owner(api, "worker-4") == CAMPAIGN
    # Cordoned again while its mark is still there: the node says this campaign cordoned it.
    _merge(api, "worker-4", {"spec": {"unschedulable": True}})
    assert uncordon_node(api, "worker-4", CAMPAIGN) is True


def test_a_node_cordoned_by_someone_else_is_foreign_and_never_uncordoned(api):
    _merge(api, "worker-5", {"spec": {"unschedulable": True}})
    assert cordon_node(api, "worker-5", CAMPAIGN) is CordonOwner.FOREIGN
    assert uncordon_node(api, "worker-5", CAMPAIGN) is False
    assert is_cordoned(get_node(api, "worker-5")) and _owner(api, "worker-5") is None


def test_a_node_never_cordoned_is_not_touched(api):
    before = get_node(api, "worker-6")["metadata"]["resourceVersion"]
    assert uncordon_node(api, "worker-6", CAMPAIGN) is False
    assert get_node(api, "worker-6")["metadata"]["resourceVersion"] == before
