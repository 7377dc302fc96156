"""Node operations: read, cordon and uncordon, readiness and version."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from kubeupgrade.kube.client import KubeApi, KubeRefused, KubeUnavailable
from kubeupgrade.kube.pages import Kept, read_list


def get_node(api: KubeApi, name: str) -> dict[str, Any]:
    return api.call(f"read node {name}", api.core.read_node, name)


def read_nodes(api: KubeApi, keep: Callable[[dict[str, Any]], Kept | None]) -> list[Kept]:
    """What `keep` keeps of each node (None: nothing), read in pages (pages.read_list)."""
    return read_list(api, "list nodes", api.core.list_node, keep)


def list_nodes(api: KubeApi) -> list[dict[str, Any]]:
    """Every node, whole, read in pages; a list that expired half-read is read again from the start."""
    return read_nodes(api, _whole)


def _whole(node: dict[str, Any]) -> dict[str, Any]:
    return node


def is_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in node.get("status", {}).get("conditions", []))


def kubelet_version(node: dict[str, Any]) -> str:
    return node.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")


def is_cordoned(node: dict[str, Any]) -> bool:
    return bool(node.get("spec", {}).get("unschedulable"))


# Who cordoned a node is kept on the Node itself, set in the same PATCH that cordons it, so
# ownership survives anything that happens to our own record (a lost write during a broker
# restart, a killed controller): a re-run drain recognises its own cordon, and uncordon only
# ever releases a node this campaign cordoned.
CORDONED_BY = "kubeupgrade.io/cordoned-by"


class CordonOwner(Enum):
    CORDONED = "cordoned"  # this call cordoned it
    OURS = "ours"  # already cordoned by this campaign (a re-run)
    ADOPTED = "adopted"  # cordoned by an earlier kubeupgrade campaign: now this one's
    FOREIGN = "foreign"  # cordoned by someone else: never ours to uncordon


def cordoned_by(node: dict[str, Any]) -> str | None:
    """The campaign that cordoned this node, if a kubeupgrade campaign did and it still is."""
    if not is_cordoned(node):
        return None
    return (node.get("metadata", {}).get("annotations") or {}).get(CORDONED_BY)


# Which attempt of a campaign's phases holds the node cordoned ("hop 1, attempt 2"), written with
# the owner: an uncordon sent for an older attempt (a task that froze and was sent again) finds
# another value there, and the API server refuses its write.
CORDON_ATTEMPT = "kubeupgrade.io/cordon-attempt"

# The broker epoch (workflow/broker_loss.py) the cordoning campaign was recorded under. A mark
# whose campaign this broker does not know, made under an epoch that is not this broker's, was
# left by a campaign lost with a broker's data, even when no controller saw it go (a controller
# restarted just as redis-server came back empty keeps no memory to write a notice from).
CORDON_EPOCH = "kubeupgrade.io/cordon-epoch"


def cordon_epoch(node: dict[str, Any]) -> str | None:
    """The broker epoch the campaign that cordoned this node was recorded under, if it said."""
    if cordoned_by(node) is None:
        return None
    return (node.get("metadata", {}).get("annotations") or {}).get(CORDON_EPOCH) or None


# A write that acts on a read of the node: another writer can come in between (an operator's
# cordon, or a task of this campaign sent again while this one was frozen), so the write is a
# JSON patch whose first test is the resourceVersion read. A node changed since is read again,
# and the caller's fence is asked again, a few times at most.
CHANGED_TRIES = 5


def _path(annotation: str) -> str:
    return f"/metadata/annotations/{annotation.replace('~', '~0').replace('/', '~1')}"


def _unchanged(node: dict[str, Any]) -> dict[str, Any]:
    return {"op": "test", "path": "/metadata/resourceVersion", "value": node["metadata"]["resourceVersion"]}


def _no_fence() -> None:
    pass


def _any_owner(owner: str, epoch: str | None) -> bool:
    return True


def cordon_node(api: KubeApi, name: str, campaign: str, *, attempt: str = "", epoch: str = "",
                fence: Callable[[], None] = _no_fence,
                adoptable: Callable[[str, str | None], bool] = _any_owner) -> CordonOwner:
    """Cordon the node on behalf of `campaign` (and its `attempt`, see CORDON_ATTEMPT, recorded
    under broker `epoch`, see CORDON_EPOCH), recording the owner on the node. `fence` is called
    right before a write and raises to stop it (the task no longer owns its phase). A node this
    campaign holds already is OURS, and now held by `attempt`. A node another campaign's mark
    says is cordoned is ADOPTED if `adoptable` (that campaign, the epoch of its mark) says it may
    hand it on, FOREIGN otherwise (the mark may be stale: an uncordon by hand leaves it, and an
    operator's cordon over it then looks like that campaign's)."""
    for _ in range(CHANGED_TRIES):
        node = get_node(api, name)
        owner = cordoned_by(node)
        annotations = node["metadata"].get("annotations")
        if owner == campaign and (not attempt or (annotations or {}).get(CORDON_ATTEMPT) == attempt):
            return CordonOwner.OURS
        if is_cordoned(node) and (owner is None or (owner != campaign and
                                                    not adoptable(owner, cordon_epoch(node)))):
            return CordonOwner.FOREIGN
        fence()
        marks = {CORDONED_BY: campaign, **({CORDON_ATTEMPT: attempt} if attempt else {}),
                 **({CORDON_EPOCH: epoch} if epoch else {})}
        patch = [_unchanged(node)]
        if annotations is None:
            patch.append({"op": "add", "path": "/metadata/annotations", "value": marks})
        else:
            patch += [{"op": "add", "path": _path(key), "value": value} for key, value in marks.items()]
            if not epoch and CORDON_EPOCH in annotations:  # an earlier mark's epoch is not ours
                patch.append({"op": "remove", "path": _path(CORDON_EPOCH)})
        patch.append({"op": "add", "path": "/spec/unschedulable", "value": True} if "spec" in node else
                     {"op": "add", "path": "/spec", "value": {"unschedulable": True}})
        if _patched(api, f"cordon {name}", name, patch):
            if owner == campaign:
                return CordonOwner.OURS
            return CordonOwner.ADOPTED if owner else CordonOwner.CORDONED
    raise KubeUnavailable(f"cordon {name}: the node changed between each read and write, "
                          f"{CHANGED_TRIES} times")


def uncordon_node(api: KubeApi, name: str, campaign: str, *, attempt: str = "", epoch: str = "",
                  fence: Callable[[], None] = _no_fence) -> bool:
    """Uncordon the node if (and only if) `campaign` cordoned it; True if this call did.
    `attempt`, `epoch` (the broker's now) and `fence` as for cordon_node. Every mark goes.

    Each write is one JSON patch whose tests say the node is as last seen: cordoned, the owner
    `campaign`, and held by `attempt` under `epoch` (no read needed) or unchanged since it was
    read. The API server applies all of it or none (422 when a test fails), so no one's cordon
    can slip in between, nor can an older attempt's uncordon undo a newer attempt's cordon."""
    owner, held_by, under = _path(CORDONED_BY), _path(CORDON_ATTEMPT), _path(CORDON_EPOCH)
    if attempt:
        fence()
        # Without an epoch (none set yet), a mark of one is left: it means nothing once the
        # owner's mark is gone (cordon_epoch), and the next cordon sets or removes it.
        epoch_marks = ([{"op": "test", "path": under, "value": epoch}, {"op": "remove", "path": under}]
                       if epoch else [])
        patch: list[dict[str, Any]] = [{"op": "test", "path": "/spec/unschedulable", "value": True},
                                       {"op": "test", "path": owner, "value": campaign},
                                       {"op": "test", "path": held_by, "value": attempt},
                                       *epoch_marks,
                                       {"op": "remove", "path": owner},
                                       {"op": "remove", "path": held_by},
                                       {"op": "remove", "path": "/spec/unschedulable"}]
        if _patched(api, f"uncordon {name}", name, patch):
            return True
    # Not held as `attempt` said (another attempt's cordon, an older kubeupgrade's, or none):
    # read what the node says, and ask the fence again.
    for _ in range(CHANGED_TRIES):
        node = get_node(api, name)
        if cordoned_by(node) != campaign:
            return False
        fence()
        patch = [_unchanged(node), {"op": "remove", "path": owner}]
        if CORDON_ATTEMPT in node["metadata"]["annotations"]:
            patch.append({"op": "remove", "path": held_by})
        if CORDON_EPOCH in node["metadata"]["annotations"]:
            patch.append({"op": "remove", "path": under})
        patch.append({"op": "remove", "path": "/spec/unschedulable"})
        if _patched(api, f"uncordon {name}", name, patch):
            return True
    raise KubeUnavailable(f"uncordon {name}: the node changed between each read and write, "
                          f"{CHANGED_TRIES} times")


def _patched(api: KubeApi, what: str, name: str, patch: list[dict[str, Any]]) -> bool:
    """Apply a JSON patch to the node; False if one of its tests failed (the node changed)."""
    try:
        api.call(what, api.core.patch_node, name, patch)
    except KubeRefused as refused:
        if refused.code != 422:
            raise
        return False
    return True


def nodes_cordoned_by(api: KubeApi, campaign: str) -> list[str]:
    def ours(node: dict[str, Any]) -> str | None:
        return node["metadata"]["name"] if cordoned_by(node) == campaign else None

    return sorted(read_nodes(api, ours))
