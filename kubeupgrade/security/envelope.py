"""The signed envelope every task and control message travels in: a kombu serializer.

Wire form, UTF-8 text: `<signer>:<signature>:<body>`.
- `body` is the message's JSON, exactly the bytes that were signed: the receiver checks the
  signature before it decodes anything.
- `signer` is the SHA-256 (hex) of the sender's certificate (DER). A receiver verifies with a
  certificate of its trusted directory only, whatever the message claims.
- `signature` is base64 of the signature over `CONTEXT + body`: Ed25519 for the keys
  `kubeupgrade keys messages` makes, RSA-PSS with SHA-256 for RSA keys made by earlier versions.

Why not Celery's `auth` serializer, which did this job before: it signs with RSA only, and an
RSA-3072 signature (0.7 ms on a fast machine, 3.1 ms on a slow one) was the largest single cost
of sending a message; the engine sends about ten per node. Ed25519 signs in 0.04 ms.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from kubeupgrade.errors import InvalidInput

SERIALIZER = "kubeupgrade-signed"
CONTENT_TYPE = "application/x-kubeupgrade-signed"
# Bound into every signature, so that no other signature these keys make (none today) can be
# replayed as a message.
CONTEXT = b"kubeupgrade message v1\x00"
MIN_RSA_BITS = 2048
RENEW = "renew with `kubeupgrade keys messages` into a new directory and roll it out"
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)

# Union, not `|`: agents run on Python 3.9 (tests/e2e/test_agent_python39.py).
PublicKey = Union[ed25519.Ed25519PublicKey, rsa.RSAPublicKey]  # noqa: UP007
PrivateKey = Union[ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey]  # noqa: UP007


class MessageRefused(Exception):  # noqa: N818 - what a worker logs for a message it discards
    """A message that is not a valid envelope from a trusted, unexpired sender."""


@dataclass(frozen=True)
class Sender:
    """A trusted certificate: whose messages verify with its key until it expires."""

    source: str  # the certificate's file, to name it
    key: PublicKey
    expires: float  # seconds since the epoch

    def verify(self, signature: bytes, body: bytes) -> None:
        if time.time() >= self.expires:
            raise MessageRefused(f"signed with the certificate {self.source}, which has expired")
        try:
            if isinstance(self.key, ed25519.Ed25519PublicKey):
                self.key.verify(signature, CONTEXT + body)
            else:
                self.key.verify(signature, CONTEXT + body, _PSS, hashes.SHA256())
        except InvalidSignature:
            raise MessageRefused(f"the signature does not verify with {self.source}") from None


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _certificate(path: Path) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path}: not a PEM certificate ({error})") from None
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise InvalidInput(f"{path}: an RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} "
                           "(make new ones with `kubeupgrade keys messages`)")
    if not isinstance(key, (ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise InvalidInput(f"{path}: a {type(key).__name__}; message certificates hold Ed25519 "
                           "or RSA keys (make new ones with `kubeupgrade keys messages`)")
    return cert


def trusted_senders(directory: Path) -> dict[str, Sender]:
    """Fingerprint -> sender, for every *.pem of `directory`. An expired certificate is
    refused here, as a process that trusts it would refuse every message it signs."""
    senders = {}
    for path in sorted(directory.glob("*.pem")):
        cert = _certificate(path)
        expires = cert.not_valid_after_utc.timestamp()
        if time.time() >= expires:
            raise InvalidInput(f"{path}: expired on {cert.not_valid_after_utc:%Y-%m-%d}; {RENEW}")
        senders[fingerprint(cert)] = Sender(str(path), cert.public_key(), expires)  # type: ignore[arg-type]
    if not senders:
        raise InvalidInput(f"{directory}: no trusted *.pem certificate")
    return senders


class Envelope:
    """Seals what this process sends with its key; opens only what a trusted sender sealed."""

    def __init__(self, key: PrivateKey, signer: str, trusted: Mapping[str, Sender]) -> None:
        self._key = key
        self._signer = signer
        self._trusted = dict(trusted)

    @classmethod
    def load(cls, key_file: Path, cert_file: Path, trust_dir: Path) -> Envelope:
        """The envelope of an identity's files; InvalidInput naming the file that is wrong."""
        try:
            key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise InvalidInput(f"{key_file}: not an unencrypted PEM private key ({error})") from None
        cert = _certificate(cert_file)
        if not isinstance(key, (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey)):
            raise InvalidInput(f"{key_file}: a {type(key).__name__}; message keys are Ed25519 or RSA")
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if (key.public_key().public_bytes(serialization.Encoding.DER, public)
                != cert.public_key().public_bytes(serialization.Encoding.DER, public)):
            raise InvalidInput(f"{cert_file} is not the certificate of {key_file}")
        return cls(key, fingerprint(cert), trusted_senders(trust_dir))

    def seal(self, data: Any) -> str:
        from kombu.utils.json import dumps

        body = dumps(data).encode()
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            signature = self._key.sign(CONTEXT + body)
        else:
            signature = self._key.sign(CONTEXT + body, _PSS, hashes.SHA256())
        return f"{self._signer}:{base64.b64encode(signature).decode()}:{body.decode()}"

    def open(self, payload: str | bytes) -> Any:
        from kombu.utils.json import loads

        raw = payload if isinstance(payload, bytes) else payload.encode()
        signer, _, rest = raw.partition(b":")
        encoded, _, body = rest.partition(b":")
        sender = self._trusted.get(signer.decode("ascii", "replace"))
        if sender is None:
            raise MessageRefused(f"signed by a key that is not trusted here (signer {signer[:16]!r})")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise MessageRefused("not a signed message: its signature is not base64") from None
        sender.verify(signature, body)
        return loads(body)


# kombu hands a message of these types over as its raw text whatever a consumer accepts; the
# signed type is the only way in for a task, so they are refused instead.
_RAW_TYPES = ("application/data", "application/text")


def _refuse_raw(payload: object) -> Any:
    raise MessageRefused("a raw message (application/data or text): only signed messages are taken")


def install(envelope: Envelope) -> None:
    """Register `envelope` as this process's `kubeupgrade-signed` serializer, and turn off every
    other serializer but JSON (results and task events; tasks accept signed messages only)."""
    from kombu.serialization import disable_insecure_serializers, register

    register(SERIALIZER, envelope.seal, envelope.open, content_type=CONTENT_TYPE, content_encoding="utf-8")
    for raw in _RAW_TYPES:
        register(f"kubeupgrade-refused-{raw.rpartition('/')[2]}", None, _refuse_raw, content_type=raw)
    disable_insecure_serializers(allowed=["json", SERIALIZER])
