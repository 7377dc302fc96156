"""Version-skew rules, including their boundaries (3 vs 4 minors; kubelets older than 1.25)."""

import pytest

from kubeupgrade.model.versions import parse_minor, parse_version
from kubeupgrade.planning.skew import check_apiserver_spread, check_kubelet_against_apiserver


@pytest.mark.parametrize(
    ("kubelet", "apiserver", "rule"),
    [
        ("1.31.2", "1.31", None),  # same minor
        ("1.28.0", "1.31", None),  # 3 behind: the limit since 1.25
        ("1.27.9", "1.31", "kubelet-too-old"),  # 4 behind
        ("1.25.0", "1.28", None),  # 1.25 gets the 3-minor window
        ("1.24.9", "1.26", None),  # 2 behind: the limit before 1.25
        ("1.24.9", "1.27", "kubelet-too-old"),  # 3 behind is too many for a 1.24 kubelet
        ("1.23.0", "1.25", None),
        ("1.32.0", "1.31", "kubelet-newer-than-apiserver"),
        ("1.31.5", "1.31", None),  # patch differences never matter
    ],
)
def test_kubelet_rule(kubelet, apiserver, rule):
    finding = check_kubelet_against_apiserver("w1", parse_version(kubelet), parse_minor(apiserver), when="then")
    assert (finding.rule if finding else None) == rule
    if finding:
        assert finding.node == "w1" and finding.component == "kubelet"
        assert "w1" in finding.message


def test_kubelet_too_old_says_what_to_do():
    finding = check_kubelet_against_apiserver("w1", parse_version("1.27.3"), parse_minor("1.31"), when="then")
    assert "4 minors older" in finding.message
    assert "at most 3 allowed" in finding.message
    assert "to 1.28 or later" in finding.message


@pytest.mark.parametrize(
    ("versions", "rule"),
    [
        ({"a": "1.30.1", "b": "1.30.4"}, None),
        ({"a": "1.30.1", "b": "1.31.0"}, None),
        ({"a": "1.29.1", "b": "1.31.0"}, "apiserver-skew"),
    ],
)
def test_apiserver_spread(versions, rule):
    finding = check_apiserver_spread({k: parse_version(v) for k, v in versions.items()})
    assert (finding.rule if finding else None) == rule
    if finding:
        assert finding.node == "a"
