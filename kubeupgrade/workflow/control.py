"""Operator actions on the record: pause, resume, retry, abort. Used by the Python API."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from kubeupgrade.errors import InvalidInput, RuntimeFailure
from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow.answers import unanswered
from kubeupgrade.workflow.broker_loss import lost_campaign, unknown_campaign_told
from kubeupgrade.workflow.names import CONTROLLER_QUEUE, RELEASE_NODE
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord, new_attempt
from kubeupgrade.workflow.restore import RESTORE_SILENT, nodes_to_restore, send_restores


def require(store: CampaignStore, campaign_id: str) -> dict[str, Any]:
    doc = store.get(campaign_id)
    if doc is None:
        try:
            lost = lost_campaign(store.redis, campaign_id)
        except ValueError as error:  # a damaged notice: named, as a damaged record would be
            raise RuntimeFailure(str(error)) from None
        if lost is not None:
            raise RuntimeFailure(lost.explain())
        raise InvalidInput(unknown_campaign_told(store.redis, campaign_id))
    return doc


def retry(store: CampaignStore, campaign_id: str) -> dict[str, Any]:
    """Resume at the failed phase: failed phases go back to pending with a new attempt number
    (stale deliveries of the old attempt are fenced off); succeeded phases are never re-run."""
    doc = require(store, campaign_id)
    if doc["state"] not in ("failed", "aborted"):
        raise InvalidInput(f"campaign {campaign_id} is {doc['state']}; only failed or aborted "
                           "campaigns can be retried")
    # First the cluster: refused (exit 3, naming the holder) if another campaign acts on it.
    store.take_cluster(doc["cluster"], campaign_id)
    hop = doc["current_hop"]
    # A failed preflight judged what each host's prepare-host found before the operator's fix
    # (swap turned off, a configuration file mended): the retry gathers it again first.
    refresh = doc["hops"][hop].get("stage") == "preflight"
    reopen = frozenset({Phase.PREPARE_HOST.value}) if refresh else frozenset()
    for name, entry in store.entries(campaign_id, hop).items():
        if entry["state"] == "succeeded":
            continue

        store.update_entry(campaign_id, hop, name,
                           lambda current: new_attempt(current, clear_errors=True, reopen=reopen))

    def resume(current: dict[str, Any]) -> None:
        if refresh:
            current["hops"][hop]["stage"] = "prepare"
        current["state"] = "running"
        current["error"] = None
        current["hops"][hop]["waiting_for_agents"] = {}
        current["hops"][hop]["halted"] = False
        current["retries"] = current.get("retries", 0) + 1
        current["paused"] = None  # a retry is an operator saying go on

    store.event(campaign_id, "retry requested")
    updated = store.update(campaign_id, resume)
    store.activate(campaign_id)
    return updated


def pause(store: CampaignStore, campaign_id: str, reason: str = "by the operator") -> dict[str, Any]:
    """Nothing new starts: no node begins its upgrade or its outage. Nodes under way finish
    their current outage (they are uncordoned). Kept in the record: survives restarts."""
    doc = require(store, campaign_id)
    if doc["state"] not in ("pending", "running"):
        raise InvalidInput(f"campaign {campaign_id} is {doc['state']}; only a pending or running "
                           "campaign can be paused")
    if doc.get("paused"):
        return doc

    def hold(current: dict[str, Any]) -> None:
        current["paused"] = {"since": time.time(), "reason": reason}

    updated = store.update(campaign_id, hold)
    store.event(campaign_id, f"paused {reason}: nothing new starts; nodes under way finish their outage")
    return updated


def resume(store: CampaignStore, campaign_id: str) -> dict[str, Any]:
    doc = require(store, campaign_id)
    if not doc.get("paused"):
        raise InvalidInput(f"campaign {campaign_id} is not paused ({doc['state']})")
    if doc["state"] not in ("pending", "running"):
        raise InvalidInput(f"campaign {campaign_id} is {doc['state']}; `kubeupgrade retry "
                           f"{campaign_id}` goes on from there")

    def go_on(current: dict[str, Any]) -> None:
        current["paused"] = None

    updated = store.update(campaign_id, go_on)
    store.event(campaign_id, "resumed")
    return updated


def cordoned_nodes(store: CampaignStore, campaign_id: str) -> list[str]:
    doc = require(store, campaign_id)
    names: list[str] = []
    for hop in range(len(doc["hops"])):
        names += [n for n, e in store.entries(campaign_id, hop).items() if e.get("cordoned_by_us")]
    return sorted(set(names))


RELEASE_WAIT_SECONDS = 60.0
RELEASE_SILENT = "the controller did not answer (is it running? `kubeupgrade abort --uncordon` again releases it)"


def abort(app: Celery, store: CampaignStore, campaign_id: str, *, uncordon: bool,
          restore_repositories: bool = False, wait: float = 30.0,
          release_wait: float = RELEASE_WAIT_SECONDS) -> list[str]:
    """Stop dispatch (tasks still queued find the campaign aborted and run nothing), put back
    the package repositories the current hop
    changed (on every node if `restore_repositories`, else where nothing was installed from the
    new one), and report (or release) the nodes left cordoned."""
    try:
        doc = require(store, campaign_id)
    except DamagedRecord:
        # Its record cannot be read, but the cluster it holds can still be released.
        store.deactivate(campaign_id)
        for cluster in store.clusters_held_by(campaign_id):
            store.release_cluster(cluster, campaign_id)
        store.event(campaign_id, "aborted with a damaged record; cluster released")
        raise
    if doc["state"] in ("succeeded", "refused"):
        raise InvalidInput(f"campaign {campaign_id} is {doc['state']}; nothing to abort")
    store.update(campaign_id, lambda current: current.update(state="aborted"))
    pending = []
    for hop in range(len(doc["hops"])):
        for entry in store.entries(campaign_id, hop).values():
            pending += [p["task_id"] for p in entry["phases"] if p["task_id"] and p["state"] == "pending"]
    store.end(campaign_id, doc["cluster"])
    store.event(campaign_id, f"aborted; {len(pending)} pending task(s) will find it so and run nothing")
    hop = doc["current_hop"]
    if hop < len(doc["hops"]):
        nodes = nodes_to_restore(store.entries(campaign_id, hop), force=restore_repositories)
        sent = send_restores(app, campaign_id, hop, nodes, force=restore_repositories)
        for node, why in unanswered(sent, wait, silent=RESTORE_SILENT).items():
            store.update_entry(campaign_id, hop, node, lambda entry, why=why: entry.update(repository=why))
    cordoned = cordoned_nodes(store, campaign_id)
    if uncordon:
        # All at once, and every node accounted for: one that fails or does not answer stays
        # in the list returned (still cordoned), with its reason among the campaign's events.
        released = {node: app.signature(RELEASE_NODE, kwargs={"campaign": campaign_id, "node": node}).apply_async(
            queue=CONTROLLER_QUEUE) for node in cordoned}
        for node, why in unanswered(released, release_wait, silent=RELEASE_SILENT).items():
            store.event(campaign_id, f"{node}: not uncordoned on abort: {why}")
        return cordoned_nodes(store, campaign_id)
    return cordoned


def repositories(store: CampaignStore, campaign_id: str) -> dict[str, str]:
    """node -> what became of its package repository when the campaign stopped."""
    doc = require(store, campaign_id)
    hop = min(doc["current_hop"], len(doc["hops"]) - 1)
    if hop < 0:
        return {}
    return {name: entry["repository"] for name, entry in sorted(store.entries(campaign_id, hop).items())
            if entry.get("repository")}
