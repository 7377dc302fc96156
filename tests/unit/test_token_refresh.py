"""The kubeconfig loader's token hook runs at most once a period, not before every request,
and keeps running once a period for as long as the client lives (the loader's own hook
installs itself again each time it runs, which must not undo the throttle)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.config.kube_config import KubeConfigLoader

from kubeupgrade.kube import client as kube_client

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: "secret-token"}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


def _loader_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, period: float, requests: int) -> int:
    """How many times the loader set the configuration again over `requests` requests."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    monkeypatch.setattr(kube_client, "TOKEN_CHECK_SECONDS", period)
    api = kube_client.KubeApi(str(path))
    runs = [0]
    real = KubeConfigLoader._set_config

    def counted(self: KubeConfigLoader, configuration: object) -> None:
        runs[0] += 1
        real(self, configuration)

    monkeypatch.setattr(KubeConfigLoader, "_set_config", counted)
    configuration = api._client.configuration
    for _ in range(requests):
        # What the generated client asks before each request.
        assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer secret-token"
    api.close()
    return runs[0]


def test_a_long_period_runs_the_loader_once_over_many_requests(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    assert _loader_runs(monkeypatch, tmp_path, 3600.0, 50) == 1


def test_a_period_of_zero_runs_the_loader_before_every_request(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    # The throttle never loses the loader's hook: an expiring token is still renewed each time.
    assert _loader_runs(monkeypatch, tmp_path, 0.0, 5) == 5
