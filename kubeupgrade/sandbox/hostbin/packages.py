"""Simulated package managers: apt-get, apt-mark, apt-cache, dpkg, dpkg-query, dnf/yum, rpm.

Rules taken from the real tools:
- packages come only from the configured repository's minor (pkgs.k8s.io has one repository per
  minor); apt reads the lists fetched by its last `apt-get update`, dnf reads the repo file;
- the kubernetes yum repository excludes the packages, so dnf/yum need them lifted for the run,
  named by the repository's id (its `[section]`, `kubernetes` in kubeadm's guide) or "all":
  yum 3 and dnf 4 with `--disableexcludes=ID`, dnf 4 and dnf 5 with
  `--setopt=disable_excludes=ID`; dnf 5 refuses `--disableexcludes` as an unknown
  argument (exit status 2) and words its answers its own way;
- apt refuses to change held packages under -y without --allow-change-held-packages, also when
  it only downloads them;
- an apt run interrupted half-way leaves dpkg "interrupted" until `dpkg --configure -a`;
- the dpkg lock can be held by another process.
"""

from __future__ import annotations

import fcntl
import os
import time

from kubeupgrade.sandbox import quickjson
from kubeupgrade.sandbox.faults import FaultKind
from kubeupgrade.sandbox.hostbin.context import TYPE_CHECKING, ExitCommand, Host
from kubeupgrade.sandbox.layout import APT_LISTS, KUBELET_STATE, PACKAGE_STATE, YUM_REPOS

# The version model and the release tables are imported by the functions that read the
# repository, and `fnmatch` (with `re` behind it) only for a version given as a wildcard: the
# queries an upgrade runs most (dpkg-query, apt-mark, rpm -q) are a new process each and need
# none of them (with them, a third of such a command's time was imports).
if TYPE_CHECKING:
    from typing import Any

    from kubeupgrade.model.versions import KubeVersion, MinorVersion

# pkgs.k8s.io's path layout, then MAJOR.MINOR/deb or MAJOR.MINOR/rpm: served by pkgs.k8s.io or by a
# mirror that keeps its paths (the sandbox serves every such address the same releases)
_REPO_PATH = "/core:/stable:/v"
_SIZES_MB = {"kubeadm": 10.4, "kubelet": 15.2, "kubectl": 10.9}


# -- repository ------------------------------------------------------------------------------
def _addresses(text: str) -> list[tuple[MinorVersion, str]]:
    """Each pkgs.k8s.io-style repository address in `text` (to its `deb/` or `rpm/`) and its
    minor, once each, in order."""
    from kubeupgrade.model.versions import MinorVersion
    found: list[tuple[MinorVersion, str]] = []
    at = text.find(_REPO_PATH)
    while at >= 0:
        major, dot, rest = text[at + len(_REPO_PATH):].partition(".")
        minor, slash, rest = rest.partition("/")
        if dot and slash and _is_number(major) and _is_number(minor) and rest[:3] in ("deb", "rpm"):
            start = max(text.rfind(mark, 0, at) for mark in (" ", "=", "\n", "\t")) + 1
            end = at + len(_REPO_PATH) + len(major) + len(minor) + 2 + 4
            address = (MinorVersion(int(major), int(minor)), text[start:end])
            if address not in found:
                found.append(address)
        at = text.find(_REPO_PATH, at + 1)
    return found


def _repo_files(host: Host) -> list[str]:
    """dnf and yum read every `.repo` file of /etc/yum.repos.d."""
    try:
        names = sorted(os.listdir(host.file(YUM_REPOS)))
    except FileNotFoundError:
        return []
    return [f"{YUM_REPOS}/{name}" for name in names if name.endswith(".repo")]


def _configured(host: Host) -> list[tuple[MinorVersion, str]]:
    """The pkgs.k8s.io-style repositories the host is configured with: apt's enabled `deb`
    entries (raises apt_sources.SourcesError where apt could not read them), the addresses of
    the `.repo` files for dnf and yum."""
    if host.family == "apt":
        from kubeupgrade.sandbox.hostbin import apt_sources
        sources, _ = apt_sources.read_sources(host)
        return [address for source in sources for address in _addresses(source.uri)]
    found: list[tuple[MinorVersion, str]] = []
    for _, minor, url, _ in _rpm_repositories(host):
        if (minor, url) not in found:
            found.append((minor, url))
    return found


def _rpm_repositories(host: Host) -> list[tuple[str, MinorVersion, str, bool]]:
    """(id, minor, address, whether it excludes the Kubernetes packages) of each enabled
    `[section]` of the .repo files whose baseurl is pkgs.k8s.io-style, as dnf reads them."""
    from kubeupgrade.sandbox import releases
    found = []
    for path in _repo_files(host):
        sections: dict[str, dict[str, str]] = {}
        current: dict[str, str] | None = None
        for line in host.read_file(path).splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1].strip(), {})
            elif current is not None and "=" in line and not line.startswith(("#", ";")):
                key, _, value = line.partition("=")
                current[key.strip().lower()] = value.strip()
        for repo_id, options in sections.items():
            addresses = _addresses(options.get("baseurl", ""))
            if not addresses or options.get("enabled", "1").lower() in ("0", "false", "no"):
                continue
            excluded = (options.get("exclude", "") + " " + options.get("excludepkgs", "")).replace(",", " ").split()
            excludes = any(_matches(name, pattern) for name in releases.PACKAGES for pattern in excluded)
            found.append((repo_id, *addresses[0], excludes))
    return found


def _repository_id(host: Host) -> str:
    """The id dnf names the Kubernetes packages' repository by in what it prints."""
    repositories = _rpm_repositories(host)
    return repositories[0][0] if repositories else "kubernetes"


def _missing_keyring(host: Host, keyring: str | None) -> bool:
    """Whether a source's `signed-by` names a keyring file the host does not have."""
    return bool(keyring) and keyring.startswith("/") and not os.path.exists(host.file(keyring))


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _matches(name: str, pattern: str, *, prefix: bool = False) -> bool:
    """fnmatch's rule for a package version pattern (`prefix`: or a pattern followed by `*`);
    fnmatch itself only for a pattern that has a wildcard, which the upgrade never writes."""
    if not any(wildcard in pattern for wildcard in "*?["):
        return name == pattern or (prefix and name.startswith(pattern))
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern) or (prefix and fnmatch.fnmatchcase(name, pattern + "*"))


def _listed(host: Host) -> list[tuple[MinorVersion, str]]:
    """The repositories packages come from: what the last `apt-get update` fetched for apt,
    the repo files as they are for dnf (it refreshes from them)."""
    from kubeupgrade.model.versions import MinorVersion
    if host.family != "apt":
        return _configured(host)
    try:
        lists = quickjson.loads(host.read_file(APT_LISTS))
    except FileNotFoundError:
        return []
    fetched = lists.get("repositories", [lists] if lists.get("minor") else [])
    return [(MinorVersion(*map(int, repo["minor"].split("."))), str(repo.get("url") or "(none)"))
            for repo in fetched]


def _missing(host: Host) -> set[tuple[str, str | None]]:
    gone = set()
    for fault in host.faults.condition(host.node, FaultKind.MISSING_PACKAGE):
        name, _, version = fault.package.partition("=")
        gone.add((name, version or None))
    return gone


def repository(host: Host, name: str) -> list[tuple[KubeVersion, str]]:
    """(version, package string) pairs the repositories offer for `name`, newest first."""
    from kubeupgrade.sandbox import releases
    minors = {minor for minor, _ in _listed(host)}
    if not minors or name not in releases.PACKAGES:
        return []
    gone = _missing(host)
    if (name, None) in gone:
        return []
    offered = [(v, releases.package_version(v, host.family)) for minor in sorted(minors)
               for v in releases.releases(minor) if (name, v.plain) not in gone]
    return sorted(offered, key=lambda item: item[0], reverse=True)


def _source_url(host: Host, version: KubeVersion | None = None) -> str:
    """Where a listed version comes from (the first repository without one): the address apt
    fetched its lists from, the repo file's for dnf."""
    listed = _listed(host)
    for minor, url in listed:
        if version is None or minor == version.minor_version:
            return url
    return "(none)"


# -- shared state helpers ------------------------------------------------------------------
def _dpkg_lock(host: Host) -> None:
    if host.take_fault(FaultKind.DPKG_LOCK):
        raise host.fail(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 "
            "(unattended-upgr)\nN: Be aware that removing the lock file is not a solution and may "
            "break your system.\nE: Unable to acquire the dpkg frontend lock "
            "(/var/lib/dpkg/lock-frontend), is another process using it?", 100)


class _DpkgFrontendLock:
    """The real exclusive lock, so two package runs on one host cannot interleave."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.file: Any = None

    def __enter__(self) -> _DpkgFrontendLock:
        self.file = open(self.host.file("/var/lib/dpkg/lock-frontend"), "a")  # noqa: SIM115 - held for the block
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise self.host.fail(
                f"E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process "
                f"{os.getppid()} (apt-get)\nE: Unable to acquire the dpkg frontend lock "
                "(/var/lib/dpkg/lock-frontend), is another process using it?", 100) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()


# A package's configuration in the sandbox's dpkg state: True (configured), False (unpacked,
# not configured) or this, its maintainer script cut off half-way. dpkg names each its own way
# in the status (`dpkg_query`), and `dpkg --configure -a` finishes both.
HALF_CONFIGURED = "half-configured"


def _interrupted(state: dict[str, Any]) -> list[str]:
    return [name for name, ok in state.get("configured", {}).items() if ok is not True]


def _split_options(args: list[str], with_values: tuple[str, ...] = ("-o",)) -> tuple[set[str], list[str]]:
    flags, words, skip = set(), [], False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in with_values:
            skip = True
            flags.add(f"{arg}={args[index + 1] if index + 1 < len(args) else ''}")
        elif arg.startswith("-"):
            flags.add(arg)
        else:
            words.append(arg)
    return flags, words


# -- apt -----------------------------------------------------------------------------------
def apt_get(host: Host, args: list[str]) -> int:
    flags, words = _split_options(args)
    if not words:
        raise host.fail("E: No command given", 100)
    command, targets = words[0], words[1:]
    if command == "update":
        return _apt_update(host)
    if command == "install":
        return _apt_install(host, flags, targets)
    raise host.fail(f"E: Invalid operation {command}", 100)


def _apt_update(host: Host) -> int:
    from kubeupgrade.sandbox import releases
    from kubeupgrade.sandbox.hostbin import apt_sources
    _dpkg_lock(host)
    try:
        sources, notices = apt_sources.read_sources(host)
    except apt_sources.SourcesError as error:
        raise host.fail(str(error), 100) from None
    host.sleep("apt-get update")
    fetched, lines, errors = [], [], []
    seen = set()
    for source in sources:
        for minor, url in _addresses(source.uri):
            if (source.uri, source.suite) in seen:
                continue
            seen.add((source.uri, source.suite))
            number = len(lines) + 1
            if _missing_keyring(host, source.signed_by):
                # apt cannot check the Release file's signature: the repository is refused
                problem = ("The following signatures couldn't be verified because the public key "
                           "is not available: NO_PUBKEY 234654DA9A296436")
                lines.append(f"Err:{number} {url.rstrip('/')}  InRelease\n  {problem}")
                errors += [f"W: GPG error: {url.rstrip('/')}  InRelease: {problem}",
                           f"E: The repository '{url}  InRelease' is not signed."]
            elif not releases.releases(minor):
                lines.append(f"Err:{number} {url.rstrip('/')}  InRelease\n  404  Not Found [IP: 18.67.240.98 443]")
                errors.append(f"E: The repository '{url}  InRelease' does not have a Release file.")
            else:
                lines.append(f"Hit:{number} {url.rstrip('/')}  InRelease")
                fetched.append({"minor": minor.plain, "url": url})
    host.out("\n".join(lines + ["Reading package lists... Done"]))
    # apt keeps the lists of what it could fetch and drops those of sources no longer configured
    host.write_file(APT_LISTS, quickjson.dumps({"repositories": fetched}))
    for notice in notices + apt_sources.duplicates(sources):
        host.err(notice)
    if errors:
        raise host.fail("\n".join(errors + [
            "N: Updating from such a repository can't be done securely, and is therefore "
            "disabled by default.",
            "N: See apt-secure(8) manpage for repository creation and user configuration details."]), 100)
    return 0


def _older(candidate: str, installed: str) -> bool:
    """Whether package version `candidate` sorts below `installed` (Kubernetes versions and
    numeric revisions, which is all the repository holds)."""
    def key(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        upstream, _, revision = text.partition("-")
        return (tuple(int(p) for p in upstream.split(".") if p.isdigit()),
                tuple(int(p) for p in revision.split(".") if p.isdigit()))
    return key(candidate) < key(installed)


def _apt_install(host: Host, flags: set[str], targets: list[str]) -> int:
    _dpkg_lock(host)
    assume_yes = bool(flags & {"-y", "--yes", "--assume-yes", "-qy", "-yq"})
    download_only = bool(flags & {"-d", "--download-only"})
    with _DpkgFrontendLock(host):
        state = host.packages()
        if _interrupted(state):  # apt locks dpkg first, also to download only
            raise host.fail("E: dpkg was interrupted, you must manually run 'dpkg --configure -a' "
                            "to correct the problem.", 100)
        host.out("Reading package lists...\nBuilding dependency tree...\nReading state information...")
        wanted: dict[str, str] = {}
        for target in targets:
            name, _, version = target.partition("=")
            offered = repository(host, name)
            if not offered:
                raise host.fail(f"E: Unable to locate package {name}", 100)
            if version:
                matching = [pkg for _, pkg in offered if _matches(pkg, version)]
                if not matching:
                    raise host.fail(f"E: Version '{version}' for '{name}' was not found", 100)
                wanted[name] = matching[0]
            else:
                wanted[name] = offered[0][1]
        changes = {n: v for n, v in wanted.items() if state["installed"].get(n) != v}
        for name, version in wanted.items():
            if name not in changes:
                host.out(f"{name} is already the newest version ({version}).")
        # The same checks and lists with --download-only: apt skips only its essential-package
        # check then (apt-private/private-install.cc, InstallPackages)
        held = [n for n in changes if n in state["held"]]
        if held:
            host.out("The following held packages will be changed:\n  " + " ".join(held))
        downgraded = sorted(n for n, v in changes.items()
                            if n in state["installed"] and _older(v, state["installed"][n]))
        upgraded = sorted(set(changes) - set(downgraded))
        if upgraded:
            host.out("The following packages will be upgraded:\n  " + " ".join(upgraded))
        if downgraded:
            host.out("The following packages will be DOWNGRADED:\n  " + " ".join(downgraded))
        host.out(f"{len(upgraded)} upgraded, 0 newly installed, {len(downgraded)} downgraded, 0 to remove "
                 "and 0 not upgraded." if downgraded else
                 f"{len(changes)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        if held and "--allow-change-held-packages" not in flags:
            if assume_yes:
                raise host.fail("E: Held packages were changed and -y was used without "
                                "--allow-change-held-packages.", 100)
        if downgraded and assume_yes and "--allow-downgrades" not in flags:
            raise host.fail("E: Packages were downgraded and -y was used without --allow-downgrades.", 100)
        if changes and not assume_yes:
            host.out("Do you want to continue? [Y/n] Abort.")
            raise ExitCommand(1)
        to_fetch = [(n, v) for n, v in changes.items() if f"{n}={v}" not in state["cache"]]
        if to_fetch:
            size = sum(_SIZES_MB[n] for n, _ in to_fetch)
            host.out(f"Need to get {size:.1f} MB of archives.")
            for index, (name, version) in enumerate(to_fetch, start=1):
                host.out(f"Get:{index} {_source_url(host).rstrip('/')}  {name} {version} [{_SIZES_MB[name]} MB]")
            host.sleep("package download", len(to_fetch) / 2)
            host.out(f"Fetched {size:.1f} MB in 2s")
            with host.locked_state(PACKAGE_STATE) as current:
                current["cache"] = sorted(set(current["cache"]) | {f"{n}={v}" for n, v in to_fetch})
        if download_only:
            host.out("Download complete and in download only mode")
            return 0
        for name, version in sorted(changes.items()):
            host.out(f"Preparing to unpack .../{name}_{version}_amd64.deb ...\n"
                     f"Unpacking {name} ({version}) over ({state['installed'].get(name)}) ...")
            with host.locked_state(PACKAGE_STATE) as current:
                current["installed"][name] = version
                current["configured"][name] = False
            _on_package_change(host, name)
        host.sleep("package install", 0.5)
        host.maybe_crash("after unpacking, before configuring")
        host.sleep("package install", 0.5)
        _configure_all(host)
    return 0


def _configure_all(host: Host) -> None:
    for name in sorted(_interrupted(host.packages())):
        with host.locked_state(PACKAGE_STATE) as current:
            host.out(f"Setting up {name} ({current['installed'][name]}) ...")
            current["configured"][name] = HALF_CONFIGURED
        host.maybe_crash(f"configuring {name}, its maintainer script running")
        with host.locked_state(PACKAGE_STATE) as current:
            current["configured"][name] = True


def _on_package_change(host: Host, name: str) -> None:
    if name == "kubelet":
        # The package ships a new unit and binary; systemd notices on the next daemon-reload,
        # and the running kubelet keeps its version until restarted.
        with host.locked_state(KUBELET_STATE) as kubelet:
            kubelet["unit_changed"] = True


def dpkg(host: Host, args: list[str]) -> int:
    if args[:2] == ["--configure", "-a"]:
        with _DpkgFrontendLock(host):
            _configure_all(host)
        return 0
    raise host.fail(f"dpkg: error: unsupported arguments {' '.join(args)} (sandbox supports "
                    "--configure -a)", 2)


def apt_mark(host: Host, args: list[str]) -> int:
    if not args:
        raise host.fail("E: No command given", 100)
    command, names = args[0], [a for a in args[1:] if not a.startswith("-")]
    if command == "showhold":
        for name in sorted(host.packages()["held"]):
            host.out(name)
        return 0
    if command not in ("hold", "unhold"):
        raise host.fail(f"E: Invalid operation {command}", 100)
    _dpkg_lock(host)
    with host.locked_state(PACKAGE_STATE) as state:
        for name in names:
            if name not in state["installed"]:
                raise host.fail(f"E: Unable to locate package {name}", 100)
            held = name in state["held"]
            if command == "hold":
                host.out(f"{name} was already set on hold." if held else f"{name} set on hold.")
                if not held:
                    state["held"].append(name)
            else:
                host.out(f"Canceled hold on {name}." if held else f"{name} was already not on hold.")
                if held:
                    state["held"].remove(name)
    return 0


def apt_cache(host: Host, args: list[str]) -> int:
    if len(args) < 2 or args[0] not in ("madison", "policy"):
        raise host.fail("E: sandbox apt-cache supports: madison PKG..., policy PKG", 100)
    if args[0] == "madison":  # each package's rows in turn; one it cannot find is said, not fatal
        for name in args[1:]:
            listed = repository(host, name)
            if not listed:
                host.err(f"N: Unable to locate package {name}")
            for version, package in listed:
                host.out(f"{name:>10} | {package} | {_source_url(host, version).rstrip('/')}  Packages")
        return 0
    name = args[1]
    offered = repository(host, name)
    installed = host.packages()["installed"].get(name)
    host.out(f"{name}:\n  Installed: {installed or '(none)'}\n"
             f"  Candidate: {offered[0][1] if offered else '(none)'}\n  Version table:")
    listed = {package for _, package in offered}
    for version, package in offered:
        marker = " ***" if package == installed else "    "
        host.out(f"{marker} {package} 500\n        500 {_source_url(host, version).rstrip('/')}  Packages")
        if package == installed:
            host.out("        100 /var/lib/dpkg/status")
    if installed and installed not in listed:
        host.out(f" *** {installed} 100\n        100 /var/lib/dpkg/status")
    return 0


def dpkg_query(host: Host, args: list[str]) -> int:
    fmt, names = "${Package}\t${Version}\n", []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-f", "--showformat"):
            fmt, index = args[index + 1], index + 1
        elif arg.startswith("--showformat="):
            fmt = arg.split("=", 1)[1]
        elif arg.startswith("-f") and len(arg) > 2:
            fmt = arg[2:]
        elif not arg.startswith("-"):
            names.append(arg)
        index += 1
    state = host.packages()
    code = 0
    for name in names:
        version = state["installed"].get(name)
        if version is None:
            host.err(f"dpkg-query: no packages found matching {name}")
            code = 1
            continue
        configured = state["configured"].get(name, True)
        status = ("install ok installed" if configured is True
                  else "install ok half-configured" if configured == HALF_CONFIGURED else "install ok unpacked")
        text = (fmt.replace("${Package}", name).replace("${Version}", version)
                .replace("${Status}", status).replace("\\n", "\n").replace("\\t", "\t"))
        host.out(text, end="")  # no newline of its own: the format says where lines end
    return code


# -- dnf / yum / rpm -------------------------------------------------------------------------
# Which tool answers as `dnf` and `yum`: dnf 5 where the node says so (Fedora 41 and later), yum 3
# on the "yum" family (RHEL and CentOS 7), dnf 4 elsewhere.
def _rpm_tool(host: Host) -> str:
    if host.family == "yum":
        return "yum3"
    return "dnf5" if host.node_spec.get("package_manager") == "dnf5" else "dnf4"


_VERSION_TEXT = {
    "dnf4": "4.14.0\n  Installed: dnf-0:4.14.0-17.el9.noarch at Tue 08 Oct 2024 09:14:02 GMT\n"
            "  Built    : Rocky Linux Build System (Peridot) <releng@rockylinux.org> at Fri 16 Aug 2024 11:20:41 GMT",
    "dnf5": "dnf5 version 5.2.13.1\ndnf5 plugin API version 2.1\nlibdnf5 version 5.2.13.1\n"
            "libdnf5 plugin API version 2.1",
    "yum3": "3.4.3\n  Installed: rpm-4.11.3-48.el7_9.x86_64 at 2024-06-30 10:02\n"
            "  Built    : CentOS BuildSystem <http://bugs.centos.org> at 2021-11-24 16:33",
}
def _excludes_lifted(host: Host, tool: str, args: list[str]) -> bool:
    """Whether this run lifts the exclusion of every repository that excludes the Kubernetes
    packages: by id, or all of them ("all", "*"); "main" lifts only dnf.conf's own. yum 3 and
    dnf 4 take `--disableexcludes` (repeated, or dnf 4's comma list), dnf 4 and 5 the option."""
    lifted: set[str] = set()
    joined = [f"--setopt={args[i + 1]}" if arg == "--setopt" and i + 1 < len(args) else arg
              for i, arg in enumerate(args)]
    for arg in joined:
        if arg.startswith("--disableexcludes=") and tool != "dnf5":
            value = arg.removeprefix("--disableexcludes=")
        elif arg.startswith("--setopt=disable_excludes=") and tool != "yum3":
            value = arg.removeprefix("--setopt=disable_excludes=")
        else:
            continue
        lifted |= {v.strip() for v in value.split(",") if v.strip()} if tool != "yum3" else {value.strip()}
    if lifted & {"all", "*"}:
        return True
    return all(repo_id in lifted for repo_id, _, _, excludes in _rpm_repositories(host) if excludes)


def dnf(host: Host, args: list[str]) -> int:
    tool = _rpm_tool(host)
    flags, words = _split_options(args, with_values=("--setopt",))
    if tool == "dnf5":
        _refuse_dropped_options(host, args, words)
    if "--version" in flags:
        host.out(_VERSION_TEXT[tool])
        return 0
    if not words:
        raise host.fail("usage: dnf [options] COMMAND", 1)
    command, targets = words[0], words[1:]
    excludes_lifted = _excludes_lifted(host, tool, args)
    if command == "list":
        return _dnf_list(host, tool, flags, targets, excludes_lifted)
    if command == "install":
        return _dnf_install(host, tool, flags, targets, excludes_lifted)
    if command == "makecache":
        host.sleep("dnf makecache")
        if tool == "dnf5":
            host.out(_DNF5_LOADED)
        _dnf_metadata(host)
        host.out("Metadata cache created.")
        return 0
    raise host.fail(f"No such command: {command}. Please use /usr/bin/{host.argv[0]} --help", 1)


def _refuse_dropped_options(host: Host, args: list[str], words: list[str]) -> None:
    """dnf 5's argument parser knows no `--disableexcludes` (nor its alias `--disablepkgs`):
    the run stops before reading anything, naming the command the option came after."""
    for index, arg in enumerate(args):
        if arg.split("=", 1)[0] in ("--disableexcludes", "--disablepkgs"):
            command = words[0] if words and args.index(words[0]) < index else "dnf5"
            raise host.fail(f'Unknown argument "{arg}" for command "{command}". Add "--help" for '
                            "more information about the arguments.", 2)


_DNF5_LOADED = "Updating and loading repositories:\nRepositories loaded."


def _dnf_metadata(host: Host) -> None:
    """Loading repository metadata fails, as dnf does, when the configured minor has none."""
    from kubeupgrade.sandbox import releases
    missing = [url for minor, url in _configured(host) if not releases.releases(minor)]
    if not missing:
        return
    url = missing[0]
    host.out("Kubernetes                                      1.2 kB/s | 548  B     00:00")
    repo_id = _repository_id(host)
    raise host.fail(f"Errors during downloading metadata for repository '{repo_id}':\n"
                    f"  - Status code: 404 for {url}repodata/repomd.xml (IP: 18.67.240.98)\n"
                    f"Error: Failed to download metadata for repo '{repo_id}': Cannot download "
                    "repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried", 1)


def _metadata_check(seconds_ago: int) -> str:
    """dnf's first line: how long ago the cache was refreshed, and when (`%c` in the C locale)."""
    import datetime

    refreshed = time.time() - seconds_ago
    return (f"Last metadata expiration check: {datetime.timedelta(seconds=seconds_ago)} ago on "
            f"{time.strftime('%a %b %e %H:%M:%S %Y', time.localtime(refreshed))}.")


def _dnf_list(host: Host, tool: str, flags: set[str], targets: list[str], excludes_lifted: bool) -> int:
    from kubeupgrade.sandbox import releases
    host.sleep("dnf makecache", 0.3)
    _dnf_metadata(host)
    names = targets or list(releases.PACKAGES)
    host.out(_DNF5_LOADED if tool == "dnf5" else _metadata_check(3))
    state = host.packages()
    installed = [(n, state["installed"][n]) for n in names if n in state["installed"]]
    available = [] if not excludes_lifted else [
        (n, pkg) for n in names for _, pkg in sorted(repository(host, n), key=lambda i: i[0])]
    if "--showduplicates" not in flags:
        latest: dict[str, str] = {}
        for name, package in available:
            latest[name] = package
        available = list(latest.items())
    if not installed and not available:
        raise host.fail("No matching packages to list" if tool == "dnf5" else "Error: No matching Packages to list", 1)
    # dnf 5 names its sections in lower case, the repository an installed package came from
    # without dnf 4's "@", and leaves a blank line between the sections
    dnf5 = tool == "dnf5"
    if installed:
        host.out("Installed packages" if dnf5 else "Installed Packages")
        for name, package in installed:
            host.out(f"{name + '.x86_64':<32}{package:<34}{'' if dnf5 else '@'}{_repository_id(host)}")
    if available:
        if installed and dnf5:
            host.out()
        host.out("Available packages" if dnf5 else "Available Packages")
        for name, package in available:
            host.out(f"{name + '.x86_64':<32}{package:<34}{_repository_id(host)}")
    return 0


def _dnf_resolve(host: Host, spec: str) -> tuple[str, str] | None:
    from kubeupgrade.sandbox import releases
    for name in releases.PACKAGES:
        if spec == name:
            offered = repository(host, name)
            return (name, offered[0][1]) if offered else None
        if spec.startswith(name + "-"):
            pattern = spec[len(name) + 1:]
            for _, package in repository(host, name):
                if _matches(package, pattern, prefix=True):
                    return name, package
            return None
    return None


def _dnf_install(host: Host, tool: str, flags: set[str], targets: list[str], excludes_lifted: bool) -> int:
    from kubeupgrade.sandbox import releases
    if host.take_fault(FaultKind.DPKG_LOCK):
        raise host.fail("Error: Failed to obtain the transaction lock (logged in as: root).", 1)
    assume_yes = bool(flags & {"-y", "--assumeyes"})
    download_only = "--downloadonly" in flags
    host.sleep("dnf makecache", 0.3)
    dnf5 = tool == "dnf5"
    host.out(_DNF5_LOADED if dnf5 else _metadata_check(5))
    wanted: dict[str, str] = {}
    for spec in targets:
        resolved = _dnf_resolve(host, spec) if excludes_lifted else None
        if resolved is None:
            excluded = not excludes_lifted and any(spec.startswith(n) for n in releases.PACKAGES)
            if dnf5:
                raise host.fail("Failed to resolve the transaction:\n" + (
                    f"Argument '{spec}' matches only excluded packages." if excluded else
                    f"No match for argument: {spec}\nYou can try to add to command line:\n"
                    "  --skip-unavailable to skip unavailable packages"), 1)
            if excluded:
                host.err(f"All matches were filtered out by exclude filtering for argument: {spec}")
            else:
                host.err(f"No match for argument: {spec}")
            raise host.fail(f"Error: Unable to find a match: {spec}", 1)
        wanted[resolved[0]] = resolved[1]
    state = host.packages()
    changes = {n: v for n, v in wanted.items() if state["installed"].get(n) != v}
    for name, version in wanted.items():
        if name not in changes:
            host.out(f'Package "{name}-{version}.x86_64" is already installed.' if dnf5 else
                     f"Package {name}-{version}.x86_64 is already installed.")
    if not changes:
        host.out("Nothing to do." if dnf5 else "Dependencies resolved.\nNothing to do.\nComplete!")
        return 0
    host.out("Dependencies resolved.\n" + "=" * 60 + "\n Package   Arch     Version     Repository\n"
             + "=" * 60 + "\nUpgrading:")
    for name, version in sorted(changes.items()):
        host.out(f" {name:<10}x86_64   {version}   {_repository_id(host)}")
    if not assume_yes:
        host.out("Is this ok [y/N]: Operation aborted.")
        raise ExitCommand(1)
    fetch = [(n, v) for n, v in changes.items() if f"{n}={v}" not in state["cache"]]
    if fetch:
        host.out("Downloading Packages:")
        for name, version in fetch:
            host.out(f"({name}) {name}-{version}.x86_64.rpm   {_SIZES_MB[name]} MB/s | {_SIZES_MB[name]} MB")
        host.sleep("package download", len(fetch) / 2)
        with host.locked_state(PACKAGE_STATE) as current:
            current["cache"] = sorted(set(current["cache"]) | {f"{n}={v}" for n, v in fetch})
    if download_only:
        host.out("Complete!\nThe downloaded packages were saved in cache until the next successful transaction.")
        return 0
    host.out("Running transaction")
    for name, version in sorted(changes.items()):
        host.out(f"  Upgrading        : {name}-{version}.x86_64")
        with host.locked_state(PACKAGE_STATE) as current:
            # rpm installs every new version first and erases the old ones last: until then
            # the database holds both
            older = current["installed"].get(name)
            current["installed"][name] = version
            if older is not None:
                current.setdefault("duplicates", {})[name] = older
        _on_package_change(host, name)
    host.sleep("package install", 0.5)
    host.maybe_crash("in the rpm transaction, the older versions not yet erased")
    with host.locked_state(PACKAGE_STATE) as current:
        for name in sorted(changes):
            older = current.get("duplicates", {}).pop(name, None)
            if older is not None:
                host.out(f"  Cleanup          : {name}-{older}.x86_64")
    host.sleep("package install", 0.5)
    host.out("Upgraded:\n  " + "  ".join(f"{n}-{v}.x86_64" for n, v in sorted(changes.items())))
    host.out("Complete!")
    return 0


def rpm(host: Host, args: list[str]) -> int:
    names = [a for a in args if not a.startswith("-")]
    if "-e" in args or "--erase" in args:
        return _rpm_erase(host, names)
    if "-q" not in args and "--query" not in args:
        raise host.fail("rpm: sandbox supports -q PKG and -e PKG-VERSION-RELEASE", 1)
    state = host.packages()
    code = 0
    for name in names:
        version = state["installed"].get(name)
        if version is None:
            host.out(f"package {name} is not installed")
            code = 1
            continue
        older = state.get("duplicates", {}).get(name)
        if older is not None:  # a transaction cut off before its cleanup: both are in the database
            host.out(f"{name}-{older}.x86_64")
        host.out(f"{name}-{version}.x86_64")
    return code


def _rpm_erase(host: Host, specs: list[str]) -> int:
    """`rpm -e NAME-VERSION-RELEASE`: the sandbox erases the older entry of a package installed
    twice (the repair an interrupted transaction needs); the only installed version of a
    package it leaves alone, as the upgrade never removes one."""
    with host.locked_state(PACKAGE_STATE) as current:
        duplicates = current.setdefault("duplicates", {})
        for spec in specs:
            name = next((n for n, older in duplicates.items() if spec in (f"{n}-{older}", f"{n}-{older}.x86_64")),
                        None)
            if name is None:
                if any(spec.startswith(f"{n}-{v}") for n, v in current["installed"].items()):
                    raise host.fail("rpm: the sandbox erases only the older of two installed versions "
                                    "of a package", 1)
                raise host.fail(f"error: package {spec} is not installed", 1)
            del duplicates[name]
    return 0
