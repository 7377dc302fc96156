"""The campaign record every phase task reads stays small however large the cluster: the
per-node details (live versions at accept, schedules, resolved packages, verification rows)
live in their own keys, read one field at a time by the node they concern. Records written before keep them
inside, and are still read. Real redis-server and the real dispatcher's accept."""

from __future__ import annotations

import json

import pytest

from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.dispatcher import Dispatcher
from kubeupgrade.workflow.record import CampaignStore, DamagedRecord

pytestmark = pytest.mark.integration


def accepted(store: CampaignStore, cluster: str, workers: int) -> str:
    nodes = [{"name": "cp-1", "role": "control-plane", "kubelet": "v1.30.4"}]
    nodes += [{"name": f"{cluster}-worker-{i:05d}", "role": "worker", "kubelet": "v1.30.4"}
              for i in range(workers)]
    campaign = store.create(cluster, {"cluster": cluster, "target": "1.31.14", "control_plane_version": "v1.30.4",
                                      "nodes": nodes, "policies": {"max_unavailable": 3}}, f"{cluster}.yaml")
    Dispatcher(client_app(store_url(store)), store).advance(campaign)
    assert store.get(campaign)["state"] == "running"
    return campaign


def store_url(store: CampaignStore) -> str:
    kwargs = store.redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def record_bytes(store: CampaignStore, campaign: str) -> int:
    """The record's size, less the campaign as submitted (here it lists its nodes; it stays
    whole in the record, since the operator's signature covers it)."""
    return len(store.redis.get(f"ku:c:{campaign}")) - len(json.dumps(store.get(campaign)["campaign"]))


def test_the_record_does_not_grow_with_the_cluster(redis_url):
    store = CampaignStore.from_url(redis_url)
    small, large = accepted(store, "small", 20), accepted(store, "large", 620)
    # Before, each worker added ~80 bytes (its live versions and its place in the order), sent
    # to every agent for every phase: half a megabyte per task at 5,000 nodes.
    assert abs(record_bytes(store, large) - record_bytes(store, small)) <= 64
    live = store.live_versions(large, store.get(large))
    assert len(live) == 621 and live["large-worker-00007"] == {"kubelet": "1.30.4", "control_plane": None}
    schedule = store.schedule(large, 0, store.get(large))
    assert len(schedule.workers) == 620 and schedule.workers[0] == "large-worker-00000"


def test_each_node_reads_its_own_package_and_status_shows_them_all(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign = accepted(store, "pkg", 3)
    doc = store.get(campaign)
    assert store.package(campaign, 0, "pkg-worker-00001", doc) is None  # not resolved yet
    store.put_packages(campaign, 0, {"pkg-worker-00001": "1.31.14-1.1", "cp-1": "1.31.14-1.1"})
    store.put_verification(campaign, 0, [{"node": "cp-1", "ready": True}])
    assert store.package(campaign, 0, "pkg-worker-00001", doc) == "1.31.14-1.1"
    assert "packages" not in store.get(campaign)["hops"][0]
    shown = store.with_details(campaign, store.get(campaign))
    assert shown["hops"][0]["packages"]["cp-1"] == "1.31.14-1.1"
    assert shown["hops"][0]["verification"] == [{"node": "cp-1", "ready": True}]
    assert shown["live_versions"]["cp-1"]["kubelet"] == "1.30.4"
    assert shown["hops"][0]["schedule"]["control_planes"] == ["cp-1"]
    dumped = store.dump(campaign)
    assert dumped["packages"]["0"]["cp-1"] == "1.31.14-1.1" and "cp-1" in dumped["live_versions"]


def test_a_record_written_before_keeps_its_details_inside_and_is_read(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign = accepted(store, "older", 2)
    store.redis.delete(f"ku:c:{campaign}:live")

    def older(doc):
        doc["live_versions"] = {"cp-1": {"kubelet": "1.30.4", "control_plane": "1.30.4"}}
        doc["hops"][0]["packages"] = {"cp-1": "1.31.14-1.1"}

    store.update(campaign, older)
    doc = store.get(campaign)
    assert store.package(campaign, 0, "cp-1", doc) == "1.31.14-1.1"
    assert store.live_version(campaign, "cp-1", doc)["control_plane"] == "1.30.4"
    assert store.packages(campaign, 0, doc) == {"cp-1": "1.31.14-1.1"}


def test_a_damaged_detail_is_named(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign = accepted(store, "damaged", 2)
    store.redis.hset(f"ku:c:{campaign}:live", "cp-1", "{not json")
    store.redis.set(f"ku:c:{campaign}:verification:0", '"a string"')
    store.redis.set(f"ku:c:{campaign}:schedule:0", '{"workers": []}')
    doc = store.get(campaign)
    with pytest.raises(DamagedRecord, match=rf"ku:c:{campaign}:live field cp-1: not JSON"):
        store.live_version(campaign, "cp-1", doc)
    with pytest.raises(DamagedRecord, match=rf"ku:c:{campaign}:verification:0: a JSON str, not a list"):
        store.verification(campaign, 0, doc)
    with pytest.raises(DamagedRecord, match=rf"ku:c:{campaign}:schedule:0: not a schedule"):
        store.schedule(campaign, 0, doc)
    # The other nodes' details are read as before.
    assert store.live_version(campaign, "damaged-worker-00000", doc)["kubelet"] == "1.30.4"
