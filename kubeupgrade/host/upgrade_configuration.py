"""An operator's kubeadm UpgradeConfiguration file (`policies.upgrade_configuration`), judged
before kubeadm reads it. Pure: the file's text and the campaign's policies in, problems out.

Why it must be judged: from 1.30 on, `kubeadm upgrade apply|node --config FILE` refuses every
other flag but `--yes` ("can not mix '--config' with arguments"), so the settings our policies
pass as flags without a file (`--certificate-renewal`, `--etcd-upgrade`, `--force`) come from
the file instead. Where the file says otherwise than the campaign, or would make kubeadm only
pretend (`dryRun`), the phase refuses before running anything, naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubeupgrade.model.versions import MinorVersion

# kubeadm reads an UpgradeConfiguration (kubeadm.k8s.io/v1beta4) from `--config` from 1.31 on,
# for `upgrade node` too; before, `apply --config` took a ClusterConfiguration that reconfigures
# the cluster, and `upgrade node` had no `--config`.
FIRST_MINOR = MinorVersion(1, 31)


@dataclass(frozen=True)
class Wanted:
    """What the campaign asks of one `kubeadm upgrade` run."""

    section: str  # "apply" or "node": the part of the file that run reads
    certificate_renewal: bool
    etcd_upgrade: bool
    force: bool = False  # only `apply`, only to re-apply the version already running


def configuration_problems(text: str, path: str, wanted: Wanted) -> list[str]:
    """One line per way the file would make kubeadm do other than the campaign asks."""
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    except yaml.YAMLError as error:
        return [f"{path} is not YAML: {str(error).splitlines()[0]}"]
    except RecursionError:  # the reader recurses once per level of [ or {
        return [f"{path} is nested too deep to read; an UpgradeConfiguration is a few levels deep"]
    found = [d for d in documents if d.get("kind") == "UpgradeConfiguration"
             and str(d.get("apiVersion", "")).startswith("kubeadm.k8s.io/")]
    if not found:
        # kubeadm >= 1.31 would warn, ignore the ClusterConfiguration an operator meant to apply,
        # and upgrade with its defaults.
        return [f"{path} has no UpgradeConfiguration (kubeadm.k8s.io/v1beta4) document; kubeadm "
                "ignores a ClusterConfiguration or InitConfiguration when upgrading"]
    section = found[-1].get(wanted.section)
    if section is None:
        section = {}
    if not isinstance(section, dict):
        return [f"{path}: {wanted.section} is not a mapping"]
    # kubeadm's defaults; forceUpgrade only in `apply`. A value that is not a boolean kubeadm
    # would refuse to decode: named, and not compared.
    defaults = {"certificateRenewal": True, "etcdUpgrade": True, "dryRun": False}
    if wanted.section == "apply":
        defaults["forceUpgrade"] = False
    values = {key: _flag(section, key, default) for key, default in defaults.items()}
    problems = [f"{path}: {wanted.section}.{key} is {value!r}, not true or false"
                for key, value in values.items() if not isinstance(value, bool)]
    for key, policy, asked in (("certificateRenewal", "certificate_renewal", wanted.certificate_renewal),
                               ("etcdUpgrade", "etcd_upgrade", wanted.etcd_upgrade)):
        value, key_path = values[key], f"{wanted.section}.{key}"
        if isinstance(value, bool) and value != asked:
            said = "sets" if key in section else "leaves (kubeadm's default)"
            problems.append(
                f"policies.{policy} is {_word(asked)} but {path} {said} {key_path}: {_word(value)}; "
                f"kubeadm takes no flag beside --config, so set {key_path}: {_word(asked)} in the file "
                f"or policies.{policy}: {_word(value)}")
    if values["dryRun"] is True:
        problems.append(f"{path} sets {wanted.section}.dryRun: true; kubeadm would only pretend "
                        "and the campaign would count it as done: remove it")
    force = values.get("forceUpgrade", False)
    if force is True and not wanted.force:
        problems.append(f"{path} sets apply.forceUpgrade: true, which takes kubeadm past its version "
                        "checks; remove it (policies.reapply forces only a re-apply of the running version)")
    elif force is False and wanted.force:
        problems.append(f"policies.reapply re-applies the running version, which needs --force: with "
                        f"--config kubeadm takes it only from the file: set apply.forceUpgrade: true in {path}")
    return problems


def _flag(section: dict[str, Any], key: str, default: bool) -> Any:
    value = section.get(key, default)
    return default if value is None else value


def _word(value: bool) -> str:
    return "true" if value else "false"
