"""Start the long-running processes: a node agent, or the controller (+ the dispatcher)."""

from __future__ import annotations

import logging
import os
import threading

from kubeupgrade.workflow.names import CONTROLLER_QUEUE, agent_hostname, node_queue


def run_agent(node: str, broker: str, *, host_root: str = "/", path: str = "",
              os_family: str | None = None, loglevel: str = "INFO") -> None:
    """One Celery worker for one host: its own queue, one task at a time, prefork (so
    heartbeats, ping and time limits keep working while a task runs)."""
    os.environ.update(KUBEUPGRADE_NODE=node, KUBEUPGRADE_HOST_ROOT=host_root, KUBEUPGRADE_PATH=path)
    if os_family:
        os.environ["KUBEUPGRADE_OS"] = os_family
    from kubeupgrade.workflow.app import use_broker

    app = use_broker(broker)
    app.worker_main(["worker", "-Q", node_queue(node), "-n", agent_hostname(node),
                     "-P", "prefork", "-c", "1", "--prefetch-multiplier", "1", "-E",
                     "--without-gossip", "-l", loglevel])


def run_controller(kubeconfig: str, broker: str, *, concurrency: int = 8,
                   loglevel: str = "INFO") -> None:
    """The controller: cluster-level tasks on a thread pool, and the dispatcher thread."""
    os.environ["KUBEUPGRADE_KUBECONFIG"] = kubeconfig
    from celery.signals import worker_ready, worker_shutdown

    from kubeupgrade.workflow.app import use_broker
    from kubeupgrade.workflow.dispatcher import Dispatcher
    from kubeupgrade.workflow.record import CampaignStore

    app = use_broker(broker)
    stop = threading.Event()

    @worker_ready.connect(weak=False)
    def start_dispatcher(**_: object) -> None:
        dispatcher = Dispatcher(app, CampaignStore.from_url(broker), discover=discover_live)
        threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True,
                         name="dispatcher").start()
        logging.getLogger("kubeupgrade").info("dispatcher started")

    @worker_shutdown.connect(weak=False)
    def stop_dispatcher(**_: object) -> None:
        stop.set()

    app.worker_main(["worker", "-Q", CONTROLLER_QUEUE, "-n", "controller@%h", "-P", "threads",
                     "-c", str(concurrency), "-E", "--without-gossip", "-l", loglevel])


def discover_live(campaign):  # type: ignore[no-untyped-def]
    from kubeupgrade.kube.discovery import cluster_version, discover_nodes
    from kubeupgrade.workflow.controller_tasks import kube_api

    api = kube_api()
    return discover_nodes(api), cluster_version(api)
