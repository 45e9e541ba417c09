"""Stopping, restarting and the rest of the IMap surface: the context manager,
the ``imap()`` helper, chaining across IMaps, ``status()``, ``get_task``,
``pop_task``, ``__call__``, ``iter(m)`` and ``track``."""

from __future__ import annotations

import itertools
import threading

import pytest
import worker_funcs as wf
from support import assert_no_leftovers, consume_round_robin, snapshot, wait_until

import imap


def chained(m: imap.IMap, source, record=None):
    """Three chained tasks over ``source``: add_one, double, minus_three."""
    funcs = [wf.add_one, wf.double, wf.minus_three]
    if record is not None:
        funcs = [record(k, f) for k, f in enumerate(funcs)]
    a = m.add_task(funcs[0], source)
    b = m.add_task(funcs[1], a)
    return m.add_task(funcs[2], b)


# --- stop() ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_stop_with_ends_on_an_unfinished_chain_returns_and_leaves_nothing(worker_type):
    before = snapshot()
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    end = chained(m, itertools.count())
    m.start()
    assert [end.next(timeout=30) for _ in range(5)] == [2 * (x + 1) - 3 for x in range(5)]
    m.stop(ends=[2])
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_stop_without_ends_stops_the_tasks_nobody_consumes(worker_type):
    before = snapshot()
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    end = chained(m, itertools.count())
    other = m.add_task(wf.square, itertools.count())
    m.start()
    assert end.next(timeout=30) == -1
    assert other.next(timeout=30) == 0
    m.stop()
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_stop_drains_every_drawn_tasklet_through_the_chain():
    calls = [[], [], []]

    def record(k, func):
        def recorded(x):
            calls[k].append(x)
            return func(x)

        return recorded

    m = imap.IMap(worker_type="thread", worker_num=2)
    end = chained(m, itertools.count(), record)
    m.start()
    for _ in range(7):
        end.next(timeout=30)
    m.stop(ends=[2])
    # Whatever task 0 drew went through tasks 1 and 2: nothing lost in between.
    assert len(calls[0]) == len(calls[1]) == len(calls[2]) >= 7
    assert sorted(calls[1]) == sorted(x + 1 for x in calls[0])


@pytest.mark.timeout(60)
def test_stop_on_a_finished_run_leaves_nothing(worker_type):
    before = snapshot()
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    end = chained(m, range(10))
    m.start()
    assert list(end) == [2 * (x + 1) - 3 for x in range(10)]
    m.stop()
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_forced_stop_ends_busy_process_workers_at_once(tmp_path):
    before = snapshot()
    m = imap.IMap(worker_type="process", worker_num=2, chunksize=1)
    # Every item waits for a file that never appears (for up to a minute).
    m.add_task(wf.hold_until_released, range(10), args=(set(range(10)), str(tmp_path / "never")))
    m.start()
    wait_until(lambda: m.status().tasks[0].drawn >= 2, 30, "tasklets to be drawn")
    m.stop(forced=True)
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_forced_stop_with_a_full_buffer_of_untaken_results(worker_type):
    before = snapshot()
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    a = m.add_task(wf.add_one, itertools.count())
    m.add_task(wf.double, a)
    m.add_task(wf.square, itertools.count())
    m.start()
    wait_until(lambda: m.status().slots_used == m.status().buffer, 30, "the buffer to fill")
    m.stop(forced=True)
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_status_after_stop_shows_a_stopped_imap_with_no_tasks(worker_type):
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    m.add_task(wf.add_one, range(3))
    m.start()
    assert list(m) == [1, 2, 3]
    m.stop()
    status = m.status()
    assert status.stopped
    assert status.tasks == []


# --- restart --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_imap_restarts_with_new_tasks_after_stop(worker_type):
    before = snapshot()
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    m.add_task(wf.add_one, range(5))
    m.start()
    assert list(m) == [1, 2, 3, 4, 5]
    m.stop()

    first = m.add_task(wf.square, range(4))
    second = m.add_task(wf.double, first)
    m.start()
    assert list(second) == [0, 2, 8, 18]
    assert m.status().started
    m.stop()
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_imap_restarts_after_a_stop_of_an_unfinished_run(worker_type):
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    task = m.add_task(wf.add_one, itertools.count())
    m.start()
    assert next(task) == 1
    m.stop()
    m.add_task(wf.double, range(3))
    m.start()
    assert list(m) == [0, 2, 4]
    m.stop()


@pytest.mark.timeout(60)
def test_an_iterator_of_a_stopped_run_does_not_yield_results_of_the_next_run():
    m = imap.IMap(worker_type="thread", worker_num=2)
    old = m.add_task(wf.add_one, itertools.count())
    m.start()
    assert next(old) == 1
    m.stop()
    m.add_task(wf.double, range(3))
    m.start()
    with pytest.raises((StopIteration, RuntimeError)):
        old.next(timeout=5)
    assert list(m) == [0, 2, 4]
    m.stop()


@pytest.mark.timeout(120)
def test_many_start_stop_cycles_leave_nothing(worker_type):
    before = snapshot()
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    for round_ in range(5):
        m.add_task(wf.power, range(4), args=(2,), kwargs={"offset": round_})
        m.start()
        assert list(m) == [x * x + round_ for x in range(4)]
        m.stop()
    assert_no_leftovers(before)


# --- context manager ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_context_manager_stops_an_unfinished_run_on_exit(worker_type):
    before = snapshot()
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        task = m.add_task(wf.square, itertools.count())
        m.start()
        assert [next(task) for _ in range(3)] == [0, 1, 4]
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_context_manager_forces_stop_when_an_exception_propagates(tmp_path):
    before = snapshot()
    with pytest.raises(ZeroDivisionError):
        with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
            m.add_task(
                wf.hold_until_released, range(10), args=(set(range(10)), str(tmp_path / "never"))
            )
            m.start()
            wait_until(lambda: m.status().tasks[0].drawn >= 2, 30, "tasklets to be drawn")
            1 / 0  # noqa: B018
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_context_manager_returns_the_imap_and_runs_the_constructor_task():
    with imap.IMap(wf.add_one, range(4), worker_type="thread", worker_num=2) as m:
        assert isinstance(m, imap.IMap)
        assert list(m) == [1, 2, 3, 4]


# --- imap() ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_imap_helper_yields_the_results_of_one_task(worker_type):
    before = snapshot()
    results = imap.imap(wf.square, range(10), worker_type=worker_type, worker_num=2)
    assert list(results) == [x * x for x in range(10)]
    assert_no_leftovers(before)


def test_imap_helper_passes_args_and_kwargs():
    results = imap.imap(
        wf.power, range(4), args=(3,), kwargs={"offset": 1}, worker_type="thread", worker_num=2
    )
    assert list(results) == [1, 2, 9, 28]


def test_imap_helper_passes_imap_options():
    results = imap.imap(wf.square, range(20), worker_type="thread", worker_num=2, ordered=False)
    assert sorted(results) == [x * x for x in range(20)]


@pytest.mark.timeout(60)
def test_closing_the_imap_helper_generator_stops_the_pool(worker_type):
    before = snapshot()
    results = imap.imap(wf.square, itertools.count(), worker_type=worker_type, worker_num=2)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert_no_leftovers(before)


# --- chaining across two IMaps --------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first_type,second_type", [("thread", "process"), ("process", "thread")])
def test_a_task_may_consume_a_task_of_another_imap(first_type, second_type):
    before = snapshot()
    m1 = imap.IMap(worker_type=first_type, worker_num=2)
    m2 = imap.IMap(worker_type=second_type, worker_num=2)
    upstream = m1.add_task(wf.add_one, range(20))
    downstream = m2.add_task(wf.double, upstream)
    m1.start()
    m2.start()
    assert list(downstream) == [2 * (x + 1) for x in range(20)]
    m2.stop()
    m1.stop()
    assert_no_leftovers(before)


@pytest.mark.timeout(60)
def test_chaining_across_imaps_keeps_each_buffer_bound():
    with imap.IMap(worker_type="thread", worker_num=2, buffer=3) as m1, imap.IMap(
        worker_type="thread", worker_num=1, buffer=2
    ) as m2:
        upstream = m1.add_task(wf.add_one, range(50))
        downstream = m2.add_task(wf.double, upstream)
        m1.start()
        m2.start()
        assert list(downstream) == [2 * (x + 1) for x in range(50)]
        assert m1.high_water <= 3
        assert m2.high_water <= 2


# --- status() -------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_status_of_a_running_imap_counts_each_stage():
    release = threading.Event()

    def held(x):
        if x == 0:
            assert release.wait(60)
        return x

    with imap.IMap(worker_type="thread", worker_num=1, stride=2, buffer=4) as m:
        task = m.add_task(held, range(10), name="held")
        m.start()
        wait_until(lambda: m.status().tasks[0].drawn == 4, 30, "the buffer to fill")
        status = m.status()
        assert (status.started, status.stopped) == (True, False)
        assert (status.workers, status.workers_lost) == (1, 0)
        assert (status.slots_used, status.buffer, status.high_water) == (4, 4, 4)
        [t] = status.tasks
        assert (t.task, t.name) == (0, "held")
        assert (t.drawn, t.in_flight, t.done, t.buffered, t.consumed) == (4, 4, 0, 0, 0)
        assert (t.errors, t.skipped, t.finished) == (0, 0, False)

        release.set()
        wait_until(lambda: m.status().tasks[0].done == 4, 30, "four results to arrive")
        t = m.status().tasks[0]
        assert (t.drawn, t.in_flight, t.done, t.buffered, t.consumed) == (4, 0, 4, 4, 0)

        assert [next(task) for _ in range(2)] == [0, 1]
        wait_until(lambda: m.status().tasks[0].done == 6, 30, "two more results")
        t = m.status().tasks[0]
        assert (t.drawn, t.done, t.buffered, t.consumed) == (6, 6, 4, 2)

        assert list(task) == list(range(2, 10))
        status = m.status()
        [t] = status.tasks
        assert (t.drawn, t.in_flight, t.done, t.buffered, t.consumed) == (10, 0, 10, 0, 10)
        assert t.finished
        assert status.slots_used == 0
        assert status.high_water == 4 == m.high_water


def test_task_name_defaults_to_the_function_name():
    with imap.IMap(worker_type="thread", worker_num=1) as m:
        m.add_task(wf.square, range(2))
        m.start()
        assert m.status().tasks[0].name == "square"
        assert list(m) == [0, 1]


def test_status_counts_errors():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        task = m.add_task(wf.fail_on, range(4), args=(2,))
        m.start()
        assert [task.next(), task.next()] == [0, 10]
        with pytest.raises(ValueError):
            task.next()
        assert task.next() == 30
        assert m.status().tasks[0].errors == 1


@pytest.mark.timeout(60)
def test_status_counts_workers_of_a_process_pool():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        m.add_task(wf.ident, range(3))
        m.start()
        assert m.status().workers == 2
        assert list(m) == [0, 1, 2]


# --- get_task, pop_task, __call__, iter(m), next(task=) -------------------------------


def test_call_is_add_task():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        task = m(wf.add_one, range(3))
        assert isinstance(task, imap.TaskIterator)
        assert task.task == 0 and task.imap is m
        second = m(wf.double, task)
        assert second.task == 1
        m.start()
        assert list(second) == [2, 4, 6]


def test_iterating_the_imap_iterates_task_zero():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        m.add_task(wf.add_one, range(3))
        m.start()
        assert iter(m) is not None
        assert [x for x in m] == [1, 2, 3]


def test_next_on_the_imap_takes_from_the_given_task():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        m.add_task(wf.add_one, range(2))
        m.add_task(wf.double, range(2))
        m.start()
        assert m.next(task=0) == 1
        assert m.next(task=1) == 0
        assert m.next(task=0) == 2
        assert m.next(task=1) == 2
        with pytest.raises(StopIteration):
            m.next(task=0)


def test_get_task_returns_an_iterator_of_that_task():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        m.add_task(wf.add_one, range(3))
        m.add_task(wf.double, range(3))
        second = m.get_task(1)
        assert second.task == 1 and second.imap is m
        m.start()
        assert list(m.get_task(0)) == [1, 2, 3]
        assert list(second) == [0, 2, 4]


def test_pop_task_removes_the_last_tasks_before_start():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        m.add_task(wf.add_one, range(3))
        m.add_task(wf.double, range(3))
        m.add_task(wf.square, range(3))
        m.pop_task(2)
        m.start()
        assert len(m.status().tasks) == 1
        assert list(m) == [1, 2, 3]


def test_pop_task_true_removes_every_task():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        m.add_task(wf.add_one, range(3))
        m.add_task(wf.double, range(3))
        m.pop_task(True)
        m.add_task(wf.square, range(3))
        m.start()
        assert len(m.status().tasks) == 1
        assert list(m) == [0, 1, 4]


# --- track ----------------------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_track_keeps_each_consumed_result_by_index(worker_type, ordered):
    with imap.IMap(worker_type=worker_type, worker_num=2, ordered=ordered) as m:
        tracked = m.add_task(wf.square, range(8), track=True)
        m.start()
        results = list(tracked)
        assert sorted(results) == [x * x for x in range(8)]
        assert {i: m.tracked[tracked.task][i] for i in range(8)} == {i: i * i for i in range(8)}


def test_untracked_tasks_are_not_kept():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        kept = m.add_task(wf.square, range(4), track=True)
        dropped = m.add_task(wf.add_one, range(4))
        m.start()
        consume_round_robin([kept, dropped], stride=2)
        assert len(m.tracked[kept.task]) == 4
        assert dropped.task not in m.tracked or len(m.tracked[dropped.task]) == 0
