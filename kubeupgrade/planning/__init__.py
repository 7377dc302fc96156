"""Pure planning: skew policy, upgrade hops, node ordering, worker scheduling. No I/O."""
