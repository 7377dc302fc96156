# Every target works on a fresh machine: the virtualenv is created and refreshed on demand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv bytecode test lint bench bench-campaign bench-scale bench-tick bench-waits bench-mirror bench-hostbin soak soak-broker demo demo-down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[controller,dev]'
	touch $(STAMP)

venv: $(STAMP)

# Two test processes: a sandbox campaign keeps about one core busy (its host commands run one
# after another), so two at a time fill the 2-core machine CI runs on. Every test owns its
# ports, directories and redis-server, so they run side by side safely.
TEST_WORKERS ?= 2

# Byte-compiled first: every simulated host command, agent and controller is a new Python
# process, and with PYTHONDONTWRITEBYTECODE set (as on CI machines) each would compile the
# checkout again (a sandbox also compiles its own code when its API server starts).
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q kubeupgrade workers bench > /dev/null

test: bytecode
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# The typed core: the record's shape and states, the pure decisions, planning and the model.
TYPED := kubeupgrade/model kubeupgrade/planning kubeupgrade/kube/identity.py \
         kubeupgrade/workflow/schema.py kubeupgrade/workflow/states.py kubeupgrade/workflow/decide.py \
         kubeupgrade/workflow/schedule.py kubeupgrade/workflow/seal.py kubeupgrade/workflow/audit.py kubeupgrade/workflow/restore.py kubeupgrade/workflow/answers.py \
         kubeupgrade/workflow/history.py kubeupgrade/workflow/liveness.py kubeupgrade/workflow/waiting.py kubeupgrade/kube/polling.py kubeupgrade/kube/pages.py \
         kubeupgrade/workflow/agent_connections.py kubeupgrade/workflow/hop_view.py kubeupgrade/workflow/undelivered.py kubeupgrade/workflow/broker_loss.py kubeupgrade/workflow/outage_budget.py kubeupgrade/workflow/broker_memory.py kubeupgrade/host/unreachable_api.py \
         kubeupgrade/workflow/agent_identity.py kubeupgrade/host/executor.py kubeupgrade/sandbox/agent_farm.py kubeupgrade/sandbox/quickjson.py kubeupgrade/sandbox/paging.py kubeupgrade/sandbox/hostbin/launch.py kubeupgrade/sandbox/hostbin/apiclient.py kubeupgrade/sandbox/hostbin/kubeadm_dialect.py kubeupgrade/sandbox/layout.py \
         kubeupgrade/host/platforms kubeupgrade/host/context.py kubeupgrade/host/steps.py \
         kubeupgrade/host/commands.py kubeupgrade/host/upgrade_configuration.py kubeupgrade/host/kubelet_flags.py kubeupgrade/sandbox/rbac.py kubeupgrade/workflow/broker_transport.py kubeupgrade/security/envelope.py kubeupgrade/security/messages.py \
         kubeupgrade/workflow/task_events.py kubeupgrade/kube/client.py kubeupgrade/kube/nodes.py kubeupgrade/kube/drain.py \
         kubeupgrade/kube/discovery.py kubeupgrade/kube/verify.py kubeupgrade/kube/health.py kubeupgrade/kube/events.py \
         kubeupgrade/kube/snapshot.py kubeupgrade/kube/windows_proxy.py kubeupgrade/kube/availability.py kubeupgrade/kube/control_planes_seen.py kubeupgrade/security/authorize.py

lint: $(STAMP)
	$(BIN)/ruff check kubeupgrade workers tests bench
	$(BIN)/mypy $(TYPED)

bench: bytecode
	$(BIN)/python -m bench.sandbox_scale

bench-campaign: bytecode
	$(BIN)/python -m bench.campaign_scale

bench-scale: bytecode
	$(BIN)/python -m bench.scale --nodes 100
	$(BIN)/python -m bench.scale --nodes 1000

bench-tick: bytecode
	$(BIN)/python -m bench.dispatcher_tick

bench-waits: bytecode
	$(BIN)/python -m bench.waits --waiting 100

bench-mirror: bytecode
	$(BIN)/python -m bench.mirror_scale

bench-hostbin: bytecode
	$(BIN)/python -m bench.hostbin_startup

soak: bytecode
	$(BIN)/python -m bench.soak

soak-broker: bytecode
	$(BIN)/python -m bench.broker_sweep

demo: bytecode
	$(BIN)/python -m kubeupgrade.demo $(if $(KEEP),--keep,)

demo-down: $(STAMP)
	$(BIN)/python -m kubeupgrade.demo --down

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
