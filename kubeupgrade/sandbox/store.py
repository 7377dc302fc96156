"""The simulated API server's object store: typed resources, CRUD, selectors, patches, errors.

Objects are plain dicts shaped like the Kubernetes JSON. Every write bumps a global
resourceVersion and the store's `generation`, which the controller watches to know when to
reconcile. All access happens under `lock`; the HTTP layer holds it for a whole request.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from kubeupgrade.kube import selectors
from kubeupgrade.sandbox import patches


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update")
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES = {
    r.plural: r
    for r in (
        Resource("namespaces", "Namespace", "", "v1", False, ("ns",), subresources=("status",)),
        Resource("nodes", "Node", "", "v1", False, ("no",), subresources=("status",)),
        Resource("pods", "Pod", "", "v1", True, ("po",), subresources=("status", "eviction")),
        Resource("configmaps", "ConfigMap", "", "v1", True, ("cm",)),
        Resource("events", "Event", "", "v1", True, ("ev",)),
        Resource("deployments", "Deployment", "apps", "v1", True, ("deploy",), subresources=("status", "scale")),
        Resource("daemonsets", "DaemonSet", "apps", "v1", True, ("ds",), subresources=("status",)),
        Resource("replicasets", "ReplicaSet", "apps", "v1", True, ("rs",), subresources=("status", "scale")),
        Resource("statefulsets", "StatefulSet", "apps", "v1", True, ("sts",), subresources=("status", "scale")),
        Resource("poddisruptionbudgets", "PodDisruptionBudget", "policy", "v1", True, ("pdb",),
                 subresources=("status",)),
    )
}


class ApiError(Exception):
    """A failure the API server answers with a Kubernetes `Status` object."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(resource: Resource, name: str) -> ApiError:
    group = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    return ApiError(404, "NotFound", f'{group} "{name}" not found',
                    {"name": name, "group": resource.group, "kind": resource.plural})


# events.k8s.io/v1 serves the same objects as core v1 events, with renamed fields
# (kubeupgrade.sandbox.events converts); it is routed apart because it shares the plural.
EVENTS_V1 = Resource("events", "Event", "events.k8s.io", "v1", True, ("ev",))


def now_rfc3339(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at if at is not None else time.time()))


class Store:
    def __init__(self, snapshot: dict[str, Any] | None = None) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {p: {} for p in RESOURCES}
        self.resource_version = 1
        self.generation = 0
        self.closed = False
        # Pods by spec.nodeName, as the real API server's watch cache indexes them: a drain
        # lists one node's pods, and a scan of every pod per list grew with the square of the
        # cluster. Kept in step by _put and _drop, the only places `objects` changes.
        self._pods_on: dict[str, dict[tuple[str, str], None]] = {}
        self._pod_node: dict[tuple[str, str], str] = {}
        if snapshot:
            self.resource_version = int(snapshot.get("resourceVersion", 1))
            for plural, items in snapshot.get("objects", {}).items():
                for obj in items:
                    meta = obj["metadata"]
                    self._put(plural, (meta.get("namespace", ""), meta["name"]), obj)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "resourceVersion": self.resource_version,
                "objects": {p: list(items.values()) for p, items in self.objects.items()},
            }

    def close(self) -> None:
        """Refuse every later write. The caller holds `lock` while it closes and takes the final
        snapshot: a write the server answered after that snapshot would be acknowledged and
        then lost."""
        with self.lock:
            self.closed = True

    # -- internals ---------------------------------------------------------------------
    def _writable(self) -> None:
        if self.closed:
            raise ApiError(503, "ServiceUnavailable", "the API server is shutting down; retry")

    def _touch(self, obj: dict[str, Any]) -> None:
        self.resource_version += 1
        self.generation += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)

    def _put(self, plural: str, key: tuple[str, str], obj: dict[str, Any]) -> None:
        self.objects[plural][key] = obj
        if plural == "pods":
            node = (obj.get("spec") or {}).get("nodeName") or ""
            was = self._pod_node.get(key)
            if was != node:
                if was is not None:
                    self._pods_on[was].pop(key, None)
                self._pod_node[key] = node
                self._pods_on.setdefault(node, {})[key] = None

    def _drop(self, plural: str, key: tuple[str, str]) -> None:
        del self.objects[plural][key]
        if plural == "pods":
            self._pods_on[self._pod_node.pop(key)].pop(key, None)

    def _key(self, resource: Resource, namespace: str | None, name: str) -> tuple[str, str]:
        return (namespace or "" if resource.namespaced else "", name)

    # -- reads -------------------------------------------------------------------------
    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        resource = RESOURCES[plural]
        obj = self.objects[plural].get(self._key(resource, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return obj

    def find(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects[plural].get(self._key(RESOURCES[plural], namespace, name))

    def list(
        self,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        try:
            by_label = selectors.label_selector(label_selector)
            by_field = selectors.field_selector(field_selector)
        except selectors.SelectorError as error:
            raise ApiError(400, "BadRequest", str(error)) from None
        node = selectors.required_value(field_selector, "spec.nodeName") if plural == "pods" else None
        if node is None:
            items: Any = self.objects[plural].values()
        else:  # the index; the selector is still applied below, so it can only narrow
            pods = self.objects["pods"]
            items = [pods[key] for key in self._pods_on.get(node, ())]
        return [
            obj
            for obj in items
            if (not namespace or obj["metadata"].get("namespace") == namespace)
            and by_label(obj)
            and by_field(obj)
        ]

    # -- writes ------------------------------------------------------------------------
    def create(self, plural: str, namespace: str | None, obj: dict[str, Any],
               dry_run: bool = False) -> dict[str, Any]:
        """Store a new object; with `dry_run`, only check it could be (dryRun=All) and answer
        what would have been stored."""
        resource = RESOURCES[plural]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{resource.kind} is invalid: metadata.name: Required value")
        if resource.namespaced:
            if namespace and meta.get("namespace", namespace) != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
            if self.find("namespaces", None, meta["namespace"]) is None:
                raise ApiError(404, "NotFound", f'namespaces "{meta["namespace"]}" not found')
        key = self._key(resource, meta.get("namespace"), name)
        if key in self.objects[plural]:
            group = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
            raise ApiError(409, "AlreadyExists", f'{group} "{name}" already exists',
                           {"name": name, "group": resource.group, "kind": resource.plural})
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta.setdefault("generation", 1)
        if dry_run:
            return obj
        self._writable()
        self._put(plural, key, obj)
        self._touch(obj)
        return obj

    def replace(
        self, plural: str, namespace: str | None, name: str, obj: dict[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        current = self.get(plural, namespace, name)
        sent_version = (obj.get("metadata") or {}).get("resourceVersion")
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            resource = RESOURCES[plural]
            raise ApiError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {resource.plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "kind": resource.plural},
            )
        return self._store_update(plural, current, copy.deepcopy(obj), subresource)

    def patch(
        self, plural: str, namespace: str | None, name: str, body: Any, content_type: str,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        current = self.get(plural, namespace, name)
        return self._store_update(plural, current, self.patch_document(current, body, content_type),
                                  subresource)

    @staticmethod
    def patch_document(current: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
        """`current` with the patch applied, in the flavour its content type names."""
        try:
            if content_type.startswith("application/json-patch+json"):
                return patches.json_patch(current, body)
            if content_type.startswith("application/merge-patch+json"):
                return patches.merge_patch(current, body)
            if content_type.startswith("application/strategic-merge-patch+json"):
                return patches.strategic_merge_patch(current, body)
        except patches.PatchError as error:
            raise ApiError(422, "Invalid", str(error)) from None
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media "
                       f"types include: application/json-patch+json, "
                       f"application/merge-patch+json, "
                       f"application/strategic-merge-patch+json (got {content_type})")

    def _store_update(
        self, plural: str, current: dict[str, Any], updated: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        meta = current["metadata"]
        if not isinstance(updated, dict):
            raise ApiError(422, "Invalid", "the patched object is not an object")
        new_meta = updated.setdefault("metadata", {})
        if new_meta.get("name", meta["name"]) != meta["name"]:
            raise ApiError(422, "Invalid", "metadata.name: Invalid value: field is immutable")
        for field in ("name", "namespace", "uid", "creationTimestamp"):
            if field in meta:
                new_meta[field] = meta[field]
        updated["apiVersion"], updated["kind"] = current["apiVersion"], current["kind"]
        # The main resource ignores status changes and the status subresource ignores the rest,
        # as the real API server does for resources with a status subresource.
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = updated.get("status", {})
            updated = merged
        elif "status" in RESOURCES[plural].subresources and "status" in current:
            updated["status"] = current["status"]
        if updated.get("spec") != current.get("spec"):
            new_meta["generation"] = int(meta.get("generation", 1)) + 1
        key = (meta.get("namespace", ""), meta["name"])
        self._writable()
        self._put(plural, key, updated)
        self._touch(updated)
        return updated

    def delete(self, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        self._writable()
        obj = self.get(plural, namespace, name)
        self._drop(plural, (obj["metadata"].get("namespace", ""), name))
        self.resource_version += 1
        self.generation += 1
        return obj

    def put_internal(self, plural: str, obj: dict[str, Any]) -> None:
        """Write an object as a controller does: no validation, resourceVersion bumped."""
        self._writable()
        meta = obj["metadata"]
        self._put(plural, (meta.get("namespace", ""), meta["name"]), obj)
        self._touch(obj)
