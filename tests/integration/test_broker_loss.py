"""A broker that comes back without its data: the controller's dispatcher names each campaign
it was acting on, with the nodes it held cordoned and what ran, for `list` and `status`.
Real redis-server, the real dispatcher, the real CLI."""

import subprocess
import sys
import time

import pytest

from kubeupgrade.workflow.app import client_app
from kubeupgrade.workflow.broker_loss import EPOCH_KEY, data_began, lost_campaign
from kubeupgrade.workflow.dispatcher import Dispatcher
from kubeupgrade.workflow.record import LEADER_KEY, CampaignStore
from tests.integration.test_dispatcher_budget import at_worker_stage

pytestmark = pytest.mark.integration


def cli(url, *argv):
    return subprocess.run([sys.executable, "-m", "kubeupgrade", *argv, "--broker", url],
                          capture_output=True, text=True, timeout=60)


def mid_outage(store, dispatcher):
    """A campaign whose w-0 is drained (cordoned by it) and installing its kubelet, as the
    dispatcher last read it."""
    campaign = at_worker_stage(store, dispatcher, "window")

    def drained(entry):
        entry["cordoned_by_us"] = True
        for phase in entry["phases"]:
            if phase["phase"] == "drain":
                phase["state"] = "succeeded"
            if phase["phase"] == "install-kubelet":
                phase["state"] = "running"

    store.update_entry(campaign, 0, "w-0", drained)
    assert dispatcher._lead("token-a")
    dispatcher.tick()
    return campaign


def test_a_broker_emptied_under_a_running_campaign_leaves_a_notice_list_and_status_show(redis_url):
    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    campaign = mid_outage(store, dispatcher)
    assert lost_campaign(store.redis, campaign) is None and store.redis.get(EPOCH_KEY)
    store.redis.flushall()  # what a redis-server restarted without its AOF comes back as
    assert dispatcher._lead("token-a")  # the lease went with the data: taken again, and looked into
    notice = lost_campaign(store.redis, campaign)
    assert notice is not None and notice.cordoned == ("w-0",)
    assert notice.running == ("w-0: install-kubelet",) and notice.cluster == "budget"
    status = cli(redis_url, "status", campaign)
    assert status.returncode == 1 and status.stdout == ""
    assert status.stderr.count("\n") == 1, status.stderr
    assert "was lost with the broker's data" in status.stderr and "nodes it held cordoned: w-0" in status.stderr
    listed = cli(redis_url, "list")
    assert listed.returncode == 0 and f"\nlost: {campaign}: campaign {campaign} (budget," in listed.stdout
    # `status` without an id shows it while nothing newer runs on its cluster.
    alone = cli(redis_url, "status")
    assert alone.returncode == 1 and "was lost with the broker's data" in alone.stderr
    # Each later tick and lease renewal: nothing more written.
    dispatcher.tick()
    assert dispatcher._lead("token-a")
    assert len(list(store.redis.scan_iter("ku:lost:*"))) == 1


def test_the_epoch_changed_with_the_records_in_place_writes_no_notice(redis_url):
    # The epoch key rewritten (by hand, or by anyone with a broker credential) and the lease
    # dropped: the records are there, so nothing was lost and nothing says so.
    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    campaign = mid_outage(store, dispatcher)
    store.redis.set(EPOCH_KEY, "forged")
    store.redis.delete(LEADER_KEY)
    assert dispatcher._lead("token-a")
    assert lost_campaign(store.redis, campaign) is None
    assert cli(redis_url, "status", campaign).returncode == 0


def test_a_dispatcher_that_was_not_leading_does_not_tell_from_what_it_held_before(redis_url):
    # What a standby controller holds of the campaigns dates from when it last led: the
    # campaign may have ended since. Only the dispatcher that led at its last look tells.
    store = CampaignStore.from_url(redis_url)
    dispatcher = Dispatcher(client_app(redis_url), store)
    campaign = mid_outage(store, dispatcher)
    store.redis.set(LEADER_KEY, "token-b", px=60_000)  # another controller took the lead
    assert not dispatcher._lead("token-a")
    store.redis.flushall()
    assert dispatcher._lead("token-a")
    assert lost_campaign(store.redis, campaign) is None
    unknown = cli(redis_url, "status", campaign)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1  # no campaign, no notice
    # ... but when this broker's data began, so that a campaign submitted before is known gone.
    began = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(data_began(store.redis)))
    assert abs(data_began(store.redis) - time.time()) < 30
    assert f"no campaign '{campaign}'; this broker's data begins at {began}" in unknown.stderr
    assert f"kubeupgrade.io/cordoned-by={campaign}" in unknown.stderr


def test_status_of_a_campaign_on_a_broker_emptied_with_no_controller_since_says_so(redis_url):
    store = CampaignStore.from_url(redis_url)
    campaign = store.create("prod", {"cluster": "prod", "target": "1.31"}, "prod.yaml")
    store.redis.flushall()
    gone = cli(redis_url, "status", campaign)
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1
    assert "this broker holds no epoch: it is new, or it came back without its data" in gone.stderr
    # An epoch that does not tell its time (an earlier release's, or set by hand): the plain answer.
    store.redis.set(EPOCH_KEY, "forged")
    plain = cli(redis_url, "status", campaign)
    assert plain.stderr.strip() == f"error: no campaign '{campaign}'; `kubeupgrade list` shows the campaigns"
    # A malformed id is never echoed into advice.
    store.redis.delete(EPOCH_KEY)
    odd = cli(redis_url, "status", "Prod X")
    assert odd.returncode == 2 and "cordoned-by" not in odd.stderr


def test_a_campaign_is_known_lost_by_its_notice_or_by_a_cordon_made_under_another_brokers_data(redis_url):
    """A notice, or a cordon's mark naming an epoch this broker does not have, for a campaign
    this broker has no record of. Not lost: a campaign recorded here, a mark of this broker's
    epoch, a mark without one, or a broker with no epoch yet to compare with."""
    from kubeupgrade.workflow.broker_loss import BrokerEpoch, current_epoch, is_lost, known_campaign

    store = CampaignStore.from_url(redis_url)
    gone = "prod-20990101-000000-eeeeee"
    assert current_epoch(store.redis) == "" and not is_lost(store.redis, gone, "another@1")
    BrokerEpoch().lost_since(store.redis)
    now = current_epoch(store.redis)
    assert now and not is_lost(store.redis, gone, now) and not is_lost(store.redis, gone, None)
    assert is_lost(store.redis, gone, "another@1") and known_campaign(store.redis, gone, "another@1")
    assert not known_campaign(store.redis, gone, now) and not is_lost(store.redis, "Not An Id", "another@1")
    here = store.create("prod", {"cluster": "prod", "target": "1.31"}, "prod.yaml")
    assert not is_lost(store.redis, here, "another@1") and known_campaign(store.redis, here, "another@1")
