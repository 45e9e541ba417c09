"""Adaptive flow: what the engine chooses when stride, buffer and chunksize
are left unset (imap/flow.py), checked through status() snapshots taken while
IMaps run, and results compared with the serial composition."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

import pytest
import worker_funcs as wf
from hypothesis import given, settings
from hypothesis import strategies as st
from support import consume_round_robin, run_sampled

import imap
from imap import flow
from imap.flow import draw


def echo(item):
    return item


def test_first_batches_are_single_tasklets_and_batches_grow_for_tiny_tasklets(
        worker_type, tmp_path):
    release = tmp_path / "release"
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        # Items 0 and 1 (the first batches) are held: nothing has come back yet.
        task = m.add_task(wf.hold_until_released, range(200_000),
                          args=({0, 1}, str(release)))
        m.start()
        try:
            first = m.status()
        finally:
            release.touch()
        assert first.stride == 2 and first.tasks[0].batch == 1
        assert list(task) == [10 * x for x in range(200_000)]
        last = m.status()
    assert last.tasks[0].batch > 64
    # The stride is the last turn's (the widest batch then, times 2 workers);
    # the batch may have changed with the deliveries after that turn.
    assert last.stride > 64 * 2
    assert last.tasks[0].tasklet_time is not None and last.tasks[0].busy > 0


def test_no_batch_grows_before_an_output_delivers():
    # A chain of two tasks with tiny tasklets: the first task delivers batch
    # after batch, but until the output task has delivered one, every batch
    # stays a single tasklet (the first result waits behind no large batch).
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    first = SimpleNamespace(consumer=None, flow=None, timeout=None)
    out = SimpleNamespace(consumer=None, flow=None, timeout=None)
    first.consumer = out
    policy.start([first, out])
    for _ in range(5):
        policy.observe(first, 1, busy=1e-5, latency=2e-4, nbytes=None)
    assert first.flow.batch == out.flow.batch == 1
    policy.observe(out, 1, busy=1e-5, latency=2e-4, nbytes=None)
    policy.observe(first, 1, busy=1e-5, latency=2e-4, nbytes=None)
    # then they grow: fast, as a batch's work is far below its round trip
    assert out.flow.batch == first.flow.batch == flow.RAMP_FAST


def test_the_first_result_of_a_chain_waits_behind_no_batch_of_an_earlier_stage(
        worker_type, tmp_path):
    # A chain of 3 tasks on 2 workers: until the output delivers, the chain
    # holds one tasklet per worker, so a worker that ends a stage goes on
    # with the next stage of its item. Before the last stage first starts,
    # at most 2 items (one per worker) have started the first stage; a
    # worker holding a queued first-stage batch would have started more.
    log = tmp_path / "starts"
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        last = range(40)
        for stage in range(3):
            last = m.add_task(wf.log_start, last, args=(stage, str(log), 0.02))
        m.start()
        assert list(last) == list(range(40))
    stages = [int(line.split()[0]) for line in log.read_text().splitlines()]
    assert sorted(stages) == [0] * 40 + [1] * 40 + [2] * 40
    assert stages[:stages.index(2)].count(0) <= 2


def test_batches_grow_fast_while_messaging_dominates_then_double():
    # A round trip of 1 ms, tasklets of 10 us, a cap of 20 ms of work a
    # batch: the target is about 2000 tasklets. While a batch's work is less
    # than the round trip, the batch grows RAMP_FAST times per delivery; once
    # its work exceeds a round trip, it doubles; it never passes the target.
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    policy.max_work = 0.02
    task = SimpleNamespace(consumer=None, flow=None, timeout=None)
    policy.start([task])
    sizes = []
    for _ in range(8):
        n = task.flow.batch
        policy.observe(task, n, busy=n * 1e-5, latency=1e-3 + n * 1e-5, nbytes=None)
        sizes.append(task.flow.batch)
    assert sizes[:3] == [8, 64, 512]          # 64 tasklets: 0.64 ms of work < 1 ms
    assert sizes[3] == 1024                   # 512 tasklets: 5 ms of work: doubling
    target = policy._target(1e-5)
    assert 1024 < target < 4096
    assert sizes[4] == sizes[-1] == max(sizes) == target


def test_growth_starts_from_the_batch_measured_not_from_the_size_in_force():
    # Two one-tasklet batches of 0.2 ms answered one after the other
    # (warm-up items, say), a round trip of 1.8 ms: a batch of RAMP_FAST
    # would already hold about a round trip of work, so the second answer
    # does not compound the first's growth (RAMP_FAST ** 2 = 64 tasklets
    # that no answer vouched for).
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    task = SimpleNamespace(consumer=None, flow=None, timeout=None)
    policy.start([task])
    policy.observe(task, 1, busy=2e-4, latency=2e-3, nbytes=None)
    policy.observe(task, 1, busy=2e-4, latency=2e-3, nbytes=None)
    assert task.flow.batch == flow.RAMP_FAST
    # a batch of that size answered vouches for the next step (work above a
    # round trip: doubling)
    policy.observe(task, flow.RAMP_FAST, busy=flow.RAMP_FAST * 2e-4, latency=3e-3,
                   nbytes=None)
    assert task.flow.batch == 2 * flow.RAMP_FAST
    # a smaller batch answered late (a tail share, one sent before) never shrinks it
    policy.observe(task, 2, busy=4e-4, latency=2e-3, nbytes=None)
    assert task.flow.batch == 2 * flow.RAMP_FAST


def test_tiny_tasklets_compound_their_growth_while_a_batch_is_all_messaging():
    # Tasklets of 1 us and a round trip of 1 ms: a batch of 64 is still far
    # below a round trip of work, so answers in a row compound.
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    task = SimpleNamespace(consumer=None, flow=None, timeout=None)
    policy.start([task])
    policy.observe(task, 1, busy=1e-6, latency=1e-3, nbytes=None)
    policy.observe(task, 1, busy=1e-6, latency=1e-3, nbytes=None)
    assert task.flow.batch == flow.RAMP_FAST ** 2


@given(st.lists(st.tuples(st.integers(1, 64), st.floats(1e-6, 1e-2),
                          st.floats(1e-5, 1e-2)), min_size=1, max_size=30))
def test_each_step_of_growth_is_vouched_for_or_costs_at_most_a_round_trip(answers):
    # Whatever batches come back, with whatever tasklet times and messaging
    # costs, every growth of the batch in force is either vouched for by the
    # batch just answered (at most RAMP_FAST times its size) or predicted to
    # hold at most a round trip of work (the measured tasklet time).
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    task = SimpleNamespace(consumer=None, flow=None, timeout=None)
    policy.start([task])
    for n, tasklet, cost in answers:
        before = task.flow.batch
        policy.observe(task, n, busy=n * tasklet, latency=n * tasklet + cost, nbytes=None)
        after = task.flow.batch
        if after > before:
            assert (after <= flow.RAMP_FAST * n
                    or after * task.flow.tasklet <= policy.rtt * (1 + 1e-9))


def test_a_backend_with_costly_messages_caps_batches_higher():
    # 5 ms tasklets, a round trip of 10 ms: 50 round trips of work would be
    # 0.5 s; the default cap (MAX_BATCH_WORK) keeps a batch to less, a backend
    # may allow more.
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    policy.rtt = 0.01
    assert policy._target(0.005) == int(flow.MAX_BATCH_WORK / 0.005)
    policy.max_work = 0.2
    assert policy._target(0.005) == 40


def test_a_task_with_a_timeout_never_batches_more_work_than_a_share_of_it():
    # 5 ms tasklets on a backend that allows 0.5 s of work a batch (as Dask
    # does): a task with a 0.1 s timeout gets batches of at most a quarter
    # of it (25 ms: 5 tasklets), so that a result never times out for
    # waiting behind its batch-mates; a task without one grows on.
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    policy.max_work = 0.5
    policy.rtt = 0.01
    timed = SimpleNamespace(consumer=None, flow=None, timeout=0.1)
    free = SimpleNamespace(consumer=None, flow=None, timeout=None)
    policy.start([timed, free])
    for _ in range(12):
        for task in (timed, free):
            n = task.flow.batch
            policy.observe(task, n, busy=n * 0.005, latency=0.01 + n * 0.005, nbytes=None)
    assert timed.flow.batch == int(0.1 * flow.policy.TIMEOUT_SHARE / 0.005) == 5
    assert free.flow.batch == int(0.5 / 0.005)


def test_the_tail_of_an_input_is_shared_among_the_workers():
    # A batch of 100 tasklets is in force; when only 40 are left, each of the
    # 2 workers gets 2 batches of them (TAIL_SHARES), down to single tasklets.
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    task = SimpleNamespace(consumer=None, flow=None, timeout=None)
    policy.start([task])
    task.flow.batch = 100
    assert policy.batch_for(task, None) == 100         # the length is unknown
    assert policy.batch_for(task, 10_000) == 100
    assert policy.batch_for(task, 40) == 40 // (flow.TAIL_SHARES * 2)
    assert policy.batch_for(task, 1) == 1
    assert policy.batch_for(task, 0) == 1
    # Costly messages: a tail batch still holds a round trip of work.
    policy.rtt, task.flow.tasklet = 0.015, 0.005
    assert policy.batch_for(task, 8) == 3
    # A chunksize given by hand is obeyed to the end.
    fixed = flow.FlowPolicy(None, None, 100, None, workers=2)
    fixed.start([task])
    assert fixed.batch_for(task, 40) == 100


def test_the_tail_is_a_share_of_the_whole_run_once_every_task_is_measured():
    # A chain of two tasks, 1/1024 s a tasklet each, batches of 100 in
    # force. Without the run's work left, the first task's last 40 tasklets
    # are cut into shares of their own. With it, they are cut only once the
    # run's work left is small, a tasklet counting its time to the output
    # (2/1024 s from the first task, 1/1024 s from the output).
    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    first = SimpleNamespace(consumer=None, flow=None, timeout=None)
    out = SimpleNamespace(consumer=None, flow=None, timeout=None)
    first.consumer = out
    policy.start([first, out])
    for task in (first, out):
        task.flow.batch, task.flow.tasklet = 100, 2 ** -10
    assert policy.batch_for(first, 40) == 40 // (flow.TAIL_SHARES * 2)
    assert policy.batch_for(first, 40, work_left=10.0) == 100   # the output has work
    assert policy.batch_for(first, 40, work_left=0.25) == 0.25 * 2 ** 9 // 4 + 1  # 33
    assert policy.batch_for(out, 40, work_left=0.25) == 0.25 * 2 ** 10 // 4 + 1   # 65
    assert policy.batch_for(first, 40, work_left=0.0) == 1
    out.flow.tasklet = None    # not measured yet: the share of the task's own tail
    assert policy.batch_for(first, 40, work_left=0.25) == 40 // (flow.TAIL_SHARES * 2)


def test_the_work_left_to_a_run_is_known_once_every_task_is_measured():

    first = SimpleNamespace(upstream=None, source=iter(range(10)), exhausted=False,
                            in_flight=2, results=[1], flow=SimpleNamespace(tasklet=0.5))
    out = SimpleNamespace(upstream=first, source=None, flow=SimpleNamespace(tasklet=None))
    assert draw.work_left([first, out]) is None      # the output's tasklet time
    out.flow.tasklet = 0.25
    # the first task draws 10 more; the output gets those and 3 more
    assert draw.work_left([first, out]) == 10 * 0.5 + 13 * 0.25
    first.source = (x for x in range(10))              # a generator: unknown
    assert draw.work_left([first, out]) is None


def test_queued_batches_run_deepest_first_then_shallowest_first_in_the_tail():
    from collections import deque

    from imap.flow.dispatch import take_next

    def queue():
        return deque(SimpleNamespace(task=SimpleNamespace(id=t), n=n)
                     for n, t in enumerate([0, 2, 1, 2, 0]))

    pending = queue()
    assert [take_next(pending, 0).n for _ in range(5)] == [0, 1, 2, 3, 4]  # oldest first
    pending = queue()
    assert [take_next(pending, 1).n for _ in range(5)] == [1, 3, 2, 0, 4]
    pending = queue()
    assert [take_next(pending, -1).n for _ in range(5)] == [0, 4, 2, 1, 3]


@pytest.mark.parametrize("given", [{}, {"stride": 4}])
def test_the_tail_begins_when_every_input_has_ended_with_adaptive_flow_only(given):
    with imap.IMap(worker_type="thread", worker_num=2, **given) as m:
        a = m.add_task(wf.add_one, range(500))
        b = m.add_task(wf.double, a)
        m.start()
        got = list(b)
        tail, order = m._engine.tail, m._engine.backend.depth_order
    assert got == [2 * (x + 1) for x in range(500)]
    assert (tail, order) == ((True, -1) if not given else (False, 0))


def test_what_is_left_of_an_input_is_known_for_containers_and_ended_upstreams():

    source = iter(range(10))
    next(source)
    task = SimpleNamespace(upstream=None, source=source)
    assert draw.left(task) == 9
    task.source = (x for x in range(10))                # a generator: unknown
    assert draw.left(task) is None
    up = SimpleNamespace(upstream=None, source=(x for x in range(10)), exhausted=False,
                         in_flight=3, results=[1, 2])
    chained = SimpleNamespace(upstream=up, source=None)
    assert draw.left(chained) is None    # the upstream draws from a generator
    up.exhausted = True
    assert draw.left(chained) == 5       # it has drawn all: 3 in flight, 2 to take
    up.exhausted, up.source = False, iter(range(4))
    assert draw.left(chained) == 9       # ... and 4 it will draw


def test_slow_tasklets_get_small_batches():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        task = m.add_task(time.sleep, [0.01] * 40)
        m.start()
        assert list(task) == [None] * 40
        status = m.status()
    # 10 ms tasklets: at most MAX_BATCH_WORK (50 ms) of work per batch.
    assert status.tasks[0].batch <= int(flow.MAX_BATCH_WORK / 0.01)


def test_the_byte_budget_caps_the_batch_size_in_force():
    # 3 tasks, 2 workers, tasklets of 1 KB (item + result) against a budget
    # of 1 MB: 489 tasklets fit (two copies each, and SLOT_BYTES a slot), so
    # no batch may exceed 489 // (3 * 2) = 81, however fast its tasklets;
    # without a budget, or with tasklets of 8 bytes, the batches grow on to
    # their target.
    def grown(budget, size):
        policy = flow.FlowPolicy(None, None, None, budget, workers=2)
        tasks = [SimpleNamespace(consumer=None, flow=None, timeout=None) for _ in range(3)]
        policy.start(tasks)
        for _ in range(12):
            for task in tasks:
                task.flow.size = size
                policy.observe(task, task.flow.batch, busy=1e-6 * task.flow.batch,
                               latency=1e-3, nbytes=None)
            policy.turn(tasks, slots_used=0)
        return [task.flow.batch for task in tasks], policy

    fit = (1 << 20) // (2 * 1024 + flow.policy.SLOT_BYTES)
    batches, policy = grown(1 << 20, 1024)
    assert batches == [fit // 6] * 3
    assert policy.stride * 3 <= policy.bound <= fit
    free = grown(None, 1024)[0]
    assert free[0] > 1000 and free == [free[0]] * 3
    assert grown(4 << 20, 8)[0] == free   # 37 449 tiny tasklets fit: not the limit


@pytest.mark.timeout(120)
def test_megabyte_items_stay_within_the_byte_budget():
    budget = 16 << 20
    # Distinct items: one object repeated would pickle once per batch.
    items = (bytes([i]) * (1 << 20) for i in range(60))
    with imap.IMap(worker_type="process", worker_num=2, buffer_bytes=budget) as m:
        task = m.add_task(echo, items)
        m.start()
        got, snapshots = run_sampled(m, lambda: [len(x) for x in task])
    assert got == [1 << 20] * 60
    measured = [s for s in snapshots if s.bytes_alive]
    assert measured, "no snapshot saw a measured size"
    # An item and its result are 1 MB each, alive as an object and a pickle:
    # about 4 MB a tasklet, so at most 4 tasklets fit in 16 MB once measured.
    assert all(s.bytes_alive <= budget for s in measured)
    assert all(s.buffer <= 4 for s in measured)
    assert all(s.slots_used <= s.buffer for s in snapshots)


def test_without_a_byte_budget_the_bound_is_a_count():
    with imap.IMap(worker_type="process", worker_num=2, buffer_bytes=None) as m:
        task = m.add_task(echo, [bytes(1 << 16)] * 2000)
        m.start()
        got, snapshots = run_sampled(m, lambda: sum(1 for _ in task))
    assert got == 2000
    assert all(s.slots_used <= s.buffer <= flow.MAX_ALIVE for s in snapshots)
    assert max(s.buffer for s in snapshots) > 4


def test_an_explicit_buffer_bounds_the_adaptive_stride():
    with imap.IMap(worker_type="thread", worker_num=2, buffer=7) as m:
        a = m.add_task(wf.add_one, range(3000))
        b = m.add_task(wf.double, a)
        m.start()
        got, snapshots = run_sampled(m, lambda: list(b))
    assert got == [2 * (x + 1) for x in range(3000)]
    assert all(s.buffer == 7 and s.slots_used <= 7 and s.stride <= 3 for s in snapshots)


def test_an_explicit_stride_keeps_the_old_defaults():
    with imap.IMap(worker_type="thread", worker_num=2, stride=8) as m:
        tasks = [m.add_task(wf.ident, range(100)) for _ in range(3)]
        m.start()
        status = m.status()
        assert (status.stride, status.buffer, m.chunksize) == (8, 24, 2)
        assert all(t.batch == 2 for t in status.tasks)
        assert [len(r) for r in consume_round_robin(tasks, stride=8)] == [100] * 3


def test_remote_like_latency_does_not_break_results():
    # Mixed tasklet durations: batches shrink and grow; results stay exact.
    rng = random.Random(7)
    delays = [rng.choice([0.0, 0.0, 0.0005, 0.003]) for _ in range(300)]
    with imap.IMap(worker_type="process", worker_num=2, ordered=False) as m:
        task = m.add_task(wf.sleep_and_return, list(enumerate(delays)))
        m.start()
        got = sorted(task)
    assert got == list(range(300))


# --- properties -------------------------------------------------------------------------

FUNCS = {"add_one": wf.add_one, "double": wf.double, "sleepy": wf.sleep_and_return_value}


@pytest.mark.timeout(300)
@settings(max_examples=60)
@given(
    worker_type=st.sampled_from(["thread", "process"]),
    workers=st.integers(1, 3),
    ordered=st.booleans(),
    chain=st.lists(st.sampled_from(sorted(FUNCS)), min_size=1, max_size=3),
    items=st.lists(st.integers(-100, 100), max_size=300),
    budget=st.sampled_from([None, 64, 1 << 12, flow.DEFAULT_BUFFER_BYTES]),
)
def test_adaptive_results_equal_the_serial_composition_within_the_bound(
        worker_type, workers, ordered, chain, items, budget):
    with imap.IMap(worker_type=worker_type, worker_num=workers, ordered=ordered,
                   buffer_bytes=budget) as m:
        upstream = items
        for name in chain:
            upstream = m.add_task(FUNCS[name], upstream)
        m.start()
        got, snapshots = run_sampled(m, lambda: list(upstream))
    expected = list(items)
    for name in chain:
        expected = [FUNCS[name](x) for x in expected]
    assert (got if ordered else sorted(got)) == (expected if ordered else sorted(expected))
    assert all(s.slots_used <= s.buffer for s in snapshots)
    assert all(s.stride * len(chain) <= s.buffer for s in snapshots)


def test_a_source_waits_for_a_whole_batch_of_room_while_the_workers_have_work():
    # Batches of 20, 2 workers: with 10 slots free, drawing would send a
    # fragment of 10. The source waits while the backend holds more than a
    # batch per worker (3 batches: 60 tasklets), and draws once it does not.
    from imap.run.engine import Engine

    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    engine = Engine(buffer=120, skip=False, stall_grace=None, policy=policy)
    source = SimpleNamespace(upstream=None, consumer=None, flow=None, timeout=None,
                             in_flight=0)
    policy.start([source])
    engine.impatient = policy.growing = True
    source.flow.draw = 20
    engine.buffer, engine.slots_used = 120, 110
    engine.in_flight = 60
    assert draw.short_of_room(engine, source)
    assert not draw.work_ready(engine, [source])      # the Feeder's wait agrees
    engine.in_flight = 59                        # a worker may run dry soon
    assert not draw.short_of_room(engine, source)
    assert draw.work_ready(engine, [source])
    engine.in_flight, engine.slots_used = 100, 100   # a whole batch is free
    assert not draw.short_of_room(engine, source)
    engine.slots_used = 120                      # none free: the usual wait
    assert not draw.short_of_room(engine, source)
    engine.slots_used = 110
    policy.growing = False                       # warming up: single tasklets go at once
    assert not draw.short_of_room(engine, source)
    policy.growing, engine.impatient = True, False   # patient turns: a fixed stride or buffer
    assert not draw.short_of_room(engine, source)


def test_a_task_with_its_batches_in_flight_draws_no_more_of_them():
    """A chained task whose batch size is still 1 (its first batches not
    back yet) while its upstream has thousands of results ready: it draws
    FLOOD_BATCHES batches per worker, then waits for some to come back,
    rather than cutting every ready result into a message of its own. The
    Feeder's wait agrees; a task with a timeout is not held back."""
    from imap.run.engine import Engine

    policy = flow.FlowPolicy(None, None, None, None, workers=2)
    engine = Engine(buffer=10_000, skip=False, stall_grace=None, policy=policy)
    results = SimpleNamespace(has_next=lambda: True)
    up = SimpleNamespace(upstream=None, consumer=None, flow=None, timeout=None, in_flight=0,
                         finished=lambda: False, results=results)
    task = SimpleNamespace(upstream=up, consumer=None, flow=None, timeout=None, in_flight=0)
    up.consumer = task
    policy.start([up, task])
    engine.impatient = policy.growing = True
    engine.slots_used = engine.buffer   # the source cannot draw: only the chained task may
    limit = draw.FLOOD_BATCHES * 2 * task.flow.batch
    task.in_flight = limit - 1
    assert not draw.flooded(engine, task) and draw.work_ready(engine, [up, task])
    task.in_flight = limit
    assert draw.flooded(engine, task) and not draw.work_ready(engine, [up, task])
    task.flow.batch = 64                 # a batch came back: larger batches, more room
    assert not draw.flooded(engine, task)
    task.flow.batch, task.timeout = 1, 0.5
    assert not draw.flooded(engine, task)   # given-up tasklets must not hold it back
    task.timeout, engine.impatient = None, False
    assert not draw.flooded(engine, task)   # patient turns draw their whole stride
