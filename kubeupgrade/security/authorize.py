"""The agent's check before any host phase: the campaign is signed by an operator this node
trusts, exactly as it is stored now, and what the record says this hop installs stays within
what the operator signed (the hop's target and resolved version are written by the controller,
not signed: they may not go past the signed target)."""

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


def authorize(doc: dict[str, Any], hop: int, directory: Path | None = None,
              signed_text: bytes | None = None) -> str:
    """The signing key's id, or Unauthorized naming why nothing may run. `signed_text`: the
    document's canonical form, if the caller already has it."""
    directory = directory or trusted_dir()
    signer = verify(trusted_keys(directory), directory, doc, signed_text)
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
