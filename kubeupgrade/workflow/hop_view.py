"""What the dispatcher asks of every node of a hop on every tick, kept from tick to tick.

At thousands of nodes, walking every entry's phase list several times per tick (for the
scheduling facts, for the tasks to watch and, among those, the running ones to check for
heartbeats) was most of a tick. The dispatcher's reads hand back the same entry objects for the
nodes that did not change (`Dispatcher._hop_entries`), so a view recomputes only the entries
that are new objects.
Entries are never changed in place: every change goes through the store on a fresh copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kubeupgrade.workflow.decide import WorkerFacts, WorkerIndex, first_open_phase, worker_facts
from kubeupgrade.workflow.schema import NodeEntry, PhaseRecord


class HopView:
    def __init__(self) -> None:
        self._seen: dict[str, NodeEntry] = {}  # node -> the entry object last derived from
        self.facts: dict[str, WorkerFacts] = {}  # node -> what decide_workers asks of it
        self.watched: dict[str, PhaseRecord] = {}  # node -> its first open phase, if it has a task and has not failed
        self.failed: set[str] = set()  # nodes whose entry is failed
        self._workers: WorkerIndex | None = None  # see workers_index
        self._read: Mapping[str, NodeEntry] | None = None  # the mapping last refreshed from
        self.changed: list[str] = []  # the nodes whose entry that refresh found new or changed

    def refresh(self, entries: Mapping[str, NodeEntry]) -> None:
        """Bring the view up to `entries` (the hop as the dispatcher just read it). A tick asks
        the view several times of the one mapping it read: after the first, nothing to do."""
        if entries is self._read:
            return
        self.changed = [name for name, entry in entries.items() if self._seen.get(name) is not entry]
        for name in self.changed:
            self._derive(name, entries[name])
        if len(self._seen) > len(entries):
            for name in [n for n in self._seen if n not in entries]:
                self._forget(name)
        self._read = entries

    def workers_index(self, order: Sequence[str]) -> WorkerIndex:
        """The workers in `order` (the hop's worker order) indexed for decide_workers, built on
        first use (the worker stage) and from then on kept up to date with the view."""
        if self._workers is None or (self._workers.order is not order and self._workers.order != tuple(order)):
            self._workers = WorkerIndex(order)
            for name, known in self.facts.items():
                self._workers.put(name, known)
        return self._workers

    def _derive(self, name: str, entry: NodeEntry) -> None:
        self._forget(name)
        phase = first_open_phase(entry)
        self.facts[name] = known = worker_facts(entry)
        if self._workers is not None:
            self._workers.put(name, known)
        if phase is not None and phase["task_id"] and phase["state"] != "failed":
            self.watched[name] = phase
        if entry["state"] == "failed":
            self.failed.add(name)
        self._seen[name] = entry  # last: an entry that cannot be read is derived again next time

    def _forget(self, name: str) -> None:
        self._seen.pop(name, None)
        self.facts.pop(name, None)
        self.watched.pop(name, None)
        self.failed.discard(name)
        if self._workers is not None:
            self._workers.drop(name)
