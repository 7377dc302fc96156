"""The Python API: submit a campaign and follow it. Also the composition root of the CLI.

    from kubeupgrade import submit
    handle = submit("campaign.yaml", broker="redis://127.0.0.1:6379/0")
    handle.wait(timeout=3600)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeupgrade.errors import InvalidInput, PolicyRefused, RuntimeFailure
from kubeupgrade.model.campaign import Campaign
from kubeupgrade.planning.estimate import Durations

TERMINAL = ("succeeded", "failed", "aborted", "refused")
BROKER_SCHEMES = ("redis://", "rediss://", "unix://")


def _app_and_store(broker: str | None):  # type: ignore[no-untyped-def]
    import redis

    from kubeupgrade.workflow.app import broker_url, client_app
    from kubeupgrade.workflow.record import CampaignStore

    url = broker or broker_url()
    if not url.startswith(BROKER_SCHEMES):
        raise InvalidInput(f"broker {_redact(url)}: not a Redis URL; use redis://HOST:6379/0 or "
                           "rediss://USER:PASSWORD@HOST:6380/0 (--broker, or $KUBEUPGRADE_BROKER)")
    app = client_app(url)
    store = CampaignStore.from_url(url)
    try:
        store.redis.ping()
    except redis.RedisError as error:
        raise RuntimeFailure(f"cannot reach the broker at {_redact(url)}: {error}; is redis-server "
                             "running there? (--broker, or $KUBEUPGRADE_BROKER)") from None
    return app, store


def _redact(url: str) -> str:
    """The URL without its credentials, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.rpartition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}" if scheme else "***@" + url.rsplit("@", 1)[1]


@dataclass
class CampaignHandle:
    id: str
    broker: str | None = None
    _parts: Any = field(default=None, repr=False)

    def _tools(self):  # type: ignore[no-untyped-def]
        if self._parts is None:
            self._parts = _app_and_store(self.broker)
        return self._parts

    def status(self) -> dict[str, Any]:
        """The campaign document, with its plan, per-hop node entries and recent events."""
        from kubeupgrade.workflow.broker_memory import memory_pressure
        from kubeupgrade.workflow.control import require

        _, store = self._tools()
        doc = require(store, self.id)
        # A view: a damaged part (a node's entry, a detail kept apart) is named in "damaged"
        # and left out, so the rest (which nodes are cordoned, what failed) still shows.
        damaged: list[str] = []
        doc["entries"] = [store.with_tails(self.id, hop, store.entries(self.id, hop, damaged=damaged))
                          for hop in range(len(doc["hops"]))]
        doc["events"] = store.events(self.id)
        doc = store.with_details(self.id, doc, damaged)
        doc["damaged"] = damaged
        doc["controller_leading"] = _controller_leading(store)
        doc["acted_on"] = _acted_on(store, self.id)
        doc["broker_memory"] = memory_pressure(store.redis)
        return doc

    def state(self) -> str:
        from kubeupgrade.workflow.control import require

        return require(self._tools()[1], self.id)["state"]

    def wait(self, timeout: float = 3600.0, interval: float = 0.5) -> str:
        """Wait until the campaign stops (succeeded, failed, aborted, refused); return the state."""
        import redis

        deadline = time.monotonic() + timeout
        while True:
            try:
                state = self.state()
            except (redis.ConnectionError, redis.TimeoutError):
                # A broker restarting (refused) or frozen (no answer within the socket timeout):
                # keep waiting, as the campaign itself does.
                state = "unknown (broker unreachable)"
            if state in TERMINAL:
                return state
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"campaign {self.id} still {state} after {timeout:g}s")
            time.sleep(interval)

    def retry(self) -> None:
        from kubeupgrade.workflow.control import retry

        retry(self._tools()[1], self.id)

    def pause(self) -> None:
        """Nothing new starts; nodes under way finish their outage. Survives restarts."""
        from kubeupgrade.workflow.control import pause

        pause(self._tools()[1], self.id)

    def resume(self) -> None:
        from kubeupgrade.workflow.control import resume

        resume(self._tools()[1], self.id)

    def abort(self, uncordon: bool = False, restore_repositories: bool = False) -> list[str]:
        """Stop the campaign; returns the nodes it left cordoned (after uncordoning, if asked).
        Package repositories go back where nothing was installed from the new one (everywhere
        with `restore_repositories`); `repositories()` says what became of each."""
        from kubeupgrade.workflow.control import abort

        app, store = self._tools()
        return abort(app, store, self.id, uncordon=uncordon, restore_repositories=restore_repositories)

    def repositories(self) -> dict[str, str]:
        """node -> what became of its package repository when the campaign stopped."""
        from kubeupgrade.workflow.control import repositories

        return repositories(self._tools()[1], self.id)

    def output(self, hop: int, node: str, phase: str) -> str | None:
        return self._tools()[1].output(self.id, hop, node, phase)


def submit(campaign: str | Path | Campaign, *, broker: str | None = None,
           accept_timeout: float = 30.0, key: str | Path | None = None) -> CampaignHandle:
    """Validate, sign and submit a campaign; wait until a controller accepts (or refuses) it.

    `key`: the operator's signing key (default $KUBEUPGRADE_SIGNING_KEY, then
    ~/.config/kubeupgrade/operator.key); agents run nothing for a campaign their trusted keys
    did not sign. Raises InvalidInput for a bad file or key, PolicyRefused when another campaign
    holds the cluster or the controller's plan breaks a rule. A campaign no controller has
    picked up yet is returned as is: it starts when a controller runs.
    """
    from kubeupgrade.campaign_file import campaign_to_dict, load_campaign
    from kubeupgrade.security.signing import load_private_key, sign, signing_key_path

    model = campaign if isinstance(campaign, Campaign) else load_campaign(campaign)
    source = model.source
    private = load_private_key(signing_key_path(key))  # before anything is written
    document = campaign_to_dict(model)
    _, store = _app_and_store(broker)
    campaign_id = store.create(model.cluster, document, source,
                               signer=lambda cid: sign(private, cid, model.cluster, document))
    handle = CampaignHandle(campaign_id, broker)
    deadline = time.monotonic() + accept_timeout
    pause = 0.01  # a running controller accepts within a tick: look soon, then every 0.2 s
    while time.monotonic() < deadline:
        doc = store.get(campaign_id)
        if doc and doc["state"] == "refused":
            refusal = InvalidInput if doc["error"].get("bad_input") else PolicyRefused
            raise refusal(f"campaign {campaign_id} refused: {doc['error']['message']}")
        if doc and doc["state"] != "pending":
            break
        # Woken as soon as the dispatcher accepts or refuses it; a look every 0.2 s at most
        # all the same (a controller of an older release does not wake it).
        store.wait_decided(campaign_id, min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.2)
    return handle


def get(campaign_id: str, broker: str | None = None) -> CampaignHandle:
    from kubeupgrade.workflow.record import DamagedRecord

    handle = CampaignHandle(campaign_id, broker)
    try:
        handle.state()  # raises InvalidInput for an unknown id
    except DamagedRecord:
        pass  # the handle still exists: status names the damage, abort releases the cluster
    return handle


def recorded_durations(cluster: str, broker: str | None = None) -> Durations:
    """Median phase durations recorded by earlier campaigns on the broker (those of `cluster`
    first), for estimate(); phases with too few runs keep their typical durations."""
    from kubeupgrade.workflow.history import recorded_durations as read

    _, store = _app_and_store(broker)
    return read(store, cluster)


def list_campaigns(broker: str | None = None) -> list[dict[str, Any]]:
    """Campaign documents, newest first, after those the broker lost (lost_first); a damaged
    one is {"id", "state": "damaged", "error"}."""
    from kubeupgrade.workflow.record import DamagedRecord

    _, store = _app_and_store(broker)
    docs = []
    for campaign_id in reversed(store.ids()):
        try:
            doc = store.get(campaign_id)
        except DamagedRecord as error:
            doc = {"id": campaign_id, "cluster": "?", "state": "damaged", "created": 0.0,
                   "campaign": {}, "error": {"message": str(error)}}
        if doc:
            docs.append(doc)
    return lost_first(store) + docs


def lost_first(store: Any) -> list[dict[str, Any]]:
    """The campaigns the broker lost with its data, as the controller last read them
    (workflow/broker_loss.py): {"id", "cluster", "state": "lost", "created", "campaign", "error"}."""
    from kubeupgrade.workflow.broker_loss import LostCampaign, lost_campaigns

    docs: list[dict[str, Any]] = []
    for lost in lost_campaigns(store.redis):
        if isinstance(lost, LostCampaign):
            docs.append({"id": lost.id, "cluster": lost.cluster, "state": "lost", "created": lost.noticed,
                         "campaign": {"target": lost.target}, "error": {"message": lost.explain()}})
        else:
            campaign_id, why = lost
            docs.append({"id": campaign_id, "cluster": "?", "state": "damaged", "created": 0.0,
                         "campaign": {}, "error": {"message": why}})
    return docs


def _acted_on(store: Any, campaign_id: str) -> bool | None:
    """Whether the dispatcher looks at the campaign (it is among ku:active); None: the broker
    would not say."""
    import redis

    try:
        return store.is_active(campaign_id)
    except redis.RedisError:
        return None


def _controller_leading(store: Any) -> bool | None:
    """Whether a controller holds the dispatcher's lease now (None: the broker would not say).
    Without one nothing moves: a submitted campaign is not accepted, a sent phase waits in the
    controller's queue, and no next phase is sent."""
    import redis

    from kubeupgrade.workflow.record import LEADER_KEY

    try:
        return store.redis.get(LEADER_KEY) is not None
    except redis.RedisError:
        return None
