"""The shipped deploy files keep secrets off command lines (readable by any local user in
/proc/*/cmdline): the broker URL and Flower's credentials come from root-only environment files."""

import re
from pathlib import Path

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def test_no_unit_puts_a_secret_on_its_command_line():
    units = sorted(SYSTEMD.glob("*.service"))
    assert len(units) == 3
    for unit in units:
        text = unit.read_text()
        (command,) = re.findall(r"^ExecStart=(.*)$", text, re.M)
        assert "KUBEUPGRADE_BROKER" not in command and "--broker" not in command, unit.name
        assert "--basic-auth" not in command and "FLOWER_AUTH" not in command, unit.name
        assert re.search(r"^EnvironmentFile=/etc/kubeupgrade/\w+\.env$", text, re.M), unit.name


def test_the_windows_agent_service_keeps_the_broker_off_its_command_line():
    script = (SYSTEMD.parent / "windows" / "install-agent.ps1").read_text()
    (parameters,) = re.findall(r"AppParameters \"([^\"]*)\"", script)
    assert "--broker" not in parameters and "KUBEUPGRADE_BROKER" not in parameters
    assert "--os windows" in parameters and "AppEnvironmentExtra $environment" in script
    assert "/inheritance:r /grant:r 'SYSTEM:(R)' 'Administrators:(F)'" in script


def test_the_shipped_redis_config_speaks_tls_only_and_reads_the_acl_users():
    conf = (SYSTEMD.parent / "redis" / "kubeupgrade-redis.conf").read_text()
    settings = {line.split()[0]: line.split(None, 1)[1] for line in conf.splitlines()
                if line.strip() and not line.startswith("#")}
    assert settings["port"] == "0" and settings["tls-port"] == "6380"
    assert settings["aclfile"].endswith("kubeupgrade-users.acl")
    assert settings["maxmemory-policy"] == "noeviction" and settings["appendonly"] == "yes"
