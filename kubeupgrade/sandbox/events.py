"""Events as the API server keeps them: one object, served as core v1 `Event` and as
`events.k8s.io/v1` `Event` with the fields renamed as the real conversion does. Pure."""

from __future__ import annotations

from typing import Any

# events.k8s.io/v1 field -> core v1 field
_RENAMED = {"regarding": "involvedObject", "note": "message", "deprecatedSource": "source",
            "deprecatedFirstTimestamp": "firstTimestamp", "deprecatedLastTimestamp": "lastTimestamp",
            "deprecatedCount": "count", "reportingController": "reportingComponent"}
_SHARED = ("metadata", "eventTime", "series", "reportingInstance", "action", "reason", "related", "type")


def to_events_v1(core: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    out.update({key: core[key] for key in _SHARED if key in core})
    out.update({new: core[old] for new, old in _RENAMED.items() if old in core})
    return out


def from_events_v1(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "v1"}
    out.update({key: event[key] for key in _SHARED if key in event})
    out.update({old: event[new] for new, old in _RENAMED.items() if new in event})
    return out
