"""A thin wrapper over the official client: JSON in and out, errors mapped to ours.

Retryable: connection failures, 429 and 5xx (the API server restarting, a PDB refusing an
eviction) and a body that is not the JSON it should be. Permanent: everything else, with the
API's own message. With an outage tolerance, `call` itself keeps retrying the retryable ones
(with backoff) until the tolerance has elapsed; an eviction's 429 is the caller's to handle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from copy import copy
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3Error

from kubeupgrade.errors import InvalidInput, PermanentError, TemporaryError, not_utf8


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


# The kubeconfig loader's hook runs before every request to renew a token that expires (an
# exec plugin's), and sets the whole configuration again each time, the proxy lookup in the
# environment included: a tenth of every API call of the controller. The loader renews a token
# five minutes before it expires, so looking once a minute renews it in time all the same.
TOKEN_CHECK_SECONDS = 60.0


class _TokenCheck:
    """The loader's hook, run at most once a period. Each run of the loader's hook installs
    the hook again on the configuration, so this puts itself back after it, adopting the
    newly installed hook as the one to run next time."""

    def __init__(self, seconds: float, hook: Callable[[Any], None]) -> None:
        self.seconds = seconds
        self.hook = hook
        self.last = float("-inf")

    def __call__(self, configuration: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return
        self.last = now
        try:
            self.hook(configuration)
        finally:
            installed = getattr(configuration, "refresh_api_key_hook", None)
            if installed is not self:
                if installed is not None:
                    self.hook = installed
                configuration.refresh_api_key_hook = self


def unusable_kubeconfig(kubeconfig: str, error: BaseException) -> InvalidInput:
    """One line naming the kubeconfig and what is wrong with it. The client's loader raises
    whatever its parsing meets (a YAML error over several lines, a TypeError for a list where a
    mapping belongs, a decode error), none of which names the file."""
    if isinstance(error, UnicodeDecodeError):
        why = not_utf8(error)
    elif isinstance(error, yaml.YAMLError):
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        why = f"not valid YAML ({getattr(error, 'problem', None) or 'unreadable'}{where})"
    elif isinstance(error, (TypeError, AttributeError, KeyError)):
        why = "not shaped like a kubeconfig (a mapping of clusters, contexts and users)"
    elif isinstance(error, OSError):
        why = f"cannot read it ({error.strerror or error})"
    else:
        why = (str(error).splitlines() or [type(error).__name__])[0]
    return InvalidInput(f"kubeconfig {kubeconfig}: {why}; `kubectl --kubeconfig {kubeconfig} get nodes` "
                        "shows whether it works")


# A call failing for this long is worth telling the operator about; a blip of a retry or two is not.
OUTAGE_TOLD_AFTER = 2.0


def _dropped_connection(error: KubeUnavailable) -> bool:
    return not error.code and "unreachable (" in str(error) and "Timeout" not in str(error)


class KubeApi:
    def __init__(self, kubeconfig: str) -> None:
        # We retry ourselves, visibly and within the campaign's tolerance. Set before the client
        # is built: its connection pool reads it then, and urllib3's default (3 retries, each
        # waiting out the request timeout) made one call to a frozen API server last a minute.
        configuration = type.__call__(client.Configuration)  # not a copy of the process default
        configuration.retries = 0
        try:
            self._client = config.new_client_from_config(config_file=kubeconfig,
                                                         client_configuration=configuration)
        except (ConfigException, yaml.YAMLError, ValueError, TypeError, AttributeError, KeyError, OSError) as error:
            raise unusable_kubeconfig(kubeconfig, error) from None
        refresh = self._client.configuration.refresh_api_key_hook
        if refresh is not None:
            self._client.configuration.refresh_api_key_hook = _TokenCheck(TOKEN_CHECK_SECONDS, refresh)
        self.core = client.CoreV1Api(self._client)
        self.apps = client.AppsV1Api(self._client)
        self.policy = client.PolicyV1Api(self._client)
        self.outage_tolerance = 0.0
        self.on_outage: Callable[[str], None] | None = None

    def tolerating(self, seconds: float, on_outage: Callable[[str], None] | None = None) -> KubeApi:
        """The same client, retrying an unavailable API server for up to `seconds` per call.
        `on_outage` is told, once per call, when the API server has been unavailable for
        OUTAGE_TOLD_AFTER seconds: a phase then says what it waits for instead of only running."""
        view = copy(self)
        view.outage_tolerance = float(seconds)
        view.on_outage = on_outage
        return view

    def close(self) -> None:
        self._client.close()

    def call(self, what: str, method: Any, *args: Any, throttle_is_answer: bool = False,
             **kwargs: Any) -> Any:
        """Call a client method and return the decoded JSON body. `throttle_is_answer`: a 429
        means something to the caller (a PDB refusing an eviction) and is not retried here."""
        started = time.monotonic()
        deadline = started + self.outage_tolerance
        delay = 0.2
        told = tried_again = False
        while True:
            try:
                return self._call_once(what, method, *args, **kwargs)
            except KubeUnavailable as error:
                if throttle_is_answer and error.code == 429:
                    raise
                if not self.outage_tolerance and not tried_again and _dropped_connection(error):
                    # Tolerating nothing, a connection dropped under the request (a kept-alive
                    # one the server closed as it was reused) is still tried once more at once,
                    # as urllib3 used to do silently; a timeout is not (it would cost another).
                    tried_again = True
                    continue
                if time.monotonic() + delay > deadline:
                    if self.outage_tolerance:
                        raise KubeUnavailable(f"{error} (still failing after "
                                              f"{self.outage_tolerance:g}s)", error.status, error.code) from None
                    raise
                if not told and self.on_outage is not None and time.monotonic() - started >= OUTAGE_TOLD_AFTER:
                    told = True
                    self.on_outage(f"waiting for the API server (unavailable for {time.monotonic() - started:.0f}s): "
                                   f"{error}; retried for up to {self.outage_tolerance:g}s "
                                   "(policies.api_outage_tolerance)")
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _call_once(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
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
            if error.status == 403:  # the kubeconfig's identity lacks a rule: say where ours are
                message += ("; grant it to the kubeconfig's identity (deploy/kubernetes/ holds the "
                            "roles kubeupgrade needs)")
            if error.status == 404:
                raise KubeNotFound(message, status, 404) from None
            if error.status == 429 or error.status >= 500:
                raise KubeUnavailable(message, status, error.status) from None
            raise KubeRefused(message, status, error.status) from None
        except (Urllib3Error, OSError) as error:
            cause = getattr(error, "reason", None) or error  # a MaxRetryError names what failed
            raise KubeUnavailable(f"{what}: API server unreachable ({type(cause).__name__})") from None
        try:
            data = response.data  # read here: a connection lost while the body comes is as unreachable
        except (Urllib3Error, OSError) as error:
            raise KubeUnavailable(f"{what}: the API server's answer broke off ({type(error).__name__})") from None
        try:
            return json.loads(data) if data else {}
        except ValueError:
            raise KubeUnavailable(f"{what}: the API server answered a body that is not JSON "
                                  f"({len(data)} bytes)") from None
