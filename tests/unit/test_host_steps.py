"""Host phases above the executor seam, with the fake executor: each probes first, returns
"already-done" without side effects when its effect is there, and converges otherwise."""

import pytest

from kubeupgrade.errors import PermanentError, TemporaryError
from kubeupgrade.host import steps
from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.model.versions import MinorVersion, parse_version
from kubeupgrade.testing.fake_executor import FakeExecutor, UnexpectedCommand

V = parse_version("1.31.2")


def context(tmp_path, fake, family=OsFamily.APT):
    return steps.HostContext(fake, tmp_path, family, campaign="c1", hop=0)


def with_repository(tmp_path, minor=MinorVersion(1, 31)):
    """The host as set-repository leaves it for this campaign's hop."""
    source = tmp_path / "etc/apt/sources.list.d/kubernetes.list"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(f"deb https://pkgs.k8s.io/core:/stable:/{minor.tag}/deb/ /\n")
    steps.HostContext(FakeExecutor(), tmp_path, OsFamily.APT, campaign="c1", hop=0).mark(
        f"repository-{minor.plain}")
    return source


def refreshes(fake):
    return sum(1 for argv in fake.ran if argv[:2] == ("apt-get", "update"))


VERSIONS = ("dpkg-query", "-W", "--showformat=${Package}\\t${Version}\\n")
STATUS = ("dpkg-query", "-W", "--showformat=${Package}\\t${Status}\\n")
KEEP_CONFFILES = ("-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")


def dpkg_versions(version):
    """dpkg-query's answer to VERSIONS: `version` (a string, or a function of the package) for
    every package asked about, one line each, as the real tool prints them."""
    def answer(command):
        names = command.argv[len(VERSIONS):]
        return 0, "".join(f"{name}\t{version(name) if callable(version) else version}\n" for name in names), ""
    return answer


def installed(version):
    return lambda command: (0, version, "")


def test_install_kubeadm_already_done_runs_no_install(tmp_path):
    fake = (FakeExecutor().on("dpkg-query", stdout="install ok installed")
            .on(*VERSIONS, "kubeadm", stdout="kubeadm\t1.31.2-1.1\n")
            .on("kubeadm", "version", stdout="v1.31.2\n"))
    outcome = steps.install_kubeadm(context(tmp_path, fake), V, "1.31.2-1.1")
    assert outcome.status == steps.ALREADY_DONE
    assert not any(argv[:2] == ("apt-get", "install") for argv in fake.ran)


def test_install_kubeadm_unholds_installs_holds_and_checks(tmp_path):
    state = {"version": "1.30.4-1.1"}

    def install(command):
        state["version"] = "1.31.2-1.1"
        return 0, "Setting up kubeadm", ""

    fake = (FakeExecutor().on("dpkg-query", stdout="install ok installed")
            .on("apt-mark").on("apt-get", "install", "-y", "-q", "kubeadm=1.31.2-1.1", *KEEP_CONFFILES)
            .on("kubeadm", "version", stdout="v1.31.2\n"))
    fake.answers[(*VERSIONS, "kubeadm")] = dpkg_versions(lambda name: state["version"])
    fake.answers[("apt-get", "install", "-y", "-q", "kubeadm=1.31.2-1.1", *KEEP_CONFFILES)] = install
    with_repository(tmp_path)
    outcome = steps.install_kubeadm(context(tmp_path, fake), V, "1.31.2-1.1")
    assert outcome.status == steps.DONE
    order = [argv[:2] for argv in fake.ran if argv[0] in ("apt-mark", "apt-get")]
    assert order == [("apt-mark", "unhold"), ("apt-get", "install"), ("apt-mark", "hold")]


@pytest.mark.parametrize("status", ["install ok unpacked", "install ok half-configured",
                                    "hold reinstreq half-installed", "install ok triggers-pending",
                                    "hold ok triggers-awaited"])
def test_interrupted_dpkg_is_repaired_first(tmp_path, status):
    # what dpkg-query prints for kubelet after an apt run killed while unpacking it, while its
    # maintainer script ran, or before its triggers ran
    fake = (FakeExecutor().on(*STATUS, stdout=f"kubeadm\thold ok installed\nkubelet\t{status}\n")
            .on("dpkg", "--configure", "-a")
            .on(*VERSIONS, stdout="kubelet\t1.31.2-1.1\n"))
    with_repository(tmp_path)
    ctx = context(tmp_path, fake)
    ctx.platform.install(ctx, V, "1.31.2-1.1", ("kubelet",))
    assert ("dpkg", "--configure", "-a") in fake.ran


@pytest.mark.parametrize("status", ["hold ok installed", "deinstall ok config-files", "unknown ok not-installed",
                                    "install ok installed\nkubelet-extra\tinstall ok unpacked"])
def test_dpkg_is_left_alone_when_the_upgrades_packages_are_settled(tmp_path, status):
    # a package of another name left half-way is the operator's (apt names it in its refusal)
    fake = (FakeExecutor().on(*STATUS, stdout=f"kubeadm\tinstall ok installed\nkubelet\t{status}\n")
            .on(*VERSIONS, stdout="kubelet\t1.31.2-1.1\n"))
    with_repository(tmp_path)
    ctx = context(tmp_path, fake)
    ctx.platform.install(ctx, V, "1.31.2-1.1", ("kubelet",))
    assert not any(argv[0] == "dpkg" for argv in fake.ran)


def test_failed_command_is_temporary_and_carries_the_output(tmp_path):
    fake = (FakeExecutor().on("dpkg-query", stdout="install ok installed")
            .on(*VERSIONS, stdout="kubelet\t1.30.4-1.1\nkubectl\t1.30.4-1.1\n")
            .on("apt-mark").on("apt-get", exit_code=100, stderr="E: Could not get lock /var/lib/dpkg/lock-frontend"))
    with_repository(tmp_path)
    with pytest.raises(TemporaryError) as failure:
        steps.install_kubelet(context(tmp_path, fake), V, "1.31.2-1.1")
    assert "exit 100" in str(failure.value) and "Could not get lock" in str(failure.value)


def test_missing_version_is_permanent(tmp_path):
    fake = (FakeExecutor().on("dpkg-query", stdout="install ok installed")
            .on(*VERSIONS, stdout="kubelet\t1.30.4-1.1\nkubectl\t1.30.4-1.1\n")
            .on("apt-mark").on("apt-get", exit_code=100, stderr="E: Version '1.31.2-1.1' for 'kubelet' was not found"))
    with_repository(tmp_path)
    with pytest.raises(PermanentError):
        steps.install_kubelet(context(tmp_path, fake), V, "1.31.2-1.1")


def test_apply_runs_once_then_is_already_done(tmp_path):
    fake = FakeExecutor().on("kubeadm", "upgrade", "apply", stdout="SUCCESS")
    ctx = context(tmp_path, fake)
    kwargs = {"certificate_renewal": True, "etcd_upgrade": True, "config_file": None}
    assert steps.kubeadm_apply(ctx, V, **kwargs).status == steps.DONE
    assert steps.kubeadm_apply(context(tmp_path, fake), V, **kwargs).status == steps.ALREADY_DONE
    assert sum(1 for argv in fake.ran if argv[:3] == ("kubeadm", "upgrade", "apply")) == 1


def test_restart_kubelet_is_done_only_when_active(tmp_path):
    fake = FakeExecutor().on("systemctl", "is-active", stdout="active").on("systemctl")
    ctx = context(tmp_path, fake)
    assert steps.restart_kubelet(ctx, V).status == steps.DONE
    assert steps.restart_kubelet(context(tmp_path, fake), V).status == steps.ALREADY_DONE
    fake.answers[("systemctl", "is-active")] = (3, "inactive", "")
    with pytest.raises(TemporaryError):
        steps.restart_kubelet(context(tmp_path, fake), V)  # restarts again, then is-active fails


def test_set_repository_writes_file_backs_up_and_refreshes(tmp_path):
    source = tmp_path / "etc/apt/sources.list.d/kubernetes.list"
    source.parent.mkdir(parents=True)
    source.write_text("deb https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n")
    fake = FakeExecutor().on("dpkg-query", stdout="install ok installed").on("apt-get", "update")
    outcome = steps.set_repository(context(tmp_path, fake), MinorVersion(1, 31))
    assert outcome.status == steps.DONE
    assert "v1.31" in source.read_text()
    assert "v1.30" in (source.parent / "kubernetes.list.kubeupgrade.bak").read_text()
    again = steps.set_repository(context(tmp_path, fake), MinorVersion(1, 31))
    assert again.status == steps.ALREADY_DONE


def test_restore_puts_back_what_the_hop_replaced_even_after_a_failed_refresh(tmp_path):
    source = with_repository(tmp_path, MinorVersion(1, 34))
    old = source.read_text()
    missing = FakeExecutor().on("dpkg-query", stdout="install ok installed").on(
        "apt-get", "update", exit_code=100,
        stderr="E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.35/deb  InRelease' does not have a Release file.")
    with pytest.raises(TemporaryError):
        steps.set_repository(context(tmp_path, missing), MinorVersion(1, 35))
    assert "v1.35" in source.read_text()

    fake = FakeExecutor().on("dpkg-query", stdout="install ok installed").on("apt-get", "update")
    outcome = steps.restore_repository(context(tmp_path, fake), MinorVersion(1, 35))
    assert outcome.status == steps.DONE and outcome.detail == "repository restored to v1.34"
    assert source.read_text() == old
    assert refreshes(fake) == 1
    again = steps.restore_repository(context(tmp_path, fake), MinorVersion(1, 35))
    assert again.status == steps.ALREADY_DONE and refreshes(fake) == 1


def test_restore_leaves_alone_what_this_campaign_did_not_change(tmp_path):
    source = with_repository(tmp_path, MinorVersion(1, 31))
    fake = FakeExecutor()
    assert "did not change" in steps.restore_repository(context(tmp_path, fake), MinorVersion(1, 31)).detail
    # Set by this hop, then changed by someone else: not ours to put back.
    refresh = FakeExecutor().on("dpkg-query", stdout="install ok installed").on("apt-get", "update")
    steps.set_repository(context(tmp_path, refresh), MinorVersion(1, 32))
    source.write_text("deb https://pkgs.k8s.io/core:/stable:/v1.33/deb/ /\n")
    outcome = steps.restore_repository(context(tmp_path, fake), MinorVersion(1, 32))
    assert outcome.status == steps.ALREADY_DONE and "changed since" in outcome.detail
    assert "v1.33" in source.read_text() and fake.ran == []


def test_installing_after_a_restore_points_the_repository_at_the_target_again(tmp_path):
    source = with_repository(tmp_path, MinorVersion(1, 30))
    refresh = FakeExecutor().on("dpkg-query", stdout="install ok installed").on("apt-get", "update")
    steps.set_repository(context(tmp_path, refresh), MinorVersion(1, 31))
    steps.restore_repository(context(tmp_path, refresh), MinorVersion(1, 31))
    assert "v1.30" in source.read_text()
    state = {"version": "1.30.4-1.1"}
    fake = (FakeExecutor().on("dpkg-query", stdout="install ok installed").on("apt-get", "update")
            .on("apt-mark").on("apt-get", "install", "-y", "-q", "kubelet=1.31.2-1.1", *KEEP_CONFFILES))
    fake.answers[(*VERSIONS, "kubelet")] = dpkg_versions(lambda name: state["version"])

    def install(command):
        assert "v1.31" in source.read_text(), "installed from the wrong repository"
        state["version"] = "1.31.2-1.1"
        return 0, "", ""

    fake.answers[("apt-get", "install", "-y", "-q", "kubelet=1.31.2-1.1", *KEEP_CONFFILES)] = install
    ctx = context(tmp_path, fake)
    assert ctx.platform.install(ctx, V, "1.31.2-1.1", ("kubelet",)).status == steps.DONE
    assert refreshes(fake) == 1


def test_hooks_run_once_each(tmp_path):
    fake = FakeExecutor().on("kubectl", "apply")
    hooks = [("kubectl", "apply", "-f", "cni.yaml")]
    assert steps.run_hooks(context(tmp_path, fake), "after_first_control_plane", hooks).status == steps.DONE
    assert steps.run_hooks(context(tmp_path, fake), "after_first_control_plane", hooks).status == steps.ALREADY_DONE
    assert fake.ran == [("kubectl", "apply", "-f", "cni.yaml")]


def test_fake_executor_refuses_unexpected_commands(tmp_path):
    with pytest.raises(UnexpectedCommand):
        steps.kubeadm_plan(context(tmp_path, FakeExecutor()), V)


@pytest.mark.parametrize(("swapon", "expected"), [("NAME      TYPE SIZE USED PRIO\n/swap.img file 2G 0B -2\n", True), ("", False)])
def test_host_facts_say_whether_swap_is_on(tmp_path, swapon, expected):
    fake = (FakeExecutor().on("swapon", "--show", stdout=swapon)
            .on(*VERSIONS, "kubeadm", "kubelet", "kubectl",
                stdout="kubeadm\t1.30.4-1.1\nkubelet\t1.30.4-1.1\nkubectl\t1.30.4-1.1\n"))
    facts = steps.host_facts(context(tmp_path, fake))
    assert facts["swap_on"] is expected and facts["os"] == "apt"
    assert facts["installed"] == {"kubeadm": "1.30.4-1.1", "kubelet": "1.30.4-1.1", "kubectl": "1.30.4-1.1"}


@pytest.mark.parametrize(("files", "expected"), [
    ({}, None),
    ({"/etc/default/kubelet": "KUBELET_EXTRA_ARGS=--fail-swap-on=false\n"}, False),
    ({"/etc/sysconfig/kubelet": 'KUBELET_EXTRA_ARGS="--node-ip=10.0.0.5 --fail-swap-on=false"\n'}, False),
    # pflag reads a boolean's value only after "=": bare it is true, and "false" a stray argument
    ({"/etc/sysconfig/kubelet": 'KUBELET_EXTRA_ARGS="--node-ip=10.0.0.5 --fail-swap-on false"\n'}, True),
    # kubeadm's flags come first on the kubelet's command line, the operator's extra ones last
    ({"/var/lib/kubelet/kubeadm-flags.env": 'KUBELET_KUBEADM_ARGS="--fail-swap-on=false"\n',
      "/etc/default/kubelet": "KUBELET_EXTRA_ARGS=--fail-swap-on=true\n"}, True),
    ({"/etc/default/kubelet": "KUBELET_EXTRA_ARGS=--fail-swap-on-something=false\n"}, None),
])
def test_host_facts_read_the_kubelets_fail_swap_on_flag(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name.lstrip("/")).write_text(text)
    fake = (FakeExecutor().on("swapon", "--show", stdout="")
            .on(*VERSIONS, "kubeadm", "kubelet", "kubectl", stdout="kubeadm\t1.30.4-1.1\n"))
    assert steps.host_facts(context(tmp_path, fake))["fail_swap_on_flag"] is expected


def test_a_query_that_found_some_packages_only_still_reads_those(tmp_path):
    # dpkg-query exits 1 when one package is not installed at all; what it printed still holds
    fake = (FakeExecutor().on("swapon", "--show")
            .on(*VERSIONS, exit_code=1, stdout="kubeadm\t1.30.4-1.1\n",
                stderr="dpkg-query: no packages found matching kubelet\ndpkg-query: no packages found matching kubectl\n"))
    facts = steps.host_facts(context(tmp_path, fake))
    assert facts["installed"] == {"kubeadm": "1.30.4-1.1", "kubelet": None, "kubectl": None}
    assert sum(1 for argv in fake.ran if argv[0] == "dpkg-query") == 1  # one query for the three


def madison(*names):
    return "".join(f"{name:>10} | 1.31.2-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n"
                   for name in names)


@pytest.mark.parametrize(("listed", "unpublished"), [(("kubeadm", "kubelet", "kubectl"), None),
                                                      (("kubeadm", "kubectl"), "kubelet")])
def test_resolving_the_target_lists_every_component_in_one_query(tmp_path, listed, unpublished):
    with_repository(tmp_path)
    fake = (FakeExecutor().on("dpkg-query", stdout="install ok installed").on("swapon", "--show")
            .on("apt-cache", "madison", stdout=madison(*listed),
                stderr="" if unpublished is None else f"N: Unable to locate package {unpublished}"))
    fake.answers[VERSIONS] = dpkg_versions("1.30.4-1.1")
    if unpublished:
        with pytest.raises(PermanentError, match=f"{unpublished} 1.31.2 is not published"):
            steps.resolve_target(context(tmp_path, fake), MinorVersion(1, 31))
    else:
        outcome = steps.resolve_target(context(tmp_path, fake), MinorVersion(1, 31))
        assert outcome.data["available"] == {"1.31.2": "1.31.2-1.1"}
    assert [argv for argv in fake.ran if argv[0] == "apt-cache"] == [
        ("apt-cache", "madison", "kubeadm", "kubelet", "kubectl")]


class Superseded(Exception):
    pass


def fence_after(allowed):
    """A fence that lets `allowed` changes through, then says the task no longer owns its phase."""
    asked = []

    def fence():
        asked.append(True)
        if len(asked) > allowed:
            raise Superseded

    return fence


CHANGES = [("apt-mark", "unhold"), ("apt-get", "install"), ("apt-mark", "hold")]


@pytest.mark.parametrize("allowed", range(len(CHANGES)))
def test_a_superseded_install_stops_before_its_next_change(tmp_path, allowed):
    with_repository(tmp_path)
    fake = FakeExecutor().on(*STATUS, stdout="kubelet\tinstall ok installed\n").on(
        *VERSIONS, 0, "").on("apt-mark").on("apt-get", "install")
    fake.answers[VERSIONS] = dpkg_versions("1.30.4-1.1")
    ctx = steps.HostContext(fake, tmp_path, OsFamily.APT, campaign="c1", hop=0, fence=fence_after(allowed))
    with pytest.raises(Superseded):
        steps.install_kubelet(ctx, V, "1.31.2-1.1")
    # The fence is asked before each change and not before a query (dpkg-query): the changes
    # allowed ran, none after the refusal.
    changed = [argv[:2] for argv in fake.ran if argv[0] != "dpkg-query"]
    assert changed == CHANGES[:allowed]


def test_a_superseded_repository_change_leaves_the_file_as_it_was(tmp_path):
    source = tmp_path / "etc/apt/sources.list.d/kubernetes.list"
    source.parent.mkdir(parents=True)
    source.write_text("deb https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n")
    fake = FakeExecutor().on("dpkg-query", stdout="install ok installed").on("apt-get", "update")
    ctx = steps.HostContext(fake, tmp_path, OsFamily.APT, campaign="c1", hop=0, fence=fence_after(0))
    with pytest.raises(Superseded):
        steps.set_repository(ctx, MinorVersion(1, 31))
    assert "v1.30" in source.read_text() and fake.ran == []
    assert not (source.parent / "kubernetes.list.kubeupgrade.bak").exists()


def test_the_fence_is_asked_with_the_host_lock_held(tmp_path):
    # A task woken from a freeze may wait for the lock behind the task that superseded it: asked
    # before taking the lock, its fence would have passed when the other task had not begun.
    import fcntl
    import os

    from kubeupgrade.host.executor import Command, LocalExecutor

    lock = tmp_path / "host.lock"
    held_when_asked = []

    def fence():
        probe = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held_when_asked.append(False)
            fcntl.flock(probe, fcntl.LOCK_UN)
        except BlockingIOError:
            held_when_asked.append(True)
        finally:
            os.close(probe)

    ctx = steps.HostContext(LocalExecutor(lock_file=lock), tmp_path, OsFamily.APT, fence=fence)
    result = ctx.run(Command(("true",), 5), "true")
    assert result.ok and held_when_asked == [True]


UPGRADE_YAML = "/etc/kubernetes/upgrade.yaml"


def upgrade_configuration(tmp_path, text):
    path = tmp_path / UPGRADE_YAML.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_apply_with_a_file_that_contradicts_the_policies_runs_nothing(tmp_path):
    fake = FakeExecutor().on("kubeadm", "upgrade", "apply", stdout="SUCCESS")
    upgrade_configuration(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\n"
                                    "apply:\n  etcdUpgrade: false\n")
    with pytest.raises(PermanentError) as refused:
        steps.kubeadm_apply(context(tmp_path, fake), V, certificate_renewal=True, etcd_upgrade=True,
                            config_file=UPGRADE_YAML)
    assert "policies.etcd_upgrade is true but /etc/kubernetes/upgrade.yaml sets apply.etcdUpgrade: false" \
        in str(refused.value)
    (tmp_path / UPGRADE_YAML.lstrip("/")).unlink()
    with pytest.raises(PermanentError, match="is not on this node"):
        steps.kubeadm_apply(context(tmp_path, fake), V, certificate_renewal=True, etcd_upgrade=True,
                            config_file=UPGRADE_YAML)
    with pytest.raises(PermanentError, match="reads no UpgradeConfiguration"):
        steps.kubeadm_apply(context(tmp_path, fake), parse_version("1.30.4"), certificate_renewal=True,
                            etcd_upgrade=True, config_file=UPGRADE_YAML)
    assert fake.ran == []


def test_upgrade_node_takes_the_file_where_the_node_has_it(tmp_path):
    fake = FakeExecutor().on("kubeadm", "upgrade", "node", stdout="SUCCESS")
    without = steps.kubeadm_node(context(tmp_path, fake), V, certificate_renewal=True, etcd_upgrade=False,
                                 config_file=UPGRADE_YAML)
    assert fake.ran[-1][-2:] == ("--certificate-renewal=true", "--etcd-upgrade=false")
    assert "is not on this node: kubeadm's defaults" in without.detail
    other = steps.HostContext(fake, tmp_path, OsFamily.APT, campaign="c2", hop=0)
    upgrade_configuration(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\n"
                                    "node:\n  etcdUpgrade: false\n  patches:\n    directory: /etc/kubernetes/patches\n")
    used = steps.kubeadm_node(other, V, certificate_renewal=True, etcd_upgrade=False, config_file=UPGRADE_YAML)
    assert fake.ran[-1][-3:] == ("node", "--config", UPGRADE_YAML) and "with --config" in used.detail


def test_a_configuration_path_kubeadm_could_not_read_is_a_problem_not_an_absence(tmp_path):
    (tmp_path / UPGRADE_YAML.lstrip("/")).mkdir(parents=True)  # a directory where the file should be
    fake = FakeExecutor()
    judged = steps.upgrade_configuration_facts(context(tmp_path, fake), UPGRADE_YAML, certificate_renewal=True,
                                               etcd_upgrade=True)
    assert judged is not None and judged["node"] == [f"{UPGRADE_YAML} cannot be read: Is a directory"]
    with pytest.raises(PermanentError, match="cannot be read: Is a directory"):
        steps.kubeadm_node(context(tmp_path, fake), V, certificate_renewal=True, etcd_upgrade=True,
                           config_file=UPGRADE_YAML)
    assert fake.ran == []
    assert steps.upgrade_configuration_facts(context(tmp_path / "elsewhere", fake), UPGRADE_YAML,
                                             certificate_renewal=True, etcd_upgrade=True) is None


# The repository wherever the host keeps it: `apt modernize-sources` (apt 3) turns
# kubernetes.list into a deb822 kubernetes.sources and keeps the old file as .list.bak, which
# apt no longer reads; configuration management names files its own way.
MODERNIZED = """# Modernized from /etc/apt/sources.list.d/kubernetes.list
Types: deb
URIs: https://pkgs.k8s.io/core:/stable:/v1.30/deb/
Suites: /
Signed-By: /usr/share/keyrings/kubernetes-archive-keyring.gpg
"""


def apt_refresh():
    return FakeExecutor().on("dpkg-query", stdout="install ok installed").on("apt-get", "update")


def test_a_deb822_source_is_edited_where_it_is_and_put_back_on_restore(tmp_path):
    sources = tmp_path / "etc/apt/sources.list.d"
    sources.mkdir(parents=True)
    (sources / "kubernetes.sources").write_text(MODERNIZED)
    old_line = "deb [signed-by=/usr/share/keyrings/kubernetes-archive-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n"
    (sources / "kubernetes.list.bak").write_text(old_line)
    (sources / "debian.sources").write_text("Types: deb\nURIs: http://deb.debian.org/debian/\nSuites: trixie\n")
    outcome = steps.set_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31))
    assert outcome.status == steps.DONE
    assert "/etc/apt/sources.list.d/kubernetes.sources" in outcome.detail
    assert (sources / "kubernetes.sources").read_text() == MODERNIZED.replace("v1.30", "v1.31")
    assert not (sources / "kubernetes.list").exists(), "a second source written beside the host's own"
    assert (sources / "kubernetes.list.bak").read_text() == old_line  # apt does not read it
    assert (sources / "kubernetes.sources.kubeupgrade.bak").read_text() == MODERNIZED
    assert steps.set_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31)).status == steps.ALREADY_DONE

    outcome = steps.restore_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31))
    assert outcome.detail == "repository restored to v1.30"
    assert (sources / "kubernetes.sources").read_text() == MODERNIZED


def test_every_file_naming_the_repository_moves_to_the_target_together(tmp_path):
    """Two files naming the repository (one left by a config tool, one by hand) both move: a
    host left reading two minors would list both and pick by pin alone."""
    sources = tmp_path / "etc/apt/sources.list.d"
    sources.mkdir(parents=True)
    (sources / "kubernetes.sources").write_text(MODERNIZED)
    (sources / "k8s.list").write_text("deb https://mirror.example/k8s/core:/stable:/v1.30/deb/ /\n")
    fake = apt_refresh()
    steps.set_repository(context(tmp_path, fake), MinorVersion(1, 31))
    assert "v1.31" in (sources / "kubernetes.sources").read_text()
    assert (sources / "k8s.list").read_text() == "deb https://mirror.example/k8s/core:/stable:/v1.31/deb/ /\n"
    assert refreshes(fake) == 1
    # installing checks them all: one put back by hand sends set-repository again
    (sources / "k8s.list").write_text("deb https://mirror.example/k8s/core:/stable:/v1.30/deb/ /\n")
    fake = (apt_refresh().on("apt-mark").on("apt-get", "install"))
    fake.answers[(*VERSIONS, "kubelet")] = dpkg_versions("1.31.2-1.1")
    ctx = context(tmp_path, fake)
    ctx.platform.ensure_source(ctx, MinorVersion(1, 31))
    assert "v1.31" in (sources / "k8s.list").read_text() and refreshes(fake) == 1
    steps.restore_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31))
    assert "v1.30" in (sources / "k8s.list").read_text() and "v1.30" in (sources / "kubernetes.sources").read_text()


def test_a_record_of_the_default_file_alone_is_still_restored(tmp_path):
    """A hop set before the host's other files were read recorded the default file's text as a
    string; restoring after an upgrade of kubeupgrade puts that back."""
    source = with_repository(tmp_path, MinorVersion(1, 31))
    ctx = context(tmp_path, FakeExecutor())
    ctx.mark("repository-replaced-1.31", previous="deb https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n")
    assert steps.restore_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31)).status == steps.DONE
    assert "v1.30" in source.read_text()


def test_bytes_that_are_not_utf8_survive_the_edit(tmp_path):
    source = tmp_path / "etc/apt/sources.list.d/kubernetes.list"
    source.parent.mkdir(parents=True)
    text = b"# Kubernetes \xe9quipe\ndeb https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n"
    source.write_bytes(text)
    steps.set_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31))
    assert source.read_bytes() == text.replace(b"v1.30", b"v1.31")


def test_an_rpm_repository_in_a_file_of_its_own_name_is_edited_there(tmp_path):
    repos = tmp_path / "etc/yum.repos.d"
    repos.mkdir(parents=True)
    repo = ("[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\n"
            "enabled=1\ngpgcheck=1\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")
    (repos / "k8s.repo").write_text(repo)
    (repos / "rocky.repo").write_text("[baseos]\nmirrorlist=https://mirrors.rockylinux.org/mirrorlist\n")
    fake = FakeExecutor().on("dnf", "makecache").on("rpm", "-q", stdout="kubeadm-1.30.4-150500.1.1.x86_64\n")
    steps.set_repository(context(tmp_path, fake, OsFamily.DNF), MinorVersion(1, 31))
    assert (repos / "k8s.repo").read_text() == repo.replace("v1.30", "v1.31")
    assert not (repos / "kubernetes.repo").exists()


def test_an_rpm_install_lifts_the_exclusion_of_the_repository_id_the_host_gave_it(tmp_path):
    """dnf's disable_excludes names repository ids: lifting `kubernetes` on a host whose
    section is `[k8s]` lifts nothing, and dnf answers that the packages are excluded."""
    repos = tmp_path / "etc/yum.repos.d"
    repos.mkdir(parents=True)
    (repos / "k8s.repo").write_text("[k8s]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n"
                                    "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")
    state = {"version": "1.30.4-150500.1.1"}
    lifted = "--setopt=disable_excludes=k8s"

    def query(command):
        return 0, f"kubeadm-{state['version']}.x86_64\n", ""

    def install(command):
        assert command.argv[-1] == lifted, command.argv
        state["version"] = "1.31.2-150500.1.1"
        return 0, "", ""

    fake = FakeExecutor().on("dnf", "makecache", lifted)
    fake.answers[("rpm", "-q", "kubeadm")] = query
    fake.answers[("dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", lifted)] = install
    ctx = context(tmp_path, fake, OsFamily.DNF)
    steps.set_repository(ctx, MinorVersion(1, 31))
    assert ctx.platform.install(ctx, V, "1.31.2-150500.1.1", ("kubeadm",)).status == steps.DONE
    assert all(lifted in argv for argv in fake.ran if argv[0] == "dnf")


def test_a_file_that_is_not_regular_is_skipped_or_named_never_waited_on(tmp_path):
    """A FIFO among the sources would block a read for ever; a directory where the default file
    goes cannot be written: skipped, and named with what to do."""
    import os

    sources = tmp_path / "etc/apt/sources.list.d"
    sources.mkdir(parents=True)
    os.mkfifo(sources / "stray.list")
    (sources / "kubernetes.sources").write_text(MODERNIZED)
    steps.set_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31))
    assert "v1.31" in (sources / "kubernetes.sources").read_text()
    (sources / "kubernetes.sources").unlink()
    (sources / "kubernetes.list").mkdir()
    with pytest.raises(PermanentError, match="kubernetes.list is not a regular file"):
        steps.set_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 32))


@pytest.mark.parametrize("name", ["/etc/shadow", "/etc/apt/sources.list.d/../../shadow.list",
                                  "/etc/apt/sources.list.d/sub/x.list", "/etc/apt/trusted.gpg.d/x.sources"])
def test_a_forged_record_cannot_make_a_restore_write_anything_but_a_repository_file(tmp_path, name):
    with_repository(tmp_path, MinorVersion(1, 31))
    target = tmp_path / name.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("deb https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n")
    context(tmp_path, FakeExecutor()).mark("repository-replaced-1.31", previous={name: "root::0:0:::\n"})
    outcome = steps.restore_repository(context(tmp_path, apt_refresh()), MinorVersion(1, 31))
    assert outcome.status == steps.ALREADY_DONE and "did not change" in outcome.detail
    assert "v1.31" in target.read_text()


def test_an_rpm_transaction_cut_off_before_erasing_the_older_versions_is_finished(tmp_path):
    """rpm installs the new versions, then erases the old: killed between, the database holds
    both, and dnf says the newer is installed. The older entry of the three packages is erased,
    before anything else changes."""
    (tmp_path / "etc/yum.repos.d").mkdir(parents=True)
    (tmp_path / "etc/yum.repos.d/kubernetes.repo").write_text(
        "[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n")
    state = {"rows": "kubelet-1.30.4-150500.1.1.x86_64\nkubelet-1.31.2-150500.1.1.x86_64\n"
                     "kubectl-1.31.2-150500.1.1.x86_64\n"}

    def erase(command):
        assert command.argv == ("rpm", "-e", "kubelet-1.30.4-150500.1.1")
        state["rows"] = "kubelet-1.31.2-150500.1.1.x86_64\nkubectl-1.31.2-150500.1.1.x86_64\n"
        return 0, "", ""

    fake = FakeExecutor()
    fake.answers[("rpm", "-q")] = lambda command: (0, state["rows"], "")
    fake.answers[("rpm", "-e")] = erase
    ctx = context(tmp_path, fake, OsFamily.DNF)
    ctx.mark("repository-1.31")
    outcome = ctx.platform.install(ctx, V, "1.31.2-150500.1.1", ("kubelet", "kubectl"))
    assert outcome.status == steps.ALREADY_DONE
    assert [argv[:2] for argv in fake.ran] == [("rpm", "-q"), ("rpm", "-e"), ("rpm", "-q")]


@pytest.mark.parametrize(("family", "rows", "hint"), [
    # two architectures of one package (dpkg's multiarch): not ours to choose
    (OsFamily.APT, "kubelet\t1.30.4-1.1\nkubelet\t1.31.2-1.1\nkubectl\t1.31.2-1.1\n", "keep one architecture"),
    # versions that are no Kubernetes package's: which is older is not known
    (OsFamily.DNF, "kubelet-1.30.4-150500.1.1.x86_64\nkubelet-7-x.x86_64\nkubectl-1.31.2-150500.1.1.x86_64\n",
     "remove all but one"),
    # one version twice (`rpm -i --force`, or two architectures): rpm -e NAME-VERSION would
    # match both and refuse
    (OsFamily.DNF, "kubelet-1.31.2-150500.1.1.x86_64\nkubelet-1.31.2-150500.1.1.aarch64\n"
                   "kubectl-1.31.2-150500.1.1.x86_64\n", "remove all but one"),
])
def test_a_package_installed_twice_that_the_agent_does_not_erase_is_named_and_nothing_is_installed(
        tmp_path, family, rows, hint):
    with_repository(tmp_path)
    (tmp_path / "etc/yum.repos.d").mkdir(parents=True)
    (tmp_path / "etc/yum.repos.d/kubernetes.repo").write_text(
        "[kubernetes]\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n")
    fake = FakeExecutor().on("rpm", "-q", stdout=rows).on("dpkg-query", stdout=rows)
    ctx = context(tmp_path, fake, family)
    ctx.mark("repository-1.31")
    with pytest.raises(PermanentError, match=f"kubelet is installed more than once .*; {hint}"):
        ctx.platform.install(ctx, V, "1.31.2-1.1", ("kubelet", "kubectl"))
    assert all(argv[0] in ("rpm", "dpkg-query") and argv[1] in ("-q", "-W") for argv in fake.ran)


# A marker the agent cannot read as what it wrote: cut short, edited by hand, not a JSON object,
# not UTF-8, a directory in its place.
DAMAGED_MARKERS = {"cut short": b'{"at": 1, "version": "v1.3', "a list": b'[1]', "a string": b'"v1.31.2"',
                   "a number": b"7", "not UTF-8": b"\xff\xfe{}", "a directory": None}


def damage(ctx, phase, content):
    marker = ctx._marker(phase)
    marker.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        marker.mkdir()
        (marker / "x").write_text("x")
    else:
        marker.write_bytes(content)
    return marker


@pytest.mark.parametrize("content", DAMAGED_MARKERS.values(), ids=DAMAGED_MARKERS)
def test_a_damaged_marker_is_named_set_aside_and_the_step_checks_again(tmp_path, content):
    fake = FakeExecutor().on("kubeadm", "upgrade", "apply", stdout="SUCCESS")
    ctx = context(tmp_path, fake)
    marker = damage(ctx, "kubeadm-upgrade-apply", content)
    kwargs = {"certificate_renewal": True, "etcd_upgrade": True, "config_file": None}
    outcome = steps.kubeadm_apply(ctx, V, **kwargs)
    # counted as absent: apply runs again (kubeadm documents it as idempotent), and says why
    assert outcome.status == steps.DONE
    assert f"marker {marker} is damaged" in outcome.output
    assert marker.with_name(marker.name + ".damaged").exists()
    # the marker written now is read back, and the step is done
    assert steps.kubeadm_apply(context(tmp_path, fake), V, **kwargs).status == steps.ALREADY_DONE
    assert sum(1 for argv in fake.ran if argv[:3] == ("kubeadm", "upgrade", "apply")) == 1


@pytest.mark.parametrize("content", [b'"restarted"', b"[]", b"{}", None], ids=["string", "list", "empty", "directory"])
def test_restart_kubelet_and_hooks_with_a_damaged_marker_do_their_work_again(tmp_path, content):
    fake = FakeExecutor().on("systemctl", "is-active", stdout="active").on("systemctl").on("/opt/hook")
    ctx = context(tmp_path, fake)
    damage(ctx, "restart-kubelet", content)
    damage(ctx, "hook-pre-drain-0", content)
    assert steps.restart_kubelet(ctx, V).status == steps.DONE
    assert steps.run_hooks(context(tmp_path, fake), "pre-drain", [("/opt/hook",)]).status == steps.DONE
    assert fake.ran.count(("systemctl", "restart", "kubelet")) == 1
    assert fake.ran.count(("/opt/hook",)) == 1


def snapshot_host(tmp_path):
    """A control plane with a local etcd member and an etcdctl that writes its snapshot."""
    (tmp_path / "etc/kubernetes/manifests").mkdir(parents=True)
    (tmp_path / "etc/kubernetes/manifests/etcd.yaml").write_text("kind: Pod\n")

    def save(command):
        (tmp_path / command.argv[-1].lstrip("/")).write_bytes(b"s" * 2048)
        return 0, "Snapshot saved\n", ""
    fake = FakeExecutor()
    fake.answers[("etcdctl",)] = save
    return fake


@pytest.mark.parametrize("marker", [
    {"path": 5, "bytes": 1}, {"bytes": 10}, {"path": "/etc/passwd", "bytes": 10},
    {"path": f"{steps.SNAPSHOT_DIR}/../../../etc/passwd", "bytes": 10},
    {"path": f"{steps.SNAPSHOT_DIR}/gone.db", "bytes": 10}, {"path": f"{steps.SNAPSHOT_DIR}/x.db", "bytes": "10"},
], ids=["path not a string", "no path", "outside the directory", "climbs out", "file gone", "size not a number"])
def test_an_etcd_snapshot_marker_that_does_not_name_a_saved_snapshot_takes_a_new_one(tmp_path, marker):
    fake = snapshot_host(tmp_path)
    ctx = context(tmp_path, fake)
    (tmp_path / steps.SNAPSHOT_DIR.lstrip("/")).mkdir(parents=True)
    (tmp_path / steps.SNAPSHOT_DIR.lstrip("/") / "x.db").write_bytes(b"old")
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    ctx.mark("etcd-snapshot", **marker)
    outcome = steps.etcd_snapshot(ctx, V)
    assert outcome.status == steps.DONE
    saved = steps.snapshot_saved(context(tmp_path, fake))
    assert saved is not None and saved[0].startswith(steps.SNAPSHOT_DIR + "/c1-hop1-before-v1.31.2") and saved[1] == 2048
    assert steps.etcd_snapshot(context(tmp_path, fake), V).status == steps.ALREADY_DONE
