"""Kubernetes versions in every form users and tools write them.

Parses release tags (`v1.31.2`, `1.31.2`), pre-releases (`v1.32.0-rc.1`), minors (`1.31`, meaning
"the latest patch of 1.31") and OS package versions (pkgs.k8s.io deb `1.31.2-1.1`, rpm
`1.31.2-150500.1.1`, legacy `1.24.3-00` / `1.24.3-0`, Debian pre-releases `1.32.0~rc.1-1.1`).

We do not use `packaging.version` for these: it normalises `v1.32.0-rc.1` to `1.32.0rc1`, rejects
`1.31.2-1.1` and reads `1.24.3-00` as a post-release. Every value keeps the string it was parsed
from (`raw`) so output shows what the user or the tool wrote.

Pure: imported by planning, the CLI, the agents and the sandbox alike. Every simulated package
manager and kubeadm run is a new process that imports this module, so it is written without
`dataclasses`, `re`, `functools` or `typing` (with them, importing it was two thirds of such a
command's CPU): the value classes spell out what a frozen dataclass would generate, and the
parsers read the grammar below by hand (`tests/unit/test_versions.py` checks them against it).

    tag     = ["v"] number "." number ["." number [("-" | "~") label "." number]]
    number  = "0" | [1-9][0-9]*            (ASCII digits only)
    label   = "alpha" | "beta" | "rc"
    package = [digits ":"] upstream "-" revision     (split at the last "-")
    upstream = [0-9][0-9A-Za-z.~-]*,  revision = [0-9][0-9.]*
"""

from __future__ import annotations

from kubeupgrade.errors import InvalidInput

TYPE_CHECKING = False  # typing is not imported at run time (see above); mypy reads this as usual
if TYPE_CHECKING:
    from typing import Union

# Kubernetes release candidates are ordered alpha < beta < rc < final (semver pre-release rules
# restricted to the labels the Kubernetes release process uses).
_PRE_RANK = {"alpha": 0, "beta": 1, "rc": 2}
_FINAL_RANK = 3

_DIGITS = frozenset("0123456789")
_UPSTREAM = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.~-")
_REVISION = frozenset("0123456789.")


class FrozenValue:
    """What the version values share, as a frozen dataclass would give it: fields in `__slots__`
    order (the constructor's), set once; equal and hashed by `_identity()` among values of one
    class; the dataclass repr; copied and pickled by value."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: {type(self).__name__} is immutable")

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def _identity(self) -> tuple[object, ...]:
        return self._fields()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), self._fields()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class OrderedValue(FrozenValue):
    """A FrozenValue ordered by `_key()` among values of its own class."""

    __slots__ = ()

    def _key(self) -> tuple[int, ...]:
        raise NotImplementedError

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() >= other._key()


_MINORS: dict[tuple[int, int], MinorVersion] = {}  # KubeVersion.minor_version's, by (major, minor)
_MINORS_KEPT = 256


class KubeVersion(OrderedValue):
    """An exact Kubernetes version such as v1.31.2 or v1.32.0-rc.1."""

    __slots__ = ("major", "minor", "patch", "pre_label", "pre_number", "raw")
    major: int
    minor: int
    patch: int
    pre_label: str | None
    pre_number: int | None
    raw: str  # as written; not part of equality, hash or order

    def __init__(self, major: int, minor: int, patch: int, pre_label: str | None = None,
                 pre_number: int | None = None, raw: str = "") -> None:
        super().__init__(major, minor, patch, pre_label, pre_number, raw)

    @property
    def tag(self) -> str:
        """The release tag as kubeadm and the API server print it: `v1.31.2`, `v1.32.0-rc.1`."""
        return "v" + self.plain

    @property
    def plain(self) -> str:
        """The version without the leading v: `1.31.2`, `1.32.0-rc.1`."""
        base = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre_label is not None:
            return f"{base}-{self.pre_label}.{self.pre_number}"
        return base

    @property
    def minor_version(self) -> MinorVersion:
        # One value per release line: planning a 5,000-node hop asks 40,000 times, and building
        # a frozen value each time was a fifth of the planner's time.
        key = (self.major, self.minor)
        minor = _MINORS.get(key)
        if minor is None:
            if len(_MINORS) >= _MINORS_KEPT:
                _MINORS.clear()
            minor = _MINORS[key] = MinorVersion(self.major, self.minor)
        return minor

    @property
    def is_prerelease(self) -> bool:
        return self.pre_label is not None

    def _key(self) -> tuple[int, ...]:
        rank = _FINAL_RANK if self.pre_label is None else _PRE_RANK[self.pre_label]
        return (self.major, self.minor, self.patch, rank, self.pre_number or 0)

    def _identity(self) -> tuple[object, ...]:
        return (self.major, self.minor, self.patch, self.pre_label, self.pre_number)

    def __str__(self) -> str:
        return self.raw or self.tag


class MinorVersion(OrderedValue):
    """A Kubernetes minor release line such as 1.31; as a target it means "its latest patch"."""

    __slots__ = ("major", "minor", "raw")
    major: int
    minor: int
    raw: str  # as written; not part of equality, hash or order

    def __init__(self, major: int, minor: int, raw: str = "") -> None:
        super().__init__(major, minor, raw)

    @property
    def plain(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def tag(self) -> str:
        return "v" + self.plain

    @property
    def minor_version(self) -> MinorVersion:
        """Itself, so code can ask any VersionSpec for its minor."""
        return self

    def minors_until(self, other: MinorVersion) -> int:
        """How many minor releases `other` is ahead of this one (negative when behind)."""
        if self.major != other.major:
            raise InvalidInput(
                f"cannot compare {self.plain} and {other.plain}: different major versions"
            )
        return other.minor - self.minor

    def _identity(self) -> tuple[object, ...]:
        return (self.major, self.minor)

    def _key(self) -> tuple[int, ...]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return self.raw or self.plain


if TYPE_CHECKING:
    VersionSpec = Union[KubeVersion, MinorVersion]  # not `|`: the agent runs on Python 3.9
else:
    VersionSpec = (KubeVersion, MinorVersion)  # what isinstance() takes; annotations are strings


class PackageVersion(FrozenValue):
    """An OS package version of kubeadm/kubelet/kubectl: the exact string to pin, and what it is."""

    __slots__ = ("raw", "version", "revision")
    raw: str
    version: KubeVersion
    revision: str

    def __init__(self, raw: str, version: KubeVersion, revision: str) -> None:
        super().__init__(raw, version, revision)

    @property
    def flavour(self) -> str:
        """Which repository layout produced it: pkgs.k8s.io deb/rpm or the legacy repositories."""
        if self.revision in ("00", "0"):
            return "legacy-deb" if self.revision == "00" else "legacy-rpm"
        if self.revision.count(".") >= 2:  # 150500.1.1: the openSUSE Build Service rpm release
            return "pkgs-rpm"
        return "pkgs-deb"

    def __str__(self) -> str:
        return self.raw


def _number(text: str) -> int | None:
    """A version number as the grammar has it ("0", or ASCII digits without a leading zero)."""
    if text == "0" or (text and text[0] != "0" and _DIGITS.issuperset(text)):
        return int(text)
    return None


# Text -> its _parse_tag reading. A campaign names the same few versions once per node (5,000
# kubelet versions read a sixth of a 5,000-node acceptance), and the values are immutable, so one
# reading serves every node. Bounded: emptied when full (texts come from input and tools).
_READ_TAGS: dict[str, KubeVersion | MinorVersion | None] = {}
_READ_TAGS_MOST = 4096


def _parse_tag(text: str) -> KubeVersion | MinorVersion | None:
    """`text` (already stripped) read as a tag or a minor, None if it is neither."""
    try:
        return _READ_TAGS[text]
    except KeyError:
        pass
    spec = _read_tag(text)
    if len(_READ_TAGS) >= _READ_TAGS_MOST:
        _READ_TAGS.clear()
    _READ_TAGS[text] = spec
    return spec


def _read_tag(text: str) -> KubeVersion | MinorVersion | None:
    body = text[1:] if text.startswith("v") else text
    cut = min((i for i in (body.find("-"), body.find("~")) if i >= 0), default=-1)
    core, pre = (body, None) if cut < 0 else (body[:cut], body[cut + 1:])
    parts = core.split(".")
    if len(parts) not in (2, 3) or (pre is not None and len(parts) != 3):
        return None
    numbers: list[int] = []
    for part in parts:
        number = _number(part)
        if number is None:
            return None
        numbers.append(number)
    if len(numbers) == 2:
        return MinorVersion(numbers[0], numbers[1], raw=text)
    if pre is None:
        return KubeVersion(numbers[0], numbers[1], numbers[2], raw=text)
    label, dot, count = pre.partition(".")
    pre_number = _number(count) if dot else None
    if label not in _PRE_RANK or pre_number is None:
        return None
    return KubeVersion(numbers[0], numbers[1], numbers[2], label, pre_number, raw=text)


def parse_version(text: str) -> KubeVersion:
    """Parse an exact version (`v1.31.2`, `1.31.2`, `v1.32.0-rc.1`); a bare minor is an error."""
    spec = parse_version_spec(text)
    if isinstance(spec, MinorVersion):
        raise InvalidInput(
            f"{text!r} is a minor release, not an exact version; write it as {spec.plain}.Z"
        )
    return spec


def parse_minor(text: str) -> MinorVersion:
    """Parse a minor (`1.31`, `v1.31`); an exact version gives its minor."""
    spec = parse_version_spec(text)
    if isinstance(spec, KubeVersion):
        return spec.minor_version
    return spec


def parse_version_spec(text: object) -> KubeVersion | MinorVersion:
    """Parse an exact version or a minor. Raises InvalidInput with the accepted forms."""
    if not isinstance(text, str):
        # YAML reads an unquoted 1.30 as the float 1.3: refuse it rather than guess.
        raise InvalidInput(
            f"{text!r} is not a version string; quote it in YAML, e.g. \"1.30\" or \"v1.30.4\""
        )
    spec = _parse_tag(text.strip())
    if spec is None:
        raise InvalidInput(
            f"{text!r} is not a Kubernetes version; expected v1.31.2, 1.31.2, 1.31 or v1.32.0-rc.1"
        )
    return spec


def _split_package(text: str) -> tuple[str, str] | None:
    """(upstream, revision) of a package version (already stripped), None if it is not one."""
    epoch, colon, rest = text.partition(":")
    if colon:
        if not epoch or not _DIGITS.issuperset(epoch):
            return None
        text = rest
    upstream, dash, revision = text.rpartition("-")
    if not dash or not upstream or not revision:
        return None
    if upstream[0] not in _DIGITS or not _UPSTREAM.issuperset(upstream):
        return None
    if revision[0] not in _DIGITS or not _REVISION.issuperset(revision):
        return None
    return upstream, revision


def parse_package_version(text: str) -> PackageVersion:
    """Parse an OS package version such as `1.31.2-1.1`, `1.31.2-150500.1.1` or `1.24.3-00`."""
    stripped = text.strip()
    split = _split_package(stripped)
    if split is None:
        raise InvalidInput(
            f"{text!r} is not a Kubernetes package version; expected forms like 1.31.2-1.1, "
            "1.31.2-150500.1.1 or 1.24.3-00"
        )
    upstream, revision = split
    if not isinstance(_parse_tag(upstream), KubeVersion):
        raise InvalidInput(f"{text!r}: {upstream!r} is not an exact Kubernetes version")
    return PackageVersion(stripped, parse_version(upstream), revision)
