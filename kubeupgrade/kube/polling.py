"""How often a cluster phase looks again while it waits for the cluster (a node Ready at its
new kubelet, evicted pods gone, a budget letting an eviction through): soon at first, since in
a quick cluster the answer is often a moment away, then less and less often up to once a
second, which is how often `kubectl drain` looks for its evicted pods. A fixed 0.2 s made a
5,000-node campaign's 500 drains list pods 2,500 times a second against the API server while
pods took their grace period to stop."""

from __future__ import annotations

FIRST_SECONDS = 0.05
MOST_SECONDS = 1.0


def look_delay(looks: int, first: float = FIRST_SECONDS, most: float = MOST_SECONDS) -> float:
    """The pause before the next look, after `looks` looks: `first`, doubling, then `most` for
    ever. By count, not a generator: a phase gives its process back between looks and keeps
    only the count (kubeupgrade.workflow.waiting)."""
    return min(first * 2 ** min(max(looks, 0), 32), most)
