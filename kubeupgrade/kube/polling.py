"""How often a cluster phase looks again while it waits for the cluster (a node Ready at its
new kubelet, evicted pods gone): soon at first, since in a quick cluster the answer is often a
moment away, then less and less often up to once a second, which is how often `kubectl drain`
looks for its evicted pods. A fixed 0.2 s made a 5,000-node campaign's 500 drains list pods
2,500 times a second against the API server while pods took their grace period to stop."""

from __future__ import annotations

from collections.abc import Iterator

FIRST_SECONDS = 0.05
MOST_SECONDS = 1.0


def poll_delays(first: float = FIRST_SECONDS, most: float = MOST_SECONDS) -> Iterator[float]:
    """Pauses between looks: `first`, doubling, then `most` for ever."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)
