"""The controller's seal on what it accepted: a campaign's document and each hop's schedule.

Agents must write the record (their phases' begins and finishes), so the broker's key rules
cannot keep a node's credential away from the keys only the controller should write, and an
agent's message key can sign a task for the controller's queue. Two things decide what the
controller itself does to the cluster: each hop's schedule (its order, its limit and its pool
limits) and the campaign document its cluster phases read (drain policy above all). A forged
schedule could raise the limit; a forged record could have the controller drain any node of
any cluster it reaches. The operator's signature does not help here: the controller holds no
operator key list, and the limit is computed at acceptance, not signed.

So at acceptance the controller writes `ku:c:<id>:accepted`: the campaign id, its cluster, the
SHA-256 of the document as the operator signed it (kubeupgrade.security.signing.canonical) and of
each hop's schedule, and each hop's target minor as planned, with an HMAC-SHA256 keyed from the controller's own message-signing key,
which no agent or CLI holds. The dispatcher reads a schedule only if it matches, and a cluster
phase runs only for a campaign whose document still matches and whose schedule names the node.
Anything else is a damaged record: named, and nothing done for it.

The record's progress is the agents' to write too (a hop's stage, its current hop, the cluster
entry's phases), so a campaign could be walked to its end in the broker without a verification
ever passing: a false success, with nodes left behind or cordoned. So when a hop's verification
passes, the verify phase writes `ku:c:<id>:verified:<n>` sealed with the same key, and the
dispatcher moves past a hop, or lets a campaign end as succeeded, only on that seal, for every
hop it accepted. The hop's version is the record's word as well, and every check of the
cluster is made against it: written back to the version the nodes run already, it would pass
the control planes before their upgrade, and a verification that upgraded nothing. So the
dispatcher seals the version it resolves (`ku:c:<id>:resolved:<n>`), and the controller's
phases and checks use that one; a record that says otherwise is damaged.

Without a message key (`--unsigned-messages`) there is nothing to key the seal with, and nothing
is sealed or checked: the broker is trusted whole in that mode anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kubeupgrade.security.signing import canonical_json

# Bound into the key so that the same message key can never be made to vouch for anything else.
_PURPOSE = b"kubeupgrade acceptance seal v1\0"


class SealBroken(ValueError):
    """What was read is not what this controller sealed (the message names the difference)."""


def digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def schedule_digest(schedule: dict[str, Any]) -> str:
    """A schedule's digest, over its canonical form (the stored JSON may be spaced differently,
    and need not be)."""
    return digest(canonical_json(schedule))


@dataclass(frozen=True)
class Acceptance:
    """What the controller vouched for when it accepted a campaign."""

    campaign_id: str
    cluster: str
    signed_sha256: str  # of signing.canonical(id, cluster, campaign) as it was planned from
    schedules: tuple[str, ...]  # each hop's schedule_digest, in hop order
    targets: tuple[str, ...]  # each hop's target as planned (1.30, 1.31...), in hop order

    def body(self) -> dict[str, Any]:
        return {"campaign": self.campaign_id, "cluster": self.cluster,
                "signed_sha256": self.signed_sha256, "schedules": list(self.schedules),
                "targets": list(self.targets)}

    def check_schedule(self, hop: int, schedule: dict[str, Any]) -> None:
        if not 0 <= hop < len(self.schedules):
            raise SealBroken(f"the controller accepted no hop {hop + 1}")
        if schedule_digest(schedule) != self.schedules[hop]:
            raise SealBroken(f"hop {hop + 1}'s schedule is not the one the controller accepted "
                             "(changed in the broker after acceptance)")

    def check_target(self, hop: int, target: str) -> None:
        if not 0 <= hop < len(self.targets):
            raise SealBroken(f"this controller accepted no hop {hop + 1}")
        if target != self.targets[hop]:
            raise SealBroken(f"this controller accepted it with target {self.targets[hop]}")

    def check_document(self, signed_text: bytes) -> None:
        if digest(signed_text) != self.signed_sha256:
            raise SealBroken("the campaign document is not the one the controller accepted "
                             "(changed in the broker after acceptance)")


class RecordSeal:
    """An HMAC key only the controller holds, and what it seals and checks with it."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(_PURPOSE + secret).digest()

    @classmethod
    def from_key_file(cls, path: Path) -> RecordSeal:
        return cls(path.read_bytes())

    def _mac(self, body: dict[str, Any]) -> str:
        return hmac.new(self._key, canonical_json(body), hashlib.sha256).hexdigest()

    def seal(self, acceptance: Acceptance) -> str:
        """The text stored under ku:c:<id>:accepted."""
        return json.dumps({**acceptance.body(), "seal": self._mac(acceptance.body())})

    def seal_hop(self, fact: HopFact, campaign_id: str, hop: int, version: str) -> str:
        """The text stored under ku:c:<id>:<fact>:<hop>: the controller resolved the hop's
        version (`resolved`), or the hop's verification passed at it (`verified`)."""
        body = _hop_body(fact, str(campaign_id), int(hop), str(version))  # as check_hop reads it
        return json.dumps({**body, "seal": self._mac(body)})

    def check_hop(self, fact: HopFact, campaign_id: str, hop: int, text: str | None) -> str:
        """The version this controller sealed `fact` of hop `hop` of `campaign_id` with;
        SealBroken naming what is wrong otherwise."""
        name, never = _HOP_FACTS[fact]
        if text is None:
            raise SealBroken(f"hop {hop + 1} has no sealed {name}: {never}")
        try:
            stored = json.loads(text)
            if stored["fact"] != fact:
                raise ValueError(f"not a seal of the {name}")
            body = _hop_body(fact, str(stored["campaign"]), int(stored["hop"]), str(stored["version"]))
            mac = str(stored["seal"])
        except (ValueError, KeyError, TypeError) as error:
            raise SealBroken(f"hop {hop + 1}'s sealed {name} is unreadable "
                             f"({type(error).__name__})") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise SealBroken(f"hop {hop + 1}'s {name} seal does not verify with this "
                             "controller's key (forged, or sealed under another message key)")
        if (body["campaign"], body["hop"]) != (campaign_id, hop):
            raise SealBroken(f"hop {hop + 1}'s {name} seal is campaign {body['campaign']}'s "
                             f"hop {body['hop'] + 1}, copied here")
        return str(body["version"])

    def open(self, campaign_id: str, text: str | None) -> Acceptance:
        """The acceptance `text` holds, if this controller sealed it for `campaign_id`;
        SealBroken naming what is wrong otherwise."""
        if text is None:
            raise SealBroken("no sealed acceptance: this controller never accepted the campaign "
                             "(forged, or accepted by a controller with another message key)")
        try:
            stored = json.loads(text)
            acceptance = Acceptance(str(stored["campaign"]), str(stored["cluster"]),
                                    str(stored["signed_sha256"]),
                                    tuple(str(d) for d in stored["schedules"]),
                                    tuple(str(t) for t in stored["targets"]))
            mac = str(stored["seal"])
        except (ValueError, KeyError, TypeError) as error:
            raise SealBroken(f"the sealed acceptance is unreadable ({type(error).__name__})") from None
        if not hmac.compare_digest(mac, self._mac(acceptance.body())):
            raise SealBroken("the acceptance's seal does not verify with this controller's key "
                             "(forged, or sealed under another message key)")
        if acceptance.campaign_id != campaign_id:
            raise SealBroken(f"the sealed acceptance is campaign {acceptance.campaign_id}'s, "
                             "copied here")
        return acceptance


HopFact = Literal["resolved", "verified"]
# fact -> (what it is called, why a hop that lacks its seal lacks it)
_HOP_FACTS: dict[str, tuple[str, str]] = {
    "resolved": ("version", "this controller never resolved one for it"),
    "verified": ("verification", "the controller's verify phase never passed for it"),
}


def _hop_body(fact: HopFact, campaign_id: str, hop: int, version: str) -> dict[str, Any]:
    # Its own "fact" key: no acceptance's body can be read as one, nor one fact as another.
    return {"fact": fact, "campaign": campaign_id, "hop": hop, "version": version}


_current: RecordSeal | None = None


def use(seal: RecordSeal | None) -> None:
    """This process seals and checks with `seal` (the controller, before its pool forks)."""
    global _current
    _current = seal


def current() -> RecordSeal | None:
    return _current
