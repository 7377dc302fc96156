"""Paged lists in the sandbox API server: pure logic of the pager (no server, no I/O)."""

from __future__ import annotations

import base64
import json
import random

import pytest

from kubeupgrade.sandbox import paging
from kubeupgrade.sandbox.store import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def objects(names: list[str], namespace: str | None = None) -> list[dict]:
    made = [{"metadata": {"name": n, **({"namespace": namespace} if namespace else {})}, "spec": {"n": i}}
            for i, n in enumerate(names)]
    return sorted(made, key=paging.sort_key)


def read_all(pager: paging.Pager, items: list[dict], limit: int, between=lambda: None) -> list[list[dict]]:
    page = pager.first("nodes", items, "7", limit)
    pages = [page.items]
    while page.continue_token:
        between()
        page = pager.next("nodes", page.continue_token, limit)
        pages.append(page.items)
    return pages


@pytest.mark.parametrize("seed", range(30))
def test_the_pages_are_the_whole_list_in_order_each_at_most_the_limit(seed):
    rng = random.Random(seed)
    items = objects([f"node-{rng.randrange(10**6):06d}-{i}" for i in range(rng.randrange(0, 60))])
    limit = rng.randrange(1, 20)
    pages = read_all(paging.Pager(Clock()), items, limit)
    assert [o for p in pages for o in p] == items
    assert all(0 < len(p) <= limit for p in pages) or items == []
    assert len(pages) == max(1, -(-len(items) // limit))


def test_no_limit_or_a_short_list_is_one_page_without_a_token():
    pager = paging.Pager(Clock())
    items = objects(["a", "b", "c"])
    for limit in (0, 3, 500):
        page = pager.first("nodes", items, "7", limit)
        assert page.items == items and page.continue_token is None and page.list_metadata() == {}
    assert pager.snapshots == {}


def test_later_pages_show_the_list_as_it_was_at_the_first_page():
    items = objects([f"n{i:02d}" for i in range(10)])

    def change_everything():  # the sandbox's controllers change stored objects in place
        for obj in items:
            obj["spec"]["n"] = -1
        items.append({"metadata": {"name": "n99"}, "spec": {"n": 99}})

    pages = read_all(paging.Pager(Clock()), items, 4, between=change_everything)
    seen = [o for p in pages for o in p]
    assert [o["metadata"]["name"] for o in seen] == [f"n{i:02d}" for i in range(10)]
    assert [o["spec"]["n"] for o in seen[4:]] == list(range(4, 10))


def test_a_change_deep_inside_an_object_does_not_reach_its_later_page():
    items = objects(["a", "b"])
    for obj in items:
        obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}], "images": [["x", 1]]}

    def change_deep():  # a node going NotReady, as the sandbox's controllers write it
        items[1]["status"]["conditions"][0]["status"] = "False"
        items[1]["status"]["images"][0].append(2)

    pages = read_all(paging.Pager(Clock()), items, 1, between=change_deep)
    assert pages[1][0]["status"] == {"conditions": [{"type": "Ready", "status": "True"}], "images": [["x", 1]]}


def test_remaining_item_count_is_told_only_for_lists_without_selectors():
    items = objects([f"n{i}" for i in range(10)])
    pager = paging.Pager(Clock())
    counted = pager.first("a", items, "7", 3)
    assert counted.list_metadata()["remainingItemCount"] == 7
    assert pager.next("a", counted.continue_token, 3).list_metadata()["remainingItemCount"] == 4
    selected = pager.first("b", items, "7", 3, counted=False)
    assert "remainingItemCount" not in selected.list_metadata()
    assert set(selected.list_metadata()) == {"continue"}


def test_the_token_has_the_real_servers_shape():
    page = paging.Pager(Clock()).first("nodes", objects(["a", "b"]), "42", 1)
    raw = json.loads(base64.urlsafe_b64decode(page.continue_token))
    assert raw == {"v": "meta.k8s.io/v1", "rv": 42, "start": "a\x00"}


def test_a_token_past_the_retention_window_is_410_expired():
    clock = Clock()
    pager = paging.Pager(clock)
    page = pager.first("nodes", objects(["a", "b", "c"]), "7", 1)
    clock.now += paging.RETENTION_SECONDS + 1
    with pytest.raises(ApiError) as raised:
        pager.next("nodes", page.continue_token, 1)
    assert (raised.value.code, raised.value.reason) == (410, "Expired")


def test_a_token_for_another_list_or_another_version_is_not_served():
    pager = paging.Pager(Clock())
    page = pager.first("nodes", objects(["a", "b", "c"]), "7", 1)
    with pytest.raises(ApiError) as raised:
        pager.next("pods", page.continue_token, 1)
    assert raised.value.code == 410
    forged = base64.urlsafe_b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": 8, "start": "a\x00"}).encode())
    with pytest.raises(ApiError) as raised:
        pager.next("nodes", forged.decode(), 1)
    assert raised.value.code == 410


@pytest.mark.parametrize("token", ["", "%%%", "bm90IGpzb24", base64.b64encode(b'{"v":"x","rv":1,"start":"a"}').decode(),
                                   base64.b64encode(b'{"v":"meta.k8s.io/v1","rv":"x","start":"a"}').decode(),
                                   base64.b64encode(b'[1,2]').decode(),
                                   base64.b64encode(b'{"v":"meta.k8s.io/v1","start":"a"}').decode()])
def test_a_malformed_token_is_a_400(token):
    with pytest.raises(ApiError) as raised:
        paging.Pager(Clock()).next("nodes", token, 1)
    assert raised.value.code == 400


def test_a_bad_limit_is_a_400_and_a_negative_one_means_none():
    assert paging.parse_limit(None) == 0 and paging.parse_limit("-3") == 0 and paging.parse_limit("5") == 5
    with pytest.raises(ApiError) as raised:
        paging.parse_limit("five")
    assert raised.value.code == 400


def test_storage_key_order_is_etcds_namespace_slash_name():
    names = ["a", "a-b", "a.b"]
    items = [obj for ns in ("kube-system", "kube", "default") for obj in objects(names, ns)]
    items.sort(key=paging.sort_key)
    keys = [paging.sort_key(o) for o in items]
    assert keys == sorted(keys) and keys[0] == "default/a"


def test_the_oldest_half_read_list_is_forgotten_first_when_too_many_are_kept():
    clock = Clock()
    pager = paging.Pager(clock)
    tokens = []
    for i in range(paging.MOST_SNAPSHOTS + 1):
        clock.now += 1
        tokens.append(pager.first(f"list-{i}", objects(["a", "b"]), "7", 1).continue_token)
    with pytest.raises(ApiError):
        pager.next("list-0", tokens[0], 1)
    assert pager.next(f"list-{paging.MOST_SNAPSHOTS}", tokens[-1], 1).items[0]["metadata"]["name"] == "b"
