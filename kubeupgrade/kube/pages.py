"""Lists read from the API server in pages (`limit` / `continue`), as kubectl chunks them.

An unpaged list of a 5,000-node cluster is one ~18 MB answer for its nodes and ~24 MB for its
pods, which the API server builds, holds and sends at once, and the client decodes at once.
Read in pages, a caller can keep only what it needs of each page before the next arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kubeupgrade.kube.client import KubeApi, KubeRefused, KubeUnavailable

# Objects per request: kubectl's default chunk size.
PAGE_SIZE = 500
# A list that expires between two of its pages is read again from its start, this many times
# in all before the expiry is the caller's.
READS = 3

Kept = TypeVar("Kept")


def list_pages(api: KubeApi, what: str, method: Callable[..., Any], page_size: int = PAGE_SIZE,
               **selectors: Any) -> Iterator[list[dict[str, Any]]]:
    """The items of one consistent list, a page at a time (the API server cuts later pages
    from the list as it was at the first). A list that expires between two pages (the server
    compacted past it) is unavailable for now (410): the caller lists again from the start."""
    token = ""
    while True:
        extra: dict[str, Any] = {"_continue": token} if token else {}
        try:
            page = api.call(what, method, limit=page_size, **selectors, **extra)
        except KubeRefused as error:
            if token and error.code == 410:
                raise KubeUnavailable(f"{what}: the list expired between two of its pages "
                                      "(the API server compacted past it); list again", error.status, 410) from None
            raise
        yield page.get("items") or []
        previous, token = token, (page.get("metadata") or {}).get("continue") or ""
        if not token:
            return
        if token == previous:  # a server that would page for ever
            raise KubeUnavailable(f"{what}: the API server answered the same continue token twice; list again")


def read_list(api: KubeApi, what: str, method: Callable[..., Any], keep: Callable[[dict[str, Any]], Kept | None],
              page_size: int = PAGE_SIZE, **selectors: Any) -> list[Kept]:
    """What `keep` keeps of each item of the list (None: nothing), read in pages so that only
    one page of whole objects is held at a time. A list that expired half-read is read again
    from its start (what was kept of it is dropped), READS times in all."""
    def read() -> list[Kept]:
        kept: list[Kept] = []
        for page in list_pages(api, what, method, page_size, **selectors):
            kept += [k for k in map(keep, page) if k is not None]
        return kept

    for _ in range(READS - 1):
        try:
            return read()
        except KubeUnavailable as error:
            if error.code != 410:
                raise
    return read()  # a last expiry is the caller's
