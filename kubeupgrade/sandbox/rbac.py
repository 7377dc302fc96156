"""RBAC for the simulated API server: what a ServiceAccount bound by a manifest may do.

The manifests we ship in `deploy/kubernetes/` are read as a cluster would read them: Roles and
ClusterRoles give rules, RoleBindings and ClusterRoleBindings give them to a subject, and a
request is allowed when one rule covers its verb, API group, resource (with subresource) and,
where the rule names them, the object's name. Non-resource paths (discovery, /version) are open
to every authenticated identity, as `system:discovery` makes them on a real cluster. Pure: the
API server asks, nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

CLUSTER = ""  # the key of cluster-wide rules; any other key is a namespace


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str] = frozenset()

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Rule:
        return cls(frozenset(doc.get("verbs") or ()), frozenset(doc.get("apiGroups") or ()),
                   frozenset(doc.get("resources") or ()), frozenset(doc.get("resourceNames") or ()))

    def to_doc(self) -> dict[str, list[str]]:
        doc = {"verbs": sorted(self.verbs), "apiGroups": sorted(self.api_groups),
               "resources": sorted(self.resources)}
        if self.resource_names:
            doc["resourceNames"] = sorted(self.resource_names)
        return doc

    def covers(self, request: Request) -> bool:
        return ((request.verb in self.verbs or "*" in self.verbs)
                and (request.group in self.api_groups or "*" in self.api_groups)
                and (request.resource in self.resources or "*" in self.resources)
                and (not self.resource_names or request.name in self.resource_names))


@dataclass(frozen=True)
class Request:
    """A resource request's attributes, as the authorizer sees them."""
    verb: str
    group: str
    resource: str  # with its subresource: "pods/eviction"
    namespace: str | None
    name: str | None


@dataclass(frozen=True)
class Grants:
    """Everything one identity may do: cluster-wide rules and rules per namespace."""
    user: str
    rules: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)

    def allows(self, request: Request) -> bool:
        scopes = [CLUSTER] + ([request.namespace] if request.namespace else [])
        return any(rule.covers(request) for scope in scopes for rule in self.rules.get(scope, ()))

    def to_doc(self) -> dict[str, Any]:
        return {"user": self.user,
                "rules": {scope: [rule.to_doc() for rule in rules] for scope, rules in self.rules.items()}}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Grants:
        return cls(doc["user"], {scope: tuple(Rule.from_doc(r) for r in rules)
                                 for scope, rules in doc["rules"].items()})


def grants_for(documents: Iterable[Mapping[str, Any]], namespace: str, account: str) -> Grants:
    """What the bindings among `documents` give ServiceAccount `namespace/account`."""
    docs = [d for d in documents if isinstance(d, Mapping)]
    roles: dict[tuple[str, str, str], tuple[Rule, ...]] = {}
    for doc in docs:
        if doc.get("kind") in ("Role", "ClusterRole"):
            key = (doc["kind"], doc["metadata"].get("namespace", "") if doc["kind"] == "Role" else "",
                   doc["metadata"]["name"])
            roles[key] = tuple(Rule.from_doc(rule) for rule in doc.get("rules") or ())
    rules: dict[str, list[Rule]] = {}
    for doc in docs:
        kind = doc.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account
                   and s.get("namespace", doc["metadata"].get("namespace")) == namespace
                   for s in doc.get("subjects") or ()):
            continue
        ref = doc["roleRef"]
        scope = doc["metadata"].get("namespace", CLUSTER) if kind == "RoleBinding" else CLUSTER
        role_namespace = scope if ref["kind"] == "Role" else ""
        rules.setdefault(scope, []).extend(roles.get((ref["kind"], role_namespace, ref["name"]), ()))
    return Grants(f"system:serviceaccount:{namespace}:{account}",
                  {scope: tuple(found) for scope, found in rules.items()})


def request_of(method: str, group: str, plural: str, namespace: str | None, name: str | None,
               subresource: str | None, watch: bool) -> Request:
    if method in ("GET", "HEAD"):
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    resource = f"{plural}/{subresource}" if subresource else plural
    return Request(verb, group, resource, namespace, name)


def forbidden_message(user: str, request: Request) -> str:
    """The words a real API server answers a 403 with."""
    what = f'{request.resource.split("/")[0]} "{request.name}"' if request.name else request.resource.split("/")[0]
    where = f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    return (f'{what} is forbidden: User "{user}" cannot {request.verb} resource "{request.resource}" '
            f'in API group "{request.group}" {where}')
