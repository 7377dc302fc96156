"""`kubeupgrade doctor`: before a campaign, check what it will need, one row per check, each
failing row with the one thing to do about it.

- the broker: it answers, over TLS unless it is on this host, and a controller is leading;
- the operator's signing key: it loads;
- with a kubeconfig (the controller's): the API server answers, and the identity holds every
  right the controller uses, probed with reads and dry-run writes (dryRun=All: authorised and
  admitted as the real request would be, stored nowhere);
- the agents: every node (the cluster's, or the campaign's) has a live agent, of this version,
  that trusts the operator's key (each agent's liveness key says what it trusts);
- with a kubeconfig and the broker: no node cordoned by a kubeupgrade campaign that nothing
  acts on any more (one the broker lost with its data, or one that ended).

Nothing here changes anything: no write without dryRun, no task sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubeupgrade import __version__
from kubeupgrade.model.wording import some_names

LOOPBACK = ("127.0.0.1", "localhost", "::1")
NAMED = 10  # nodes named in a finding; the count of the others follows


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # what to do, when not ok


def check_broker(broker: str) -> tuple[list[Check], Any]:
    """(rows, a redis client or None when it does not answer)."""
    import redis

    from kubeupgrade.workflow.broker_memory import FIX, read_memory
    from kubeupgrade.workflow.record import LEADER_KEY, CampaignStore

    url = urlsplit(broker)
    if url.scheme not in ("redis", "rediss", "unix"):  # named without the value: it may hold a password
        return [Check("broker", False, "the broker is not a redis://, rediss:// or unix:// URL",
                      "fix --broker / $KUBEUPGRADE_BROKER")], None
    where = f"{url.hostname}:{url.port or 6379}" if url.hostname else url.path
    try:
        store = CampaignStore.from_url(broker)
        store.redis.ping()
    except (redis.RedisError, OSError, ValueError) as error:
        return [Check("broker", False, f"{where} does not answer: {error}",
                      "start redis-server there, or fix --broker / $KUBEUPGRADE_BROKER")], None
    rows = [Check("broker", True, f"{where} answers")]
    local = url.hostname in LOOPBACK
    tls = url.scheme == "rediss"
    rows.append(Check("broker TLS", tls or local, "rediss://" if tls else
                      ("plain redis:// on this host" if local else "plain redis:// across the network"),
                      "use rediss:// with the TLS settings of deploy/redis/kubeupgrade-redis.conf"))
    try:
        answer = store.redis.execute_command("ACL", "WHOAMI")
        user = answer.decode() if isinstance(answer, bytes) else str(answer)
    except redis.RedisError:
        user = "unknown"
    # The operator's commands need the cli role; default (every right, often no password) and
    # admin are for maintenance on the broker's own host.
    broad = user in ("default", "admin")
    rows.append(Check("broker user", local or not broad, f"connected as {user}" +
                      (" (every right)" if broad else ""),
                      "connect as the cli user of `kubeupgrade keys broker-users` (its cli.env)"))
    try:
        leading = store.redis.get(LEADER_KEY) is not None
    except redis.RedisError as error:  # an ACL user without the right to read it
        return [*rows, Check("controller", False, f"cannot read {LEADER_KEY}: {error}",
                             "give this broker user the cli role of deploy/redis")], store.redis
    rows.append(Check("controller", leading, "a controller is leading" if leading else
                      "no controller is running against this broker",
                      "start it: systemctl start kubeupgrade-controller (or kubeupgrade controller)"))
    memory = read_memory(store.redis)
    if memory is not None:
        evicts = memory.evicts_any_key or memory.evicts_expiring_keys
        rows.append(Check("broker memory", not evicts and not memory.nearly_full, memory.describe(),
                          FIX if evicts else "raise maxmemory, or `kubeupgrade prune` ended campaigns"))
    return rows, store.redis


def check_key(key: str | None) -> tuple[Check, str | None]:
    from kubeupgrade.errors import KubeupgradeError
    from kubeupgrade.security.signing import key_id, load_private_key, signing_key_path

    path = signing_key_path(key)
    try:
        loaded = load_private_key(path)
    except KubeupgradeError as error:
        return Check("operator key", False, str(error), "kubeupgrade keys create"), None
    identity = key_id(loaded.public_key())
    return Check("operator key", True, f"{path} (key {identity})"), identity


# What the controller does on a cluster, each as a request that changes nothing.
Probe = tuple[str, Callable[[Any, dict[str, Any]], Any]]


def _probes() -> list[Probe]:
    return [
        ("list nodes", lambda api, seen: api.core.list_node(limit=1, _preload_content=False)),
        ("patch nodes", lambda api, seen: api.core.patch_node(seen["node"], {"metadata": {"labels": {}}},
                                                               dry_run="All")),
        ("list pods", lambda api, seen: api.core.list_pod_for_all_namespaces(limit=1, _preload_content=False)),
        ("create pods/eviction", lambda api, seen: api.core.create_namespaced_pod_eviction(
            seen["pod"][1], seen["pod"][0], {"apiVersion": "policy/v1", "kind": "Eviction",
                                             "metadata": {"name": seen["pod"][1], "namespace": seen["pod"][0]}},
            dry_run="All")),
        ("list poddisruptionbudgets", lambda api, seen: api.policy.list_pod_disruption_budget_for_all_namespaces(
            limit=1, _preload_content=False)),
        ("create events", lambda api, seen: api.core.create_namespaced_event("default", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"generateName": "kubeupgrade-doctor-"},
            "involvedObject": {"kind": "Node", "name": seen["node"]}, "reason": "Doctor",
            "message": "kubeupgrade doctor: a dry run", "type": "Normal"}, dry_run="All")),
        ("get namespaces/kube-system", lambda api, seen: api.core.read_namespace("kube-system")),
        ("get configmaps/kubeadm-config", lambda api, seen: api.core.read_namespaced_config_map(
            "kubeadm-config", "kube-system")),
        ("list daemonsets in kube-system", lambda api, seen: api.apps.list_namespaced_daemon_set(
            "kube-system", _preload_content=False)),
        ("patch daemonsets in kube-system", lambda api, seen: api.apps.patch_namespaced_daemon_set(
            "kube-proxy", "kube-system", {"metadata": {"labels": {}}}, dry_run="All")),
        ("get deployments/coredns", lambda api, seen: api.apps.read_namespaced_deployment("coredns", "kube-system")),
    ]


@dataclass(frozen=True)
class ClusterFacts:
    """What the later checks need of the cluster's nodes."""

    nodes: list[str]
    machine_ids: dict[str, str]  # node -> its host's machine id, where reported
    cordons: dict[str, str]  # node -> the kubeupgrade campaign that holds it cordoned


def check_cluster(kubeconfig: str) -> tuple[list[Check], ClusterFacts]:
    """(rows, what the cluster's nodes say): the API server and the controller's rights."""
    from kubernetes.client.rest import ApiException

    from kubeupgrade.errors import KubeupgradeError
    from kubeupgrade.kube.client import KubeApi
    from kubeupgrade.kube.discovery import machine_id_of
    from kubeupgrade.kube.identity import read_identity
    from kubeupgrade.kube.nodes import cordoned_by

    nothing = ClusterFacts([], {}, {})
    try:
        api = KubeApi(kubeconfig)
    except Exception as error:  # noqa: BLE001 - a kubeconfig that does not load
        return [Check("kubeconfig", False, f"{kubeconfig}: {error}", "pass the controller's kubeconfig")], nothing
    try:
        try:
            identity = read_identity(api)
            listed = api.call("list nodes", api.core.list_node)["items"]
        except KubeupgradeError as error:
            return [Check("cluster", False, str(error), "check the kubeconfig's server and credentials")], nothing
        nodes = [n["metadata"]["name"] for n in listed]
        machine_ids = {n["metadata"]["name"]: found for n in listed if (found := machine_id_of(n))}
        cordons = {n["metadata"]["name"]: str(owner) for n in listed if (owner := cordoned_by(n))}
        rows = [Check("cluster", True, identity.describe())]
        try:  # one pod to aim the dry-run eviction at (a 403 here is the "list pods" row's)
            pods = api.call("list a pod", api.core.list_pod_for_all_namespaces, limit=1)["items"]
        except KubeupgradeError:
            pods = []
        seen = {"node": nodes[0] if nodes else "none",
                "pod": next(((p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods),
                            ("default", "none"))}
        missing = []
        for right, probe in _probes():
            try:
                probe(api, seen)
            except ApiException as error:
                if error.status == 403:
                    missing.append(right)
                # 404, 409, 429 (a budget refusing the dry-run eviction): authorised all the same
        rows.append(Check("controller RBAC", not missing,
                          "every right the controller uses" if not missing else "missing: " + ", ".join(missing),
                          "apply deploy/kubernetes/controller-rbac.yaml and use its ServiceAccount"))
        return rows, ClusterFacts(nodes, machine_ids, cordons)
    finally:
        api.close()


def check_agents(client: Any, nodes: list[str], key: str | None,
                 machine_ids: dict[str, str] | None = None) -> list[Check]:
    from kubeupgrade.workflow.liveness import agent_descriptions

    described = agent_descriptions(client, nodes)
    silent = [n for n in nodes if n not in described]
    rows = [Check("agents", not silent, f"{len(described)}/{len(nodes)} live" +
                  (f"; none on: {some_names(silent, NAMED)}" if silent else ""),
                  "start kubeupgrade-agent on those nodes (`kubeupgrade bootstrap agents` installs it)")]
    other = [n for n, d in described.items() if d.get("version") != __version__]
    rows.append(Check("agent versions", not other, f"all {__version__}" if not other else
                      "another version on: " + some_names(
                          [f"{n} ({described[n].get('version', 'unknown')})" for n in other], NAMED),
                      f"install kubeupgrade {__version__} on those nodes"))
    unsigned = [n for n, d in described.items() if d.get("signed_messages") is not True]
    rows.append(Check("agents verify messages", not unsigned,
                      "every live agent accepts only signed tasks" if not unsigned else
                      "unsigned tasks accepted on: " + some_names(unsigned, NAMED),
                      "give those agents KUBEUPGRADE_MESSAGE_KEY/CERT/TRUST (kubeupgrade keys "
                      "messages) and drop --unsigned-messages"))
    if machine_ids:
        rows.append(check_agent_hosts(described, machine_ids))
    if key is not None:
        distrustful = [n for n, d in described.items() if key not in (d.get("trusts") or [])]
        rows.append(Check("agents trust the key", not distrustful,
                          f"every live agent trusts key {key}" if not distrustful else
                          f"key {key} is not trusted on: {some_names(distrustful, NAMED)}",
                          "install operator.pub in /etc/kubeupgrade/trusted on those nodes "
                          "(`kubeupgrade bootstrap agents --trusted-key`)"))
    return rows


def check_agent_hosts(described: dict[str, dict[str, object]], machine_ids: dict[str, str]) -> Check:
    """Each live agent on its own node's host: the machine id it reads there is the one the
    node's kubelet reports (an agent elsewhere refuses every phase: workflow/phase.py)."""
    owners = {machine: node for node, machine in machine_ids.items()}
    wrong = []
    for node, description in sorted(described.items()):
        found = description.get("machine_id")
        if isinstance(found, str) and found and node in machine_ids and found != machine_ids[node]:
            where = f"{owners[found]}'s host" if found in owners else f"a host with machine id {found[:64]}"
            wrong.append(f"{node} (its agent runs on {where})")
    return Check("agents on their own hosts", not wrong,
                 "every live agent that says where it runs is on its node's host" if not wrong else
                 "elsewhere: " + some_names(wrong, NAMED),
                 "start each agent with its own node's --node (kubeupgrade agent --node NAME) on that node")


def check_cordons(client: Any, cordons: dict[str, str]) -> Check:
    """Nodes a kubeupgrade campaign cordoned that no campaign on this broker acts on or names:
    left by one the broker lost (broker_loss.py), or by one that ended."""
    from kubeupgrade.workflow.broker_loss import lost_campaign
    from kubeupgrade.workflow.record import CampaignStore, DamagedRecord

    store = CampaignStore(client)

    def state_of(owner: str) -> str:
        try:
            doc = store.get(owner)
        except DamagedRecord:
            return "damaged"
        if doc is not None:
            return str(doc["state"])
        try:
            lost = lost_campaign(client, owner)
        except ValueError:  # a damaged notice proves nothing
            lost = None
        return "lost with the broker's data" if lost else "unknown to this broker"

    # Each campaign read once (a record can be megabytes), however many nodes it holds.
    states = {owner: state_of(owner) for owner in set(cordons.values())}
    left = [f"{node} (campaign {owner}, {states[owner]})" for node, owner in sorted(cordons.items())
            # a campaign still acting on the node, or whose `status` names it as left cordoned
            if states[owner] not in ("pending", "running", "failed", "damaged")]
    return Check("kubeupgrade cordons", not left,
                 "every node a campaign cordoned is one it acts on or names" if not left else
                 "cordoned by no campaign acting on them: " + some_names(left, NAMED),
                 "for a lost campaign, submit it again (it takes them over); otherwise `kubectl "
                 "uncordon NODE` where no upgrade is half done")


def check_message_identity() -> Check:
    """This operator's message key: `abort` signs the restores and releases it sends with it."""
    from kubeupgrade.errors import KubeupgradeError
    from kubeupgrade.security.messages import MessageIdentity

    fix = "set KUBEUPGRADE_MESSAGE_KEY/CERT/TRUST to the operator's files of `kubeupgrade keys messages`"
    try:
        identity = MessageIdentity.from_env()
    except KubeupgradeError as error:
        return Check("operator message key", False, str(error), fix)
    if identity is None:
        return Check("operator message key", False, "none: abort's restores and releases would be "
                     "refused by agents that verify messages", fix)
    from datetime import datetime, timezone

    from cryptography import x509

    from kubeupgrade.security.envelope import RENEW

    try:
        expires = x509.load_pem_x509_certificate(identity.cert.read_bytes()).not_valid_after_utc
    except (OSError, ValueError) as error:
        return Check("operator message key", False, f"{identity.cert}: not a PEM certificate ({error})", fix)
    left = (expires - datetime.now(timezone.utc)).days
    if left < 0:
        return Check("operator message key", False, f"{identity.cert} expired on {expires:%Y-%m-%d}: "
                     "every message signed with it is refused", RENEW)
    if left < 30:
        return Check("operator message key", False, f"{identity.cert} expires in {left} days "
                     f"({expires:%Y-%m-%d})", RENEW)
    return Check("operator message key", True, f"{identity.cert} (valid until {expires:%Y-%m-%d})")


def diagnose(broker: str, kubeconfig: str | None, key: str | None,
             campaign_nodes: list[str] | None = None) -> list[Check]:
    rows, client = check_broker(broker)
    key_row, key_identity = check_key(key)
    rows += [key_row, check_message_identity()]
    facts = ClusterFacts([], {}, {})
    if kubeconfig:
        cluster_rows, facts = check_cluster(kubeconfig)
        rows += cluster_rows
    nodes = campaign_nodes or facts.nodes
    if client is not None and nodes:
        rows += check_agents(client, nodes, key_identity, facts.machine_ids)
    if client is not None and facts.cordons:
        rows.append(check_cordons(client, facts.cordons))
    return rows


def render(rows: list[Check]) -> str:
    """The rows as text; what an agent's liveness key or the cluster said is shown escaped."""
    from kubeupgrade.cli.terminal import printable

    width = max(len(row.name) for row in rows)
    lines = [f"{'CHECK':<{width}}  RESULT  DETAIL"]
    for row in rows:
        lines.append(f"{row.name:<{width}}  {'ok' if row.ok else 'FAIL':<6}  {row.detail}")
        if not row.ok and row.fix:
            lines.append(f"{'':<{width}}          fix: {row.fix}")
    return printable("\n".join(lines))
