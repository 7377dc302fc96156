"""Cluster phases ride out an API-server outage for the campaign's tolerance, and no longer."""

from __future__ import annotations

import contextlib
import os
import ssl
import time
from types import SimpleNamespace

import pytest

from kubeupgrade.kube.client import KubeApi, KubeUnavailable
from kubeupgrade.kube.nodes import list_nodes

pytestmark = pytest.mark.integration


def test_a_call_waits_out_an_outage_shorter_than_the_tolerance(make_sandbox):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    box.api_down(2.0)
    started = time.monotonic()
    assert len(list_nodes(api.tolerating(30))) == 2
    assert time.monotonic() - started >= 1.0  # it really waited for the server to come back


def test_an_outage_longer_than_the_tolerance_fails_naming_it(make_sandbox):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    box.api_down(4.0)
    with pytest.raises(KubeUnavailable) as failed:
        list_nodes(api.tolerating(1))
    assert "still failing after 1s" in str(failed.value)
    # Back once the server is: waited for, since a slow machine takes seconds to restart it.
    assert len(list_nodes(api.tolerating(60))) == 2


def test_a_body_that_is_not_json_is_retryable(make_sandbox):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    answers = iter([b"<html>proxy error</html>", b'{"items": []}'])

    def flaky(**_):
        return SimpleNamespace(data=next(answers))

    assert api.tolerating(5).call("list things", flaky) == {"items": []}
    with pytest.raises(KubeUnavailable, match="not JSON"):
        api.call("list things", lambda **_: SimpleNamespace(data=b"<html>"))


def test_an_answer_that_breaks_off_is_retryable(make_sandbox):
    """A connection lost while the body comes (the server restarting mid-answer, a TLS session
    gone bad) is the API server unreachable, retried within the tolerance: not an error the
    phase was never told about."""
    from urllib3.exceptions import ProtocolError

    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    api = KubeApi(str(box.kubeconfig))
    reads = iter([ProtocolError("Connection broken: IncompleteRead"), ssl.SSLError("bad record mac"), b"{}"])

    class Answer:
        @property
        def data(self):
            read = next(reads)
            if isinstance(read, Exception):
                raise read
            return read

    assert api.tolerating(5).call("read a node", lambda **_: Answer()) == {}
    reads = iter([ProtocolError("Connection broken")])
    with pytest.raises(KubeUnavailable, match="broke off"):
        api.call("read a node", lambda **_: Answer())


def test_a_process_forked_from_the_controller_keeps_no_connection_of_its_parent(make_sandbox, monkeypatch):
    """A pool process that replaces one that died is forked from the controller's main process,
    which holds open API connections. Both go on calling the API server; neither sees an error,
    so the child did not write on the parent's TLS sessions."""
    from kubeupgrade.workflow.controller_tasks import kube_api

    box = make_sandbox(control_planes=1, workers=2, version="1.30.4")
    monkeypatch.setenv("KUBEUPGRADE_KUBECONFIG", str(box.kubeconfig))
    parents = kube_api()
    assert kube_api() is parents, "one client per process, its connections kept"
    list_nodes(parents)  # a connection open, kept in the pool
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which reports through the pipe
        outcome = "ok"
        try:
            api = kube_api()
            if api is parents:
                outcome = "the child uses its parent's client"
            for _ in range(20):
                list_nodes(api)
        except BaseException as error:  # noqa: BLE001 - reported to the parent, whatever it is
            outcome = f"{type(error).__name__}: {error}"
        os.write(write, outcome.encode()[:500])
        os._exit(0)
    os.close(write)
    failures = []
    for _ in range(20):
        try:
            list_nodes(parents)
        except Exception as error:  # noqa: BLE001 - counted: there must be none
            failures.append(f"{type(error).__name__}: {error}")
    os.waitpid(child, 0)
    with os.fdopen(read) as reported:
        assert reported.read() == "ok"
    assert failures == []


@contextlib.contextmanager
def stand_in_api_server(box, tmp_path, on_connection):
    """A TCP server in place of the API server (`on_connection(socket)` for each connection it
    accepts) and a KubeApi whose kubeconfig points at it; yields the API and the connections
    counted."""
    import socket
    import threading

    import yaml

    accepted = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        def accept():
            while True:
                try:
                    connection = server.accept()[0]
                except OSError:
                    return
                accepted.append(connection)
                on_connection(connection)

        threading.Thread(target=accept, daemon=True).start()
        kubeconfig = yaml.safe_load(box.kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{server.getsockname()[1]}"
        (tmp_path / "stand-in.conf").write_text(yaml.safe_dump(kubeconfig))
        try:
            yield KubeApi(str(tmp_path / "stand-in.conf")), accepted
        finally:
            for connection in accepted:
                connection.close()


def test_a_frozen_api_server_costs_one_connection_a_try_and_the_phase_is_told(make_sandbox, tmp_path):
    """An API server that accepts connections and never answers (frozen: the kernel completes
    the connects). urllib3 must not try again on its own: its default is three more tries,
    silent, each waiting out the request timeout, which made one call last a minute. And a
    phase is told once the outage has lasted OUTAGE_TOLD_AFTER."""
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    told = []
    with stand_in_api_server(box, tmp_path, lambda connection: None) as (api, accepted):  # never answered
        with pytest.raises(KubeUnavailable, match="unreachable"):
            api.call("read node cp-1", api.core.read_node, "cp-1", _request_timeout=0.3)
        assert len(accepted) == 1
        with pytest.raises(KubeUnavailable, match="still failing after 6s"):
            api.tolerating(6, on_outage=told.append).call("read node cp-1", api.core.read_node, "cp-1",
                                                            _request_timeout=0.3)
    assert len(told) == 1 and told[0].startswith("waiting for the API server (unavailable for ")
    assert "read node cp-1: API server unreachable" in told[0]
    assert told[0].endswith("retried for up to 6s (policies.api_outage_tolerance)")


def test_a_connection_dropped_under_a_call_tolerating_nothing_is_tried_once_more_and_no_more(make_sandbox, tmp_path):
    """With urllib3's own retries off, a call that tolerates no outage (submit's discovery,
    doctor) still gets one immediate second try when its connection is dropped under it (a
    kept-alive connection the server closed as it was reused), as urllib3 gave it silently;
    never a third."""
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4")
    with stand_in_api_server(box, tmp_path, lambda connection: connection.close()) as (api, accepted):
        with pytest.raises(KubeUnavailable, match="read node cp-1: API server unreachable"):
            api.call("read node cp-1", api.core.read_node, "cp-1", _request_timeout=2)
        time.sleep(0.2)
        assert len(accepted) == 2
