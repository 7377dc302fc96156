"""The UpgradeConfiguration file judged before kubeadm reads it, and the argv that carries it:
pure, no I/O. kubeadm >= 1.30 refuses every flag beside --config but --yes, so the file must
say what the campaign's policies say; the properties check both halves of that over drawn
files and policies."""

import yaml
from hypothesis import given
from hypothesis import strategies as st

from kubeupgrade.host import commands
from kubeupgrade.host.upgrade_configuration import Wanted, configuration_problems
from kubeupgrade.model.versions import KubeVersion

PATH = "/etc/kubernetes/upgrade.yaml"
# The only flags kubeadm >= 1.30.4 takes beside --config that we would pass (ValidateMixedArguments).
MIXABLE = {"--config", "--yes"}


def document(section: str, settings: dict) -> str:
    return yaml.safe_dump({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "UpgradeConfiguration",
                           section: settings})


settings = st.dictionaries(st.sampled_from(["certificateRenewal", "etcdUpgrade", "dryRun", "forceUpgrade",
                                            "skipPhases"]),
                           st.one_of(st.booleans(), st.none(), st.just(["addon/kube-proxy"])))


@given(section=st.sampled_from(["apply", "node"]), written=settings, renew=st.booleans(), etcd=st.booleans(),
       force=st.booleans())
def test_a_file_passes_exactly_when_kubeadm_would_do_what_the_campaign_asks(section, written, renew, etcd, force):
    force = force and section == "apply"
    wanted = Wanted(section, renew, etcd, force)
    problems = configuration_problems(document(section, written), PATH, wanted)

    def effective(key, default):  # kubeadm's defaulting: absent or null is the default
        value = written.get(key)
        return default if value is None else value

    kubeadm_does = (effective("certificateRenewal", True), effective("etcdUpgrade", True),
                    effective("dryRun", False), effective("forceUpgrade", False) if section == "apply" else False)
    assert (problems == []) == (kubeadm_does == (renew, etcd, False, force))
    assert all(PATH in p or "policies." in p for p in problems)


def test_each_problem_names_the_key_the_policy_and_the_fix():
    wanted = Wanted("apply", certificate_renewal=False, etcd_upgrade=True)
    [problem] = configuration_problems(document("apply", {}), PATH, wanted)
    assert problem == ("policies.certificate_renewal is false but /etc/kubernetes/upgrade.yaml leaves "
                       "(kubeadm's default) apply.certificateRenewal: true; kubeadm takes no flag beside "
                       "--config, so set apply.certificateRenewal: false in the file or "
                       "policies.certificate_renewal: true")
    [dry] = configuration_problems(document("node", {"dryRun": True}), PATH, Wanted("node", True, True))
    assert "node.dryRun: true" in dry and "remove it" in dry
    [forced] = configuration_problems(document("apply", {"forceUpgrade": True}), PATH, Wanted("apply", True, True))
    assert "apply.forceUpgrade: true" in forced and "version checks" in forced


def test_a_file_without_an_upgrade_configuration_or_not_yaml_is_refused():
    cluster = yaml.safe_dump({"apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration",
                              "kubernetesVersion": "v1.31.2"})
    [problem] = configuration_problems(cluster, PATH, Wanted("apply", True, True))
    assert "has no UpgradeConfiguration" in problem and "ignores a ClusterConfiguration" in problem
    assert configuration_problems("apply: [", PATH, Wanted("apply", True, True))[0].startswith(f"{PATH} is not YAML")
    deep = "apply: " + "[" * 20000 + "]" * 20000
    assert configuration_problems(deep, PATH, Wanted("apply", True, True)) == [
        f"{PATH} is nested too deep to read; an UpgradeConfiguration is a few levels deep"]
    assert configuration_problems(document("apply", {"etcdUpgrade": "no way"}), PATH,
                                  Wanted("apply", True, True)) == [f"{PATH}: apply.etcdUpgrade is 'no way', not true or false"]
    mixed = cluster + "---\n" + document("node", {"etcdUpgrade": False})
    assert configuration_problems(mixed, PATH, Wanted("node", True, False)) == []


@given(minor=st.integers(31, 40), patch=st.integers(0, 20), renew=st.booleans(), etcd=st.booleans(),
       force=st.booleans())
def test_with_a_file_the_argv_mixes_no_flag_kubeadm_refuses_and_names_the_target(minor, patch, renew, etcd, force):
    target = KubeVersion(1, minor, patch)
    apply = commands.kubeadm_upgrade_apply(target, certificate_renewal=renew, etcd_upgrade=etcd,
                                           config_file=PATH, force=force).argv
    node = commands.kubeadm_upgrade_node(certificate_renewal=renew, etcd_upgrade=etcd, config_file=PATH).argv
    assert apply[:4] == ("kubeadm", "upgrade", "apply", target.tag)  # the argument wins over the file
    for argv in (apply, node):
        assert {a for a in argv if a.startswith("-")} <= MIXABLE and PATH in argv
    assert "--yes" not in node  # `upgrade node` has no prompt
