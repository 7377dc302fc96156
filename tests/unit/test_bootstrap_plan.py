"""What `kubeupgrade bootstrap agents` runs on a host and what it installs from (pure)."""

import zipfile

import pytest

from kubeupgrade.bootstrap.plan import Layout, Target, agent_env, remote_steps, unit_text
from kubeupgrade.bootstrap.wheelhouse import requirements_text, resolve
from kubeupgrade.errors import InvalidInput


def test_targets_name_user_host_port_and_node():
    assert Target.parse("admin@10.0.0.21:2222=worker-1") == Target("10.0.0.21", "worker-1", "admin", 2222)
    assert Target.parse("cp-1.example.org=cp-1") == Target("cp-1.example.org", "cp-1", "root", 22)
    for bad, why in (("cp-1.example.org", "expected"), ("h=Bad_Node", "not a valid node name"),
                     ("h:70000=n", "out of range")):
        with pytest.raises(InvalidInput, match=why):
            Target.parse(bad)


def test_secrets_are_installed_private_and_the_install_is_offline_and_hash_checked():
    steps = remote_steps(Layout(), "/tmp/up", ["controller.pem", "agent.pem"], "operator.pub")
    assert all(isinstance(step, list) and all(isinstance(a, str) for a in step) for step in steps)
    installs = {step[-1]: step[step.index("-m") + 1] for step in steps if step[:1] == ["install"] and "-m" in step
                and "-d" not in step}
    assert installs["/etc/kubeupgrade/agent.env"] == "0600"
    assert installs["/etc/kubeupgrade/messages/agent.key"] == "0600"
    assert installs["/etc/kubeupgrade/messages/trusted/controller.pem"] == "0644"
    (pip,) = [step for step in steps if step[0].endswith("/bin/pip")]
    assert "--no-index" in pip and "--require-hashes" in pip
    order = [" ".join(step[:2]) for step in steps]
    assert order.index("systemctl restart") > order.index(pip[0] + " install")


def test_a_layout_root_moves_every_path_and_a_real_host_keeps_them():
    env = agent_env(Layout("/srv/host-1"), "node-1", "rediss://agent:pw@redis:6380/0")
    assert "KUBEUPGRADE_MESSAGE_KEY=/srv/host-1/etc/kubeupgrade/messages/agent.key" in env
    shipped = "EnvironmentFile=/etc/kubeupgrade/agent.env\nExecStart=/opt/kubeupgrade/bin/kubeupgrade-agent\n"
    assert unit_text(shipped, Layout()) == shipped
    assert "/srv/host-1/opt/kubeupgrade/bin/kubeupgrade-agent" in unit_text(shipped, Layout("/srv/host-1"))
    for broker in ("http://x", "redis://a\nKUBEUPGRADE_NODE=other"):
        with pytest.raises(InvalidInput, match="one redis:// or rediss:// URL"):
            agent_env(Layout(), "node-1", broker)


def wheel(directory, name, version, *requires):
    path = directory / f"{name}-{version}-py3-none-any.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + \
        "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-{version}.dist-info/METADATA", metadata)
    return path


def test_dependencies_are_resolved_for_the_target_python_with_the_extras_asked(tmp_path):
    wheel(tmp_path, "kubeupgrade", "0.1.0", "celery[redis]>=5", 'exceptiongroup; python_version < "3.11"')
    wheel(tmp_path, "celery", "5.6.3", 'redis>=5; extra == "redis"', 'boto3; extra == "sqs"')
    chosen, missing = resolve(tmp_path, "3.9")
    assert missing == ["exceptiongroup", "redis>=5"]  # no boto3: nobody asked for celery[sqs]
    assert resolve(tmp_path, "3.11")[1] == ["redis>=5"]
    wheel(tmp_path, "redis", "4.0.0")
    wheel(tmp_path, "redis", "5.0.1")
    wheel(tmp_path, "exceptiongroup", "1.3.2")
    chosen, missing = resolve(tmp_path, "3.9")
    assert missing == [] and chosen == {"kubeupgrade": "0.1.0", "celery": "5.6.3", "redis": "5.0.1",
                                        "exceptiongroup": "1.3.2"}
    lines = requirements_text(tmp_path, chosen).splitlines()
    assert [line.split()[0] for line in lines] == ["celery==5.6.3", "exceptiongroup==1.3.2",
                                                   "kubeupgrade==0.1.0", "redis==5.0.1"]
    assert all(len(line.split("--hash=sha256:")[1]) == 64 for line in lines)
