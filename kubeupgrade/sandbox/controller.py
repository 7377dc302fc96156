"""The simulated control loops inside the sandbox API server process.

- kubelets: each node's host state (`var/lib/sandbox/kubelet.json`, static pod manifests) is read
  when the host signals news (`events/<node>`); a restarted kubelet makes its node NotReady, then
  Ready at the running version after a delay (unless a never-ready fault holds); static pod
  manifests become mirror pods whose images show the running versions;
- ReplicaSets and DaemonSets: evicted pods come back on another schedulable node after a delay;
  DaemonSet pods stay on every node; Deployment/DaemonSet image changes reach their pods;
- node controller: a cordoned node carries the `node.kubernetes.io/unschedulable` taint.

Cordon and readiness transitions are appended to `history` for the tests' safety invariants.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

import yaml

from kubeupgrade.sandbox import disruption, objects
from kubeupgrade.sandbox.faults import FaultKind, FaultStore
from kubeupgrade.sandbox.layout import SandboxPaths
from kubeupgrade.sandbox.store import Store, now_rfc3339
from kubeupgrade.sandbox.timing import Timing

RESTARTS_ANNOTATION = "sandbox.kubeupgrade.io/kubelet-restarts"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def paced(cost: float) -> float:
    """How long to wait after background work that took `cost` seconds, so that it takes a
    twentieth of a core at most (the sandbox shares the machine with what is being measured:
    at a tenth, a 5,000-node sandbox's passes were a twentieth of a campaign's CPU)."""
    return 19 * cost


class Controller:
    def __init__(self, store: Store, paths: SandboxPaths, config: dict[str, Any],
                 history: list[dict[str, Any]]) -> None:
        self.store = store
        self.paths = paths
        self.config = config
        self.history = history
        self.timing = Timing.from_config(config)
        self.faults = FaultStore(paths.faults)
        # Not the seed of the initial objects: replacement pod names must not repeat theirs.
        self.random = random.Random(f"controller/{config.get('seed', 0)}/{time.time_ns()}")
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._sequence = itertools.count()
        self._reconciled_generation = -1
        self._reconcile_not_before = 0.0  # see tick()
        self._creating: dict[str, int] = {}  # ReplicaSet uid -> pods scheduled for creation
        self._seen_pods: set[str] = set()  # pod uids the new-pod check has looked at
        self._ready_checks: set[str] = set()  # nodes with a pending readiness check
        self._static_rechecks: set[str] = set()  # nodes whose static pods a fault holds back
        # Pods by their controller's uid, built once per reconciliation: a pass costs the
        # number of pods plus the number of owners, not their product (30,000 pods mirrored).
        self._pods_by_owner: dict[str, list[dict[str, Any]]] | None = None
        # Until when (monotonic) the API server answers nothing: a cluster's only kube-apiserver
        # is restarting (see _sync_static_pods); its HTTP handler drops every connection.
        self.api_away_until = 0.0

    # -- scheduling of delayed work ----------------------------------------------------
    def after(self, seconds: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + seconds, next(self._sequence), action))

    def tick(self) -> None:
        with self.store.lock:
            self._process_events()
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, action = heapq.heappop(self._timers)
                action()
            if self.store.generation != self._reconciled_generation and now >= self._reconcile_not_before:
                self._reconcile()
                self._reconciled_generation = self.store.generation
                # A pass costs the cluster's size and runs after every write: on a large sandbox
                # under a campaign it took a core's third (1,000 nodes) from the processes being
                # measured. A small sandbox's pass (~1 ms) is not held back.
                self._reconcile_not_before = now + paced(time.monotonic() - now)

    def on_change(self, before: dict[str, Any] | None = None,
                  after: dict[str, Any] | None = None) -> None:
        """Called by the API layer after every write; records cordon transitions."""
        obj = after or before
        if not obj or obj.get("kind") != "Node" or before is None or after is None:
            return
        was = bool(before.get("spec", {}).get("unschedulable"))
        now = bool(after.get("spec", {}).get("unschedulable"))
        if was != now:
            self.record(after["metadata"]["name"], "cordon" if now else "uncordon")

    def terminate_pod(self, pod: dict[str, Any], grace: Any = None) -> dict[str, Any]:
        """A pod deleted or evicted through the API, as the API server and the kubelet end it:
        marked for deletion at once (deletionTimestamp: no longer Ready, no longer counted by
        its ReplicaSet, which starts a replacement), gone when its kubelet has stopped it, after
        the grace period (the request's gracePeriodSeconds, else the pod's
        terminationGracePeriodSeconds, else 30 s; scaled like every delay). A pod on no node, or
        a grace period under a millisecond once scaled (zero-duration benchmarks), goes at once;
        a pod already terminating is left to its first one."""
        meta = pod["metadata"]
        namespace, name = meta.get("namespace"), meta["name"]
        if meta.get("deletionTimestamp"):
            return pod
        if not _seconds(grace):
            grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
        grace = grace if _seconds(grace) else 30
        if grace * self.timing.time_scale < 0.001 or not pod.get("spec", {}).get("nodeName"):
            deleted = self.store.delete("pods", namespace, name)
            self.on_change(deleted, None)
            return deleted
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = grace
        self.store.put_internal("pods", pod)
        self._remove_after_grace(pod)
        return pod

    def _remove_after_grace(self, pod: dict[str, Any]) -> None:
        """The kubelet's side of a terminating pod: gone after its deletionGracePeriodSeconds,
        scaled (30 s if it carries none that reads)."""
        meta = pod["metadata"]
        namespace, name, uid = meta.get("namespace"), meta["name"], meta.get("uid")
        grace = meta.get("deletionGracePeriodSeconds")

        def remove() -> None:
            found = self.store.find("pods", namespace, name)
            if found is not None and found["metadata"].get("uid") == uid:
                self.on_change(self.store.delete("pods", namespace, name), None)

        self.after((grace if _seconds(grace) else 30) * self.timing.time_scale, remove)

    def record(self, node: str, event: str, **extra: Any) -> None:
        self.history.append({"t": time.time(), "node": node, "event": event, **extra})

    def serving_version(self) -> str:
        versions = [pod["spec"]["containers"][0]["image"].rsplit(":", 1)[-1]
                    for pod in self.store.list("pods", "kube-system", "component=kube-apiserver")]
        if not versions:
            return self.config["version"]
        return min(versions, key=lambda v: tuple(int(x) for x in v.lstrip("v").split(".")[:3]))

    def replicas_by_uid(self, namespace: str | None) -> dict[str, int]:
        """Each pod controller's desired replicas, for the PodDisruptionBudgets' expected pods."""
        return {owner["metadata"]["uid"]: int(owner["spec"].get("replicas", 1))
                for plural in ("replicasets", "statefulsets") for owner in self.store.list(plural, namespace)}

    # -- kubelets ----------------------------------------------------------------------
    def resync(self) -> None:
        """After a (re)start: every node's host state is news, unready pods get a timer, and
        pods that were terminating go after their grace period (a kubelet goes on stopping a
        pod whether or not the API server is up)."""
        with self.store.lock:
            for node in self.store.list("nodes"):
                self._sync_node(node["metadata"]["name"], startup=True)
            for pod in self.store.list("pods"):
                if pod["metadata"].get("deletionTimestamp"):
                    self._remove_after_grace(pod)
                elif not disruption.is_pod_ready(pod) and pod["spec"].get("nodeName"):
                    self._start_pod_later(pod)

    def _process_events(self) -> None:
        try:
            entries = list(os.scandir(self.paths.events))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                os.unlink(entry.path)  # before reading: news arriving meanwhile is kept
            except FileNotFoundError:
                continue
            if self.store.find("nodes", None, entry.name) is not None:
                self._sync_node(entry.name)

    def _kubelet_state(self, node: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.paths.node_root(node) / objects.KUBELET_STATE).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _sync_node(self, name: str, startup: bool = False) -> None:
        node = self.store.get("nodes", None, name)
        state = self._kubelet_state(name)
        if state is None:
            return
        observed = int(node["metadata"].get("annotations", {}).get(RESTARTS_ANNOTATION, "0"))
        ready = objects.condition(node, "Ready")
        if not state.get("active", True):
            if ready != "Unknown":
                self.after(self.timing.seconds("node monitor grace", key=name),
                           lambda: self._mark_unknown_if_still_stopped(name, state["restarts"]))
        elif state["restarts"] != observed:
            node["metadata"].setdefault("annotations", {})[RESTARTS_ANNOTATION] = str(state["restarts"])
            self._set_ready(node, "False", "KubeletNotReady",
                            "container runtime status check may not have completed yet")
            self._check_ready_later(name, state["restarts"])
        elif ready != "True" and (startup or name not in self._ready_checks):
            self._check_ready_later(name, state["restarts"])
        self._sync_static_pods(name, node, state)

    def _mark_unknown_if_still_stopped(self, name: str, restarts: int) -> None:
        """A stopped kubelet stops posting status; after the grace period the node is Unknown."""
        node = self.store.find("nodes", None, name)
        state = self._kubelet_state(name)
        if node is None or state is None or state.get("active", True) or state["restarts"] != restarts:
            return
        if objects.condition(node, "Ready") != "Unknown":
            self._set_ready(node, "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")

    def _check_ready_later(self, name: str, restarts: int) -> None:
        self._ready_checks.add(name)
        delay = self.timing.seconds("kubelet ready", key=f"{name}/{restarts}")
        self.after(delay, lambda: self._check_ready(name, restarts))

    def _check_ready(self, name: str, restarts: int) -> None:
        node = self.store.find("nodes", None, name)
        state = self._kubelet_state(name)
        if node is None or state is None or state["restarts"] != restarts or not state.get("active", True):
            self._ready_checks.discard(name)
            return
        if self.faults.condition(name, FaultKind.NEVER_READY):
            self.after(0.2, lambda: self._check_ready(name, restarts))  # until the fault is cleared
            return
        self._ready_checks.discard(name)
        info = node["status"]["nodeInfo"]
        info["kubeletVersion"] = info["kubeProxyVersion"] = state["running"]
        self._set_ready(node, "True", "KubeletReady", "kubelet is posting ready status")

    def _set_ready(self, node: dict[str, Any], status: str, reason: str, message: str) -> None:
        stamp = now_rfc3339()
        for condition in node["status"]["conditions"]:
            if condition["type"] == "Ready":
                if condition["status"] != status:
                    condition["lastTransitionTime"] = stamp
                condition.update(status=status, reason=reason, message=message,
                                 lastHeartbeatTime=stamp)
        self.store.put_internal("nodes", node)
        event = {"True": "ready", "False": "not-ready", "Unknown": "unknown"}[status]
        self.record(node["metadata"]["name"], event,
                    kubelet=node["status"]["nodeInfo"]["kubeletVersion"])

    def _sync_static_pods(self, name: str, node: dict[str, Any], state: dict[str, Any]) -> None:
        manifests = self.paths.node_root(name) / "etc/kubernetes/manifests"
        wanted: dict[str, str] = {}
        for path in sorted(manifests.glob("*.yaml")) if manifests.is_dir() else []:
            try:
                manifest = yaml.safe_load(path.read_text())
                wanted[manifest["metadata"]["name"]] = manifest["spec"]["containers"][0]["image"]
            except (OSError, yaml.YAMLError, KeyError, TypeError, IndexError):
                continue  # a kubelet ignores a manifest it cannot read
        restarts = state.get("container_restarts", {})
        stuck = {fault.command for fault in self.faults.condition(name, FaultKind.STATIC_POD_STUCK)}
        for pod in self.store.list("pods", "kube-system", field_selector=f"spec.nodeName={name}"):
            component = pod["metadata"].get("labels", {}).get("component")
            if objects.MIRROR_ANNOTATION not in pod["metadata"].get("annotations", {}):
                continue
            if component not in wanted:
                self.store.delete("pods", "kube-system", pod["metadata"]["name"])
        for component, image in wanted.items():
            pod_name = f"{component}-{name}"
            pod = self.store.find("pods", "kube-system", pod_name)
            restart_count = int(restarts.get(component, 0))
            if pod is None:
                pod = objects.mirror_pod(node, component, image)
                self.store.create("pods", "kube-system", pod)
                pod = self.store.get("pods", "kube-system", pod_name)
            current = pod["spec"]["containers"][0]["image"]
            if current != image and stuck & {"", component}:
                # The kubelet keeps the pod it runs: its mirror pod's hash does not change. A
                # real kubelet goes on reconciling the manifest, so once the fault is cleared
                # the new pod comes up, whether or not kubeadm still waits for it.
                self._recheck_static_pods_later(name)
                continue
            statuses = pod["status"].setdefault("containerStatuses", [{}])
            if current != image or statuses[0].get("restartCount", 0) != restart_count:
                pod["spec"]["containers"][0]["image"] = image
                statuses[0].update(restartCount=restart_count, image=image)
                objects.set_pod_ready(pod, False)
                self.store.put_internal("pods", pod)
                delay = self.timing.seconds("static pod restart", key=pod_name)
                if component == "kube-apiserver" and not self._another_apiserver_ready(name):
                    # With no other API server to answer (a single control plane, or the others
                    # down), the cluster's API is away while this one restarts: kubeadm's own
                    # wait for it, the controller and every kubectl see their connections drop.
                    self.api_away_until = max(self.api_away_until, time.monotonic() + delay)
                self._start_pod_later(pod, delay=delay)

    def _recheck_static_pods_later(self, name: str) -> None:
        if name in self._static_rechecks:
            return
        self._static_rechecks.add(name)

        def recheck() -> None:
            self._static_rechecks.discard(name)
            node, state = self.store.find("nodes", None, name), self._kubelet_state(name)
            if node is not None and state is not None and state.get("active", True):
                self._sync_static_pods(name, node, state)

        self.after(0.2, recheck)

    # -- pods --------------------------------------------------------------------------
    def _another_apiserver_ready(self, node: str) -> bool:
        from kubeupgrade.sandbox.disruption import is_pod_ready

        return any(p["spec"].get("nodeName") != node and is_pod_ready(p)
                   for p in self.store.list("pods", "kube-system", label_selector="component=kube-apiserver"))

    def _start_pod_later(self, pod: dict[str, Any], step: str = "pod start", delay: float | None = None) -> None:
        namespace, name, uid = (pod["metadata"]["namespace"], pod["metadata"]["name"],
                                pod["metadata"]["uid"])

        def start() -> None:
            current = self.store.find("pods", namespace, name)
            if current is None or current["metadata"]["uid"] != uid:
                return
            objects.set_pod_ready(current, True)
            self.store.put_internal("pods", current)

        self.after(self.timing.seconds(step, key=name) if delay is None else delay, start)

    def _schedulable_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.store.list("nodes")
                if objects.condition(n, "Ready") == "True" and not n["spec"].get("unschedulable")]

    def _place(self, pod: dict[str, Any], load: dict[str, int]) -> bool:
        candidates = [n for n in self._schedulable_nodes()
                      if objects.tolerates(pod, n) and objects.selects(pod, n)]
        if not candidates:
            pod["status"]["conditions"] = [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": f"0/{len(self.store.objects['nodes'])} nodes are available: "
                           "no schedulable node tolerates this pod."}]
            return False
        target = min(candidates, key=lambda n: (load.get(n["metadata"]["name"], 0),
                                                 n["metadata"]["name"]))
        objects.bind_pod(pod, target)
        load[target["metadata"]["name"]] = load.get(target["metadata"]["name"], 0) + 1
        return True

    def _reconcile(self) -> None:
        pods = self.store.list("pods")
        load = _node_load(pods)
        self._pods_by_owner = _by_controller(pods)
        try:
            # Each controller on its own: one object it cannot handle must not stop the others.
            for reconcile in (self._reconcile_taints, self._reconcile_deployments,
                              lambda: self._reconcile_replicasets(load), self._reconcile_statefulsets,
                              self._reconcile_daemonsets, lambda: self._reconcile_new_pods(load)):
                try:
                    reconcile()
                except Exception:  # noqa: BLE001 - logged; the next tick tries again
                    logging.getLogger("sandbox.controller").exception("reconciliation failed")
        finally:
            self._pods_by_owner = None  # timers between passes look at the store itself

    def _reconcile_taints(self) -> None:
        for node in self.store.list("nodes"):
            taints = node["spec"].get("taints") or []
            has = any(t.get("key") == UNSCHEDULABLE_TAINT["key"] for t in taints)
            want = bool(node["spec"].get("unschedulable"))
            if has != want:
                if want:
                    taints = taints + [{**UNSCHEDULABLE_TAINT, "timeAdded": now_rfc3339()}]
                else:
                    taints = [t for t in taints if t.get("key") != UNSCHEDULABLE_TAINT["key"]]
                node["spec"]["taints"] = taints
                if not taints:
                    del node["spec"]["taints"]
                self.store.put_internal("nodes", node)

    def _reconcile_deployments(self) -> None:
        sets_by_owner = _by_controller(self.store.list("replicasets"))
        for deployment in self.store.list("deployments"):
            namespace = deployment["metadata"]["namespace"]
            owned = list(sets_by_owner.get(deployment["metadata"]["uid"], []))
            if not owned:  # created through the API: its ReplicaSet, whose pods follow
                rs = objects.replica_set_for(deployment, self.random)
                rs.update(apiVersion="apps/v1", kind="ReplicaSet")
                rs["metadata"].pop("uid", None)
                rs["metadata"].pop("creationTimestamp", None)
                owned = [self.store.create("replicasets", namespace, rs)]
            for rs in owned:
                changed = False
                if rs["spec"]["template"] != deployment["spec"]["template"]:
                    rs["spec"]["template"] = json.loads(json.dumps(deployment["spec"]["template"]))
                    changed = True
                if rs["spec"].get("replicas") != deployment["spec"].get("replicas"):
                    rs["spec"]["replicas"] = deployment["spec"].get("replicas", 1)
                    changed = True
                if changed:
                    self.store.put_internal("replicasets", rs)
            pods = [p for rs in owned for p in self._owned_pods(rs)]
            ready = sum(1 for p in pods if disruption.is_pod_ready(p))
            status = {"observedGeneration": deployment["metadata"].get("generation", 1),
                      "replicas": len(pods), "updatedReplicas": len(pods),
                      "readyReplicas": ready, "availableReplicas": ready}
            if deployment.get("status") != status:
                deployment["status"] = status
                self.store.put_internal("deployments", deployment)

    def _owned_pods(self, owner: dict[str, Any]) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        if self._pods_by_owner is not None:  # within a pass: as of its start
            return list(self._pods_by_owner.get(uid, []))
        return [p for p in self.store.list("pods", owner["metadata"]["namespace"])
                if (disruption.controller_of(p) or {}).get("uid") == uid]

    def _reconcile_replicasets(self, load: dict[str, int]) -> None:
        for rs in self.store.list("replicasets"):
            pods = _active(self._owned_pods(rs))
            image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
            for pod in pods:
                if pod["spec"]["containers"][0]["image"] != image:
                    pod["spec"]["containers"][0]["image"] = image
                    self.store.put_internal("pods", pod)
                if not pod["spec"].get("nodeName") and self._place(pod, load):
                    self.store.put_internal("pods", pod)
                    self._start_pod_later(pod)
            ready = sum(1 for p in pods if disruption.is_pod_ready(p))
            status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                      "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
            if rs.get("status") != status:
                rs["status"] = status
                self.store.put_internal("replicasets", rs)
            uid = rs["metadata"]["uid"]
            missing = int(rs["spec"].get("replicas", 1)) - len(pods) - self._creating.get(uid, 0)
            for _ in range(max(0, missing)):
                self._creating[uid] = self._creating.get(uid, 0) + 1
                self.after(self.timing.seconds("pod reschedule", key=uid),
                           lambda rs_uid=uid, ns=rs["metadata"]["namespace"], name=rs["metadata"]["name"]:
                           self._create_replica(rs_uid, ns, name))

    def _reconcile_new_pods(self, load: dict[str, int]) -> None:
        """A pod created through the API (not by a simulated controller) is scheduled if it
        names no node, then started by the kubelet of its node, once."""
        for pod in self.store.list("pods"):
            uid = pod["metadata"]["uid"]
            if uid in self._seen_pods:
                continue
            self._seen_pods.add(uid)
            if disruption.is_pod_ready(pod) or pod["metadata"].get("deletionTimestamp"):
                continue
            if not pod["spec"].get("nodeName"):
                if not self._place(pod, load):
                    self.store.put_internal("pods", pod)
                    continue
                self.store.put_internal("pods", pod)
            self._start_pod_later(pod)

    def _reconcile_statefulsets(self) -> None:
        """Pods <name>-0 .. <name>-(n-1), each made again under its own name once gone."""
        for sts in self.store.list("statefulsets"):
            namespace, name, uid = sts["metadata"]["namespace"], sts["metadata"]["name"], sts["metadata"]["uid"]
            pods = self._owned_pods(sts)
            present = {p["metadata"]["name"] for p in pods}
            replicas = int(sts["spec"].get("replicas", 1))
            for ordinal in range(replicas):
                pod_name = f"{name}-{ordinal}"
                key = f"{uid}/{pod_name}"
                if pod_name in present or self._creating.get(key):
                    continue
                self._creating[key] = 1
                self.after(self.timing.seconds("pod reschedule", key=key),
                           lambda k=key, ns=namespace, n=name, p=pod_name: self._create_ordinal(k, ns, n, p))
            ready = sum(1 for p in pods if disruption.is_pod_ready(p))
            status = {"replicas": len(pods), "readyReplicas": ready, "currentReplicas": len(pods),
                      "updatedReplicas": len(pods), "availableReplicas": ready,
                      "observedGeneration": sts["metadata"].get("generation", 1)}
            if sts.get("status") != status:
                sts["status"] = status
                self.store.put_internal("statefulsets", sts)

    def _create_ordinal(self, key: str, namespace: str, name: str, pod_name: str) -> None:
        self._creating.pop(key, None)
        sts = self.store.find("statefulsets", namespace, name)
        if sts is None or self.store.find("pods", namespace, pod_name) is not None:
            return
        pod = objects.pod_from_template(sts, self.random, name=pod_name)
        pod["spec"]["hostname"] = pod_name
        self._create_scheduled(namespace, pod)

    def _create_replica(self, uid: str, namespace: str, name: str) -> None:
        self._creating[uid] = max(0, self._creating.get(uid, 0) - 1)
        rs = self.store.find("replicasets", namespace, name)
        if rs is None or rs["metadata"]["uid"] != uid:
            return
        if len(_active(self._owned_pods(rs))) >= int(rs["spec"].get("replicas", 1)):
            return
        pod = objects.pod_from_template(rs, self.random)
        while self.store.find("pods", namespace, pod["metadata"]["name"]) is not None:
            pod = objects.pod_from_template(rs, self.random)
        self._create_scheduled(namespace, pod)

    def _create_scheduled(self, namespace: str, pod: dict[str, Any]) -> None:
        """Create a controller's new pod on the least loaded node that may run it, and start it."""
        load = _node_load(self.store.list("pods"))
        placed = self._place(pod, load)
        self.store.create("pods", namespace, pod)
        if placed:
            self._start_pod_later(self.store.get("pods", namespace, pod["metadata"]["name"]))

    def _reconcile_daemonsets(self) -> None:
        nodes = self.store.list("nodes")
        for ds in self.store.list("daemonsets"):
            pods = self._owned_pods(ds)
            selected = [n for n in nodes if objects.selects(ds, n)]
            image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
            covered = {p["spec"].get("nodeName") for p in pods}
            for pod in pods:
                if pod["spec"]["containers"][0]["image"] != image:
                    pod["spec"]["containers"][0]["image"] = image
                    self.store.put_internal("pods", pod)
            for node in selected:
                if node["metadata"]["name"] not in covered:
                    pod = objects.pod_from_template(ds, self.random)
                    objects.bind_pod(pod, node)
                    self.store.create("pods", ds["metadata"]["namespace"], pod)
                    self._start_pod_later(self.store.get("pods", ds["metadata"]["namespace"],
                                                         pod["metadata"]["name"]))
            ready = sum(1 for p in pods if disruption.is_pod_ready(p))
            status = {"desiredNumberScheduled": len(selected), "currentNumberScheduled": len(pods),
                      "numberReady": ready, "updatedNumberScheduled": len(pods),
                      "numberAvailable": ready, "numberMisscheduled": 0,
                      "observedGeneration": ds["metadata"].get("generation", 1)}
            if ds.get("status") != status:
                ds["status"] = status
                self.store.put_internal("daemonsets", ds)


def _seconds(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _active(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods not being deleted, which a ReplicaSet counts: one terminating is replaced at
    once (a StatefulSet waits for its pod's name, a DaemonSet for its node)."""
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def _by_controller(items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Objects by the uid of their controlling owner, in one pass."""
    owned: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        owner = disruption.controller_of(item)
        if owner and owner.get("uid"):
            owned.setdefault(owner["uid"], []).append(item)
    return owned


def _node_load(pods: list[dict[str, Any]]) -> dict[str, int]:
    """Pods per node, for placing a new pod on the least loaded one."""
    load: dict[str, int] = {}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node:
            load[node] = load.get(node, 0) + 1
    return load
