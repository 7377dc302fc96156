"""Prometheus metrics of the campaigns, served by the controller behind basic auth.

Nothing is counted in memory: each scrape reads the record (the active campaigns and the most
recent ended ones), so a controller restart loses nothing and two controllers report the same.
A damaged record is counted and skipped, never an error of the scrape.
"""

from __future__ import annotations

import base64
import hmac
import http.server
import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from kubeupgrade.workflow.decide import out_of_service
from kubeupgrade.workflow.history import run_seconds
from kubeupgrade.workflow.names import CLUSTER_ENTRY
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord

log = logging.getLogger("kubeupgrade.metrics")

RECENT = 20  # ended campaigns reported beside the active ones
BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
CAMPAIGN_STATES = ("pending", "running", "failed", "succeeded", "aborted", "refused")


class CampaignCollector(Collector):
    def __init__(self, store: CampaignStore) -> None:
        self.store = store

    def _campaigns(self) -> tuple[list[dict[str, Any]], int]:
        ids = list(dict.fromkeys(self.store.active_ids() + self.store.ids()[::-1][:RECENT]))
        docs, damaged = [], 0
        for campaign_id in ids:
            try:
                doc = self.store.get(campaign_id)
                if doc is None:
                    continue
                doc["entries"] = [self.store.entries(campaign_id, hop) for hop in range(len(doc["hops"]))]
                _check_shape(doc)
            except (DamagedRecord, KeyError, TypeError, ValueError, AttributeError):
                damaged += 1  # one unreadable record must not take every metric down with it
                continue
            docs.append(doc)
        return docs, damaged

    def collect(self) -> Iterator[Metric]:
        docs, damaged = self._campaigns()
        state = GaugeMetricFamily("kubeupgrade_campaign_state", "1 for the state the campaign is in",
                                  labels=["campaign", "cluster", "state"])
        paused = GaugeMetricFamily("kubeupgrade_campaign_paused", "1 while the campaign is paused",
                                   labels=["campaign", "cluster"])
        stage = GaugeMetricFamily("kubeupgrade_hop_stage", "1 for the stage the current hop is in",
                                  labels=["campaign", "hop", "stage"])
        nodes = GaugeMetricFamily("kubeupgrade_nodes", "Nodes of the current hop by state",
                                  labels=["campaign", "state"])
        phases = GaugeMetricFamily("kubeupgrade_phases", "Phases of the current hop by state",
                                   labels=["campaign", "phase", "state"])
        out = GaugeMetricFamily("kubeupgrade_workers_out_of_service",
                                "Workers of the current hop out of service (cordoned or in their outage)",
                                labels=["campaign"])
        retries = CounterMetricFamily("kubeupgrade_phase_retries", "Phase attempts beyond the first",
                                      labels=["campaign", "phase"])
        gates = GaugeMetricFamily("kubeupgrade_gate_green", "1 once a health gate passed, 0 until then",
                                  labels=["campaign", "hop", "gate"])
        durations: dict[str, list[float]] = defaultdict(list)
        for doc in docs:
            campaign, cluster = doc["id"], doc["cluster"]
            for name in CAMPAIGN_STATES:
                state.add_metric([campaign, cluster, name], 1.0 if doc["state"] == name else 0.0)
            paused.add_metric([campaign, cluster], 1.0 if doc.get("paused") else 0.0)
            retried: Counter[str] = Counter()
            for hop, entries in enumerate(doc["entries"]):
                for name, entry in entries.items():
                    for record in entry["phases"]:
                        retried[record["phase"]] += max(0, record.get("attempts", 0) - 1)
                        seconds = run_seconds(record)
                        if seconds is not None:
                            durations[record["phase"]].append(seconds)
                        if name == CLUSTER_ENTRY and record["phase"].endswith("gate"):
                            gates.add_metric([campaign, str(hop + 1), record["phase"]],
                                             1.0 if record["state"] == "succeeded" else 0.0)
            current = doc["current_hop"]
            if current < len(doc["entries"]):
                entries = doc["entries"][current]
                hosts = [entry for name, entry in entries.items() if name != CLUSTER_ENTRY]
                stage.add_metric([campaign, str(current + 1), doc["hops"][current]["stage"]], 1.0)
                node_states = Counter(entry["state"] for entry in hosts)
                phase_states = Counter((record["phase"], record["state"])
                                       for entry in entries.values() for record in entry["phases"])
                for node_state, count in sorted(node_states.items()):
                    nodes.add_metric([campaign, node_state], count)
                for (phase, phase_state), count in sorted(phase_states.items()):
                    phases.add_metric([campaign, phase, phase_state], count)
                out.add_metric([campaign], sum(1 for entry in hosts
                                               if entry["role"] == "worker" and out_of_service(entry)))
            for phase, count in sorted(retried.items()):
                retries.add_metric([campaign, phase], count)
        histogram = HistogramMetricFamily(
            "kubeupgrade_phase_duration_seconds",
            f"Phases that ran to success, over the active and {RECENT} latest campaigns",
            labels=["phase"])
        for phase, values in sorted(durations.items()):
            cumulative = [(str(bound), float(sum(1 for v in values if v <= bound))) for bound in BUCKETS]
            histogram.add_metric([phase], cumulative + [("+Inf", float(len(values)))], sum(values))
        damaged_family = GaugeMetricFamily("kubeupgrade_damaged_records",
                                           "Campaign records that do not decode (named by `kubeupgrade list`)",
                                           value=damaged)
        yield from (state, paused, stage, nodes, phases, out, retries, gates, histogram, damaged_family)


def _check_shape(doc: dict[str, Any]) -> None:
    """What collect() reads, checked first: a bad record fails here, before anything is emitted."""
    numbers = (int, float, type(None))
    for hop, entries in enumerate(doc["entries"]):
        if not isinstance(doc["hops"][hop]["stage"], str):
            raise ValueError("stage")
        for entry in entries.values():
            if not isinstance(entry["role"], str) or not isinstance(entry["phases"], list):
                raise ValueError("entry")
            for record in entry["phases"]:
                if not (isinstance(record["phase"], str) and isinstance(record.get("attempts", 0), int)
                        and isinstance(record.get("started"), numbers)
                        and isinstance(record.get("ended"), numbers)):
                    raise ValueError("phase")


def registry_for(store: CampaignStore) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CampaignCollector(store))
    return registry


def serve_metrics(store: CampaignStore, address: str, port: int, credentials: str) -> http.server.ThreadingHTTPServer:
    """GET /metrics with HTTP basic auth `credentials` ("user:password"); started in a thread."""
    registry = registry_for(store)
    expected = "Basic " + base64.b64encode(credentials.encode()).decode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            if not hmac.compare_digest(self.headers.get("Authorization", ""), expected):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="kubeupgrade metrics"')
                self.end_headers()
                return
            if self.path.split("?")[0] != "/metrics":
                self.send_response(404)
                self.end_headers()
                return
            try:
                body = generate_latest(registry)
            except Exception:  # noqa: BLE001 - the broker away: say so, keep serving
                log.exception("metrics scrape failed")
                self.send_response(503)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server
