"""The phase declarations: every phase declared once, in execution order, and everything that
needs to know about phases (task names, sides, the planner's order, the outage audit) agrees
with them."""

from hypothesis import given
from hypothesis import strategies as st

from kubeupgrade.model.phases import PHASES, SPECS, Part, Runs, in_order, names_where
from kubeupgrade.model.plan import Phase
from kubeupgrade.workflow import audit
from kubeupgrade.workflow.names import PHASE_TASKS, queue_for


def test_every_phase_is_declared_exactly_once():
    assert [s.phase for s in PHASES].count(Phase.DRAIN) == 1
    assert set(SPECS) == set(Phase) and len(PHASES) == len(Phase)


def test_task_names_and_sides_come_from_the_declarations():
    for spec in PHASES:
        assert PHASE_TASKS[spec.phase] == spec.task
        assert spec.task.startswith("kubeupgrade.node." if spec.runs is Runs.HOST else "kubeupgrade.controller.")
        assert (queue_for(spec.phase, "n1") == "kubeupgrade.node.n1") == (spec.runs is Runs.HOST)
    shared = {}
    for spec in PHASES:
        shared.setdefault(spec.task, set()).add(spec.runs)
    assert all(len(sides) == 1 for sides in shared.values())  # one task never runs on both sides


def test_the_celery_app_registers_every_declared_task():
    import workers.node_tasks  # noqa: F401 - registers the agent's tasks
    from kubeupgrade.workflow import controller_tasks  # noqa: F401
    from kubeupgrade.workflow.app import app

    assert {spec.task for spec in PHASES} <= set(app.tasks)


def test_out_of_service_span_is_declared_and_ordered():
    assert audit.OUTAGE_PHASES == {"hooks-before-drain", "drain", "install-kubelet"}
    assert audit.BACK_IN_SERVICE == {"wait-ready", "uncordon"}
    order = [s.phase.value for s in PHASES]
    assert max(order.index(n) for n in audit.OUTAGE_PHASES) < min(order.index(n) for n in audit.BACK_IN_SERVICE)
    assert all(SPECS[Phase(n)].part is Part.KUBELET for n in audit.OUTAGE_PHASES | audit.BACK_IN_SERVICE)
    assert names_where(installs_packages=True) == {"install-kubeadm", "install-kubelet"}


@given(st.permutations(list(Phase)))
def test_in_order_restores_the_declared_order_from_any_shuffle(shuffled):
    assert in_order(shuffled) == tuple(s.phase for s in PHASES)
