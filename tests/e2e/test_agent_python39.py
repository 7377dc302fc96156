"""The agent on a stock distribution Python: the package installs on Python 3.9 (RHEL 9's) with
only the agent's dependencies, and that installation's `kubeupgrade-agent` runs a whole
campaign's host phases on a sandbox, beside a controller on 3.11."""

import json
import subprocess

import pytest

from kubeupgrade.api import submit
from kubeupgrade.sandbox import invariants
from kubeupgrade.workflow.liveness import agent_descriptions
from kubeupgrade.workflow.record import CampaignStore
from tests.helpers import package_source, python39, write_campaign


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory):
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no Python 3.9 on this machine (python3.9 on PATH or under ~/.pyenv)")
    venv = tmp_path_factory.mktemp("py39") / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=120)
    # Built and installed from (a copy of) this checkout as a node installs it: no extras.
    source = package_source(tmp_path_factory.mktemp("source") / "kubeupgrade")
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(source)], check=True, timeout=600,
                   cwd=venv.parent)
    return venv


def test_the_package_installs_on_python_3_9_with_only_the_agents_dependencies(agent_venv):
    listed = subprocess.run([str(agent_venv / "bin" / "pip"), "list", "--format", "json"],
                            capture_output=True, text=True, check=True, timeout=60).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert {"kubeupgrade", "celery", "redis", "cryptography"} <= installed
    assert not installed & {"kubernetes", "flower", "fabric", "paramiko", "rich", "tornado"}
    usage = subprocess.run([str(agent_venv / "bin" / "kubeupgrade-agent"), "--node", "Bad_Name"],
                           capture_output=True, text=True, timeout=60, cwd=agent_venv.parent)
    assert usage.returncode == 2 and usage.stderr.strip() == "error: --node 'Bad_Name' is not a valid node name"
    # The operator's CLI is not for nodes: one line saying so, not a traceback.
    cli = subprocess.run([str(agent_venv / "bin" / "kubeupgrade"), "status"], capture_output=True, text=True,
                         timeout=60, cwd=agent_venv.parent)
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1, cli.stderr
    assert "need Python 3.11" in cli.stderr and "kubeupgrade-agent" in cli.stderr


def test_agents_on_python_3_9_run_a_whole_campaign(make_stack, agent_venv, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="mixed",
                       agent_command=[str(agent_venv / "bin" / "kubeupgrade-agent")])
    box = stack.sandbox
    store = CampaignStore.from_url(stack.broker)
    pythons = {d.get("python", "")[:4] for d in agent_descriptions(store.redis, [n["name"] for n in box.nodes]).values()}
    assert pythons == {"3.9."}
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31"), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    assert invariants.check_all(box, max_unavailable=1) == []
    assert {(r.status, r.version) for r in box.node_rows()} == {("Ready", "v1.31.14")}
