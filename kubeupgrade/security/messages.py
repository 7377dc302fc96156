"""Signed Celery messages: the second layer after signed campaigns.

Every task is signed by its sender and verified by its receiver against a directory of trusted
certificates (kubeupgrade.security.envelope), so a broker credential alone cannot put a task on
any queue: an unsigned or wrongly signed message is refused before it is decoded, and nothing
runs. (Control messages are signed the same way, but no kubeupgrade worker takes remote control
at all: they do nothing whoever signs them.)

Who signs: the controller (the dispatcher's chains, cluster tasks), the agents (a chain's next
link is published by the worker that ran the link before it) and the operator's CLI (`abort`
sends restores and releases). Each has its own Ed25519 key and self-signed certificate (RSA
keys made by earlier versions still work, at twenty times the cost of a signature); every
receiver trusts the three certificates. Results and Flower's task events stay plain JSON: the
campaign record, not a result, is what the engine trusts, and Flower reads events with no key.

Settings (all three, or none): KUBEUPGRADE_MESSAGE_KEY, KUBEUPGRADE_MESSAGE_CERT and
KUBEUPGRADE_MESSAGE_TRUST (a directory of *.pem). `kubeupgrade keys messages` makes them.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from kubeupgrade.errors import InvalidInput
from kubeupgrade.security.private_files import write_new_private

KEY_ENV = "KUBEUPGRADE_MESSAGE_KEY"
CERT_ENV = "KUBEUPGRADE_MESSAGE_CERT"
TRUST_ENV = "KUBEUPGRADE_MESSAGE_TRUST"
ROLES = ("controller", "agent", "operator")
# For a child process that must hold no identity, whatever its parent's environment has.
NO_IDENTITY = dict.fromkeys((KEY_ENV, CERT_ENV, TRUST_ENV), "")
VALID_DAYS = 825  # then `kubeupgrade keys messages` again: an expired certificate verifies nothing


@dataclass(frozen=True)
class MessageIdentity:
    key: Path
    cert: Path
    trust: Path

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> MessageIdentity | None:
        """The identity the environment names; None if it names none; InvalidInput if it names
        part of one or a file that is not there."""
        env = dict(os.environ) if env is None else env
        values = {name: env.get(name, "") for name in (KEY_ENV, CERT_ENV, TRUST_ENV)}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise InvalidInput(f"message signing needs {', '.join(missing)} as well "
                               f"(`kubeupgrade keys messages DIR` makes the files)")
        identity = cls(Path(values[KEY_ENV]), Path(values[CERT_ENV]), Path(values[TRUST_ENV]))
        for name, path in ((KEY_ENV, identity.key), (CERT_ENV, identity.cert)):
            if not path.is_file():
                raise InvalidInput(f"{name}={path}: no such file")
        if not identity.trust.is_dir() or not any(identity.trust.glob("*.pem")):
            raise InvalidInput(f"{TRUST_ENV}={identity.trust}: not a directory of trusted *.pem "
                               "certificates")
        return identity

    def env(self) -> dict[str, str]:
        return {KEY_ENV: str(self.key), CERT_ENV: str(self.cert), TRUST_ENV: str(self.trust)}


def sign_messages(app: object, identity: MessageIdentity) -> None:
    """Make `app` sign what it sends with `identity` and accept only what a trusted
    certificate signed (tasks and control messages; results and events stay JSON).
    The serializer is the process's: every app of the process signs as `identity`."""
    from kubeupgrade.security.envelope import SERIALIZER, Envelope, install

    install(Envelope.load(identity.key, identity.cert, identity.trust))
    app.conf.update(task_serializer=SERIALIZER, accept_content=[SERIALIZER])  # type: ignore[attr-defined]


def create_identities(directory: Path) -> dict[str, MessageIdentity]:
    """Ed25519 keys (mode 0600) and self-signed certificates for each role in `directory`, and
    `directory/trusted/` holding the three certificates. Refuses to overwrite."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    trusted = directory / "trusted"
    trusted.mkdir(exist_ok=True)
    existing = [directory / f"{role}.key" for role in ROLES if (directory / f"{role}.key").exists()]
    if existing:
        raise InvalidInput(f"{existing[0]}: a message key exists already; choose another directory")
    now = datetime.datetime.now(datetime.timezone.utc)
    made = {}
    for role in ROLES:
        key = ed25519.Ed25519PrivateKey.generate()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kubeupgrade {role}")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                .sign(key, None))  # Ed25519 hashes inside
        key_path, cert_path = directory / f"{role}.key", directory / f"{role}.pem"
        write_new_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
        pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path.write_bytes(pem)
        (trusted / f"{role}.pem").write_bytes(pem)
        made[role] = MessageIdentity(key_path, cert_path, trusted)
    return made
