"""The dispatcher's question "does the cluster show the control planes at the version?", asked
and answered without a cluster: `behind` stands in for the mirror pods' read. No I/O."""

from kubeupgrade.kube.control_planes_seen import ControlPlaneWatch
from kubeupgrade.model.versions import parse_version

V = parse_version("1.31.14")


def test_an_answer_comes_only_from_a_read_made_after_the_question_and_is_read_again_until_all_are_there():
    shown = {"cp-1": ["kube-scheduler at v1.30.4"], "cp-2": []}
    reads = []

    def behind(node, version):
        reads.append((node, version.tag))
        return list(shown[node])

    woken = []
    watch = ControlPlaneWatch(behind, answered=lambda: woken.append(1), every=0.0)
    assert watch.ask("c/0", ("cp-1", "cp-2"), V) is None  # asked: nothing read yet
    watch.answer_once()
    seen = watch.ask("c/0", ("cp-1", "cp-2"), V)
    assert seen is not None and not seen.confirmed and woken == [1]
    assert "cp-1: kube-scheduler at v1.30.4" in seen.wording() and "cp-2" not in seen.wording()
    assert reads == [("cp-1", "v1.31.14"), ("cp-2", "v1.31.14")]
    shown["cp-1"] = []
    watch.answer_once()  # not yet all there: read again
    assert watch.ask("c/0", ("cp-1", "cp-2"), V).confirmed
    watch.answer_once()  # all there: not read again
    assert len(reads) == 4


def test_another_question_is_answered_afresh_and_two_campaigns_do_not_starve_each_other():
    watch = ControlPlaneWatch(lambda node, version: [] if version == V else ["kube-apiserver at v1.31.14"])
    assert watch.ask("a/0", ("cp-1",), V) is None
    assert watch.ask("b/0", ("cp-9",), parse_version("1.32.0")) is None
    watch.answer_once()
    assert watch.ask("a/0", ("cp-1",), V).confirmed
    assert not watch.ask("b/0", ("cp-9",), parse_version("1.32.0")).confirmed
    # The same key asking about another version (the next hop, a resubmission) gets no old answer.
    assert watch.ask("a/0", ("cp-1",), parse_version("1.32.0")) is None


def test_a_failed_read_is_an_answer_that_holds_the_workers_and_names_why():
    def behind(node, version):
        raise TimeoutError("the API server did not answer within 15s")

    watch = ControlPlaneWatch(behind)
    watch.ask("c/0", ("cp-1",), V)
    watch.answer_once()
    seen = watch.ask("c/0", ("cp-1",), V)
    assert not seen.confirmed
    assert seen.wording().endswith("reading it failed: TimeoutError: the API server did not answer within 15s")
