"""The sandbox's apt reads its sources as apt does.

Rules taken from apt (sources.list(5) and its source):
- `/etc/apt/sources.list` first, then the files of `/etc/apt/sources.list.d` in name order:
  one-line `.list` files and deb822 `.sources` files. Any other file there is skipped, silently
  when its name ends as `Dir::Ignore-Files-Silently` says (`~`, `.bak`, `.save`, `.orig`,
  `.disabled`, `.distUpgrade`, `.dpkg-*`, `.ucf-*`), with a notice otherwise.
- A one-line entry is `deb [options] URI suite [component...]`; `#` starts a comment.
- A deb822 stanza has `Types`, `URIs`, `Suites` (and `Components` unless the suite is flat, as
  pkgs.k8s.io's `/` is); `Enabled: no` turns it off; a `Signed-By` may be a keyring path or a
  key inline on continuation lines.
- An entry missing a field stops apt before it fetches anything ("Malformed entry"), as do two
  entries of one repository naming different keyrings ("Conflicting values ... Signed-By");
  the same repository twice with the same keyring is a warning.
"""

from __future__ import annotations

import os
from collections import namedtuple

from kubeupgrade.sandbox.hostbin.context import Host

# No `re`, typing or dataclasses here: `apt-get update` is a new process each time, and they would
# double what it imports (tests/integration/test_sandbox_hosts.py counts them).
SOURCES_LIST = "/etc/apt/sources.list"
SOURCES_DIR = "/etc/apt/sources.list.d"
_SILENT_SUFFIXES = ("~", ".disabled", ".bak", ".save", ".orig", ".distUpgrade")
_SILENT_FAMILIES = (".dpkg-", ".ucf-")  # followed by lower-case letters
INLINE_KEY = "(a key inline)"


# One repository a `deb` entry names: its address and suite, the keyring it is checked with
# (None: apt's trusted keys), and the entry it came from (`file:line` or `file:stanza`).
Source = namedtuple("Source", ("uri", "suite", "signed_by", "entry"))


class SourcesError(Exception):
    """apt cannot read its sources: what it prints, and nothing is fetched."""


def read_sources(host: Host) -> tuple[list[Source], list[str]]:
    """Every enabled `deb` repository, in apt's order, and the notices apt prints on the way."""
    sources: list[Source] = []
    notices: list[str] = []
    for path in _source_files(host, notices):
        try:
            text = host.read_file(path)
        except (FileNotFoundError, IsADirectoryError):
            continue
        sources += _deb822(text, path) if path.endswith(".sources") else _one_line(text, path)
    _check_options(sources)
    return sources, notices


def _source_files(host: Host, notices: list[str]) -> list[str]:
    files = [SOURCES_LIST]
    try:
        names = sorted(os.listdir(host.file(SOURCES_DIR)))
    except FileNotFoundError:
        return files
    for name in names:
        if name.endswith((".list", ".sources")):
            files.append(f"{SOURCES_DIR}/{name}")
        elif not _ignored_silently(name):
            notices.append(f"N: Ignoring file '{name}' in directory '{SOURCES_DIR}/' as it has an "
                           "invalid filename extension")
    return files


def _ignored_silently(name: str) -> bool:
    if name.endswith(_SILENT_SUFFIXES):
        return True
    for family in _SILENT_FAMILIES:
        tail = name.rpartition(family)[2] if family in name else ""
        if tail and tail.isascii() and tail.isalpha() and tail.islower():
            return True
    return False


def _one_line(text: str, path: str) -> list[Source]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        options: dict[str, str] = {}
        rest = rest.strip()
        if rest.startswith("["):
            inside, closed, rest = rest[1:].partition("]")
            if not closed:
                raise _malformed(number, "list", path, "option")
            for option in inside.split():
                key, _, value = option.partition("=")
                options[key.lower()] = value
        fields = rest.split()
        if len(fields) < 1:
            raise _malformed(number, "list", path, "URI")
        if len(fields) < 2:
            raise _malformed(number, "list", path, "Suite")
        if kind != "deb":
            continue  # deb-src and others fetch no packages
        if not fields[1].endswith("/") and len(fields) < 3:
            raise _malformed(number, "list", path, "Component")
        found.append(Source(fields[0], fields[1], options.get("signed-by") or None, f"{path}:{number}"))
    return found


def _deb822(text: str, path: str) -> list[Source]:
    found = []
    for number, stanza in enumerate(_stanzas(text), 1):
        if stanza.get("enabled", "yes").lower() in ("no", "false", "without"):
            continue
        for field in ("types", "uris", "suites"):
            if not stanza.get(field, "").split():
                raise _malformed(number, "sources", path, {"types": "Type", "uris": "URI",
                                                           "suites": "Suite"}[field])
        signed_by = stanza.get("signed-by")
        if signed_by and "\n" in signed_by:
            signed_by = INLINE_KEY
        if "deb" not in stanza["types"].split():
            continue
        for uri in stanza["uris"].split():
            for suite in stanza["suites"].split():
                if not suite.endswith("/") and not stanza.get("components", "").split():
                    raise _malformed(number, "sources", path, "Component")
                found.append(Source(uri, suite, signed_by or None, f"{path}:{number}"))
    return found


def _stanzas(text: str) -> list[dict[str, str]]:
    """deb822 paragraphs: `Field: value`, continuation lines indented, `#` lines comments."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    field = ""
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, field = {}, ""
        elif line[0] in " \t" and field:
            current[field] += "\n" + line.strip()
        else:
            name, _, value = line.partition(":")
            field = name.strip().lower()
            current[field] = value.strip()
    return stanzas


def _check_options(sources: list[Source]) -> None:
    keyring: dict[tuple[str, str], str | None] = {}
    for source in sources:
        key = (source.uri, source.suite)
        if key in keyring and keyring[key] != source.signed_by:
            raise SourcesError(
                f"E: Conflicting values set for option Signed-By regarding source {source.uri} "
                f"{source.suite}: {keyring[key] or ''} != {source.signed_by or ''}\n"
                "E: The list of sources could not be read.")
        keyring.setdefault(key, source.signed_by)


def duplicates(sources: list[Source]) -> list[str]:
    """apt's warning for each repository configured more than once (with the same keyring)."""
    first: dict[tuple[str, str], Source] = {}
    warnings = []
    for source in sources:
        key = (source.uri, source.suite)
        if key in first:
            warnings.append(f"W: Target Packages (Packages) is configured multiple times in "
                            f"{first[key].entry} and {source.entry}")
        else:
            first[key] = source
    return warnings


def _malformed(number: int, kind: str, path: str, field: str) -> SourcesError:
    return SourcesError(f"E: Malformed entry {number} in {kind} file {path} ({field})\n"
                        "E: The list of sources could not be read.")
