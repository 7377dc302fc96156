"""etcdctl v3.5 as kubeadm's control planes use it: `snapshot save` against the local member
with the etcd certificates, `snapshot status`, `version`. Logs go to stderr as etcd's JSON lines;
the result line ("Snapshot saved at PATH") to stdout, as the real tool prints them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from kubeupgrade.sandbox.hostbin.context import Host

VERSION = "3.5.16"
FLAGS = ("endpoints", "cacert", "cert", "key", "write-out", "w", "command-timeout", "dial-timeout")


def _log(host: Host, msg: str, caller: str, **fields: str) -> None:
    line = {"level": "info", "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "caller": caller, "msg": msg, **fields}
    host.err(json.dumps(line))


def _parse(host: Host, args: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    words: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("-"):
            name, _, value = arg.lstrip("-").partition("=")
            if name not in FLAGS:
                raise host.fail(f"Error: unknown flag: --{name}", 1)
            if not value:
                index += 1
                if index >= len(args):
                    raise host.fail(f"Error: flag needs an argument: --{name}", 1)
                value = args[index]
            flags[name] = value
        else:
            words.append(arg)
        index += 1
    return flags, words


def _connect(host: Host, flags: dict[str, str]) -> str:
    endpoint = flags.get("endpoints", "127.0.0.1:2379")
    for flag in ("cacert", "cert", "key"):
        if flag in flags and not host.path(flags[flag]).exists():
            raise host.fail(f"Error: open {flags[flag]}: no such file or directory", 1)
    member = host.path("/etc/kubernetes/manifests/etcd.yaml").exists()
    secure = endpoint.startswith("https://")
    if not member or not secure or not all(f in flags for f in ("cacert", "cert", "key")):
        host.sleep("etcdctl timeout", 1.0)
        host.err(json.dumps({"level": "warn", "ts": datetime.now(UTC).isoformat(), "logger": "etcd-client",
                             "caller": "v3@v3.5.16/retry_interceptor.go:62",
                             "msg": "retrying of unary invoker failed", "target": f"etcd-endpoints://{endpoint}",
                             "attempt": 0, "error": "rpc error: code = DeadlineExceeded desc = "
                                                    "latest balancer error: last connection error: "
                                                    "connection error: desc = \"error reading server preface: EOF\""}))
        raise host.fail("Error: context deadline exceeded", 1)
    return endpoint


def etcdctl(host: Host, args: list[str]) -> int:
    flags, words = _parse(host, args)
    if words == ["version"]:
        host.out(f"etcdctl version: {VERSION}\nAPI version: 3.5")
        return 0
    if words[:2] == ["snapshot", "save"] and len(words) == 3:
        endpoint = _connect(host, flags)
        path = words[2]
        target = host.path(path)
        part = target.with_name(target.name + ".part")
        if not target.parent.is_dir():
            raise host.fail(f"Error: could not open {path}.part (open {path}.part: no such file or directory)", 1)
        _log(host, "created temporary db file", "snapshot/v3_snapshot.go:65", path=f"{path}.part")
        data = host.path("/var/lib/etcd/member/snap/db").read_bytes()
        body = (data * (200_000 // max(1, len(data)) + 1))[:200_000]  # a small cluster's keyspace
        _log(host, "fetching snapshot", "snapshot/v3_snapshot.go:73", endpoint=endpoint)
        host.sleep("etcd snapshot")
        part.write_bytes(body)
        host.maybe_crash("etcd snapshot")  # a .part file stays behind, as with the real tool
        _log(host, "fetched snapshot", "snapshot/v3_snapshot.go:88", endpoint=endpoint,
             size=f"{len(body) / 1_000_000:.1f} MB", took="now")
        part.replace(target)
        _log(host, "saved", "snapshot/v3_snapshot.go:97", path=path)
        host.out(f"Snapshot saved at {path}")
        return 0
    if words[:2] == ["snapshot", "status"] and len(words) == 3:
        target = host.path(words[2])
        if not target.exists():
            raise host.fail(f"Error: stat {words[2]}: no such file or directory", 1)
        body = target.read_bytes()
        digest = int(hashlib.sha256(body).hexdigest()[:8], 16)
        if flags.get("write-out", flags.get("w")) == "json":
            host.out(json.dumps({"hash": digest, "revision": 4182, "totalKey": 912, "totalSize": len(body)}))
        else:
            host.out("+----------+----------+------------+------------+")
            host.out("|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |")
            host.out("+----------+----------+------------+------------+")
            size = f"{len(body) / 1000:.0f} kB"
            host.out(f"| {digest:08x} |     4182 |        912 | {size:>10} |")
            host.out("+----------+----------+------------+------------+")
        return 0
    raise host.fail(f"Error: unknown command {' '.join(words)!r} for \"etcdctl\"", 1)

