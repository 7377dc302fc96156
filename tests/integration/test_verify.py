"""The hop's verification against the sandbox's API server, with the real client."""

from __future__ import annotations

import pytest

from kubeupgrade.kube.client import KubeApi
from kubeupgrade.kube.verify import verify_cluster
from kubeupgrade.model.versions import parse_version

pytestmark = pytest.mark.integration


def test_a_control_plane_component_put_back_after_the_plan_is_named_as_a_change_under_the_campaign(make_sandbox):
    """kubeadm rolls a control plane back when one of its static pods does not come up: every
    phase of the campaign succeeded, yet a component is at the old version. The verification
    names it, and says the versions are behind (which a retry of the verification cannot mend)."""
    box = make_sandbox(control_planes=2, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    version = parse_version("1.30.4")
    done = verify_cluster(api, version)
    assert done.problems == [] and not done.versions_behind
    assert {row.name for row in done.rows} == {"cp-1", "cp-2", "worker-1"}

    api.core.patch_namespaced_pod("kube-scheduler-cp-2", "kube-system", {"spec": {"containers": [
        {"name": "kube-scheduler", "image": "registry.k8s.io/kube-scheduler:v1.30.2"}]}})
    behind = verify_cluster(api, version)
    assert behind.problems == ["node cp-2 static pods not at v1.30.4: kube-scheduler"]
    assert behind.versions_behind and behind.static_pods_behind == ("cp-2",)
    assert done.static_pods_behind == ()
