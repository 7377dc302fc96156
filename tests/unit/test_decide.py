"""The dispatcher's pure decisions, over any record state hypothesis can draw and over whole
simulated hops with tasks completing, lost and re-sent in any order: never more workers out of
service than the limit, nothing new after a failure, control planes as one chain at a time,
and every worker finishes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeupgrade.model.campaign import WorkerStrategy
from kubeupgrade.planning.scheduling import NodeState, fixed_batches
from kubeupgrade.workflow.audit import outage_start
from kubeupgrade.workflow.decide import (
    EARLY_PHASES,
    HeldBack,
    agents_waiting,
    awaited_since,
    beyond_budget,
    decide_control_planes,
    decide_workers,
    early_part,
    first_open_phase,
    held_back_told,
    in_flight,
    out_of_service,
    prepared,
    worker_facts,
    workers_to_fetch,
)
from kubeupgrade.workflow.record import new_phase

WORKER_PHASES = ["prepare-host", "set-repository", "download-packages", "install-kubeadm",
                 "kubeadm-upgrade-node", "drain", "install-kubelet", "restart-kubelet", "wait-ready",
                 "uncordon"]
NEXT = ("waiting", "sent", "running", "failed")


def worker(name, done, next_state="waiting"):
    """A worker whose first `done` phases succeeded; the next one is waiting (no task), sent
    (task id, not begun), running, or failed."""
    phases = [new_phase(p) for p in WORKER_PHASES]
    for index, phase in enumerate(phases[:done]):
        phase.update(state="succeeded", task_id=f"{name}-{index}", started=1.0, ended=2.0)
    state = "succeeded" if done == len(phases) else "pending"
    if done < len(phases):
        current = phases[done]
        if next_state == "sent":
            current.update(task_id=f"{name}-{done}")
            state = "running"
        elif next_state == "running":
            current.update(state="running", task_id=f"{name}-{done}", started=3.0)
            state = "running"
        elif next_state == "failed":
            current.update(state="failed", task_id=f"{name}-{done}", started=3.0)
            state = "failed"
    return {"node": name, "role": "worker", "state": state, "attempt": 1, "phases": phases}


workers_drawn = st.lists(st.tuples(st.integers(1, len(WORKER_PHASES)), st.sampled_from(NEXT)),
                         min_size=1, max_size=8)


def out_now(entries):
    return {name for name, e in entries.items() if out_of_service(e)}


@settings(max_examples=400)
@given(workers_drawn, st.integers(1, 4), st.sampled_from(list(WorkerStrategy)), st.integers(0, 3))
def test_any_record_state_never_leads_past_the_limit(drawn, limit, strategy, prepare_ahead):
    entries = {f"w{i}": worker(f"w{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    order = list(entries)
    step = decide_workers(order, limit, strategy, entries, prepare_ahead=prepare_ahead)
    before = out_now(entries)
    if any(e["state"] == "failed" for e in entries.values()):
        assert step.outage == () and step.prepare == ()  # a failure stops everything new
        return
    after = before | set(step.outage)
    assert len(after) <= max(limit, len(before))
    if len(before) >= limit:
        assert set(step.outage) <= before  # only resuming what is already out
    assert all(prepared(entries[n]) and not in_flight(entries[n]) for n in step.outage)
    assert all(not prepared(entries[n]) and not in_flight(entries[n]) for n in step.prepare)
    assert not set(step.outage) & set(step.prepare)
    # Preparation runs ahead, but never more than prepare_ahead (default twice the limit)
    # workers prepared or being prepared that are not yet out of service.
    # Past that only the batch that runs next, which later batches' workers prepared before it
    # must not keep waiting.
    ready_ahead = {n for n, e in entries.items() if e["state"] not in ("failed", "succeeded")
                   and not out_of_service(e) and (prepared(e) or in_flight(e))} - set(step.outage)
    others = set(step.prepare)
    if strategy is WorkerStrategy.BATCHES:
        others -= set(next((b for b in fixed_batches(order, limit)
                            if any(entries[n]["state"] != "succeeded" for n in b)), []))
    assert not others or len(ready_ahead) + len(others) <= (prepare_ahead or 2 * limit)
    assert step.finished == all(e["state"] == "succeeded" for e in entries.values())
    if strategy is WorkerStrategy.BATCHES:
        batch = next((b for b in fixed_batches(order, limit)
                      if any(entries[n]["state"] != "succeeded" for n in b)), [])
        assert set(step.outage) - before <= set(batch)


def test_a_batch_is_prepared_when_later_batches_fill_the_room_ahead():
    """w0's preparation failed and was retried after w1 (the next batch) was prepared: the room
    ahead (1) is full with w1, which waits for w0's batch; w0 is prepared all the same instead
    of the campaign being stuck."""
    entries = {"w0": worker("w0", 1), "w1": worker("w1", 5)}
    step = decide_workers(["w0", "w1"], 1, WorkerStrategy.BATCHES, entries, prepare_ahead=1)
    assert step.prepare == ("w0",) and step.outage == () and not step.stuck


@settings(max_examples=2000)
@given(workers_drawn, st.integers(1, 4), st.sampled_from(list(WorkerStrategy)), st.integers(0, 3),
       st.frozensets(st.sampled_from([f"w{i}" for i in range(8)] + ["x1", "x2"]), max_size=4),
       st.none() | st.just({"even": (1, frozenset({"w0", "w2", "w4", "w6", "x1"}))}))
def test_workers_out_of_service_outside_the_campaign_hold_slots_too(drawn, limit, strategy,
                                                                    prepare_ahead, outside, pools):
    """The limit is on the cluster's workers out of service: those cordoned by someone else or
    not Ready (`outside`, in this hop or not) count as the campaign's own do, globally and in
    their pool. One of them that is prepared starts in the slot it holds already; while they
    fill the slots a prepared worker waits for, the step names them instead of being stuck."""
    entries = {f"w{i}": worker(f"w{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    order = list(entries)
    step = decide_workers(order, limit, strategy, entries, prepare_ahead=prepare_ahead,
                          outside=outside, pools=pools)
    if any(e["state"] == "failed" for e in entries.values()):
        assert step.outage == () and step.prepare == ()
        return
    before = out_now(entries) | outside
    after = before | set(step.outage)
    assert len(after) <= max(limit, len(before))
    if len(before) >= limit:
        assert set(step.outage) <= before  # only resuming, or what is out already
    for name, (pool_limit, members) in (pools or {}).items():
        in_pool = members & after
        assert len(in_pool) <= max(pool_limit, len(members & before)), name
    assert not step.stuck or not step.held
    if step.stuck:  # failing the campaign: only failed workers may hold the slots, never outside ones
        alone = decide_workers(order, limit, strategy, entries, prepare_ahead=prepare_ahead, pools=pools)
        assert alone.stuck and alone.outage == ()
        # and it names the limits they keep full, each one a waiting worker is under
        assert step.stuck_on and all(not hold.outside for hold in step.stuck_on)
    else:
        assert step.stuck_on == ()
    waiting = {n for n, e in entries.items() if prepared(e) and not in_flight(e)
               and e["state"] == "pending"} - set(step.outage)
    for hold in step.held + step.stuck_on:  # each a full limit a waiting worker is under
        assert set(hold.outside) <= outside - out_now(entries) - set(step.outage)
        assert bool(hold.outside) == (hold in step.held)
        members = pools[hold.pool][1] if hold.pool else set(order) | outside
        assert hold.limit == (pools[hold.pool][0] if hold.pool else limit)
        assert set(hold.outside) <= members and waiting & members
        assert len(after & members) >= hold.limit
    # and every such limit is named: the cluster's, and each pool's
    others = outside - out_now(entries) - set(step.outage)
    limits = [("", limit, set(order) | outside)] + [(name, n, m) for name, (n, m) in (pools or {}).items()]
    for pool, pool_limit, members in limits:
        if waiting & members and others & members and len(after & members) >= pool_limit:
            assert any(hold.pool == pool for hold in step.held), pool
    # The campaign's own outages stay within its limits too: its record knows only those, and
    # audit.py checks the record against the limit before the campaign may succeed.
    own = out_now(entries)
    own_after = own | set(step.outage)
    assert len(own_after) <= max(limit, len(own))
    for name, (pool_limit, members) in (pools or {}).items():
        assert len(members & own_after) <= max(pool_limit, len(members & own)), name
    eligible_outside = [n for n in order if n in outside and n not in own
                        and prepared(entries[n]) and not in_flight(entries[n])
                        and entries[n]["state"] == "pending"]
    if strategy is WorkerStrategy.WINDOW and not pools:
        # out already: never kept waiting while the campaign's own count has room
        assert set(eligible_outside[:max(0, limit - len(own))]) <= set(step.outage)
    # Nor kept unprepared, whatever the room ahead: the campaign would wait on it for ever.
    unprepared_outside = {n for n in order if n in outside and entries[n]["state"] == "pending"
                          and not prepared(entries[n]) and not in_flight(entries[n])}
    assert unprepared_outside <= set(step.prepare)


@settings(max_examples=400)
@given(workers_drawn, st.integers(1, 4), st.integers(0, 3))
def test_while_the_first_wave_forms_only_its_own_workers_are_prepared(drawn, limit, prepare_ahead):
    """Window strategy: until a worker has ended or the window has been full, preparation goes
    only to the first workers in order not yet started, as many as slots are free; and the
    first of them still unprepared is always prepared (the stage cannot stall on the rule)."""
    entries = {f"w{i}": worker(f"w{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    order = list(entries)
    step = decide_workers(order, limit, WorkerStrategy.WINDOW, entries, prepare_ahead=prepare_ahead)
    facts = {name: worker_facts(entries[name]) for name in order}
    ended = any(f.state in (NodeState.SUCCEEDED, NodeState.FAILED_IN_SERVICE, NodeState.FAILED_OUT_OF_SERVICE)
                for f in facts.values())
    out = sum(f.state in (NodeState.RUNNING, NodeState.FAILED_OUT_OF_SERVICE) for f in facts.values())
    not_started = [name for name in order if facts[name].state is NodeState.PENDING]
    starting = [name for name in step.outage if name in not_started]  # the others resume
    if ended or out + len(starting) >= limit:
        return  # the usual room ahead: test_any_record_state_never_leads_past_the_limit
    wave = not_started[:limit - out]
    assert set(step.prepare) <= set(wave)
    unprepared = [name for name in wave if not facts[name].prepared and not facts[name].in_flight]
    ahead = [name for name in not_started if facts[name].in_flight or facts[name].prepared]
    if unprepared and len(ahead) - len(starting) < (prepare_ahead or 2 * limit):
        assert unprepared[0] in step.prepare


def test_the_first_wave_is_prepared_alone_then_the_room_ahead_fills():
    entries = {f"w{i}": worker(f"w{i}", 3) for i in range(8)}  # packages fetched
    order = list(entries)
    step = decide_workers(order, 2, WorkerStrategy.WINDOW, entries)
    assert step.prepare == ("w0", "w1")  # not w2, w3: they could not start yet
    send_step(entries, step)
    for name in ("w0", "w1"):
        for _ in range(2):  # install-kubeadm, kubeadm-upgrade-node
            complete(entries[name])
    step = decide_workers(order, 2, WorkerStrategy.WINDOW, entries)
    assert step.outage == ("w0", "w1") and step.prepare == ("w2", "w3", "w4", "w5")
    # Outside a maintenance window nothing starts, so the whole room is prepared at once.
    fresh = {f"w{i}": worker(f"w{i}", 3) for i in range(8)}
    assert decide_workers(order, 2, WorkerStrategy.WINDOW, fresh, outage_allowed=False).prepare == (
        "w0", "w1", "w2", "w3")


def send(entry, outage):
    """What the dispatcher does with a decision: a task id on every phase of the chain."""
    split = outage_start(entry)
    chain = entry["phases"] if outage else entry["phases"][:split]
    for phase in chain:
        if phase["state"] != "succeeded":
            phase["task_id"] = f"{entry['node']}-a{entry['attempt']}-{phase['phase']}"


def send_step(entries, step):
    """Every chain a decision asks for: outages whole, preparations up to the outage."""
    for name in step.outage:
        send(entries[name], outage=True)
    for name in step.prepare:
        send(entries[name], outage=False)


def complete(entry):
    phase = first_open_phase(entry)
    phase.update(state="succeeded", started=phase.get("started") or 1.0, ended=2.0)
    entry["state"] = "succeeded" if first_open_phase(entry) is None else "running"


def begin(entry):
    phase = first_open_phase(entry)
    phase.update(state="running", started=phase.get("started") or 1.0)
    entry["state"] = "running"


def lose(entry):
    """A lost task re-sent as a new attempt: open phases back to pending with no task."""
    entry["attempt"] += 1
    entry["state"] = "pending"
    for phase in entry["phases"]:
        if phase["state"] != "succeeded":
            phase.update(state="pending", task_id=None)


@settings(max_examples=300)
@given(st.integers(1, 7), st.integers(1, 3), st.sampled_from(list(WorkerStrategy)),
       st.lists(st.tuples(st.sampled_from(("begin", "complete", "lose")), st.integers(0, 99)),
                max_size=400))
def test_a_simulated_hop_keeps_the_limit_at_every_step_and_finishes(count, limit, strategy, events):
    entries = {f"w{i}": worker(f"w{i}", 1) for i in range(count)}  # prepare-host done
    run_worker_stage(entries, list(entries), limit, strategy, iter(events))


def run_worker_stage(entries, order, limit, strategy, script, prepare_ahead=0):
    """The worker stage to its end, tasks beginning, completing and (up to 10 times) lost as
    `script` says: the limit holds at every step and every worker finishes."""
    losses = 0
    for _ in range(2000):
        step = decide_workers(order, limit, strategy, entries, prepare_ahead=prepare_ahead)
        if step.finished:
            break
        send_step(entries, step)
        assert len(out_now(entries)) <= limit
        flying = [n for n in order if in_flight(entries[n])]
        assert flying, "nothing in flight and nothing sent: the hop would hang"
        kind, pick = next(script, ("complete", 0))
        if kind == "lose" and losses >= 10:
            kind = "complete"
        target = entries[flying[pick % len(flying)]]
        if kind == "lose":
            losses += 1
            lose(target)
        elif kind == "begin":
            begin(target)
        else:
            complete(target)
        assert len(out_now(entries)) <= limit
    assert all(e["state"] == "succeeded" for e in entries.values())


def send_early(entry):
    for phase in early_part(entry):
        phase["task_id"] = f"{entry['node']}-a{entry['attempt']}-{phase['phase']}"


def fetch_due(entry):
    part = early_part(entry)
    return entry["state"] != "failed" and bool(part) and part[0]["state"] == "pending" and not part[0]["task_id"]


@settings(max_examples=400)
@given(workers_drawn, st.integers(1, 4), st.integers(0, 3))
def test_early_fetch_sends_only_early_phases_to_the_first_workers_in_order(drawn, limit, prepare_ahead):
    entries = {f"w{i}": worker(f"w{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    order = list(entries)
    sent = workers_to_fetch(order, entries, limit, prepare_ahead=prepare_ahead)
    room = prepare_ahead or 2 * limit
    # The first `room` workers that have not failed hold the room, whatever their state; of
    # those, each with an unsent early phase is sent.
    holding = [n for n in order if entries[n]["state"] != "failed"][:room]
    assert list(sent) == [n for n in holding if fetch_due(entries[n])]
    for name in sent:
        phases = entries[name]["phases"]
        part = early_part(entries[name])
        assert part and {p["phase"] for p in part} <= EARLY_PHASES
        # The chain is the node's open phases from the first: everything before it succeeded.
        first = phases.index(part[0])
        assert all(p["state"] == "succeeded" for p in phases[:first])
        assert [p for p in phases[first:] if p["state"] != "succeeded"][: len(part)] == part


def test_early_fetch_fills_each_pool_lane_to_its_own_room():
    entries = {f"w{i}": worker(f"w{i}", 1) for i in range(12)}  # prepare-host done
    order = list(entries)
    pools = {"gpu": (1, frozenset({"w0", "w1", "w2", "w3"}))}  # lane room 2; the rest: 2 x 3
    assert workers_to_fetch(order, entries, 3, pools=pools) == ("w0", "w1", "w4", "w5", "w6", "w7", "w8", "w9")
    send_early(entries["w0"])
    complete(entries["w0"])  # set-repository done, the download in flight: it keeps its room
    assert workers_to_fetch(order, entries, 3, pools=pools)[:2] == ("w1", "w4")
    lose(entries["w0"])  # sent again as a new attempt: due again
    assert workers_to_fetch(order, entries, 3, pools=pools)[:2] == ("w0", "w1")
    for name in ("w0", "w1"):
        send_early(entries[name])
        complete(entries[name])
        complete(entries[name])  # early phases done: install-kubeadm is next, not sent here
    assert workers_to_fetch(order, entries, 3, pools=pools)[:1] == ("w4",)


def test_a_worker_failed_while_the_control_planes_upgrade_stops_nothing_until_the_worker_stage():
    failed_worker = worker("w0", 2, "failed")
    assert not beyond_budget("control-planes", [failed_worker], 0)
    assert beyond_budget("workers", [failed_worker], 0)
    assert not beyond_budget("workers", [failed_worker], 1)
    assert beyond_budget("control-planes", [failed_worker, control_plane("cp-0", 3, "failed")], 5)
    assert beyond_budget("prepare", [worker("w1", 0, "failed")], 5)


@settings(max_examples=300)
@given(st.integers(1, 7), st.integers(1, 3), st.integers(0, 3), st.integers(0, 60),
       st.lists(st.tuples(st.sampled_from(("begin", "complete", "lose")), st.integers(0, 99)),
                max_size=400))
def test_early_fetch_while_the_control_planes_upgrade_touches_nothing_else_and_the_hop_finishes(
        count, limit, prepare_ahead, control_plane_events, events):
    """Any number of early sends, completions and losses while the control planes upgrade: no
    worker has anything but its early phases sent or begun then, and the worker stage that
    follows (on whatever state that left) keeps the limit and finishes every worker."""
    entries = {f"w{i}": worker(f"w{i}", 1) for i in range(count)}
    order = list(entries)
    script = iter(events)
    for _ in range(control_plane_events):
        for name in workers_to_fetch(order, entries, limit, prepare_ahead=prepare_ahead):
            send_early(entries[name])
        assert len([n for n in order if in_flight(entries[n]) or not early_part(entries[n])]) <= (
            prepare_ahead or 2 * limit)
        for entry in entries.values():
            for phase in entry["phases"][1:]:
                if phase["phase"] not in EARLY_PHASES:
                    assert not phase["task_id"] and phase["state"] == "pending", entry["node"]
        flying = [n for n in order if in_flight(entries[n])]
        if not flying:
            break
        kind, pick = next(script, ("complete", 0))
        target = entries[flying[pick % len(flying)]]
        {"lose": lose, "begin": begin, "complete": complete}[kind](target)
    run_worker_stage(entries, order, limit, WorkerStrategy.WINDOW, script, prepare_ahead)


def control_plane(name, done, next_state="waiting"):
    entry = worker(name, done, next_state)
    entry["role"] = "control-plane"
    return entry


@given(st.lists(st.tuples(st.integers(1, len(WORKER_PHASES)), st.sampled_from(NEXT)),
                min_size=1, max_size=5))
def test_control_planes_go_as_one_chain_only_when_none_is_in_flight(drawn):
    entries = {f"cp-{i}": control_plane(f"cp-{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    order = list(entries)
    step = decide_control_planes(order, entries)
    remaining = [n for n in order if entries[n]["state"] != "succeeded"]
    assert step.finished == (not remaining)
    busy = any(in_flight(entries[n]) or entries[n]["state"] == "failed" for n in remaining)
    assert step.send == (() if busy else tuple(remaining))


def test_a_worker_whose_outage_began_is_resumed_first_and_keeps_its_slot():
    entries = {"w0": worker("w0", 7), "w1": worker("w1", 5), "w2": worker("w2", 5)}  # w0 drained
    step = decide_workers(["w0", "w1", "w2"], 1, WorkerStrategy.WINDOW, entries)
    assert step.outage == ("w0",)
    entries["w0"] = worker("w0", 10)
    step = decide_workers(["w0", "w1", "w2"], 1, WorkerStrategy.WINDOW, entries)
    assert step.outage == ("w1",)


@settings(max_examples=300)
@given(st.integers(1, 5), st.floats(1, 60), st.lists(st.sets(st.sampled_from(["a", "b", "c", "d", "e"])),
                                                  min_size=1, max_size=40))
def test_a_silent_agent_is_named_then_fails_within_its_timeout_and_never_one_that_answers(
        nodes, timeout, answers):
    wanted = ["a", "b", "c", "d", "e"][:nodes]
    waiting: dict[str, float] = {}
    silent_since: dict[str, float] = {}
    announced: set[str] = set()
    step = timeout / 4
    for tick, ready in enumerate(answers + [set()] * 8):  # then silence long past the timeout
        now = tick * step
        verdict = agents_waiting(wanted, ready, waiting, now, timeout)
        for name in wanted:
            if name in ready:
                silent_since.pop(name, None)
                assert name not in verdict.waiting and name not in verdict.expired
            else:
                silent_since.setdefault(name, now)
                assert name in verdict.waiting  # a named wait, from the first silent tick
        announced |= set(verdict.newly_silent)
        for name in verdict.expired:
            assert now - silent_since[name] > timeout  # never before its time
        for name, since in silent_since.items():
            if now - since > timeout + step:
                assert name in verdict.expired  # never much after it either
        waiting = verdict.waiting
    assert set(wanted) <= announced


@settings(max_examples=400)
@given(workers_drawn, st.integers(1, 4), st.sampled_from(list(WorkerStrategy)), st.integers(0, 3),
       st.integers(0, 3), st.booleans(), st.booleans())
def test_budget_canary_and_pause_never_lead_past_the_limit_or_out_of_turn(
        drawn, limit, strategy, max_failed, canary, gate_passed, paused):
    entries = {f"w{i}": worker(f"w{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    order = list(entries)
    step = decide_workers(order, limit, strategy, entries, max_failed=max_failed, canary=canary,
                          gate_passed=gate_passed, paused=paused)
    before = out_now(entries)  # failed workers left cordoned are in it: they hold their slot
    started = set(step.outage) - before
    failed = [n for n in order if entries[n]["state"] == "failed"]
    assert set(step.failed) == set(failed)
    if len(failed) > max_failed:
        assert step.outage == () and step.prepare == () and not step.finished
        return
    assert len(before | set(step.outage)) <= max(limit, len(before))
    if paused:
        assert not started and step.prepare == () and not step.gate  # only outages under way
    if canary and not gate_passed:
        assert (started | set(step.prepare)) <= set(order[:canary])
    assert step.finished == all(e["state"] in ("succeeded", "failed") for e in entries.values())
    if step.stuck:  # nothing moves: the dispatcher fails the campaign rather than wait forever
        assert not any(in_flight(e) for e in entries.values()) and not step.outage
        assert step.stuck_on  # naming the limits the failed workers keep full


@settings(max_examples=300)
@given(st.integers(2, 7), st.integers(1, 3), st.sampled_from(list(WorkerStrategy)), st.integers(0, 3),
       st.integers(0, 3), st.lists(st.tuples(st.sampled_from(("begin", "complete", "fail")),
                                             st.integers(0, 99)), max_size=400))
def test_a_hop_with_failures_within_budget_keeps_the_limit_and_ends_named(
        count, limit, strategy, max_failed, canary, events):
    """Workers fail at random: the limit holds at every step (failed-and-cordoned ones count),
    and the hop always ends: every worker done or failed, stopped over the budget, or stuck
    with every slot held by failed workers. It never waits on nothing."""
    entries = {f"w{i}": worker(f"w{i}", 1) for i in range(count)}
    order = list(entries)
    gate_passed = False
    script = iter(events)
    for _ in range(3000):
        step = decide_workers(order, limit, strategy, entries, max_failed=max_failed,
                              canary=canary, gate_passed=gate_passed)
        if step.finished or step.stuck:
            break
        if step.gate:
            gate_passed = True
            continue
        send_step(entries, step)
        assert len(out_now(entries)) <= limit
        flying = [n for n in order if in_flight(entries[n])]
        if not flying:
            assert len(step.failed) > max_failed  # stopped over budget, the only other ending
            break
        kind, pick = next(script, ("complete", 0))
        target = entries[flying[pick % len(flying)]]
        if kind == "fail":
            phase = first_open_phase(target)
            phase.update(state="failed", started=phase.get("started") or 1.0)
            target["state"] = "failed"
        elif kind == "begin":
            begin(target)
        else:
            complete(target)
        if canary and not gate_passed:  # the others have not even been sent their preparation
            assert all(entries[n]["phases"][1]["task_id"] is None for n in order[canary:])
        assert len(out_now(entries)) <= limit
    else:
        raise AssertionError("the hop never ended")
    failed = [n for n in order if entries[n]["state"] == "failed"]
    if step.finished:
        assert len(failed) <= max_failed
        assert all(entries[n]["state"] == "succeeded" for n in order if n not in failed)


@settings(max_examples=300)
@given(st.integers(2, 8), st.integers(1, 4), st.sampled_from(list(WorkerStrategy)),
       st.lists(st.sampled_from(["a", "b", None]), min_size=8, max_size=8), st.integers(1, 3),
       st.integers(1, 3), st.lists(st.integers(0, 99), max_size=300))
def test_pools_hold_each_pool_and_the_total_to_their_limits_and_every_worker_finishes(
        count, limit, strategy, membership, limit_a, limit_b, picks):
    entries = {f"w{i}": worker(f"w{i}", 1) for i in range(count)}
    order = list(entries)
    pools = {"a": (limit_a, frozenset(n for n, m in zip(order, membership, strict=False) if m == "a")),
             "b": (limit_b, frozenset(n for n, m in zip(order, membership, strict=False) if m == "b"))}
    script = iter(picks)
    for _ in range(3000):
        step = decide_workers(order, limit, strategy, entries, pools=pools)
        if step.finished:
            break
        send_step(entries, step)
        out = out_now(entries)
        assert len(out) <= limit
        for pool_limit, members in pools.values():
            assert len(out & members) <= pool_limit
        flying = [n for n in order if in_flight(entries[n])]
        assert flying, "nothing in flight and nothing sent: the hop would hang"
        complete(entries[flying[next(script, 0) % len(flying)]])
    assert all(e["state"] == "succeeded" for e in entries.values())


@settings(max_examples=400)
@given(workers_drawn, st.integers(1, 4), st.sampled_from(list(WorkerStrategy)), st.booleans())
def test_what_is_sent_while_paused_or_outside_a_window_is_never_held_again(drawn, limit, strategy, paused):
    """The agents hold (and re-fence) a phase that would start a node or its outage while the
    campaign is paused or its window is closed; the dispatcher must never send one, or the two
    would ping-pong the node through new attempts forever."""
    from kubeupgrade.workflow.record import starts_disruption, starts_something

    holds = starts_something if paused else starts_disruption
    entries = {f"w{i}": worker(f"w{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    step = decide_workers(list(entries), limit, strategy, entries, paused=paused, outage_allowed=False)
    for name in step.outage + step.prepare:
        assert not holds(entries[name], first_open_phase(entries[name])["phase"]), name
    cps = {f"cp-{i}": control_plane(f"cp-{i}", done, nxt) for i, (done, nxt) in enumerate(drawn)}
    sent = decide_control_planes(list(cps), cps, paused=True).send
    for name in sent:
        assert not holds(cps[name], first_open_phase(cps[name])["phase"]), name
    # The prepare stage is sent whatever the window (it changes nothing): never held for it.
    for fresh in (worker("w-new", 0), control_plane("cp-new", 0)):
        assert not starts_disruption(fresh, "prepare-host")


@given(st.lists(st.tuples(st.sampled_from(["set-repository", "install-kubeadm", "kubeadm-upgrade-node",
                                           "download-packages", "drain", "install-kubelet",
                                           "restart-kubelet", "wait-ready", "uncordon"]),
                          st.sampled_from(["pending", "running", "succeeded", "failed"]),
                          st.sampled_from([None, "", "t-1"])), max_size=10))
def test_the_one_pass_facts_agree_with_their_definitions(phases):
    from kubeupgrade.workflow.decide import facts, in_flight, prepared

    entry = {"state": "pending", "phases": [{"phase": name, "state": state, "task_id": task}
                                            for name, state, task in phases]}
    assert facts(entry) == (prepared(entry), in_flight(entry))


def test_a_task_is_awaited_once_its_chain_reaches_it_and_from_then():
    """Only a pending task its chain has reached must have a message: the first link from when
    it was sent, a later one from when the link before it ended, and of the control planes'
    one chain only the first with an open phase."""
    sent = worker("w-sent", 0, "sent")
    sent["phases"][0]["dispatched"] = 5.0
    later = worker("w-later", 4, "sent")
    later["phases"][4]["dispatched"] = 1.0  # sent with the chain, reached when link 3 ended (2.0)
    running = worker("w-running", 2, "running")
    planes = {name: {**worker(name, done, "sent"), "role": "control-plane"}
              for name, done in (("cp-1", len(WORKER_PHASES)), ("cp-2", 3), ("cp-3", 0))}
    planes["cp-2"]["phases"][3]["dispatched"] = 1.0
    planes["cp-3"]["phases"][0]["dispatched"] = 1.0
    entries = {e["node"]: e for e in (sent, later, running, *planes.values())}
    watched = {name: first_open_phase(e) for name, e in entries.items() if first_open_phase(e)}
    since = awaited_since(entries, watched, ["cp-1", "cp-2", "cp-3"])
    assert since == {"w-sent": 5.0, "w-later": 2.0, "cp-2": 2.0}
    # cp-2 done: the chain reaches cp-3, from the end of cp-2's last phase.
    for phase in planes["cp-2"]["phases"]:
        phase.update(state="succeeded", ended=phase["ended"] or 7.0)
    planes["cp-2"]["state"] = "succeeded"
    watched.pop("cp-2")
    assert awaited_since(entries, watched, ["cp-1", "cp-2", "cp-3"])["cp-3"] == 7.0


@given(st.lists(st.tuples(st.integers(0, len(WORKER_PHASES)), st.sampled_from(NEXT)), min_size=1, max_size=1),
       st.sampled_from(["pending", "running", "succeeded", "failed"]))
def test_the_kept_worker_facts_agree_with_their_definitions(drawn, state):
    from kubeupgrade.planning.scheduling import NodeState
    from kubeupgrade.workflow.decide import worker_facts

    ((done, next_state),) = drawn
    entry = {**worker("w", done, next_state), "state": state}  # any entry state, any phase list
    kept = worker_facts(entry)
    assert (kept.prepared, kept.in_flight) == (prepared(entry), in_flight(entry))
    if state == "failed":
        assert kept.state is (NodeState.FAILED_OUT_OF_SERVICE if out_of_service(entry)
                              else NodeState.FAILED_IN_SERVICE)
    elif state == "succeeded":
        assert kept.state is NodeState.SUCCEEDED
    else:
        # Started (holding a slot) once prepared and either in flight or out of service.
        started = prepared(entry) and (in_flight(entry) or out_of_service(entry))
        assert kept.state is (NodeState.RUNNING if started else NodeState.PENDING)
    assert kept.resume == (state not in ("failed", "succeeded") and prepared(entry)
                           and not in_flight(entry) and out_of_service(entry))


def test_a_pool_filled_by_a_worker_out_of_service_outside_the_campaign_waits_naming_it():
    # Pool "a" (limit 1) holds x9, cordoned by someone else and not in this hop; the global
    # limit has room. The hop's two prepared workers are both in pool "a": nothing may start,
    # nothing is in flight, and the campaign must wait naming x9, not fail as stuck.
    entries = {name: worker(name, 5) for name in ("w0", "w1")}
    pools = {"a": (1, frozenset({"w0", "w1", "x9"}))}
    for strategy in WorkerStrategy:
        step = decide_workers(list(entries), 5, strategy, entries, pools=pools, outside=frozenset({"x9"}))
        assert step.outage == () and not step.stuck and [hold.outside for hold in step.held] == [("x9",)]


def test_a_worker_out_of_service_outside_is_named_only_for_the_limits_it_fills():
    # Pool "a" (limit 1) is full with the campaign's own outage of w0; w1, prepared, waits for
    # it. x9 is cordoned by someone else in pool "b", where the global limit (5) has room: x9
    # holds nothing w1 waits for, so the campaign's events must not name it.
    entries = {"w0": worker("w0", 6, "running"), "w1": worker("w1", 5)}
    pools = {"a": (1, frozenset({"w0", "w1"})), "b": (1, frozenset({"x9"}))}
    for strategy in WorkerStrategy:
        step = decide_workers(list(entries), 5, strategy, entries, pools=pools, outside=frozenset({"x9"}))
        assert step.outage == () and step.held == () and not step.stuck, strategy
    # x9 in pool "a" instead: it fills pool a's limit with w0, and is named for that pool alone.
    pools = {"a": (1, frozenset({"w0", "w1", "x9"}))}
    step = decide_workers(list(entries), 5, WorkerStrategy.WINDOW, entries, pools=pools, outside=frozenset({"x9"}))
    assert step.held == (HeldBack(limit=1, own=1, outside=("x9",), pool="a"),)


def test_a_pool_kept_full_by_a_failed_worker_is_stuck_on_that_pool_not_held_by_another():
    # w0 failed during its kubelet upgrade (drained: still cordoned), within a budget of one,
    # and fills pool a (limit 1); w1, prepared, is in pool a; x9, cordoned by someone else, is
    # in pool b. Nothing is in flight and x9's return would change nothing: stuck on pool a.
    entries = {"w0": worker("w0", 6, "failed"), "w1": worker("w1", 5)}
    pools = {"a": (1, frozenset({"w0", "w1"})), "b": (1, frozenset({"x9"}))}
    for strategy in WorkerStrategy:
        step = decide_workers(list(entries), 5, strategy, entries, pools=pools, max_failed=1,
                              outside=frozenset({"x9"}))
        assert step.stuck and step.held == (), strategy
        assert step.stuck_on == (HeldBack(limit=1, own=1, outside=(), pool="a"),), strategy
        assert step.stuck_on[0].named == "pool a's limit of 1"


def test_the_wait_on_outside_workers_names_each_limit_and_whose_outages_fill_it():
    told = held_back_told([HeldBack(2, 0, ("w3", "w7"))], {"w3": "cordoned"})
    assert told == ("waiting: the limit of 2 is full: 2 worker(s) out of service outside this campaign: "
                    "w3 (cordoned), w7 (out of service); no other worker begins an outage until one is "
                    "back in service (uncordoned and Ready; or abort, and submit again with a higher "
                    "max_unavailable)")
    told = held_back_told([HeldBack(1, 1, ("x9",), "gpu")], {"x9": "not Ready"})
    assert told.startswith("waiting: pool gpu's limit of 1 is full: its own outages and 1 worker(s) "
                           "out of service outside this campaign: x9 (not Ready); no other worker of "
                           "pool gpu begins")
    # The own outages' count is left out: it changes from tick to tick, and each change would be
    # one more event while the same workers hold the same limit.
    assert held_back_told([HeldBack(3, 1, ("x9",))], {}) == held_back_told([HeldBack(3, 2, ("x9",))], {})
    many = held_back_told([HeldBack(20, 0, tuple(f"x{i:02}" for i in range(25)))], {})
    assert "x09 (out of service) and 15 more;" in many and "x10" not in many


def test_a_worker_out_of_service_outside_starts_only_in_room_the_campaign_own_outages_leave():
    # Limit 1: w1 is the campaign's own outage (running); w3's kubelet stopped meanwhile (not
    # Ready, outside). w3 is prepared. Starting it now takes nothing more out of service, but
    # the campaign's record would show two outages at once against a limit of 1, and the
    # audit before success would fail a campaign that did nothing wrong: w3 waits for w1.
    entries = {"w0": worker("w0", len(WORKER_PHASES)), "w1": worker("w1", 6, "running"),
               "w2": worker("w2", 5), "w3": worker("w3", 5)}
    for strategy in WorkerStrategy:
        step = decide_workers(list(entries), 1, strategy, entries, outside=frozenset({"w3"}))
        assert step.outage == () and [hold.outside for hold in step.held] == [("w3",)] and not step.stuck, strategy
    entries["w1"] = worker("w1", len(WORKER_PHASES))  # w1 done: w3 goes first, in its own slot
    step = decide_workers(list(entries), 1, WorkerStrategy.WINDOW, entries, outside=frozenset({"w3"}))
    assert step.outage == ("w3",)
