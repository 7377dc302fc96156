"""Retention: ended campaigns leave Redis after a while, archived to files first.

A campaign that succeeded, was refused or was aborted, and has not changed for the retention
period, is written whole (record, plan, entries, tails, events, kept outputs) to `<archive>/<id>.json`
(mode 0600: outputs can name hosts and paths) and then deleted from Redis. A failed, pending or
running campaign is never pruned, nor one still holding its cluster. A record that does not
decode is named and left alone: deleting it is the operator's call. Nothing is deleted unless
its archive file was written, except when the operator asks for no archive.

Celery's own results expire on their own (`result_expires`, 14 days): the record, not the
results, is the truth.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeupgrade.errors import RuntimeFailure
from kubeupgrade.host.files import replace_file
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord
from kubeupgrade.workflow.states import CampaignState

PRUNABLE = frozenset({CampaignState.SUCCEEDED, CampaignState.REFUSED, CampaignState.ABORTED})
DEFAULT_DAYS = 30.0
LEASE_KEY = "ku:retention"  # held by the controller pruning now


@dataclass(frozen=True)
class RetentionPolicy:
    days: float = DEFAULT_DAYS  # 0: keep forever
    archive: Path | None = None  # None: delete without an archive (asked for explicitly)


@dataclass
class PruneReport:
    pruned: list[str] = field(default_factory=list)
    archived: list[Path] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # "id: why", left in place

    def summary(self) -> str:
        text = f"pruned {len(self.pruned)} ended campaign(s)"
        if self.archived:
            text += f", archived in {self.archived[0].parent}"
        if self.damaged:
            text += f"; left {len(self.damaged)} damaged record(s): " + "; ".join(self.damaged)
        return text


def due(store: CampaignStore, policy: RetentionPolicy, now: float) -> tuple[list[str], list[str]]:
    """(campaigns to prune, damaged records named) under `policy` at `now`."""
    if policy.days <= 0:
        return [], []
    cutoff = now - policy.days * 86400
    prunable, damaged = [], []
    for campaign_id in store.ids():
        try:
            doc = store.get(campaign_id)
        except DamagedRecord as error:
            damaged.append(f"{campaign_id}: {error}")
            continue
        try:
            updated = float(doc.get("updated", now)) if doc is not None else now
        except (TypeError, ValueError):
            damaged.append(f"{campaign_id}: 'updated' is not a time ({doc.get('updated')!r})")
            continue
        if doc is None or doc["state"] not in PRUNABLE or updated > cutoff:
            continue
        if store.cluster_holder(doc["cluster"]) == campaign_id:
            continue
        prunable.append(campaign_id)
    return prunable, damaged


def prune(store: CampaignStore, policy: RetentionPolicy, now: float | None = None,
          dry_run: bool = False) -> PruneReport:
    report = PruneReport()
    chosen, report.damaged = due(store, policy, time.time() if now is None else now)
    for campaign_id in chosen:
        if dry_run:
            report.pruned.append(campaign_id)
            continue
        if policy.archive is not None:
            path = policy.archive / f"{campaign_id}.json"
            try:
                report.archived.append(_archive(store.dump(campaign_id), path))
            except OSError as error:
                raise RuntimeFailure(f"cannot write the archive {path}: {error.strerror or error}; "
                                     f"{len(report.pruned)} campaign(s) pruned before it, nothing "
                                     "else deleted") from None
        store.delete_campaign(campaign_id)
        report.pruned.append(campaign_id)
    return report


def _archive(dump: dict[str, Any], path: Path) -> Path:
    """Write the campaign's dump, complete and private, before anything is deleted."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    replace_file(path, json.dumps(dump, indent=1, sort_keys=True).encode(), mode=0o600, keep_mode=False)
    return path


def run_forever(store: CampaignStore, policy: RetentionPolicy, stop: threading.Event,
                every: float = 3600.0) -> None:
    """The controller's retention loop: prune now, then every `every` seconds. One controller
    prunes at a time (a lease), and a failure is logged and tried again next time."""
    log = logging.getLogger("kubeupgrade.retention")
    while True:
        try:
            if store.redis.set(LEASE_KEY, "1", nx=True, px=int(max(every, 60.0) * 1000)):
                report = prune(store, policy)
                if report.pruned or report.damaged:
                    log.info("retention: %s", report.summary())
        except Exception as error:  # noqa: BLE001 - the controller outlives a failed pass
            log.warning("retention: %s", error)
        if stop.wait(every):
            return
