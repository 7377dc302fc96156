"""The agent's import closure: what a node must install. Importing the agent's entry point and
its tasks brings in none of the controller's dependencies, and every module it does import is
written for Python 3.9 (vermin reads the code; tests/e2e/test_agent_python39.py runs it)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# campaign_file: the phase wrapper imports it when it first validates a campaign from the record.
AGENT_MODULES = ("workers.__main__", "workers.node_tasks", "kubeupgrade.workflow.runners",
                 "kubeupgrade.workflow.agent_connections",
                 "kubeupgrade.campaign_file")
CONTROLLER_ONLY = ("kubernetes", "flower", "fabric", "paramiko", "invoke", "rich", "tornado",
                   "prometheus_client", "kubeupgrade.cli", "kubeupgrade.kube", "kubeupgrade.sandbox")


def agent_closure() -> list[str]:
    """The modules importing the agent loads, as a fresh interpreter sees them."""
    probe = (f"import json, sys\nfor name in {AGENT_MODULES!r}: __import__(name)\n"
             "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return json.loads(out)


def test_importing_the_agent_loads_none_of_the_controllers_dependencies():
    loaded = agent_closure()
    assert "celery" in loaded and "workers.node_tasks" in loaded  # the probe did import the agent
    pulled = [m for m in loaded if any(m == bad or m.startswith(bad + ".") for bad in CONTROLLER_ONLY)]
    assert pulled == []


def test_every_module_of_the_agent_is_written_for_python_3_9():
    files = []
    for name in agent_closure():
        if name.split(".")[0] in ("kubeupgrade", "workers"):
            parts = name.split(".")
            module, package = ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")
            files.append(str(module if module.exists() else package))
    assert len(files) > 30
    vermin = Path(sys.executable).with_name("vermin")  # the dev extra's console script
    checked = subprocess.run([str(vermin), "--no-tips", "--violations",
                              "--eval-annotations", "-t=3.9-", *files],
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
