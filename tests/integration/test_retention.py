"""Retention on a real redis-server: ended campaigns are archived whole, then every key of
theirs leaves the broker; failed ones, a cluster's holder and damaged records stay."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from kubeupgrade.errors import RuntimeFailure
from kubeupgrade.workflow.record import CampaignStore
from kubeupgrade.workflow.retention import RetentionPolicy, prune
from tests.helpers import wait_for
from tests.integration.test_cli_status import running_campaign

DAY = 86400


def ended(store, cluster, state="succeeded", age_days=40.0):
    """A campaign that ran one hop (entry, events, a kept output) and ended `age_days` ago."""
    campaign_id = running_campaign(store, cluster)
    store.save_output(campaign_id, 0, "worker-1", "kubeadm-upgrade-plan", "COMPONENT   CURRENT   TARGET")
    if state == "failed":
        store.update(campaign_id, lambda doc: doc.update(state="failed"))
    else:
        store.update(campaign_id, lambda doc: doc.update(state=state))
        store.end(campaign_id, cluster)
    raw = json.loads(store.redis.get(f"ku:c:{campaign_id}"))
    raw["updated"] = time.time() - age_days * DAY
    store.redis.set(f"ku:c:{campaign_id}", json.dumps(raw))
    return campaign_id


def keys_of(store, campaign_id):
    return sorted(k for k in store.redis.scan_iter("ku:c:*") if k.split(":")[2] == campaign_id)


def test_old_ended_campaigns_are_archived_whole_then_gone_and_nothing_else_is(redis_url, tmp_path):
    store = CampaignStore.from_url(redis_url)
    old = ended(store, "alpha")
    aborted = ended(store, "beta", state="aborted")
    failed = ended(store, "gamma", state="failed")  # holds gamma until retried or aborted
    recent = ended(store, "delta", age_days=2)
    holder = ended(store, "eps")
    store.redis.set("ku:cluster:eps", holder)  # still named as eps's campaign: not ended for us
    odd = ended(store, "zeta")
    raw = json.loads(store.redis.get(f"ku:c:{odd}"))
    store.redis.set(f"ku:c:{odd}", json.dumps({**raw, "updated": "last tuesday"}))  # decodes, but no time
    store.redis.set("ku:c:eps-damaged-1", "{truncated")
    store.redis.zadd("ku:campaigns", {"eps-damaged-1": time.time() - 90 * DAY})
    assert not store.redis.exists(f"ku:c:{old}:hop:0:changed")  # end() let go of the change set
    report = prune(store, RetentionPolicy(30, tmp_path / "archive"))

    assert sorted(report.pruned) == sorted([old, aborted])
    assert sorted(d.split(":")[0] for d in report.damaged) == sorted(["eps-damaged-1", odd])
    for campaign_id in (old, aborted):
        assert keys_of(store, campaign_id) == [] and store.redis.zscore("ku:campaigns", campaign_id) is None
        path = tmp_path / "archive" / f"{campaign_id}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        dump = json.loads(path.read_text())
        assert dump["record"]["id"] == campaign_id and dump["hops"]["0"]["worker-1"]["phases"]
        assert dump["events"] and dump["outputs"] == {"0:worker-1:kubeadm-upgrade-plan": "COMPONENT   CURRENT   TARGET"}
    for campaign_id in (failed, recent, holder, odd, "eps-damaged-1"):
        assert keys_of(store, campaign_id) and store.redis.zscore("ku:campaigns", campaign_id) is not None
    assert store.get(failed)["state"] == "failed"
    assert prune(store, RetentionPolicy(30, tmp_path / "archive")).pruned == []  # idempotent


def test_nothing_is_deleted_when_its_archive_cannot_be_written(redis_url, tmp_path):
    store = CampaignStore.from_url(redis_url)
    campaign_id = ended(store, "alpha")
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the archive directory should be")
    with pytest.raises(RuntimeFailure) as refused:
        prune(store, RetentionPolicy(30, blocked / "archive"))
    assert "cannot write the archive" in str(refused.value) and "\n" not in str(refused.value)
    assert keys_of(store, campaign_id) and store.get(campaign_id)["state"] == "succeeded"


def test_the_prune_command_and_the_controllers_own_pass(redis_url, tmp_path):
    store = CampaignStore.from_url(redis_url)
    first, second = ended(store, "alpha"), ended(store, "beta")
    run = [sys.executable, "-m", "kubeupgrade"]
    asked = subprocess.run([*run, "prune", "--broker", redis_url], capture_output=True, text=True, timeout=60)
    assert asked.returncode == 2 and "--archive DIR" in asked.stderr and "Traceback" not in asked.stderr
    dry = subprocess.run([*run, "prune", "--older-than", "30", "--no-archive", "--dry-run", "--broker", redis_url],
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and f"would prune {first}" in dry.stdout and keys_of(store, first)
    done = subprocess.run([*run, "prune", "--older-than", "30", "--archive", str(tmp_path / "a"), "--broker", redis_url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"pruned {first}" in done.stdout and not keys_of(store, first)
    assert not keys_of(store, second) and (tmp_path / "a" / f"{second}.json").exists()

    # The controller prunes on its own, at start and then hourly, with its --retention-days.
    third = ended(store, "gamma")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
                          "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
                          "current-context: x\n")
    controller = subprocess.Popen([*run, "controller", "--kubeconfig", str(kubeconfig), "--broker", redis_url,
                                   "--concurrency", "1", "--retention-days", "30", "--archive-dir", str(tmp_path / "c"),
                                   "--unsigned-messages"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: not keys_of(store, third), timeout=60, interval=0.2)
        assert (tmp_path / "c" / f"{third}.json").exists()
    finally:
        os.killpg(controller.pid, 15)
        controller.wait(20)
