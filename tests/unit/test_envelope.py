"""The signed envelope of tasks and control messages: what a trusted sender sealed opens, as it
was sent; anything else (a changed byte anywhere, an untrusted or expired signer, an unsigned
message, another serializer) is refused before its body is decoded."""

import datetime
import json
import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from kubeupgrade.errors import InvalidInput
from kubeupgrade.security.envelope import (
    CONTENT_TYPE,
    CONTEXT,
    SERIALIZER,
    Envelope,
    MessageRefused,
    Sender,
    install,
)
from kubeupgrade.security.messages import create_identities
from tests.helpers import self_signed_certificate

DAYS_30 = datetime.timedelta(days=30)
MESSAGE = [["a"], {"campaign": "c-1", "node": "wörker-1", "attempt": 1, "n": [1.5, None, True]},
           {"callbacks": None, "chain": [{"task": "x", "kwargs": {"k": "v:with:colons"}}]}]


def _envelope(identity, trust=None):
    return Envelope.load(identity.key, identity.cert, trust or identity.trust)


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    return create_identities(tmp_path_factory.mktemp("m"))


def _write_key(path, key):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def test_what_a_trusted_sender_seals_opens_as_it_was_sent(identities):
    controller, agent = _envelope(identities["controller"]), _envelope(identities["agent"])
    sealed = controller.seal(MESSAGE)
    assert agent.open(sealed) == MESSAGE == agent.open(sealed.encode())
    assert controller.open(agent.seal(MESSAGE)) == MESSAGE


def test_a_changed_byte_anywhere_is_refused(identities):
    sender, receiver = _envelope(identities["operator"]), _envelope(identities["agent"])
    sealed = sender.seal(MESSAGE).encode()
    rng = random.Random(7)
    positions = sorted(set(rng.sample(range(len(sealed)), 120)) | {0, 63, 64, 65, len(sealed) - 1})
    for at in positions:
        for replacement in {sealed[at] ^ 1, ord(":"), ord("A")} - {sealed[at]}:
            forged = sealed[:at] + bytes([replacement]) + sealed[at + 1:]
            with pytest.raises(MessageRefused):
                receiver.open(forged)
    for cut in (0, 10, 64, 65, len(sealed) // 2, len(sealed) - 1):
        with pytest.raises(MessageRefused):
            receiver.open(sealed[:cut])
    with pytest.raises(MessageRefused, match="not trusted"):
        receiver.open(json.dumps(MESSAGE))  # a body with no envelope at all


def test_a_key_the_receiver_does_not_trust_is_refused_even_claiming_a_trusted_signer(identities, tmp_path):
    stranger = create_identities(tmp_path / "stranger")["controller"]
    receiver = _envelope(identities["agent"])
    sealed = _envelope(stranger).seal(MESSAGE)
    with pytest.raises(MessageRefused, match="not trusted here"):
        receiver.open(sealed)
    trusted_signer = _envelope(identities["controller"]).seal(MESSAGE).split(":")[0]
    with pytest.raises(MessageRefused, match="does not verify"):
        receiver.open(trusted_signer + sealed[sealed.index(":"):])


def test_the_signature_covers_the_context_not_the_bare_body(identities):
    """A signature these keys made over the same bytes for another purpose is no message."""
    key = serialization.load_pem_private_key(identities["operator"].key.read_bytes(), password=None)
    receiver = _envelope(identities["agent"])
    signer, _, _ = _envelope(identities["operator"]).seal(MESSAGE).partition(":")
    body = json.dumps(MESSAGE).encode()
    import base64

    bare = f"{signer}:{base64.b64encode(key.sign(body)).decode()}:{body.decode()}"
    with pytest.raises(MessageRefused, match="does not verify"):
        receiver.open(bare)
    with_context = f"{signer}:{base64.b64encode(key.sign(CONTEXT + body)).decode()}:{body.decode()}"
    assert receiver.open(with_context) == MESSAGE


def test_rsa_keys_of_earlier_versions_still_sign_and_verify(tmp_path):
    trust = tmp_path / "trusted"
    trust.mkdir()
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    _write_key(tmp_path / "old.key", key)
    (tmp_path / "old.pem").write_bytes(self_signed_certificate(key, DAYS_30))
    (trust / "old.pem").write_bytes((tmp_path / "old.pem").read_bytes())
    old = Envelope.load(tmp_path / "old.key", tmp_path / "old.pem", trust)
    assert old.open(old.seal(MESSAGE)) == MESSAGE
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    _write_key(tmp_path / "small.key", small)
    (tmp_path / "small.pem").write_bytes(self_signed_certificate(small, DAYS_30))
    with pytest.raises(InvalidInput, match=r"small.pem: an RSA key of 1024 bits; at least 2048"):
        Envelope.load(tmp_path / "small.key", tmp_path / "small.pem", trust)


def test_identity_files_that_do_not_belong_together_are_named(identities, tmp_path):
    agent, controller = identities["agent"], identities["controller"]
    with pytest.raises(InvalidInput, match=f"{controller.cert} is not the certificate of {agent.key}"):
        Envelope.load(agent.key, controller.cert, agent.trust)
    (tmp_path / "garbage.key").write_text("not a key")
    with pytest.raises(InvalidInput, match="garbage.key: not an unencrypted PEM private key"):
        Envelope.load(tmp_path / "garbage.key", agent.cert, agent.trust)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="empty: no trusted"):
        Envelope.load(agent.key, agent.cert, tmp_path / "empty")


def test_an_expired_certificate_is_refused_when_loaded_and_when_it_expires_later(identities, tmp_path):
    trust = tmp_path / "trusted"
    trust.mkdir()
    key = ed25519.Ed25519PrivateKey.generate()
    (trust / "old.pem").write_bytes(self_signed_certificate(key, -datetime.timedelta(days=1)))
    agent = identities["agent"]
    with pytest.raises(InvalidInput, match=r"old.pem: expired on .*keys messages"):
        Envelope.load(agent.key, agent.cert, trust)
    # Trusted while valid, then past its end: its messages are refused from then on.
    signer = _envelope(agent).seal(MESSAGE).partition(":")[0]
    receiver = Envelope(ed25519.Ed25519PrivateKey.generate(), "x" * 64,
                        {signer: Sender("agent.pem", key.public_key(), 0.0)})
    with pytest.raises(MessageRefused, match="agent.pem, which has expired"):
        receiver.open(_envelope(agent).seal(MESSAGE))


def test_installed_it_is_the_only_way_in_for_tasks(identities):
    """Once installed, kombu opens the signed type through the envelope, refuses an unsigned
    JSON task where only signed ones are accepted, and has no pickle at all."""
    from kombu.exceptions import ContentDisallowed, DecodeError
    from kombu.serialization import dumps, loads

    install(_envelope(identities["agent"]))
    content_type, encoding, body = dumps(MESSAGE, serializer=SERIALIZER)
    assert content_type == CONTENT_TYPE
    assert loads(body, content_type, encoding, accept=[CONTENT_TYPE]) == MESSAGE
    with pytest.raises(ContentDisallowed):
        loads(json.dumps(MESSAGE), "application/json", "utf-8", accept=[CONTENT_TYPE])
    with pytest.raises(DecodeError, match="does not verify"):
        loads(body.replace("c-1", "c-2"), content_type, encoding, accept=[CONTENT_TYPE])
    with pytest.raises(ContentDisallowed, match="disabled"):
        loads(b"\x80\x04K\x01.", "application/x-python-serialize", "binary")
    for raw in ("application/data", "application/text"):  # kombu passes these through otherwise
        with pytest.raises(DecodeError, match="only signed messages"):
            loads(b"abc", raw, "binary", accept=[CONTENT_TYPE])
