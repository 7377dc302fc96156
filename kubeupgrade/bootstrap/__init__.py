"""Install agents on hosts over SSH: what runs on a host (plan), the offline wheelhouse it
installs from (wheelhouse), and the SSH side with host-key checking and per-host results
(remote). `kubeupgrade bootstrap` is the command."""
