"""Read and validate a campaign YAML file into a `Campaign`.

Every rejection is one line naming the file, the key path and the rule broken, with a "did you
mean" for misspelt keys. Nothing here touches a host or the network. Key reference: README.md.
"""

from __future__ import annotations

import difflib
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubeupgrade.errors import InvalidInput, not_utf8
from kubeupgrade.model.campaign import (
    DAYS,
    NOTIFY_EVENTS,
    Argv,
    Campaign,
    DrainPolicy,
    GateFailure,
    Hooks,
    MaxUnavailable,
    NodeSpec,
    Notify,
    OnPdbBlock,
    OsFamily,
    Policies,
    Pool,
    PrometheusCheck,
    RetryPolicy,
    Role,
    Scope,
    UserGate,
    Window,
    WorkerStrategy,
)
from kubeupgrade.model.versions import (
    KubeVersion,
    MinorVersion,
    parse_minor,
    parse_version,
    parse_version_spec,
)

T = TypeVar("T")

# DNS-1123 subdomain, the rule Kubernetes applies to node names.
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DURATION = re.compile(r"^(?P<value>\d+)(?P<unit>s|m|h)?$")
_PERCENT = re.compile(r"^(?P<value>-?\d+)%$")

_TOP_KEYS = ("cluster", "target", "control_plane_version", "pins", "nodes", "policies", "scope")
_SCOPE_KEYS = ("only", "workers", "selector")
_NODE_KEYS = ("name", "role", "kubelet", "control_plane", "os", "zone", "labels")
_POLICY_KEYS = (
    "max_unavailable",
    "worker_strategy",
    "drain",
    "certificate_renewal",
    "etcd_upgrade",
    "etcd_snapshot",
    "stop_apiserver_before_etcd_upgrade",
    "apiserver_stop_wait_seconds",
    "upgrade_configuration",
    "hooks",
    "retries",
    "ready_timeout",
    "agent_timeout",
    "api_outage_tolerance",
    "reapply",
    "max_failed_workers",
    "prepare_ahead",
    "canary",
    "gate_every",
    "gate_timeout",
    "on_gate_failure",
    "pools",
    "windows",
    "gates",
    "notify",
)
_NOTIFY_KEYS = ("url", "events")
_GATE_KEYS = ("name", "command", "prometheus")
_PROMETHEUS_KEYS = ("url", "query", "below", "above")
_WINDOW_KEYS = ("days", "start", "end", "timezone")
_POOL_KEYS = ("name", "selector", "max_unavailable")
_DRAIN_KEYS = (
    "timeout",
    "grace_period",
    "delete_emptydir_data",
    "pod_selector",
    "on_pdb_block",
    "skip_for_patch",
)
_HOOK_KEYS = ("after_first_control_plane", "before_drain", "after_node")
_RETRY_KEYS = ("attempts", "backoff_seconds")


MAX_INPUT_BYTES = 8 * 2**20  # a campaign or listing file: read whole, then built many times over


def read_input_file(path: str | Path, what: str) -> str:
    """The UTF-8 text of an operator's input file ("-": standard input), read up to
    MAX_INPUT_BYTES and not to the end (a pipe or a device may have none); InvalidInput in one
    line naming the file otherwise."""
    file = Path(path)
    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with file.open("rb") as stream:
                data = stream.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise InvalidInput(f"{file}: larger than {MAX_INPUT_BYTES // 2**20} MiB, the most a {what} file "
                               "may be (5,000 nodes listed by name take well under 1 MiB): is this "
                               "the right file?")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{file}: no such {what} file") from None
    except OSError as error:
        raise InvalidInput(f"{file}: cannot read {what} file: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{file}: {not_utf8(error)}; save the {what} file as UTF-8") from None


def load_campaign(path: str | Path) -> Campaign:
    """Load and validate a campaign file. Raises InvalidInput with a one-line message."""
    text = read_input_file(path, "campaign")
    return parse_campaign(text, source=str(Path(path)))


@functools.lru_cache(maxsize=1)
def _strict_loader() -> type:
    """A YAML loader that refuses duplicate keys, which plain YAML silently overwrites. Made on
    first use: agents validate campaigns from the record (campaign_from_dict) and have no YAML."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def parse_campaign(text: str, source: str = "<campaign>") -> Campaign:
    import yaml

    try:
        document = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise InvalidInput(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:  # the reader recurses once per level of [ or {
        raise InvalidInput(f"{source}: nested too deep to read; a campaign file is a few levels deep") from None
    return _CampaignReader(source).read(document)


def campaign_from_dict(document: dict[str, Any], source: str) -> Campaign:
    """The campaign stored in a record (`campaign_to_dict`'s form), validated by the same
    rules as a file, without going through YAML text."""
    return _CampaignReader(source).read(document)


class _CampaignReader:
    def __init__(self, source: str) -> None:
        self.source = source

    # -- helpers ---------------------------------------------------------------------------
    def fail(self, where: str, message: str) -> InvalidInput:
        return InvalidInput(f"{self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_kind(value)}")
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                suggestion = f'; did you mean "{hint[0]}"?' if hint else f"; allowed: {', '.join(allowed)}"
                raise self.fail(_join(where, str(key)), "unknown key" + suggestion)
        return value

    def typed(self, value: Any, where: str, kind: type[T], what: str) -> T:
        # bool is an int in Python; a YAML `yes` must not pass as a count.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(where, f"expected {what}, got {_kind(value)} {value!r}")
        return value

    def host_file(self, value: Any, where: str) -> str:
        """An absolute path on the nodes: kubeadm would read a relative one from wherever the
        agent happens to run."""
        path = self.typed(value, where, str, "a file path")
        if not path.startswith("/") or any(c in path for c in "\0\n\r"):
            raise self.fail(where, f"expected an absolute path on the nodes, like /etc/kubernetes/upgrade.yaml, got {path!r}")
        return path

    def parse(self, value: Any, where: str, parser: Callable[[Any], T]) -> T:
        try:
            return parser(value)
        except InvalidInput as error:
            raise self.fail(where, str(error)) from None

    def choice(self, value: Any, where: str, enum: type) -> Any:
        options = [member.value for member in enum]
        if value not in options:
            raise self.fail(where, f"{value!r} is not one of {', '.join(options)}")
        return enum(value)

    def duration(self, value: Any, where: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        match = _DURATION.match(str(value)) if isinstance(value, str) else None
        if match is None:
            raise self.fail(where, f"expected seconds or a duration like 90s, 5m, 1h, got {value!r}")
        return int(match["value"]) * {"s": 1, "m": 60, "h": 3600, None: 1}[match["unit"]]

    # -- sections --------------------------------------------------------------------------
    def read(self, document: Any) -> Campaign:
        if document is None:
            raise InvalidInput(f"{self.source}: the campaign file is empty")
        top = self.mapping(document, "campaign", _TOP_KEYS)
        for required in ("cluster", "target"):
            if required not in top:
                raise self.fail(required, "missing; it is required")
        cluster = self.typed(top["cluster"], "cluster", str, "a cluster name")
        if not _DNS1123_SUBDOMAIN.match(cluster):
            raise self.fail("cluster", f"{cluster!r} is not a valid name (lowercase DNS-1123)")
        target = self.parse(top["target"], "target", parse_version_spec)
        control_plane_version = None
        if top.get("control_plane_version") is not None:
            control_plane_version = self.parse(
                top["control_plane_version"], "control_plane_version", _exact
            )
        pins = self.pins(_section(top, "pins"))
        nodes = self.nodes(top["nodes"]) if top.get("nodes") is not None else None
        policies = self.policies(_section(top, "policies"))
        return Campaign(
            cluster=cluster,
            target=target,
            nodes=nodes,
            control_plane_version=control_plane_version,
            pins=pins,
            policies=policies,
            source=self.source,
            scope=self.scope(_section(top, "scope")),
        )

    def scope(self, value: Any) -> Scope:
        from kubeupgrade.kube.selectors import SelectorError, label_selector

        raw = self.mapping(value, "scope", _SCOPE_KEYS)
        only = raw.get("only")
        if only not in (None, "control-planes"):
            raise self.fail("scope.only", f"{only!r} is not control-planes")
        workers = None
        if raw.get("workers") is not None:
            workers = raw["workers"]
            if not isinstance(workers, list) or not workers or not all(
                    isinstance(w, str) and _DNS1123_SUBDOMAIN.match(w) for w in workers):
                raise self.fail("scope.workers", f"expected a list of node names, got {workers!r}")
            workers = tuple(workers)
        selector = raw.get("selector")
        if selector is not None:
            selector = self.typed(selector, "scope.selector", str, "a label selector such as pool=a")
            try:
                label_selector(selector)
            except SelectorError as error:
                raise self.fail("scope.selector", str(error)) from None
        if only and (workers is not None or selector):
            raise self.fail("scope", "only: control-planes upgrades no worker; drop workers/selector")
        return Scope(only_control_planes=bool(only), workers=workers, selector=selector)

    def pins(self, value: Any) -> tuple[tuple[MinorVersion, KubeVersion], ...]:
        if not isinstance(value, dict):
            raise self.fail("pins", f"expected a mapping of minor to version, got {_kind(value)}")
        pins = []
        for minor_text, version_text in value.items():
            where = f"pins.{minor_text}"
            minor = self.parse(minor_text, where, parse_minor)
            version = self.parse(version_text, where, _exact)
            if version.minor_version != minor:
                raise self.fail(where, f"{version.plain} is not a {minor.plain} release")
            pins.append((minor, version))
        return tuple(pins)

    def nodes(self, value: Any) -> tuple[NodeSpec, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("nodes", "expected a non-empty list of nodes")
        nodes: list[NodeSpec] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            where = f"nodes[{index}]"
            raw = self.mapping(item, where, _NODE_KEYS)
            if "name" not in raw:
                raise self.fail(_join(where, "name"), "missing; every node needs a name")
            name = self.typed(raw["name"], _join(where, "name"), str, "a node name")
            if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
                raise self.fail(
                    _join(where, "name"),
                    f"{name!r} is not a valid node name (DNS-1123 subdomain: lowercase letters, "
                    "digits, '-' and '.', starting and ending alphanumeric)",
                )
            if name in seen:
                raise self.fail(
                    _join(where, "name"), f"duplicate node {name!r} (first at nodes[{seen[name]}])"
                )
            seen[name] = index
            if "role" not in raw:
                raise self.fail(_join(where, "role"), "missing; use control-plane or worker")
            labels = raw.get("labels") or {}
            if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
            ):
                raise self.fail(_join(where, "labels"), "expected a mapping of strings to strings")
            if raw.get("os") == "windows" and raw.get("role") == "control-plane":
                raise self.fail(_join(where, "os"), "a control plane cannot run on Windows; only "
                                "workers can")
            nodes.append(
                NodeSpec(
                    name=name,
                    role=self.choice(raw["role"], _join(where, "role"), Role),
                    kubelet=self.optional_version(raw, "kubelet", where),
                    control_plane=self.optional_version(raw, "control_plane", where),
                    os=self.choice(raw["os"], _join(where, "os"), OsFamily) if "os" in raw else None,
                    zone=self.typed(raw["zone"], _join(where, "zone"), str, "a zone name")
                    if raw.get("zone") is not None
                    else None,
                    labels=tuple(sorted(labels.items())),
                )
            )
        if not any(node.is_control_plane for node in nodes):
            raise self.fail("nodes", "no control-plane node; at least one node needs role: control-plane")
        for index, node in enumerate(nodes):
            if node.control_plane is not None and not node.is_control_plane:
                raise self.fail(f"nodes[{index}].control_plane", "only control-plane nodes have one")
        return tuple(nodes)

    def optional_version(self, raw: dict[str, Any], key: str, where: str) -> KubeVersion | None:
        if raw.get(key) is None:
            return None
        return self.parse(raw[key], _join(where, key), _exact)

    def policies(self, value: Any) -> Policies:
        raw = self.mapping(value, "policies", _POLICY_KEYS)
        defaults = Policies()
        return Policies(
            max_unavailable=self.max_unavailable(raw["max_unavailable"])
            if "max_unavailable" in raw
            else defaults.max_unavailable,
            worker_strategy=self.choice(
                raw.get("worker_strategy", defaults.worker_strategy.value),
                "policies.worker_strategy",
                WorkerStrategy,
            ),
            drain=self.drain(_section(raw, "drain")),
            certificate_renewal=self.flag(raw, "certificate_renewal", defaults.certificate_renewal),
            etcd_upgrade=self.flag(raw, "etcd_upgrade", defaults.etcd_upgrade),
            etcd_snapshot=self.flag(raw, "etcd_snapshot", defaults.etcd_snapshot),
            stop_apiserver_before_etcd_upgrade=self.flag(
                raw, "stop_apiserver_before_etcd_upgrade", defaults.stop_apiserver_before_etcd_upgrade
            ),
            apiserver_stop_wait_seconds=self.duration(
                raw.get("apiserver_stop_wait_seconds", defaults.apiserver_stop_wait_seconds),
                "policies.apiserver_stop_wait_seconds",
            ),
            upgrade_configuration=self.host_file(raw["upgrade_configuration"], "policies.upgrade_configuration")
            if raw.get("upgrade_configuration") is not None
            else None,
            hooks=self.hooks(_section(raw, "hooks")),
            retries=self.retries(_section(raw, "retries")),
            ready_timeout_seconds=self.duration(
                raw.get("ready_timeout", defaults.ready_timeout_seconds), "policies.ready_timeout"),
            agent_timeout_seconds=self.duration(
                raw.get("agent_timeout", defaults.agent_timeout_seconds), "policies.agent_timeout"),
            api_outage_tolerance_seconds=self.duration(
                raw.get("api_outage_tolerance", defaults.api_outage_tolerance_seconds),
                "policies.api_outage_tolerance"),
            reapply=self.flag(raw, "reapply", defaults.reapply),
            max_failed_workers=self.count(raw, "max_failed_workers", defaults.max_failed_workers),
            prepare_ahead=self.count(raw, "prepare_ahead", defaults.prepare_ahead),
            canary=self.count(raw, "canary", defaults.canary),
            gate_every=self.count(raw, "gate_every", defaults.gate_every),
            gate_timeout_seconds=self.duration(
                raw.get("gate_timeout", defaults.gate_timeout_seconds), "policies.gate_timeout"),
            on_gate_failure=self.choice(raw.get("on_gate_failure", defaults.on_gate_failure.value),
                                        "policies.on_gate_failure", GateFailure),
            pools=self.pools(raw.get("pools") or []),
            windows=self.windows(raw.get("windows") or []),
            gates=self.gates(raw.get("gates") or []),
            notify=self.notify(raw.get("notify") or []),
        )

    def notify(self, value: Any) -> tuple[Notify, ...]:
        if not isinstance(value, list):
            raise self.fail("policies.notify", "expected a list of {url, events}")
        targets = []
        for index, item in enumerate(value):
            where = f"policies.notify[{index}]"
            raw = self.mapping(item, where, _NOTIFY_KEYS)
            url = self.typed(raw.get("url"), f"{where}.url", str, "an http(s) URL")
            if not url.startswith(("http://", "https://")):
                raise self.fail(f"{where}.url", f"expected an http(s) URL, got {url!r}")
            events = raw.get("events", list(NOTIFY_EVENTS))
            if not isinstance(events, list) or not events or not all(e in NOTIFY_EVENTS for e in events):
                raise self.fail(f"{where}.events", f"expected a list of {', '.join(NOTIFY_EVENTS)}, "
                                f"got {events!r}")
            targets.append(Notify(url, frozenset(events)))
        return tuple(targets)

    def gates(self, value: Any) -> tuple[UserGate, ...]:
        if not isinstance(value, list):
            raise self.fail("policies.gates", "expected a list of {name, command | prometheus}")
        gates, names = [], set()
        for index, item in enumerate(value):
            where = f"policies.gates[{index}]"
            raw = self.mapping(item, where, _GATE_KEYS)
            name = self.typed(raw.get("name"), f"{where}.name", str, "a name")
            if name in names:
                raise self.fail(f"{where}.name", f"gate {name!r} is named twice")
            names.add(name)
            if ("command" in raw) == ("prometheus" in raw):
                raise self.fail(where, "give exactly one of command (an argv list) or prometheus")
            if "command" in raw:
                (command,) = self.argv_list([raw["command"]], f"{where}.command")
                gates.append(UserGate(name, command=command))
                continue
            check = self.mapping(raw["prometheus"], f"{where}.prometheus", _PROMETHEUS_KEYS)
            url = self.typed(check.get("url"), f"{where}.prometheus.url", str, "an http(s) URL")
            if not url.startswith(("http://", "https://")):
                raise self.fail(f"{where}.prometheus.url", f"expected an http(s) URL, got {url!r}")
            query = self.typed(check.get("query"), f"{where}.prometheus.query", str, "a PromQL query")
            bounds = {}
            for key in ("below", "above"):
                if check.get(key) is not None:
                    bound = check[key]
                    if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                        raise self.fail(f"{where}.prometheus.{key}", f"expected a number, got {bound!r}")
                    bounds[key] = float(bound)
            if not bounds:
                raise self.fail(f"{where}.prometheus", "give a threshold: below and/or above")
            gates.append(UserGate(name, prometheus=PrometheusCheck(url, query, **bounds)))
        return tuple(gates)

    def windows(self, value: Any) -> tuple[Window, ...]:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        from kubeupgrade.planning.windows import parse_time

        if not isinstance(value, list):
            raise self.fail("policies.windows", "expected a list of {days, start, end, timezone}")
        windows = []
        for index, item in enumerate(value):
            where = f"policies.windows[{index}]"
            raw = self.mapping(item, where, _WINDOW_KEYS)
            for key in _WINDOW_KEYS:
                if key not in raw:
                    raise self.fail(f"{where}.{key}", "is required")
            days = raw["days"]
            if not isinstance(days, list) or not days or not all(d in DAYS for d in days):
                raise self.fail(f"{where}.days", f"expected a list of {', '.join(DAYS)}, got {days!r}")
            times = []
            for key in ("start", "end"):
                try:
                    times.append(parse_time(str(raw[key])))
                except ValueError as error:
                    raise self.fail(f"{where}.{key}", str(error)) from None
            if times[0] == times[1]:
                raise self.fail(f"{where}.end", "equals start: the window would never open")
            zone = self.typed(raw["timezone"], f"{where}.timezone", str, "an IANA time zone")
            try:
                ZoneInfo(zone)
            # A directory of the zone database ("America") or an over-long name fails as OSError.
            except (ZoneInfoNotFoundError, ValueError, OSError):
                raise self.fail(f"{where}.timezone", f"unknown time zone {zone!r} (an IANA name such as "
                                "Europe/Berlin or UTC)") from None
            windows.append(Window(frozenset(DAYS.index(d) for d in days), times[0], times[1], zone))
        return tuple(windows)

    def pools(self, value: Any) -> tuple[Pool, ...]:
        from kubeupgrade.kube.selectors import SelectorError, label_selector

        if not isinstance(value, list):
            raise self.fail("policies.pools", "expected a list of {name, selector, max_unavailable}")
        pools, names = [], set()
        for index, item in enumerate(value):
            where = f"policies.pools[{index}]"
            raw = self.mapping(item, where, _POOL_KEYS)
            for key in _POOL_KEYS:
                if key not in raw:
                    raise self.fail(f"{where}.{key}", "is required")
            name = self.typed(raw["name"], f"{where}.name", str, "a name")
            selector = self.typed(raw["selector"], f"{where}.selector", str, "a label selector such as pool=a")
            if name in names:
                raise self.fail(f"{where}.name", f"pool {name!r} is named twice")
            try:
                label_selector(selector)
            except SelectorError as error:
                raise self.fail(f"{where}.selector", str(error)) from None
            if not selector.strip():
                raise self.fail(f"{where}.selector", "is empty: it would select every worker")
            names.add(name)
            pools.append(Pool(name, selector, self.max_unavailable(raw["max_unavailable"],
                                                                   f"{where}.max_unavailable")))
        return tuple(pools)

    def count(self, raw: dict[str, Any], key: str, default: int) -> int:
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.fail(f"policies.{key}", f"expected a whole number, 0 or more, got {value!r}")
        return value

    def flag(self, raw: dict[str, Any], key: str, default: bool) -> bool:
        return self.typed(raw.get(key, default), f"policies.{key}", bool, "true or false")

    def max_unavailable(self, value: Any, where: str = "policies.max_unavailable") -> MaxUnavailable:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise self.fail(where, f"{value} must be at least 1")
            return MaxUnavailable(count=value)
        match = _PERCENT.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise self.fail(where, f"expected a count like 2 or a percentage like 25%, got {value!r}")
        percent = int(match["value"])
        if not 1 <= percent <= 100:
            raise self.fail(where, f"{value} is outside 1%-100%")
        return MaxUnavailable(percent=percent)

    def drain(self, value: Any) -> DrainPolicy:
        raw = self.mapping(value, "policies.drain", _DRAIN_KEYS)
        defaults = DrainPolicy()
        grace = raw.get("grace_period")
        selector = raw.get("pod_selector")
        return DrainPolicy(
            timeout_seconds=self.duration(raw.get("timeout", defaults.timeout_seconds), "policies.drain.timeout"),
            grace_period_seconds=self.duration(grace, "policies.drain.grace_period")
            if grace is not None
            else None,
            delete_emptydir_data=self.typed(
                raw.get("delete_emptydir_data", defaults.delete_emptydir_data),
                "policies.drain.delete_emptydir_data",
                bool,
                "true or false",
            ),
            pod_selector=self.typed(selector, "policies.drain.pod_selector", str, "a label selector")
            if selector is not None
            else None,
            on_pdb_block=self.choice(
                raw.get("on_pdb_block", defaults.on_pdb_block.value),
                "policies.drain.on_pdb_block",
                OnPdbBlock,
            ),
            skip_for_patch=self.typed(
                raw.get("skip_for_patch", defaults.skip_for_patch),
                "policies.drain.skip_for_patch",
                bool,
                "true or false",
            ),
        )

    def hooks(self, value: Any) -> Hooks:
        raw = self.mapping(value, "policies.hooks", _HOOK_KEYS)
        return Hooks(**{key: self.argv_list(raw.get(key) or [], f"policies.hooks.{key}") for key in _HOOK_KEYS})

    def argv_list(self, value: Any, where: str) -> tuple[Argv, ...]:
        if not isinstance(value, list):
            raise self.fail(where, "expected a list of commands, each a list of argv strings")
        commands = []
        for index, command in enumerate(value):
            item_where = f"{where}[{index}]"
            if isinstance(command, str):
                raise self.fail(
                    item_where,
                    f"{command!r} is a shell string; write it as an argv list, e.g. "
                    f"{command.split()!r}",
                )
            if not isinstance(command, list) or not command or not all(
                isinstance(arg, str) and arg for arg in command
            ):
                raise self.fail(item_where, "expected a non-empty list of non-empty argv strings")
            commands.append(tuple(command))
        return tuple(commands)

    def retries(self, value: Any) -> RetryPolicy:
        raw = self.mapping(value, "policies.retries", _RETRY_KEYS)
        defaults = RetryPolicy()
        attempts = self.typed(raw.get("attempts", defaults.attempts), "policies.retries.attempts", int, "a whole number")
        if attempts < 1:
            raise self.fail("policies.retries.attempts", f"{attempts} must be at least 1")
        backoff = raw.get("backoff_seconds", defaults.backoff_seconds)
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 0:
            raise self.fail("policies.retries.backoff_seconds", f"expected a non-negative number, got {backoff!r}")
        return RetryPolicy(attempts=attempts, backoff_seconds=float(backoff))


def _section(raw: dict[str, Any], key: str) -> Any:
    """A nested section; an empty `key:` in YAML means "all defaults", anything else is checked."""
    value = raw.get(key)
    return {} if value is None else value


def _exact(text: Any) -> KubeVersion:
    spec = parse_version_spec(text)
    if isinstance(spec, MinorVersion):
        return parse_version(text)  # raises the "minor, not exact" message
    return spec


def _join(where: str, key: str) -> str:
    return key if where == "campaign" else f"{where}.{key}"


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def campaign_to_dict(campaign: Campaign) -> dict[str, Any]:
    """The campaign in campaign-file form; `parse_campaign` of its YAML gives it back."""
    policies = campaign.policies
    drain = policies.drain
    scope = campaign.scope
    document: dict[str, Any] = {
        "cluster": campaign.cluster,
        "target": campaign.target.raw or campaign.target.plain,
        "policies": {
            "max_unavailable": str(policies.max_unavailable) if policies.max_unavailable.percent
            is not None else policies.max_unavailable.count,
            "worker_strategy": policies.worker_strategy.value,
            "drain": {"timeout": drain.timeout_seconds,
                      "delete_emptydir_data": drain.delete_emptydir_data,
                      "on_pdb_block": drain.on_pdb_block.value,
                      "skip_for_patch": drain.skip_for_patch},
            "certificate_renewal": policies.certificate_renewal,
            "etcd_upgrade": policies.etcd_upgrade,
            "etcd_snapshot": policies.etcd_snapshot,
            "stop_apiserver_before_etcd_upgrade": policies.stop_apiserver_before_etcd_upgrade,
            "apiserver_stop_wait_seconds": policies.apiserver_stop_wait_seconds,
            "hooks": {"after_first_control_plane": [list(a) for a in policies.hooks.after_first_control_plane],
                      "before_drain": [list(a) for a in policies.hooks.before_drain],
                      "after_node": [list(a) for a in policies.hooks.after_node]},
            "retries": {"attempts": policies.retries.attempts,
                        "backoff_seconds": policies.retries.backoff_seconds},
            "ready_timeout": policies.ready_timeout_seconds,
            "agent_timeout": policies.agent_timeout_seconds,
            "api_outage_tolerance": policies.api_outage_tolerance_seconds,
            "reapply": policies.reapply,
            "max_failed_workers": policies.max_failed_workers,
            "prepare_ahead": policies.prepare_ahead,
            "canary": policies.canary,
            "gate_every": policies.gate_every,
            "gate_timeout": policies.gate_timeout_seconds,
            "on_gate_failure": policies.on_gate_failure.value,
            "notify": [{"url": n.url, "events": sorted(n.events)} for n in policies.notify],
            "gates": [{"name": g.name, "command": list(g.command)} if g.command else
                      {"name": g.name, "prometheus": {k: v for k, v in vars(g.prometheus).items()
                                                      if v is not None}}
                      for g in policies.gates],
            "windows": [{"days": [DAYS[d] for d in sorted(w.days)], "start": w.start.isoformat(),
                         "end": w.end.isoformat(), "timezone": w.timezone} for w in policies.windows],
            "pools": [{"name": pool.name, "selector": pool.selector,
                       "max_unavailable": str(pool.max_unavailable) if pool.max_unavailable.percent
                       is not None else pool.max_unavailable.count} for pool in policies.pools],
        },
    }
    if drain.grace_period_seconds is not None:
        document["policies"]["drain"]["grace_period"] = drain.grace_period_seconds
    if not scope.whole_cluster:
        document["scope"] = {k: v for k, v in (("only", "control-planes" if scope.only_control_planes else None),
                                              ("workers", list(scope.workers) if scope.workers is not None else None),
                                              ("selector", scope.selector)) if v is not None}
    if drain.pod_selector:
        document["policies"]["drain"]["pod_selector"] = drain.pod_selector
    if policies.upgrade_configuration:
        document["policies"]["upgrade_configuration"] = policies.upgrade_configuration
    if campaign.control_plane_version is not None:
        document["control_plane_version"] = campaign.control_plane_version.plain
    if campaign.pins:
        document["pins"] = {minor.plain: version.plain for minor, version in campaign.pins}
    if campaign.nodes is not None:
        document["nodes"] = [_node_to_dict(node) for node in campaign.nodes]
    return document


def _node_to_dict(node: NodeSpec) -> dict[str, Any]:
    item: dict[str, Any] = {"name": node.name, "role": node.role.value}
    if node.kubelet is not None:
        item["kubelet"] = node.kubelet.plain
    if node.control_plane is not None:
        item["control_plane"] = node.control_plane.plain
    if node.os is not None:
        item["os"] = node.os.value
    if node.zone is not None:
        item["zone"] = node.zone
    if node.labels:
        item["labels"] = dict(node.labels)
    return item
