"""Whether a kubeadm host's kubelet refuses to start with swap on, from where a kubeadm host
sets it: command-line flags in the environment files its systemd drop-in reads, then the
`failSwapOn` field of its configuration file. Pure: texts in, values out. Read by the agent
(host facts for preflight) and by the sandbox's kubelet (which behaves as the real one)."""

from __future__ import annotations

import re

# In the order the kubelet's systemd drop-in passes them (KUBELET_KUBEADM_ARGS, then
# KUBELET_EXTRA_ARGS): on the command line, a later flag wins.
KUBELET_FLAG_FILES = ("/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet", "/etc/sysconfig/kubelet")
KUBELET_CONFIG_FILE = "/var/lib/kubelet/config.yaml"
# A boolean flag as Go's flag packages read it: `--fail-swap-on=VALUE`, or bare (true; in
# `--fail-swap-on false` the "false" is a stray argument, not the flag's value).
_FLAG = re.compile(r"--fail-swap-on(?:=([^\s\"']*))?(?=[\s\"']|$)")
# strconv.ParseBool's spellings; any other value keeps the kubelet from starting at all
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_FIELD = re.compile(r"^failSwapOn:\s*(true|false)\s*(?:#.*)?$", re.IGNORECASE | re.MULTILINE)


def fail_swap_on_flag(texts: list[str]) -> bool | None:
    """The --fail-swap-on flag as the flag files set it (the last one wins), or None when none
    does (then the configuration file decides)."""
    found = []
    for text in texts:
        for match in _FLAG.finditer(text):
            value = match.group(1)
            if value is None or value in _TRUE:
                found.append(True)
            elif value in _FALSE:
                found.append(False)
    return found[-1] if found else None


def fails_swap_on(flags: list[str], config: str | None) -> bool:
    """Whether the kubelet refuses to start with swap on: its flag, else its configuration's
    top-level failSwapOn, else the default (true)."""
    flag = fail_swap_on_flag(flags)
    if flag is not None:
        return flag
    field = _FIELD.search(config or "")
    return field is None or field.group(1).lower() == "true"
