"""Windows workers upgraded as the Windows procedure does it, on a sandbox whose Windows hosts
have curl.exe, sc.exe and binaries from a simulated dl.k8s.io with published checksums; the
agent runs with the pool a Windows agent uses (threads) and the same engine as on Linux."""

import hashlib

from kubeupgrade.api import submit
from kubeupgrade.model.versions import parse_version
from kubeupgrade.sandbox import invariants, releases
from tests.helpers import write_campaign

WINDOWS_ONLY = ("curl.exe", "sc.exe", "kubeadm.exe", "kubelet.exe")


def test_windows_workers_take_checked_binaries_keep_the_previous_and_retry_a_failed_start(make_stack, tmp_path):
    stack = make_stack(control_planes=1, workers=2, version="1.30.4", os_family="windows")
    box = stack.sandbox
    box.add_fault("fail", node="worker-2", command="sc.exe start kubelet", count=1)
    handle = submit(write_campaign(tmp_path / "c.yaml", "1.31", max_unavailable=1), broker=stack.broker)
    assert handle.wait(timeout=240) == "succeeded", handle.status().get("error")
    assert {(r.name, r.status, r.version) for r in box.node_rows()} == {
        (name, "Ready", "v1.31.14") for name in ("cp-1", "worker-1", "worker-2")}
    assert invariants.check_all(box, max_unavailable=1) == []
    new = parse_version("1.31.14")
    for node in ("worker-1", "worker-2"):
        log = [e["argv"] for e in box.command_log(node)]
        tools = {argv[0] for argv in log}
        assert tools <= set(WINDOWS_ONLY), (node, tools)  # no apt, dnf, systemctl on Windows
        k = box.node_root(node) / "k"
        for component in ("kubeadm", "kubelet"):
            binary = (k / f"{component}.exe").read_bytes()
            assert releases.windows_binary_identity(binary) == (component, new)
            assert hashlib.sha256(binary).hexdigest() == hashlib.sha256(
                releases.windows_binary(new, component)).hexdigest()
            previous = releases.windows_binary_identity((k / f"{component}.exe.previous").read_bytes())
            assert previous == (component, parse_version("1.30.4"))  # kept for a rollback
            checksum_then_binary = [i for i, argv in enumerate(log)
                                    if argv[-1].endswith(f"/v1.31.14/bin/windows/amd64/{component}.exe")]
            sums = [i for i, argv in enumerate(log)
                    if argv[-1].endswith(f"/v1.31.14/bin/windows/amd64/{component}.exe.sha256")]
            assert len(checksum_then_binary) == 1 and sums and min(sums) < checksum_then_binary[0]
        assert sum(argv[:3] == ["kubeadm.exe", "upgrade", "node"] for argv in log) == 1
    # The failed start was retried: the node downloaded nothing again and started once more.
    starts = [e for e in box.command_log("worker-2") if e["argv"][:2] == ["sc.exe", "start"]]
    assert [e["exit"] for e in starts][0] != 0 and starts[-1]["exit"] == 0
    downloads = [e for e in box.command_log("worker-2")
                 if e["argv"][0] == "curl.exe" and "--output" in e["argv"]]
    assert len(downloads) == 2, [e["argv"] for e in downloads]
    # kube-proxy for Windows, once, after the Windows workers: its DaemonSet's image version
    # substituted, its pods on the Windows nodes only; kubeadm's kube-proxy stays on Linux.
    proxy = box.api_get("/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy-windows")
    image = proxy["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "sigwindowstools/kube-proxy:v1.31.14-calico-hostprocess"
    assert proxy["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/os": "windows"}
    pods = box.api_get("/api/v1/namespaces/kube-system/pods")["items"]
    placed = {(p["metadata"]["name"].rsplit("-", 1)[0], p["spec"]["nodeName"]) for p in pods
              if p["metadata"]["name"].startswith("kube-proxy")}
    assert placed == {("kube-proxy", "cp-1"), ("kube-proxy-windows", "worker-1"),
                      ("kube-proxy-windows", "worker-2")}
    cluster = {p["phase"]: p for p in handle.status()["entries"][0]["@cluster"]["phases"]}
    proxy_phase, verify = cluster["kube-proxy-windows"], cluster["verify"]
    assert proxy_phase["state"] == "succeeded" and "v1.31.14" in proxy_phase["detail"]
    last_uncordon = max(e["t"] for e in box.history() if e.get("event") == "uncordon")
    assert proxy_phase["started"] >= last_uncordon - 1 and verify["started"] >= proxy_phase["ended"]
