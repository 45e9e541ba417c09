"""Properties of IMap over random configurations (hypothesis).

A configuration is a pool (worker type and count), a stride, a buffer, a
chunksize, ordered or not, and a set of independent linear chains of pure
functions, each over its own input list (length 0 included). Every property
consumes the ends of the chains the legal way (round-robin, a stride at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import worker_funcs as wf
from hypothesis import given, settings
from hypothesis import strategies as st
from support import consume_round_robin, run_sampled, weave_order

import imap

FUNCTIONS = {"add_one": wf.add_one, "double": wf.double, "minus_three": wf.minus_three}


@dataclass
class Config:
    worker_num: int
    stride: int | None
    extra_buffer: int | None  # buffer = stride + extra_buffer, or the default
    chunksize: int | None
    ordered: bool
    chains: list[tuple[list[str], list[int]]]  # (function names, input)

    @property
    def effective_stride(self) -> int:
        return self.stride or self.worker_num

    @property
    def n_tasks(self) -> int:
        return sum(len(names) for names, _ in self.chains)

    @property
    def buffer(self) -> int | None:
        if self.extra_buffer is None:
            return None
        return self.effective_stride + self.extra_buffer

    @property
    def effective_buffer(self) -> int:
        return self.buffer or self.effective_stride * self.n_tasks


def configs(max_workers: int = 3, max_items: int = 40):
    chain = st.tuples(
        st.lists(st.sampled_from(sorted(FUNCTIONS)), min_size=1, max_size=3),
        st.lists(st.integers(-1000, 1000), max_size=max_items),
    )
    return st.builds(
        Config,
        worker_num=st.integers(1, max_workers),
        stride=st.none() | st.integers(1, 5),
        extra_buffer=st.none() | st.integers(0, 8),
        chunksize=st.none() | st.integers(1, 4),
        ordered=st.booleans(),
        chains=st.lists(chain, min_size=1, max_size=3),
    )


def serial(names: list[str], items: list[int]) -> list[int]:
    out = []
    for x in items:
        for name in names:
            x = FUNCTIONS[name](x)
        out.append(x)
    return out


def build(m: imap.IMap, config: Config, wrap=None) -> list:
    """Add the chains' tasks to ``m``; the iterators of the chain ends.

    ``wrap(task_id, func)`` may replace each function (to record calls).
    """
    ends = []
    task_id = 0
    for names, items in config.chains:
        upstream = items
        for name in names:
            func = FUNCTIONS[name]
            upstream = m.add_task(wrap(task_id, func) if wrap else func, upstream)
            assert upstream.task == task_id
            task_id += 1
        ends.append(upstream)
    return ends


def imap_for(config: Config, worker_type: str, stride: int | None = None) -> imap.IMap:
    return imap.IMap(
        worker_type=worker_type,
        worker_num=config.worker_num,
        stride=stride or config.stride,
        buffer=config.buffer,
        chunksize=config.chunksize,
        ordered=config.ordered,
    )


def check_results_and_buffer(config: Config, worker_type: str) -> None:
    adaptive = config.stride is None and config.buffer is None
    with imap_for(config, worker_type) as m:
        ends = build(m, config)
        m.start()
        # With an adaptive stride, snapshots taken while the IMap runs show the
        # bound in force at that moment; no snapshot may exceed it.
        results, snapshots = run_sampled(
            m, lambda: consume_round_robin(ends, config.stride or 1, timeout=30))
        status = m.status()
        if adaptive:
            assert all(s.slots_used <= s.buffer for s in snapshots)
            assert all(s.high_water <= imap.flow.MAX_ALIVE for s in snapshots)
        else:
            assert status.buffer == config.effective_buffer
            assert status.high_water <= config.effective_buffer
        assert m.high_water == status.high_water
        assert all(task.finished for task in status.tasks)
    for (names, items), got in zip(config.chains, results, strict=True):
        expected = serial(names, items)
        if config.ordered:
            assert got == expected
        else:
            assert sorted(got) == sorted(expected)


@pytest.mark.timeout(300)
@settings(max_examples=300)
@given(config=configs())
def test_thread_results_equal_serial_composition_within_the_buffer(config):
    check_results_and_buffer(config, "thread")


@pytest.mark.timeout(300)
@settings(max_examples=50)
@given(config=configs(max_workers=3, max_items=25))
def test_process_results_equal_serial_composition_within_the_buffer(config):
    check_results_and_buffer(config, "process")


@pytest.mark.timeout(300)
@settings(max_examples=300)
@given(config=configs(max_workers=1))
def test_one_thread_worker_calls_functions_in_weave_order(config):
    calls: list[tuple[int, int]] = []

    def wrap(task_id, func):
        def recorded(x):
            calls.append((task_id, x))
            return func(x)

        return recorded

    # The weave with a fixed stride (an adaptive one is chosen turn by turn).
    with imap_for(config, "thread", stride=config.effective_stride) as m:
        ends = build(m, config, wrap)
        m.start()
        consume_round_robin(ends, config.effective_stride, timeout=30)

    counts = [len(items) for names, items in config.chains for _ in names]
    assert [task for task, _ in calls] == weave_order(counts, config.effective_stride)

    # Each task saw its input in order (one worker: arrival order is input order).
    task_id = 0
    for names, items in config.chains:
        upstream = items
        for name in names:
            assert [x for t, x in calls if t == task_id] == upstream
            upstream = [FUNCTIONS[name](x) for x in upstream]
            task_id += 1


@pytest.mark.slow
@pytest.mark.timeout(900)
@settings(max_examples=300)
@given(config=configs(max_workers=3, max_items=40))
def test_process_results_soak(config):
    check_results_and_buffer(config, "process")


@pytest.mark.slow
@pytest.mark.timeout(900)
@settings(max_examples=2000)
@given(config=configs())
def test_thread_results_soak(config):
    check_results_and_buffer(config, "thread")


@pytest.mark.timeout(300)
def test_one_process_imap_restarted_for_every_example_stays_correct():
    # The pool is stopped and restarted with new tasks for each example.
    m = imap.IMap(worker_type="process", worker_num=2, stride=3)

    @settings(max_examples=25)
    @given(chains=configs(max_items=25).map(lambda config: config.chains))
    def example(chains):
        ends = []
        for names, items in chains:
            upstream = items
            for name in names:
                upstream = m.add_task(FUNCTIONS[name], upstream)
            ends.append(upstream)
        m.start()
        try:
            results = consume_round_robin(ends, 3, timeout=30)
            assert m.high_water <= m.status().buffer
        finally:
            m.stop()
        assert results == [serial(names, items) for names, items in chains]

    example()


def test_a_fixed_stride_larger_than_buffer_over_tasks_is_kept_on_process_workers():
    # Found by the property above: the first pickled batch must not change a
    # stride given explicitly (here 4 on a buffer of 4 for 3 chained tasks).
    config = Config(worker_num=1, stride=4, extra_buffer=0, chunksize=None, ordered=False,
                    chains=[(["add_one", "add_one", "add_one"], [0, 0, 0, 0, 0])])
    check_results_and_buffer(config, "process")


def test_adaptive_turns_keep_the_weave_order_on_a_buffer_of_one():
    # Found by the property above: with a buffer of 1 and two outputs read in
    # turn, task 1 must have the next turn once task 0's result is taken,
    # not task 0 again.
    config = Config(worker_num=1, stride=None, extra_buffer=0, chunksize=None, ordered=False,
                    chains=[(["add_one"], [0, 0]), (["add_one"], [0, -160, 952, 103, -78, 296])])
    for worker_type in ("thread", "process"):
        check_results_and_buffer(config, worker_type)


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_several_outputs_read_in_turn_never_stall_with_an_adaptive_stride(worker_type):
    # Found by the soak: independent chains read one result at a time, in
    # turn, on a small buffer. Drawing ahead for one output must not fill
    # the buffer while the reader waits on another.
    configs_found = [
        Config(worker_num=1, stride=None, extra_buffer=1, chunksize=None, ordered=False,
               chains=[(["add_one", "add_one"], [0]), (["add_one", "add_one"], [0, 0]),
                       (["add_one"], [0, 0])]),
        Config(worker_num=3, stride=None, extra_buffer=2, chunksize=3, ordered=True,
               chains=[(["add_one", "add_one"], list(range(7))),
                       (["add_one", "add_one"], list(range(18))),
                       (["double", "add_one", "double"], list(range(22)))]),
        Config(worker_num=2, stride=None, extra_buffer=None, chunksize=None, ordered=True,
               chains=[(["add_one", "add_one"], list(range(50))),
                       (["double"], list(range(300))), (["add_one"], list(range(5)))]),
    ]
    for config in configs_found:
        check_results_and_buffer(config, worker_type)
