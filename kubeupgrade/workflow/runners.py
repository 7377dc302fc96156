"""Start the long-running processes: a node agent, or the controller (+ the dispatcher)."""

from __future__ import annotations

import gc
import logging
import os
import platform
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from celery import Celery

from kubeupgrade.workflow.names import CONTROLLER_QUEUE, agent_hostname, node_queue
from kubeupgrade.workflow.waiting import PROCESSES_ENV, make_wait_slots

if TYPE_CHECKING:
    from kubeupgrade.security.messages import MessageIdentity
    from kubeupgrade.workflow.liveness import AgentHeartbeat
    from kubeupgrade.workflow.retention import RetentionPolicy

AGENT_POLL_SECONDS = 5.0


def require_message_identity(unsigned_messages: bool) -> MessageIdentity | None:
    """The identity this process signs and verifies its messages with: it must have one, unless
    the operator chose --unsigned-messages (then None: a broker credential alone can queue tasks
    again; campaign signatures still stand between them and a host)."""
    from kubeupgrade.errors import InvalidInput
    from kubeupgrade.security.messages import CERT_ENV, KEY_ENV, TRUST_ENV, MessageIdentity

    identity = MessageIdentity.from_env()
    if identity is not None:
        return identity
    if unsigned_messages:
        logging.getLogger("kubeupgrade").warning(
            "messages are not signed (--unsigned-messages): anyone who can write to the broker "
            "can queue tasks")
        return None
    raise InvalidInput(f"no message-signing identity: set {KEY_ENV}, {CERT_ENV} and {TRUST_ENV} "
                       "(`kubeupgrade keys messages DIR` makes them), or pass --unsigned-messages")


def run_agent(node: str, broker: str, *, host_root: str = "/", path: str = "",
              os_family: str | None = None, loglevel: str = "INFO",
              unsigned_messages: bool = False) -> None:
    """One Celery worker for one host: its own queue, one task at a time, prefork (so its
    heartbeat key and time limits keep working while a task runs). Built for thousands of
    agents on one broker: no mingle, no gossip, no worker heartbeat events (task events stay
    for Flower); liveness is the `ku:agent:<node>` key (kubeupgrade.workflow.liveness)."""
    signed = require_message_identity(unsigned_messages) is not None
    from kubeupgrade.workflow.agent_identity import HOST_ROOT_ENV, NODE_ENV, OS_ENV, PATH_ENV

    # Whom this agent serves (agent_identity.current), inherited by its pool process.
    os.environ.update({NODE_ENV: node, HOST_ROOT_ENV: host_root, PATH_ENV: path})
    if os_family:
        os.environ[OS_ENV] = os_family

    from kubeupgrade.workflow.agent_connections import limit_connections
    from kubeupgrade.workflow.app import use_broker
    from kubeupgrade.workflow.liveness import AgentHeartbeat
    from kubeupgrade.workflow.record import CampaignStore

    app = use_broker(broker)
    # An agent knows only the host phases: a controller task sent to its queue is refused as
    # unregistered instead of running with root on this host.
    app.conf.include = ["workers.node_tasks"]
    # No remote control: nothing that can PUBLISH to Redis can shut an agent down or change
    # it, and an agent holds no pub/sub connection. Revoking is not needed either: a task of
    # an aborted campaign finds it so in the record and runs nothing.
    app.conf.worker_enable_remote_control = False
    # An idle agent blocks on its queue for 5 s per BRPOP (polling_interval sets kombu's BRPOP
    # timeout) instead of 1 s; a message still wakes it at once. Longer would also delay its
    # shutdown, which waits for the pop to return. The sandbox's short-lived stacks set 1 s
    # (KUBEUPGRADE_AGENT_POLL): their teardown would otherwise wait the 5 s out every time.
    try:
        poll = float(os.environ.get("KUBEUPGRADE_AGENT_POLL") or AGENT_POLL_SECONDS)
    except ValueError:
        from kubeupgrade.errors import InvalidInput

        raise InvalidInput(f"KUBEUPGRADE_AGENT_POLL={os.environ['KUBEUPGRADE_AGENT_POLL']!r}: "
                           "expected seconds, such as 5") from None
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "polling_interval": poll}
    limit_connections(app, node_queue(node))  # four broker connections between tasks (agent_connections)
    from kubeupgrade.workflow import agent_identity

    # Which host this agent acts on, for `doctor` to compare with the Node's machineID.
    machine = agent_identity.host_machine_id(agent_identity.current())
    beat_while_serving(AgentHeartbeat(CampaignStore.from_url(broker).redis, node,
                                      describe=lambda: {**agent_description(), "signed_messages": signed,
                                                        "machine_id": machine}))

    # Windows has no fork: its agent runs the task in a thread (the liveness threads and the
    # command's own timeout work the same way), in a pool that reports every end of a task
    # (thread_pool.py). Chosen by the configuration: `-P` takes only Celery's own pool names.
    from kubeupgrade.workflow.thread_pool import POOL_NAME
    from workers.host_context import detect_family

    app.conf.worker_pool = POOL_NAME if detect_family().value == "windows" else "prefork"
    share_heap_with_pool()
    run_worker(app, ["worker", "-Q", node_queue(node), "-n", agent_hostname(node),
                     "-c", "1", "--prefetch-multiplier", "1", "-E",
                     "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", loglevel])


def share_heap_with_pool() -> None:
    """Keep what this process holds when it forks a pool process shared with it, page for page.
    The child writes a page it shares (and so gets its own copy) whenever its collector examines
    an object on it; a frozen object the collector leaves be. Freezing once, before Celery's own
    start-up, left what the worker built after it unfrozen: each controller pool process then
    copied ~7 MiB at rest (17 -> 10 MiB private with this, measured by `Private_Dirty`).
    Freezing again before each fork covers that and a pool process replaced later; garbage is
    collected first, so a cycle dropped before a fork is freed, not kept for ever."""
    if not hasattr(os, "register_at_fork"):  # Windows: no fork (its agent uses threads)
        return
    os.register_at_fork(before=_freeze_before_fork)


def _freeze_before_fork() -> None:
    gc.collect()
    gc.freeze()


def beat_while_serving(heartbeat: AgentHeartbeat) -> None:
    """Refresh the liveness keys from when the worker is ready until it shuts down."""
    from celery.signals import worker_ready, worker_shutdown

    @worker_ready.connect(weak=False)
    def announce(**_: object) -> None:
        heartbeat.start()

    @worker_shutdown.connect(weak=False)
    def withdraw(**_: object) -> None:
        heartbeat.stop()


def agent_description() -> dict[str, object]:
    """What an agent's liveness key says: its version, the operator keys it trusts, its Python."""
    from kubeupgrade import __version__
    from kubeupgrade.security.authorize import trusted_dir
    from kubeupgrade.security.hooks import ALLOWLIST_ENV
    from kubeupgrade.security.signing import trusted_keys

    try:
        trusts = sorted(trusted_keys(trusted_dir()))
    except Exception:  # noqa: BLE001 - an unreadable directory trusts nobody; doctor says so
        trusts = []
    return {"version": __version__, "trusts": trusts, "python": platform.python_version(),
            "hooks_allowlist": bool(os.environ.get(ALLOWLIST_ENV))}


def run_controller(kubeconfig: str, broker: str, *, concurrency: int = 8, pool_nice: int = 0,
                   loglevel: str = "INFO", metrics: tuple[str, int, str] | None = None,
                   retention: RetentionPolicy | None = None, unsigned_messages: bool = False) -> None:
    """The controller: cluster-level tasks on a prefork pool (the threads pool does not survive
    some broker reconnections), and the dispatcher thread in the main process; the pool
    processes run `pool_nice` nicer than it (kubeupgrade.cli.engine.POOL_NICE)."""
    identity = require_message_identity(unsigned_messages)
    if identity is not None:
        from kubeupgrade.workflow import seal

        # Keyed from the controller's own message key, before the pool forks (seal.py).
        seal.use(seal.RecordSeal.from_key_file(identity.key))
    os.environ["KUBEUPGRADE_KUBECONFIG"] = kubeconfig
    from celery.signals import worker_process_init, worker_ready, worker_shutdown

    from kubeupgrade.errors import RuntimeFailure
    from kubeupgrade.workflow.controller_tasks import kube_api

    # Read the kubeconfig now, in the main process (whose client the dispatcher and the events
    # use): one it cannot use stops the command with a line naming it, instead of a controller
    # that consumes tasks with no dispatcher behind it.
    kube_api()

    from kubeupgrade.kube.events import EventRecorder
    from kubeupgrade.workflow.app import sender_app, use_broker
    from kubeupgrade.workflow.broker_memory import refuse_evicting_broker
    from kubeupgrade.workflow.dispatcher import Dispatcher
    from kubeupgrade.workflow.notify import Notifier
    from kubeupgrade.workflow.record import CampaignStore

    # A broker that may evict a record or a cluster lock breaks the promises silently: refused
    # here, in one line, before anything is consumed (broker_memory.py).
    warning = refuse_evicting_broker(CampaignStore.from_url(broker).redis)
    if warning:
        logging.getLogger("kubeupgrade").warning(warning)
    app = use_broker(broker)
    app.conf.include = ["kubeupgrade.workflow.controller_tasks"]  # and no host phase
    # No remote control here either: no control message, signed or not, shuts the controller
    # down or changes its pool. Nothing needs it: liveness is the leader key, and a pending task
    # of an aborted campaign finds it so in the record (begin_phase) and runs nothing.
    app.conf.worker_enable_remote_control = False
    stop = threading.Event()
    if metrics is not None:
        from kubeupgrade.errors import InvalidInput
        from kubeupgrade.workflow.metrics import serve_metrics

        address, port, credentials = metrics
        try:
            serve_metrics(CampaignStore.from_url(broker), address, port, credentials)
        except OSError as error:
            raise InvalidInput(f"--metrics-port {port}: cannot listen on {address}:{port}: {error}") from None

    not_started: list[str] = []  # why the dispatcher did not start, if it did not

    @worker_ready.connect(weak=False)
    def start_dispatcher(**_: object) -> None:
        try:
            _start_threads()
        except Exception as error:  # noqa: BLE001 - said in one line, and the controller stops
            not_started.append(f"{type(error).__name__}: {error}".splitlines()[0])
            logging.getLogger("kubeupgrade").critical("the dispatcher did not start (%s); stopping", not_started[0])
            stop.set()
            os.kill(os.getpid(), signal.SIGTERM)  # a controller without its dispatcher decides nothing

    def _start_threads() -> None:
        # Its own app (and so its own connections): sharing the worker's from another thread
        # breaks the worker's reconnection after a broker restart.
        from kubeupgrade.kube.availability import AvailabilityPoller, read_out_of_service
        from kubeupgrade.kube.control_planes_seen import ControlPlaneWatch
        from kubeupgrade.kube.discovery import control_plane_behind
        from kubeupgrade.workflow.liveness import wake

        # The cluster's workers out of service, whoever took them out: they count against the
        # campaign's limit too. Read in a thread of its own, so a slow list never holds a tick.
        availability = AvailabilityPoller(lambda: read_out_of_service(kube_api()))
        threading.Thread(target=availability.run_forever, args=(stop,), daemon=True,
                         name="availability").start()
        # The cluster's word that the control planes run the version before a worker changes
        # (the record's alone can be an agent's), in a thread of its own; its answer wakes the
        # dispatcher.
        store = CampaignStore.from_url(broker)
        control_planes = ControlPlaneWatch(lambda node, version: control_plane_behind(kube_api(), node, version),
                                           answered=lambda: wake(store.redis))
        threading.Thread(target=control_planes.run_forever, args=(stop,), daemon=True,
                         name="control-planes").start()
        dispatcher = Dispatcher(sender_app(broker), store,
                                discover=discover_live, identify=identify_live,
                                narrate=EventRecorder(kube_api()).record, availability=availability,
                                control_planes=control_planes)
        threading.Thread(target=dispatcher.run_forever, args=(stop,), daemon=True,
                         name="dispatcher").start()
        notifier = Notifier(CampaignStore.from_url(broker).redis)
        threading.Thread(target=notifier.run_forever, args=(stop,), daemon=True, name="notifier").start()
        if retention is not None and retention.days > 0:
            from kubeupgrade.workflow import retention as keeping

            threading.Thread(target=keeping.run_forever, args=(CampaignStore.from_url(broker), retention, stop),
                             daemon=True, name="retention").start()
        logging.getLogger("kubeupgrade").info("dispatcher started")

    @worker_shutdown.connect(weak=False)
    def stop_dispatcher(**_: object) -> None:
        stop.set()

    @worker_process_init.connect(weak=False)
    def be_nicer(**_: object) -> None:
        # In each pool process as it starts (a replaced one too), before it starts a thread: a
        # thread takes its creator's niceness, and Linux keeps it per thread.
        if pool_nice and hasattr(os, "nice"):
            os.nice(pool_nice)

    load_cluster_client()
    share_heap_with_pool()
    os.environ[PROCESSES_ENV] = str(concurrency)  # its pool paces its looks by it (waiting.paced)
    make_wait_slots(concurrency)  # and half of it waits in its tasks (waiting.wait_slot)
    # No mingle either: it asks the other workers for their revoked tasks by a control message
    # (nobody answers, and nothing is revoked), and its user has no right to control messages.
    try:
        run_worker(app, ["worker", "-Q", CONTROLLER_QUEUE, "-n", "controller@%h", "-P", "prefork",
                         "-c", str(concurrency), "-E", "--without-gossip", "--without-mingle", "-l", loglevel])
    except SystemExit as done:
        if not_started and not done.code:
            raise RuntimeFailure(f"the dispatcher did not start: {not_started[0]}") from None
        raise


def load_cluster_client() -> None:
    """Import the kubernetes client and our modules that use it before the pool forks. Its API
    classes build their validators when first touched (~4 s of CPU here, ~5 s with the client's
    own import): in each pool process, on its first cluster phase, had they been left to it
    (80 CPU-seconds at the start of a campaign with 16 processes on 2 cores)."""
    import importlib
    import pkgutil

    from kubernetes import client

    import kubeupgrade.kube

    for api in ("CoreV1Api", "AppsV1Api", "PolicyV1Api"):
        getattr(client, api)  # the client loads each API module on first access
    for module in pkgutil.iter_modules(kubeupgrade.kube.__path__):
        importlib.import_module(f"kubeupgrade.kube.{module.name}")


# How many times in a row this command has restarted itself, carried across the exec.
RESTARTS_ENV = "KUBEUPGRADE_RESTARTS_IN_A_ROW"
STARTED = time.monotonic()  # when this process began (an exec starts it over)
RESTART_PAUSE_MAX = 10.0  # seconds
SETTLED_AFTER = 60.0  # seconds up before a restart counts as the first again


def restart_pause(in_a_row: int, uptime: float) -> float:
    """Seconds to wait before restarting: 1 s, doubling with each restart in a row up to
    RESTART_PAUSE_MAX, and 1 s again once the process had run SETTLED_AFTER. A broker that
    refuses what a worker does at start (out of memory, say) would otherwise have every agent
    restart every second and a half for as long as it lasts, all against that broker."""
    if uptime >= SETTLED_AFTER:
        return 1.0
    return min(RESTART_PAUSE_MAX, 2.0 ** max(0, in_a_row))


def _restarts_in_a_row() -> int:
    try:
        return max(0, int(os.environ.get(RESTARTS_ENV, "0")))
    except ValueError:
        return 0


class _RestartOnUnrecoverable(logging.Handler):
    """Some broker reconnections end in Celery's "Unrecoverable error" (a closed kombu channel
    meets a reconnecting redis client; a broker out of memory refuses an acknowledgement),
    after which the worker hangs while stopping. Treat it like a crash: restart this very
    command (as systemd's Restart=always would, but sooner), pausing longer each time in a row
    (restart_pause). Tasks in flight are redelivered or, if not, re-sent by the dispatcher's
    lost-task check."""

    restarting = threading.Event()  # once per process: a second such line changes nothing

    def emit(self, record: logging.LogRecord) -> None:
        if (record.levelno >= logging.CRITICAL and "Unrecoverable error" in record.getMessage()
                and not self.restarting.is_set()):
            self.restarting.set()
            threading.Timer(_pause_before_restart(), _restart_self).start()


def _pause_before_restart() -> float:
    uptime = time.monotonic() - STARTED
    pause = restart_pause(_restarts_in_a_row(), uptime)
    os.environ[RESTARTS_ENV] = "0" if uptime >= SETTLED_AFTER else str(_restarts_in_a_row() + 1)
    logging.getLogger("kubeupgrade").warning("restarting in %gs", pause)
    return pause


def _restart_self() -> None:
    if os.name != "posix":  # Windows: no /proc and no exec; the service manager restarts us
        os._exit(1)
    for pid in _children():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.execv(sys.executable, _own_argv())


def _own_argv() -> list[str]:
    """This process's command line, to start it again (sys.orig_argv from Python 3.10; the
    agent also runs on 3.9, where a `-m` start is rebuilt from the main module's name)."""
    original = getattr(sys, "orig_argv", None)
    if original:
        return list(original)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return [sys.executable, "-m", module, *sys.argv[1:]]
    return [sys.executable, *sys.argv]


def _children() -> list[int]:
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == me:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def run_worker(app: Celery, argv: list[str]) -> None:
    """Run the Celery worker; if it dies of an error, start this command again."""
    logging.getLogger("celery").addHandler(_RestartOnUnrecoverable(logging.CRITICAL))
    try:
        app.worker_main(argv)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    if code != 0:
        if os.name != "posix":  # the Windows service restarts it (NSSM: AppExit Restart)
            sys.exit(code)
        logging.getLogger("kubeupgrade").warning("worker exited with %s", code)
        time.sleep(_pause_before_restart())
        os.execv(sys.executable, _own_argv())
    sys.exit(0)


def discover_live(campaign):  # type: ignore[no-untyped-def]
    from kubeupgrade.kube.discovery import cluster_version, discover_nodes
    from kubeupgrade.workflow.controller_tasks import kube_api

    api = kube_api()
    return discover_nodes(api), cluster_version(api)


def identify_live():  # type: ignore[no-untyped-def]
    from kubeupgrade.kube.identity import read_identity
    from kubeupgrade.workflow.controller_tasks import kube_api

    return read_identity(kube_api())
