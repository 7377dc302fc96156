"""Cordon ownership against the sandbox API server, with the real client: a campaign uncordons
only a node it cordoned and that is still cordoned, whoever else touched the node meanwhile."""

from __future__ import annotations

import pytest

from kubeupgrade.kube.client import KubeApi, KubeUnavailable
from kubeupgrade.kube.nodes import (
    CHANGED_TRIES,
    CORDON_ATTEMPT,
    CORDON_EPOCH,
    CORDONED_BY,
    CordonOwner,
    cordon_node,
    get_node,
    is_cordoned,
    uncordon_node,
)
from tests.helpers import sandbox_up

pytestmark = pytest.mark.integration

CAMPAIGN = "prod-20990101-000000-aaaaaa"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with sandbox_up(tmp_path_factory.mktemp("cordon") / "box", control_planes=1, workers=12,
                    version="1.30.4") as box:
        yield KubeApi(str(box.kubeconfig))


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


class Refused(Exception):
    pass


def test_a_fence_that_refuses_stops_the_write(api):
    """The task no longer owns its phase: neither cordon nor uncordon writes anything."""
    def refuse():
        raise Refused

    before = get_node(api, "worker-7")["metadata"]["resourceVersion"]
    with pytest.raises(Refused):
        cordon_node(api, "worker-7", CAMPAIGN, fence=refuse)
    assert get_node(api, "worker-7")["metadata"]["resourceVersion"] == before
    cordon_node(api, "worker-7", CAMPAIGN)
    with pytest.raises(Refused):
        uncordon_node(api, "worker-7", CAMPAIGN, fence=refuse)
    assert is_cordoned(get_node(api, "worker-7")) and _owner(api, "worker-7") == CAMPAIGN


def test_an_operators_cordon_between_the_read_and_the_write_is_not_taken_over(api):
    # The fence runs between cordon_node's read and its write: the operator cordons there.
    def operator_cordons():
        if not is_cordoned(get_node(api, "worker-8")):
            _merge(api, "worker-8", {"spec": {"unschedulable": True}})

    assert cordon_node(api, "worker-8", CAMPAIGN, fence=operator_cordons) is CordonOwner.FOREIGN
    assert _owner(api, "worker-8") is None  # never marked ours, so never uncordoned by us
    assert uncordon_node(api, "worker-8", CAMPAIGN) is False
    assert is_cordoned(get_node(api, "worker-8"))


def test_a_node_changed_between_the_read_and_the_uncordon_is_read_and_fenced_again(api):
    cordon_node(api, "worker-9", CAMPAIGN)
    asked = []

    def changed_then_superseded():
        asked.append(True)
        if len(asked) == 1:  # another writer touches the node (a kubelet, another attempt)
            _merge(api, "worker-9", {"metadata": {"labels": {"touched": str(len(asked))}}})
            return
        raise Refused  # read again: by now this task no longer owns its phase

    with pytest.raises(Refused):
        uncordon_node(api, "worker-9", CAMPAIGN, fence=changed_then_superseded)
    assert len(asked) == 2
    assert is_cordoned(get_node(api, "worker-9")) and _owner(api, "worker-9") == CAMPAIGN
    # A node that changes between every read and write: given up after a few tries, unchanged.
    touches = []

    def always_touched():
        touches.append(True)
        _merge(api, "worker-9", {"metadata": {"labels": {"touched": str(len(touches))}}})

    with pytest.raises(KubeUnavailable, match="changed between each read and write"):
        uncordon_node(api, "worker-9", CAMPAIGN, fence=always_touched)
    assert len(touches) == CHANGED_TRIES and is_cordoned(get_node(api, "worker-9"))


def test_an_older_attempts_uncordon_is_refused_by_the_node_a_newer_attempt_holds(api):
    # Attempt 1's uncordon asked its fence, then froze; attempt 2 drained the node again.
    assert cordon_node(api, "worker-10", CAMPAIGN, attempt="hop 1, attempt 1") is CordonOwner.CORDONED
    assert cordon_node(api, "worker-10", CAMPAIGN, attempt="hop 1, attempt 2") is CordonOwner.OURS
    held = get_node(api, "worker-10")["metadata"]["annotations"]
    assert held[CORDON_ATTEMPT] == "hop 1, attempt 2" and held[CORDONED_BY] == CAMPAIGN
    asked = []

    def checked_before_the_freeze_only():
        asked.append(True)
        if len(asked) > 1:
            raise Refused  # asked again after the refused write: attempt 1 no longer owns it

    with pytest.raises(Refused):
        uncordon_node(api, "worker-10", CAMPAIGN, attempt="hop 1, attempt 1",
                      fence=checked_before_the_freeze_only)
    assert is_cordoned(get_node(api, "worker-10")) and _owner(api, "worker-10") == CAMPAIGN
    # Attempt 2's own uncordon releases it, and neither mark is left.
    assert uncordon_node(api, "worker-10", CAMPAIGN, attempt="hop 1, attempt 2") is True
    annotations = get_node(api, "worker-10")["metadata"]["annotations"]
    assert CORDONED_BY not in annotations and CORDON_ATTEMPT not in annotations


def test_a_drain_look_asks_the_fence_before_each_eviction(api):
    from kubeupgrade.kube.drain import DrainReport, drain_look
    from kubeupgrade.model.campaign import DrainPolicy

    def on_node():
        return {p["metadata"]["name"] for p in api.call("pods", api.core.list_pod_for_all_namespaces,
                                                         field_selector="spec.nodeName=worker-11")["items"]}

    cordon_node(api, "worker-11", CAMPAIGN)
    before = on_node()
    assert len(before) >= 2, "the sandbox puts several pods on a worker"
    asked = []

    def one_then_superseded():
        asked.append(True)
        if len(asked) > 1:  # the task froze after its first eviction and was sent again
            raise Refused

    report = DrainReport()
    with pytest.raises(Refused):
        drain_look(api, "worker-11", DrainPolicy(delete_emptydir_data=True), report, started=0.0,
                   now=0.0, fence=one_then_superseded)
    assert len(report.evicted) == 1 and len(asked) == 2
    assert len(before - on_node()) <= 1  # the pods after the refusal are still there


def test_another_campaigns_mark_is_adopted_only_where_that_campaign_may_hand_it_on(api):
    # The mark of a campaign this broker does not know may be stale: an uncordon by hand leaves
    # it, and an operator's cordon over it then looks like that campaign's. Such a node is
    # FOREIGN: nothing written, never uncordoned by this campaign.
    other = "prod-20990101-000000-cccccc"
    # With the taint the cluster adds to a cordoned node, so that nothing but this test's
    # calls changes the node from here on.
    _merge(api, "worker-10", {"spec": {"unschedulable": True, "taints": [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
        "metadata": {"annotations": {CORDONED_BY: other}}})
    before = get_node(api, "worker-10")["metadata"]["resourceVersion"]
    assert cordon_node(api, "worker-10", CAMPAIGN, adoptable=lambda owner, epoch: False) is CordonOwner.FOREIGN
    assert get_node(api, "worker-10")["metadata"]["resourceVersion"] == before
    assert uncordon_node(api, "worker-10", CAMPAIGN) is False and _owner(api, "worker-10") == other
    asked = []
    assert cordon_node(api, "worker-10", CAMPAIGN, adoptable=lambda owner, epoch: asked.append(owner) or True) \
        is CordonOwner.ADOPTED
    # Asked again only if the node changed between a read and the write (its kubelet's status).
    assert asked and set(asked) == {other} and _owner(api, "worker-10") == CAMPAIGN
    assert uncordon_node(api, "worker-10", CAMPAIGN) is True


@pytest.mark.parametrize("epoch_at_uncordon", ["broker-a@1", "broker-b@2", ""])
def test_a_cordon_carries_its_brokers_epoch_and_the_uncordon_takes_every_mark_away(api, epoch_at_uncordon):
    """The mark says which broker's data the campaign was recorded in. The uncordon takes it
    away with the others: by the patch that needs no read while the broker is the same, by the
    read path once the broker's epoch is another (its data went meanwhile) or unknown."""
    assert cordon_node(api, "worker-12", CAMPAIGN, attempt="hop 1, attempt 1", epoch="broker-a@1") \
        is CordonOwner.CORDONED
    marks = get_node(api, "worker-12")["metadata"]["annotations"]
    assert (marks[CORDONED_BY], marks[CORDON_ATTEMPT], marks[CORDON_EPOCH]) == (
        CAMPAIGN, "hop 1, attempt 1", "broker-a@1")
    assert uncordon_node(api, "worker-12", CAMPAIGN, attempt="hop 1, attempt 1", epoch=epoch_at_uncordon)
    node = get_node(api, "worker-12")
    left = {k for k in node["metadata"].get("annotations") or {} if k.startswith("kubeupgrade.io/")}
    assert not is_cordoned(node)
    # Without an epoch to test, the no-read patch leaves the epoch's mark, which means nothing
    # without the owner's, and the next cordon replaces or removes it.
    assert left == ({CORDON_EPOCH} if not epoch_at_uncordon else set())
    other = "prod-20990101-000000-dddddd"
    _merge(api, "worker-12", {"spec": {"unschedulable": True}, "metadata": {"annotations": {
        CORDONED_BY: other, CORDON_EPOCH: "broker-old@0"}}})
    told = []
    assert cordon_node(api, "worker-12", CAMPAIGN, adoptable=lambda owner, epoch: told.append((owner, epoch)) or True) \
        is CordonOwner.ADOPTED
    assert told and set(told) == {(other, "broker-old@0")}  # once per read (see above)
    marks = get_node(api, "worker-12")["metadata"]["annotations"]
    assert marks[CORDONED_BY] == CAMPAIGN and CORDON_EPOCH not in marks  # not the earlier campaign's epoch
    assert uncordon_node(api, "worker-12", CAMPAIGN)
