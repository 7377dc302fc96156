"""A small HTTP client for the simulated kubeadm and kubelet to reach the sandbox API server.

The simulated binaries talk to the API with the credentials in the host's kubeconfig, as the
real ones do; stdlib only, to keep each simulated command's start-up fast.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


class ApiUnavailable(Exception):
    """The API server could not be reached; the message reads like Go's dial errors."""


class ApiFailure(Exception):
    def __init__(self, code: int, status: dict[str, Any]) -> None:
        super().__init__(status.get("message", f"HTTP {code}"))
        self.code = code
        self.status = status


def load_yaml(text: str) -> Any:
    """yaml.safe_load, with libyaml's parser where PyYAML has it (ten times faster: the
    simulated kubeadm parses kubeconfigs and the ClusterConfiguration on every run)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


# CA certificate -> an opener trusting it. In an agent farm, thousands of simulated commands
# reach the API server with each node's own kubeconfig but the same CA: a new TLS context and
# opener per command were a third of a simulated kubeadm's work.
_openers: dict[str, urllib.request.OpenerDirector] = {}


def _opener(ca: str) -> urllib.request.OpenerDirector:
    opener = _openers.get(ca)
    if opener is None:
        context = ssl.create_default_context(cadata=ca)
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        if len(_openers) >= 16:
            _openers.clear()
        _openers[ca] = opener
    return opener


class KubeClient:
    def __init__(self, kubeconfig: Path) -> None:
        config = load_yaml(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        self.server = cluster["server"].rstrip("/")
        self.token = config["users"][0]["user"]["token"]
        self.opener = _opener(base64.b64decode(cluster["certificate-authority-data"]).decode())

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json", timeout: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type,
                     "Accept": "application/json"})
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                status = json.loads(error.read())
            except ValueError:
                status = {"message": str(error)}
            raise ApiFailure(error.code, status) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            host = self.server.split("://", 1)[-1]
            raise ApiUnavailable(
                f'{method.title()} "{self.server}{path}": dial tcp {host}: connect: {reason}'
            ) from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/strategic-merge-patch+json")
