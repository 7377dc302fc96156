"""Phase durations recorded by earlier campaigns on a broker, for `plan`'s estimate.

Only phases that ran to success ("done", not "already-done": a probe that found the work done
says nothing about how long the work takes), from the most recent ended campaigns, those of the
same cluster first. A damaged record is skipped: it must not stop a plan (promise 7).
"""

from __future__ import annotations

from collections import defaultdict

from kubeupgrade.model.plan import Phase
from kubeupgrade.planning.estimate import Durations
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord
from kubeupgrade.workflow.schema import PhaseRecord
from kubeupgrade.workflow.states import CampaignState

RECENT = 20  # campaigns used: recent enough to reflect today's hosts and mirrors
SCANNED = 200  # campaigns read at most, so a plan stays quick on a long-lived broker
ENDED = {CampaignState.SUCCEEDED.value, CampaignState.FAILED.value, CampaignState.ABORTED.value}


def run_seconds(record: PhaseRecord) -> float | None:
    """How long the phase took, if it ran to success (not found already done) and says when."""
    started, ended = record.get("started"), record.get("ended")
    if (record.get("state") == "succeeded" and record.get("outcome") == "done"
            and isinstance(started, (int, float)) and isinstance(ended, (int, float)) and ended >= started):
        return float(ended - started)
    return None


def _samples(store: CampaignStore, campaign_id: str) -> tuple[str, dict[Phase, list[float]]]:
    """The campaign's cluster and its recorded runs per phase (none unless it has ended)."""
    found: dict[Phase, list[float]] = defaultdict(list)
    doc = store.get(campaign_id)
    if doc is None or doc["state"] not in ENDED:
        return "", found
    for hop in range(len(doc["hops"])):
        for entry in store.entries(campaign_id, hop).values():
            for record in entry["phases"]:
                seconds = run_seconds(record)
                if seconds is not None:
                    try:
                        found[Phase(record["phase"])].append(seconds)
                    except ValueError:
                        continue  # a phase this version no longer has
    return doc["cluster"], found


def _merged(runs: list[dict[Phase, list[float]]]) -> Durations:
    samples: dict[Phase, list[float]] = defaultdict(list)
    for found in runs:
        for phase, values in found.items():
            samples[phase] += values
    return Durations.from_samples(samples, len(runs))


def recorded_durations(store: CampaignStore, cluster: str) -> Durations:
    """Medians over the RECENT latest campaigns of `cluster` that recorded runs, or over any
    cluster's when this one has none yet."""
    ours: list[dict[Phase, list[float]]] = []
    anyone: list[dict[Phase, list[float]]] = []
    for campaign_id in store.ids()[::-1][:SCANNED]:
        if len(ours) == RECENT:
            break
        try:
            owner, found = _samples(store, campaign_id)
        except DamagedRecord:
            continue
        if found:
            (ours if owner == cluster else anyone).append(found)
    durations = _merged(ours)
    return durations if durations.recorded else _merged(anyone[:RECENT])
