"""The broker's ACL users as `kubeupgrade keys broker-users` writes them: passwords only as
SHA-256, the default user off, each role's URL carrying its own credentials, files private."""

import hashlib
import stat
from urllib.parse import unquote, urlsplit

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.security.broker_users import ROLES, acl_text, create_broker_users, role_url

BASE = "rediss://redis.internal:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/kubeupgrade/redis-ca.crt"


def test_the_acl_file_holds_hashes_not_passwords_and_turns_the_default_user_off():
    passwords = {role: f"secret-{role}" for role in ROLES}
    lines = acl_text(passwords).splitlines()
    # Off, so nobody can log in as it, yet with every right: redis-server replays its AOF as
    # this user and (redis/redis#14541) re-checks its rights at each EXEC.
    assert lines[0] == "user default off resetpass ~* &* +@all"
    for role, line in zip(ROLES, lines[1:], strict=True):
        assert line.startswith(f"user {role} on #{hashlib.sha256(passwords[role].encode()).hexdigest()} ")
        assert passwords[role] not in line
    flower = next(line for line in lines if line.startswith("user flower "))
    assert "+publish" not in flower and "+lpush" not in flower and "+@write" not in flower
    for role in ("controller", "agent", "cli"):
        rule = next(line for line in lines if line.startswith(f"user {role} "))
        assert "-@admin -@dangerous" in rule and "~* " not in rule


def test_each_role_url_carries_its_own_credentials_and_keeps_the_rest():
    url = role_url(BASE, "agent", "p@ss/word")
    parts = urlsplit(url)
    assert (parts.username, unquote(parts.password)) == ("agent", "p@ss/word")
    assert parts.hostname == "redis.internal" and parts.port == 6380 and parts.query == urlsplit(BASE).query
    with pytest.raises(InvalidInput, match="leave the credentials out"):
        role_url("rediss://x:y@redis.internal:6380/0", "agent", "p")
    with pytest.raises(InvalidInput, match="expected rediss://HOST:PORT/DB"):
        role_url("http://redis.internal", "agent", "p")


def test_files_are_private_and_never_overwritten(tmp_path):
    made = create_broker_users(tmp_path / "b", BASE)
    assert set(made.urls) == set(ROLES) and len(set(made.urls.values())) == len(ROLES)
    for path in [made.acl, *made.env_files.values()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert made.env_files["agent"].read_text() == f"KUBEUPGRADE_BROKER={made.urls['agent']}\n"
    with pytest.raises(InvalidInput, match="exists already"):
        create_broker_users(tmp_path / "b", BASE)
