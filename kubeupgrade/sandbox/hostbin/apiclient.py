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


# kubeconfig text -> (server, token, TLS context). In an agent farm, thousands of simulated
# commands read the same few kubeconfigs: parsing the YAML and loading the CA into a new TLS
# context were a third of a simulated kubeadm's work. A changed file is a new text.
_made: dict[str, tuple[str, str, ssl.SSLContext]] = {}


class KubeClient:
    def __init__(self, kubeconfig: Path) -> None:
        text = kubeconfig.read_text()
        made = _made.get(text)
        if made is None:
            config = yaml.safe_load(text)
            cluster = config["clusters"][0]["cluster"]
            context = ssl.create_default_context(
                cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
            made = (cluster["server"].rstrip("/"), config["users"][0]["user"]["token"], context)
            if len(_made) >= 64:
                _made.clear()
            _made[text] = made
        self.server, self.token, self.context = made

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json", timeout: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.server + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type,
                     "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.context) as response:
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
