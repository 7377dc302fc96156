"""The simulated host binaries: real argv, output formats and exit codes, success and failure
paths, kubeadm's ordering rules, the command log, and every injectable fault."""

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.sandbox import hosts
from tests.helpers import run_on, wait_for


@pytest.fixture
def box(make_sandbox):
    # cp-1 apt, cp-2 dnf, worker-1 apt, worker-2 dnf
    return make_sandbox(control_planes=2, workers=2, version="1.30.4", os_family="mixed")


def ok(result):
    assert result.returncode == 0, f"{result.args}: {result.stdout}\n{result.stderr}"
    return result


def point_repository(box, node, minor):
    root = box.node_root(node)
    if (root / hosts.APT_SOURCE).exists():
        (root / hosts.APT_SOURCE).write_text(hosts.apt_source_line(minor))
    else:
        (root / hosts.YUM_REPO).write_text(hosts.yum_repo_text(minor))


def install(box, node, version, *packages):
    """The kubeadm documentation's install sequence for this node's package manager."""
    minor = version.rsplit(".", 1)[0]
    point_repository(box, node, minor)
    if box.node_root(node).joinpath(hosts.APT_SOURCE).exists():
        ok(run_on(box, node, "apt-mark", "unhold", *packages))
        ok(run_on(box, node, "apt-get", "update"))
        ok(run_on(box, node, "apt-get", "install", "-y", *[f"{p}={version}-1.1" for p in packages]))
        ok(run_on(box, node, "apt-mark", "hold", *packages))
    else:
        ok(run_on(box, node, "dnf", "install", "-y", *[f"{p}-{version}-150500.1.1" for p in packages],
                  "--disableexcludes=kubernetes"))


def node_info(box, name):
    return next(n for n in box.api_get("/api/v1/nodes")["items"] if n["metadata"]["name"] == name)


def ready(node):
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


# -- versions --------------------------------------------------------------------------------
def test_kubeadm_and_kubelet_versions(box):
    assert ok(run_on(box, "cp-1", "kubeadm", "version", "-o", "short")).stdout == "v1.30.4\n"
    info = json.loads(ok(run_on(box, "cp-1", "kubeadm", "version", "-o", "json")).stdout)
    assert info["clientVersion"]["gitVersion"] == "v1.30.4"
    assert ok(run_on(box, "cp-1", "kubeadm", "version")).stdout.startswith(
        'kubeadm version: &version.Info{Major:"1", Minor:"30", GitVersion:"v1.30.4"')
    assert ok(run_on(box, "worker-1", "kubelet", "--version")).stdout == "Kubernetes v1.30.4\n"
    bad = run_on(box, "cp-1", "kubeadm", "version", "-o", "xml")
    assert bad.returncode == 1 and 'invalid output format "xml"' in bad.stderr
    assert run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "--bogus").stderr.startswith("unknown flag: --bogus")


# -- apt -------------------------------------------------------------------------------------
def test_apt_serves_only_the_configured_minor_after_update(box):
    missing = run_on(box, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.2-1.1")
    assert (missing.returncode, missing.stderr.strip()) == (100, "E: Version '1.31.2-1.1' for 'kubeadm' was not found")
    point_repository(box, "cp-1", "1.31")
    still = run_on(box, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.2-1.1")
    assert still.returncode == 100, "apt must not see the new repository before apt-get update"
    update = ok(run_on(box, "cp-1", "apt-get", "update"))
    assert "Hit:1 https://pkgs.k8s.io/core:/stable:/v1.31/deb  InRelease" in update.stdout
    madison = ok(run_on(box, "cp-1", "apt-cache", "madison", "kubeadm")).stdout.splitlines()
    assert madison[0] == "   kubeadm | 1.31.14-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages"
    assert len(madison) == 15
    # several packages at once, each in turn, as apt-cache prints them; one it cannot find is
    # said on stderr and the listing goes on
    several = ok(run_on(box, "cp-1", "apt-cache", "madison", "kubelet", "no-such-package", "kubectl"))
    rows = [line.split("|")[0].strip() for line in several.stdout.splitlines()]
    assert rows == ["kubelet"] * 15 + ["kubectl"] * 15
    assert several.stderr.strip() == "N: Unable to locate package no-such-package"


def test_a_mirror_of_pkgs_k8s_io_serves_the_same_and_apt_needs_the_key_its_source_names(box):
    mirror = "https://nexus.corp.example/repository/k8s/core:/stable:/v1.31/deb/"
    source = box.node_root("cp-1") / hosts.APT_SOURCE
    source.write_text(f"deb [signed-by=/usr/share/keyrings/kubernetes-archive-keyring.gpg] {mirror} /\n")
    unsigned = run_on(box, "cp-1", "apt-get", "update")
    assert unsigned.returncode == 100
    assert "NO_PUBKEY 234654DA9A296436" in unsigned.stdout
    assert f"E: The repository '{mirror}  InRelease' is not signed." in unsigned.stderr
    keyring = box.node_root("cp-1") / "usr/share/keyrings/kubernetes-archive-keyring.gpg"
    keyring.parent.mkdir(parents=True)
    keyring.write_bytes((box.node_root("cp-1") / hosts.APT_KEYRING).read_bytes())
    update = ok(run_on(box, "cp-1", "apt-get", "update"))
    assert f"Hit:1 {mirror.rstrip('/')}  InRelease" in update.stdout
    madison = ok(run_on(box, "cp-1", "apt-cache", "madison", "kubeadm")).stdout.splitlines()
    assert madison[0] == f"   kubeadm | 1.31.14-1.1 | {mirror.rstrip('/')}  Packages"
    point_repository(box, "cp-2", "1.31")
    repo = box.node_root("cp-2") / hosts.YUM_REPO
    repo.write_text(repo.read_text().replace("https://pkgs.k8s.io/", "https://pulp.corp.example/k8s/"))
    listing = ok(run_on(box, "cp-2", "dnf", "list", "--showduplicates", "kubeadm",
                        "--setopt=disable_excludes=kubernetes")).stdout
    assert "1.31.14-150500.1.1" in listing


def test_apt_reads_every_source_file_one_line_and_deb822_as_apt_does(box):
    """sources.list.d as apt reads it: `.list` and deb822 `.sources` files in name order, a
    `.bak` skipped silently, another suffix with a notice; one repository with two keyrings
    stops apt before it fetches anything; two minors configured list both."""
    root = box.node_root("cp-1")
    sources = root / "etc/apt/sources.list.d"
    keyring = "/" + hosts.APT_KEYRING
    old_line = (root / hosts.APT_SOURCE).read_text()
    (root / hosts.APT_SOURCE).rename(sources / "kubernetes.list.bak")  # as apt modernize-sources leaves it
    (sources / "kubernetes.sources").write_text(
        "# Modernized from /etc/apt/sources.list.d/kubernetes.list\nTypes: deb\n"
        "URIs: https://pkgs.k8s.io/core:/stable:/v1.31/deb/\nSuites: /\n"
        f"Signed-By: {keyring}\n\nTypes: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.29/deb/\n"
        f"Suites: /\nSigned-By: {keyring}\nEnabled: no\n")
    (sources / "kubernetes.list.kubeupgrade-backup").write_text(old_line)
    update = ok(run_on(box, "cp-1", "apt-get", "update"))
    assert update.stdout.splitlines()[0] == "Hit:1 https://pkgs.k8s.io/core:/stable:/v1.31/deb  InRelease"
    assert "v1.29" not in update.stdout and "v1.30" not in update.stdout  # disabled, and not read
    assert update.stderr.strip() == ("N: Ignoring file 'kubernetes.list.kubeupgrade-backup' in directory "
                                     "'/etc/apt/sources.list.d/' as it has an invalid filename extension")
    madison = ok(run_on(box, "cp-1", "apt-cache", "madison", "kubeadm")).stdout.splitlines()
    assert {row.split("|")[1].strip()[:4] for row in madison} == {"1.31"}

    (sources / "kubernetes.list.kubeupgrade-backup").unlink()
    (sources / "k8s.list").write_text(old_line)  # the old minor too, in a second file
    ok(run_on(box, "cp-1", "apt-get", "update"))
    madison = ok(run_on(box, "cp-1", "apt-cache", "madison", "kubeadm")).stdout.splitlines()
    assert madison[0].split("|")[1].strip().startswith("1.31.")
    assert any("| 1.30.4-1.1 | https://pkgs.k8s.io/core:/stable:/v1.30/deb  Packages" in row for row in madison)

    (sources / "k8s.list").write_text(
        "deb [signed-by=/usr/share/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n")
    conflict = run_on(box, "cp-1", "apt-get", "update")
    assert conflict.returncode == 100 and conflict.stdout == ""
    assert conflict.stderr.splitlines() == [
        "E: Conflicting values set for option Signed-By regarding source "
        f"https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /: /usr/share/keyrings/kubernetes.gpg != {keyring}",
        "E: The list of sources could not be read."]
    (sources / "k8s.list").write_text(f"deb [signed-by={keyring}] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n")
    twice = ok(run_on(box, "cp-1", "apt-get", "update"))
    assert twice.stderr.strip() == ("W: Target Packages (Packages) is configured multiple times in "
                                    "/etc/apt/sources.list.d/k8s.list:1 and /etc/apt/sources.list.d/kubernetes.sources:1")
    (sources / "k8s.list").write_text("deb https://pkgs.k8s.io/core:/stable:/v1.31/deb/\n")
    malformed = run_on(box, "cp-1", "apt-get", "update")
    assert malformed.returncode == 100
    assert malformed.stderr.splitlines()[0] == ("E: Malformed entry 1 in list file "
                                                "/etc/apt/sources.list.d/k8s.list (Suite)")


def test_a_minor_without_a_repository_fails_like_apt_and_dnf_do(box):
    point_repository(box, "cp-1", "1.99")
    apt = run_on(box, "cp-1", "apt-get", "update")
    assert apt.returncode == 100
    assert "404  Not Found" in apt.stdout and "does not have a Release file" in apt.stderr
    point_repository(box, "cp-2", "1.99")
    dnf = run_on(box, "cp-2", "dnf", "makecache")
    assert dnf.returncode == 1
    assert "Status code: 404 for https://pkgs.k8s.io/core:/stable:/v1.99/rpm/repodata/repomd.xml" in dnf.stderr
    assert "Error: Failed to download metadata for repo 'kubernetes'" in dnf.stderr
    point_repository(box, "cp-2", "1.31")
    ok(run_on(box, "cp-2", "dnf", "makecache"))


def test_held_packages_do_not_move(box):
    point_repository(box, "cp-1", "1.30")
    ok(run_on(box, "cp-1", "apt-get", "update"))
    held = run_on(box, "cp-1", "apt-get", "install", "-y", "kubeadm=1.30.9-1.1")
    assert held.returncode == 100
    assert "E: Held packages were changed and -y was used without --allow-change-held-packages." in held.stderr
    assert ok(run_on(box, "cp-1", "dpkg-query", "-W", "--showformat=${Version}", "kubeadm")).stdout == "1.30.4-1.1"
    assert ok(run_on(box, "cp-1", "apt-mark", "showhold")).stdout.split() == ["kubeadm", "kubectl", "kubelet"]
    assert ok(run_on(box, "cp-1", "apt-mark", "unhold", "kubeadm")).stdout.strip() == "Canceled hold on kubeadm."
    assert ok(run_on(box, "cp-1", "apt-mark", "unhold", "kubeadm")).stdout.strip() == "kubeadm was already not on hold."
    ok(run_on(box, "cp-1", "apt-get", "install", "-y", "kubeadm=1.30.9-1.1"))
    again = ok(run_on(box, "cp-1", "apt-get", "install", "-y", "kubeadm=1.30.9-1.1"))
    assert "kubeadm is already the newest version (1.30.9-1.1)." in again.stdout
    policy = ok(run_on(box, "cp-1", "apt-cache", "policy", "kubeadm")).stdout
    assert "Installed: 1.30.9-1.1" in policy and "Candidate: 1.30.14-1.1" in policy


def test_downloading_a_held_package_needs_the_same_permission_and_moves_nothing(box):
    # apt runs its held-package check before downloading too (only the essential-package
    # check is skipped for --download-only)
    point_repository(box, "cp-1", "1.30")
    ok(run_on(box, "cp-1", "apt-get", "update"))
    refused = run_on(box, "cp-1", "apt-get", "install", "-y", "-q", "--download-only", "kubeadm=1.30.9-1.1")
    assert refused.returncode == 100
    assert "The following held packages will be changed:\n  kubeadm" in refused.stdout
    assert "E: Held packages were changed and -y was used without --allow-change-held-packages." in refused.stderr
    fetched = ok(run_on(box, "cp-1", "apt-get", "install", "-y", "-q", "--download-only",
                        "--allow-change-held-packages", "kubeadm=1.30.9-1.1"))
    assert "Download complete and in download only mode" in fetched.stdout
    assert ok(run_on(box, "cp-1", "dpkg-query", "-W", "--showformat=${Version}", "kubeadm")).stdout == "1.30.4-1.1"
    assert ok(run_on(box, "cp-1", "apt-mark", "showhold")).stdout.split() == ["kubeadm", "kubectl", "kubelet"]


def test_apt_without_yes_aborts(box):
    ok(run_on(box, "cp-1", "apt-mark", "unhold", "kubeadm"))
    result = run_on(box, "cp-1", "apt-get", "install", "kubeadm=1.30.5-1.1")
    assert result.returncode == 1 and "Abort." in result.stdout


# -- dnf / yum -------------------------------------------------------------------------------
def test_dnf_needs_disableexcludes_and_the_right_repository(box):
    excluded = run_on(box, "cp-2", "dnf", "install", "-y", "kubeadm-1.30.9-150500.1.1")
    assert excluded.returncode == 1
    assert "All matches were filtered out by exclude filtering for argument: kubeadm-1.30.9-150500.1.1" in excluded.stderr
    wrong_minor = run_on(box, "cp-2", "dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", "--disableexcludes=kubernetes")
    assert wrong_minor.returncode == 1 and "Error: Unable to find a match: kubeadm-1.31.2-150500.1.1" in wrong_minor.stderr
    point_repository(box, "cp-2", "1.31")
    listing = ok(run_on(box, "cp-2", "dnf", "list", "--showduplicates", "kubeadm", "--disableexcludes=kubernetes")).stdout
    assert "kubeadm.x86_64                  1.31.14-150500.1.1" in listing
    assert "Installed Packages" in listing and "1.30.4-150500.1.1" in listing
    ok(run_on(box, "cp-2", "yum", "install", "-y", "kubeadm-1.31.2-*", "--disableexcludes=kubernetes"))
    assert ok(run_on(box, "cp-2", "rpm", "-q", "kubeadm")).stdout.strip() == "kubeadm-1.31.2-150500.1.1.x86_64"
    again = ok(run_on(box, "cp-2", "dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", "--disableexcludes=kubernetes"))
    assert "Nothing to do." in again.stdout
    first = listing.splitlines()[0]  # dnf says when, in the C locale's %c
    assert re.fullmatch(r"Last metadata expiration check: 0:00:\d\d ago on "
                        r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\.", first), first
    point_repository(box, "cp-2", "1.29")
    rebuilt = ok(run_on(box, "cp-2", "dnf", "list", "--showduplicates", "kubeadm", "--disableexcludes=kubernetes")).stdout
    assert "1.29.4-150500.2.1" in rebuilt and "1.29.5-150500.1.1" in rebuilt  # releases differ


def test_dnf_4_lifts_the_exclusion_by_flag_or_by_option_and_yum_3_by_flag_only(box, make_sandbox):
    point_repository(box, "cp-2", "1.30")
    by_option = ok(run_on(box, "cp-2", "dnf", "list", "--showduplicates", "kubeadm",
                          "--setopt=disable_excludes=kubernetes")).stdout
    assert "Available Packages" in by_option and "1.30.14-150500.1.1" in by_option
    assert ok(run_on(box, "cp-2", "dnf", "--version")).stdout.splitlines()[0] == "4.14.0"
    old = make_sandbox(control_planes=1, workers=0, version="1.30.4", os_family="yum")
    point_repository(old, "cp-1", "1.30")
    refused = run_on(old, "cp-1", "yum", "install", "-y", "kubeadm-1.30.9-150500.1.1",
                     "--setopt=disable_excludes=kubernetes")
    assert refused.returncode == 1 and "filtered out by exclude filtering" in refused.stderr
    ok(run_on(old, "cp-1", "yum", "install", "-y", "kubeadm-1.30.9-150500.1.1", "--disableexcludes=kubernetes"))


def test_dnf_lifts_an_exclusion_only_for_the_repository_ids_it_is_given(box):
    """The exclusion is a repository's own: lifting `kubernetes` does nothing for a `[k8s]`
    section, in a file of any name; dnf names the repository by its id."""
    repos = box.node_root("cp-2") / "etc/yum.repos.d"
    text = (repos / "kubernetes.repo").read_text().replace("[kubernetes]", "[k8s]")
    (repos / "kubernetes.repo").unlink()
    (repos / "k8s.repo").write_text(text)
    (repos / "rocky.repo").write_text("[baseos]\nname=Rocky Linux BaseOS\n"
                                      "mirrorlist=https://mirrors.rockylinux.org/mirrorlist?repo=BaseOS-9\n")
    spec = "kubeadm-1.30.9-150500.1.1"
    refused = run_on(box, "cp-2", "dnf", "install", "-y", spec, "--setopt=disable_excludes=kubernetes")
    assert refused.returncode == 1 and "filtered out by exclude filtering" in refused.stderr
    listing = ok(run_on(box, "cp-2", "dnf", "list", "--showduplicates", "kubeadm",
                        "--setopt=disable_excludes=main,k8s")).stdout
    assert "kubeadm.x86_64                  1.30.14-150500.1.1                k8s" in listing.splitlines()
    ok(run_on(box, "cp-2", "dnf", "install", "-y", spec, "--disableexcludes=k8s"))
    assert ok(run_on(box, "cp-2", "rpm", "-q", "kubeadm")).stdout.strip() == f"{spec}.x86_64"
    (repos / "k8s.repo").write_text(text.replace("v1.30", "v1.99"))
    missing = run_on(box, "cp-2", "dnf", "makecache", "--setopt=disable_excludes=k8s")
    assert "Error: Failed to download metadata for repo 'k8s'" in missing.stderr
    (repos / "k8s.repo").write_text(text.replace("enabled=1", "enabled=0"))
    disabled = run_on(box, "cp-2", "dnf", "install", "-y", spec, "--setopt=disable_excludes=all")
    assert disabled.returncode == 1 and "No match for argument" in disabled.stderr


def test_dnf_5_refuses_disableexcludes_and_answers_in_its_own_words(make_sandbox):
    from kubeupgrade.host.listings import parse_listing

    fedora = make_sandbox(control_planes=1, workers=0, version="1.30.4", os_family="dnf5")
    image = node_info(fedora, "cp-1")["status"]["nodeInfo"]["osImage"]
    assert image.startswith("Fedora Linux 42")
    assert ok(run_on(fedora, "cp-1", "dnf", "--version")).stdout.startswith("dnf5 version 5.")
    for tool, argv in [("dnf", ["install", "-y", "kubeadm-1.30.9-150500.1.1", "--disableexcludes=kubernetes"]),
                       ("yum", ["makecache", "--disableexcludes=kubernetes"]),
                       ("dnf", ["--disablepkgs=all", "list", "kubeadm"])]:
        dropped = run_on(fedora, "cp-1", tool, *argv)
        flag = next(a for a in argv if a.startswith("--disable"))
        command = argv[0] if argv[0] != flag else "dnf5"
        assert dropped.returncode == 2, dropped
        assert dropped.stderr.strip() == (f'Unknown argument "{flag}" for command "{command}". '
                                          'Add "--help" for more information about the arguments.')
        assert dropped.stdout == ""
    excluded = run_on(fedora, "cp-1", "dnf", "install", "-y", "kubeadm-1.30.9-150500.1.1")
    assert excluded.returncode == 1
    assert excluded.stderr.splitlines() == ["Failed to resolve the transaction:",
                                            "Argument 'kubeadm-1.30.9-150500.1.1' matches only excluded packages."]
    lifted = "--setopt=disable_excludes=kubernetes"
    missing = run_on(fedora, "cp-1", "dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", lifted)
    assert missing.returncode == 1 and "No match for argument: kubeadm-1.31.2-150500.1.1" in missing.stderr
    listing = ok(run_on(fedora, "cp-1", "dnf", "list", "--showduplicates", "kubeadm", lifted)).stdout
    lines = listing.splitlines()
    assert lines[:3] == ["Updating and loading repositories:", "Repositories loaded.", "Installed packages"]
    assert "Available packages" in lines and "" in lines  # a blank line between the sections
    offered = [row.package.raw for row in parse_listing(listing, "kubeadm")]
    assert "1.30.14-150500.1.1" in offered and "1.30.4-150500.1.1" in offered
    ok(run_on(fedora, "cp-1", "dnf", "install", "-y", "kubeadm-1.30.9-150500.1.1", lifted))
    assert ok(run_on(fedora, "cp-1", "rpm", "-q", "kubeadm")).stdout.strip() == "kubeadm-1.30.9-150500.1.1.x86_64"
    again = ok(run_on(fedora, "cp-1", "yum", "install", "-y", "kubeadm-1.30.9-150500.1.1", "--setopt", "disable_excludes=all"))
    assert again.stdout.splitlines()[-2:] == ['Package "kubeadm-1.30.9-150500.1.1.x86_64" is already installed.',
                                              "Nothing to do."]


# -- kubeadm ---------------------------------------------------------------------------------
def test_apply_refuses_a_target_two_minors_ahead_and_a_kubeadm_older_than_the_target(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    too_high = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.32.1", "--yes")
    assert too_high.returncode == 1
    assert 'Specified version to upgrade to "v1.32.1" is too high; kubeadm can upgrade only 1 minor version at a time' in too_high.stderr
    newer = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.5", "--yes")
    assert newer.returncode == 1
    assert 'is higher than the kubeadm version "v1.31.2". Upgrade kubeadm first' in newer.stderr
    assert "Can be bypassed if you pass the --force flag" in newer.stderr


def test_apply_asks_for_confirmation(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    result = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", stdin="n\n")
    assert result.returncode == 1
    assert "[upgrade] Are you sure you want to proceed? [y/N]: " in result.stdout
    assert "won't proceed; the user didn't answer (Y|y) in order to continue" in result.stderr


def test_apply_refuses_notready_control_planes(box):
    box.add_fault("never-ready", node="cp-2")
    ok(run_on(box, "cp-2", "systemctl", "restart", "kubelet"))
    wait_for(lambda: ready(node_info(box, "cp-2")) == "False")
    install(box, "cp-1", "1.31.2", "kubeadm")
    result = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes")
    assert result.returncode == 1
    assert "[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [cp-2]" in result.stderr
    box.clear_faults()
    wait_for(lambda: ready(node_info(box, "cp-2")) == "True")


def test_apply_needs_admin_conf(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    (box.node_root("cp-1") / "etc/kubernetes/admin.conf").unlink()
    result = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes")
    assert result.returncode == 1
    assert "open /etc/kubernetes/admin.conf: no such file or directory" in result.stderr


@pytest.mark.parametrize("spoil", [
    lambda text: text.replace("https://", "http://"),  # not the API server's scheme
    lambda text: text.replace("clusters:", "clusterz:"),  # a key missing
    lambda text: "clusters: [unclosed\n",  # not YAML
    lambda text: text.replace("certificate-authority-data: ", "certificate-authority-data: x"),  # not a CA
])
def test_a_kubeconfig_kubeadm_cannot_use_is_one_line_and_exit_1(box, spoil):
    conf = box.node_root("cp-1") / "etc/kubernetes/admin.conf"
    conf.write_text(spoil(conf.read_text()))
    result = run_on(box, "cp-1", "kubeadm", "upgrade", "plan")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith('couldn\'t create a Kubernetes client from file "/etc/kubernetes/admin.conf": '
                            "failed to load admin kubeconfig: invalid configuration: "), first


def test_dry_run_changes_nothing(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    before = (box.node_root("cp-1") / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text()
    result = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--dry-run"))
    assert "Finished dryrunning successfully" in result.stdout
    assert (box.node_root("cp-1") / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text() == before
    assert not list((box.node_root("cp-1") / "etc/kubernetes/tmp").iterdir())


def apiserver_images(box):
    pods = box.api_get("/api/v1/namespaces/kube-system/pods?labelSelector=component%3Dkube-apiserver")["items"]
    return {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"].rsplit(":", 1)[1] for p in pods}


def addon_images(box):
    coredns = box.api_get("/apis/apps/v1/namespaces/kube-system/deployments/coredns")
    proxy = box.api_get("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy")
    return (coredns["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1],
            proxy["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1])


def test_apply_then_node_upgrades_addons_only_after_the_last_control_plane(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    apply = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    assert '[upgrade/successful] SUCCESS! Your cluster was upgraded to "v1.31.2". Enjoy!' in apply.stdout
    assert "[upgrade/addons] skip upgrade addons because control plane instances [cp-2] have not been upgraded\n" \
        "\n[upgrade/successful]" in apply.stdout  # kubeadm 1.31's words
    assert apiserver_images(box) == {"cp-1": "v1.31.2", "cp-2": "v1.30.4"}
    assert addon_images(box) == ("v1.11.1", "v1.30.4")
    backups = sorted(p.name for p in (box.node_root("cp-1") / "etc/kubernetes/tmp").iterdir())
    assert backups and backups[0].startswith("kubeadm-backup-manifests-")
    config = box.api_get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    assert "kubernetesVersion: v1.31.2" in config["data"]["ClusterConfiguration"]
    # A worker's `upgrade node` only rewrites its kubelet configuration.
    install(box, "worker-1", "1.31.2", "kubeadm")
    worker = ok(run_on(box, "worker-1", "kubeadm", "upgrade", "node"))
    assert "Skipping phase. Not a control plane node." in worker.stdout
    assert "sandboxWrittenFor: v1.31.2" in (box.node_root("worker-1") / "var/lib/kubelet/config.yaml").read_text()
    # The last control plane brings the addons along.
    install(box, "cp-2", "1.31.2", "kubeadm")
    node = ok(run_on(box, "cp-2", "kubeadm", "upgrade", "node"))
    assert "[addons] Applied essential addon: CoreDNS" in node.stdout
    assert apiserver_images(box) == {"cp-1": "v1.31.2", "cp-2": "v1.31.2"}
    assert addon_images(box) == ("v1.11.3", "v1.31.2")
    wait_for(lambda: {p["spec"]["containers"][0]["image"] for p in box.api_get(
        "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dkube-proxy")["items"]}
        == {"registry.k8s.io/kube-proxy:v1.31.2"})
    # kubeadm is idempotent: a re-run converges without changing anything.
    rerun = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    assert "Current and new manifests of kube-apiserver are equal, skipping upgrade" in rerun.stdout
    assert box.api_get("/version")["gitVersion"] == "v1.31.2"


# What a worker's `kubeadm upgrade node` (one per worker per upgrade) must not import: the HTTP
# libraries (the client speaks HTTP/1.1 on `ssl` itself), the object factory and the static pod
# manifests (a control plane's part), and the version model's old dependencies.
WORKER_KUBEADM_HEAVY = {"urllib.request", "http.client", "email", "dataclasses", "typing", "shutil",
                        "pathlib", "kubeupgrade.sandbox.objects", "kubeupgrade.sandbox.hosts",
                        "kubeupgrade.sandbox.store", "uuid"}


def test_a_workers_kubeadm_upgrade_node_and_package_runs_import_only_what_they_use(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    point_repository(box, "worker-1", "1.31")
    runs = [("apt-get", "update"), ("apt-cache", "madison", "kubeadm"), ("apt-mark", "unhold", "kubeadm"),
            ("apt-get", "install", "-y", "kubeadm=1.31.2-1.1"), ("kubeadm", "upgrade", "node")]
    for argv in runs:
        imported = reported_imports(box, "worker-1", box.node_bin("worker-1") / argv[0], *argv[1:])
        heavy = WORKER_KUBEADM_HEAVY | ({"re", "enum"} if argv[0] != "kubeadm" else set())  # YAML needs re
        assert not imported & heavy, f"{' '.join(argv)}: {sorted(imported & heavy)}"
    assert "sandboxWrittenFor: v1.31.2" in (box.node_root("worker-1") / "var/lib/kubelet/config.yaml").read_text()
    backups = list((box.node_root("worker-1") / "etc/kubernetes/tmp").glob("kubeadm-kubelet-config*/config.yaml"))
    assert len(backups) == 1 and "sandboxWrittenFor: v1.30.4" in backups[0].read_text()


def test_the_api_client_keeps_one_connection_reopens_it_after_a_server_restart_and_leaks_none(box):
    from kubeupgrade.sandbox.hostbin.apiclient import ApiUnavailable, KubeClient

    def open_descriptors():
        return len(os.listdir("/proc/self/fd"))

    kubeconfig = str(box.node_root("cp-1") / "etc/kubernetes/admin.conf")
    before = open_descriptors()
    client = KubeClient(kubeconfig)
    assert client.get("/version")["gitVersion"] == "v1.30.4"
    first = client._socket
    assert client.get("/api/v1/nodes")["items"] and client._socket is first  # kept alive
    assert box.stop_api()
    box.start_api()
    # The kept-alive connection died with the server: the request is sent again on a new one.
    assert client.get("/version")["gitVersion"] == "v1.30.4" and client._socket is not first
    assert box.stop_api()
    # Worded as kubeadm (Go's net/http) words it, not as Python does.
    with pytest.raises(ApiUnavailable, match=r'^Get "https://127\.0\.0\.1:(\d+)/version\?timeout=10s": '
                                             r'dial tcp 127\.0\.0\.1:\1: connect: connection refused$'):
        client.get("/version")
    box.start_api()
    assert client.get("/version")["gitVersion"] == "v1.30.4"
    client.close()
    assert open_descriptors() == before


def test_an_api_server_that_accepts_but_never_answers_is_worded_as_go_words_it(box):
    """A frozen API server: the kernel still completes TCP connects (the listen backlog), but
    no TLS handshake and no answer ever comes. kubeadm then prints Go's timeout errors; the
    agents recognise an outage by them (host/unreachable_api)."""
    import socket

    from kubeupgrade.sandbox.hostbin.apiclient import ApiUnavailable, KubeClient

    kubeconfig = str(box.node_root("cp-1") / "etc/kubernetes/admin.conf")
    client = KubeClient(kubeconfig)
    assert client.get("/version")["gitVersion"] == "v1.30.4"
    with socket.create_server(("127.0.0.1", 0), backlog=8) as frozen:
        client.close()
        client.host, client.port = "127.0.0.1", frozen.getsockname()[1]
        client.server = f"https://127.0.0.1:{client.port}"
        client.authority = f"127.0.0.1:{client.port}"
        with pytest.raises(ApiUnavailable, match=r'^Get "https://127\.0\.0\.1:\d+/api/v1/nodes\?limit=1&timeout=10s": '
                                                 r'net/http: TLS handshake timeout$'):
            client.request("GET", "/api/v1/nodes?limit=1", timeout=0.3)
    client.close()


def test_upgrade_node_with_an_old_kubeadm_is_refused(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    result = run_on(box, "worker-1", "kubeadm", "upgrade", "node")
    assert result.returncode == 1 and "upgrade kubeadm first" in result.stderr


def test_plan_offers_the_series_newest_patch_and_the_next_minor_and_says_when_kubeadm_is_behind(box):
    plan = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "plan")).stdout  # kubeadm at the cluster's v1.30.4
    assert "[upgrade/versions] Latest version in the v1.30 series: v1.30.14" in plan
    assert "Upgrade to the latest version in the v1.30 series:" in plan
    assert "\tkubeadm upgrade apply v1.30.14\n\nNote: Before you can perform this upgrade, you have to " \
        "update kubeadm to v1.30.14." in plan
    assert "Upgrade to the latest stable version:" in plan and "\tkubeadm upgrade apply v1.31.14" in plan
    install(box, "cp-1", "1.31.14", "kubeadm")
    newer = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "plan")).stdout
    assert "[upgrade/versions] Cluster version: v1.30.4" in newer
    assert "update kubeadm to v1.30.14" not in newer and "update kubeadm to v1.31.14" not in newer
    # Go's tabwriter: every column as wide as its widest cell plus three, at least ten.
    assert "kube-apiserver            cp-1      v1.30.4    v1.31.14\n" in newer
    assert "kube-proxy                          v1.30.4    v1.31.14\n" in newer
    assert "COMPONENT   NODE       CURRENT   TARGET\nkubelet     cp-1       v1.30.4   v1.31.14\n" in newer
    assert 'Configs that have a "yes" mark in the "MANUAL UPGRADE REQUIRED" column' in newer


def test_a_newer_kubeadm_refuses_an_older_target_without_force_and_two_minors_down_even_with_it(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    older = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.30.9", "--yes")
    assert older.returncode == 1
    assert older.stderr.startswith("[upgrade/version] FATAL: the --version argument is invalid due to "
                                   "these errors:\n\n\t- Kubeadm version v1.31.2 can only be used to "
                                   "upgrade to Kubernetes version 1.31\n\nCan be bypassed if you pass "
                                   "the --force flag\n"), older.stderr
    down = run_on(box, "cp-2", "kubeadm", "upgrade", "apply", "v1.28.15", "--yes", "--force")  # kubeadm 1.30.4
    assert down.returncode == 1 and "fatal errors" in down.stderr
    assert 'Specified version to downgrade to "v1.28.15" is too low; kubeadm can downgrade only 1 ' \
        "minor version at a time" in down.stderr
    assert apiserver_images(box) == {"cp-1": "v1.30.4", "cp-2": "v1.30.4"}


def test_kubeadm_1_31_speaks_the_words_of_its_time(box):
    """Up to 1.31: `upgrade apply` is one command, not phases (real outputs of 1.28-1.31)."""
    install(box, "cp-1", "1.31.2", "kubeadm")
    version = ok(run_on(box, "cp-1", "kubeadm", "version")).stdout
    assert re.fullmatch(r'kubeadm version: &version.Info\{Major:"1", Minor:"31", GitVersion:"v1.31.2", '
                        r'GitCommit:"[0-9a-f]{40}", GitTreeState:"clean", BuildDate:"\d{4}-\d\d-\d\dT'
                        r'\d\d:\d\d:\d\dZ", GoVersion:"go1\.\d+\.\d+", Compiler:"gc", '
                        r'Platform:"linux/amd64"\}\n', version), version
    out = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes")).stdout.splitlines()
    assert out[:7] == [
        "[preflight] Running pre-flight checks.",
        "[upgrade/config] Reading configuration from the cluster...",
        "[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'",
        "[upgrade] Running cluster health checks",
        '[upgrade/version] You have chosen to change the cluster version to "v1.31.2"',
        "[upgrade/versions] Cluster version: v1.30.4",
        "[upgrade/versions] kubeadm version: v1.31.2"]
    assert '[upgrade/apply] Upgrading your Static Pod-hosted control plane to version "v1.31.2" (timeout: 5m0s)...' in out
    assert "[upgrade/etcd] Upgrading to TLS for etcd" in out
    assert any(line.startswith('[upgrade/staticpods] Moved new manifest to "/etc/kubernetes/manifests/kube-apiserver.yaml" '
                               'and backed up old manifest to "/etc/kubernetes/tmp/kubeadm-backup-manifests-')
               for line in out)
    assert "[apiclient] Found 2 Pods for label selector component=kube-apiserver" in out
    assert out[-4:] == ["", '[upgrade/successful] SUCCESS! Your cluster was upgraded to "v1.31.2". Enjoy!', "",
                        "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with "
                        "upgrading your kubelets if you haven't already done so."]
    install(box, "worker-1", "1.31.2", "kubeadm")
    node = ok(run_on(box, "worker-1", "kubeadm", "upgrade", "node"))
    lines = node.stdout.splitlines()
    assert lines[:5] == [
        "[upgrade] Reading configuration from the cluster...",
        "[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'",
        "[preflight] Running pre-flight checks",
        "[preflight] Skipping prepull. Not a control plane node.",
        "[upgrade] Skipping phase. Not a control plane node."]
    assert lines[-2:] == ["[upgrade] The configuration for this node was successfully updated!",
                          "[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager."]
    assert node.stderr == ""


def test_kubeadm_before_1_30_plans_per_component_with_the_api_servers_version(make_sandbox):
    """Until 1.30 the plan read its configuration before the preflight checks, took the cluster's
    version from the API server and counted kubelets per version (real outputs of 1.28 and 1.29)."""
    box = make_sandbox(control_planes=1, workers=2, version="1.28.15", os_family="apt")
    install(box, "cp-1", "1.29.15", "kubeadm")
    lines = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "plan")).stdout.splitlines()
    assert lines[0].startswith("[upgrade/config] Reading configuration") and "[preflight] Running pre-flight checks." in lines[2:]
    assert "[upgrade/versions] Cluster version: v1.28.15" in lines
    assert "COMPONENT   CURRENT        TARGET" in lines and "kubelet     3 x v1.28.15   v1.29.15" in lines
    assert "kube-apiserver            v1.28.15   v1.29.15" in lines
    assert not [line for line in lines if " NODE " in line]


def test_kubeadm_1_32_and_later_speak_in_phases(make_sandbox):
    """From 1.32: phases, new tags and a new success line (real outputs of 1.32-1.35)."""
    box = make_sandbox(control_planes=1, workers=1, version="1.31.14", os_family="apt")
    install(box, "cp-1", "1.32.12", "kubeadm")
    refused = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.14", "--yes")
    assert "error execution phase preflight: the version argument is invalid due to these errors:\n\n" \
        "\t- Kubeadm version v1.32.12 can only be used to upgrade to Kubernetes version 1.32\n\n" \
        "Can be bypassed if you pass the --force flag" in refused.stderr
    out = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.32.12", "--yes"))
    lines = out.stdout.splitlines()
    assert lines[:4] == [
        '[upgrade] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...',
        "[upgrade] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.",
        "[upgrade/preflight] Running preflight checks",
        "[upgrade] Running cluster health checks"]
    assert '[upgrade/preflight] You have chosen to upgrade the cluster version to "v1.32.12"' in lines
    assert "[upgrade/preflight] You can also perform this action beforehand using 'kubeadm config images pull'" in lines
    assert '[upgrade/control-plane] Upgrading your static Pod-hosted control plane to version "v1.32.12" (timeout: 5m0s)...' in lines
    assert any(line.startswith('[upgrade/staticpods] Moving new manifest to "/etc/kubernetes/manifests/etcd.yaml" '
                               'and backing up old manifest to') for line in lines)
    assert "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!" in lines
    assert "[upgrad/kubeconfig] The kubeconfig files for this node were successfully upgraded!" in lines
    assert "postupgrade.go:117] Using temporary directory /etc/kubernetes/tmp/kubeadm-kubelet-config" in out.stderr
    assert lines[-4:] == ["", '[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "v1.32.12".', "",
                          "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order."]
    install(box, "worker-1", "1.32.12", "kubeadm")
    worker = ok(run_on(box, "worker-1", "kubeadm", "upgrade", "node")).stdout.splitlines()
    assert worker[2:6] == ["[upgrade/preflight] Running pre-flight checks",
                           "[upgrade/preflight] Skipping prepull. Not a control plane node.",
                           "[upgrade/control-plane] Skipping phase. Not a control plane node.",
                           "[upgrade/kubeconfig] Skipping phase. Not a control plane node."]
    assert worker[-3:] == ["[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!",
                           "[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.",
                           "[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node."]
    install(box, "cp-1", "1.33.8", "kubeadm")
    fields = ok(run_on(box, "cp-1", "kubeadm", "version")).stdout
    assert 'Minor:"33", EmulationMajor:"", EmulationMinor:"", MinCompatibilityMajor:"", ' \
        'MinCompatibilityMinor:"", GitVersion:"v1.33.8"' in fields


def test_apply_with_an_upgrade_configuration_file(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    (box.node_root("cp-1") / "etc/kubernetes/upgrade.yaml").write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\n"
        "apply:\n  kubernetesVersion: v1.31.2\n  certificateRenewal: false\n  etcdUpgrade: false\n")
    result = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "--config", "/etc/kubernetes/upgrade.yaml", "--yes"))
    assert "Renewing apiserver certificate" not in result.stdout and "Upgrading to TLS for etcd" not in result.stdout
    assert apiserver_images(box)["cp-1"] == "v1.31.2"


def test_kubeadm_from_1_30_refuses_flags_beside_config_as_the_real_one(box):
    """kubeadm#3054/#3076: `--config` stands with no other flag from 1.30 (--yes from 1.30.4)."""
    upgrade = box.node_root("cp-1") / "etc/kubernetes/upgrade.yaml"
    upgrade.write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\n")
    install(box, "cp-1", "1.31.2", "kubeadm")
    mixed = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--config", "/etc/kubernetes/upgrade.yaml",
                   "--yes", "--etcd-upgrade=true", "--certificate-renewal=false")
    assert (mixed.returncode, mixed.stdout) == (1, "")
    assert mixed.stderr.splitlines() == ["can not mix '--config' with arguments [certificate-renewal etcd-upgrade]",
                                         "To see the stack trace of this error execute with --v=5 or higher"]
    assert apiserver_images(box)["cp-1"] == "v1.30.4"
    node = run_on(box, "worker-1", "kubeadm", "upgrade", "node", "--config", "/etc/kubernetes/upgrade.yaml")
    assert (node.returncode, node.stderr.splitlines()[0]) == (1, "unknown flag: --config")  # 1.30.4's kubeadm
    install(box, "cp-2", "1.30.2", "kubeadm")
    early = run_on(box, "cp-2", "kubeadm", "upgrade", "apply", "v1.30.4", "--config", "/etc/kubernetes/upgrade.yaml",
                   "--yes")
    assert early.stderr.splitlines()[0] == "can not mix '--config' with arguments [yes]"


def test_upgrade_node_reads_its_section_of_the_file_and_warns_of_a_cluster_configuration(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    install(box, "cp-2", "1.31.2", "kubeadm")
    (box.node_root("cp-2") / "etc/kubernetes/upgrade.yaml").write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.2\n---\n"
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\nnode:\n  certificateRenewal: false\n")
    before = (box.node_root("cp-2") / "etc/kubernetes/pki/apiserver.crt").read_text()
    result = ok(run_on(box, "cp-2", "kubeadm", "upgrade", "node", "--config", "/etc/kubernetes/upgrade.yaml"))
    assert re.search(r"upgradeconfiguration.go:58\] \[config\] WARNING: YAML document with GroupVersionKind "
                     r"kubeadm.k8s.io/v1beta4, Kind=ClusterConfiguration is deprecated for upgrade", result.stderr)
    assert apiserver_images(box)["cp-2"] == "v1.31.2"
    assert (box.node_root("cp-2") / "etc/kubernetes/pki/apiserver.crt").read_text() == before
    missing = run_on(box, "cp-2", "kubeadm", "upgrade", "node", "--config", "/etc/kubernetes/nowhere.yaml")
    assert missing.stderr.splitlines()[0] == ('unable to load config from file "/etc/kubernetes/nowhere.yaml": '
                                              "open /etc/kubernetes/nowhere.yaml: no such file or directory")


@pytest.mark.parametrize("control_planes", [1, 2])
def test_the_api_is_away_while_the_only_apiserver_restarts(make_sandbox, control_planes):
    """A single control plane's kube-apiserver restarting during its upgrade takes the cluster's
    API away: connections drop until it is back, and kubeadm waits through it. With a second
    control plane, the other API server answers throughout."""
    from kubeupgrade.errors import RuntimeFailure

    box = make_sandbox(control_planes=control_planes, workers=1, version="1.30.4", os_family="apt",
                       time_scale=0.05)
    install(box, "cp-1", "1.31.2", "kubeadm")
    dropped, answered, stop = [], [], threading.Event()

    def poll():
        while not stop.is_set():
            try:
                box.api_get("/version", patience=0)
                answered.append(time.monotonic())
            except RuntimeFailure:
                dropped.append(time.monotonic())
            time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        result = ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    finally:
        stop.set()
        poller.join()
    assert 'Component "kube-apiserver" upgraded successfully!' in result.stdout
    assert apiserver_images(box)["cp-1"] == "v1.31.2"
    if control_planes == 1:
        assert dropped and answered[-1] > dropped[-1]  # away during the restart, then back
        assert dropped[-1] - dropped[0] < 6.0 * 0.05 + 1.0  # about one restart's length
    else:
        assert dropped == []


# -- kubelet, systemctl ----------------------------------------------------------------------
def test_kubelet_restart_goes_notready_then_ready_at_the_installed_version(box):
    install(box, "worker-1", "1.30.9", "kubelet", "kubectl")
    assert node_info(box, "worker-1")["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.4"
    restart = ok(run_on(box, "worker-1", "systemctl", "restart", "kubelet"))
    assert "Run 'systemctl daemon-reload' to reload units." in restart.stderr
    wait_for(lambda: node_info(box, "worker-1")["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.9")
    events = [(h["event"], h.get("kubelet")) for h in box.history() if h["node"] == "worker-1"]
    assert events == [("not-ready", "v1.30.4"), ("ready", "v1.30.9")]
    ok(run_on(box, "worker-1", "systemctl", "daemon-reload"))
    assert ok(run_on(box, "worker-1", "systemctl", "restart", "kubelet")).stderr == ""
    assert ok(run_on(box, "worker-1", "systemctl", "is-active", "kubelet")).stdout == "active\n"


def test_stopped_kubelet_is_inactive_and_the_node_unknown(box):
    ok(run_on(box, "worker-2", "systemctl", "stop", "kubelet"))
    inactive = run_on(box, "worker-2", "systemctl", "is-active", "kubelet")
    assert (inactive.returncode, inactive.stdout) == (3, "inactive\n")
    wait_for(lambda: ready(node_info(box, "worker-2")) == "Unknown")
    ok(run_on(box, "worker-2", "systemctl", "start", "kubelet"))
    wait_for(lambda: ready(node_info(box, "worker-2")) == "True")


def test_swap_and_killall(box):
    assert ok(run_on(box, "worker-1", "swapon", "--show")).stdout == ""
    box.add_fault("swap-on", node="worker-1")
    assert "/swap.img" in ok(run_on(box, "worker-1", "swapon", "--show")).stdout
    ok(run_on(box, "cp-1", "killall", "-s", "SIGTERM", "kube-apiserver"))
    pod = wait_for(lambda: (p := box.api_get("/api/v1/namespaces/kube-system/pods/kube-apiserver-cp-1"))
                   ["status"]["containerStatuses"][0]["restartCount"] == 1 and p)
    assert pod["spec"]["nodeName"] == "cp-1"
    assert run_on(box, "worker-1", "killall", "kube-apiserver").stderr.strip() == "kube-apiserver: no process found"


def test_a_kubelet_set_to_fail_on_swap_restarts_into_a_loop_until_allowed(box):
    # With swap on and failSwapOn left at its default, the kubelet exits at once: `systemctl
    # restart` succeeds (systemd started it), the unit is "activating (auto-restart)" and the
    # node stops reporting. --fail-swap-on=false in KUBELET_EXTRA_ARGS lets it run.
    box.add_fault("swap-on", node="worker-1")
    ok(run_on(box, "worker-1", "systemctl", "restart", "kubelet"))
    active = run_on(box, "worker-1", "systemctl", "is-active", "kubelet")
    assert (active.returncode, active.stdout.strip()) == (3, "activating")
    assert "activating (auto-restart)" in run_on(box, "worker-1", "systemctl", "status", "kubelet").stdout
    wait_for(lambda: ready(node_info(box, "worker-1")) == "Unknown", timeout=30)
    ok(run_on(box, "worker-1", "systemctl", "stop", "kubelet"))  # stopped, it loops no more
    assert run_on(box, "worker-1", "systemctl", "is-active", "kubelet").stdout.strip() == "inactive"
    (box.node_root("worker-1") / "etc/default").mkdir(parents=True, exist_ok=True)
    (box.node_root("worker-1") / "etc/default/kubelet").write_text("KUBELET_EXTRA_ARGS=--fail-swap-on=false\n")
    ok(run_on(box, "worker-1", "systemctl", "restart", "kubelet"))
    assert ok(run_on(box, "worker-1", "systemctl", "is-active", "kubelet")).stdout.strip() == "active"
    wait_for(lambda: ready(node_info(box, "worker-1")) == "True", timeout=30)


# -- command log and faults ------------------------------------------------------------------
def test_every_command_is_logged_with_argv_times_and_exit_code(box):
    ok(run_on(box, "worker-1", "kubeadm", "version", "-o", "short"))
    run_on(box, "worker-1", "apt-get", "install", "-y", "kubeadm=9.9.9-1.1")
    log = box.command_log("worker-1")
    assert [entry["argv"] for entry in log] == [["kubeadm", "version", "-o", "short"],
                                                ["apt-get", "install", "-y", "kubeadm=9.9.9-1.1"]]
    assert [entry["exit"] for entry in log] == [0, 100]
    assert all(entry["end"] >= entry["start"] for entry in log)


def test_fail_fault_hits_the_next_n_runs_of_its_command(box):
    box.add_fault("fail", node="cp-1", command="kubeadm upgrade apply", count=2, exit_code=3)
    install(box, "cp-1", "1.31.2", "kubeadm")
    for _ in range(2):
        failed = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes")
        assert failed.returncode == 3 and "simulated failure" in failed.stderr
    ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    assert ok(run_on(box, "cp-1", "kubeadm", "version", "-o", "short")).stdout == "v1.31.2\n"


def test_hang_fault_delays_the_command(box):
    box.add_fault("hang", node="worker-1", command="kubelet --version", seconds=1.0)
    started = time.monotonic()
    ok(run_on(box, "worker-1", "kubelet", "--version"))
    assert time.monotonic() - started >= 1.0


def test_crash_during_apt_install_leaves_dpkg_interrupted_until_configured(box):
    point_repository(box, "worker-1", "1.30")
    ok(run_on(box, "worker-1", "apt-get", "update"))
    ok(run_on(box, "worker-1", "apt-mark", "unhold", "kubelet"))
    box.add_fault("crash", node="worker-1", command="apt-get install")
    crashed = run_on(box, "worker-1", "apt-get", "install", "-y", "kubelet=1.30.9-1.1")
    assert crashed.returncode == -9
    assert ok(run_on(box, "worker-1", "dpkg-query", "-W", "--showformat=${Status}", "kubelet")).stdout == "install ok unpacked"
    blocked = run_on(box, "worker-1", "apt-get", "install", "-y", "kubelet=1.30.9-1.1")
    assert (blocked.returncode, blocked.stderr.strip()) == (
        100, "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem.")
    assert "Setting up kubelet (1.30.9-1.1) ..." in ok(run_on(box, "worker-1", "dpkg", "--configure", "-a")).stdout
    assert "already the newest version" in ok(run_on(box, "worker-1", "apt-get", "install", "-y", "kubelet=1.30.9-1.1")).stdout
    assert [e["exit"] for e in box.command_log("worker-1")][-5:] == [-9, 0, 100, 0, 0]


def test_crash_in_a_maintainer_script_leaves_the_package_half_configured_until_configured(box):
    point_repository(box, "worker-1", "1.30")
    ok(run_on(box, "worker-1", "apt-get", "update"))
    ok(run_on(box, "worker-1", "apt-mark", "unhold", "kubelet", "kubectl"))
    box.add_fault("crash", node="worker-1", command="apt-get install", point="configuring kubelet")
    crashed = run_on(box, "worker-1", "apt-get", "install", "-y", "kubectl=1.30.9-1.1", "kubelet=1.30.9-1.1")
    assert crashed.returncode == -9
    assert "crashed at configuring kubelet" in box.command_log("worker-1")[-1]["note"]
    status = ok(run_on(box, "worker-1", "dpkg-query", "-W", "--showformat=${Package} ${Status}\\n",
                       "kubectl", "kubelet")).stdout
    # apt configures in order: kubectl was done, kubelet's script was cut off
    assert status.splitlines() == ["kubectl install ok installed", "kubelet install ok half-configured"]
    blocked = run_on(box, "worker-1", "apt-get", "install", "-y", "kubelet=1.30.9-1.1")
    assert blocked.returncode == 100 and "dpkg was interrupted" in blocked.stderr
    assert ok(run_on(box, "worker-1", "dpkg", "--configure", "-a")).stdout == "Setting up kubelet (1.30.9-1.1) ...\n"
    assert "install ok installed" in ok(run_on(box, "worker-1", "dpkg-query", "-W", "--showformat=${Status}",
                                              "kubelet")).stdout


def test_an_rpm_transaction_killed_before_its_cleanup_leaves_both_versions_until_the_older_is_erased(box):
    point_repository(box, "worker-2", "1.30")
    box.add_fault("crash", node="worker-2", command="dnf install", point="not yet erased")
    crashed = run_on(box, "worker-2", "dnf", "install", "-y", "kubelet-1.30.9-150500.1.1",
                     "--disableexcludes=kubernetes")
    assert crashed.returncode == -9
    assert ok(run_on(box, "worker-2", "rpm", "-q", "kubelet")).stdout.splitlines() == [
        "kubelet-1.30.4-150500.1.1.x86_64", "kubelet-1.30.9-150500.1.1.x86_64"]
    again = ok(run_on(box, "worker-2", "dnf", "install", "-y", "kubelet-1.30.9-150500.1.1",
                      "--disableexcludes=kubernetes"))
    assert "is already installed" in again.stdout  # dnf sees the newer: nothing mends it
    assert run_on(box, "worker-2", "rpm", "-e", "kubelet-1.30.9-150500.1.1").returncode == 1
    ok(run_on(box, "worker-2", "rpm", "-e", "kubelet-1.30.4-150500.1.1"))
    assert ok(run_on(box, "worker-2", "rpm", "-q", "kubelet")).stdout == "kubelet-1.30.9-150500.1.1.x86_64\n"


def test_a_crash_point_is_only_for_crash_faults(box):
    with pytest.raises(InvalidInput, match="--point is where a crash fault's command dies"):
        box.add_fault("fail", node="worker-1", command="apt-get install", point="configuring")


def test_crash_during_apply_converges_on_rerun(box):
    install(box, "cp-1", "1.31.2", "kubeadm")
    box.add_fault("crash", node="cp-1", command="kubeadm upgrade apply")
    assert run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes").returncode == -9
    config = box.api_get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    assert "kubernetesVersion: v1.30.4" in config["data"]["ClusterConfiguration"]  # half-applied
    ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    config = box.api_get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    assert "kubernetesVersion: v1.31.2" in config["data"]["ClusterConfiguration"]


def test_a_static_pod_the_kubelet_does_not_restart_is_rolled_back_in_kubeadms_words(box):
    # kubeadm#2957: the kubelet never runs kube-scheduler's new manifest. kubeadm waits out its
    # timeout, then puts back every manifest it changed (etcd's and its data too) and fails;
    # the cluster's configuration stays at the old version. Once the kubelet is fixed, apply
    # goes through.
    install(box, "cp-1", "1.31.2", "kubeadm")
    root = box.node_root("cp-1")
    before = {path.name: path.read_text() for path in (root / "etc/kubernetes/manifests").glob("*.yaml")}
    data = (root / "var/lib/etcd/member/snap/db").read_text()
    box.add_fault("static-pod-stuck", node="cp-1", command="kube-scheduler")
    failed = run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes")
    assert failed.returncode == 1
    assert ("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover "
            "everything into the earlier state. Errors faced: static Pod hash for component "
            "kube-scheduler on Node cp-1 did not change after 5m0s: context deadline exceeded"
            ) in failed.stderr.splitlines()
    assert '[upgrade/staticpods] Component "kube-apiserver" upgraded successfully!' in failed.stdout
    assert {path.name: path.read_text() for path in (root / "etc/kubernetes/manifests").glob("*.yaml")} == before
    assert (root / "var/lib/etcd/member/snap/db").read_text() == data
    config = box.api_get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    assert "kubernetesVersion: v1.30.4" in config["data"]["ClusterConfiguration"]
    apiserver = "/api/v1/namespaces/kube-system/pods/kube-apiserver-cp-1"
    wait_for(lambda: box.api_get(apiserver)["spec"]["containers"][0]["image"].endswith(":v1.30.4"))
    box.clear_faults()
    ok(run_on(box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes"))
    config = box.api_get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    assert "kubernetesVersion: v1.31.2" in config["data"]["ClusterConfiguration"]


def test_apply_waiting_for_a_static_pod_looks_through_an_api_server_restart(box):
    # The API server kubeadm asks may be the very one restarting (a single control plane's,
    # during its own upgrade): kubeadm looks through the errors until its timeout, and goes on
    # once the pod runs. The kubelet here holds kube-apiserver's new pod until the API server
    # has been away for 2 s and the fault is cleared.
    import concurrent.futures

    install(box, "cp-1", "1.31.2", "kubeadm")
    box.add_fault("static-pod-stuck", node="cp-1", command="kube-apiserver")
    manifest = box.node_root("cp-1") / "etc/kubernetes/manifests/kube-apiserver.yaml"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        applying = pool.submit(run_on, box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes")
        wait_for(lambda: "v1.31.2" in manifest.read_text(), timeout=30)
        box.api_down(2.0)
        time.sleep(1.0)
        box.clear_faults()
        applied = applying.result(timeout=60)
    ok(applied)
    assert '[upgrade/staticpods] Component "kube-apiserver" upgraded successfully!' in applied.stdout


def test_a_static_pod_held_back_comes_up_once_the_kubelet_is_fixed_with_no_other_news(box):
    # A real kubelet goes on reconciling the manifests: once what held kube-scheduler's new pod
    # back is fixed, it runs, whoever waits for it. The sandbox's kubelet picked a manifest up
    # only on news of the node (a write, a restart), so after a kubeadm killed half-way
    # (bench.soak seed 41) the old pod stayed for good and every verification failed.
    import concurrent.futures

    install(box, "cp-1", "1.31.2", "kubeadm")
    box.add_fault("static-pod-stuck", node="cp-1", command="kube-scheduler")
    manifest = box.node_root("cp-1") / "etc/kubernetes/manifests/kube-scheduler.yaml"
    scheduler = "/api/v1/namespaces/kube-system/pods/kube-scheduler-cp-1"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        applying = pool.submit(run_on, box, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.2", "--yes")
        wait_for(lambda: "v1.31.2" in manifest.read_text(), timeout=30)
        time.sleep(1.0)
        assert box.api_get(scheduler)["spec"]["containers"][0]["image"].endswith(":v1.30.4")
        box.clear_faults()
        wait_for(lambda: box.api_get(scheduler)["spec"]["containers"][0]["image"].endswith(":v1.31.2"),
                 timeout=10)
        ok(applying.result(timeout=60))


def test_crash_during_kubelet_restart_leaves_it_stopped(box):
    box.add_fault("crash", node="worker-1", command="systemctl restart kubelet")
    assert run_on(box, "worker-1", "systemctl", "restart", "kubelet").returncode == -9
    assert run_on(box, "worker-1", "systemctl", "is-active", "kubelet").returncode == 3
    ok(run_on(box, "worker-1", "systemctl", "restart", "kubelet"))
    wait_for(lambda: ready(node_info(box, "worker-1")) == "True")


def test_dpkg_lock_fault(box):
    box.add_fault("dpkg-lock", node="worker-1")
    locked = run_on(box, "worker-1", "apt-get", "update")
    assert locked.returncode == 100 and "Could not get lock /var/lib/dpkg/lock-frontend" in locked.stderr
    ok(run_on(box, "worker-1", "apt-get", "update"))


def test_missing_package_fault(box):
    box.add_fault("missing-package", node="worker-2", package="kubelet=1.30.9")
    failed = run_on(box, "worker-2", "dnf", "install", "-y", "kubelet-1.30.9-150500.1.1", "--disableexcludes=kubernetes")
    assert failed.returncode == 1 and "Unable to find a match" in failed.stderr
    box.clear_faults()
    ok(run_on(box, "worker-2", "dnf", "install", "-y", "kubelet-1.30.9-150500.1.1", "--disableexcludes=kubernetes"))


def test_never_ready_holds_until_cleared(box):
    fault = box.add_fault("never-ready", node="worker-1")
    ok(run_on(box, "worker-1", "systemctl", "restart", "kubelet"))
    wait_for(lambda: ready(node_info(box, "worker-1")) == "False")
    time.sleep(0.5)
    assert ready(node_info(box, "worker-1")) == "False"
    box.clear_faults(fault.id)
    wait_for(lambda: ready(node_info(box, "worker-1")) == "True")


def test_api_server_unreachable_for_a_while(box):
    box.api_down(1.0)
    assert not box.healthy()
    failed = run_on(box, "cp-1", "kubeadm", "upgrade", "plan")
    assert failed.returncode == 1 and "connection refused" in failed.stderr.lower()
    wait_for(box.healthy, timeout=20)
    ok(run_on(box, "cp-1", "kubeadm", "upgrade", "plan"))


def test_etcdctl_saves_a_snapshot_of_a_stacked_member_with_kubeadms_certificates(box):
    from kubeupgrade.host.commands import etcd_snapshot_save

    (box.node_root("cp-1") / "var/lib/kubeupgrade/etcd-snapshots").mkdir(parents=True)
    argv = etcd_snapshot_save("/var/lib/kubeupgrade/etcd-snapshots/before.db").argv
    saved = ok(run_on(box, "cp-1", *argv))
    assert saved.stdout == "Snapshot saved at /var/lib/kubeupgrade/etcd-snapshots/before.db\n"
    logs = [json.loads(line) for line in saved.stderr.splitlines()]
    assert [entry["msg"] for entry in logs] == ["created temporary db file", "fetching snapshot",
                                                "fetched snapshot", "saved"]
    snapshot = box.node_root("cp-1") / "var/lib/kubeupgrade/etcd-snapshots/before.db"
    assert snapshot.stat().st_size > 100_000 and not snapshot.with_name("before.db.part").exists()
    status = ok(run_on(box, "cp-1", "etcdctl", "snapshot", "status", "/var/lib/kubeupgrade/etcd-snapshots/before.db",
                       "-w", "json"))
    assert json.loads(status.stdout)["totalSize"] == snapshot.stat().st_size
    # A worker has no etcd certificates; a control plane with no member times out; a wrong
    # certificate path is named; a missing directory too.
    worker = run_on(box, "worker-1", *argv)
    assert worker.returncode == 1 and "open /etc/kubernetes/pki/etcd/ca.crt: no such file" in worker.stderr
    (box.node_root("cp-2") / "etc/kubernetes/manifests/etcd.yaml").unlink()
    external = run_on(box, "cp-2", *argv)
    assert external.returncode == 1 and external.stderr.endswith("Error: context deadline exceeded\n")
    wrong = [a.replace("server.key", "peer.key") for a in argv]
    missing = run_on(box, "cp-1", *wrong)
    assert missing.returncode == 1 and "open /etc/kubernetes/pki/etcd/peer.key: no such file" in missing.stderr
    nowhere = run_on(box, "cp-1", *argv[:-1], "/srv/none/x.db")
    assert nowhere.returncode == 1 and "could not open /srv/none/x.db.part" in nowhere.stderr


def test_apt_refuses_a_downgrade_under_yes_unless_allowed(box):
    install(box, "worker-1", "1.30.9", "kubeadm")
    ok(run_on(box, "worker-1", "apt-mark", "unhold", "kubeadm"))
    down = run_on(box, "worker-1", "apt-get", "install", "-y", "kubeadm=1.30.4-1.1")
    assert down.returncode == 100
    assert "The following packages will be DOWNGRADED:\n  kubeadm" in down.stdout
    assert down.stderr.strip() == "E: Packages were downgraded and -y was used without --allow-downgrades."
    ok(run_on(box, "worker-1", "apt-get", "install", "-y", "--allow-downgrades", "kubeadm=1.30.4-1.1"))
    assert ok(run_on(box, "worker-1", "kubeadm", "version", "-o", "short")).stdout == "v1.30.4\n"


def test_the_sandbox_compiles_what_its_host_commands_import_even_where_python_writes_no_bytecode(
        tmp_path, monkeypatch):
    # Every simulated command is a new interpreter: without bytecode each one compiled every
    # module it imports (CI machines set PYTHONDONTWRITEBYTECODE, so none was ever written).
    package = tmp_path / "probe_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "tool.py"
    module.write_text("ANSWER = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cached = importlib.util.cache_from_source(str(module))

    hosts.compile_bytecode(("probe_package", "no_such_package"))
    assert os.path.exists(cached)
    first = os.stat(cached).st_mtime_ns

    module.write_text("ANSWER = 2  # changed, so its bytecode is stale\n")
    os.utime(module, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    hosts.compile_bytecode(("probe_package",))
    assert os.stat(cached).st_mtime_ns != first
    loader = importlib.machinery.SourcelessFileLoader("probe_package.tool", cached)
    namespace: dict = {}
    exec(loader.get_code("probe_package.tool"), namespace)
    assert namespace["ANSWER"] == 2


# The quick queries and marks an upgrade runs on every host, many times per node.
EVERYDAY_COMMANDS = {
    "cp-1": [("systemctl", "is-active", "kubelet"), ("systemctl", "daemon-reload"),
             ("dpkg-query", "-W", "-f=${Version}", "kubelet"), ("apt-mark", "showhold"),
             ("apt-mark", "hold", "kubelet"), ("kubeadm", "version", "-o", "short"),
             ("kubelet", "--version"), ("swapon", "--show")],
    "cp-2": [("rpm", "-q", "kubelet"), ("kubeadm", "version", "-o", "short")],
}
# What such a command must not import: each of these (with what it imports) cost a command's
# start more than its own work. `json` and `pathlib` bring `re`, which brings `enum`.
HEAVY_MODULES = {"re", "enum", "json", "pathlib", "typing", "contextlib", "dataclasses",
                 "functools", "signal", "datetime", "importlib.util"}


def test_the_commands_an_upgrade_runs_most_import_nothing_heavy(box):
    for node, commands in EVERYDAY_COMMANDS.items():
        for argv in commands:
            imported = reported_imports(box, node, box.node_bin(node) / argv[0], *argv[1:])
            assert not imported & HEAVY_MODULES, f"{node} {' '.join(argv)}: {sorted(imported & HEAVY_MODULES)}"
    # The commands ran for real: the hold is recorded, each run logged once.
    assert ok(run_on(box, "cp-1", "apt-mark", "showhold")).stdout.split() == ["kubeadm", "kubectl", "kubelet"]
    assert len(box.command_log("cp-1")) == len(EVERYDAY_COMMANDS["cp-1"]) + 1


def reported_imports(box, node, program, *args) -> set[str]:
    """What a simulated program (a shim, or a Windows binary) imported, run with its entry
    swapped for one that also says so (the copy sits beside it: a binary's path names its node)."""
    reporting = hosts.HOSTBIN_ENTRY.replace(
        "sys.exit(main(sys.argv[1:]))",
        "code = main(sys.argv[1:]); print(*sorted(sys.modules), file=sys.stderr); sys.exit(code)")
    assert reporting != hosts.HOSTBIN_ENTRY and "'" not in reporting
    probe = program.with_name(f"probe-{program.name}")
    probe.write_text(program.read_text().replace(hosts.HOSTBIN_ENTRY, reporting))
    probe.chmod(0o755)
    try:
        result = ok(run_on(box, node, str(probe), *args))
    finally:
        probe.unlink()
    imported = set(result.stderr.split())
    assert "kubeupgrade.sandbox.hostbin.context" in imported, result.stderr
    return imported


def test_a_windows_hosts_everyday_commands_import_nothing_heavy(make_sandbox):
    box = make_sandbox(control_planes=1, workers=1, version="1.30.4", os_family="windows")
    worker = next(n["name"] for n in box.nodes if n["role"] == "worker")
    binaries = box.node_root(worker) / "k"
    runs = [(box.node_bin(worker) / "sc.exe", ("query", "kubelet")),
            (binaries / "kubelet.exe", ("--version",)),
            (binaries / "kubeadm.exe", ("version", "-o", "short"))]
    for program, args in runs:
        imported = reported_imports(box, worker, program, *args)
        assert not imported & HEAVY_MODULES, f"{program.name}: {sorted(imported & HEAVY_MODULES)}"
    assert [entry["argv"][0] for entry in box.command_log(worker)] == ["sc.exe", "kubelet.exe", "kubeadm.exe"]
    # Answering as before: the binary's own version, read from its header.
    assert ok(run_on(box, worker, str(binaries / "kubelet.exe"), "--version")).stdout == "Kubernetes v1.30.4\n"


def test_a_process_started_without_site_writes_the_same_launch_line():
    # A Windows binary's bytes (and so its published checksum) hold the launch line, and
    # curl.exe serves them from a process started with -S, where sys.prefix is not the virtual
    # environment's: the line must not depend on that.
    from kubeupgrade.sandbox.hostbin import launch

    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(launch.__file__))))
    code = (f"import sys; sys.path.insert(0, {checkout!r}); "
            "from kubeupgrade.sandbox.hostbin import launch; print(launch.exec_line())")
    for flags in (["-S"], ["-S", "-I"], []):
        result = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True,
                                check=True, timeout=60)
        assert result.stdout.strip() == launch.exec_line(), flags
