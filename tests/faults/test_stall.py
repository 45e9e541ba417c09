"""A consumer that would wait for ever gets a StallError naming the tasks to
drain, and loses nothing by it."""

from __future__ import annotations

import threading

import pytest
import worker_funcs as wf
from support import consume_round_robin

import imap


def seed_scenario(**options) -> tuple[imap.IMap, object, object]:
    """Two un-nested tasks, stride 3, default buffer 6, one worker; six results
    of output 0 taken, so the buffer is full of results of output 1."""
    m = imap.IMap(worker_type="thread", worker_num=1, stride=3, **options)
    out0 = m.add_task(wf.double, range(10), name="first")
    out1 = m.add_task(wf.add_one, range(10), name="drain_me")
    m.start()
    assert [out0.next(timeout=10) for _ in range(6)] == [0, 2, 4, 6, 8, 10]
    return m, out0, out1


@pytest.mark.timeout(30)
def test_waiting_for_ever_on_a_stalled_imap_raises_stall_error_naming_the_task_to_drain():
    m, out0, out1 = seed_scenario(stall_grace=0)
    with m:
        with pytest.raises(imap.StallError) as info:
            out0.next()  # no timeout: would wait for ever
        message = str(info.value)
        assert "drain_me" in message or "task 1" in message, message
        assert isinstance(info.value, RuntimeError)


@pytest.mark.timeout(30)
def test_after_draining_the_named_task_iteration_proceeds_and_nothing_is_lost():
    m, out0, out1 = seed_scenario(stall_grace=0)
    with m:
        with pytest.raises(imap.StallError):
            out0.next()
        with pytest.raises(imap.StallError):  # still stalled: nothing was taken
            next(out0)
        assert out1.next(timeout=10) == 1
        assert out0.next(timeout=10) == 12
        catch_up = [out1.next(timeout=10) for _ in range(5)]
        rest0, rest1 = consume_round_robin([out0, out1], stride=3, timeout=10)
    assert [0, 2, 4, 6, 8, 10, 12] + rest0 == [2 * x for x in range(10)]
    assert [1] + catch_up + rest1 == [x + 1 for x in range(10)]


@pytest.mark.timeout(30)
def test_stall_error_comes_after_the_grace_period_on_the_imap_next():
    m, out0, out1 = seed_scenario(stall_grace=0.2)
    with m:
        with pytest.raises(imap.StallError):
            m.next(task=0)


@pytest.mark.timeout(30)
def test_a_slow_result_is_not_a_stall():
    release = threading.Event()

    def slow(x):
        assert release.wait(60)
        return x

    with imap.IMap(worker_type="thread", worker_num=1, stall_grace=0) as m:
        task = m.add_task(slow, range(2))
        m.start()
        with pytest.raises(imap.TimeoutError):
            task.next(timeout=0.3)
        release.set()
        assert list(task) == [0, 1]


@pytest.mark.timeout(30)
def test_a_chained_task_whose_input_is_starved_by_a_full_buffer_stalls():
    # Task 2 consumes task 0; task 1 sits between them in the weave. With a
    # buffer of one stride the weave is stuck at task 1 for good: the only slot
    # is held by a result of task 0 that only task 2 would take, and task 2's
    # turn never comes. Every wait must end in an error, not a hang.
    with imap.IMap(worker_type="thread", worker_num=1, stride=1, buffer=1, stall_grace=0) as m:
        head = m.add_task(wf.add_one, range(3), name="head")
        other = m.add_task(wf.double, range(3), name="other")
        tail = m.add_task(wf.square, head, name="tail")
        m.start()
        with pytest.raises(imap.StallError):
            other.next()
        with pytest.raises(imap.StallError):
            tail.next()
