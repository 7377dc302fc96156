"""Redis ACL users, one per role, each with only the commands, keys and channels it uses.

What each role touches on the broker (Celery on Redis, plus the campaign record):
- queues `kubeupgrade.*` (and kombu's priority variants of them), kombu's `_kombu.binding.*`
  sets, the `unacked*` keys of late acknowledgement, results `celery-task-meta-*` and the
  record `ku:*`;
- channels: task events `/<db>.celeryev/*` and results published under their key. Nothing
  uses remote control, so no role but flower and admin may touch control messages (keys or
  channel `/<db>.celery.pidbox`).

Roles:
- controller: all of that, no administration (`-@admin -@dangerous`, which also denies KEYS,
  FLUSHALL, CONFIG, DEBUG, MIGRATE and the like).
- agent: the same keys (an agent writes the record and publishes the next link of a chain),
  no administration, and no subscription to control messages: agents take no remote control.
- cli: an operator's commands (submit, status, abort: it sends restores and releases), the same
  keys, no administration.
- flower: monitoring only: reads, and subscribes to task events; it may write only the binding
  of its own event receiver (kombu's `_kombu.binding*.celeryev` and the bindings' deadlines),
  and has no PUBLISH and no list writes, so it cannot send a task or a control message. (A
  deadline it forged could make another client sweep a binding table, which kombu keeps while a
  durable queue still lists it: every kubeupgrade queue is durable.)
- admin: everything, for the operator's maintenance (redis-cli); no kubeupgrade process uses it.
The `default` user is off: every connection authenticates as one of these (see acl_text for why
it keeps its rights all the same).

Write access stays wide within the keyspace on purpose: agents must write the record, so key
rules alone cannot keep one node from another; what keeps a broker credential from root on a
node is the operator's signature on campaigns and the signatures on messages
(kubeupgrade.security.signing, kubeupgrade.security.messages).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from kubeupgrade.errors import InvalidInput
from kubeupgrade.security.private_files import write_new_private

KEYS = "~ku:* ~kubeupgrade.* ~_kombu.* ~unacked* ~celery-task-meta-*"
# Task events (kombu's fanout with Celery's prefix: /<db>.celeryev/<routing key>) and results
# (published under their key). Not the control channel /<db>.celery.pidbox: no kubeupgrade
# process sends or takes remote control, so none may even publish a control message.
CHANNELS = "&/*.celeryev/* &celery-task-meta-*"
_NO_ADMIN = "+@all -@admin -@dangerous +info"

ROLE_RULES = {
    "controller": f"{KEYS} {CHANNELS} {_NO_ADMIN}",
    "agent": f"{KEYS} {CHANNELS} {_NO_ADMIN} -subscribe -psubscribe",
    "cli": f"{KEYS} {CHANNELS} {_NO_ADMIN}",
    # Reads everything; writes only the two keys its event receiver's binding needs (kombu
    # records a queue's binding with a script); no PUBLISH and no list writes.
    "flower": "%R~* %RW~_kombu.binding.celeryev %RW~_kombu.binding_permanent.celeryev "
              "%RW~_kombu.binding_deadlines &* -@all +@read +@connection +@transaction +info +time "
              "+subscribe +psubscribe +unsubscribe +punsubscribe +sadd +srem +zadd +zrem +evalsha "
              "+eval +script|load +script|exists",
    "admin": "~* &* +@all",
}
ROLES = tuple(ROLE_RULES)
ACL_FILE = "kubeupgrade-users.acl"


def acl_text(passwords: dict[str, str]) -> str:
    """The ACL file: `default` off, then each role with its password stored as a SHA-256.

    `default` is off (no connection can be it: it has no password and cannot log in) yet keeps
    every right, because redis-server replays its append-only file as the default user and,
    before the fix of redis/redis#14541 (Redis 7.0.15 as Debian ships it has the bug), checks
    that user's rights again at each EXEC: a default user without rights makes every
    transaction in the AOF fail on restart, silently dropping the record's writes (found by
    tests/e2e/test_faults.py's broker restart on the shipped configuration)."""
    lines = ["user default off resetpass ~* &* +@all"]
    for role, rules in ROLE_RULES.items():
        digest = hashlib.sha256(passwords[role].encode()).hexdigest()
        lines.append(f"user {role} on #{digest} resetchannels {rules}")
    return "\n".join(lines) + "\n"


def role_url(base: str, role: str, password: str) -> str:
    """`base` (rediss://HOST:PORT/DB?...) with the role's credentials in it."""
    parts = urlsplit(base)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise InvalidInput(f"--url {base!r}: expected rediss://HOST:PORT/DB")
    if parts.username or parts.password:
        raise InvalidInput(f"--url {base!r}: leave the credentials out; each role gets its own")
    netloc = f"{role}:{quote(password, safe='')}@{parts.netloc}"
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class BrokerUsers:
    acl: Path
    urls: dict[str, str]
    env_files: dict[str, Path]


def create_broker_users(directory: Path, base_url: str) -> BrokerUsers:
    """Fresh passwords for every role: DIR/kubeupgrade-users.acl for redis-server's `aclfile`,
    and DIR/<role>.env holding that role's KUBEUPGRADE_BROKER (all mode 0600). Refuses to
    overwrite: new passwords would lock every running process out."""
    acl = directory / ACL_FILE
    if acl.exists():
        raise InvalidInput(f"{acl}: exists already; choose another directory (new passwords "
                           "would lock out every process using the current ones)")
    passwords = {role: secrets.token_urlsafe(24) for role in ROLES}
    urls = {role: role_url(base_url, role, passwords[role]) for role in ROLES}
    directory.mkdir(parents=True, exist_ok=True)
    write_new_private(acl, acl_text(passwords).encode())
    env_files = {}
    for role, url in urls.items():
        env_files[role] = directory / f"{role}.env"
        write_new_private(env_files[role], f"KUBEUPGRADE_BROKER={url}\n".encode())
    return BrokerUsers(acl, urls, env_files)
