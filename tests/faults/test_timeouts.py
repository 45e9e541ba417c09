"""Timeouts: ``next(timeout=...)``, per-task defaults, ``block=False``, and what
``skip`` does with a result that is late."""

from __future__ import annotations

import threading
import time

import pytest
import worker_funcs as wf
from support import wait_until

import imap


def held_back(event: threading.Event, held: set):
    """``10 * x``; items in ``held`` wait for ``event`` first."""

    def func(x):
        if x in held:
            assert event.wait(60), "test never released the item"
        return 10 * x

    return func


@pytest.mark.timeout(30)
def test_next_with_timeout_raises_when_the_result_is_held_back():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1) as m:
        task = m.add_task(held_back(release, {1}), range(3))
        m.start()
        assert task.next(timeout=10) == 0
        with pytest.raises(imap.TimeoutError):
            task.next(timeout=0.2)
        release.set()
        assert list(task) == [10, 20]


@pytest.mark.timeout(30)
def test_without_skip_the_timed_out_result_is_returned_later():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1, skip=False) as m:
        task = m.add_task(held_back(release, {1}), range(5))
        m.start()
        assert task.next(timeout=10) == 0
        for _ in range(3):
            with pytest.raises(imap.TimeoutError):
                task.next(timeout=0.1)
        release.set()
        assert [task.next(timeout=10) for _ in range(4)] == [10, 20, 30, 40]
        assert m.status().tasks[0].skipped == 0


@pytest.mark.timeout(30)
def test_timeout_on_the_imap_next_raises_too():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=1) as m:
        m.add_task(held_back(release, {0}), range(2))
        m.start()
        with pytest.raises(imap.TimeoutError):
            m.next(timeout=0.2, task=0)
        release.set()
        assert [m.next(timeout=10), m.next(timeout=10)] == [0, 10]


@pytest.mark.timeout(30)
def test_skip_returns_the_following_result_after_a_timeout():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1, skip=True) as m:
        task = m.add_task(held_back(release, {1}), range(5))
        m.start()
        assert task.next(timeout=10) == 0
        with pytest.raises(imap.TimeoutError):
            task.next(timeout=0.2)
        assert task.next(timeout=10) == 20
        release.set()
        assert list(task) == [30, 40]


@pytest.mark.timeout(30)
def test_skip_gives_the_slot_back_and_drops_the_late_result():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1, skip=True) as m:
        task = m.add_task(held_back(release, {1}), range(5))
        m.start()
        assert task.next(timeout=10) == 0
        with pytest.raises(imap.TimeoutError, match="result 1 abandoned"):
            task.next(timeout=0.2)
        got = [task.next(timeout=10) for _ in range(3)]
        assert got == [20, 30, 40]
        # The skipped tasklet's slot went back at the skip, though it still runs.
        status = m.status()
        assert status.slots_used == 0 and status.tasks[0].in_flight == 1
        release.set()
        wait_until(lambda: m.status().tasks[0].in_flight == 0, 10, "the late result")
        with pytest.raises(StopIteration):
            task.next(timeout=10)
        status = m.status()
        assert status.slots_used == 0   # the late result freed nothing more
        assert status.tasks[0].skipped == 1
        assert status.tasks[0].buffered == 0


@pytest.mark.timeout(30)
def test_per_task_timeout_is_the_default_of_next_on_that_task():
    # The default applies to next(it) and for-loops; it.next(timeout=...) is explicit.
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1) as m:
        slow = m.add_task(held_back(release, {0}), range(2), timeout=0.2)
        m.start()
        with pytest.raises(imap.TimeoutError):
            next(slow)
        with pytest.raises(imap.TimeoutError):
            for _ in slow:
                break
        release.set()
        assert [next(slow), next(slow)] == [0, 10]


@pytest.mark.timeout(30)
def test_per_task_timeout_applies_to_that_task_only():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=2, chunksize=1) as m:
        slow = m.add_task(held_back(release, {0}), range(1), timeout=0.2)
        fast = m.add_task(wf.add_one, range(1))
        m.start()
        with pytest.raises(imap.TimeoutError):
            next(slow)
        assert next(fast) == 1  # waits as long as needed: no timeout on this task
        release.set()
        assert next(slow) == 0


@pytest.mark.timeout(30)
def test_get_task_sets_the_default_timeout():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=1) as m:
        m.add_task(held_back(release, {0}), range(1))
        m.start()
        with pytest.raises(imap.TimeoutError):
            next(m.get_task(0, timeout=0.2))
        release.set()
        assert next(m.get_task(0)) == 0


@pytest.mark.timeout(30)
def test_non_blocking_next_raises_at_once_when_the_result_is_not_there():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=1, buffer=2) as m:
        m.add_task(held_back(release, {0}), range(2))
        m.start()
        began = time.monotonic()
        with pytest.raises(imap.TimeoutError):
            m.next(block=False)
        assert time.monotonic() - began < 1.0
        release.set()
        wait_until(lambda: m.status().tasks[0].buffered == 2, 10, "both results arrive")
        assert m.next(block=False) == 0
        assert m.next(block=False) == 10


@pytest.mark.timeout(30)
def test_non_blocking_default_set_by_add_task():
    release = threading.Event()
    with imap.IMap(worker_type="thread", worker_num=1) as m:
        task = m.add_task(held_back(release, {0}), range(1), block=False)
        m.start()
        with pytest.raises(imap.TimeoutError):
            next(task)
        release.set()
        wait_until(lambda: m.status().tasks[0].buffered == 1, 10, "the result arrives")
        assert next(task) == 0


@pytest.mark.timeout(60)
def test_timeout_on_process_workers(tmp_path):
    release = tmp_path / "release"
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
        task = m.add_task(wf.hold_until_released, range(4), args=({2}, str(release)))
        m.start()
        assert [task.next(timeout=30), task.next(timeout=30)] == [0, 10]
        with pytest.raises(imap.TimeoutError):
            task.next(timeout=0.3)
        release.touch()
        assert list(task) == [20, 30]
