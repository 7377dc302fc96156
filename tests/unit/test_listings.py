"""Parsing apt-cache madison and yum/dnf --showduplicates listings, and picking the pin."""

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.host.listings import parse_listing, select_package_version
from kubeupgrade.model.versions import MinorVersion, parse_version

MADISON_PKGS = """\
   kubeadm | 1.31.10-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages
   kubeadm | 1.31.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages
   kubeadm | 1.31.1-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages
   kubeadm | 1.31.0-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages
"""

MADISON_LEGACY = """\
   kubeadm |  1.24.3-00 | https://apt.kubernetes.io kubernetes-xenial/main amd64 Packages
   kubeadm |  1.24.2-00 | https://apt.kubernetes.io kubernetes-xenial/main amd64 Packages
   kubeadm |  1.23.9-00 | https://apt.kubernetes.io kubernetes-xenial/main amd64 Packages
"""

DNF_LIST = """\
Last metadata expiration check: 0:00:12 ago on Sat 28 Nov 2026 10:00:00 AM UTC.
Installed Packages
kubeadm.x86_64                  1.30.4-150500.1.1                  @kubernetes
Available Packages
kubeadm.aarch64                 1.31.0-150500.1.1                  kubernetes
kubeadm.x86_64                  1.31.0-150500.1.1                  kubernetes
kubeadm.x86_64                  1.31.2-150500.1.1                  kubernetes
kubeadm.x86_64                  1.31.1-150500.1.1                  kubernetes
"""

YUM_LEGACY_WRAPPED = """\
Loaded plugins: fastestmirror
Loading mirror speeds from cached hostfile
 * base: mirror.example.org
Available Packages
kubeadm.x86_64
                        1.24.3-0                        kubernetes
kubeadm.x86_64                        1.24.2-0                        kubernetes
kubectl.x86_64                        1.24.9-0                        kubernetes
"""


@pytest.mark.parametrize(
    ("text", "versions", "first_package"),
    [
        (MADISON_PKGS, ["1.31.10", "1.31.2", "1.31.1", "1.31.0"], "1.31.10-1.1"),
        (MADISON_LEGACY, ["1.24.3", "1.24.2", "1.23.9"], "1.24.3-00"),
        (DNF_LIST, ["1.31.2", "1.31.1", "1.31.0", "1.30.4"], "1.31.2-150500.1.1"),
        (YUM_LEGACY_WRAPPED, ["1.24.3", "1.24.2"], "1.24.3-0"),
    ],
)
def test_listing_formats(text, versions, first_package):
    rows = parse_listing(text)
    assert [row.version.plain for row in rows] == versions
    assert rows[0].package.raw == first_package


def test_other_packages_are_ignored():
    rows = parse_listing(YUM_LEGACY_WRAPPED, "kubectl")
    assert [row.package.raw for row in rows] == ["1.24.9-0"]


def test_installed_row_keeps_its_repository_name():
    rows = parse_listing(DNF_LIST)
    assert rows[-1].source == "kubernetes"


@pytest.mark.parametrize("text", ["", "Reading package lists... Done\n", "E: Unable to locate package kubeadm"])
def test_empty_or_foreign_listing_is_refused(text):
    with pytest.raises(InvalidInput, match="no kubeadm versions found"):
        parse_listing(text)


def test_select_latest_patch_of_a_minor():
    rows = parse_listing(MADISON_PKGS)
    assert select_package_version(rows, MinorVersion(1, 31)).package.raw == "1.31.10-1.1"


def test_select_exact_version():
    rows = parse_listing(DNF_LIST)
    chosen = select_package_version(rows, parse_version("v1.31.1"))
    assert chosen.package.raw == "1.31.1-150500.1.1"


def test_select_missing_exact_version_names_the_newest():
    rows = parse_listing(MADISON_PKGS)
    with pytest.raises(InvalidInput, match=r"1\.31\.3 is not in the package repository; newest listed: 1\.31\.10"):
        select_package_version(rows, parse_version("1.31.3"))


def test_select_minor_not_in_repository_hints_at_repository_switch():
    rows = parse_listing(MADISON_PKGS)
    with pytest.raises(InvalidInput, match="pointing at v1.32"):
        select_package_version(rows, MinorVersion(1, 32))


def test_prereleases_are_skipped_for_a_minor_unless_asked():
    text = MADISON_PKGS.replace("1.31.10-1.1", "1.31.11~rc.0-1.1")
    rows = parse_listing(text)
    assert select_package_version(rows, MinorVersion(1, 31)).version.plain == "1.31.2"
    assert (
        select_package_version(rows, MinorVersion(1, 31), allow_prerelease=True).version.plain
        == "1.31.11-rc.0"
    )
