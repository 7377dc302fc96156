"""The Windows platform above the executor seam: binaries checked against their published
SHA-256 before they replace anything, the previous one kept, the kubelet service stopped before
its binary is swapped, sc.exe's "already there" answers understood, and every step idempotent."""

import hashlib

import pytest

from kubeupgrade.errors import TemporaryError
from kubeupgrade.host import steps
from kubeupgrade.host.platforms import platform_for
from kubeupgrade.model.campaign import OsFamily
from kubeupgrade.model.versions import MinorVersion, parse_version
from kubeupgrade.testing.fake_executor import FakeExecutor

OLD, NEW = parse_version("1.30.4"), parse_version("1.31.14")
WINDOWS = platform_for(OsFamily.WINDOWS)


def exe(component, version):
    return f"{component}.exe {version.tag}".encode()


class WindowsHost:
    """A Windows host behind a fake executor: C:\\k with its binaries, dl.k8s.io, the service."""

    def __init__(self, root, *, served=None):
        self.root, self.service = root, "RUNNING"
        self.served = served or {}  # url -> bytes downloaded (default: the real release)
        (root / "k").mkdir(parents=True)
        for component in ("kubeadm", "kubelet"):
            (root / "k" / f"{component}.exe").write_bytes(exe(component, OLD))
        self.fake = FakeExecutor()
        self.fake.answers[("curl.exe",)] = self.curl
        self.fake.answers[("sc.exe", "query")] = lambda c: (0, f"        STATE              : 4  {self.service}\n", "")
        self.fake.answers[("sc.exe", "stop")] = self.stop
        self.fake.answers[("sc.exe", "start")] = self.start
        for component in ("kubeadm", "kubelet"):
            self.fake.answers[(str(root / "k" / f"{component}.exe"),)] = self.version_of(component)
        self.ctx = steps.HostContext(self.fake, root, OsFamily.WINDOWS, campaign="c1", hop=0)

    def version_of(self, component):
        def answer(command):
            text = (self.root / "k" / f"{component}.exe").read_bytes().decode().split()[1]
            return 0, text if component == "kubeadm" else f"Kubernetes {text}", ""
        return answer

    def curl(self, command):
        url = command.argv[-1]
        if url.endswith("stable-1.31.txt"):
            return 0, "v1.31.14", ""
        component, version = url.rsplit("/", 1)[1].split(".exe")[0], parse_version(url.split("/")[3])
        if version != NEW:
            return 22, "", "curl: (22) The requested URL returned error: 404"
        real = exe(component, version)
        if url.endswith(".sha256"):
            return 0, hashlib.sha256(real).hexdigest(), ""
        output = command.argv[command.argv.index("--output") + 1]
        with open(output, "wb") as handle:
            handle.write(self.served.get(component, real))
        return 0, "", ""

    def stop(self, command):
        if self.service == "STOPPED":
            return 1062 & 0xFF, "[SC] ControlService FAILED 1062:\n\nThe service has not been started.\n", ""
        self.service = "STOPPED"
        return 0, "STATE : 3  STOP_PENDING", ""

    def start(self, command):
        self.service = "RUNNING"
        return 0, "STATE : 2  START_PENDING", ""

    def downloads(self):
        return [argv for argv in self.fake.ran if argv[0] == "curl.exe" and "--output" in argv]


def test_install_checks_the_checksum_stops_the_service_swaps_and_keeps_the_previous(tmp_path):
    host = WindowsHost(tmp_path)
    outcome = WINDOWS.install(host.ctx, NEW, NEW.tag, ("kubelet", "kubectl"))
    assert outcome.status == steps.DONE
    assert WINDOWS.installed(host.ctx, "kubelet") == NEW
    assert (tmp_path / "k/kubelet.exe.previous").read_bytes() == exe("kubelet", OLD)
    ran = host.fake.ran
    stop = ran.index(("sc.exe", "stop", "kubelet"))
    assert stop > max(i for i, argv in enumerate(ran) if argv[0] == "curl.exe")  # fetched before the outage
    assert host.service == "STOPPED"  # restart-kubelet starts it
    assert not any("kubectl" in " ".join(argv) for argv in ran)  # no kubectl on a Windows node
    again = WINDOWS.install(host.ctx, NEW, NEW.tag, ("kubelet", "kubectl"))
    assert again.status == steps.ALREADY_DONE and len(host.downloads()) == 1


def test_a_binary_whose_checksum_differs_replaces_nothing_and_is_removed(tmp_path):
    host = WindowsHost(tmp_path, served={"kubelet": b"tampered"})
    with pytest.raises(TemporaryError, match="has SHA-256 .* the published one is"):
        WINDOWS.install(host.ctx, NEW, NEW.tag, ("kubelet",))
    assert (tmp_path / "k/kubelet.exe").read_bytes() == exe("kubelet", OLD)
    assert not (tmp_path / "k/kubelet.exe.v1.31.14").exists()
    assert ("sc.exe", "stop", "kubelet") not in host.fake.ran and host.service == "RUNNING"


def test_download_ahead_stages_a_checked_binary_without_touching_the_running_one(tmp_path):
    host = WindowsHost(tmp_path)
    assert WINDOWS.install(host.ctx, NEW, NEW.tag, ("kubelet",), download_only=True).status == steps.DONE
    assert (tmp_path / "k/kubelet.exe").read_bytes() == exe("kubelet", OLD) and host.service == "RUNNING"
    WINDOWS.install(host.ctx, NEW, NEW.tag, ("kubelet",))
    assert len(host.downloads()) == 1  # the staged file was checked again and used


def test_restart_understands_an_already_stopped_service_and_is_idempotent(tmp_path):
    host = WindowsHost(tmp_path)
    host.service = "STOPPED"
    assert WINDOWS.restart_kubelet(host.ctx, NEW).status == steps.DONE
    assert host.service == "RUNNING"
    assert WINDOWS.restart_kubelet(host.ctx, NEW).status == steps.ALREADY_DONE


def test_offered_versions_come_from_stable_txt_and_published_checksums(tmp_path):
    host = WindowsHost(tmp_path)
    rows = WINDOWS.offered(host.ctx, "kubelet", MinorVersion(1, 31))
    assert [(r.version, r.package.raw) for r in rows] == [(NEW, "v1.31.14")]
    assert WINDOWS.offered(host.ctx, "kubelet", parse_version("1.31.99")) == []
    assert WINDOWS.set_source(host.ctx, MinorVersion(1, 31)).status == steps.ALREADY_DONE


def test_every_family_has_its_platform_and_nothing_else_is_served():
    assert {platform_for(f).name for f in OsFamily} == {f.value for f in OsFamily}
    with pytest.raises(ValueError, match="no host platform"):
        platform_for("solaris")  # type: ignore[arg-type]


@pytest.mark.parametrize(("image", "expected"), [
    ("sigwindowstools/kube-proxy:v1.30.4-calico-hostprocess", "sigwindowstools/kube-proxy:v1.31.14-calico-hostprocess"),
    ("registry.local:5000/kube-proxy:v1.30.4-flannel-hostprocess", "registry.local:5000/kube-proxy:v1.31.14-flannel-hostprocess"),
    ("sigwindowstools/kube-proxy:latest", "sigwindowstools/kube-proxy:latest"),
    ("sigwindowstools/kube-proxy@sha256:" + "a" * 64, "sigwindowstools/kube-proxy@sha256:" + "a" * 64),
    ("registry.local:5000/kube-proxy", "registry.local:5000/kube-proxy"),
])
def test_kube_proxy_for_windows_gets_the_version_in_its_tag_and_nothing_else(image, expected):
    from kubeupgrade.kube.windows_proxy import retagged

    assert retagged(image, NEW) == expected
