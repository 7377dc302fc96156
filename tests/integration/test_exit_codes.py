"""One exit-code rule for every command (README, "Exit codes"): each failure path ends in one
line on stderr, no traceback, and the code of its kind: 1 runtime, 2 bad input, 3 refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from kubeupgrade.security.messages import create_identities
from kubeupgrade.security.signing import create_key
from kubeupgrade.workflow.record import CampaignStore

pytestmark = pytest.mark.integration


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubeupgrade", *argv], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_every_command_fails_in_one_line_with_the_code_of_its_kind(redis_url, tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text(yaml.safe_dump({"cluster": "prod", "target": "1.31", "control_plane_version": "v1.30.4",
                                    "nodes": [{"name": "cp-1", "role": "control-plane", "kubelet": "v1.30.4"}]}))
    downgrade = tmp_path / "down.yaml"
    downgrade.write_text(good.read_text().replace('"1.31"', '"1.29"').replace("target: '1.31'", "target: '1.29'"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("cluster: [unclosed\n")
    listing = tmp_path / "listing.txt"
    listing.write_text("not a listing\n")
    key = create_key(tmp_path / "keys")
    store = CampaignStore.from_url(redis_url)
    finished = store.create("done", {"cluster": "done", "target": "1.31"}, "d.yaml")
    store.update(finished, lambda doc: doc.update(state="succeeded"))
    broker = ("--broker", redis_url)
    away = ("--broker", "redis://127.0.0.1:1/0")
    messages = tmp_path / "messages"
    identities = create_identities(messages)
    not_utf8 = tmp_path / "latin1.yaml"
    not_utf8.write_bytes("cluster: prod\ntarget: '1.31' # \xe9t\xe9\n".encode("latin-1"))
    kubeconfig_list = tmp_path / "list.kubeconfig"
    kubeconfig_list.write_text("- clusters\n")
    kubeconfig_cut = tmp_path / "cut.kubeconfig"
    kubeconfig_cut.write_text("apiVersion: v1\nclusters: [\n")
    cases = [
        (("plan", str(tmp_path / "missing.yaml")), 2, "no such campaign file"),
        (("plan", str(broken)), 2, "not valid YAML"),
        (("plan", str(downgrade)), 3, "kubeadm does not downgrade"),
        (("plan", str(good), "-o", "xml"), 2, "Invalid value for '-o'"),
        (("versions", "available", "--listing", str(listing)), 2, str(listing)),
        (("submit", str(good), "--key", str(tmp_path / "nokey"), *broker), 2, "kubeupgrade keys create"),
        (("submit", str(broken), "--key", str(key.private), *broker), 2, "not valid YAML"),
        (("submit", str(good), "--key", str(key.private), "--broker", "http://x"), 2, "not a Redis URL"),
        (("submit", str(good), "--key", str(key.private), *away), 1, "cannot reach the broker"),
        (("status", "prod-nope", *broker), 2, "no campaign 'prod-nope'"),
        (("retry", "prod-nope", *broker), 2, "no campaign 'prod-nope'"),
        (("retry", finished, *broker), 2, "only failed or aborted campaigns can be retried"),
        (("abort", finished, *broker), 2, "nothing to abort"),
        (("logs", finished, "--node", "cp-1", *broker), 2, "no output recorded"),
        (("list", *away), 1, "is redis-server running there?"),
        (("forget-cluster", "prod", "--broker", "ftp://x"), 2, "not a Redis URL"),
        (("keys", "create", "--dir", str(tmp_path / "keys")), 2, "a key exists already"),
        (("agent", "--node", "Bad_Name", *broker), 2, "is not a valid node name"),
        (("agent", "--node", "cp-1", *broker), 2, "no message-signing identity"),
        (("controller", "--kubeconfig", str(good), *broker), 2, "no message-signing identity"),
        (("keys", "messages", str(messages)), 2, "a message key exists already"),
        (("controller", "--kubeconfig", str(tmp_path / "nope"), *broker), 2, "does not exist"),
        (("flower", *broker), 2, "--basic-auth USER:PASSWORD is required"),
        (("sandbox", "up", "--dir", str(tmp_path / "sb"), "--workers", "-1"), 2, "cannot be negative"),
        (("sandbox", "up", "--dir", str(tmp_path / "sb"), "--name", "Not_A_Name"), 2, "--name"),
        (("completion", "tcsh"), 2, "Invalid value"),
        (("pause", "prod-nope", *broker), 2, "no campaign 'prod-nope'"),
        (("pause", finished, *broker), 2, "only a pending or running campaign can be paused"),
        (("resume", finished, *broker), 2, "is not paused"),
        (("plan", str(good), "--only", "control-planes", "--nodes", "w-1"), 2, "--only control-planes upgrades no worker"),
        (("plan", str(good), "--nodes", "w-9"), 2, "scope.workers: not in the cluster: w-9"),
        (("plan", str(good), "--selector", "pool in (a"), 2, "--selector"),
        (("controller", "--kubeconfig", str(good), "--metrics-port", "9808", *broker), 2,
         "KUBEUPGRADE_METRICS_AUTH"),
        (("no-such-command",), 2, "No such command"),
        (("plan", str(not_utf8)), 2, f"{not_utf8}: not UTF-8 text (byte 0xe9"),
        (("plan", str(good), "--kubeconfig", str(kubeconfig_cut)), 2, f"kubeconfig {kubeconfig_cut}: not valid YAML"),
    ]
    # With its identity, so what stops the controller is the kubeconfig, before a worker starts.
    as_controller = [
        (("controller", "--kubeconfig", str(kubeconfig_list), *broker), 2,
         f"kubeconfig {kubeconfig_list}: not shaped like a kubeconfig"),
        (("controller", "--kubeconfig", str(not_utf8), *broker), 2, f"kubeconfig {not_utf8}: not UTF-8 text"),
    ]
    for argv, code, words, identity in [(*case, {}) for case in cases] + [
            (*case, identities["controller"].env()) for case in as_controller]:
        result = cli(*argv, env={"KUBEUPGRADE_FLOWER_AUTH": "", **identity})
        where = " ".join(argv)
        assert result.returncode == code, f"{where}: exit {result.returncode}: {result.stderr}"
        assert "Traceback" not in result.stderr, where
        assert len(result.stderr.strip().splitlines()) == 1, f"{where}: {result.stderr}"
        assert result.stderr.startswith("error: ") and words in result.stderr, f"{where}: {result.stderr}"
    assert store.ids() == [finished]  # no failing submit wrote a campaign
