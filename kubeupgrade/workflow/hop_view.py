"""What the dispatcher asks of every node of a hop on every tick, kept from tick to tick.

At thousands of nodes, walking every entry's phase list several times per tick (for the
scheduling facts, for the tasks to watch and, among those, the running ones to check for
heartbeats) was most of a tick. The dispatcher's reads hand back the same entry objects for the
nodes that did not change (`Dispatcher._hop_entries`), so a view recomputes only the entries
that are new objects.
Entries are never changed in place: every change goes through the store on a fresh copy.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubeupgrade.workflow.decide import facts, first_open_phase
from kubeupgrade.workflow.schema import NodeEntry, PhaseRecord


class HopView:
    def __init__(self) -> None:
        self._seen: dict[str, NodeEntry] = {}  # node -> the entry object last derived from
        self.facts: dict[str, tuple[bool, bool]] = {}  # node -> (prepared, in flight)
        self.watched: dict[str, PhaseRecord] = {}  # node -> its first open phase, if it has a task and has not failed

    def refresh(self, entries: Mapping[str, NodeEntry]) -> None:
        """Bring the view up to `entries` (the hop as the dispatcher just read it)."""
        for name, entry in entries.items():
            if self._seen.get(name) is not entry:
                self._derive(name, entry)
        if len(self._seen) > len(entries):
            for name in [n for n in self._seen if n not in entries]:
                self._forget(name)

    def _derive(self, name: str, entry: NodeEntry) -> None:
        self._forget(name)
        phase = first_open_phase(entry)
        self._seen[name] = entry
        self.facts[name] = facts(entry)
        if phase is not None and phase["task_id"] and phase["state"] != "failed":
            self.watched[name] = phase

    def _forget(self, name: str) -> None:
        self._seen.pop(name, None)
        self.facts.pop(name, None)
        self.watched.pop(name, None)
