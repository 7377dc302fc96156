"""Lists read in pages (`limit` / `continue`) from the sandbox API server through the official
client: the pages add up to the one-request list, every page within the limit, consistent
across changes made between pages, and a token the server never issued refused."""

from __future__ import annotations

import base64
import json

import pytest

from kubeupgrade.kube.client import KubeApi, KubeRefused
from kubeupgrade.kube.nodes import list_nodes
from kubeupgrade.kube.pages import list_pages
from tests.helpers import sandbox_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with sandbox_up(tmp_path_factory.mktemp("pages") / "box", control_planes=3, workers=8,
                    version="1.30.4") as box:
        yield KubeApi(str(box.kubeconfig))


def names(nodes: list[dict]) -> list[str]:
    return [n["metadata"]["name"] for n in nodes]


def test_pages_add_up_to_the_whole_list_each_within_the_limit(api):
    whole = api.call("list nodes", api.core.list_node)
    assert "continue" not in whole["metadata"] and len(whole["items"]) == 11
    for size in (1, 2, 3, 5, 11, 500):
        pages = list(list_pages(api, "list nodes", api.core.list_node, page_size=size))
        assert [len(p) for p in pages[:-1]] == [size] * (len(pages) - 1) and 0 < len(pages[-1]) <= size
        assert names([n for p in pages for n in p]) == names(whole["items"])
    assert names(list_nodes(api)) == names(whole["items"])


def test_a_page_tells_what_remains_and_a_selected_list_does_not(api):
    first = api.call("list nodes", api.core.list_node, limit=4)
    assert first["metadata"]["remainingItemCount"] == 7 and first["metadata"]["continue"]
    workers = api.call("list workers", api.core.list_node, limit=4,
                       label_selector="!node-role.kubernetes.io/control-plane")
    assert len(workers["items"]) == 4 and "remainingItemCount" not in workers["metadata"]
    rest = api.call("list workers", api.core.list_node, limit=4, _continue=workers["metadata"]["continue"],
                    label_selector="!node-role.kubernetes.io/control-plane")
    assert names(workers["items"] + rest["items"]) == [f"worker-{i}" for i in range(1, 9)]


def test_the_later_pages_are_the_list_as_it_was_when_the_first_was_read(api):
    first = api.call("list nodes", api.core.list_node, limit=3)
    api.call("label worker-8", api.core.patch_node, "worker-8", {"metadata": {"labels": {"paged": "yes"}}})
    try:
        rest = api.call("list nodes", api.core.list_node, limit=100, _continue=first["metadata"]["continue"])
        assert rest["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
        assert "paged" not in rest["items"][-1]["metadata"]["labels"]
        now = api.call("read worker-8", api.core.read_node, "worker-8")
        assert now["metadata"]["labels"]["paged"] == "yes"
    finally:
        api.call("unlabel worker-8", api.core.patch_node, "worker-8", {"metadata": {"labels": {"paged": None}}})


def test_a_token_the_server_never_issued_is_refused(api):
    # Well formed and at a resourceVersion the server did reach, but for a list (this selector)
    # no one has paged: the server holds no such list, so it cannot go on with it.
    now = api.call("list nodes", api.core.list_node)["metadata"]["resourceVersion"]
    forged = base64.urlsafe_b64encode(json.dumps(
        {"v": "meta.k8s.io/v1", "rv": int(now), "start": "worker-1\x00"}).encode()).decode()
    with pytest.raises(KubeRefused) as refused:
        api.call("list nodes", api.core.list_node, limit=2, _continue=forged, label_selector="forged=yes")
    assert refused.value.code == 410 and "too old" in str(refused.value)
    with pytest.raises(KubeRefused) as refused:
        api.call("list nodes", api.core.list_node, limit=2, _continue="not-a-token")
    assert refused.value.code == 400
