"""Kubernetes versions in every form users and tools write them.

Parses release tags (`v1.31.2`, `1.31.2`), pre-releases (`v1.32.0-rc.1`), minors (`1.31`, meaning
"the latest patch of 1.31") and OS package versions (pkgs.k8s.io deb `1.31.2-1.1`, rpm
`1.31.2-150500.1.1`, legacy `1.24.3-00` / `1.24.3-0`, Debian pre-releases `1.32.0~rc.1-1.1`).

We do not use `packaging.version` for these: it normalises `v1.32.0-rc.1` to `1.32.0rc1`, rejects
`1.31.2-1.1` and reads `1.24.3-00` as a post-release. Every value keeps the string it was parsed
from (`raw`) so output shows what the user or the tool wrote.

Pure: imported by planning, the CLI, the agents and the sandbox alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering
from typing import Union

from kubeupgrade.errors import InvalidInput

# Kubernetes release candidates are ordered alpha < beta < rc < final (semver pre-release rules
# restricted to the labels the Kubernetes release process uses).
_PRE_RANK = {"alpha": 0, "beta": 1, "rc": 2}
_FINAL_RANK = 3

_TAG = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)"
    r"(?:\.(?P<patch>0|[1-9]\d*)(?:[-~](?P<label>alpha|beta|rc)\.(?P<num>0|[1-9]\d*))?)?$"
)
# An OS package version: an optional epoch, the upstream version, and a distribution revision.
_PACKAGE = re.compile(r"^(?:\d+:)?(?P<upstream>[0-9][0-9A-Za-z.~\-]*?)-(?P<revision>[0-9][0-9.]*)$")


@total_ordering
@dataclass(frozen=True)
class KubeVersion:
    """An exact Kubernetes version such as v1.31.2 or v1.32.0-rc.1."""

    major: int
    minor: int
    patch: int
    pre_label: str | None = None
    pre_number: int | None = None
    raw: str = field(default="", compare=False, hash=False)

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
        return MinorVersion(self.major, self.minor)

    @property
    def is_prerelease(self) -> bool:
        return self.pre_label is not None

    def _key(self) -> tuple[int, int, int, int, int]:
        rank = _FINAL_RANK if self.pre_label is None else _PRE_RANK[self.pre_label]
        return (self.major, self.minor, self.patch, rank, self.pre_number or 0)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, KubeVersion):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        return self.raw or self.tag


@total_ordering
@dataclass(frozen=True)
class MinorVersion:
    """A Kubernetes minor release line such as 1.31; as a target it means "its latest patch"."""

    major: int
    minor: int
    raw: str = field(default="", compare=False, hash=False)

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

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, MinorVersion):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return self.raw or self.plain


VersionSpec = Union[KubeVersion, MinorVersion]  # not `|`: the agent imports this on Python 3.9


@dataclass(frozen=True)
class PackageVersion:
    """An OS package version of kubeadm/kubelet/kubectl: the exact string to pin, and what it is."""

    raw: str
    version: KubeVersion
    revision: str

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


def parse_version_spec(text: object) -> VersionSpec:
    """Parse an exact version or a minor. Raises InvalidInput with the accepted forms."""
    if not isinstance(text, str):
        # YAML reads an unquoted 1.30 as the float 1.3: refuse it rather than guess.
        raise InvalidInput(
            f"{text!r} is not a version string; quote it in YAML, e.g. \"1.30\" or \"v1.30.4\""
        )
    stripped = text.strip()
    match = _TAG.match(stripped)
    if match is None:
        raise InvalidInput(
            f"{text!r} is not a Kubernetes version; expected v1.31.2, 1.31.2, 1.31 or v1.32.0-rc.1"
        )
    major, minor = int(match["major"]), int(match["minor"])
    if match["patch"] is None:
        return MinorVersion(major, minor, raw=stripped)
    number = match["num"]
    return KubeVersion(
        major,
        minor,
        int(match["patch"]),
        match["label"],
        int(number) if number is not None else None,
        raw=stripped,
    )


def parse_package_version(text: str) -> PackageVersion:
    """Parse an OS package version such as `1.31.2-1.1`, `1.31.2-150500.1.1` or `1.24.3-00`."""
    stripped = text.strip()
    match = _PACKAGE.match(stripped)
    if match is None:
        raise InvalidInput(
            f"{text!r} is not a Kubernetes package version; expected forms like 1.31.2-1.1, "
            "1.31.2-150500.1.1 or 1.24.3-00"
        )
    upstream = match["upstream"]
    match_tag = _TAG.match(upstream)
    if match_tag is None or match_tag["patch"] is None:
        raise InvalidInput(f"{text!r}: {upstream!r} is not an exact Kubernetes version")
    return PackageVersion(stripped, parse_version(upstream), match["revision"])
