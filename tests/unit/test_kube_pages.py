"""The client's side of paged lists (kube/pages.py) against a stub server answering in turn:
each continue token followed, a server repeating its token stopped, and a list that expires
half-read read again from its start, without what was kept of the expired read."""

from __future__ import annotations

import pytest

from kubeupgrade.kube.client import KubeRefused, KubeUnavailable
from kubeupgrade.kube.pages import READS, list_pages, read_list


def expired() -> KubeRefused:
    return KubeRefused("list: 410 Expired", {"reason": "Expired"}, 410)


class PagingServer:
    """Answers `list_node` with the answers given, in turn: a page, or an error it raises."""

    def __init__(self, answers: list) -> None:
        self.answers = answers
        self.asked: list[dict] = []
        self.core = self

    def list_node(self, **kwargs):
        self.asked.append(kwargs)
        answer = self.answers[len(self.asked) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def call(self, what, method, *args, **kwargs):
        return method(*args, **kwargs)


def page(items: list, token: str = "") -> dict:
    return {"items": items, "metadata": {"continue": token} if token else {}}


def test_the_client_follows_each_token_and_stops_at_the_last_page():
    server = PagingServer([page([1, 2], "t1"), page([], "t2"),  # a selector may leave a page empty
                           page([3])])
    assert list(list_pages(server, "list nodes", server.list_node, page_size=2)) == [[1, 2], [], [3]]
    assert [a.get("_continue") for a in server.asked] == [None, "t1", "t2"]
    assert {a["limit"] for a in server.asked} == {2}


def test_a_server_that_repeats_its_token_does_not_keep_the_client_for_ever():
    server = PagingServer([page([1], "same")] * 5)
    with pytest.raises(KubeUnavailable, match="same continue token"):
        list(list_pages(server, "list nodes", server.list_node))
    assert len(server.asked) == 2


def test_selectors_go_with_every_page():
    server = PagingServer([page([1], "t1"), page([2])])
    assert read_list(server, "list", server.list_node, lambda item: item, 1, label_selector="app=web") == [1, 2]
    assert [a["label_selector"] for a in server.asked] == ["app=web", "app=web"]


def test_a_list_that_expires_half_read_is_read_again_from_its_start_keeping_nothing_of_the_first():
    server = PagingServer([page([1, 2], "t1"), expired(),  # compacted past between the pages
                           page([10, 20], "u1"), page([30])])
    kept = read_list(server, "list nodes", server.list_node, lambda n: n * 2 if n != 20 else None, 2)
    assert kept == [20, 60]  # 20 dropped by `keep`; 2 and 4 of the expired read dropped
    assert [a.get("_continue") for a in server.asked] == [None, "t1", None, "u1"]


def test_an_expiry_on_every_read_is_the_callers_after_the_last():
    server = PagingServer([page([1], "t"), expired()] * READS + [page([1])])
    with pytest.raises(KubeUnavailable, match="expired between two of its pages") as raised:
        read_list(server, "list nodes", server.list_node, lambda n: n)
    assert raised.value.code == 410 and len(server.asked) == 2 * READS


@pytest.mark.parametrize("error", [KubeRefused("list: 403 Forbidden", {}, 403),
                                   KubeUnavailable("list: 503", {}, 503)])
def test_other_failures_are_not_read_again(error):
    server = PagingServer([page([1], "t"), error, page([1])])
    with pytest.raises(type(error)):
        read_list(server, "list nodes", server.list_node, lambda n: n)
    assert len(server.asked) == 2


def test_a_first_page_refused_as_expired_is_not_taken_for_a_half_read_list():
    # With no token there is no half-read list: a 410 there is the server's own answer.
    server = PagingServer([expired()])
    with pytest.raises(KubeRefused):
        read_list(server, "list nodes", server.list_node, lambda n: n)
    assert len(server.asked) == 1
