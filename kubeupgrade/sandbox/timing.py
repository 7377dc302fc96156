"""How long each simulated step takes: realistic base durations, scaled down for tests.

`time_scale` multiplies every duration (0.01 turns a 90 s `kubeadm upgrade apply` into 0.9 s);
`jitter` > 0 draws each duration from a log-normal around its base, seeded per node and step,
for benchmarks that need varied phase durations.
"""

from __future__ import annotations

# Seconds on a real host (orders of magnitude from operators' reports; ratios matter most).
BASE_SECONDS = {
    "apt-get update": 3.0,
    "dnf makecache": 3.0,
    "package download": 6.0,
    "package install": 4.0,
    "kubeadm upgrade plan": 8.0,
    "kubeadm upgrade apply": 90.0,
    "kubeadm upgrade node": 25.0,
    "static pod restart": 6.0,
    "systemctl restart kubelet": 1.5,
    "kubelet ready": 12.0,
    "node monitor grace": 40.0,  # kube-controller-manager's --node-monitor-grace-period
    "pod start": 4.0,
    "etcd snapshot": 5.0,
    "etcdctl timeout": 5.0,  # --command-timeout's default, when no member answers
    "pod reschedule": 2.0,
    "command": 0.2,
}


class Timing:
    # A plain class: every simulated command builds one, and importing `dataclasses` cost more
    # than the command's own work (see hostbin).
    __slots__ = ("time_scale", "jitter", "seed", "overrides")

    def __init__(self, time_scale: float = 0.01, jitter: float = 0.0, seed: int = 0,
                 overrides: dict[str, float] | None = None) -> None:
        self.time_scale = time_scale
        self.jitter = jitter
        self.seed = seed
        self.overrides = dict(overrides or {})

    def seconds(self, step: str, *, key: str = "") -> float:
        base = self.overrides.get(step, BASE_SECONDS.get(step, BASE_SECONDS["command"]))
        value = base * self.time_scale
        if self.jitter > 0:
            import hashlib  # only with jitter: every simulated command imports this module
            import math
            import random

            digest = hashlib.sha256(f"{self.seed}/{key}/{step}".encode()).digest()
            rng = random.Random(int.from_bytes(digest[:8], "big"))
            value *= math.exp(rng.gauss(0.0, self.jitter))
        return value

    @classmethod
    def from_config(cls, config: dict) -> Timing:
        timing = config.get("timing", {})
        return cls(
            time_scale=float(timing.get("time_scale", 0.01)),
            jitter=float(timing.get("jitter", 0.0)),
            seed=int(config.get("seed", 0)),
            overrides={k: float(v) for k, v in timing.get("overrides", {}).items()},
        )

    def to_config(self) -> dict:
        return {"time_scale": self.time_scale, "jitter": self.jitter, "overrides": self.overrides}
