"""Cluster phases ride out an API-server outage for the campaign's tolerance, and no longer."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from kubeupgrade.kube.client import KubeApi, KubeUnavailable
from kubeupgrade.kube.nodes import list_nodes

pytestmark = pytest.mark.integration


def test_a_call_waits_out_an_outage_shorter_than_the_tolerance(make_sandbox):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    box.api_down(2.0)
    started = time.monotonic()
    assert len(list_nodes(api.tolerating(30))) == 2
    assert time.monotonic() - started >= 1.0  # it really waited for the server to come back


def test_an_outage_longer_than_the_tolerance_fails_naming_it(make_sandbox):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    box.api_down(4.0)
    with pytest.raises(KubeUnavailable) as failed:
        list_nodes(api.tolerating(1))
    assert "still failing after 1s" in str(failed.value)
    time.sleep(4.5)
    assert len(list_nodes(api)) == 2


def test_a_body_that_is_not_json_is_retryable(make_sandbox):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    answers = iter([b"<html>proxy error</html>", b'{"items": []}'])

    def flaky(**_):
        return SimpleNamespace(data=next(answers))

    assert api.tolerating(5).call("list things", flaky) == {"items": []}
    with pytest.raises(KubeUnavailable, match="not JSON"):
        api.call("list things", lambda **_: SimpleNamespace(data=b"<html>"))
