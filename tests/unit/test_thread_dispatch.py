"""Worker threads take their batches from the backend's Dispatcher.

The thread backend is driven alone (no engine): batches of made-up tasks are
submitted to it and what it delivers is collected. Threads are held in their
functions by events and semaphores, never by sleeps, so that what is queued
when a thread frees up is known.
"""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imap import ImpossibleDependency, UnmetDependency, require
from imap.backends.batch import Batch, BatchState
from imap.backends.thread import ThreadBackend

WAIT = 10.0   # seconds a test waits for what must happen at once


class Collector:
    """The backend's ``deliver`` and ``lost``: every tasklet's outcome, by
    ``(task id, index)``, in the order they came."""

    def __init__(self) -> None:
        self.outcomes: list = []   # ((task id, index), value or error)
        self.lost: list = []
        self._cond = threading.Condition()

    def deliver(self, batch: Batch, values: list, errors: dict | None, busy=None,
                peak=None) -> None:
        batch.answer()
        with self._cond:
            for pos, index in enumerate(batch.indices):
                outcome = errors[pos] if errors and pos in errors else values[pos]
                self.outcomes.append(((batch.task.id, index), outcome))
            self._cond.notify_all()

    def on_lost(self, batch: Batch, reason: str) -> None:
        self.lost.append((batch, reason))

    def wait_for(self, n: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.outcomes) >= n, WAIT), self.outcomes


def _task(task_id: int, func, **extra) -> SimpleNamespace:
    return SimpleNamespace(id=task_id, key=f"k{task_id}", name=f"task{task_id}", func=func,
                           args=(), kwargs={}, each_result=False, **extra)


def _batch(task: SimpleNamespace, indices: list) -> Batch:
    return Batch(task, list(indices), [(task.id, i) for i in indices])


@pytest.fixture
def collector():
    return Collector()


class _Hold:
    """A function that holds its thread: it sets ``started``, then returns
    its item once ``release`` is set."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def __call__(self, item):
        self.started.set()
        assert self.release.wait(WAIT)
        return item


def _backend(collector: Collector, num: int, depth_order: int = 0) -> ThreadBackend:
    backend = ThreadBackend(num, collector.deliver, collector.on_lost)
    backend.configure(depth_order=depth_order)
    return backend


# -- depth_order ------------------------------------------------------------------------

@pytest.mark.parametrize("depth_order, expected", [
    (0, [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (0, 3), (2, 0), (2, 1)]),    # oldest first
    (1, [(2, 0), (2, 1), (1, 0), (1, 1), (0, 0), (0, 1), (0, 2), (0, 3)]),    # latest task first
    (-1, [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (2, 0), (2, 1)]),   # earliest task first
])
def test_one_thread_takes_the_queued_batches_in_the_depth_order(collector, depth_order,
                                                                expected):
    calls: list = []
    hold = _Hold()

    def record(item):
        calls.append(item)
        return item

    blocker = _task(9, hold)
    tasks = [_task(i, record) for i in range(3)]
    backend = _backend(collector, 1, depth_order)
    backend.start()
    try:
        backend.submit(_batch(blocker, [0]))
        assert hold.started.wait(WAIT)   # the one thread is busy: the rest is queued
        for task, indices in ((tasks[0], [0, 1]), (tasks[1], [0, 1]), (tasks[0], [2, 3]),
                              (tasks[2], [0, 1])):
            backend.submit(_batch(task, indices))
        hold.release.set()
        collector.wait_for(9)
    finally:
        backend.stop()
    assert calls == expected


def test_a_thread_takes_a_queued_batch_straight_to_running(collector):
    states: list = []
    hold = _Hold()

    backend = _backend(collector, 1)
    backend.start()
    try:
        running = _batch(_task(0, hold), [0])
        backend.submit(running)
        assert hold.started.wait(WAIT)
        queued = _batch(_task(1, lambda item: item), [0])
        backend.submit(queued)
        states += [running.state, queued.state]
        hold.release.set()
        collector.wait_for(2)
    finally:
        backend.stop()
    assert states == [BatchState.RUNNING, BatchState.QUEUED]
    assert (running.state, queued.state) == (BatchState.ANSWERED, BatchState.ANSWERED)


def test_the_depth_order_configured_during_a_run_holds_from_the_next_take(collector):
    calls: list = []
    hold = _Hold()

    backend = _backend(collector, 1, depth_order=1)
    backend.start()
    try:
        backend.submit(_batch(_task(9, hold), [0]))
        assert hold.started.wait(WAIT)
        for task_id in range(3):
            backend.submit(_batch(_task(task_id, lambda item: calls.append(item)), [0]))
        backend.configure(depth_order=-1)   # every input has ended: the tail
        hold.release.set()
        collector.wait_for(4)
    finally:
        backend.stop()
    assert calls == [(0, 0), (1, 0), (2, 0)]


# -- refusals ----------------------------------------------------------------------------

@require("a_module_that_is_not_there_at_all")
def _needs_a_missing_module(item):
    return item


def test_a_task_the_threads_refuse_fails_without_running_again(collector):
    task = _task(0, _needs_a_missing_module)
    backend = _backend(collector, 2)
    backend.start()
    try:
        backend.submit(_batch(task, [0, 1]))
        collector.wait_for(2)
        assert backend.may_run(task)[0] == []
        backend.submit(_batch(task, [2]))   # failed at once: the threads refused the task
        collector.wait_for(3)
    finally:
        backend.stop()
    errors = [outcome for _, outcome in collector.outcomes]
    assert all(isinstance(e, ImpossibleDependency) for e in errors), errors
    assert sorted(key for key, _ in collector.outcomes) == [(0, 0), (0, 1), (0, 2)]
    assert "the worker threads" in str(errors[0])
    assert "a_module_that_is_not_there_at_all" in str(errors[0])


# -- every batch exactly once -----------------------------------------------------------

def _refuse_odd(item):
    """Runs even items; an odd one is refused (no thread can run it)."""
    if item[1] % 2:
        raise UnmetDependency("odd items need another worker")
    return item


SUBMIT = st.tuples(st.just("submit"), st.integers(0, 2), st.integers(1, 4))
TAKE = st.tuples(st.just("take"), st.integers(1, 4))
ORDER = st.tuples(st.just("order"), st.sampled_from([-1, 0, 1]))


@settings(max_examples=60, deadline=None)
@given(threads=st.integers(1, 3), depth_order=st.sampled_from([-1, 0, 1]),
       refusing=st.booleans(), steps=st.lists(st.one_of(SUBMIT, TAKE, ORDER), max_size=25))
def test_under_any_submits_and_takes_each_batch_is_delivered_exactly_once(threads, depth_order,
                                                                         refusing, steps):
    collector = Collector()
    gate = threading.Semaphore(0)   # one token: one tasklet may run
    calls: list = []
    calls_lock = threading.Lock()

    def gated(item):
        assert gate.acquire(timeout=WAIT)
        with calls_lock:
            calls.append(item)
        if refusing and item[0] == 2:
            return _refuse_odd(item)
        return item

    tasks = [_task(i, gated) for i in range(3)]
    drawn = [0, 0, 0]   # tasklets of each task submitted so far
    submitted: list = []
    released = 0
    backend = _backend(collector, threads, depth_order)
    backend.start()
    try:
        for step in steps:
            if step[0] == "submit":
                _, task_id, size = step
                indices = range(drawn[task_id], drawn[task_id] + size)
                drawn[task_id] += size
                submitted += [(task_id, i) for i in indices]
                backend.submit(_batch(tasks[task_id], indices))
            elif step[0] == "take":
                gate.release(step[1])
                released += step[1]
            else:
                backend.configure(depth_order=step[1])
        if len(submitted) > released:
            gate.release(len(submitted) - released)
        collector.wait_for(len(submitted))
    finally:
        backend.stop()
    delivered = Counter(key for key, _ in collector.outcomes)
    assert sorted(delivered) == sorted(submitted)
    assert set(delivered.values()) <= {1}, delivered   # none twice
    assert Counter(calls) == Counter(submitted)        # each run once
    assert not collector.lost
    for (task_id, index), outcome in collector.outcomes:
        if refusing and task_id == 2 and index % 2:
            assert isinstance(outcome, ImpossibleDependency), outcome
        else:
            assert outcome == (task_id, index)
