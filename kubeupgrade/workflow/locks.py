"""Owned keys in Redis, changed only by compare-and-set: the cluster lock (which campaign acts on
a cluster) and the dispatcher lease (which controller dispatches). A get-then-set lets two
writers both believe they won; each operation here is one atomic Lua script instead."""

from __future__ import annotations

import redis

_SWAP = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] or (current == false and ARGV[1] == '') then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_LEAD = """
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def swap(client: redis.Redis, key: str, expected: str | None, new: str) -> bool:
    """Set `key` to `new` only if it holds `expected` (None: only if it is absent)."""
    return bool(client.eval(_SWAP, 1, key, expected or "", new))


def release(client: redis.Redis, key: str, owner: str) -> bool:
    """Delete `key` only if `owner` holds it."""
    return bool(client.eval(_DELETE, 1, key, owner))


def lead(client: redis.Redis, key: str, owner: str, millis: int) -> int:
    """Take the lease on `key` for `owner` if nobody holds it (2), or renew it if `owner` does
    (1); 0 if another owner holds it. One round trip where a SET NX, then an extend() when the
    key was already there (every tick of a leading dispatcher), took two."""
    return int(client.eval(_LEAD, 1, key, owner, millis))


def extend(client: redis.Redis, key: str, owner: str, millis: int) -> bool:
    """Renew `owner`'s lease on `key`; False if it is no longer `owner`'s."""
    return bool(client.eval(_EXTEND, 1, key, owner, millis))
