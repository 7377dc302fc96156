"""The simulated Kubernetes API server: a separate process serving the REST subset upgrades use.

Run as `python -m kubeupgrade.sandbox.apiserver --dir DIR`. Serves HTTPS with bearer-token auth
(tokens from `sandbox.json`), discovery, CRUD + patch on the resources in `store.RESOURCES`,
`pods/eviction` honouring PodDisruptionBudgets, lists in pages (`limit` / `continue`, paging.py),
Table responses for kubectl, and Kubernetes
`Status` errors, over HTTPS with the sandbox's own CA. A sandbox-only `/sandbox/v1/history` lists cordon and readiness transitions
for tests. State is flushed to `state.json` so a restarted server carries on.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubeupgrade.sandbox import disruption, paging, rbac, tables
from kubeupgrade.sandbox.controller import Controller
from kubeupgrade.sandbox.events import from_events_v1, to_events_v1
from kubeupgrade.sandbox.faults import API_SERVER, FaultKind
from kubeupgrade.sandbox.layout import SandboxPaths, load_config
from kubeupgrade.sandbox.snapshot import SnapshotText
from kubeupgrade.sandbox.store import EVENTS_V1, RESOURCES, ApiError, Resource, Store

FLUSH_SECONDS = 0.5  # between background writes of state.json (a stopping server writes it last)
GROUPS = {"apps": "v1", "policy": "v1", "events.k8s.io": "v1"}


def _resource_list(group: str, version: str) -> dict[str, Any]:
    resources = []
    for resource in [*RESOURCES.values(), EVENTS_V1]:
        if resource.group != group:
            continue
        resources.append({
            "name": resource.plural, "singularName": resource.singular,
            "namespaced": resource.namespaced, "kind": resource.kind,
            "verbs": list(resource.verbs), "shortNames": list(resource.short_names),
        })
        for sub in resource.subresources:
            entry = {"name": f"{resource.plural}/{sub}", "singularName": "",
                     "namespaced": resource.namespaced, "kind": resource.kind,
                     "verbs": ["get", "patch", "update"]}
            if sub == "eviction":
                entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
            resources.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def _api_group_list() -> dict[str, Any]:
    groups = []
    for name, version in GROUPS.items():
        gv = {"groupVersion": f"{name}/{version}", "version": version}
        groups.append({"name": name, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


class ApiServer:
    """The state and request logic, independent of the HTTP plumbing."""

    def __init__(self, paths: SandboxPaths) -> None:
        self.paths = paths
        self.config = load_config(paths)
        snapshot = json.loads(paths.state.read_text()) if paths.state.exists() else None
        self.store = Store(snapshot)
        self.pager = paging.Pager()
        self.history: list[dict[str, Any]] = (snapshot or {}).get("history", [])
        self.writes: list[dict[str, Any]] = []  # since this process started (the last 10,000)
        self.tokens = {self.config["token"], *self.config.get("node_tokens", {}).values()}
        self.identities = rbac_config_identities(paths)
        self.controller = Controller(self.store, paths, self.config, self.history)
        self._flushed_generation = -1
        self._flush_lock = threading.Lock()
        self._snapshot = SnapshotText()
        self.stopping = threading.Event()
        self.faults = self.controller.faults  # one store of faults per sandbox process
        self._faults_seen: tuple[int, bool] = (-1, False)  # the fault file's mtime; an api-slow in it?

    def slow_answer(self, method: str, path: str) -> float:
        """Seconds to hold this request before answering it: an api-slow fault that matches,
        consumed (faults.py), or 0. The fault file is read again only when it changed: every
        request asks."""
        try:
            changed = os.stat(self.faults.path).st_mtime_ns
        except FileNotFoundError:
            return 0.0
        if changed != self._faults_seen[0]:
            self._faults_seen = (changed, any(f.kind == FaultKind.API_SLOW for f in self.faults.list()))
        if not self._faults_seen[1]:
            return 0.0
        fault = self.faults.take(API_SERVER, [method, path], (FaultKind.API_SLOW,))
        return fault.seconds if fault is not None else 0.0

    # -- persistence -------------------------------------------------------------------------
    def flush(self, *, final: bool = False) -> None:
        """Write the state out. `final` also closes the store, so no write is answered after the
        snapshot it writes. One flush at a time: the background one and the final one share the
        temporary file, and the older snapshot must never land last."""
        with self._flush_lock:
            with self.store.lock:
                if self.store.generation == self._flushed_generation and not final:
                    return
                generation = self.store.generation
                if final:
                    self.store.close()
                text = self._snapshot.text(self.store, self.history)
            temporary = self.paths.state.with_suffix(".tmp")
            temporary.write_text(text)
            temporary.replace(self.paths.state)
            self._flushed_generation = generation

    def run_background(self) -> None:
        def flusher() -> None:
            # For a server that dies without its final flush: the last half second or so of
            # writes is lost. Writing the whole cluster's JSON was the biggest part of the
            # server's CPU under a large campaign; now only the objects written since are
            # encoded again, and the file takes a thirtieth of a core at most.
            pause = FLUSH_SECONDS
            while not self.stopping.wait(pause):
                began = time.monotonic()
                self.flush()
                pause = max(FLUSH_SECONDS, 29 * (time.monotonic() - began))

        def ticker() -> None:
            while not self.stopping.wait(0.02):
                try:
                    self.controller.tick()
                except Exception:  # noqa: BLE001 - a control loop must outlive one bad object
                    if self.store.closed:  # stopping: the final state is written, writes refused
                        return
                    logging.getLogger("sandbox.controller").exception("controller tick failed")

        threading.Thread(target=flusher, daemon=True, name="flush").start()
        threading.Thread(target=ticker, daemon=True, name="controller").start()

    # -- request handling --------------------------------------------------------------------
    def authenticate(self, header: str | None) -> rbac.Grants | None:
        """The caller's grants; None for the sandbox's admin and node tokens, which may do
        everything. ApiError 401 for anyone else."""
        token = header[len("Bearer "):].strip() if header and header.startswith("Bearer ") else ""
        if token in self.tokens:
            return None
        if token and token not in self.identities:  # perhaps a ServiceAccount added since start
            self.identities = {**self.identities, **rbac_config_identities(self.paths)}
        if token and token in self.identities:
            return self.identities[token]
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def authorize(self, grants: rbac.Grants | None, method: str, path: str, query: dict[str, str]) -> None:
        if grants is None:
            return
        route = self.route([p for p in path.split("/") if p])
        if route is None:  # discovery, /version, /openapi: open to every authenticated caller
            return
        resource, namespace, name, subresource = route
        request = rbac.request_of(method, resource.group, resource.plural, namespace, name, subresource,
                                  query.get("watch") in ("true", "1"))
        if not grants.allows(request):
            raise ApiError(403, "Forbidden", rbac.forbidden_message(grants.user, request),
                           {"name": name or "", "group": resource.group, "kind": resource.plural})

    def version(self) -> dict[str, Any]:
        with self.store.lock:
            version = self.controller.serving_version()
        major, minor = version.lstrip("v").split(".")[:2]
        return {"major": major, "minor": minor, "gitVersion": version,
                "gitCommit": "sandbox", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24.0",
                "compiler": "gc", "platform": "linux/amd64"}

    def handle(self, method: str, path: str, query: dict[str, str], body: Any,
               content_type: str, accept: str) -> tuple[int, Any]:
        path = "/" + "/".join(parts := [p for p in path.split("/") if p])
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, "ok"
        if path == "/version":
            return 200, self.version()
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.config['port']}"}]}
        if path == "/apis":
            return 200, _api_group_list()
        if path == "/openapi/v3":
            return 200, _openapi_v3_index()
        if parts[:2] == ["openapi", "v3"]:
            document = _openapi_v3("/".join(parts[2:]), self.version()["gitVersion"])
            if document is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return 200, document
        if path == "/api/v1":
            return 200, _resource_list("", "v1")
        if len(parts) == 3 and parts[0] == "apis" and GROUPS.get(parts[1]) == parts[2]:
            return 200, _resource_list(parts[1], parts[2])
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in GROUPS:
            gv = {"groupVersion": f"{parts[1]}/{GROUPS[parts[1]]}", "version": GROUPS[parts[1]]}
            return 200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                         "versions": [gv], "preferredVersion": gv}
        if parts[:2] == ["sandbox", "v1"] and parts[2:] == ["history"]:
            with self.store.lock:
                return 200, {"items": list(self.history)}
        if parts[:2] == ["sandbox", "v1"] and parts[2:] == ["writes"]:
            with self.store.lock:
                return 200, {"items": list(self.writes)}
        if method not in ("GET", "HEAD"):  # every request that may change something, in order
            with self.store.lock:
                self.writes.append({"t": time.time(), "method": method, "path": path,
                                    "dry_run": query.get("dryRun") == "All"})
                del self.writes[:-10_000]
        route = self.route(parts)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource, namespace, name, subresource = route
        with self.store.lock:
            return self.dispatch(method, resource, namespace, name, subresource, query, body,
                                 content_type, accept)

    def route(self, parts: list[str]) -> tuple[Resource, str | None, str | None, str | None] | None:
        if parts[:2] == ["api", "v1"]:
            rest, group = parts[2:], ""
        elif len(parts) >= 3 and parts[0] == "apis" and GROUPS.get(parts[1]) == parts[2]:
            rest, group = parts[3:], parts[1]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in RESOURCES:
            namespace, rest = rest[1], rest[2:]
        if group == EVENTS_V1.group and rest[:1] == ["events"]:
            resource = EVENTS_V1
        elif not rest or rest[0] not in RESOURCES or RESOURCES[rest[0]].group != group:
            return None
        else:
            resource = RESOURCES[rest[0]]
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (subresource and subresource not in resource.subresources):
            return None
        return resource, namespace, name, subresource

    def page(self, resource: Resource, namespace: str | None, query: dict[str, str]) -> paging.Page:
        """The list, or the page of it a `limit` / `continue` asks for (paging.py)."""
        limit = paging.parse_limit(query.get("limit"))
        what = json.dumps([resource.plural, namespace, query.get("labelSelector"), query.get("fieldSelector")])
        token = query.get("continue")
        if token:  # a later page: cut from the list as it was at the first
            return self.pager.next(what, token, limit)
        store = self.store
        items = store.list(resource.plural, namespace, query.get("labelSelector"), query.get("fieldSelector"))
        # Budgets' pods and owners are looked up once per list, not once per budget.
        if resource.plural == "poddisruptionbudgets" and items:
            pods: dict[str, list[dict[str, Any]]] = {}
            for pod in store.list("pods"):
                pods.setdefault(pod["metadata"]["namespace"], []).append(pod)
            replicas = self.controller.replicas_by_uid(None)  # uids are cluster-wide
            items = [self.decorate(resource, obj, pods.get(obj["metadata"]["namespace"], []), replicas)
                     for obj in items]
        items.sort(key=paging.sort_key)  # in storage key order, as etcd returns a list
        selected = bool(query.get("labelSelector") or query.get("fieldSelector"))
        return self.pager.first(what, items, str(store.resource_version), limit, counted=not selected)

    def dispatch(self, method: str, resource: Resource, namespace: str | None, name: str | None,
                 subresource: str | None, query: dict[str, str], body: Any, content_type: str,
                 accept: str) -> tuple[int, Any]:
        if resource is EVENTS_V1:
            return self.events_v1(method, namespace, name, query, body, content_type, accept)
        store = self.store
        as_table = "as=Table" in accept
        if name is None:
            if method == "GET":
                if query.get("watch") in ("true", "1"):
                    raise ApiError(405, "MethodNotAllowed", "watch is not supported by the sandbox "
                                   "API server; poll with list instead")
                page = self.page(resource, namespace, query)
                if as_table:
                    table = tables.to_table(resource.plural, page.items, page.resource_version,
                                            query.get("includeObject", "Metadata"))
                    table["metadata"] |= page.list_metadata()
                    return 200, table
                return 200, {"kind": f"{resource.kind}List", "apiVersion": resource.api_version,
                             "metadata": {"resourceVersion": page.resource_version, **page.list_metadata()},
                             "items": page.items}
            if method == "POST":
                self.require_object(body)
                if query.get("dryRun") == "All":  # checked, answered, not stored
                    return 201, store.create(resource.plural, namespace, body, dry_run=True)
                created = store.create(resource.plural, namespace, body)
                self.controller.on_change()
                return 201, created
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if subresource == "eviction":
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "only POST creates an eviction")
            return self.evict(namespace, name, body, query)
        if subresource == "scale":
            return self.scale(method, resource, namespace, name, body, content_type)
        if method == "GET":
            obj = self.decorate(resource, store.get(resource.plural, namespace, name))
            if as_table:
                return 200, tables.to_table(resource.plural, [obj], str(store.resource_version),
                                            query.get("includeObject", "Metadata"))
            return 200, obj
        if method == "PUT":
            self.require_object(body)
            before = store.get(resource.plural, namespace, name)
            updated = store.replace(resource.plural, namespace, name, body, subresource)
            self.controller.on_change(before, updated)
            return 200, updated
        if method == "PATCH":
            before = store.get(resource.plural, namespace, name)
            if query.get("dryRun") == "All":
                return 200, before
            updated = store.patch(resource.plural, namespace, name, body, content_type, subresource)
            self.controller.on_change(before, updated)
            return 200, updated
        if method == "DELETE":
            if query.get("dryRun") == "All":
                return 200, store.get(resource.plural, namespace, name)
            if resource.plural == "pods":  # DeleteOptions in the body or the query
                options = body if isinstance(body, dict) else {}
                grace = options.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
                if isinstance(grace, str):
                    grace = int(grace) if grace.isdigit() else None
                return 200, self.controller.terminate_pod(store.get("pods", namespace, name), grace)
            deleted = store.delete(resource.plural, namespace, name)
            self.controller.on_change(deleted, None)
            return 200, deleted
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def events_v1(self, method: str, namespace: str | None, name: str | None, query: dict[str, str],
                  body: Any, content_type: str, accept: str) -> tuple[int, Any]:
        """events.k8s.io/v1: the core events, converted both ways (no PATCH in the sandbox)."""
        core = RESOURCES["events"]
        if method == "POST" and name is None:
            self.require_object(body)
            code, created = self.dispatch("POST", core, namespace, None, None, query,
                                          from_events_v1(body), content_type, accept)
            return code, to_events_v1(created)
        if method in ("GET", "DELETE"):
            code, answer = self.dispatch(method, core, namespace, name, None, query, body,
                                         content_type, accept)
            if answer.get("kind") == "EventList":
                answer = {**answer, "apiVersion": "events.k8s.io/v1",
                          "items": [to_events_v1(item) for item in answer["items"]]}
            elif answer.get("kind") == "Event":
                answer = to_events_v1(answer)
            return code, answer
        raise ApiError(405, "MethodNotAllowed", f"{method} of events.k8s.io/v1 events is not "
                       "supported by the sandbox API server; use core v1 events")

    @staticmethod
    def require_object(body: Any) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")

    def decorate(self, resource: Resource, obj: dict[str, Any], pods: list[dict[str, Any]] | None = None,
                 replicas: dict[str, int] | None = None) -> dict[str, Any]:
        """PodDisruptionBudget status is computed on read, as if the controller just ran; a list
        passes its namespace's pods and every owner's replicas, looked up once for all budgets."""
        if resource.plural != "poddisruptionbudgets":
            return obj
        namespace = obj["metadata"]["namespace"]
        status = disruption.budget_status(
            obj, self.store.list("pods", namespace) if pods is None else pods,
            self.controller.replicas_by_uid(namespace) if replicas is None else replicas)
        return {**obj, "status": status}

    def scale(self, method: str, resource: Resource, namespace: str | None, name: str, body: Any,
              content_type: str) -> tuple[int, Any]:
        """The autoscaling/v1 Scale of a Deployment, ReplicaSet or StatefulSet (`kubectl scale`)."""
        store = self.store
        obj = store.get(resource.plural, namespace, name)
        if method in ("PUT", "PATCH"):
            if method == "PUT":
                self.require_object(body)
            current = {"spec": {"replicas": obj["spec"].get("replicas", 1)}}
            wanted = (body if method == "PUT"
                      else store.patch_document(current, body, content_type)).get("spec", {}).get("replicas")
            if not isinstance(wanted, int) or wanted < 0:
                raise ApiError(422, "Invalid", f"Scale.autoscaling \"{name}\" is invalid: spec.replicas: "
                               "Invalid value: must be greater than or equal to 0")
            obj = store.patch(resource.plural, namespace, name, {"spec": {"replicas": wanted}},
                              "application/merge-patch+json")
            self.controller.on_change()
        elif method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on scale")
        selector = ",".join(f"{k}={v}" for k, v in sorted(
            obj["spec"].get("selector", {}).get("matchLabels", {}).items()))
        return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1",
                     "metadata": {"name": name, "namespace": namespace,
                                  "resourceVersion": obj["metadata"].get("resourceVersion")},
                     "spec": {"replicas": obj["spec"].get("replicas", 1)},
                     "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": selector}}

    def evict(self, namespace: str | None, name: str, body: Any,
              query: dict[str, str]) -> tuple[int, Any]:
        store = self.store
        pod = store.get("pods", namespace, name)
        budgets = [pdb for pdb in store.list("poddisruptionbudgets", namespace)
                   if disruption.selectors.label_selector(
                       disruption.selector_text(pdb["spec"].get("selector")))(pod)]
        if len(budgets) > 1:
            raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, "
                           "which the eviction subresource does not support.")
        if budgets:
            pdb = budgets[0]
            status = disruption.budget_status(pdb, store.list("pods", namespace),
                                              self.controller.replicas_by_uid(namespace))
            refusal = disruption.eviction_refusal(pdb, status, pod)
            if refusal:
                raise ApiError(429, "TooManyRequests",
                               "Cannot evict pod as it would violate the pod's disruption budget.",
                               {"causes": [{"reason": "DisruptionBudget", "message": refusal}]})
        options = (body or {}).get("deleteOptions") or {}
        dry_run = query.get("dryRun") == "All" or "All" in (options.get("dryRun") or [])
        if not dry_run:
            self.controller.terminate_pod(pod, options.get("gracePeriodSeconds"))
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "code": 201}


def rbac_config_identities(paths: SandboxPaths) -> dict[str, rbac.Grants]:
    """ServiceAccounts bound by manifests (`Sandbox.service_account`), by token."""
    return {token: rbac.Grants.from_doc(doc) for token, doc in load_config(paths).get("identities", {}).items()}


def make_handler(server: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "kubeupgrade-sandbox-apiserver"
        # TCP_NODELAY, as Go's net/http sets it: the headers and the body go out in two writes,
        # and with Nagle's algorithm on a kept-alive connection the body waited for the client's
        # delayed ACK, 40 ms per response (measured: a dry-run eviction 48 ms, most of it that).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

        def _send(self, code: int, payload: Any) -> None:
            if isinstance(payload, str):
                data, kind = payload.encode(), "text/plain; charset=utf-8"
            else:
                data, kind = json.dumps(payload).encode(), "application/json"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Audit-Id", "sandbox")
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            if server.controller.api_away_until > time.monotonic():
                # The only kube-apiserver is restarting: nothing answers, the connection drops.
                self.close_connection = True
                return
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                public = url.path in ("/healthz", "/livez", "/readyz", "/version")
                if not public:
                    grants = server.authenticate(self.headers.get("Authorization"))
                    server.authorize(grants, self.command, url.path, query)
                held = server.slow_answer(method, url.path)
                if held:
                    time.sleep(held)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None
                code, payload = server.handle(method, url.path, query, body,
                                              self.headers.get("Content-Type", ""),
                                              self.headers.get("Accept", ""))
            except ApiError as error:
                code, payload = error.code, error.status()
            except Exception as error:  # noqa: BLE001 - a Status, never a traceback
                code, payload = 500, ApiError(500, "InternalError",
                                              f"internal error: {type(error).__name__}: {error}").status()
            self._send(code, payload)
            if server.stopping.is_set():  # a kept-alive connection would be served to the end
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def do_PATCH(self) -> None:  # noqa: N802
            self._handle("PATCH")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

    return Handler


def serve(paths: SandboxPaths) -> None:
    api = ApiServer(paths)
    api.controller.resync()
    httpd = ThreadingHTTPServer(("127.0.0.1", int(api.config["port"])), make_handler(api))
    httpd.daemon_threads = True
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(paths.pki / "apiserver.crt", paths.pki / "apiserver.key")
    # The handshake runs in the request thread, so one slow client cannot stall accept().
    httpd.socket = tls.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)

    def stop(signum: int, frame: Any) -> None:
        api.stopping.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    api.run_background()
    try:
        httpd.serve_forever(poll_interval=0.1)
    finally:
        api.stopping.set()
        api.flush(final=True)
        httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeupgrade-sandbox-apiserver")
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    serve(SandboxPaths(Path(args.dir)))
    return 0





def _group_versions() -> dict[str, list[Resource]]:
    """'api/v1' or 'apis/<group>/<version>' -> the resources served there."""
    found: dict[str, list[Resource]] = {}
    for resource in RESOURCES.values():
        key = f"apis/{resource.group}/{resource.version}" if resource.group else f"api/{resource.version}"
        found.setdefault(key, []).append(resource)
    return found


def _openapi_v3_index() -> dict[str, Any]:
    return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash=sandbox{len(resources)}"}
                      for key, resources in _group_versions().items()}}


def _openapi_v3(key: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group version, as much of it as kubectl reads: each kind's
    operations, whose write operations take the `fieldValidation` parameter, so kubectl leaves
    validation to the server (which checks what the sandbox knows and stores the rest)."""
    resources = _group_versions().get(key)
    if resources is None:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    field_validation = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for resource in resources:
        gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
        base = f"/{key}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced else f"/{key}/{resource.plural}"
        operation = {"x-kubernetes-group-version-kind": gvk, "parameters": [field_validation],
                     "responses": {"200": {"description": "OK"}}}
        paths[base] = {"post": {**operation, "x-kubernetes-action": "post"},
                       "get": {**operation, "x-kubernetes-action": "list", "parameters": []}}
        paths[f"{base}/{{name}}"] = {"patch": {**operation, "x-kubernetes-action": "patch"},
                                     "put": {**operation, "x-kubernetes-action": "put"},
                                     "get": {**operation, "x-kubernetes-action": "get", "parameters": []}}
        group = resource.group.split(".")[0] if resource.group else "core"
        schemas[f"io.k8s.api.{group}.{resource.version}.{resource.kind}"] = {
            "type": "object", "x-kubernetes-group-version-kind": [gvk]}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": version},
            "paths": paths, "components": {"schemas": schemas}}


if __name__ == "__main__":
    sys.exit(main())
