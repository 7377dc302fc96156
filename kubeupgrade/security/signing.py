"""Operator signatures on campaigns (Ed25519).

An operator's key signs the canonical form of what can reach a host: the campaign's id, its
cluster, and the whole campaign document (versions, packages policy, hooks, the kubeadm
configuration path, drain settings). An agent runs a host phase only for a campaign whose
signature verifies against a public key in its trusted directory (root-owned, default
/etc/kubeupgrade/trusted): write access to Redis alone no longer makes anyone root on a node.

Canonical form: JSON with sorted keys, no whitespace, UTF-8. Key id: the first 16 hex digits of
the SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kubeupgrade.errors import InvalidInput, PermanentError
from kubeupgrade.security.private_files import write_new_private

DEFAULT_KEY = Path("~/.config/kubeupgrade/operator.key")
KEY_ENV = "KUBEUPGRADE_SIGNING_KEY"
TRUSTED_DIR = "/etc/kubeupgrade/trusted"


class Unauthorized(PermanentError):
    """A campaign no trusted operator signed as it is now: nothing runs for it."""


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys, no whitespace, UTF-8: one text for one value, whoever wrote it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical(campaign_id: str, cluster: str, campaign: dict[str, Any]) -> bytes:
    return canonical_json({"id": campaign_id, "cluster": cluster, "campaign": campaign})


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    id: str


def create_key(directory: Path, name: str = "operator") -> KeyPair:
    """A new Ed25519 key pair: NAME.key (mode 0600) and NAME.pub. Refuses to overwrite."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    if private.exists():
        raise InvalidInput(f"{private}: a key exists already; choose another --name or directory")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_new_private(private, pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyPair(private, public, key_id(key.public_key()))


def signing_key_path(explicit: str | Path | None = None) -> Path:
    """--key, else $KUBEUPGRADE_SIGNING_KEY, else ~/.config/kubeupgrade/operator.key."""
    chosen = explicit or os.environ.get(KEY_ENV) or DEFAULT_KEY
    return Path(chosen).expanduser()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no signing key; create one with `kubeupgrade keys create` and "
                           f"install its .pub in {TRUSTED_DIR} on every node") from None
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"{path}: not an unencrypted Ed25519 private key in PEM ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path}: not an Ed25519 key (kubeupgrade signs with Ed25519)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An operator's public key (NAME.pub); InvalidInput naming the file otherwise."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path}: not a PEM public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{path}: not an Ed25519 public key (kubeupgrade signs with Ed25519)")
    return key


def sign(key: Ed25519PrivateKey, campaign_id: str, cluster: str,
         campaign: dict[str, Any]) -> dict[str, str]:
    signature = key.sign(canonical(campaign_id, cluster, campaign))
    return {"key": key_id(key.public_key()), "value": base64.b64encode(signature).decode()}


def trusted_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """key id -> public key, from every *.pub file in `directory`; unreadable files are skipped."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(directory.glob("*.pub")) if directory.is_dir() else []:
        try:
            key = load_public_key(path)
        except InvalidInput:
            continue
        keys[key_id(key)] = key
    return keys


def verify(trusted: dict[str, Ed25519PublicKey], directory: Path, doc: dict[str, Any],
           signed_text: bytes | None = None) -> str:
    """The id of the trusted key that signed this campaign record as it is now; otherwise
    Unauthorized, saying why. `signed_text`: canonical() of `doc`, if the caller has it."""
    signature = doc.get("signature")
    if not isinstance(signature, dict) or not isinstance(signature.get("value"), str):
        raise Unauthorized(f"campaign {doc.get('id')} is not signed by an operator; nothing run "
                           "(submit it with a key this node trusts)")
    if not trusted:
        raise Unauthorized(f"no trusted operator key in {directory}; nothing run (install the "
                           "operator's .pub there)")
    public = trusted.get(str(signature.get("key")))
    if public is None:
        raise Unauthorized(f"campaign {doc.get('id')} is signed by key {signature.get('key')}, "
                           f"which {directory} does not hold; nothing run")
    try:
        public.verify(base64.b64decode(signature["value"], validate=True),
                      signed_text or canonical(str(doc.get("id")), str(doc.get("cluster")),
                                               doc.get("campaign") or {}))
    except (InvalidSignature, ValueError):
        raise Unauthorized(f"campaign {doc.get('id')} does not match its signature (altered after "
                           "it was signed); nothing run") from None
    return str(signature["key"])
