"""The host platforms, one module each, and the one place that picks a host's platform.

To add a platform: a module implementing `base.HostPlatform`, an `OsFamily` member, and its line
in `_PLATFORMS`. A host whose family has no platform is refused, never served by a neighbour's.
"""

from __future__ import annotations

from kubeupgrade.host.platforms.apt import AptPlatform
from kubeupgrade.host.platforms.base import HostPlatform
from kubeupgrade.host.platforms.rpm import RpmPlatform
from kubeupgrade.host.platforms.windows import WindowsPlatform
from kubeupgrade.model.campaign import OsFamily

_PLATFORMS: dict[OsFamily, HostPlatform] = {
    OsFamily.APT: AptPlatform(),
    OsFamily.DNF: RpmPlatform("dnf"),
    OsFamily.YUM: RpmPlatform("yum"),
    OsFamily.WINDOWS: WindowsPlatform(),
}


def platform_for(family: OsFamily) -> HostPlatform:
    try:
        return _PLATFORMS[family]
    except KeyError:
        raise ValueError(f"no host platform for {family!r}: the agent cannot upgrade this host") from None


def detect(search_paths: list[str]) -> OsFamily | None:
    """The first platform whose marker tool is on one of `search_paths` (tried in order:
    the host's own tool directories before the agent's PATH), or None."""
    import shutil

    for search in search_paths:
        for family, platform in _PLATFORMS.items():
            if search and shutil.which(platform.marker, path=search):
                return family
    return None


__all__ = ["HostPlatform", "detect", "platform_for"]
