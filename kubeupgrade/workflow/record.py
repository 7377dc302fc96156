"""The durable campaign record in Redis: the source of truth for what ran, what failed and what
runs next. Celery results are not relied on for progress.

Keys (JSON values):
  ku:campaigns                 sorted set of campaign ids by creation time
  ku:cluster:<name>            the id of the cluster's active campaign (one at a time)
  ku:c:<id>                    the campaign document: state, campaign, plan, hops, error
  ku:c:<id>:hop:<n>            hash: node (or @cluster) -> entry with per-phase state
  ku:c:<id>:events             the campaign's event log (newest first, capped)
  ku:c:<id>:out:<n>:<node>:<phase>   full output of a phase worth keeping (kubeadm upgrade plan)

Writers: the CLI (create, retry, abort), the dispatcher (dispatch, stage changes) and the phase
tasks (begin/finish/fail). Every read-modify-write is an optimistic transaction.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from kubeupgrade.errors import PolicyRefused

ACTIVE = ("pending", "running", "failed")  # states that hold the cluster
TERMINAL = ("succeeded", "aborted", "refused")
TAIL = 4000


class CampaignConflict(PolicyRefused):
    def __init__(self, cluster: str, existing: str, state: str) -> None:
        super().__init__(f"cluster {cluster} already has campaign {existing} ({state}); wait for it, "
                         f"`kubeupgrade retry {existing}` or `kubeupgrade abort {existing}` first")
        self.existing = existing


def new_phase(phase: str) -> dict[str, Any]:
    return {"phase": phase, "state": "pending", "attempts": 0, "started": None, "ended": None,
            "detail": "", "error": "", "tail": "", "task_id": None}


class CampaignStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    @classmethod
    def from_url(cls, url: str) -> CampaignStore:
        return cls(redis.Redis.from_url(url, decode_responses=True, socket_timeout=10,
                                        socket_connect_timeout=5, health_check_interval=25))

    # -- helpers -----------------------------------------------------------------------------
    def _transact(self, key: str, field: str | None, change: Callable[[Any], Any]) -> Any:
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.hget(key, field) if field is not None else pipe.get(key)
                    current = json.loads(raw) if raw else None
                    updated = change(current)
                    if updated is None:
                        pipe.unwatch()
                        return current
                    pipe.multi()
                    if field is not None:
                        pipe.hset(key, field, json.dumps(updated))
                    else:
                        pipe.set(key, json.dumps(updated))
                    pipe.execute()
                    return updated
                except redis.WatchError:
                    continue

    # -- campaigns ---------------------------------------------------------------------------
    def create(self, cluster: str, campaign: dict[str, Any], source: str) -> str:
        campaign_id = f"{cluster}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        lock = f"ku:cluster:{cluster}"
        if not self.redis.set(lock, campaign_id, nx=True):
            existing = self.redis.get(lock) or "?"
            doc = self.get(existing)
            if doc is None or doc["state"] in TERMINAL:  # a stale lock left by a crash
                self.redis.set(lock, campaign_id)
            else:
                raise CampaignConflict(cluster, existing, doc["state"])
        now = time.time()
        doc = {"id": campaign_id, "cluster": cluster, "state": "pending", "created": now,
               "updated": now, "source": source, "campaign": campaign, "plan": None,
               "hops": [], "current_hop": 0, "error": None, "notes": []}
        self.redis.set(f"ku:c:{campaign_id}", json.dumps(doc))
        self.redis.zadd("ku:campaigns", {campaign_id: now})
        self.event(campaign_id, f"campaign submitted from {source}")
        return campaign_id

    def get(self, campaign_id: str) -> dict[str, Any] | None:
        raw = self.redis.get(f"ku:c:{campaign_id}")
        return json.loads(raw) if raw else None

    def update(self, campaign_id: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        def apply(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:
                return None
            change(doc)
            doc["updated"] = time.time()
            return doc

        return self._transact(f"ku:c:{campaign_id}", None, apply)

    def ids(self) -> list[str]:
        return list(self.redis.zrange("ku:campaigns", 0, -1))

    def active_ids(self) -> list[str]:
        return [i for i in self.ids() if (doc := self.get(i)) and doc["state"] in ("pending", "running")]

    def release_cluster(self, cluster: str, campaign_id: str) -> None:
        lock = f"ku:cluster:{cluster}"
        if self.redis.get(lock) == campaign_id:
            self.redis.delete(lock)

    def event(self, campaign_id: str, message: str) -> None:
        key = f"ku:c:{campaign_id}:events"
        self.redis.lpush(key, json.dumps({"t": time.time(), "message": message}))
        self.redis.ltrim(key, 0, 499)

    def events(self, campaign_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.redis.lrange(f"ku:c:{campaign_id}:events", 0, limit - 1)]

    # -- node entries -----------------------------------------------------------------------
    def put_entry(self, campaign_id: str, hop: int, node: str, entry: dict[str, Any]) -> None:
        self.redis.hset(f"ku:c:{campaign_id}:hop:{hop}", node, json.dumps(entry))

    def entry(self, campaign_id: str, hop: int, node: str) -> dict[str, Any] | None:
        raw = self.redis.hget(f"ku:c:{campaign_id}:hop:{hop}", node)
        return json.loads(raw) if raw else None

    def entries(self, campaign_id: str, hop: int) -> dict[str, dict[str, Any]]:
        raw = self.redis.hgetall(f"ku:c:{campaign_id}:hop:{hop}")
        return {node: json.loads(value) for node, value in raw.items()}

    def update_entry(self, campaign_id: str, hop: int, node: str,
                     change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        def apply(entry: dict[str, Any] | None) -> dict[str, Any] | None:
            if entry is None:
                return None
            result = change(entry)
            return None if result is False else entry

        return self._transact(f"ku:c:{campaign_id}:hop:{hop}", node, apply)

    def save_output(self, campaign_id: str, hop: int, node: str, phase: str, text: str) -> None:
        self.redis.set(f"ku:c:{campaign_id}:out:{hop}:{node}:{phase}", text[-65536:])

    def output(self, campaign_id: str, hop: int, node: str, phase: str) -> str | None:
        return self.redis.get(f"ku:c:{campaign_id}:out:{hop}:{node}:{phase}")

    # -- phase lifecycle (the tasks) ------------------------------------------------------------
    def begin_phase(self, campaign_id: str, hop: int, node: str, phase: str, attempt: int,
                    task_id: str) -> str:
        """Whether a delivered task should run: "run", "already-done", "stale" or "inactive"."""
        doc = self.get(campaign_id)
        if doc is None or doc["state"] != "running":
            return "inactive"
        verdict = "run"

        def change(entry: dict[str, Any]) -> Any:
            nonlocal verdict
            if entry["attempt"] != attempt:
                verdict = "stale"
                return False
            record = _phase(entry, phase)
            if record["state"] == "succeeded":
                verdict = "already-done"
                return False
            now = time.time()
            record.update(state="running", started=record["started"] or now,
                          attempts=record["attempts"] + 1, task_id=task_id, error="")
            if entry["state"] == "pending":
                entry["state"] = "running"
            entry.setdefault("started", now)
            return True

        if self.update_entry(campaign_id, hop, node, change) is None:
            return "stale"
        return verdict

    def finish_phase(self, campaign_id: str, hop: int, node: str, phase: str, status: str,
                     detail: str, tail: str) -> None:
        def change(entry: dict[str, Any]) -> None:
            record = _phase(entry, phase)
            record.update(state="succeeded", ended=time.time(), detail=detail,
                          tail=tail[-TAIL:], outcome=status)
            if all(p["state"] == "succeeded" for p in entry["phases"]):
                entry["state"] = "succeeded"
                entry["ended"] = time.time()

        self.update_entry(campaign_id, hop, node, change)

    def note_phase(self, campaign_id: str, hop: int, node: str, phase: str, detail: str) -> None:
        def change(entry: dict[str, Any]) -> None:
            _phase(entry, phase)["detail"] = detail

        self.update_entry(campaign_id, hop, node, change)

    def fail_phase(self, campaign_id: str, hop: int, node: str, phase: str, error: str,
                   tail: str = "") -> None:
        def change(entry: dict[str, Any]) -> None:
            record = _phase(entry, phase)
            record.update(state="failed", ended=time.time(), error=error, tail=tail[-TAIL:])
            entry["state"] = "failed"

        self.update_entry(campaign_id, hop, node, change)
        self.event(campaign_id, f"{node}: {phase} failed: {error}")


def _phase(entry: dict[str, Any], phase: str) -> dict[str, Any]:
    for record in entry["phases"]:
        if record["phase"] == phase:
            return record
    raise KeyError(f"phase {phase} is not planned for {entry['node']}")
