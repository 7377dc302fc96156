"""Version parsing and ordering: every form users and tools write, and what we refuse."""

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.versions import (
    KubeVersion,
    MinorVersion,
    parse_minor,
    parse_package_version,
    parse_version,
    parse_version_spec,
)


@pytest.mark.parametrize(
    ("text", "tag", "plain", "minor"),
    [
        ("v1.31.2", "v1.31.2", "1.31.2", (1, 31)),
        ("1.31.2", "v1.31.2", "1.31.2", (1, 31)),
        (" v1.28.0 ", "v1.28.0", "1.28.0", (1, 28)),
        ("v1.32.0-rc.1", "v1.32.0-rc.1", "1.32.0-rc.1", (1, 32)),
        ("v1.32.0-alpha.3", "v1.32.0-alpha.3", "1.32.0-alpha.3", (1, 32)),
        ("1.33.0-beta.0", "v1.33.0-beta.0", "1.33.0-beta.0", (1, 33)),
    ],
)
def test_exact_versions(text, tag, plain, minor):
    version = parse_version(text)
    assert version.tag == tag
    assert version.plain == plain
    assert (version.minor_version.major, version.minor_version.minor) == minor
    assert str(version) == text.strip()  # the raw string is kept for output


@pytest.mark.parametrize("text", ["1.31", "v1.31"])
def test_minor_versions(text):
    spec = parse_version_spec(text)
    assert isinstance(spec, MinorVersion)
    assert spec.plain == "1.31"
    assert parse_minor(text) == MinorVersion(1, 31)


def test_minor_of_exact_version():
    assert parse_minor("v1.31.7") == MinorVersion(1, 31)


@pytest.mark.parametrize(
    "text", ["", "latest", "1", "v1.31.2.4", "1.31.x", "v1.31.02", "1.31.2-foo.1", "V1.31.2"]
)
def test_rejected_versions(text):
    with pytest.raises(InvalidInput, match="not a Kubernetes version"):
        parse_version_spec(text)


def test_unquoted_yaml_float_is_refused_with_a_hint():
    with pytest.raises(InvalidInput, match="quote it in YAML"):
        parse_version_spec(1.3)


def test_a_minor_is_not_an_exact_version():
    with pytest.raises(InvalidInput, match="minor release, not an exact version"):
        parse_version("1.31")


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("v1.30.9", "v1.30.10"),  # numeric, not lexical
        ("v1.30.14", "v1.31.0"),
        ("v1.32.0-alpha.1", "v1.32.0-alpha.2"),
        ("v1.32.0-alpha.9", "v1.32.0-beta.0"),
        ("v1.32.0-beta.2", "v1.32.0-rc.0"),
        ("v1.32.0-rc.1", "v1.32.0"),
        ("v1.31.9", "v1.32.0-alpha.0"),
    ],
)
def test_ordering(older, newer):
    assert parse_version(older) < parse_version(newer)
    assert parse_version(newer) > parse_version(older)


def test_equality_ignores_the_leading_v():
    assert parse_version("v1.31.2") == parse_version("1.31.2")
    assert len({parse_version("v1.31.2"), parse_version("1.31.2")}) == 1


@pytest.mark.parametrize(
    ("text", "version", "revision", "flavour"),
    [
        ("1.31.2-1.1", "1.31.2", "1.1", "pkgs-deb"),
        ("1.31.2-150500.1.1", "1.31.2", "150500.1.1", "pkgs-rpm"),
        ("1.24.3-00", "1.24.3", "00", "legacy-deb"),
        ("1.24.3-0", "1.24.3", "0", "legacy-rpm"),
        ("1.32.0~rc.1-1.1", "1.32.0-rc.1", "1.1", "pkgs-deb"),
        ("0:1.30.4-150500.1.1", "1.30.4", "150500.1.1", "pkgs-rpm"),
    ],
)
def test_package_versions(text, version, revision, flavour):
    package = parse_package_version(text)
    assert package.version == parse_version(version)
    assert package.revision == revision
    assert package.flavour == flavour
    assert str(package) == text  # the exact string to pin


@pytest.mark.parametrize("text", ["1.31.2", "1.31-1.1", "kubeadm-1.31.2-1.1", "1.31.2-", "abc-1"])
def test_rejected_package_versions(text):
    with pytest.raises(InvalidInput):
        parse_package_version(text)


def test_minors_until_across_majors_is_refused():
    with pytest.raises(InvalidInput, match="different major"):
        MinorVersion(1, 31).minors_until(MinorVersion(2, 0))


def test_kube_version_is_hashable_and_sortable():
    versions = [parse_version(v) for v in ["1.31.2", "v1.30.4", "1.32.0-rc.1", "1.31.10"]]
    assert [v.plain for v in sorted(versions)] == ["1.30.4", "1.31.2", "1.31.10", "1.32.0-rc.1"]
    assert KubeVersion(1, 31, 2) in set(versions)
