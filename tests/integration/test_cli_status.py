"""`status` and `list` from the command line against a real redis-server: no ID, one node's
phases, YAML, a cluster filter, and a broker URL that is not one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from kubeupgrade.model.phases import SPECS
from kubeupgrade.model.plan import Phase
from kubeupgrade.planning.estimate import minutes
from kubeupgrade.workflow.record import CampaignStore, new_phase

pytestmark = pytest.mark.integration


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeupgrade", *argv], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def running_campaign(store: CampaignStore, cluster: str) -> str:
    campaign_id = store.create(cluster, {"cluster": cluster, "target": "1.31"}, f"{cluster}.yaml")
    store.update(campaign_id, lambda doc: doc.update(state="running", hops=[{
        "index": 0, "from": "1.30.4", "target": "1.31", "version": "1.31.14", "stage": "workers",
        "schedule": {"control_planes": [], "first_control_plane": None, "workers": ["worker-1"],
                     "strategy": "window", "limit": 1}}]))
    phases = [new_phase("prepare-host"), new_phase("drain")]
    phases[0].update(state="succeeded", attempts=1, started=1.0, ended=2.0, detail="1.31.14",
                     tail="$ apt-get update -q\nHit:1 https://pkgs.k8s.io/core:/stable:/v1.31/deb  InRelease")
    phases[1].update(state="failed", attempts=2, started=3.0, ended=9.0, error="drain timed out")
    store.put_entry(campaign_id, 0, "worker-1", {"node": "worker-1", "role": "worker", "hop": 0,
                                                 "state": "failed", "attempt": 1, "phases": phases})
    store.event(campaign_id, "worker-1: drain failed: drain timed out")
    return campaign_id


def test_status_without_an_id_one_node_yaml_and_a_cluster_filter(redis_url):
    broker = ("--broker", redis_url)
    assert cli("status", *broker).stdout.strip() == "no active campaigns"
    store = CampaignStore.from_url(redis_url)
    first = running_campaign(store, "prod")
    shown = cli("status", *broker)
    assert shown.returncode == 0 and f"Campaign {first}" in shown.stdout
    assert "Recent events:" in shown.stdout and "drain failed" in shown.stdout
    node = cli("status", first, "--node", "worker-1", *broker)
    assert node.returncode == 0
    assert "drain" in node.stdout and "drain timed out" in node.stdout
    assert "Output of prepare-host" in node.stdout and "Hit:1" in node.stdout
    as_yaml = yaml.safe_load(cli("status", first, "-o", "yaml", *broker).stdout)
    assert as_yaml["hops"][0]["nodes"][0]["retries"] == 1
    assert as_yaml["events"][0]["time"][:2] == "20"
    running_campaign(store, "staging")
    several = cli("status", *broker).stdout
    assert "several active campaigns" in several
    listed = yaml.safe_load(cli("list", "--cluster", "prod", "-o", "yaml", *broker).stdout)
    assert [d["id"] for d in listed] == [first]


def test_a_broker_that_is_not_a_redis_url_is_bad_input_with_a_hint():
    bad = cli("list", "--broker", "http://operator:secret@redis.internal:6379")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "not a Redis URL" in bad.stderr and "secret" not in bad.stderr
    from_env = cli("list", env={"KUBEUPGRADE_BROKER": "redis.internal:6379"})
    assert from_env.returncode == 2 and "$KUBEUPGRADE_BROKER" in from_env.stderr
    away = cli("list", "--broker", "redis://127.0.0.1:1/0")
    assert away.returncode == 1 and "is redis-server running there?" in away.stderr


def test_logs_print_what_each_phase_captured(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign_id = running_campaign(store, "prod")
    store.save_output(campaign_id, 0, "worker-1", "drain", "$ drain worker-1\nline 1\nline 2\n")
    shown = cli("logs", campaign_id, "--node", "worker-1", "--broker", redis_url)
    assert shown.returncode == 0, shown.stderr
    assert "==> hop 1 prepare-host (succeeded, last lines) <==" in shown.stdout
    assert "Hit:1 https://pkgs.k8s.io" in shown.stdout
    assert "==> hop 1 drain (failed, whole) <==\n$ drain worker-1\nline 1\nline 2" in shown.stdout
    only = cli("logs", campaign_id, "--node", "worker-1", "--phase", "drain", "--broker", redis_url)
    assert "prepare-host" not in only.stdout and "line 2" in only.stdout
    none = cli("logs", campaign_id, "--node", "worker-9", "--broker", redis_url)
    assert none.returncode == 2 and "no output recorded for worker-9" in none.stderr


def test_list_fits_80_columns_and_wide_adds_cluster_and_error(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign_id = running_campaign(store, "prod-eu1")
    store.update(campaign_id, lambda doc: doc.update(state="failed", error={"message": "drain timed out"}))
    text = cli("list", "--broker", redis_url).stdout.splitlines()
    assert text[0].split() == ["ID", "STATE", "CREATED", "TARGET"]
    assert all(len(line) <= 80 for line in text) and campaign_id in text[1]
    wide = cli("list", "-o", "wide", "--broker", redis_url).stdout.splitlines()
    assert wide[1].endswith("prod-eu1  drain timed out")
    assert cli("status", campaign_id, "-o", "wide", "--broker", redis_url).returncode == 0


def ended_campaign(store: CampaignStore, cluster: str, drain_seconds: list[float]) -> str:
    """A succeeded campaign whose workers' drains took `drain_seconds`, one worker each."""
    campaign_id = store.create(cluster, {"cluster": cluster, "target": "1.31"}, f"{cluster}.yaml")
    store.update(campaign_id, lambda doc: doc.update(state="running", hops=[{"index": 0}]))
    for index, seconds in enumerate(drain_seconds):
        drain, probe = new_phase("drain"), new_phase("uncordon")
        drain.update(state="succeeded", attempts=1, started=100.0, ended=100.0 + seconds, outcome="done")
        # found already done: says nothing about how long an uncordon takes
        probe.update(state="succeeded", attempts=1, started=100.0, ended=900.0, outcome="already-done")
        store.put_entry(campaign_id, 0, f"w-{index}", {"node": f"w-{index}", "role": "worker", "hop": 0,
                                                     "state": "succeeded", "attempt": 1,
                                                     "phases": [drain, probe]})
    store.update(campaign_id, lambda doc: doc.update(state="succeeded"))
    store.end(campaign_id, cluster)
    return campaign_id


def test_plan_estimates_from_the_durations_earlier_campaigns_recorded(redis_url, tmp_path):
    campaign = tmp_path / "c.yaml"
    campaign.write_text("cluster: prod\ntarget: v1.31.2\ncontrol_plane_version: v1.30.4\nnodes:\n"
                        "  - {name: cp-1, role: control-plane, kubelet: v1.30.4}\n"
                        "  - {name: w-1, role: worker, kubelet: v1.30.4}\n")
    before = yaml.safe_load(cli("plan", str(campaign), "-o", "yaml", "--broker", redis_url).stdout)
    assert before["estimate"]["source"] == "from typical phase durations"
    store = CampaignStore.from_url(redis_url)
    ended_campaign(store, "staging", [1000.0, 1000.0, 1000.0])  # another cluster: used only alone
    from_staging = yaml.safe_load(cli("plan", str(campaign), "-o", "yaml", "--broker", redis_url).stdout)
    assert "recorded by 1 earlier" in from_staging["estimate"]["source"]
    ended_campaign(store, "prod", [400.0, 600.0])
    ended_campaign(store, "prod", [500.0])
    store.redis.set(f"ku:c:{store.create('prod-eu', {}, 'x.yaml')}", "{not json")  # damaged: skipped
    after = yaml.safe_load(cli("plan", str(campaign), "-o", "yaml", "--broker", redis_url).stdout)
    assert "median of 3 phase runs recorded by 2 earlier" in after["estimate"]["source"]
    typical = SPECS[Phase.DRAIN].typical_seconds
    # both nodes drain, one after the other: the recorded median replaces the typical twice
    assert after["estimate"]["seconds"] - before["estimate"]["seconds"] == 2 * (500 - typical)
    wide = cli("plan", str(campaign), "-o", "wide", "--broker", redis_url, env={"COLUMNS": "60"})
    assert wide.returncode == 0
    assert "recorded by 2 earlier campaign(s) on this broker" in wide.stdout  # not wrapped at 60
    (row,) = [line.split() for line in wide.stdout.splitlines() if line.split()[:1] == ["w-1"]]
    phases = [Phase(word) for word in row[3:] if word != ">"]
    took = sum(SPECS[phase].typical_seconds for phase in phases) - typical + 500
    assert row[1:3] == minutes(took).split()  # the node's own duration, with the recorded drain
    away = cli("plan", str(campaign), "--broker", "redis://127.0.0.1:1/0")
    assert away.returncode == 0 and "warning: cannot reach the broker" in away.stderr
    assert "from typical phase durations" in away.stdout


def test_status_shows_what_is_readable_and_names_each_damaged_part(redis_url):
    """Damage in parts of a campaign kept beside its record (an event, a node's entry, a detail
    kept apart, the plan) is named, and the rest still shows: which nodes failed, which stay
    cordoned, what to do. Before, the first of them stopped `status` ("unexpected
    JSONDecodeError"), leaving an operator blind on a failed campaign."""
    store = CampaignStore.from_url(redis_url)
    campaign_id = running_campaign(store, "prod")
    store.put_entry(campaign_id, 0, "worker-2", {"node": "worker-2", "role": "worker", "hop": 0,
                                                 "state": "running", "attempt": 1, "phases": [new_phase("drain")]})
    events = f"ku:c:{campaign_id}:events"
    store.redis.lpush(events, "not json", '{"t": "soon", "message": "x"}', "[1, 2]")
    store.event(campaign_id, "worker-2: drain running")
    store.redis.hset(f"ku:c:{campaign_id}:hop:0", "worker-2", "{half")
    store.redis.hset(f"ku:c:{campaign_id}:live", "worker-1", "not json")
    store.redis.set(f"ku:c:{campaign_id}:plan", "[]")
    shown = cli("status", campaign_id, "--broker", redis_url, env={"COLUMNS": "200"})
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert f"Campaign {campaign_id}" in shown.stdout and "drain timed out" in shown.stdout
    assert "worker-1" in shown.stdout and "drain failed" in shown.stdout and "worker-2: drain running" in shown.stdout
    for part in (f"ku:c:{campaign_id}:hop:0 field worker-2: not JSON",
                 f"ku:c:{campaign_id}:live field worker-1: not JSON",
                 f"ku:c:{campaign_id}:plan: a JSON list, not an object"):
        assert f"Damaged, left out of this view: {part}" in shown.stdout, shown.stdout
    assert f"damaged event {events}[1]: not an event (a time and a message)" in shown.stdout
    as_json = yaml.safe_load(cli("status", campaign_id, "-o", "json", "--broker", redis_url).stdout)
    assert len(as_json["damaged"]) == 3 and [n["node"] for n in as_json["hops"][0]["nodes"]] == ["worker-1"]
    assert sum(e["message"].startswith("damaged event") for e in as_json["events"]) == 3
    # One node's view names its own damage, not "not part of this campaign".
    node = cli("status", campaign_id, "--node", "worker-2", "--broker", redis_url, env={"COLUMNS": "200"})
    assert node.returncode == 0 and "Traceback" not in node.stderr, node.stderr
    assert f"Damaged, left out of this view: ku:c:{campaign_id}:hop:0 field worker-2: not JSON" in node.stdout
    assert "not part of this campaign" not in node.stdout and "worker-1:" not in node.stdout
    node_json = yaml.safe_load(cli("status", campaign_id, "--node", "worker-1", "-o", "json",
                                   "--broker", redis_url).stdout)
    assert [d.split(" (")[0] for d in node_json["damaged"]] == [f"ku:c:{campaign_id}:live field worker-1: not JSON"]
    assert [hop["hop"] for hop in node_json["hops"]] == [1]
    absent = cli("status", campaign_id, "--node", "worker-9", "--broker", redis_url)
    assert "worker-9 is not part of this campaign" in absent.stdout and "Damaged" not in absent.stdout


def test_an_active_campaign_with_no_controller_says_it_waits_for_one(redis_url):
    """With no controller nothing moves, not even a phase already sent: status must say so,
    not show a campaign `running` with a phase `queued` for ever."""
    from kubeupgrade.workflow.record import LEADER_KEY

    store = CampaignStore.from_url(redis_url)
    campaign_id = running_campaign(store, "prod")
    waiting = cli("status", campaign_id, "--broker", redis_url, env={"COLUMNS": "200"})
    assert waiting.returncode == 0
    assert "Waiting for a controller: none is running against this broker" in waiting.stdout
    assert "`kubeupgrade controller --kubeconfig <file>`" in " ".join(waiting.stdout.split())
    assert yaml.safe_load(cli("status", campaign_id, "-o", "json", "--broker", redis_url).stdout)[
        "waiting_for_controller"] is True
    store.redis.set(LEADER_KEY, "a-controller", px=30_000)
    led = cli("status", campaign_id, "--broker", redis_url, env={"COLUMNS": "200"})
    assert "Waiting for a controller" not in led.stdout and f"Campaign {campaign_id}" in led.stdout
    store.redis.delete(LEADER_KEY)
    store.update(campaign_id, lambda doc: doc.update(state="failed"))
    ended = cli("status", campaign_id, "--broker", redis_url, env={"COLUMNS": "200"})
    assert "Waiting for a controller" not in ended.stdout  # an ended campaign waits for nothing


def test_a_running_campaign_the_dispatcher_no_longer_looks_at_says_so(redis_url):
    """A running campaign taken out of the dispatcher's set (by hand, or by a forged write)
    would show `running` for ever with nothing moving: status says nothing is sent for it,
    and what to do."""
    store = CampaignStore.from_url(redis_url)
    campaign_id = running_campaign(store, "prod")
    assert "Not acted on" not in cli("status", campaign_id, "--broker", redis_url,
                                     env={"COLUMNS": "200"}).stdout
    store.deactivate(campaign_id)
    shown = cli("status", campaign_id, "--broker", redis_url, env={"COLUMNS": "200"})
    text = " ".join(shown.stdout.split())
    assert "Not acted on: the dispatcher no longer looks at this running campaign" in text
    assert "taken out of the broker by hand, or by a damaged write" in text
    assert f"`kubeupgrade abort {campaign_id}` releases its cluster" in text
    assert yaml.safe_load(cli("status", campaign_id, "-o", "json", "--broker", redis_url).stdout)[
        "not_acted_on"] is True
    store.event(campaign_id, "the dispatcher stopped acting on it: damaged record ku:c:x:schedule:0: ...")
    assert "(it is not among ku:active: the dispatcher stopped acting on it: damaged record" in " ".join(
        cli("status", campaign_id, "--broker", redis_url, env={"COLUMNS": "200"}).stdout.split())
    store.update(campaign_id, lambda doc: doc.update(state="failed"))
    assert "Not acted on" not in cli("status", campaign_id, "--broker", redis_url,
                                     env={"COLUMNS": "200"}).stdout  # an ended campaign waits for nothing
