"""Read-modify-write of one Redis value (a string key or one field of a hash) as a compare-and-set.

Every task writes its node's entry twice (begin, finish) and the dispatcher once per chain. As a
WATCH / read / MULTI ... EXEC transaction that is three round trips and a pipeline's bookkeeping
each time: a fifth of an agent's and of the controller's CPU in `bench.scale`. Here the change
is computed in Python from a text, and one Lua script writes the new text (and the writes that
go with it) only if the value's SHA-1 is still that text's: two round trips (read, write), or one
when this process wrote or read the value last and guesses it is unchanged. A wrong guess costs
nothing but the retry: the script answers with the value as it is. A change that decides to
write nothing is never trusted to a guess; it is computed again from a fresh read.

The further writes name their own keys outside KEYS: this is one Redis, not a cluster.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

import redis

# KEYS[1] the value's key. ARGV[1] its hash field ("" for a string key), ARGV[2] the SHA-1 of the
# text the change was computed from ("" if there was none), ARGV[3] the new text, ARGV[4] "1" to
# add the field to KEYS[1]:changed, then each further write as its argument count and arguments.
# Answers {1} when written, {0, current text or false} when the value was not the text expected.
_SCRIPT = """
local field = ARGV[1]
local current
if field == '' then current = redis.call('GET', KEYS[1]) else current = redis.call('HGET', KEYS[1], field) end
local seen = ''
if current then seen = redis.sha1hex(current) end
if seen ~= ARGV[2] then return {0, current} end
if field == '' then redis.call('SET', KEYS[1], ARGV[3]) else redis.call('HSET', KEYS[1], field, ARGV[3]) end
if ARGV[4] == '1' then redis.call('SADD', KEYS[1] .. ':changed', field) end
local i = 5
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return {1}
"""

# The writes a change may add (`also`): plain commands whose arguments are the method's.
_WRITES = frozenset({"set", "hset", "hdel", "sadd", "srem", "rpush", "ltrim", "delete", "expire"})
_GUESSES_KEPT = 128  # values whose last known text is kept, per process (oldest forgotten first).
# A guess serves a task between its begin and its finish: one in flight in an agent or a
# controller pool process, an agent farm's thread count in a farm. 1,024 kept ~4 MB of entry
# texts in every controller pool process once a hop's nodes were done, for nothing.


class Writes:
    """Records the further writes of a change, as a pipeline would take them."""

    def __init__(self) -> None:
        self.arguments: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name not in _WRITES:
            raise AttributeError(f"{name} is not a write a compare-and-set can carry")
        command = "DEL" if name == "delete" else name.upper()

        def record(*args: Any) -> None:
            self.arguments += [str(1 + len(args)), command, *(str(arg) for arg in args)]

        return record


def text_sha1(text: str | None) -> str:
    """Which text a value holds, as the script compares it ("" for none): an identity, not a
    signature. HopEntries names the texts it decoded the same way."""
    return hashlib.sha1(text.encode()).hexdigest() if text is not None else ""  # noqa: S324 - identity, not security


class CompareAndSet:
    """Optimistic updates of values in one Redis, with this process's last known texts."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._script = client.register_script(_SCRIPT)
        self._known: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()  # an agent farm's tasks share the store in threads

    def _remember(self, slot: tuple[str, str], text: str | None) -> None:
        with self._lock:
            self._known.pop(slot, None)
            if text is not None:
                self._known[slot] = text
                while len(self._known) > _GUESSES_KEPT:
                    del self._known[next(iter(self._known))]

    def _read(self, key: str, field: str) -> str | None:
        raw = self.redis.hget(key, field) if field else self.redis.get(key)
        return raw or None

    def update(self, key: str, field: str, decode: Callable[[str], Any],
               change: Callable[[Any], Any], also: Callable[[Writes], None] | None = None,
               *, track_changed: bool = False, as_read: tuple[str, Any] | None = None) -> tuple[bool, Any]:
        """Apply `change` (decoded value or None -> new value, or None to write nothing) to the
        value at `key` (its `field` when not ""). `also` adds writes made only with the change;
        `track_changed` adds the field to `key:changed` in the same script. `as_read` is the
        caller's own read of the value, (the SHA-1 of its text, the value it decoded), taken as
        a guess (a copy is changed). Returns (written, the new value or, when nothing was
        written, the current one). `change` may run more than once (on a guess, then on the
        value as it is): whatever it tells its caller must be decided afresh on each run. What
        it raises on a guess is not believed either: it runs again on the value as it is,
        whose exception is the caller's."""
        slot = (key, field)
        with self._lock:
            text = self._known.get(slot)
        guessed = text is not None or as_read is not None
        if not guessed:
            text = self._read(key, field)
        while True:
            if as_read is not None:
                read_sha1, current = as_read[0], copy.deepcopy(as_read[1])
                as_read = None
            else:
                read_sha1, current = text_sha1(text), decode(text) if text is not None else None
            try:
                updated = change(current)
            except Exception:
                if guessed:  # a refusal (a state change not allowed) too is decided afresh
                    guessed, text = False, self._read(key, field)
                    continue
                raise
            if updated is None:
                if guessed:  # "nothing to write" may only be decided on the value as it is
                    guessed, text = False, self._read(key, field)
                    continue
                self._remember(slot, text)
                return False, current
            new_text = json.dumps(updated)
            writes = Writes()
            if also is not None:
                also(writes)
            answer = self._script(keys=[key], args=[field, read_sha1, new_text,
                                                    "1" if track_changed else "0", *writes.arguments])
            if answer[0] == 1:
                self._remember(slot, new_text)
                return True, updated
            guessed, text = False, (answer[1] if len(answer) > 1 and answer[1] else None)

    def update_fields(self, key: str, decode: Callable[[str, str], Any],
                      changes: dict[str, tuple[Callable[[Any], Any], tuple[str, Any] | None]],
                      *, track_changed: bool = False) -> dict[str, tuple[bool, Any]]:
        """update() of many fields of the hash `key` ({field: (change, as_read)}), their scripts
        sent in one pipelined round trip. A field with no guess (no `as_read`, no text known
        here), whose change wrote nothing on a guess, or whose guess was wrong (or whose script
        failed: a Redis restarted without it) goes through update() on its own, from a fresh
        read. The dispatcher recorded each chain it sends in a round trip of its own: 1,000 of
        them, one after the other, before a 1,000-node hop's prepare-host group could go (0.2 s).
        `decode` takes the field and its text."""
        results: dict[str, tuple[bool, Any]] = {}
        alone: list[str] = []
        planned: list[tuple[str, str, Any]] = []  # field, the new text, the new value
        pipe = self.redis.pipeline(transaction=False)
        for field, (change, as_read) in changes.items():
            with self._lock:
                text = self._known.get((key, field))
            if as_read is not None:
                read_sha1, current = as_read[0], copy.deepcopy(as_read[1])
            elif text is not None:
                read_sha1, current = text_sha1(text), decode(field, text)
            else:
                alone.append(field)
                continue
            try:
                updated = change(current)
            except Exception:  # decided afresh by update(), as a refusal on a guess must be
                updated = None
            if updated is None:  # "nothing to write" may only be decided on the value as it is
                alone.append(field)
                continue
            new_text = json.dumps(updated)
            pipe.evalsha(self._script.sha, 1, key, field, read_sha1, new_text, "1" if track_changed else "0")
            planned.append((field, new_text, updated))
        answers = pipe.execute(raise_on_error=False) if planned else []
        for (field, new_text, updated), answer in zip(planned, answers):
            if isinstance(answer, list) and answer and answer[0] == 1:
                self._remember((key, field), new_text)
                results[field] = (True, updated)
            else:
                self._remember((key, field), None)  # the guess was wrong: update() reads afresh
                alone.append(field)
        for field in alone:
            results[field] = self.update(key, field, lambda raw, field=field: decode(field, raw),  # type: ignore[misc]
                                         changes[field][0], track_changed=track_changed)
        return results
