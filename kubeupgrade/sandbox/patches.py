"""The three PATCH flavours the API server accepts: JSON merge patch (RFC 7386), strategic merge
patch (merge patch plus keyed list merging for the lists upgrades touch) and JSON patch
(RFC 6902). Pure: they return new objects and raise PatchError on bad input."""

from __future__ import annotations

import copy
from typing import Any

# Lists merged by a key in strategic merge patch (the keys Kubernetes declares for them).
_MERGE_KEYS = {"conditions": "type", "containers": "name", "volumes": "name", "addresses": "type",
               "ownerReferences": "uid", "tolerations": "key"}


class PatchError(ValueError):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, list) and isinstance(target, list) and field in _MERGE_KEYS:
        key = _MERGE_KEYS[field]
        merged = copy.deepcopy(target)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise PatchError(f"list {field} items need the merge key {key!r}")
            if item.get("$patch") == "delete":
                merged = [m for m in merged if m.get(key) != item[key]]
                continue
            for index, existing in enumerate(merged):
                if existing.get(key) == item[key]:
                    merged[index] = strategic_merge_patch(existing, item)
                    break
            else:
                merged.append(copy.deepcopy(item))
        return merged
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value, key)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: Any, parts: list[str]) -> tuple[Any, str]:
    node = document
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return node, parts[-1]


def _get(document: Any, parts: list[str]) -> Any:
    node = document
    for part in parts:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"path /{'/'.join(parts)} does not exist") from None
    return node


def json_patch(document: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        op, path = operation.get("op"), _pointer(operation.get("path", ""))
        if op == "test":
            if _get(result, path) != operation.get("value"):
                raise PatchError(f"test operation failed at {operation.get('path')}")
            continue
        if op in ("move", "copy"):
            value = copy.deepcopy(_get(result, _pointer(operation.get("from", ""))))
            if op == "move":
                result = json_patch(result, [{"op": "remove", "path": operation["from"]}])
            result = json_patch(result, [{"op": "add", "path": operation["path"], "value": value}])
            continue
        if not path:
            raise PatchError("cannot patch the document root")
        parent, last = _parent(result, path)
        if op == "add":
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), operation.get("value"))
            else:
                parent[last] = operation.get("value")
        elif op == "replace":
            _get(result, path)
            if isinstance(parent, list):
                parent[int(last)] = operation.get("value")
            else:
                parent[last] = operation.get("value")
        elif op == "remove":
            _get(result, path)
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return result
