"""A thin wrapper over the official client: JSON in and out, errors mapped to ours.

Retryable: connection failures, 429 and 5xx (the API server restarting, a PDB refusing an
eviction). Permanent: everything else, with the API's own message.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from kubeupgrade.errors import PermanentError, TemporaryError


class KubeUnavailable(TemporaryError):
    """The API server could not be reached or answered 5xx/429."""

    def __init__(self, message: str, status: dict[str, Any] | None = None, code: int = 0) -> None:
        super().__init__(message)
        self.status = status or {}
        self.code = code


class KubeRefused(PermanentError):
    def __init__(self, message: str, status: dict[str, Any] | None = None, code: int = 0) -> None:
        super().__init__(message)
        self.status = status or {}
        self.code = code


class KubeNotFound(KubeRefused):
    pass


class KubeApi:
    def __init__(self, kubeconfig: str) -> None:
        self._client = config.new_client_from_config(config_file=kubeconfig)
        self._client.configuration.retries = 0  # we retry ourselves, visibly
        self.core = client.CoreV1Api(self._client)
        self.apps = client.AppsV1Api(self._client)
        self.policy = client.PolicyV1Api(self._client)

    def close(self) -> None:
        self._client.close()

    def call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a client method and return the decoded JSON body."""
        kwargs.setdefault("_preload_content", False)
        kwargs.setdefault("_request_timeout", 15)
        try:
            response = method(*args, **kwargs)
        except ApiException as error:
            try:
                status = json.loads(error.body or "{}")
            except ValueError:
                status = {}
            message = f"{what}: {status.get('message') or error.reason} (HTTP {error.status})"
            if error.status == 404:
                raise KubeNotFound(message, status, 404) from None
            if error.status == 429 or error.status >= 500:
                raise KubeUnavailable(message, status, error.status) from None
            raise KubeRefused(message, status, error.status) from None
        except (Urllib3Error, OSError) as error:
            raise KubeUnavailable(f"{what}: API server unreachable ({type(error).__name__})") from None
        data = response.data
        return json.loads(data) if data else {}
