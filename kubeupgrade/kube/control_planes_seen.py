"""Whether the cluster shows a hop's control planes at its version: asked before any worker
changes, and answered from the cluster, not from the record.

The record says when a control plane's phases are done, and agents write the record: the root
of any node holds an agent's broker credential and could mark them done while `kubeadm upgrade
apply` still runs, or before it ran at all. The dispatcher then asks the cluster itself: each
control plane of the hop runs its kubelet, kube-apiserver, kube-controller-manager and
kube-scheduler at the version, Ready, as its Node and its mirror pods show
(discovery.control_plane_behind), and no worker changes until it does. The question is
answered in a thread of its own (`ControlPlaneWatch`), so a slow API server never holds the
dispatcher's tick; the answer wakes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubeupgrade.model.versions import KubeVersion

log = logging.getLogger("kubeupgrade")

ASK_AGAIN_SECONDS = 2.0  # while a question stands, it is read again this often


@dataclass(frozen=True)
class Question:
    key: str  # which campaign's hop asks
    nodes: tuple[str, ...]  # the hop's control planes
    version: KubeVersion


@dataclass(frozen=True)
class ControlPlanesSeen:
    """One answer: what each control plane still lacks (none: all at the version, Ready), or
    why the cluster could not be read."""

    question: Question
    read_at: float  # time.monotonic() when the read began
    behind: Mapping[str, tuple[str, ...]]
    error: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.error is None and not any(self.behind.values())

    def wording(self) -> str:
        """What holds the workers back, for the campaign's events."""
        tag = self.question.version.tag
        if self.error is not None:
            return (f"no worker changes until the cluster shows every control plane at {tag}; "
                    f"reading it failed: {self.error}")
        lacking = "; ".join(f"{node}: {', '.join(what)}" for node, what in self.behind.items() if what)
        return (f"the record says every control plane is done, but the cluster shows {lacking}; "
                f"no worker changes until each runs its kubelet, kube-apiserver, "
                f"kube-controller-manager and kube-scheduler at {tag}, Ready")


class ControlPlaneWatch:
    """Answers the dispatcher's questions (`ask`) in its own thread (`run_forever`), with
    `behind(node, version)` (discovery.control_plane_behind); `answered` is called after each
    answer (the controller wakes the dispatcher with it). A question not asked for FORGET_SECONDS
    is dropped; one answered "all there" is not read again."""

    FORGET_SECONDS = 30.0

    def __init__(self, behind: Callable[[str, KubeVersion], list[str]],
                 answered: Callable[[], None] = lambda: None, every: float = ASK_AGAIN_SECONDS) -> None:
        self._behind = behind
        self._answered = answered
        self._every = every
        self._lock = threading.Lock()
        # key -> (the question, when first asked, when last asked), and the latest answer
        self._questions: dict[str, tuple[Question, float, float]] = {}
        self._answers: dict[str, ControlPlanesSeen] = {}
        self._wake = threading.Event()

    def ask(self, key: str, nodes: tuple[str, ...], version: KubeVersion) -> ControlPlanesSeen | None:
        """The latest answer to this question read since it was first asked; None until there
        is one (it is then read at once, and again every few seconds until all are there)."""
        question = Question(key, tuple(nodes), version)
        now = time.monotonic()
        with self._lock:
            standing = self._questions.get(key)
            if standing is None or standing[0] != question:
                standing = (question, now, now)
                self._answers.pop(key, None)
                self._wake.set()
            self._questions[key] = (question, standing[1], now)
            answer = self._answers.get(key)
        return answer if answer is not None and answer.read_at >= standing[1] else None

    def answer_once(self) -> None:
        """Read the cluster for each standing question whose answer is due."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (_, _, last) in self._questions.items() if now - last > self.FORGET_SECONDS]:
                del self._questions[key]
                self._answers.pop(key, None)
            due = [question for key, (question, _, _) in self._questions.items()
                   if (answer := self._answers.get(key)) is None
                   or (not answer.confirmed and now - answer.read_at >= self._every)]
        for question in due:
            began = time.monotonic()
            try:
                seen = ControlPlanesSeen(question, began, {node: tuple(self._behind(node, question.version))
                                                           for node in question.nodes})
            except Exception as error:  # noqa: BLE001 - said in the campaign's events; asked again
                seen = ControlPlanesSeen(question, began, {}, f"{type(error).__name__}: {error}".splitlines()[0])
                log.warning("reading the control planes' components failed: %s", seen.error)
            with self._lock:
                standing = self._questions.get(question.key)
                if standing is not None and standing[0] == question:
                    self._answers[question.key] = seen
            self._answered()

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.clear()  # before the read: a question asked during it wakes the next
            self.answer_once()
            self._wake.wait(timeout=0.5)
