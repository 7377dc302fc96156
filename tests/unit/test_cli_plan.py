"""`kubeupgrade plan` and `kubeupgrade versions available`: output contracts and exit codes."""

import json
import subprocess
import sys
from pathlib import Path

from kubeupgrade.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "campaign.yaml"

TWO_MINORS = """\
cluster: demo
target: v1.31.2
control_plane_version: v1.29.9
nodes:
  - {name: cp-b, role: control-plane, kubelet: v1.29.9}
  - {name: cp-a, role: control-plane, kubelet: v1.29.9}
  - {name: w-1, role: worker, kubelet: v1.29.9}
  - {name: w-2, role: worker, kubelet: v1.28.1}
  - {name: w-3, role: worker, kubelet: v1.29.9}
policies: {max_unavailable: 2, worker_strategy: batches}
"""

MADISON = """\
   kubeadm | 1.30.14-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages
   kubeadm | 1.30.13-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages
"""


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_json_contract(tmp_path, capsys):
    campaign = tmp_path / "c.yaml"
    campaign.write_text(TWO_MINORS)
    listing = tmp_path / "madison.txt"
    listing.write_text(MADISON)
    code, out, err = run(capsys, "plan", str(campaign), "-o", "json", "--listing", str(listing))
    assert (code, err) == (0, "")
    plan = json.loads(out)
    assert [(h["from"], h["to"]) for h in plan["hops"]] == [("1.29.9", "1.30.14"), ("1.30.14", "1.31.2")]
    for hop in plan["hops"]:
        assert hop["control_planes"] == ["cp-b", "cp-a"]  # campaign order, one at a time
        assert hop["first_control_plane"] == "cp-b"
        assert hop["workers"]["batches"] == [["w-1", "w-2"], ["w-3"]]
    assert plan["violations"] == []


def test_plan_text_names_apply_node_and_window(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(capsys, "plan", str(EXAMPLE))
    assert code == 0
    assert "1. cp-1                     kubeadm upgrade apply" in out
    assert "2. cp-2                     kubeadm upgrade node" in out
    assert "sliding window, at most 1 out of service at once" in out
    assert "Policy: no violations." in out


def test_plan_refused_by_policy_exits_3_and_still_prints_the_plan(tmp_path, capsys):
    campaign = tmp_path / "c.yaml"
    campaign.write_text(TWO_MINORS.replace("v1.28.1", "v1.26.1"))
    code, out, err = run(capsys, "plan", str(campaign), "-o", "json")
    assert code == 3
    plan = json.loads(out)
    assert plan["refused"] is True
    assert plan["violations"][0]["rule"] == "kubelet-too-old"
    assert plan["violations"][0]["node"] == "w-2"
    assert err.startswith("error: plan refused: 1 policy violation(s), first: node w-2")
    assert err.count("\n") == 1


def test_versions_available_json(tmp_path, capsys):
    listing = tmp_path / "madison.txt"
    listing.write_text(MADISON)
    code, out, _ = run(capsys, "versions", "available", "--listing", str(listing), "-o", "json")
    assert code == 0
    assert json.loads(out) == [
        {"version": "1.30.14", "package": "1.30.14-1.1", "source": "https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages"},
        {"version": "1.30.13", "package": "1.30.13-1.1", "source": "https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages"},
    ]


def test_versions_available_filters_by_minor(tmp_path, capsys):
    listing = tmp_path / "madison.txt"
    listing.write_text(MADISON)
    code, _, err = run(capsys, "versions", "available", "--listing", str(listing), "--minor", "1.31")
    assert code == 2
    assert "no kubeadm 1.31.x versions in the listing" in err


def test_usage_errors_exit_2_in_one_line(capsys):
    code, _, err = run(capsys, "plan")
    assert code == 2
    assert err.startswith("error: Missing argument 'CAMPAIGN'")
    code, _, err = run(capsys, "plan", str(EXAMPLE), "-o", "xml")
    assert code == 2 and "Traceback" not in err
    assert "'xml' is not one of" in err


def test_installed_command_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: demo\ntarget: '1.31'\nnodes: [{name: A, role: worker}]\n")
    result = subprocess.run(
        [sys.executable, "-m", "kubeupgrade", "plan", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().startswith(f"error: {bad}: nodes[0].name: 'A' is not a valid node name")
    assert "Traceback" not in result.stderr


def test_completion_scripts_are_printed_for_each_shell():
    from click.testing import CliRunner

    from kubeupgrade.cli.main import cli

    for shell in ("bash", "zsh", "fish"):
        result = CliRunner().invoke(cli, ["completion", shell])
        assert result.exit_code == 0 and "_KUBEUPGRADE_COMPLETE" in result.output


def test_plan_shows_the_drain_policy_and_every_hook_argv(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(capsys, "plan", str(EXAMPLE))
    assert code == 0
    assert "Drain: timeout 300s, grace period 30s, pods: app!=batch, emptyDir data deleted" in out
    assert ("on the first control plane, after `kubeadm upgrade apply`: kubectl --kubeconfig "
            "/etc/kubernetes/admin.conf apply -f /etc/kubeupgrade/cni.yaml") in out
    code, out, _ = run(capsys, "plan", str(EXAMPLE), "-o", "json")
    document = json.loads(out)
    assert document["hooks"]["after_first_control_plane"][0][:2] == ["kubectl", "--kubeconfig"]
    assert document["drain"]["on_pdb_block"] == "fail"


def test_plan_fits_80_columns_without_splitting_a_name(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "plan", str(EXAMPLE))
    assert code == 0
    assert all(len(line) <= 80 for line in out.splitlines())
    words = out.split()
    for phase in ("hooks-after-first-control-plane", "kubeadm-upgrade-apply", "restart-kubelet"):
        assert phase in words
    # A continuation hangs under the phases it continues.
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("    cp-1  "))
    assert lines[first + 1].startswith(" " * 14) and not lines[first + 1].startswith(" " * 15)
