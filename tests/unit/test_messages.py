"""The message identity a process takes from its environment: all three settings or none, each
naming what is there; and the files `kubeupgrade keys messages` makes."""

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from kubeupgrade.errors import InvalidInput
from kubeupgrade.security.messages import (
    CERT_ENV,
    KEY_ENV,
    ROLES,
    TRUST_ENV,
    MessageIdentity,
    create_identities,
)


def test_no_settings_mean_no_identity_and_part_of_them_is_an_error(tmp_path):
    assert MessageIdentity.from_env({}) is None
    assert MessageIdentity.from_env({KEY_ENV: "", CERT_ENV: "", TRUST_ENV: ""}) is None
    with pytest.raises(InvalidInput, match=f"needs {CERT_ENV}, {TRUST_ENV} as well"):
        MessageIdentity.from_env({KEY_ENV: str(tmp_path / "k")})


def test_each_setting_must_name_what_is_there(tmp_path):
    made = create_identities(tmp_path / "m")["agent"]
    assert MessageIdentity.from_env(made.env()) == made
    with pytest.raises(InvalidInput, match=f"{KEY_ENV}=.*nope: no such file"):
        MessageIdentity.from_env({**made.env(), KEY_ENV: str(tmp_path / "nope")})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match=f"{TRUST_ENV}=.*not a directory of trusted"):
        MessageIdentity.from_env({**made.env(), TRUST_ENV: str(empty)})


def test_keys_are_private_ed25519_certificates_and_each_role_trusted(tmp_path):
    made = create_identities(tmp_path / "m")
    assert set(made) == set(ROLES)
    serials = set()
    for role, identity in made.items():
        assert stat.S_IMODE(identity.key.stat().st_mode) == 0o600
        cert = x509.load_pem_x509_certificate(identity.cert.read_bytes())
        assert isinstance(cert.public_key(), ed25519.Ed25519PublicKey)  # 0.04 ms a signature
        assert (identity.trust / f"{role}.pem").read_bytes() == identity.cert.read_bytes()
        serials.add(cert.serial_number)
    assert len(serials) == len(ROLES)
    with pytest.raises(InvalidInput, match="a message key exists already"):
        create_identities(tmp_path / "m")


def test_doctor_names_a_message_certificate_about_to_expire(tmp_path, monkeypatch):
    import datetime

    from cryptography.hazmat.primitives import serialization

    from kubeupgrade.doctor import check_message_identity
    from tests.helpers import self_signed_certificate

    made = create_identities(tmp_path / "m")["operator"]
    for name, value in made.env().items():
        monkeypatch.setenv(name, value)
    assert check_message_identity().ok
    key = serialization.load_pem_private_key(made.key.read_bytes(), password=None)
    made.cert.write_bytes(self_signed_certificate(key, datetime.timedelta(days=10, hours=1)))
    row = check_message_identity()
    assert not row.ok and "expires in 10 days" in row.detail and "kubeupgrade keys messages" in row.fix


def test_a_cached_client_app_signs_as_the_identity_the_environment_names_now(tmp_path, monkeypatch):
    """The serializer is the process's: an app cached for a broker URL signs as the operator the
    environment names at the time of the send, not as whichever app was configured last (a
    test process reusing a broker port for another sandbox sent aborts the agents refused)."""
    from cryptography import x509 as certificates
    from kombu.serialization import dumps

    from kubeupgrade.security.envelope import SERIALIZER, fingerprint
    from kubeupgrade.workflow.app import client_app, sender_app

    first = create_identities(tmp_path / "first")["operator"]
    second = create_identities(tmp_path / "second")["operator"]

    def signer_of_a_send() -> str:
        _, _, text = dumps({"task": "x"}, serializer=SERIALIZER)
        return (text.decode() if isinstance(text, bytes) else text).split(":", 1)[0]

    def expected(identity) -> str:
        return fingerprint(certificates.load_pem_x509_certificate(identity.cert.read_bytes()))

    for make in (client_app, sender_app):
        url_a, url_b = f"redis://127.0.0.1:1/{make.__name__}-a", f"redis://127.0.0.1:1/{make.__name__}-b"
        for identity, url in ((first, url_a), (second, url_b), (first, url_a), (second, url_a)):
            for name, value in identity.env().items():
                monkeypatch.setenv(name, value)
            make(url)
            assert signer_of_a_send() == expected(identity), (make.__name__, url)
