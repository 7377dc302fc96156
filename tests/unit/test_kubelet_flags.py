"""Whether a kubelet refuses swap, from its flag files and configuration file. No I/O."""

import pytest

from kubeupgrade.host.kubelet_flags import fails_swap_on


@pytest.mark.parametrize(("flags", "config", "expected"), [
    ([], None, True),  # the kubelet's default
    ([], "kind: KubeletConfiguration\nfailSwapOn: false\n", False),
    ([], "kind: KubeletConfiguration\nfailSwapOn: true  # the default\n", True),
    ([], "memorySwap:\n  swapBehavior: LimitedSwap\n", True),  # swap behaviour alone is not enough
    (["KUBELET_EXTRA_ARGS=--fail-swap-on=false\n"], "failSwapOn: true\n", False),  # a flag wins
    (["KUBELET_KUBEADM_ARGS=--fail-swap-on=false\n", "KUBELET_EXTRA_ARGS=--fail-swap-on=true\n"],
     "failSwapOn: false\n", True),
    ([], "nested:\n  failSwapOn: false\n", True),  # not the top-level field
    # Go's flag syntax: a bare boolean flag is true, and a value is given only with "="
    (["KUBELET_EXTRA_ARGS=--fail-swap-on\n"], "failSwapOn: false\n", True),
    (['KUBELET_EXTRA_ARGS="--node-ip=10.0.0.5 --fail-swap-on"\n'], "failSwapOn: false\n", True),
    (["KUBELET_EXTRA_ARGS=--fail-swap-on false\n"], "failSwapOn: false\n", True),
    (["KUBELET_EXTRA_ARGS=--fail-swap-on=False\n"], None, False),
    (["KUBELET_EXTRA_ARGS=--fail-swap-on=0\n"], None, False),
    (["KUBELET_EXTRA_ARGS='--fail-swap-on=f'\n"], None, False),
    (["KUBELET_EXTRA_ARGS=--fail-swap-on-extra=false\n"], "failSwapOn: false\n", False),  # another flag
])
def test_a_kubelet_refuses_swap_unless_its_flag_or_configuration_says_false(flags, config, expected):
    assert fails_swap_on(flags, config) is expected
