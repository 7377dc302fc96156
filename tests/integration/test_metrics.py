"""The metrics endpoint on a real redis-server: what it reports for a campaign record, basic
auth, and a damaged record counted instead of failing the scrape."""

from __future__ import annotations

import urllib.error
import urllib.request
from base64 import b64encode

import pytest

from kubeupgrade.sandbox.processes import free_port
from kubeupgrade.workflow.metrics import serve_metrics
from kubeupgrade.workflow.record import CampaignStore, new_phase

pytestmark = pytest.mark.integration


def test_metrics_describe_the_record_and_survive_a_damaged_one(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign_id = store.create("prod", {"cluster": "prod", "target": "1.31"}, "c.yaml")
    store.update(campaign_id, lambda doc: doc.update(state="running", hops=[{"index": 0, "stage": "workers"}],
                                                     paused={"since": 1.0, "reason": "by the operator"}))
    drain = new_phase("drain")
    drain.update(state="succeeded", attempts=2, started=10.0, ended=52.0, outcome="done")
    store.put_entry(campaign_id, 0, "w-1", {"node": "w-1", "role": "worker", "hop": 0, "state": "running",
                                            "attempt": 1, "cordoned_by_us": True, "phases": [drain, new_phase("uncordon")]})
    broken = store.create("other", {"cluster": "other", "target": "1.31"}, "o.yaml")
    store.redis.set(f"ku:c:{broken}", '{"id": 1}')
    port = free_port()
    server = serve_metrics(store, "127.0.0.1", port, "prom:secret")
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={
            "Authorization": "Basic " + b64encode(b"prom:secret").decode()})
        text = urllib.request.urlopen(request, timeout=10).read().decode()
        with pytest.raises(urllib.error.HTTPError) as wrong:
            urllib.request.urlopen(urllib.request.Request(request.full_url, headers={
                "Authorization": "Basic " + b64encode(b"prom:guess").decode()}), timeout=10)
        assert wrong.value.code == 401
    finally:
        server.shutdown()
    label = f'campaign="{campaign_id}"'
    assert f'kubeupgrade_campaign_state{{{label},cluster="prod",state="running"}} 1.0' in text
    assert f'kubeupgrade_campaign_paused{{{label},cluster="prod"}} 1.0' in text
    assert f'kubeupgrade_hop_stage{{{label},hop="1",stage="workers"}} 1.0' in text
    assert f'kubeupgrade_workers_out_of_service{{{label}}} 1.0' in text
    assert f'kubeupgrade_phase_retries_total{{{label},phase="drain"}} 1.0' in text
    assert 'kubeupgrade_phase_duration_seconds_bucket{le="60.0",phase="drain"} 1.0' in text
    assert 'kubeupgrade_phase_duration_seconds_bucket{le="30.0",phase="drain"} 0.0' in text
    assert "kubeupgrade_damaged_records 1.0" in text
