"""Ordered and unordered results, the weave, and the buffer bound seen from
the input side."""

from __future__ import annotations

import itertools
import threading

import pytest
import worker_funcs as wf
from support import consume_round_robin, wait_until, weave_order

import imap


def first_waits_for_second():
    """Item 0 finishes only after item 1 has finished."""
    second_done = threading.Event()

    def func(x):
        if x == 0:
            assert second_done.wait(60)
        else:
            second_done.set()
        return 10 * x

    return func


@pytest.mark.timeout(30)
def test_ordered_results_come_in_input_order_even_when_later_items_finish_first():
    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1, ordered=True) as m:
        m.add_task(first_waits_for_second(), range(2))
        m.start()
        assert list(m) == [0, 10]


@pytest.mark.timeout(30)
def test_unordered_results_come_in_arrival_order():
    release = threading.Event()

    def func(x):
        if x == 0:
            assert release.wait(60)
        return 10 * x

    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1, ordered=False) as m:
        task = m.add_task(func, range(2))
        m.start()
        assert task.next(timeout=10) == 10  # item 1 arrived first
        release.set()
        assert task.next(timeout=10) == 0
        with pytest.raises(StopIteration):
            task.next(timeout=10)


@pytest.mark.timeout(30)
def test_unordered_chained_task_consumes_upstream_results_as_they_arrive():
    release = threading.Event()

    def func(x):
        if x == 0:
            assert release.wait(60)
        return x

    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1, ordered=False) as m:
        first = m.add_task(func, range(2))
        second = m.add_task(wf.add_one, first)
        m.start()
        assert second.next(timeout=10) == 2
        release.set()
        assert second.next(timeout=10) == 1


@pytest.mark.timeout(30)
def test_inputs_are_drawn_in_weave_order_whatever_the_worker_count():
    drawn = []

    def source(task, n):
        for i in range(n):
            drawn.append(task)
            yield i

    with imap.IMap(worker_type="thread", worker_num=3, stride=2) as m:
        tasks = [m.add_task(wf.ident, source(k, n)) for k, n in enumerate([5, 1, 4])]
        m.start()
        results = consume_round_robin(tasks, stride=2)
    assert results == [list(range(5)), [0], list(range(4))]
    assert drawn == weave_order([5, 1, 4], stride=2)


@pytest.mark.timeout(30)
def test_input_is_never_read_ahead_of_the_buffer():
    pulled = []
    overdrawn = threading.Event()
    buffer = 5

    def source():
        for i in itertools.count():
            if i >= buffer:
                overdrawn.set()
            pulled.append(i)
            yield i

    with imap.IMap(worker_type="thread", worker_num=2, stride=2, buffer=buffer) as m:
        task = m.add_task(wf.ident, source())
        m.start()
        wait_until(lambda: m.status().tasks[0].done == buffer, 10, "the buffer to fill")
        # Results are waiting in every slot: drawing must pause. (A short wait
        # for something that must not happen.)
        assert not overdrawn.wait(0.3), f"pulled {len(pulled)} items with a buffer of {buffer}"
        assert m.status().slots_used == buffer
        assert next(task) == 0
        wait_until(lambda: len(pulled) == buffer + 1, 10, "one more item once a slot is free")
        assert m.high_water <= buffer


@pytest.mark.timeout(30)
def test_results_taken_by_a_chained_task_free_their_slots():
    with imap.IMap(worker_type="thread", worker_num=2, stride=2, buffer=2) as m:
        first = m.add_task(wf.add_one, range(30))
        second = m.add_task(wf.double, first)
        m.start()
        assert list(second) == [2 * (x + 1) for x in range(30)]
        assert m.high_water <= 2
