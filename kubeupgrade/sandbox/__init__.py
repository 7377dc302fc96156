"""The sandbox: a simulated kubeadm cluster for rehearsals and tests.

Only two things are simulated: the Kubernetes API server (`apiserver`, `controller`, `store`) and
the host binaries an upgrade runs (`hostbin`). Everything talking to them is real. `manager`
brings a sandbox up and down; `faults` injects failures; `timing` scales command durations.
"""
