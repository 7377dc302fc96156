"""The durable campaign record in Redis: the source of truth for what ran, what failed and what
runs next. Celery results are not relied on for progress.

Keys (JSON values):
  ku:campaigns                 sorted set of campaign ids by creation time
  ku:active                    set of the campaign ids the dispatcher looks at (pending, running)
  ku:cluster:<name>            the id of the cluster's active campaign (one at a time; changed
                               only by compare-and-set, see locks.py)
  ku:identity:<name>           the kube-system UID first seen under cluster name <name>, and by
                               which campaign: a different cluster answering to the same name
                               is refused (set once, SET NX; `forget-cluster` clears it)
  ku:c:<id>                    the campaign document: state, campaign, hops, error (written
                               before its cluster lock is taken, with an expiry removed once
                               the lock is its own)
  ku:c:<id>:plan               the planner's view, as accepted (for people and the archive: the
                               document is read by every task, and the plan was two thirds of it)
  ku:c:<id>:accepted           the controller's seal on the document and schedules it accepted
                               (seal.py): what its own phases and the dispatcher check
  ku:c:<id>:resolved:<n>       the controller's seal on the version it resolved for hop n
                               (seal.py): what its phases and checks of the cluster use
  ku:c:<id>:verified:<n>       the controller's seal on hop n's passed verification (seal.py):
                               the dispatcher moves past a hop, or ends a campaign as
                               succeeded, only on it
  ku:c:<id>:hop:<n>            hash: node (or @cluster) -> entry with per-phase state
  ku:c:<id>:hop:<n>:changed    set of the nodes whose entry was written since the dispatcher
                               last read them (written in the same transaction as the entry)
  ku:c:<id>:tails:<n>          hash: "<node>/<phase>" -> the last lines of that phase's output
                               (apart from the entries: they are for people, and the entries
                               are what every task and the dispatcher read and rewrite)
  ku:c:<id>:waits:<n>          hash: "<node>/<phase>" -> a waiting cluster phase's state between
                               two looks (waiting.py; removed when the phase ends)
  ku:c:<id>:events             the campaign's event log (newest first, capped)
  ku:c:<id>:decided            a list pushed once the campaign leaves pending (accepted or
                               refused), which the submitter blocks on; expires after a minute
  ku:c:<id>:out:<n>:<node>:<phase>   full output of a phase worth keeping (kubeadm upgrade plan)
  (an ended campaign's keys are archived and deleted after the retention period: retention.py)
  ku:notify, ku:notify:sending notifications to POST (policies.notify), and the one being sent

Writers: the CLI (create, retry, abort), the dispatcher (dispatch, stage changes) and the phase
tasks (begin/finish/fail). Every read-modify-write is an optimistic compare-and-set (cas.py).
A task's write is fenced: it applies only while the phase is running under that task's id and
attempt, so a late result of an old attempt (a frozen agent resumed, a redelivery) is dropped
as stale.

A value that does not decode, or lacks the fields every reader relies on, raises DamagedRecord
naming its key: the caller skips that campaign (and names it), the others go on.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import redis

from kubeupgrade.errors import PolicyRefused, RuntimeFailure, TemporaryError
from kubeupgrade.planning.windows import is_open, windows_of
from kubeupgrade.workflow import locks, seal
from kubeupgrade.workflow.audit import outage_begun, outage_start
from kubeupgrade.workflow.cas import CompareAndSet, text_sha1
from kubeupgrade.workflow.decide import beyond_budget, first_open_phase
from kubeupgrade.workflow.liveness import BEAT_TTL, beat_key, queue_wake, wake
from kubeupgrade.workflow.names import CLUSTER_ENTRY
from kubeupgrade.workflow.schedule import HopSchedule, schedule_of
from kubeupgrade.workflow.schema import (
    SCHEMA_VERSION,
    CampaignRecord,
    HopRecord,
    NodeEntry,
    PhaseRecord,
)
from kubeupgrade.workflow.states import (
    CampaignState,
    RunState,
    check_campaign,
    check_entry,
)
from kubeupgrade.workflow.waiting import WaitState

log = logging.getLogger("kubeupgrade.record")
Sealed = TypeVar("Sealed")

TERMINAL = tuple(s.value for s in (CampaignState.SUCCEEDED, CampaignState.ABORTED, CampaignState.REFUSED))
TAIL = 4000
_DOC_STATES = frozenset(s.value for s in CampaignState)
_ENTRY_STATES = frozenset(s.value for s in RunState)
LEADER_KEY = "ku:dispatcher:leader"
UNCLAIMED_RECORD_SECONDS = 300  # a new record not yet named by its cluster's lock expires
DECIDED_KEPT_SECONDS = 60  # a submitter still waiting reads the record by then anyway
# (campaign id, hop) -> (the sealed digest, the schedule that matched it), in this process: a
# cluster phase checks its node is scheduled, and a 5,000-node schedule is ~100 KB to decode.
_sealed_schedules: dict[tuple[str, int], tuple[str, HopSchedule]] = {}
_SEALED_SCHEDULES_KEPT = 8
NOTIFY_QUEUE = "ku:notify"  # JSON notifications waiting for the controller's notifier
# KEYS[1] a hop's hash. Takes the set of its changed fields and answers each with its text
# (false once gone), as one flat list: field, text, field, text...
_TAKE_CHANGED = """
local changed = KEYS[1] .. ':changed'
local names = redis.call('SMEMBERS', changed)
if #names == 0 then return {} end
redis.call('DEL', changed)
local taken = {}
for i, name in ipairs(names) do
  taken[2 * i - 1] = name
  taken[2 * i] = redis.call('HGET', KEYS[1], name)
end
return taken
"""

# KEYS[1] a campaign's record, KEYS[2] its event log; ARGV[1] the event, ARGV[2] the cap.
# An event is written only beside a record: a phase still running for a campaign the broker
# lost (or retention deleted) would otherwise leave an event log that no record names, which
# nothing ever expires. Answers 1 if written.
_ADD_EVENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return 1
"""
EVENTS_KEPT = 500  # newest events per campaign

_DOC_FIELDS = {"id": str, "cluster": str, "state": str, "hops": list, "current_hop": int,
               "campaign": dict}
_ENTRY_FIELDS = {"node": str, "state": str, "attempt": int, "phases": list}


class DamagedRecord(RuntimeFailure):
    """A stored value that cannot be read; names the key so an operator can look at it."""

    def __init__(self, key: str, why: str, field: str | None = None) -> None:
        where = f"{key} field {field}" if field else key
        super().__init__(f"damaged record {where}: {why}; other campaigns are not affected "
                         "(`kubeupgrade abort` releases its cluster)")
        self.key = key
        self.summary = f"{where}: {why}"  # what and why, for a list of damaged parts


def _hop_of(doc: Mapping[str, Any], hop: int) -> Mapping[str, Any]:
    hops = doc.get("hops") or []
    return hops[hop] if 0 <= hop < len(hops) else {}


def _decode_detail(raw: str, key: str, field: str | None, kind: type) -> Any:
    """A stored JSON value that must be a `kind` (dict: an object, list: an array); anything
    else is a damaged record, named with its key."""
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise DamagedRecord(key, f"not JSON ({error.msg} at char {error.pos})", field) from None
    if not isinstance(value, kind):
        wanted = "an object" if kind is dict else f"a {kind.__name__}"
        raise DamagedRecord(key, f"a JSON {type(value).__name__}, not {wanted}", field)
    return value


def _decode_event(raw: str, key: str, index: int) -> dict[str, Any]:
    """One event as written by CampaignStore.event: {"t": seconds, "message": text}. Anything else
    (damaged, or written by someone else) is shown as what it is, in its place, so the events
    around it and the status they belong to still read."""
    try:
        value = json.loads(raw)
    except ValueError as error:
        why = f"not JSON ({error.msg} at char {error.pos})"
    else:
        if (isinstance(value, dict) and isinstance(value.get("message"), str)
                and isinstance(value.get("t"), (int, float)) and not isinstance(value.get("t"), bool)
                and math.isfinite(value["t"])):
            return value
        why = "not an event (a time and a message)"
    return {"t": None, "message": f"damaged event {key}[{index}]: {why}; left as it is"}


class CampaignConflict(PolicyRefused):
    def __init__(self, cluster: str, existing: str, state: str) -> None:
        super().__init__(f"cluster {cluster} already has campaign {existing} ({state}); wait for it, "
                         f"`kubeupgrade retry {existing}` or `kubeupgrade abort {existing}` first")
        self.existing = existing


def _decode(raw: str, key: str, required: dict[str, type], field: str | None = None) -> dict[str, Any]:
    states = _ENTRY_STATES if field is not None else _DOC_STATES
    value = _decode_detail(raw, key, field, dict)
    for name, kind in required.items():
        if not isinstance(value.get(name), kind) or isinstance(value.get(name), bool):
            raise DamagedRecord(key, f"{name!r} missing or not a {kind.__name__}", field)
    if value["state"] not in states:
        raise DamagedRecord(key, f"unknown state {value['state']!r}", field)
    schema = value.get("schema", 1)
    if field is None and (not isinstance(schema, int) or schema > SCHEMA_VERSION):
        raise DamagedRecord(key, f"schema {schema!r}: written by a newer kubeupgrade (this one "
                            f"reads up to {SCHEMA_VERSION})", field)
    return value


def new_phase(phase: str) -> PhaseRecord:
    return {"phase": phase, "state": "pending", "attempts": 0, "started": None, "ended": None,
            "detail": "", "error": "", "tail": "", "task_id": None}


def hop_facts(hop: HopRecord, entries: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Node -> what its prepare-host found. Each node's facts live in its own entry, written
    by its own task; records written before that kept them all in the campaign document, which
    every prepare-host then rewrote whole (a megabyte at 1,000 nodes, in contended
    transactions), so those are read too."""
    facts = dict(hop.get("facts") or {})
    facts.update({name: entry["facts"] for name, entry in entries.items() if entry.get("facts")})
    return facts


def _entry_change(where: str, change: Callable[[NodeEntry], Any]) -> Callable[[NodeEntry | None], NodeEntry | None]:
    """`change` (False: write nothing) as a compare-and-set change of one entry: nothing for an
    entry that is gone, and a change the entry's rules forbid raises (check_entry)."""

    def apply(entry: NodeEntry | None) -> NodeEntry | None:
        if entry is None:
            return None
        before = {"state": entry["state"],
                  "phases": [{"phase": p["phase"], "state": p["state"]} for p in entry["phases"]]}
        if change(entry) is False:
            return None
        check_entry(where, before, entry)
        return entry

    return apply


def _taken_texts(taken: list[str]) -> dict[str, str | None]:
    """The changed-entries script's answer (node, text, node, text, ...) as node -> text."""
    return dict(sorted(zip(taken[::2], taken[1::2])))  # noqa: B905 - agents run 3.9


# Entries per HSCAN step of CampaignStore.each_entry (Redis takes it as a hint; a small hash,
# kept as a listpack, comes whole in one step).
ENTRY_SCAN_COUNT = 200


class CampaignStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._cas = CompareAndSet(client)
        self._take_changed = client.register_script(_TAKE_CHANGED)
        self._add_event = client.register_script(_ADD_EVENT)

    @classmethod
    def from_url(cls, url: str) -> CampaignStore:
        return cls(redis.Redis.from_url(url, decode_responses=True, socket_timeout=10,
                                        socket_connect_timeout=5, health_check_interval=25))

    # -- helpers -----------------------------------------------------------------------------
    def _transact(self, key: str, field: str | None, change: Callable[[Any], Any],
                  also: Callable[[Any], Any] | None = None, as_read: tuple[str, Any] | None = None) -> Any:
        """Optimistic read-modify-write of `key` (or its hash field, which also lands in
        `key:changed`) by compare-and-set (cas.py); `also` adds writes of other keys, made only
        with the change; `as_read` is the caller's read of the value (CompareAndSet.update). The
        new value, or the current one when `change` wrote nothing."""
        required = _ENTRY_FIELDS if field is not None else _DOC_FIELDS
        _, value = self._cas.update(key, field or "", lambda raw: _decode(raw, key, required, field),
                                    change, also, track_changed=field is not None, as_read=as_read)
        return value

    # -- campaigns ---------------------------------------------------------------------------
    def create(self, cluster: str, campaign: dict[str, Any], source: str,
               signer: Callable[[str], dict[str, str]] | None = None) -> str:
        """A new pending campaign; `signer` (campaign id -> signature) is the operator's key."""
        # The time in UTC, as status and list print theirs: submitters in different time zones
        # would otherwise name campaigns of one cluster out of order.
        campaign_id = f"{cluster}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        signature = signer(campaign_id) if signer else None
        now = time.time()
        doc = {"schema": SCHEMA_VERSION, "id": campaign_id, "cluster": cluster, "state": "pending",
               "created": now, "updated": now, "source": source, "campaign": campaign,
               "signature": signature, "plan": None, "hops": [], "current_hop": 0, "error": None,
               "notes": []}
        # The record exists before the lock names it: a holder without a record counts as gone,
        # so a lock taken first could be taken again by a second submitter before the record
        # was written. Until the lock is ours the record expires by itself (a crash leaves
        # nothing behind); a record that expired while we were stopped means we lost the lock.
        key = f"ku:c:{campaign_id}"
        self.redis.set(key, json.dumps(doc), ex=UNCLAIMED_RECORD_SECONDS)
        try:
            self.take_cluster(cluster, campaign_id)
        except CampaignConflict:
            self.redis.delete(key)
            raise
        if not self.redis.persist(key):
            self.release_cluster(cluster, campaign_id)
            raise TemporaryError(f"campaign {campaign_id} was stopped for over "
                                 f"{UNCLAIMED_RECORD_SECONDS} s while taking cluster {cluster}; "
                                 "nothing was submitted: submit it again")
        self.redis.zadd("ku:campaigns", {campaign_id: now})
        self.redis.sadd("ku:active", campaign_id)
        self.event(campaign_id, f"campaign submitted from {source}")
        wake(self.redis)
        return campaign_id

    def take_cluster(self, cluster: str, campaign_id: str) -> None:
        """Make `campaign_id` the one campaign acting on `cluster`, or raise CampaignConflict
        naming the holder. A holder that ended (or whose record is gone) is replaced, by
        compare-and-set, so two takers never both win; a damaged holder keeps the cluster
        until it is aborted (its tasks may still be running)."""
        key = f"ku:cluster:{cluster}"
        while True:
            holder = self.redis.get(key)
            if holder == campaign_id:
                return
            if holder is not None:
                try:
                    doc = self.get(holder)
                except DamagedRecord:
                    raise CampaignConflict(cluster, holder, "damaged record") from None
                if doc is not None and doc["state"] not in TERMINAL:
                    raise CampaignConflict(cluster, holder, doc["state"])
            if locks.swap(self.redis, key, holder, campaign_id):
                return

    def cluster_holder(self, cluster: str) -> str | None:
        return self.redis.get(f"ku:cluster:{cluster}")

    def clusters_held_by(self, campaign_id: str) -> list[str]:
        """The clusters whose lock `campaign_id` holds (a scan: for damaged records only)."""
        return [key.split(":", 2)[2] for key in self.redis.scan_iter("ku:cluster:*", count=500)
                if self.redis.get(key) == campaign_id]

    def bind_identity(self, name: str, uid: str, campaign_id: str) -> str | None:
        """Bind cluster `name` to the kube-system UID `uid` on first use. None if `name` is
        (now) bound to `uid`; otherwise why this is another cluster under the same name."""
        key = f"ku:identity:{name}"
        claim = json.dumps({"uid": uid, "campaign": campaign_id, "since": time.time()})
        if self.redis.set(key, claim, nx=True):
            return None
        raw = self.redis.get(key) or "{}"
        try:
            bound = json.loads(raw)
            bound_uid, first = str(bound["uid"]), str(bound.get("campaign", "?"))
        except (ValueError, KeyError, TypeError):
            return (f"damaged record {key}: not the cluster binding it should be; inspect it, "
                    f"then `kubeupgrade forget-cluster {name}`")
        if bound_uid == uid:
            return None
        return (f"cluster name {name!r} belongs on this broker to the cluster with kube-system uid "
                f"{bound_uid} (since campaign {first}), but the controller reaches kube-system uid "
                f"{uid}: another cluster under the same name. Name this one (kubectl annotate "
                f"namespace kube-system kubeupgrade.io/cluster-name=NAME), or, if {name} was "
                f"rebuilt, `kubeupgrade forget-cluster {name}`")

    def forget_identity(self, name: str) -> bool:
        return bool(self.redis.delete(f"ku:identity:{name}"))

    def broker_now(self) -> datetime:
        """The broker's clock: the one every process judges maintenance windows by. The
        dispatcher sends by it and each agent checks by it before starting an outage, so a host
        whose clock is off by an hour neither holds what the dispatcher sent in an open window
        (which it would send again at once, tick after tick) nor starts what arrives after one
        closed."""
        seconds, micros = self.redis.time()
        return datetime.fromtimestamp(seconds + micros / 1e6, timezone.utc)

    def get(self, campaign_id: str) -> CampaignRecord | None:
        read = self.get_if_changed(campaign_id, None)
        return read[1] if read is not None else None

    def get_if_changed(self, campaign_id: str,
                       known: tuple[str, CampaignRecord] | None) -> tuple[str, CampaignRecord] | None:
        """The record with its raw text, parsed only if the text differs from `known`'s (then
        `known` itself is returned): at thousands of nodes the plan is megabytes of JSON, and
        parsing it was most of a dispatcher tick. None if there is no record."""
        key = f"ku:c:{campaign_id}"
        raw = self.redis.get(key)
        if not raw:
            return None
        if known is not None and known[0] == raw:
            return known
        return raw, _decode(raw, key, _DOC_FIELDS)

    def update(self, campaign_id: str, change: Callable[[CampaignRecord], Any], *,
               forged_state: bool = False) -> CampaignRecord:
        """`forged_state`: the state it holds is proven not the engine's (the dispatcher found
        no seal for it), so no transition rule binds what it becomes."""
        key = f"ku:c:{campaign_id}"

        seen: dict[str, Any] = {}

        def apply(doc: CampaignRecord | None) -> CampaignRecord | None:
            if doc is None:
                return None
            before = doc["state"]
            was_paused = doc.get("paused")
            change(doc)
            if not forged_state:
                check_campaign(key, before, doc["state"])
            doc["updated"] = time.time()
            seen.update(before=before, was_paused=was_paused)  # of the attempt that was written
            return doc

        updated: CampaignRecord = self._transact(key, None, apply)
        if updated is not None and seen:
            self._notify_change(updated, seen["before"], seen["was_paused"])
            wake(self.redis)  # a command (pause, resume, retry, abort) or a stage moved on
            if seen["before"] == "pending" and updated["state"] != "pending":
                self._tell_decided(campaign_id)
        return updated

    def _tell_decided(self, campaign_id: str) -> None:
        """Wake a submitter waiting for the campaign to leave pending (wait_decided)."""
        key = f"ku:c:{campaign_id}:decided"
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, 1)
            pipe.expire(key, DECIDED_KEPT_SECONDS)
            pipe.execute()

    def wait_decided(self, campaign_id: str, seconds: float) -> None:
        """Block up to `seconds`, less if the campaign leaves pending meanwhile: the submitter
        then reads it at once instead of at its next look (0.2 s apart)."""
        self.redis.blpop([f"ku:c:{campaign_id}:decided"], timeout=max(seconds, 0.01))

    # -- notifications (sent by kubeupgrade.workflow.notify, never by the writer) ----------------
    def notify(self, doc: CampaignRecord, kind: str, message: str, **fields: Any) -> None:
        """Queue a notification for the campaign's policies.notify targets that want `kind`.
        Never in the way of the write that caused it: unreadable targets are logged, not raised."""
        try:
            targets = [str(t["url"]) for t in doc["campaign"].get("policies", {}).get("notify", [])
                       if kind in t.get("events", ())]
        except (AttributeError, KeyError, TypeError) as error:
            log.error("campaign %s: policies.notify unreadable (%r); no notification", doc.get("id"), error)
            return
        if not targets:
            return
        item = {"campaign": doc["id"], "cluster": doc["cluster"], "kind": kind, "state": doc["state"],
                "message": message, "time": time.time(), "targets": targets, **fields}
        self.redis.lpush(NOTIFY_QUEUE, json.dumps(item))

    def _notify_change(self, doc: CampaignRecord, before: str, was_paused: Any) -> None:
        paused = doc.get("paused")
        if doc["state"] != before:
            message = f"campaign {doc['id']} {before} -> {doc['state']}"
            if doc["state"] in ("failed", "refused") and doc.get("error"):
                message += f": {doc['error'].get('message', '')}"
            self.notify(doc, "campaign", message)
        elif bool(paused) != bool(was_paused):
            reason = paused["reason"] if paused else ""
            self.notify(doc, "campaign", f"campaign {doc['id']} " + (f"paused {reason}" if paused else "resumed"),
                        paused=bool(paused))
            if paused and reason.startswith("health gate"):
                self.notify(doc, "gate", reason)

    def ids(self) -> list[str]:
        return list(self.redis.zrange("ku:campaigns", 0, -1))

    def active_ids(self) -> list[str]:
        """The campaigns the dispatcher should look at, oldest first."""
        active = self.redis.smembers("ku:active")
        return sorted(active, key=lambda i: i.split("-")[-3:])

    def is_active(self, campaign_id: str) -> bool:
        """Whether the dispatcher still acts on it (not ended: aborted, succeeded, refused)."""
        return bool(self.redis.sismember("ku:active", campaign_id))

    def deactivate(self, campaign_id: str) -> None:
        self.redis.srem("ku:active", campaign_id)

    def activate(self, campaign_id: str) -> None:
        self.redis.sadd("ku:active", campaign_id)
        wake(self.redis)

    def release_cluster(self, cluster: str, campaign_id: str) -> None:
        locks.release(self.redis, f"ku:cluster:{cluster}", campaign_id)

    def end(self, campaign_id: str, cluster: str) -> None:
        """A campaign in a state that lets go of its cluster (succeeded, refused, aborted): the
        dispatcher stops looking at it and the cluster is free for the next one. Its hops'
        change sets are only for the dispatcher: they go too."""
        self.deactivate(campaign_id)
        self.release_cluster(cluster, campaign_id)
        try:
            listed = (self.get(campaign_id) or {}).get("hops")
        except DamagedRecord:
            return
        hops = len(listed) if isinstance(listed, list) else 0
        if hops:
            self.redis.delete(*(f"ku:c:{campaign_id}:hop:{n}:changed" for n in range(hops)))

    def _keys(self, campaign_id: str) -> list[str]:
        """Every key of one campaign (a scan: for retention, not for the loop)."""
        prefix = f"ku:c:{campaign_id}"
        return [prefix, *(k for k in self.redis.scan_iter(f"{prefix}:*", count=1000)
                          if k.split(":")[2] == campaign_id)]

    def dump(self, campaign_id: str) -> dict[str, Any]:
        """The campaign whole, as stored: record, plan, node entries and output tails per hop,
        events, kept outputs, and the per-node details kept apart (the live versions; each hop's
        schedule, packages and verification rows)."""
        dump: dict[str, Any] = {"id": campaign_id, "record": None, "plan": None, "hops": {}, "tails": {},
                                "events": [], "outputs": {}, "live_versions": {}, "packages": {},
                                "schedules": {}, "verification": {}, "resolved": {}, "verified": {}, "accepted": None}
        for key in self._keys(campaign_id):
            kind = self.redis.type(key)
            rest = key[len(f"ku:c:{campaign_id}"):]
            if rest == "":
                dump["record"] = json.loads(self.redis.get(key) or "null")
            elif rest == ":plan":
                dump["plan"] = json.loads(self.redis.get(key) or "null")
            elif rest == ":accepted" and kind == "string":
                dump["accepted"] = json.loads(self.redis.get(key) or "null")
            elif rest == ":live":
                dump["live_versions"] = {n: json.loads(v) for n, v in self.redis.hgetall(key).items()}
            elif rest.startswith(":packages:") and kind == "hash":
                dump["packages"][rest[len(":packages:"):]] = self.redis.hgetall(key)
            elif rest.startswith(":schedule:") and kind == "string":
                dump["schedules"][rest[len(":schedule:"):]] = json.loads(self.redis.get(key) or "null")
            elif rest.startswith((":verified:", ":resolved:")) and kind == "string":
                fact, hop_text = rest[1:].split(":", 1)
                dump[fact][hop_text] = json.loads(self.redis.get(key) or "null")
            elif rest.startswith(":verification:") and kind == "string":
                dump["verification"][rest[len(":verification:"):]] = json.loads(self.redis.get(key) or "null")
            elif rest == ":events":
                dump["events"] = [_decode_event(e, key, i) for i, e in enumerate(self.redis.lrange(key, 0, -1))]
            elif rest.startswith(":hop:") and kind == "hash":
                dump["hops"][rest[len(":hop:"):]] = {n: json.loads(v) for n, v in self.redis.hgetall(key).items()}
            elif rest.startswith(":tails:") and kind == "hash":
                dump["tails"][rest[len(":tails:"):]] = self.redis.hgetall(key)
            elif rest.startswith(":out:") and kind == "string":
                dump["outputs"][rest[len(":out:"):]] = self.redis.get(key)
        return dump

    def delete_campaign(self, campaign_id: str) -> None:
        keys = self._keys(campaign_id)
        pipe = self.redis.pipeline()
        pipe.delete(*keys)
        pipe.zrem("ku:campaigns", campaign_id)
        pipe.srem("ku:active", campaign_id)
        pipe.execute()

    def put_plan(self, campaign_id: str, plan: dict[str, Any]) -> None:
        self.redis.set(f"ku:c:{campaign_id}:plan", json.dumps(plan))

    def plan(self, campaign_id: str, doc: CampaignRecord | None = None) -> dict[str, Any] | None:
        """The plan as accepted (records accepted before it had its own key keep it inside;
        `doc`: the record, if the caller has just read it)."""
        key = f"ku:c:{campaign_id}:plan"
        raw = self.redis.get(key)
        if raw:
            return dict(_decode_detail(raw, key, None, dict))
        doc = doc if doc is not None else self.get(campaign_id)
        return doc.get("plan") if doc else None

    def event(self, campaign_id: str, message: str) -> bool:
        """Add to the campaign's event log; False (nothing written) once its record is gone."""
        written = self._add_event(keys=[f"ku:c:{campaign_id}", f"ku:c:{campaign_id}:events"],
                                  args=[json.dumps({"t": time.time(), "message": message}), EVENTS_KEPT])
        return bool(written)

    def events(self, campaign_id: str, limit: int = 50) -> list[dict[str, Any]]:
        key = f"ku:c:{campaign_id}:events"
        return [_decode_event(raw, key, index) for index, raw in enumerate(self.redis.lrange(key, 0, limit - 1))]

    # -- per-node details, kept apart from the record ----------------------------------------
    # Every phase task reads the record, so it must not grow with the cluster: at 5,000 nodes
    # the live versions, schedule (the worker order), resolved packages and verification rows
    # were most of half a megabyte sent to every agent for every phase. Each lives in its own
    # key, read by the node it concerns (one field), by the dispatcher (a schedule, once) or by
    # people (status). Records written before keep them inside: every reader falls back to the
    # record's copy.
    def put_live_versions(self, campaign_id: str, live: dict[str, dict[str, str | None]]) -> None:
        if live:
            self.redis.hset(f"ku:c:{campaign_id}:live", mapping={n: json.dumps(v) for n, v in live.items()})

    def live_versions(self, campaign_id: str, doc: Mapping[str, Any]) -> dict[str, dict[str, str | None]]:
        """Node -> {kubelet, control_plane} as found when the campaign was accepted."""
        key = f"ku:c:{campaign_id}:live"
        stored = self.redis.hgetall(key)
        if not stored:
            return dict(doc.get("live_versions") or {})
        return {node: _decode_detail(raw, key, node, dict) for node, raw in stored.items()}

    def live_version(self, campaign_id: str, node: str, doc: Mapping[str, Any]) -> dict[str, str | None]:
        key = f"ku:c:{campaign_id}:live"
        raw = self.redis.hget(key, node)
        if raw is None:
            return dict((doc.get("live_versions") or {}).get(node) or {})
        return _decode_detail(raw, key, node, dict)

    def put_packages(self, campaign_id: str, hop: int, packages: dict[str, str]) -> None:
        if packages:
            self.redis.hset(f"ku:c:{campaign_id}:packages:{hop}", mapping=packages)

    def packages(self, campaign_id: str, hop: int, doc: Mapping[str, Any]) -> dict[str, str]:
        """Node -> the exact package version resolved for the hop."""
        stored = self.redis.hgetall(f"ku:c:{campaign_id}:packages:{hop}")
        return stored or dict(_hop_of(doc, hop).get("packages") or {})

    def package(self, campaign_id: str, hop: int, node: str, doc: Mapping[str, Any]) -> str | None:
        stored = self.redis.hget(f"ku:c:{campaign_id}:packages:{hop}", node)
        return stored if stored is not None else (_hop_of(doc, hop).get("packages") or {}).get(node)

    def put_verification(self, campaign_id: str, hop: int, rows: list[dict[str, Any]], pipe: Any = None) -> None:
        """`pipe`: a pipeline to queue the write on (note_finding's `also`) instead of writing now."""
        (pipe if pipe is not None else self.redis).set(f"ku:c:{campaign_id}:verification:{hop}", json.dumps(rows))

    def put_verified(self, campaign_id: str, hop: int, version: str, pipe: Any = None) -> None:
        """The controller's seal on a hop whose verification passed at `version` (seal.py);
        nothing without a seal key. `pipe`: as for put_verification."""
        self._put_hop_seal("verified", campaign_id, hop, version, pipe)

    def put_resolved(self, campaign_id: str, hop: int, version: str) -> None:
        """The controller's seal on the version it resolved for the hop (seal.py)."""
        self._put_hop_seal("resolved", campaign_id, hop, version, None)

    def _put_hop_seal(self, fact: seal.HopFact, campaign_id: str, hop: int, version: str,
                      pipe: Any) -> None:
        sealing = seal.current()
        if sealing is not None:
            (pipe if pipe is not None else self.redis).set(
                f"ku:c:{campaign_id}:{fact}:{hop}", sealing.seal_hop(fact, campaign_id, hop, version))

    def unverified(self, campaign_id: str, hops: range) -> str | None:
        """Why one of `hops` cannot be taken as verified by this controller (the first such
        hop's reason), or None: each has its seal, or this process holds no seal key (it
        checks nothing)."""
        sealing = seal.current()
        if sealing is None or not hops:
            return None
        texts = self.redis.mget([f"ku:c:{campaign_id}:verified:{hop}" for hop in hops])
        for hop, text in zip(hops, texts):
            try:
                sealing.check_hop("verified", campaign_id, hop, text)
            except seal.SealBroken as error:
                return str(error)
        return None

    def sealed_version(self, campaign_id: str, hop: int) -> str | None:
        """The version this controller resolved and sealed for the hop; None in a process that
        holds no seal key (it checks nothing); DamagedRecord if it is missing or not genuine."""
        return self._opened(f"ku:c:{campaign_id}:resolved:{hop}",
                            lambda sealing, text: sealing.check_hop("resolved", campaign_id, hop, text))

    def verification(self, campaign_id: str, hop: int, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        key = f"ku:c:{campaign_id}:verification:{hop}"
        raw = self.redis.get(key)
        if raw is None:
            return list(_hop_of(doc, hop).get("verification") or [])
        return _decode_detail(raw, key, None, list)

    def put_schedules(self, campaign_id: str, schedules: list[HopSchedule]) -> None:
        """Each hop's schedule (its worker order names every worker): written once, at accept."""
        if schedules:
            self.redis.mset({f"ku:c:{campaign_id}:schedule:{index}": json.dumps(schedule.to_dict())
                             for index, schedule in enumerate(schedules)})

    def put_acceptance(self, campaign_id: str, cluster: str, signed_text: bytes,
                       schedules: list[HopSchedule], targets: list[str]) -> None:
        """The controller's seal on what it accepted (seal.py); nothing without a seal key."""
        sealing = seal.current()
        if sealing is not None:
            digests = tuple(seal.schedule_digest(s.to_dict()) for s in schedules)
            self.redis.set(f"ku:c:{campaign_id}:accepted", sealing.seal(
                seal.Acceptance(campaign_id, cluster, seal.digest(signed_text), digests, tuple(targets))))

    def acceptance(self, campaign_id: str) -> seal.Acceptance | None:
        """What this controller sealed when it accepted the campaign; None in a process that
        holds no seal key (it checks nothing); DamagedRecord if it is missing or not genuine."""
        return self._opened(f"ku:c:{campaign_id}:accepted",
                            lambda sealing, text: sealing.open(campaign_id, text))

    def _opened(self, key: str, open_: Callable[[seal.RecordSeal, str | None], Sealed]) -> Sealed | None:
        """What `open_` reads from `key` with this controller's seal; None in a process that
        holds no seal key (it checks nothing); DamagedRecord naming the key if it is missing or
        not genuine."""
        sealing = seal.current()
        if sealing is None:
            return None
        try:
            return open_(sealing, self.redis.get(key))
        except seal.SealBroken as error:
            raise DamagedRecord(key, str(error)) from None

    def schedule(self, campaign_id: str, hop: int, doc: Mapping[str, Any],
                 acceptance: seal.Acceptance | None = None) -> HopSchedule:
        """The hop's schedule; in the controller, only the one it sealed at acceptance (a
        schedule decides how many workers are out of service at once, and agents can write
        the record). `acceptance`: the campaign's, if the caller has just opened it."""
        key = f"ku:c:{campaign_id}:schedule:{hop}"
        if acceptance is None:
            acceptance = self.acceptance(campaign_id)
        if acceptance is not None and 0 <= hop < len(acceptance.schedules):
            known = _sealed_schedules.get((campaign_id, hop))
            if known is not None and known[0] == acceptance.schedules[hop]:
                return known[1]
        raw = self.redis.get(key)
        if raw is None:
            if acceptance is not None:
                raise DamagedRecord(key, "missing: the controller sealed a schedule for this hop")
            return schedule_of(doc, hop)
        stored = _decode_detail(raw, key, None, dict)
        if acceptance is not None:
            try:
                acceptance.check_schedule(hop, stored)
            except seal.SealBroken as error:
                raise DamagedRecord(key, str(error)) from None
        try:
            schedule = HopSchedule.from_dict(stored)
        except (KeyError, TypeError, ValueError) as error:
            raise DamagedRecord(key, f"not a schedule ({type(error).__name__}: {error})") from None
        if acceptance is not None:
            _sealed_schedules[(campaign_id, hop)] = (acceptance.schedules[hop], schedule)
            while len(_sealed_schedules) > _SEALED_SCHEDULES_KEPT:
                _sealed_schedules.pop(next(iter(_sealed_schedules)))
        return schedule

    def with_details(self, campaign_id: str, doc: CampaignRecord,
                     damaged: list[str] | None = None) -> CampaignRecord:
        """`doc` with the details kept apart filled in where the record used to hold them
        (status, export): the plan, live_versions, and each hop's schedule, packages and
        verification. With `damaged` (status: a view, which must still show the rest), a damaged
        detail is named there and left out instead of raised."""
        def read(detail: Callable[..., Any], empty: Any, *args: Any) -> Any:
            try:
                return detail(campaign_id, *args)
            except DamagedRecord as error:
                if damaged is None:
                    raise
                damaged.append(error.summary)
                return empty

        doc["plan"] = read(self.plan, None, doc)
        doc["live_versions"] = read(self.live_versions, {}, doc)
        for index, hop in enumerate(doc["hops"]):
            hop["schedule"] = read(self._schedule_dict, None, index, doc)
            hop["packages"] = read(self.packages, {}, index, doc)
            hop["verification"] = read(self.verification, [], index, doc)  # type: ignore[typeddict-item]
        return doc

    def _schedule_dict(self, campaign_id: str, hop: int, doc: CampaignRecord) -> dict[str, Any]:
        return self.schedule(campaign_id, hop, doc).to_dict()

    # -- node entries -----------------------------------------------------------------------
    def put_entry(self, campaign_id: str, hop: int, node: str, entry: NodeEntry) -> None:
        self.put_entries(campaign_id, hop, {node: entry})

    def put_entries(self, campaign_id: str, hop: int, entries: dict[str, NodeEntry]) -> None:
        """Write whole entries (a hop's, when a campaign is accepted), in one transaction: one
        round trip for the hop, not one per node."""
        if not entries:
            return
        key = f"ku:c:{campaign_id}:hop:{hop}"
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={node: json.dumps(entry) for node, entry in entries.items()})
        pipe.sadd(f"{key}:changed", *entries)
        pipe.execute()

    def entry(self, campaign_id: str, hop: int, node: str) -> NodeEntry | None:
        key = f"ku:c:{campaign_id}:hop:{hop}"
        raw = self.redis.hget(key, node)
        return _decode(raw, key, _ENTRY_FIELDS, node) if raw else None

    def entries(self, campaign_id: str, hop: int, *, since_now: bool = False,
                damaged: list[str] | None = None) -> dict[str, NodeEntry]:
        """Every entry of the hop; with `since_now`, also start tracking changes from here for
        changed_entry_texts() (the changed set is emptied first, so nothing written after is missed).
        With `damaged` (status: a view), a damaged entry is named there and left out instead of raised."""
        texts = self.entry_texts(campaign_id, hop, since_now=since_now)
        if damaged is None:
            return {node: self.decode_entry(campaign_id, hop, node, text) for node, text in texts.items()}
        entries = {}
        for node, text in texts.items():
            try:
                entries[node] = self.decode_entry(campaign_id, hop, node, text)
            except DamagedRecord as error:
                damaged.append(error.summary)
        return entries

    def each_entry(self, campaign_id: str, hop: int) -> Iterator[tuple[str, NodeEntry]]:
        """Every entry of the hop once, decoded one at a time as the caller takes it, read
        ENTRY_SCAN_COUNT at a time. A pool process that needs a few fields of each keeps those,
        not the whole hop decoded (~60 MiB at 5,000 nodes once they are done), nor its whole
        text (~20 MB in one HGETALL answer, which left the process that much larger for good).
        Not one snapshot: each entry is as it was when its step was read (entries() where they
        must be of one moment). An entry there throughout the read is yielded, once."""
        seen: set[str] = set()
        for node, text in self.redis.hscan_iter(f"ku:c:{campaign_id}:hop:{hop}", count=ENTRY_SCAN_COUNT):
            if node not in seen:  # HSCAN may return an entry twice (while Redis grows the hash)
                seen.add(node)
                yield node, self.decode_entry(campaign_id, hop, node, text)

    def entry_texts(self, campaign_id: str, hop: int, *, since_now: bool = False) -> dict[str, str]:
        """entries(), undecoded."""
        key = f"ku:c:{campaign_id}:hop:{hop}"
        if since_now:
            self.redis.delete(f"{key}:changed")
        return self.redis.hgetall(key)

    def changed_entry_texts(self, campaign_id: str, hop: int) -> dict[str, str | None]:
        """The texts of the entries written since the last call (or entries(since_now=True)),
        taken once each in one script: the dispatcher's tick costs what changed, not the size
        of the cluster. None for an entry that is gone. Writes that bypass this store (a hand
        edit of the hash) are seen by the dispatcher's sweep within SWEEP_SECONDS
        (HopEntries.refresh, which reads these with changed_and_scan)."""
        return _taken_texts(self._take_changed(keys=[f"ku:c:{campaign_id}:hop:{hop}"]))

    def changed_and_scan(self, campaign_id: str, hop: int, cursor: int,
                         count: int) -> tuple[dict[str, str | None], tuple[int, dict[str, str]], bool]:
        """changed_entry_texts() and one step of a pass over the hop's entries (HSCAN: the next
        cursor, 0 once the pass is done, and about `count` entries; a pass meets every entry
        that was there throughout it at least once), in one pipelined round trip: the changed
        entries, the scan's step, and whether the changed ones were taken first (Redis runs a
        pipeline's commands in order, so the scan's texts are then at least as new). Not when
        Redis had lost the script (restarted): it is run again after the scan, so its texts are
        the newer ones."""
        key = f"ku:c:{campaign_id}:hop:{hop}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.evalsha(self._take_changed.sha, 1, key)
        pipe.hscan(key, cursor, count=count)
        taken, scanned = pipe.execute(raise_on_error=False)
        if isinstance(scanned, Exception):
            raise scanned
        changed_first = not isinstance(taken, redis.exceptions.NoScriptError)
        if not changed_first:
            changed = self.changed_entry_texts(campaign_id, hop)  # loads the script again
        elif isinstance(taken, Exception):
            raise taken
        else:
            changed = _taken_texts(taken)
        return changed, (int(scanned[0]), scanned[1]), changed_first

    def decode_entry(self, campaign_id: str, hop: int, node: str, text: str) -> NodeEntry:
        return _decode(text, f"ku:c:{campaign_id}:hop:{hop}", _ENTRY_FIELDS, node)  # type: ignore[return-value]

    def update_entry(self, campaign_id: str, hop: int, node: str,
                     change: Callable[[NodeEntry], Any], also: Callable[[Any], Any] | None = None,
                     as_read: tuple[str, NodeEntry] | None = None) -> bool:
        """Apply `change` to the node's entry; it returns False to write nothing. True if the
        entry exists and the change was written (with `also`'s writes: see _transact)."""
        written = False
        apply = _entry_change(f"ku:c:{campaign_id}:hop:{hop} field {node}", change)

        def noting(entry: NodeEntry | None) -> NodeEntry | None:
            nonlocal written
            updated = apply(entry)
            written = updated is not None
            return updated

        self._transact(f"ku:c:{campaign_id}:hop:{hop}", node, noting, also, as_read)
        return written

    def update_entries(self, campaign_id: str, hop: int,
                       changes: dict[str, tuple[Callable[[NodeEntry], Any], tuple[str, NodeEntry] | None]]) -> set[str]:
        """update_entry() of many nodes ({node: (change, as_read)}), in one round trip when every
        `as_read` still holds (CompareAndSet.update_fields). The nodes whose change was written."""
        key = f"ku:c:{campaign_id}:hop:{hop}"
        written = self._cas.update_fields(
            key, lambda node, raw: _decode(raw, key, _ENTRY_FIELDS, node),
            {node: (_entry_change(f"{key} field {node}", change), as_read)
             for node, (change, as_read) in changes.items()},
            track_changed=True)
        return {node for node, (done, _) in written.items() if done}

    def tails(self, campaign_id: str, hop: int) -> dict[str, str]:
        """"<node>/<phase>" -> the last lines of that phase's output."""
        return self.redis.hgetall(f"ku:c:{campaign_id}:tails:{hop}")

    def tail(self, campaign_id: str, hop: int, node: str, phase: str) -> str:
        return self.redis.hget(f"ku:c:{campaign_id}:tails:{hop}", f"{node}/{phase}") or ""

    def with_tails(self, campaign_id: str, hop: int, entries: dict[str, NodeEntry]) -> dict[str, NodeEntry]:
        """`entries` with each phase's output tail filled in, for people (status, logs).
        Records written before tails were kept apart have them in the entries already."""
        tails = self.tails(campaign_id, hop)
        for name, entry in entries.items():
            for record in entry["phases"]:
                record["tail"] = tails.get(f"{name}/{record['phase']}") or record.get("tail", "")
        return entries

    def waiting(self, campaign_id: str, hop: int, node: str, phase: str) -> WaitState | None:
        """The phase's state between two looks (waiting.py), if it waits. A value that does not
        decode is named in the campaign's events and dropped: the phase starts its wait over."""
        key, field = f"ku:c:{campaign_id}:waits:{hop}", f"{node}/{phase}"
        raw = self.redis.hget(key, field)
        if raw is None:
            return None
        try:
            return WaitState.from_json(json.loads(raw))
        except ValueError as error:
            self.redis.hdel(key, field)
            self.event(campaign_id, f"{node}: {phase}: damaged wait state in {key} field {field} "
                       f"({error}) dropped; the wait starts over")
            return None

    def keep_waiting(self, campaign_id: str, hop: int, node: str, phase: str, state: WaitState) -> int:
        """Keep the phase's state until its next look; returns how many of the hop's phases wait
        now (it included: the pace of every look, waiting.paced)."""
        key = f"ku:c:{campaign_id}:waits:{hop}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(key, f"{node}/{phase}", json.dumps(state.to_json()))
        pipe.hlen(key)
        return int(pipe.execute()[1])

    def done_waiting(self, campaign_id: str, hop: int, node: str, phase: str,
                     result_key: str | bytes | None = None) -> None:
        """The phase no longer waits: its kept state goes, and with it `result_key`, the RETRY
        result its looks left (Celery stores one per retry, kept for result_expires; no one
        reads it once the phase ends, and a failure is stored after this)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hdel(f"ku:c:{campaign_id}:waits:{hop}", f"{node}/{phase}")
        if result_key:
            pipe.delete(result_key)
        pipe.execute()

    def save_output(self, campaign_id: str, hop: int, node: str, phase: str, text: str, pipe: Any = None) -> None:
        """`pipe`: as for put_verification."""
        (pipe if pipe is not None else self.redis).set(f"ku:c:{campaign_id}:out:{hop}:{node}:{phase}", text[-65536:])

    def output(self, campaign_id: str, hop: int, node: str, phase: str) -> str | None:
        return self.redis.get(f"ku:c:{campaign_id}:out:{hop}:{node}:{phase}")

    # -- phase lifecycle (the tasks) ------------------------------------------------------------
    def begin_phase(self, campaign_id: str, hop: int, node: str, phase: str, attempt: int,
                    task_id: str, doc: CampaignRecord | None = None, looking_again: bool = False) -> str:
        """Whether a delivered task should run: "run", "already-done", "stale", "inactive",
        "unsent" (not the task the dispatcher recorded for this phase, or none was: only the
        dispatcher decides when a phase runs, so a message it did not send, however signed, runs
        nothing), "out-of-order" (a phase listed before it on the node is not done: a node's
        phases run in their order, whatever a message asks; each later link of its chain is
        refused the same way), "unplanned" (the node's plan has no such phase: a control plane
        other than the first asked for `kubeadm upgrade apply`, a worker for a control plane's
        step), or "held" (the campaign is paused and this phase
        would start a node or its outage: the node gets a new attempt, fencing off the rest of
        its chain, and waits for `resume`).
        `doc`: the campaign as the caller just read it (read here otherwise). `looking_again`:
        the delivery is a look the running phase scheduled itself (waiting.py): if the record
        still shows it running under this task, it runs with nothing written (not an attempt)."""
        doc = doc if doc is not None else self.get(campaign_id)
        if doc is None or doc["state"] != "running":
            return "inactive"
        holds: Callable[[NodeEntry, str], bool] | None = None
        undone: str | None = None  # what an out-of-order phase waits for
        recorded: str | None = None  # the task the dispatcher sent for an unsent one's phase
        if doc.get("paused"):
            holds, why = starts_something, "the campaign is paused"
        elif _halted(doc, hop):
            holds, why = prepares_ahead, "another node failed; only outages under way finish"
        elif (windows := _windows(doc)) and not is_open(windows, self.broker_now()):
            holds, why = starts_disruption, "outside the maintenance windows"
        verdict = "run"

        def change(entry: NodeEntry) -> Any:
            nonlocal verdict, undone, recorded
            verdict = "run"  # decided afresh on each reading (cas.py may compute it twice)
            if entry["attempt"] != attempt:
                verdict = "stale"
                return False
            record = _planned(entry, phase)
            if record is None:
                verdict = "unplanned"
                return False
            if record["state"] == "succeeded":
                verdict = "already-done"
                return False
            if looking_again and record["state"] == "running" and record["task_id"] == task_id:
                verdict = "looking"
                return False
            opened = first_open_phase(entry)  # this phase is open, so it or one before it
            if opened is not None and opened["phase"] != phase:
                verdict, undone = "out-of-order", str(opened["phase"])
                return False
            if record["task_id"] != task_id:
                # The dispatcher records each phase's task id before it sends the task (a look
                # and a redelivery keep it; a resend is a new attempt with new ids), so another
                # id is a message it never sent, which could start an outage the window has no
                # room for.
                verdict, recorded = "unsent", record["task_id"]
                return False
            if holds is not None and holds(entry, phase):
                verdict = "held"
                new_attempt(entry)
                return True
            now = time.time()
            record.update(state="running", started=record["started"] or now,
                          attempts=record["attempts"] + 1, task_id=task_id, error="")
            if entry["state"] == "pending":
                entry["state"] = "running"
            entry.setdefault("started", now)
            return True

        def beating(writes: Any) -> None:  # running and beating in one write (phase_beating)
            if verdict == "run":
                writes.set(beat_key(task_id), int(time.time()), "EX", BEAT_TTL)

        if not self.update_entry(campaign_id, hop, node, change, beating) and verdict == "run":
            return "stale"  # no such entry
        if verdict == "looking":
            return "run"
        if verdict == "held":
            self.event(campaign_id, f"{node}: {phase} held: {why}")
        elif verdict == "out-of-order":
            self.event(campaign_id, f"{node}: a task for {phase} refused, nothing run: {undone} "
                       "is not done (a message ahead of the node's order)")
        elif verdict == "unplanned":
            self.event(campaign_id, f"{node}: a task for {phase} refused, nothing run: the plan of "
                       f"{node} has no {phase} phase")
        elif verdict == "unsent":
            sent = f"it sent {recorded}" if recorded else "none is sent yet"
            self.event(campaign_id, f"{node}: a task for {phase} refused, nothing run: the dispatcher "
                       f"did not send task {task_id[:64]} ({sent})")
        return verdict

    def finish_phase(self, campaign_id: str, hop: int, node: str, phase: str, status: str,
                     detail: str, tail: str, *, attempt: int, task_id: str | None) -> bool:
        """Record success; False (and nothing written) if this attempt is no longer current."""
        def change(record: PhaseRecord, entry: NodeEntry) -> None:
            record.update(state="succeeded", ended=time.time(), detail=detail, tail="", outcome=status)
            if all(p["state"] == "succeeded" for p in entry["phases"]):
                entry["state"] = "succeeded"
                entry["ended"] = time.time()

        return self._fenced(campaign_id, hop, node, phase, attempt, task_id, change, "success",
                            self._keep_tail(campaign_id, hop, node, phase, tail))

    def note_phase(self, campaign_id: str, hop: int, node: str, phase: str, detail: str, *,
                   attempt: int, task_id: str | None) -> bool:
        def change(record: PhaseRecord, entry: NodeEntry) -> None:
            record["detail"] = detail

        return self._fenced(campaign_id, hop, node, phase, attempt, task_id, change, "progress note",
                            ends=False)

    def note_finding(self, campaign_id: str, hop: int, node: str, phase: str, *, attempt: int,
                     task_id: str | None, change: Callable[[NodeEntry], Any] | None = None,
                     also: Callable[[Any], Any] | None = None) -> bool:
        """What a running phase found: its node's entry changed by `change`, other keys written
        by `also` (a pipeline), all in one write and only while this attempt and task own the
        phase; False, and nothing written, otherwise. A task frozen, and woken after its phase
        was sent again, must not overwrite what the current attempt found."""
        def on_entry(record: PhaseRecord, entry: NodeEntry) -> None:
            if change is not None:
                change(entry)

        return self._fenced(campaign_id, hop, node, phase, attempt, task_id, on_entry, "finding", also,
                            ends=False)

    def note_cordon(self, campaign_id: str, hop: int, node: str, phase: str, ours: bool, *,
                    attempt: int, task_id: str | None) -> bool:
        """Whether this campaign holds the node cordoned (status names it on a failure); False
        (and nothing written) if this attempt is no longer current."""
        def change(record: PhaseRecord, entry: NodeEntry) -> None:
            entry["cordoned_by_us"] = ours

        return self._fenced(campaign_id, hop, node, phase, attempt, task_id, change, "cordon note",
                            ends=False)

    def phase_current(self, campaign_id: str, hop: int, node: str, phase: str, *, attempt: int,
                      task_id: str | None) -> bool:
        """Whether the phase still runs under this attempt and task id (a read; nothing written).
        A task that froze or lost its worker may have been sent again meanwhile as a new attempt."""
        entry = self.entry(campaign_id, hop, node)
        if entry is None or entry["attempt"] != attempt:
            return False
        record = _phase(entry, phase)
        return record.get("task_id") == task_id and record["state"] == "running"

    def release_phase(self, campaign_id: str, hop: int, node: str, phase: str, detail: str, *,
                      attempt: int, task_id: str | None) -> bool:
        """Back to pending with no task: the dispatcher sends it again (after `resume`)."""
        def change(record: PhaseRecord, entry: NodeEntry) -> None:
            record.update(state="pending", task_id=None, detail=detail)

        return self._fenced(campaign_id, hop, node, phase, attempt, task_id, change, "release")

    def fail_phase(self, campaign_id: str, hop: int, node: str, phase: str, error: str,
                   tail: str = "", *, attempt: int, task_id: str | None, fence_off: bool = False) -> bool:
        """Record a failure; False (and nothing written) if this attempt is no longer current.
        `fence_off`: the phase's message may still be waiting for a consumer (its agent went
        silent); a new attempt number, in the same write, makes it stale if it ever runs."""
        def change(record: PhaseRecord, entry: NodeEntry) -> None:
            record.update(state="failed", ended=time.time(), error=error, tail="")
            entry["state"] = "failed"
            if fence_off:
                entry["attempt"] += 1

        if not self._fenced(campaign_id, hop, node, phase, attempt, task_id, change, "failure",
                            self._keep_tail(campaign_id, hop, node, phase, tail)):
            return False
        doc = self.get(campaign_id)
        if doc is not None and 0 <= hop < len(doc["hops"]) and beyond_budget(
                doc["hops"][hop].get("stage", ""),
                [e for e in self.entries(campaign_id, hop).values() if e["state"] == "failed"],
                doc["campaign"].get("policies", {}).get("max_failed_workers", 0)):
            self.halt(doc, hop)  # before any other link can begin
        self.event(campaign_id, f"{node}: {phase} failed: {error}")
        if doc is not None:
            kind = "gate" if phase.endswith("gate") else "node"
            self.notify(doc, kind, f"{node}: {phase} failed: {error}", node=node, phase=phase, hop=hop)
        return True

    def halt(self, doc: CampaignRecord, hop: int) -> None:
        """A failure beyond the budget: only outages under way finish from now on; a
        preparation chain sent earlier stops at its next link (begin_phase holds it). `doc` is
        the record as the caller just read it: nothing is written when it is halted already."""
        def halt(current: CampaignRecord) -> Any:
            current["hops"][hop]["halted"] = True

        if not doc["hops"][hop].get("halted"):
            self.update(doc["id"], halt)

    @staticmethod
    def _keep_tail(campaign_id: str, hop: int, node: str, phase: str, tail: str) -> Callable[[Any], Any]:
        """The write of a phase's output tail (or of its removal: an earlier attempt's must
        not pass for this one's), for the transaction that records how the phase ended."""
        key, field = f"ku:c:{campaign_id}:tails:{hop}", f"{node}/{phase}"
        return lambda pipe: pipe.hset(key, field, tail[-TAIL:]) if tail else pipe.hdel(key, field)

    def _fenced(self, campaign_id: str, hop: int, node: str, phase: str, attempt: int,
                task_id: str | None, change: Callable[[PhaseRecord, NodeEntry], None],
                what: str, also: Callable[[Any], Any] | None = None, *, ends: bool = True) -> bool:
        """Apply `change` only while the phase is open under this attempt and task id. `ends`:
        the change ends the phase (or sends it back to pending), which wakes the dispatcher."""
        def guarded(entry: NodeEntry) -> Any:
            record = _phase(entry, phase)
            if (entry["attempt"] != attempt or record.get("task_id") != task_id
                    or record["state"] not in ("pending", "running")):
                return False
            change(record, entry)
            return True

        def writes(pipe: Any) -> None:
            if also is not None:
                also(pipe)
            if ends:
                queue_wake(pipe)  # a phase ended (or went back to pending): the dispatcher decides now
                if task_id:  # ...and stops beating in the same script (phase_beating, begun)
                    pipe.delete(beat_key(task_id))

        applied = self.update_entry(campaign_id, hop, node, guarded, writes)
        if not applied:
            log.warning("stale %s dropped: campaign %s hop %s %s %s attempt %s task %s",
                        what, campaign_id, hop, node, phase, attempt, task_id)
        return applied


def new_attempt(entry: NodeEntry, *, clear_errors: bool = False, reopen: frozenset[str] = frozenset()) -> None:
    """Open the node again as a new attempt: every phase not yet succeeded, and the succeeded
    ones named in `reopen` (states.REOPENABLE), back to pending with no task. Any message of the
    old attempt is fenced off as stale; the dispatcher sends anew."""
    entry["attempt"] += 1
    entry["state"] = "pending"
    for record in entry["phases"]:
        if record["state"] != "succeeded" or record["phase"] in reopen:
            record.update(state="pending", task_id=None)
            if clear_errors:
                record["error"] = ""


def _windows(doc: CampaignRecord) -> tuple[Any, ...]:
    try:
        return windows_of(doc["campaign"])
    except ValueError as error:
        raise DamagedRecord(f"ku:c:{doc['id']}", str(error), "campaign") from None


def starts_something(entry: NodeEntry, phase: str) -> bool:
    """Whether running `phase` now would start the node (its first phase, or its first after
    the hop-wide prepare-host) or take it out of service. A paused campaign starts neither;
    what is already under way goes on."""
    if entry["node"] == CLUSTER_ENTRY:
        return False
    phases = entry["phases"]
    names = [p["phase"] for p in phases]
    if phase not in names:
        return False
    index = names.index(phase)
    if index == 0:
        return not phases[0].get("started")
    if not any(p.get("started") for p in phases[1:]):
        return True
    return _starts_outage(entry, index)


def prepares_ahead(entry: NodeEntry, phase: str) -> bool:
    """Whether `phase` prepares a worker whose outage has not begun (what stops after a failure
    beyond the budget; an outage under way finishes, to bring its node back)."""
    if entry["role"] != "worker" or outage_begun(entry):
        return False
    names = [p["phase"] for p in entry["phases"]]
    return phase in names and 0 < names.index(phase) < outage_start(entry)


def _halted(doc: CampaignRecord, hop: int) -> bool:
    hops = doc.get("hops") or []
    return 0 <= hop < len(hops) and bool(hops[hop].get("halted"))


def starts_disruption(entry: NodeEntry, phase: str) -> bool:
    """What a maintenance window governs: a worker's outage, a control plane's whole upgrade
    (not the hop-wide prepare-host: it only refreshes package lists and reads facts)."""
    if entry["role"] == "control-plane":
        return phase != entry["phases"][0]["phase"] and starts_something(entry, phase)
    if entry["node"] == CLUSTER_ENTRY:
        return False
    names = [p["phase"] for p in entry["phases"]]
    return phase in names and _starts_outage(entry, names.index(phase))


def _starts_outage(entry: NodeEntry, index: int) -> bool:
    """Whether the phase at `index` is the node's first out of service, not begun before."""
    return index == outage_start(entry) and not outage_begun(entry)


def _planned(entry: NodeEntry, phase: str) -> PhaseRecord | None:
    for record in entry["phases"]:
        if record["phase"] == phase:
            return record
    return None


def _phase(entry: NodeEntry, phase: str) -> PhaseRecord:
    record = _planned(entry, phase)
    if record is None:
        raise KeyError(f"phase {phase} is not planned for {entry['node']}")
    return record


class HopEntries:
    """A hop's entries as one reader last read them, each with a digest of the text it was
    decoded from. A full read or a sweep decodes only the texts that differ and keeps the very
    same object for the others, so what a reader derives from an entry and recomputes only for
    a new object (the dispatcher's HopView and milestones) is not redone for the whole hop.
    Read-only: every change goes through the store on a fresh copy. A digest, not the text: a
    5,000-node hop's texts are ~20 MB once its nodes are done (~4 KB each), kept for nothing
    but this comparison."""

    def __init__(self, store: CampaignStore, campaign_id: str, hop: int) -> None:
        self.store, self.campaign_id, self.hop = store, campaign_id, hop
        self.entries: dict[str, NodeEntry] = {}
        self._digests: dict[str, str] = {}  # node -> SHA-1 of its text (cas.text_sha1)
        self._cursor = 0  # where the sweep's pass stands (HSCAN)
        self._met: set[str] = set()  # nodes the sweep's pass has met, or a refresh read as changed, so far

    def read_all(self) -> None:
        """Every entry, and track changes from here (CampaignStore.entries(since_now=True))."""
        texts = self.store.entry_texts(self.campaign_id, self.hop, since_now=True)
        for node, text in texts.items():
            self._take(node, text)
        for gone in [node for node in self.entries if node not in texts]:
            self._forget(gone)
        self._cursor, self._met = 0, set()

    def refresh(self, count: int) -> bool:
        """The entries written since the last read (CampaignStore.changed_entry_texts), then the
        next ~`count` entries of a pass over the hop read again, in one round trip (a tick's
        every round trip is a wait for Redis and then for a core). The pass catches writes that
        bypass the store (a hand edit of an entry, one deleted by hand), a slice per tick
        instead of the whole hop in one (~10 MB and a fifth of a second at 5,000 nodes). True
        when it ended a pass; then an entry the pass never met, and no refresh read as changed
        meanwhile, is gone."""
        changed, scan, changed_first = self.store.changed_and_scan(self.campaign_id, self.hop, self._cursor, count)
        if changed_first:  # the scan's texts are at least as new
            self._changed(changed)
            return self._scanned(*scan)
        ended = self._scanned(*scan)  # read before the changed ones were taken: older
        self._changed(changed)
        return ended

    def _changed(self, texts: dict[str, str | None]) -> None:
        for node, text in texts.items():
            self._met.add(node)
            if text is None:
                self._forget(node)
            else:
                self._take(node, text)

    def _scanned(self, cursor: int, texts: dict[str, str]) -> bool:
        self._cursor = cursor
        for node, text in texts.items():
            self._take(node, text)
            self._met.add(node)
        if self._cursor:
            return False
        for gone in [node for node in self.entries if node not in self._met]:
            self._forget(gone)
        self._met = set()
        return True

    def as_read(self, node: str, entry: NodeEntry) -> tuple[str, NodeEntry] | None:
        """(the SHA-1 of its text, the entry) if `entry` is the very object read for `node`: a
        change to it is then written in one round trip when nothing wrote it since
        (CampaignStore.update_entry's as_read). None for any other object."""
        return (self._digests[node], entry) if self.entries.get(node) is entry else None

    def _take(self, node: str, text: str) -> None:
        """`text` as the node's entry: the very object already held if the text is the same."""
        digest = text_sha1(text)
        if node not in self.entries or self._digests.get(node) != digest:
            self.entries[node] = self.store.decode_entry(self.campaign_id, self.hop, node, text)
            self._digests[node] = digest

    def _forget(self, node: str) -> None:
        self.entries.pop(node, None)
        self._digests.pop(node, None)
