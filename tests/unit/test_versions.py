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


# -- the hand-written parsers against the grammar as regular expressions -----------------------
# (the module reads versions without `re`: it is imported by every simulated package manager run)
import copy  # noqa: E402 - this part's own imports
import pickle  # noqa: E402
import re  # noqa: E402

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TAG = re.compile(r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*)(?:[-~](alpha|beta|rc)\.(0|[1-9][0-9]*))?)?")
PACKAGE = re.compile(r"(?:[0-9]+:)?([0-9][0-9A-Za-z.~\-]*?)-([0-9][0-9.]*)")

# Strings near the grammar: its own characters, with a few that must be refused
# (a Unicode digit, a space, a colon, letters of no label).
NEAR = st.lists(st.sampled_from([*"v0123456789.-~:", "rc", "alpha", "beta", "\u0663", "x", " ", "V", "00"]),
                max_size=14).map("".join)
# Tags built part by part, each part mostly right and sometimes wrong in one way.
SHAPED = st.builds(lambda v, a, b, c, pre: f"{v}{a}.{b}{c}{pre}",
                   st.sampled_from(["", "", "v", "vv"]), st.sampled_from(["1", "0", "12", "01"]),
                   st.sampled_from(["31", "0", "031", "x"]), st.sampled_from([".2", ".0", ".10", ".02", ""]),
                   st.one_of(st.just(""), st.builds(lambda sep, label, n: f"{sep}{label}{n}",
                                                    st.sampled_from(["-", "~", "-", "~", "+"]),
                                                    st.sampled_from(["rc", "alpha", "beta", "gamma", ""]),
                                                    st.sampled_from([".1", ".0", ".01", "", "1"]))))


def expected_spec(text: str):
    match = TAG.fullmatch(text.strip())
    if match is None:
        return None
    major, minor, patch, label, number = match.groups()
    if patch is None:
        return ("minor", int(major), int(minor))
    return ("exact", int(major), int(minor), int(patch), label, None if number is None else int(number))


def parsed_spec(text: str):
    try:
        spec = parse_version_spec(text)
    except InvalidInput:
        return None
    if isinstance(spec, MinorVersion):
        return ("minor", spec.major, spec.minor)
    return ("exact", spec.major, spec.minor, spec.patch, spec.pre_label, spec.pre_number)


@settings(max_examples=1000)
@given(st.one_of(NEAR, SHAPED))
@example("v1.32.0~rc.1")  # Debian's spelling of a pre-release
@example("1.31-rc.1")  # a pre-release of a minor is not a version
def test_versions_are_read_exactly_as_the_grammar_says(text):
    assert parsed_spec(text) == expected_spec(text)


@settings(max_examples=1000)
@given(st.one_of(NEAR, st.builds(lambda e, t, r: f"{e}{t}-{r}", st.sampled_from(["", "", "0:", "12:", "x:", ":"]),
                                 SHAPED, st.sampled_from(["1.1", "150500.1.1", "00", "0", "", "1-1", "a"]))))
@example("1.32.0-rc.1-1.1")  # a "-" in the version itself: the revision is after the last one
def test_package_versions_are_read_exactly_as_the_grammar_says(text):
    match = PACKAGE.fullmatch(text.strip())
    want = None
    if match is not None and expected_spec(match[1]) is not None and expected_spec(match[1])[0] == "exact":
        want = (text.strip(), expected_spec(match[1]), match[2])
    try:
        package = parse_package_version(text)
        got = (package.raw, parsed_spec(str(package.version)), package.revision)
    except InvalidInput:
        got = None
    assert got == want


def test_a_unicode_digit_is_not_a_version_number():
    with pytest.raises(InvalidInput):
        parse_version("v1.3\u0663.0")  # ARABIC-INDIC DIGIT THREE: int() would take it


@given(st.sampled_from(["v1.31.2", "1.32.0-rc.1", "1.31", "1.24.3-00"]))
def test_values_are_immutable_and_copy_by_value(text):
    value = parse_package_version(text) if text.endswith("-00") else parse_version_spec(text)
    with pytest.raises(AttributeError):
        value.raw = "changed"
    for copied in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert copied == value and hash(copied) == hash(value) and repr(copied) == repr(value)
    assert value != text and (value == text) is False


def test_order_is_total_and_only_among_versions_of_one_kind():
    a, b = parse_version("v1.31.2"), parse_version("1.31.2")
    assert a <= b and a >= b and not a < b and not a > b
    with pytest.raises(TypeError):
        _ = a < MinorVersion(1, 31)
    assert a != MinorVersion(1, 31) and MinorVersion(1, 31) != a


def test_a_text_read_again_gives_the_same_value_and_a_bad_one_is_refused_again():
    """Readings are kept per text (versions._READ_TAGS): the second reading must not differ
    from the first, also for a text that is not a version, and the kept readings stay bounded."""
    from kubeupgrade.model import versions

    first, again = parse_version("v1.31.2"), parse_version("v1.31.2")
    assert again == first and again.raw == "v1.31.2" and parse_version("1.31.2").raw == "1.31.2"
    for _ in range(2):
        with pytest.raises(InvalidInput, match="not a Kubernetes version"):
            parse_version_spec("v1.31.x")
    assert isinstance(parse_version_spec("1.31"), MinorVersion)
    assert isinstance(parse_version_spec("1.31.0"), KubeVersion)
    for patch in range(versions._READ_TAGS_MOST + 10):
        parse_version(f"1.31.{patch}")
    assert len(versions._READ_TAGS) <= versions._READ_TAGS_MOST
    assert parse_version("1.31.4000").patch == 4000
