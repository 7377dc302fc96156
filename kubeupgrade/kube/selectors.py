"""Kubernetes label and field selectors, parsed into predicates. Pure.

Label selectors: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`.
Field selectors: `path=v`, `path==v`, `path!=v` over dotted paths such as `spec.nodeName`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_SET_TERM = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")


class SelectorError(ValueError):
    pass


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def label_selector(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text):
        match = _SET_TERM.match(term)
        if match:
            values = {v.strip() for v in match["values"].split(",") if v.strip()}
            key, negate = match["key"], match["op"] == "notin"
            checks.append(
                lambda labels, k=key, vs=values, n=negate: (labels.get(k) in vs) != n
            )
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            key = term[1:].strip()
            checks.append(lambda labels, k=key: k not in labels)
        elif re.match(r"^[A-Za-z0-9./_-]+$", term):
            checks.append(lambda labels, k=term: k in labels)
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return lambda obj: all(check(obj.get("metadata", {}).get("labels") or {}) for check in checks)


def field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _field_terms(text: str) -> list[tuple[str, bool, str]]:
    """(path, equal, value) for each term of field selector `text`: `path=v` and `path==v` are
    equal, `path!=v` is not; anything else is a SelectorError."""
    terms = []
    for term in _split_terms(text):
        if "!=" in term:
            path, value = term.split("!=", 1)
            terms.append((path.strip(), False, value.strip()))
        elif "=" in term:
            path, value = term.replace("==", "=").split("=", 1)
            terms.append((path.strip(), True, value.strip()))
        else:
            raise SelectorError(f"invalid field selector: {term!r}")
    return terms


def required_value(text: str | None, path: str) -> str | None:
    """The value field selector `text` requires `path` to equal, or None if no term does."""
    for field, equal, value in _field_terms(text or ""):
        if equal and field == path:
            return value
    return None


def field_selector(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    checks = [lambda obj, p=path, e=equal, v=value: (field_value(obj, p) == v) == e
              for path, equal, value in _field_terms(text)]
    return lambda obj: all(check(obj) for check in checks)
