"""The agent's check before any host phase: the campaign is signed by an operator this node
trusts, exactly as it is stored now; what the record says this hop installs stays within
what the operator signed (the hop's target and resolved version are written by the controller,
not signed: they may not go past the signed target); and this node is one the signed campaign
upgrades (the record's entries are written by the controller, not signed: an entry for a node
the operator left out must not make its agent act)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubeupgrade.model.versions import KubeVersion, parse_version_spec
from kubeupgrade.security.signing import TRUSTED_DIR, Unauthorized, trusted_keys, verify

TRUSTED_ENV = "KUBEUPGRADE_TRUSTED"


def trusted_dir() -> Path:
    """--trusted-keys of the agent, else /etc/kubeupgrade/trusted under the host root."""
    explicit = os.environ.get(TRUSTED_ENV)
    if explicit:
        return Path(explicit)
    from kubeupgrade.workflow.agent_identity import current

    return current().host_root / TRUSTED_DIR.lstrip("/")


# A kubeadm control plane runs its API server as a static pod: the manifest is on the host
# itself, whatever the record (written by the controller) says the node's role is.
CONTROL_PLANE_MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"


def authorize(doc: dict[str, Any], hop: int, directory: Path | None = None,
              signed_text: bytes | None = None, node: str | None = None,
              host_root: Path | None = None) -> str:
    """The signing key's id, or Unauthorized naming why nothing may run. `signed_text`: the
    document's canonical form, if the caller already has it. `node`: the node this agent
    serves, checked against the signed scope (`host_root`: where its files are; default the
    agent's)."""
    directory = directory or trusted_dir()
    signer = verify(trusted_keys(directory), directory, doc, signed_text)
    if node is not None:
        refuse_outside_signed_scope(doc, node, host_root or _host_root())
    try:
        signed = parse_version_spec(str(doc["campaign"]["target"]))
    except (KeyError, TypeError, ValueError):
        raise Unauthorized(f"campaign {doc.get('id')}: its signed target cannot be read") from None
    stage = doc["hops"][hop] if 0 <= hop < len(doc.get("hops") or []) else {}
    last = hop == len(doc.get("hops") or []) - 1
    for field in ("target", "version"):
        text = stage.get(field)
        if not text:
            continue
        try:
            asked = parse_version_spec(str(text))
        except ValueError:
            raise Unauthorized(f"hop {hop + 1} {field} {text!r} is not a version; nothing run") from None
        beyond = (asked.major != signed.major or asked.minor_version > signed.minor_version
                  or (last and field == "version" and isinstance(signed, KubeVersion)
                      and isinstance(asked, KubeVersion) and asked != signed))
        if beyond:
            raise Unauthorized(f"hop {hop + 1} asks for {text}, beyond the signed target "
                               f"{signed.plain}; nothing run")
    return signer


def _host_root() -> Path:
    from kubeupgrade.workflow.agent_identity import current

    return current().host_root


def refuse_outside_signed_scope(doc: dict[str, Any], node: str, host_root: Path) -> None:
    """Unauthorized unless the signed campaign (already verified) upgrades `node`: a node its
    `nodes` list names, and within its `scope` (control planes are always within it, as the
    planner has them; whether this node is one is read from this host). A label selector
    cannot be judged here (labels live in the API server) and is left to the controller."""
    signed = doc.get("campaign") or {}
    campaign = doc.get("id")
    listed = signed.get("nodes")
    if isinstance(listed, list) and node not in {item.get("name") for item in listed
                                                 if isinstance(item, dict)}:
        raise Unauthorized(f"node {node} is not among the nodes of campaign {campaign} as the "
                           "operator signed it; nothing run")
    scope = signed.get("scope") or {}
    if not isinstance(scope, dict) or not (scope.get("only") or "workers" in scope):
        return
    if (host_root / CONTROL_PLANE_MANIFEST).exists():
        return
    if scope.get("only") == "control-planes":
        raise Unauthorized(f"campaign {campaign} was signed for control planes only and node "
                           f"{node} is not one (no {CONTROL_PLANE_MANIFEST} here); nothing run")
    workers = scope.get("workers")
    if not isinstance(workers, list) or node not in workers:
        raise Unauthorized(f"node {node} is not among the workers campaign {campaign} was signed "
                           "for (scope.workers); nothing run")
