"""A broker that lost its data: noticed by the controller, told to the operator.

Every campaign lives in Redis. A redis-server that comes back empty (restarted without its
AOF, its disk replaced, flushed by hand) takes every record with it, with the cluster's lock
and the queues, while the cluster keeps what the campaigns did: nodes cordoned (annotated
kubeupgrade.io/cordoned-by), hosts half-way through a hop. Before this, nothing said so:
`status` answered "no campaign" and `list` "no campaigns".

The controller keeps a random epoch in the broker (EPOCH_KEY, never expiring) and remembers
the one it saw. Data lost takes the dispatcher's lease with it, so whenever the lease was
not simply renewed the dispatcher reads the epoch again: one it remembered, gone or changed,
means the data went. It then writes a notice for each campaign it was acting on and whose
record is gone, from what it last read of it (`LostCampaign`), which `list` and `status` show.

A notice changes what the next campaign on the cluster does with the lost one's cordons: it
takes over every node the lost campaign left cordoned, even one already at the target (a drain
that adopts the cordon, the readiness wait, the uncordon), and its preflight does not refuse
one of them left Not Ready half-way. A controller that was not acting on the campaign when the
data went (restarted just then) has nothing to write a notice from; the node tells instead: each
cordon is marked with the epoch of the broker its campaign is recorded in (kube/nodes.py,
CORDON_EPOCH), and a mark made under an epoch that is not this broker's, by a campaign it has
no record of, counts as a lost campaign's (is_lost). Without either, a campaign's mark counts
as someone else's cordon: it may be an operator's, re-cordoned after a hand-made uncordon left
the annotation behind. It is never released, and counts against the limit, named in the events
and by `doctor`. A host command still running finishes under its host's lock.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from kubeupgrade.model.wording import some_names
from kubeupgrade.workflow.names import valid_campaign_id, valid_entry_name, valid_node_name

EPOCH_KEY = "ku:broker:epoch"
LOST_PREFIX = "ku:lost:"
LOST_KEPT_SECONDS = 30 * 86400  # as long as an ended campaign's record (retention.py)
NAMED = 20  # nodes named in a notice; the count of the others follows


@dataclass(frozen=True)
class LostCampaign:
    """What the controller last read of a campaign whose record the broker lost."""

    id: str
    cluster: str
    state: str  # when last read
    source: str  # the file it was submitted from
    target: str
    last_read: float  # time.time() of the dispatcher's last tick that read it
    noticed: float  # when the controller found the broker's data gone
    cordoned: tuple[str, ...]  # nodes it held cordoned (or was about to cordon) then
    running: tuple[str, ...]  # "node: phase" running then, "node: phase (sent)" sent and not yet started

    def explain(self) -> str:
        """One line: what happened, what is left on the cluster, what to do."""
        at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.noticed))
        text = (f"campaign {self.id} ({self.cluster}, {self.state} when last read) was lost with the "
                f"broker's data (found gone at {at}: redis-server restarted without its AOF, or "
                "flushed?)")
        if self.cordoned:
            text += (f"; nodes it held cordoned: {some_names(self.cordoned, NAMED)} (annotated "
                     f"kubeupgrade.io/cordoned-by={self.id})")
        if self.running:
            text += f"; running then: {some_names(self.running, NAMED)}"
        again = f"`kubeupgrade submit {self.source}`" if self.source else "submit the campaign"
        return (text + f". {again} again: it adopts the nodes an earlier campaign left cordoned"
                " and counts them out of service until then")

    def to_json(self) -> str:
        fields = dict(self.__dict__, cordoned=list(self.cordoned), running=list(self.running))
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, campaign_id: str, raw: str) -> LostCampaign:
        """A notice as written; ValueError naming its key when it is not one."""
        key = LOST_PREFIX + campaign_id
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            if not valid_campaign_id(campaign_id):
                raise ValueError("not a campaign id")
            if not isinstance(data.get("cordoned"), list) or not isinstance(data.get("running"), list):
                raise TypeError("cordoned and running must be lists")
            lost = cls(id=campaign_id, cluster=str(data["cluster"]), state=str(data["state"]),
                       source=str(data.get("source") or ""), target=str(data.get("target") or ""),
                       last_read=float(data["last_read"]), noticed=float(data["noticed"]),
                       cordoned=tuple(data["cordoned"]), running=tuple(data["running"]))
            if not all(valid_node_name(n) for n in lost.cordoned):
                raise ValueError("cordoned: not a list of node names")
            # "@cluster: preflight": a cluster phase (preflight, a gate, verify) runs too
            if not all(isinstance(r, str) and valid_entry_name(r.split(": ", 1)[0]) for r in lost.running):
                raise ValueError("running: not a list of 'node: phase'")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"damaged notice {key}: {error}; inspect it, then delete it") from None
        return lost


def unknown_cordons_told(held: list[str]) -> str:
    """The event naming nodes ("node (campaign)") cordoned by a campaign this broker knows
    neither by its record nor by a notice: left as they are (see the module's docstring)."""
    return ("cordoned by a kubeupgrade campaign this broker does not know, left as they are and "
            f"counted out of service: {some_names(tuple(sorted(held)), NAMED)} (an operator's cordon over an "
            "annotation an uncordon by hand left behind, or a campaign lost unseen: `kubectl "
            "uncordon` once you know)")


class BrokerEpoch:
    """The broker's epoch as this process last saw it."""

    def __init__(self) -> None:
        self.known: str | None = None

    def lost_since(self, client: redis.Redis) -> bool:
        """Whether the broker's data went since the last call: the epoch this process saw is
        gone or another. Sets an epoch where there is none (a new or emptied broker)."""
        with client.pipeline(transaction=True) as pipe:
            pipe.set(EPOCH_KEY, f"{uuid.uuid4().hex}@{time.time():.0f}", nx=True)
            pipe.get(EPOCH_KEY)
            _, current = pipe.execute()
        current = current.decode() if isinstance(current, bytes) else current
        lost = self.known is not None and current != self.known
        self.known = current
        return lost


def data_began(client: redis.Redis) -> float | None | bool:
    """When this broker's data began: the time a controller set its epoch (a new broker, or one
    that came back without its data); False when no epoch is set; None when the epoch does not
    tell (set by an earlier release, or by hand)."""
    text = current_epoch(client)
    if not text:
        return False
    _, at, stamp = text.partition("@")
    try:
        began = float(stamp) if at else None
    except ValueError:
        return None
    return began if began is not None and math.isfinite(began) and began > 0 else None


def unknown_campaign_told(client: redis.Redis, campaign_id: str) -> str:
    """What `status` says of a campaign this broker knows neither by its record nor by a notice:
    it may be a mistyped id, or a campaign lost with the broker's data that no controller saw go
    (it was not acting on it then: stopped, or another controller restarted since)."""
    began = data_began(client) if valid_campaign_id(campaign_id) else None
    cordons = (f"nodes it cordoned carry kubeupgrade.io/cordoned-by={campaign_id}, which `kubeupgrade "
               "doctor` names")
    if began is False:
        since = ("this broker holds no epoch: it is new, or it came back without its data and no "
                 "controller has run against it since")
    elif began is None:
        return f"no campaign {campaign_id!r}; `kubeupgrade list` shows the campaigns"
    else:
        at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(began))
        since = f"this broker's data begins at {at} (a new broker, or one that came back without its data)"
    return (f"no campaign {campaign_id!r}; {since}: a campaign submitted before then is gone with it "
            f"and no controller saw it go, so submit it again ({cordons}); `kubeupgrade list` shows "
            "the campaigns")


def keep_notices(client: redis.Redis, lost: list[LostCampaign]) -> list[LostCampaign]:
    """Write a notice for each campaign whose record is indeed gone (an epoch key changed by
    hand, with the records in place, writes none); the notices written."""
    gone = [c for c in lost if not client.exists(f"ku:c:{c.id}")]
    with client.pipeline(transaction=False) as pipe:
        for campaign in gone:
            pipe.set(LOST_PREFIX + campaign.id, campaign.to_json(), ex=LOST_KEPT_SECONDS)
        pipe.execute()
    return gone


def current_epoch(client: redis.Redis) -> str:
    """This broker's epoch as stored ("" while no controller has set one): what a campaign's
    cordon is marked with (kube/nodes.py, CORDON_EPOCH)."""
    raw = client.get(EPOCH_KEY)
    return "" if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


def is_lost(client: redis.Redis, campaign_id: str, cordon_epoch: str | None = None) -> bool:
    """Whether `campaign_id` was lost with a broker's data: a controller found it so (a notice
    is kept), or, for a node it cordoned, its mark says it was recorded under `cordon_epoch`, an
    epoch that is not this broker's, and this broker has no record of it. The second holds when
    no controller saw the loss (one restarted just as redis-server came back empty)."""
    if not valid_campaign_id(campaign_id):
        return False
    if client.exists(LOST_PREFIX + campaign_id):
        return True
    return _under_another_broker(client, cordon_epoch) and not client.exists(f"ku:c:{campaign_id}")


def known_campaign(client: redis.Redis, campaign_id: str, cordon_epoch: str | None = None) -> bool:
    """Whether this broker holds `campaign_id`'s record or knows it lost (is_lost): a campaign
    whose cordons another may take over (kube/nodes.py, cordon_node)."""
    return valid_campaign_id(campaign_id) and (
        bool(client.exists(f"ku:c:{campaign_id}", LOST_PREFIX + campaign_id))
        or _under_another_broker(client, cordon_epoch))  # neither: is_lost's second case


def _under_another_broker(client: redis.Redis, cordon_epoch: str | None) -> bool:
    """Whether a cordon's mark names an epoch, and this broker has another one."""
    if not cordon_epoch:
        return False
    now = current_epoch(client)
    return bool(now) and now != cordon_epoch


def lost_campaign(client: redis.Redis, campaign_id: str) -> LostCampaign | None:
    raw = client.get(LOST_PREFIX + campaign_id)
    if raw is None:
        return None
    return LostCampaign.from_json(campaign_id, raw.decode() if isinstance(raw, bytes) else raw)


def lost_campaigns(client: redis.Redis) -> list[LostCampaign | tuple[str, str]]:
    """Every notice, newest first; a damaged one as (campaign id, why)."""
    found: list[LostCampaign | tuple[str, str]] = []
    for key in client.scan_iter(f"{LOST_PREFIX}*", count=500):
        name = key.decode() if isinstance(key, bytes) else key
        campaign_id = name[len(LOST_PREFIX):]
        try:
            lost = lost_campaign(client, campaign_id)
        except ValueError as error:
            found.append((campaign_id, str(error)))
            continue
        if lost is not None:
            found.append(lost)
    return sorted(found, key=lambda c: -c.noticed if isinstance(c, LostCampaign) else 0.0)


def from_last_read(doc: Any, entries: dict[str, Any], last_read: float, noticed: float) -> LostCampaign:
    """A notice from the dispatcher's last read of a campaign (`doc`) and of its current hop's
    entries (node -> entry)."""
    campaign = doc.get("campaign") or {}
    cordoned = sorted(n for n, e in entries.items() if isinstance(e, dict) and e.get("cordoned_by_us"))
    running = []
    for node, entry in entries.items():
        for phase in (entry.get("phases") or ()) if isinstance(entry, dict) else ():
            if not isinstance(phase, dict):
                continue
            if phase.get("state") == "running":
                running.append(f"{node}: {phase.get('phase')}")
            elif phase.get("state") == "pending" and phase.get("task_id"):
                # Sent, its start not yet read: it may be running on its host all the same (the
                # next link of a chain is sent by the phase before it, and its start reaches the
                # dispatcher a tick later).
                running.append(f"{node}: {phase.get('phase')} (sent)")
    return LostCampaign(id=str(doc.get("id")), cluster=str(doc.get("cluster")), state=str(doc.get("state")),
                        source=str(doc.get("source") or ""), target=str(campaign.get("target") or ""),
                        last_read=last_read, noticed=noticed, cordoned=tuple(cordoned), running=tuple(sorted(running)))
