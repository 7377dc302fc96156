"""Reading a version from an image reference, as the cluster's pods and DaemonSets hold them."""

import pytest

from kubeupgrade.kube.discovery import tag_of


@pytest.mark.parametrize(("image", "tag"), [
    ("registry.k8s.io/kube-apiserver:v1.31.2", "v1.31.2"),
    ("registry.k8s.io/kube-apiserver:v1.31.2@sha256:" + "0f" * 32, "v1.31.2"),
    ("registry.example:5000/k8s/kube-proxy:v1.30.4", "v1.30.4"),
    ("registry.example:5000/k8s/kube-proxy", ""),
    ("registry.example:5000/k8s/kube-proxy@sha256:" + "0f" * 32, ""),
    ("kube-scheduler:v1.29.0-rc.1", "v1.29.0-rc.1"),
    ("", ""),
])
def test_the_tag_is_read_from_the_last_path_segment_before_any_digest(image, tag):
    assert tag_of(image) == tag
