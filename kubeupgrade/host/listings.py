"""Parsers for package-manager listings of Kubernetes packages.

Reads the output of `apt-cache madison kubeadm` (pkgs.k8s.io and legacy apt.kubernetes.io) and
`yum|dnf list --showduplicates kubeadm` (with their header lines and dnf's wrapped rows), and picks
the package to pin for a target. The CLI uses it on a saved listing; the agent uses the very same
functions on the host's live output to resolve "latest patch of 1.31" to an exact package string.

Pure: text in, values out.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.versions import (
    KubeVersion,
    MinorVersion,
    PackageVersion,
    VersionSpec,
    parse_package_version,
)

_YUM_SECTION_HEADERS = ("Available Packages", "Installed Packages", "Extra Packages")
_YUM_NOISE_PREFIXES = (
    "Last metadata expiration check",
    "Loaded plugins",
    "Loading mirror speeds",
    "Updating Subscription Management",
    "This system is not registered",
    "Repository ",
    " * ",
    "Kubernetes ",
)


@dataclass(frozen=True)
class ListedPackage:
    """One row of a listing: package name, pinned version string, and where it comes from."""

    name: str
    package: PackageVersion
    source: str

    @property
    def version(self) -> KubeVersion:
        return self.package.version


def parse_listing(text: str, package: str = "kubeadm") -> list[ListedPackage]:
    """Parse either listing format; rows for other packages are ignored. Newest first, deduplicated.

    Raises InvalidInput when no row for `package` could be read, naming the formats understood.
    """
    rows = _parse_madison(text, package)
    if not rows:
        rows = _parse_yum(text, package)
    if not rows:
        raise InvalidInput(
            f"no {package} versions found; expected the output of `apt-cache madison {package}` "
            f"or `dnf list --showduplicates {package}`"
        )
    seen: set[str] = set()
    unique: list[ListedPackage] = []
    for row in sorted(rows, key=lambda r: r.version, reverse=True):
        if row.package.raw not in seen:
            seen.add(row.package.raw)
            unique.append(row)
    return unique


def _parse_madison(text: str, package: str) -> list[ListedPackage]:
    # "   kubeadm | 1.31.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages"
    rows = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split("|")]
        if len(parts) != 3 or parts[0] != package:
            continue
        rows.append(ListedPackage(package, parse_package_version(parts[1]), parts[2]))
    return rows


def _parse_yum(text: str, package: str) -> list[ListedPackage]:
    # "kubeadm.x86_64          1.31.2-150500.1.1          kubernetes"; dnf wraps a row whose
    # name is too long onto two lines, so tokens are gathered across line breaks.
    tokens: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(_YUM_SECTION_HEADERS):
            continue
        if line.startswith(_YUM_NOISE_PREFIXES) or stripped.startswith(_YUM_NOISE_PREFIXES):
            continue
        tokens.extend(stripped.split())
    rows = []
    for index in range(0, len(tokens) - 2):
        name_arch = tokens[index]
        name = name_arch.rsplit(".", 1)[0] if "." in name_arch else name_arch
        if name != package:
            continue
        try:
            version = parse_package_version(tokens[index + 1])
        except InvalidInput:
            continue
        rows.append(ListedPackage(package, version, tokens[index + 2].lstrip("@")))
    return rows


def select_package_version(
    listing: list[ListedPackage], target: VersionSpec, *, allow_prerelease: bool = False
) -> ListedPackage:
    """Pick the row to install for `target`: the exact version, or the newest patch of a minor.

    Pre-releases are chosen for a minor only when asked for; an exact pre-release target is
    always honoured.
    """
    if isinstance(target, KubeVersion):
        for row in listing:
            if row.version == target:
                return row
        raise InvalidInput(
            f"version {target.plain} is not in the package repository; newest listed: "
            f"{_newest_of(listing, target.minor_version)}"
        )
    candidates = [
        row
        for row in listing
        if row.version.minor_version == target and (allow_prerelease or not row.version.is_prerelease)
    ]
    if not candidates:
        raise InvalidInput(
            f"no {target.plain}.x release in the package repository; is the repository pointing "
            f"at v{target.plain}?"
        )
    return max(candidates, key=lambda row: row.version)


def _newest_of(listing: list[ListedPackage], minor: MinorVersion) -> str:
    same_minor = [row.version.plain for row in listing if row.version.minor_version == minor]
    if same_minor:
        return f"{same_minor[0]} (of {minor.plain})"
    return listing[0].version.plain if listing else "nothing"
