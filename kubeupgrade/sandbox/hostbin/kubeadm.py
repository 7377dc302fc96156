"""Simulated kubeadm: its command line and `version`; `upgrade plan|apply|node`, which talk to
the API server, are in `kubeadm_upgrade` and imported only when run.
"""

from __future__ import annotations

from kubeupgrade.sandbox.hostbin.context import TYPE_CHECKING, Host

# The version model and the dialect tables are imported where they are used: `kubeadm version
# -o short`, which every probe of a host runs, is a new process that needs neither.
if TYPE_CHECKING:
    from kubeupgrade.model.versions import KubeVersion

STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"


def kubeadm_version(host: Host) -> KubeVersion:
    from kubeupgrade.model.versions import parse_version

    return parse_version(host.installed("kubeadm"))


def main(host: Host, args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help", "help"):
        host.out("Usage:\n  kubeadm [command]\n\nAvailable Commands:\n  upgrade     Upgrade your "
                 "cluster smoothly to a newer version with this command\n  version     Print the "
                 "version of kubeadm")
        return 0
    if args[0] == "version":
        return _version(host, args[1:])
    if args[0] == "upgrade" and len(args) > 1 and args[1] in ("plan", "apply", "node"):
        # The API client, the object factory and YAML are imported only here: `kubeadm version`,
        # which every probe of a host runs, is a new process that needs none of them.
        from kubeupgrade.sandbox.hostbin import kubeadm_upgrade

        return kubeadm_upgrade.COMMANDS[args[1]](host, args[2:])
    raise host.fail(f'unknown command "{" ".join(args[:2])}" for "kubeadm"\n{STACK_HINT}', 1)


# -- arguments --------------------------------------------------------------------------------
_BOOLEAN_FLAGS = {"--yes", "-y", "--force", "-f", "--dry-run", "--certificate-renewal",
                  "--etcd-upgrade", "--allow-experimental-upgrades",
                  "--allow-release-candidate-upgrades", "--print-config"}
_VALUE_FLAGS = {"--config", "--kubeconfig", "--ignore-preflight-errors", "--v", "-v", "-o",
                "--output", "--patches", "--skip-phases"}


def parse_flags(host: Host, args: list[str]) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, has_value, value = arg.partition("=")
        if name in _BOOLEAN_FLAGS:
            flags[_canonical(name)] = value if has_value else "true"
        elif name in _VALUE_FLAGS:
            if not has_value:
                index += 1
                if index >= len(args):
                    raise host.fail(f"flag needs an argument: {name}\n{STACK_HINT}", 1)
                value = args[index]
            flags[_canonical(name)] = value
        elif arg.startswith("-"):
            raise host.fail(f"unknown flag: {name}\n{STACK_HINT}", 1)
        else:
            positional.append(arg)
        index += 1
    for name in ("certificate-renewal", "etcd-upgrade", "yes", "force", "dry-run"):
        if flags.get(name, "true") not in ("true", "false"):
            raise host.fail(f'invalid argument "{flags[name]}" for "--{name}" flag: '
                            f'strconv.ParseBool: parsing "{flags[name]}": invalid syntax', 1)
    return flags, positional


def _canonical(flag: str) -> str:
    return {"-y": "yes", "-f": "force", "-v": "v", "-o": "output"}.get(flag, flag.lstrip("-"))


def flag_enabled(flags: dict[str, str], name: str, default: bool) -> bool:
    return flags.get(name, "true" if default else "false") == "true"


# -- commands ---------------------------------------------------------------------------------
def _version(host: Host, args: list[str]) -> int:
    flags, _ = parse_flags(host, args)
    output = flags.get("output", "")
    if output == "short":  # the installed tag as it is (the package's version, v-prefixed)
        host.out(host.installed("kubeadm"))
        return 0
    from kubeupgrade.sandbox.hostbin.kubeadm_dialect import dialect_of

    version = kubeadm_version(host)
    info = dialect_of(version).version_info(version)
    if output in ("json", "yaml"):
        shown = {k: v for k, v in info.items() if v}  # the Go struct's omitempty fields
        if output == "json":
            import json

            host.out(json.dumps({"clientVersion": shown}, indent=2))
        else:
            import yaml

            host.out(yaml.safe_dump({"clientVersion": shown}, sort_keys=False).rstrip())
    elif output == "":
        fields = ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
        host.out(f"kubeadm version: &version.Info{{{fields}}}")
    else:
        raise host.fail(f'error: invalid output format "{output}"; valid formats: short, json, yaml\n{STACK_HINT}', 1)
    return 0
