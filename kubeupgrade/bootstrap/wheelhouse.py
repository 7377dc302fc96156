"""The wheelhouse `kubeupgrade bootstrap agents` carries to the hosts, so nodes install offline
and only what was checked: for each target Python, a directory `py3.X/` holding the
kubeupgrade wheel and every wheel of the agent's dependencies (binary only, for the target
platform), and a `requirements.txt` naming each with its SHA-256 for `pip --require-hashes`.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kubeupgrade.errors import InvalidInput, RuntimeFailure

DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12")
DEFAULT_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
REQUIREMENTS = "requirements.txt"
_PYTHON = re.compile(r"^3\.(\d{1,2})$")


@dataclass(frozen=True)
class Wheelhouse:
    root: Path

    def for_python(self, version: str) -> Path:
        """The directory for Python `version` ("3.9"), or InvalidInput naming what there is."""
        directory = self.root / f"py{version}"
        if not (directory / REQUIREMENTS).is_file():
            there = sorted(p.name.removeprefix("py") for p in self.root.glob("py3.*") if (p / REQUIREMENTS).is_file())
            raise InvalidInput(f"{self.root}: no wheels for Python {version} (it has: "
                               f"{', '.join(there) or 'none'}); rebuild it with "
                               f"`kubeupgrade bootstrap wheelhouse --python {version}`")
        return directory


def requirements_text(directory: Path, chosen: dict[str, str]) -> str:
    """One line per chosen distribution: name==version and the hash of each of its wheels."""
    hashes: dict[str, list[str]] = {name: [] for name in chosen}
    for path, (name, version, _) in sorted(_wheels(directory).items()):
        if chosen.get(name) == version:
            hashes[name].append(hashlib.sha256(path.read_bytes()).hexdigest())
    lines = [f"{name}=={chosen[name]} " + " ".join(f"--hash=sha256:{h}" for h in hashes[name])
             for name in sorted(chosen)]
    return "\n".join(lines) + "\n"


def build(root: Path, source: Path, pythons: tuple[str, ...] = DEFAULT_PYTHONS,
          platforms: tuple[str, ...] = DEFAULT_PLATFORMS) -> Wheelhouse:
    """Build the kubeupgrade wheel from `source` and download the agent's dependencies for each
    Python in `pythons` (needs PyPI, or pip's configured index, here; not on the hosts)."""
    for version in pythons:
        if not _PYTHON.match(version) or int(version.split(".")[1]) < 9:
            raise InvalidInput(f"--python {version}: the agent needs Python 3.9 or newer (e.g. 3.9)")
    root.mkdir(parents=True, exist_ok=True)
    built = root / "kubeupgrade"
    _pip(["wheel", "--quiet", "--no-deps", "--wheel-dir", str(built), str(source)], "build the kubeupgrade wheel")
    made = sorted(built.glob("kubeupgrade-*.whl"))
    if not made:
        raise RuntimeFailure(f"no kubeupgrade wheel was built from {source}")
    ours = made[-1]
    for version in pythons:
        directory = root / f"py{version}"
        directory.mkdir(exist_ok=True)
        for stale in directory.glob("*.whl"):
            stale.unlink()
        (directory / ours.name).write_bytes(ours.read_bytes())
        flags = ["download", "--quiet", "--only-binary=:all:", "--python-version", version,
                 "--implementation", "cp", *[f for p in platforms for f in ("--platform", p)],
                 "--dest", str(directory)]
        wanted = [str(directory / ours.name)]
        # pip evaluates dependencies' markers for the Python running it, not the target one
        # (`exceptiongroup; python_version < "3.11"` is skipped from 3.11): resolve for the
        # target here, download what it still lacks, until nothing is missing.
        for _ in range(10):
            _pip([*flags, *wanted], f"download the agent's dependencies for Python {version}")
            chosen, wanted = resolve(directory, version)
            if not wanted:
                break
        else:
            raise RuntimeFailure(f"Python {version}: still missing {', '.join(wanted)} after 10 rounds")
        # What the target does not use is not carried (pip fetched it for the Python running it).
        for path, (name, version, _) in _wheels(directory).items():
            if chosen.get(name) != version:
                path.unlink()
        (directory / REQUIREMENTS).write_text(requirements_text(directory, chosen))
    return Wheelhouse(root)


def target_environment(version: str) -> dict[str, str]:
    """Marker variables of a CPython `version` on Linux."""
    return {"python_version": version, "python_full_version": f"{version}.0", "os_name": "posix",
            "sys_platform": "linux", "platform_system": "Linux", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "platform_machine": "x86_64",
            "implementation_version": f"{version}.0", "platform_release": "", "platform_version": ""}


def resolve(directory: Path, version: str, root: str = "kubeupgrade") -> tuple[dict[str, str], list[str]]:
    """What installing `root` on CPython `version` takes from the wheels in `directory`:
    (name -> the newest version there that every requirement on it allows, the requirements
    no wheel there meets). Markers are evaluated for the target, with the extras asked."""
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    index: dict[str, dict[str, list[Requirement]]] = {}
    for name, release, requires in _wheels(directory).values():
        index.setdefault(name, {})[release] = [Requirement(r) for r in requires]
    environment = target_environment(version)
    specifiers: dict[str, SpecifierSet] = {root: SpecifierSet()}
    extras: dict[str, set[str]] = {root: set()}
    while True:
        chosen: dict[str, str] = {}
        missing: list[str] = []
        changed = False
        for name in list(specifiers):
            fitting = [v for v in index.get(name, {}) if specifiers[name].contains(v, prereleases=True)]
            if not fitting:
                missing.append(f"{name}{specifiers[name]}")
                continue
            chosen[name] = max(fitting, key=Version)
            for requirement in index[name][chosen[name]]:
                asked = ["", *sorted(extras[name])]
                if requirement.marker is not None and not any(
                        requirement.marker.evaluate({**environment, "extra": extra}) for extra in asked):
                    continue
                needed = canonicalize_name(requirement.name)
                combined = specifiers.get(needed, SpecifierSet()) & requirement.specifier
                if needed not in specifiers or set(combined) != set(specifiers[needed]) \
                        or not requirement.extras <= extras[needed]:
                    specifiers[needed] = combined
                    extras[needed] = extras.get(needed, set()) | set(requirement.extras)
                    changed = True
        if not changed:
            return chosen, sorted(missing)


def _wheels(directory: Path) -> dict[Path, tuple[str, str, list[str]]]:
    """Each wheel in `directory` as its metadata says: (name, version, Requires-Dist)."""
    import zipfile
    from email.parser import Parser

    from packaging.utils import canonicalize_name

    found = {}
    for path in directory.glob("*.whl"):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            message = Parser().parsestr(archive.read(name).decode("utf-8", "replace"))
        found[path] = (canonicalize_name(message["Name"]), str(message["Version"]),
                       message.get_all("Requires-Dist") or [])
    return found


def _pip(arguments: list[str], what: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *arguments], capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeFailure(f"could not {what}: {last}")
