"""The API server's state as the JSON text of `state.json`, re-encoding only what changed.

Encoding the whole store was half the sandbox API server's CPU under a large campaign (every
object, every flush, for the handful a flush finds written). Every write gives its object a new
resourceVersion (Store._touch), so an object's text is kept with the version it was encoded at
and reused while the version is the same; the history only grows, so its entries are encoded
once. An object without a resourceVersion (as a sandbox is first written) is encoded every time.
"""

from __future__ import annotations

import json
from typing import Any

from kubeupgrade.sandbox.store import Store


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class SnapshotText:
    def __init__(self) -> None:
        # plural -> the store's key -> (resourceVersion, text) as last encoded
        self._objects: dict[str, dict[tuple[str, str], tuple[str, str]]] = {}
        self._history: list[str] = []

    def text(self, store: Store, history: list[dict[str, Any]]) -> str:
        """What json.loads reads back as {"resourceVersion", "objects", "history"}: the store's
        state and the history now. Call it under the store's lock."""
        plurals = []
        for plural, items in store.objects.items():
            known_texts = self._objects.get(plural, {})
            kept: dict[tuple[str, str], tuple[str, str]] = {}  # deleted objects are left out
            for key, obj in items.items():
                version = obj["metadata"].get("resourceVersion")
                known = known_texts.get(key)
                if known is None or version is None or known[0] != version:
                    known = (version, _encode(obj))
                kept[key] = known
            self._objects[plural] = kept
            plurals.append(f'{_encode(plural)}:[{",".join(text for _, text in kept.values())}]')
        if len(history) < len(self._history):  # not the list it was: start again
            self._history = []
        self._history += [_encode(entry) for entry in history[len(self._history):]]
        return (f'{{"resourceVersion":{int(store.resource_version)},"objects":{{{",".join(plurals)}}},'
                f'"history":[{",".join(self._history)}]}}')
