"""Simulated host binaries: kubeadm, kubelet, apt-get/apt-mark/apt-cache/dpkg(-query),
dnf/yum/rpm, systemctl, swapon, killall.

Each runs as its own process through a shim in the node's bin directory, with the real argv,
output formats and exit codes, reading and writing the node's root directory. Every run is
appended to the node's command log; injected faults are applied here.
"""
