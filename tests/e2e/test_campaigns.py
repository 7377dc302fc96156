"""Whole campaigns on sandboxes with real processes: redis-server, one agent per node, the
controller (and Flower). Safety is checked from the sandbox's command logs and API history."""

import json
import os
import urllib.request
from base64 import b64encode

import pytest
from kubernetes import client, config

from kubeupgrade.api import get, recorded_durations, submit
from kubeupgrade.cli.engine import POOL_NICE
from kubeupgrade.errors import PolicyRefused
from kubeupgrade.model.phases import SPECS
from kubeupgrade.model.plan import Phase
from kubeupgrade.sandbox import hosts, invariants
from kubeupgrade.sandbox.processes import process_tree
from tests.helpers import wait_for, write_campaign


def test_mixed_cluster_one_minor_with_flower(make_stack, tmp_path):
    # Its controller's pool processes 10 nicer than its dispatcher (--pool-nice): as good a campaign.
    stack = make_stack(control_planes=3, workers=4, version="1.30.4", os_family="mixed", flower=True,
                       controller_pool_nice=10)
    box = stack.sandbox
    campaign = write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=2)
    handle = submit(campaign, broker=stack.broker)
    with pytest.raises(PolicyRefused, match=f"already has campaign {handle.id}"):
        submit(campaign, broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    rows = box.node_rows()
    assert {(r.status, r.version) for r in rows} == {("Ready", "v1.31.14")}
    assert invariants.check_all(box, max_unavailable=2) == []
    assert invariants.max_workers_out(box) == 2  # the window was used, never exceeded
    counts = {node["name"]: invariants.command_counts(box, node["name"]) for node in box.nodes}
    assert counts["cp-1"]["kubeadm upgrade apply"] == 1
    assert all(counts[n]["kubeadm upgrade apply"] == 0 for n in counts if n != "cp-1")
    assert all(counts[n]["kubeadm upgrade node"] == 1 for n in counts if n != "cp-1")
    windows = invariants.control_plane_windows(box)
    assert [node for _, _, node in windows] == ["cp-1", "cp-2", "cp-3"]
    plan_output = handle.output(0, "cp-1", "kubeadm-upgrade-plan")
    assert "kubeadm upgrade apply v1.31.14" in plan_output
    # The etcd snapshot, once, on the first control plane, before `apply`; kept in the record.
    log = [e["argv"][:3] for e in box.command_log("cp-1")]
    saves = [i for i, argv in enumerate(box.command_log("cp-1")) if argv["argv"][-3:-1] == ["snapshot", "save"]]
    assert len(saves) == 1 and saves[0] < log.index(["kubeadm", "upgrade", "apply"])
    snapshot = handle.status()["hops"][0]["etcd_snapshot"]
    assert snapshot["node"] == "cp-1" and snapshot["path"].endswith("-hop1-before-v1.31.14.db")
    assert (box.node_root("cp-1") / snapshot["path"].lstrip("/")).stat().st_size == snapshot["bytes"]
    assert not any("etcdctl" in e["argv"][0] for n in ("cp-2", "cp-3") for e in box.command_log(n))
    # Flower sees the campaign's tasks, with readable names and arguments, behind basic auth.
    url = f"http://127.0.0.1:{stack.flower_port}/api/tasks?limit=1000"
    auth = b64encode(stack.flower_auth.encode()).decode()

    def flower_tasks():
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                tasks = json.loads(response.read())
        except OSError:
            return None
        names = {t["name"] for t in tasks.values() if handle.id in str(t.get("kwargs"))}
        return names if "kubeupgrade.node.kubeadm_upgrade_apply" in names else None

    names = wait_for(flower_tasks, timeout=20)
    assert {"kubeupgrade.controller.drain_node", "kubeupgrade.node.restart_kubelet"} <= names
    with pytest.raises(urllib.error.HTTPError) as unauthenticated:
        urllib.request.urlopen(url, timeout=5)
    assert unauthenticated.value.code == 401
    # Its Prometheus metrics name nodes and tasks: behind the same credentials.
    metrics = f"http://127.0.0.1:{stack.flower_port}/metrics"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(metrics, timeout=5)
    assert anonymous.value.code == 401
    request = urllib.request.Request(metrics, headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert b"flower_events_total" in response.read()
    # The dispatcher decides before the work it paces: every thread of every pool process runs
    # --pool-nice nicer than the controller's main process, whose threads (the dispatcher's
    # among them) keep its niceness.
    assert controller_niceness(stack) == (10, 8)


def controller_niceness(stack) -> tuple[int, int]:
    """How much nicer than the controller's main process its pool processes run, and how many
    there are; every thread of the main process, and every thread of the pool, alike."""
    main = stack.processes["controller"].pid
    own = set(niceness_by_thread(main).values())
    assert len(own) == 1, own
    pool = process_tree(main) - {main}
    theirs = {nice for pid in pool for nice in niceness_by_thread(pid).values()}
    assert len(theirs) == 1, theirs
    return theirs.pop() - own.pop(), len(pool)


def niceness_by_thread(pid: int) -> dict[int, int]:
    """Thread id -> niceness, of the threads of `pid` (Linux: /proc)."""
    found = {}
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found  # the process itself ended since the listing
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                found[int(tid)] = int(stat.read().rsplit(")", 1)[1].split()[16])
        except (ProcessLookupError, FileNotFoundError):
            continue  # a thread that ended since the listing (a client's worker thread, say)
    return found


def test_two_minors_run_as_two_hops(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.29.8", os_family="apt")
    box = stack.sandbox
    handle = submit(write_campaign(tmp_path / "c.yaml", "v1.31.2", max_unavailable=1), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    doc = handle.status()
    assert [(h["from"], h["version"]) for h in doc["hops"]] == [("1.29.8", "1.30.14"), ("1.30.14", "1.31.2")]
    applies = [e["argv"] for e in box.command_log("cp-1") if e["argv"][:3] == ["kubeadm", "upgrade", "apply"]]
    assert [a[3] for a in applies] == ["v1.30.14", "v1.31.2"]
    assert {r.version for r in box.node_rows()} == {"v1.31.2"}
    assert invariants.check_all(box, max_unavailable=1) == []
    assert controller_niceness(stack) == (POOL_NICE, 8)  # the command's default
    # `kubectl describe node` tells the story: events for each step, the annotation the last.
    core = client.CoreV1Api(config.new_client_from_config(str(box.kubeconfig)))

    def told(node):
        items = core.list_namespaced_event("default", field_selector=f"involvedObject.name={node}").items
        return [e.reason for e in sorted(items, key=lambda e: (e.event_time, e.metadata.name))]

    story = ["UpgradeStarted", "Drained", "KubeletUpgraded", "UpgradeSucceeded"]
    assert wait_for(lambda: told("worker-1") == story * 2 or None, timeout=30)
    annotation = json.loads(core.read_node("worker-1").metadata.annotations["kubeupgrade.io/upgrade"])
    assert annotation == {"campaign": handle.id, "phase": "", "state": "succeeded"}
    # what this campaign recorded now drives the next plan's estimate
    recorded = recorded_durations(doc["cluster"], broker=stack.broker)
    assert recorded.campaigns == 1
    assert {Phase.DRAIN, Phase.KUBEADM_NODE, Phase.RESTART_KUBELET} <= set(recorded.recorded)
    assert Phase.KUBEADM_APPLY not in recorded.recorded  # two runs (one per hop) are too few
    assert 0 < recorded.of(Phase.DRAIN) < SPECS[Phase.DRAIN].typical_seconds  # a sandbox is quick


def test_hosts_whose_dnf_is_dnf_5_upgrade_with_the_option_it_reads(make_stack, tmp_path):
    """Fedora 41 and later: dnf 5 stops at `--disableexcludes` (exit status 2), so every run that
    needs the repository's exclusion lifted passes `--setopt=disable_excludes=kubernetes`."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="dnf5")
    box = stack.sandbox
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    for node in ("cp-1", "worker-1", "worker-2"):
        runs = [run for run in box.command_log(node) if run["argv"][0] in ("dnf", "yum")]
        assert {run["argv"][1] for run in runs} >= {"makecache", "list", "install"}, node
        assert all(run["exit"] == 0 and run["argv"][-1] == "--setopt=disable_excludes=kubernetes" for run in runs), runs
    assert invariants.check_all(box, max_unavailable=1) == []


def test_a_host_s_own_repository_source_is_kept_with_only_its_minor_changed(make_stack, tmp_path):
    """A mirror of pkgs.k8s.io and a keyring where an older install guide put it: the upgrade
    edits the minor in the address, as kubeadm's documentation does, and keeps the rest (writing
    pkgs.k8s.io's line instead names a keyring this host lacks, and apt refuses the repository)."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    keyring = "usr/share/keyrings/kubernetes-archive-keyring.gpg"
    line = ("deb [arch=amd64 signed-by=/{keyring}] https://nexus.corp.example/repository/k8s"
            "/core:/stable:/v{minor}/deb/ /\n")
    for node in box.nodes:
        root = box.node_root(node["name"])
        (root / keyring).parent.mkdir(parents=True, exist_ok=True)
        (root / hosts.APT_KEYRING).rename(root / keyring)
        (root / hosts.APT_SOURCE).write_text(line.format(keyring=keyring, minor="1.30"))
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    for node in box.nodes:
        source = (box.node_root(node["name"]) / hosts.APT_SOURCE).read_text()
        assert source == line.format(keyring=keyring, minor="1.31"), (node["name"], source)
    assert invariants.check_all(box, max_unavailable=1) == []


def test_a_source_modernized_to_deb822_is_upgraded_where_it_is(make_stack, tmp_path):
    """`apt modernize-sources` (apt 3, Debian 13) turned kubernetes.list into a deb822
    kubernetes.sources, kept the old file as kubernetes.list.bak, and left the keyring where an
    older guide put it. The upgrade edits the minor in kubernetes.sources (writing a
    kubernetes.list beside it names a keyring this host lacks, and apt refuses it)."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    keyring = "usr/share/keyrings/kubernetes-archive-keyring.gpg"
    stanza = ("# Modernized from /etc/apt/sources.list.d/kubernetes.list\nTypes: deb\n"
              "URIs: https://pkgs.k8s.io/core:/stable:/v{minor}/deb/\nSuites: /\n"
              f"Signed-By: /{keyring}\n")
    for node in box.nodes:
        root = box.node_root(node["name"])
        (root / keyring).parent.mkdir(parents=True, exist_ok=True)
        (root / hosts.APT_KEYRING).rename(root / keyring)
        (root / hosts.APT_SOURCE).rename(root / (hosts.APT_SOURCE + ".bak"))
        (root / hosts.APT_SOURCE).with_suffix(".sources").write_text(stanza.format(minor="1.30"))
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    for node in box.nodes:
        sources = box.node_root(node["name"]) / hosts.APT_SOURCE
        assert sources.with_suffix(".sources").read_text() == stanza.format(minor="1.31"), node["name"]
        assert not sources.exists(), f"{node['name']}: a second source beside the host's own"
        assert "v1.30" in (sources.parent / "kubernetes.list.bak").read_text()  # apt does not read it
    assert invariants.check_all(box, max_unavailable=1) == []


def test_an_rpm_repository_of_another_id_and_file_name_has_its_own_exclusion_lifted(make_stack, tmp_path):
    """A host whose configuration management named the repository `[k8s]` in k8s.repo: the
    upgrade edits that file and lifts that id's exclusion (lifting `kubernetes` lifts nothing
    there, and dnf refuses the packages as excluded)."""
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="dnf")
    box = stack.sandbox
    for node in box.nodes:
        repos = box.node_root(node["name"]) / "etc/yum.repos.d"
        (repos / "k8s.repo").write_text((repos / "kubernetes.repo").read_text().replace("[kubernetes]", "[k8s]"))
        (repos / "kubernetes.repo").unlink()
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    assert {r.version for r in box.node_rows()} == {"v1.31.14"}
    for node in box.nodes:
        repos = box.node_root(node["name"]) / "etc/yum.repos.d"
        assert "[k8s]" in (repos / "k8s.repo").read_text() and "v1.31" in (repos / "k8s.repo").read_text()
        assert not (repos / "kubernetes.repo").exists(), node["name"]
        runs = [run for run in box.command_log(node["name"]) if run["argv"][0] == "dnf"]
        assert runs and all(run["argv"][-1] == "--setopt=disable_excludes=k8s" and run["exit"] == 0
                            for run in runs), runs
    assert invariants.check_all(box, max_unavailable=1) == []


def test_failed_kubelet_restart_then_retry_reruns_nothing_done(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=3, version="1.30.4", os_family="mixed")
    box = stack.sandbox
    box.add_fault("fail", node="worker-2", command="systemctl restart kubelet", count=5)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.30", max_unavailable=1), broker=stack.broker)
    assert handle.wait(timeout=240) == "failed"
    status = handle.status()
    error = status["error"]
    assert (error["node"], error["phase"]) == ("worker-2", "restart-kubelet")
    assert "`systemctl restart kubelet` failed (exit 1)" in error["message"]
    assert "simulated failure" in error["tail"]
    before = {n["name"]: len(box.command_log(n["name"])) for n in box.nodes}
    done_before = {name for name, entry in status["entries"][0].items() if entry["state"] == "succeeded"}
    box.clear_faults()
    handle.retry()
    assert handle.wait(timeout=240) == "succeeded", json.dumps(handle.status().get("error"))
    for node in done_before:
        assert len(box.command_log(node)) == before[node], f"{node} ran commands again after retry"
    again = [e["argv"] for e in box.command_log("worker-2")[before["worker-2"]:]]
    assert not any(a[:2] in (["apt-get", "install"], ["dnf", "install"]) or a[0] == "kubeadm" for a in again)
    assert ["systemctl", "restart", "kubelet"] in again
    assert {r.version for r in box.node_rows()} == {"v1.30.14"}
    assert get(handle.id, stack.broker).state() == "succeeded"
    assert invariants.check_all(box, max_unavailable=1) == []


def test_an_upgrade_configuration_reaches_kubeadm_alone_where_a_node_has_it(make_stack, tmp_path):
    """kubeadm >= 1.30, the sandbox's too, refuses every flag beside --config but --yes: the
    campaign's UpgradeConfiguration must carry the settings the policies would pass as flags.
    A file that says otherwise is refused at preflight, before any package or kubeadm runs,
    naming the node, the file and the key; once
    mended, `apply` and cp-2's `upgrade node` take the file alone, and the workers, which have
    no copy, upgrade with the policies as flags."""
    from tests.e2e.test_faults import assert_safe, finish, retry_succeeds

    stack = make_stack(control_planes=2, workers=2, version="1.30.4", os_family="apt")
    box = stack.sandbox
    path = "/etc/kubernetes/upgrade.yaml"
    contradicting = ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\n"
                     "apply:\n  certificateRenewal: false\nnode:\n  certificateRenewal: false\n")
    for node in ("cp-1", "cp-2"):
        (box.node_root(node) / path.lstrip("/")).write_text(contradicting)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", upgrade_configuration=path), broker=stack.broker)
    state, error = finish(handle, timeout=180)
    assert state == "failed", error
    assert error["message"].startswith("preflight failed: cp-1: policies.certificate_renewal is true but "
                                       f"{path} sets apply.certificateRenewal: false")
    assert f"; cp-2: policies.certificate_renewal is true but {path} sets node.certificateRenewal: false" \
        in error["message"]
    for node in box.nodes:  # refused before any package or kubeadm ran
        changed = [e["argv"] for e in box.command_log(node["name"]) if "install" in e["argv"] or
                   e["argv"][1:3] in (["upgrade", "apply"], ["upgrade", "node"])]
        assert changed == [], (node["name"], changed)
    for node in ("cp-1", "cp-2"):
        (box.node_root(node) / path.lstrip("/")).write_text(contradicting.replace("false", "true"))
    retry_succeeds(handle)
    ran = {node["name"]: [" ".join(e["argv"]) for e in box.command_log(node["name"])
                          if e["argv"][1:2] == ["upgrade"] and e["argv"][2] in ("apply", "node")]
           for node in box.nodes}
    assert ran["cp-1"] == [f"kubeadm upgrade apply v1.31.14 --config {path} --yes"]
    assert ran["cp-2"] == [f"kubeadm upgrade node --config {path}"]
    for worker in ("worker-1", "worker-2"):
        assert ran[worker] == ["kubeadm upgrade node --certificate-renewal=true --etcd-upgrade=true"]
    assert_safe(box, 1)
