"""The kubeconfig loader's token hook runs at most once a period, not before every request."""

from __future__ import annotations

from kubeupgrade.kube.client import _at_most_every


def test_the_hook_runs_first_then_at_most_once_a_period() -> None:
    calls: list[object] = []
    hook = _at_most_every(3600.0, calls.append)
    for configuration in ("first", "second", "third"):
        hook(configuration)
    assert calls == ["first"]
    every_time = _at_most_every(0.0, calls.append)
    every_time("a")
    every_time("b")
    assert calls == ["first", "a", "b"]
