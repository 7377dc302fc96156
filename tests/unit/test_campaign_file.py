"""Campaign file validation: every invalid-input class gives one clear line, exit code 2,
and no traceback; the shipped example is valid."""

import textwrap
from pathlib import Path

import pytest

from kubeupgrade.campaign_file import load_campaign, parse_campaign
from kubeupgrade.cli.main import main
from kubeupgrade.errors import InvalidInput
from kubeupgrade.model.campaign import OnPdbBlock, OsFamily, Role, WorkerStrategy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"

VALID = """\
cluster: demo
target: "1.31"
control_plane_version: v1.30.4
nodes:
  - {name: cp-1, role: control-plane, kubelet: v1.30.4, os: apt}
  - {name: w-1, role: worker, kubelet: v1.30.4, os: dnf}
"""


def test_example_campaign_loads():
    campaign = load_campaign(EXAMPLE)
    assert campaign.cluster == "prod-eu1"
    assert [n.role for n in campaign.nodes][:3] == [Role.CONTROL_PLANE] * 3
    assert campaign.nodes[4].os is OsFamily.DNF
    assert campaign.policies.max_unavailable.percent == 25
    assert campaign.policies.drain.timeout_seconds == 300
    assert campaign.policies.drain.grace_period_seconds == 30
    assert campaign.policies.drain.on_pdb_block is OnPdbBlock.FAIL
    assert campaign.policies.worker_strategy is WorkerStrategy.WINDOW
    assert campaign.policies.hooks.after_first_control_plane[0][0] == "kubectl"


def test_minimal_campaign_gets_safe_defaults():
    campaign = parse_campaign(VALID)
    assert campaign.policies.max_unavailable.resolve(10) == 1
    assert campaign.policies.certificate_renewal is True
    assert campaign.policies.drain.skip_for_patch is False


INVALID = [
    # (replace this, with that, expected message fragment)
    ("cluster: demo", "cluster: demo\ntraget: x", 'traget: unknown key; did you mean "target"?'),
    ("control-plane, kubelet: v1.30.4, os: apt}", "control-plane, kubelet: v1.30.4, os: windows}",
     "nodes[0].os: a control plane cannot run on Windows; only workers can"),
    ("cluster: demo", "cluster: demo\npolicies: {max_unavailible: 2}", 'policies.max_unavailible: unknown key; did you mean "max_unavailable"?'),
    ("os: apt}", "os: apt, kublet: v1.30.4}", 'nodes[0].kublet: unknown key; did you mean "kubelet"?'),
    ('target: "1.31"', "target: 1.31", "target: 1.31 is not a version string; quote it in YAML"),
    ('target: "1.31"', "target: latest", "target: 'latest' is not a Kubernetes version"),
    ("control_plane_version: v1.30.4", "control_plane_version: v1.30", "control_plane_version: 'v1.30' is a minor release, not an exact version"),
    ("kubelet: v1.30.4, os: apt", "kubelet: 1.30.4.1, os: apt", "nodes[0].kubelet: '1.30.4.1' is not a Kubernetes version"),
    ("name: w-1", "name: Worker_1", "nodes[1].name: 'Worker_1' is not a valid node name (DNS-1123"),
    ("name: w-1", "name: cp-1", "nodes[1].name: duplicate node 'cp-1' (first at nodes[0])"),
    ("role: control-plane", "role: worker", "nodes: no control-plane node"),
    ("role: control-plane", "role: master", "nodes[0].role: 'master' is not one of control-plane, worker"),
    ("os: dnf", "os: zypper", "nodes[1].os: 'zypper' is not one of apt, dnf, yum"),
    ("cluster: demo", "cluster: demo\npolicies: {max_unavailable: 0%}", "policies.max_unavailable: 0% is outside 1%-100%"),
    ("cluster: demo", "cluster: demo\npolicies: {max_unavailable: 101%}", "policies.max_unavailable: 101% is outside 1%-100%"),
    ("cluster: demo", "cluster: demo\npolicies: {max_unavailable: 0}", "policies.max_unavailable: 0 must be at least 1"),
    ("cluster: demo", "cluster: demo\npolicies: {max_unavailable: lots}", "policies.max_unavailable: expected a count like 2 or a percentage like 25%"),
    ("cluster: demo", "cluster: demo\npolicies: {hooks: {after_first_control_plane: ['kubectl apply -f cni.yaml']}}", "policies.hooks.after_first_control_plane[0]: 'kubectl apply -f cni.yaml' is a shell string; write it as an argv list"),
    ("cluster: demo", "cluster: demo\npolicies: {hooks: {after_node: [[kubectl, 3]]}}", "policies.hooks.after_node[0]: expected a non-empty list of non-empty argv strings"),
    ("cluster: demo", "cluster: demo\npolicies: {hooks: {after_node: kubectl}}", "policies.hooks.after_node: expected a list of commands"),
    ("cluster: demo", "cluster: demo\npolicies: {drain: {timeout: soon}}", "policies.drain.timeout: expected seconds or a duration like 90s, 5m, 1h"),
    ("cluster: demo", "cluster: demo\npolicies: {drain: {on_pdb_block: ignore}}", "policies.drain.on_pdb_block: 'ignore' is not one of fail, wait, delete"),
    ("cluster: demo", "cluster: demo\npolicies: {certificate_renewal: 'yes'}", "policies.certificate_renewal: expected true or false, got a string 'yes'"),
    ("cluster: demo", "cluster: demo\npolicies: {retries: {attempts: 0}}", "policies.retries.attempts: 0 must be at least 1"),
    ("cluster: demo", "cluster: demo\npins: {'1.30': v1.31.2}", "pins.1.30: 1.31.2 is not a 1.30 release"),
    ("cluster: demo", "cluster: Demo_Cluster", "cluster: 'Demo_Cluster' is not a valid name"),
    ("cluster: demo\n", "", "cluster: missing; it is required"),
    ("cluster: demo", "cluster: demo\nnodes: []", "not valid YAML at line 5, column 1: duplicate key 'nodes'"),
    ("cluster: demo", "cluster: demo\npolicies: {drain: []}", "policies.drain: expected a mapping, got a list"),
    ("cluster: demo", "cluster: demo\npolicies: {max_failed_workers: -1}", "policies.max_failed_workers: expected a whole number, 0 or more, got -1"),
    ("cluster: demo", "cluster: demo\npolicies: {canary: two}", "policies.canary: expected a whole number, 0 or more, got 'two'"),
    ("cluster: demo", "cluster: demo\npolicies: {on_gate_failure: ignore}", "policies.on_gate_failure: 'ignore' is not one of pause, fail"),
    ("cluster: demo", "cluster: demo\npolicies: {gate_timeout: later}", "policies.gate_timeout: expected seconds or a duration"),
    ("cluster: demo", "cluster: demo\npolicies: {pools: [{name: a, selector: 'pool in (a', max_unavailable: 1}]}", "policies.pools[0].selector: unable to parse requirement"),
    ("cluster: demo", "cluster: demo\npolicies: {pools: [{name: a, selector: pool=a}]}", "policies.pools[0].max_unavailable: is required"),
    ("cluster: demo", "cluster: demo\npolicies: {pools: [{name: a, selector: pool=a, max_unavailable: 0}]}", "policies.pools[0].max_unavailable: 0 must be at least 1"),
    ("cluster: demo", "cluster: demo\npolicies: {pools: [{name: a, selector: x=1, max_unavailable: 1}, {name: a, selector: y=1, max_unavailable: 1}]}", "policies.pools[1].name: pool 'a' is named twice"),
    ("cluster: demo", "cluster: demo\npolicies: {pools: [{name: a, selector: x=1, max_unavailable: 1, zone: b}]}", 'policies.pools[0].zone: unknown key'),
    ("cluster: demo", "cluster: demo\npolicies: {gates: [{name: smoke, command: 'curl -f http://x'}]}", "policies.gates[0].command[0]: 'curl -f http://x' is a shell string"),
    ("cluster: demo", "cluster: demo\npolicies: {gates: [{name: e, prometheus: {url: 'p:9090', query: up, below: 1}}]}", "policies.gates[0].prometheus.url: expected an http(s) URL"),
    ("cluster: demo", "cluster: demo\npolicies: {gates: [{name: e, prometheus: {url: 'http://p', query: up}}]}", "policies.gates[0].prometheus: give a threshold: below and/or above"),
    ("cluster: demo", "cluster: demo\npolicies: {gates: [{name: e}]}", "policies.gates[0]: give exactly one of command (an argv list) or prometheus"),
    ("cluster: demo", "cluster: demo\npolicies: {windows: [{days: [Mo], start: '22:00', end: '04:00', timezone: UTC}]}", "policies.windows[0].days: expected a list of Mon, Tue"),
    ("cluster: demo", "cluster: demo\npolicies: {windows: [{days: [Mon], start: '25:00', end: '04:00', timezone: UTC}]}", "policies.windows[0].start: '25:00' is not a time of day"),
    ("cluster: demo", "cluster: demo\npolicies: {windows: [{days: [Mon], start: '22:00', end: '04:00', timezone: Mars/Olympus}]}", "policies.windows[0].timezone: unknown time zone 'Mars/Olympus'"),
    # a directory of the zone database, and a name longer than a file name may be
    ("cluster: demo", "cluster: demo\npolicies: {windows: [{days: [Mon], start: '22:00', end: '04:00', timezone: America}]}", "policies.windows[0].timezone: unknown time zone 'America'"),
    ("cluster: demo", "cluster: demo\npolicies: {windows: [{days: [Mon], start: '22:00', end: '04:00', timezone: " + "x" * 300 + "}]}", "policies.windows[0].timezone: unknown time zone 'xxx"),
    ("cluster: demo", "cluster: demo\npolicies: {windows: [{days: [Mon], start: '22:00', end: '22:00', timezone: UTC}]}", "policies.windows[0].end: equals start"),
    ("cluster: demo", "cluster: demo\npolicies: {upgrade_configuration: upgrade.yaml}", "policies.upgrade_configuration: expected an absolute path on the nodes, like /etc/kubernetes/upgrade.yaml, got 'upgrade.yaml'"),
    ("cluster: demo", "cluster: demo\npolicies: {upgrade_configuration: [/etc/u.yaml]}", "policies.upgrade_configuration: expected a file path, got a list"),
]


@pytest.mark.parametrize(("old", "new", "message"), INVALID)
def test_invalid_campaigns_exit_2_with_one_line(tmp_path, capsys, old, new, message):
    path = tmp_path / "campaign.yaml"
    assert old in VALID
    path.write_text(VALID.replace(old, new, 1))
    code = main(["plan", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    assert captured.err.startswith(f"error: {path}: ")
    assert message in captured.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the campaign file is empty"),
        ("cluster: [unclosed", "not valid YAML at line"),
        ("- just\n- a list\n", "campaign: expected a mapping, got a list"),
    ],
)
def test_unreadable_campaigns(tmp_path, capsys, content, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    assert main(["plan", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such campaign file" in capsys.readouterr().err


def test_parse_errors_are_value_errors():
    with pytest.raises(ValueError):
        parse_campaign(textwrap.dedent("cluster: x\ntarget: nope\n"))
    with pytest.raises(InvalidInput):
        parse_campaign("cluster: x\ntarget: nope\n")


def test_the_controls_example_plans_with_every_control_in_it(capsys):
    controls = Path(__file__).resolve().parents[2] / "examples" / "campaign-controls.yaml"
    assert main(["plan", str(controls), "-o", "wide"]) == 0
    out = capsys.readouterr().out
    assert "pool web: at most 2 of its 3 out of service" in out
    assert "pool db: at most 1 of its 2 out of service" in out
    assert ("Canary: the first 1 worker(s) of each hop go alone, then the health gate (timeout 300s, "
            "then pause), and again after every 2 worker(s). Failure budget: up to 1 worker(s) may "
            "fail while the others go on.") in out
    assert "Gate smoke: `/usr/local/bin/smoke-test --quick` exits 0" in out
    assert "Gate api-error-ratio: sum(rate(" in out and "below 0.01 at http://prometheus.monitoring:9090" in out
    assert "Maintenance windows: Tue,Wed,Thu 22:00-04:00 Europe/Berlin" in out
    assert "Notify https://hooks.example.com/kubeupgrade: campaign, gate, node" in out
    assert "etcd-snapshot" in out
