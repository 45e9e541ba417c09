"""The backend contract: the same behaviours on every kind of pool.

Each test runs on thread and process workers, remote workers (a real
``imap-server`` on 127.0.0.1), a mixed pool (one process and one remote
connection), a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor`` and a Dask
``LocalCluster``, two workers each. Where a backend cannot have a behaviour,
the test says so by name (``CANNOT``), never by hiding a failure.
"""

from __future__ import annotations

import os
import signal

import cloudpickle
import pytest
import retry_funcs
import worker_funcs as wf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    buffer_items,
    collecting,
    imap_threads,
    read_when_written,
    take_skipping,
    wait_until,
)

import imap
from imap import IMap, TimeoutError, WorkerInitError, WorkerLostError, WorkerTraceback

distributed = pytest.importorskip("distributed")
cloudpickle.register_pickle_by_value(retry_funcs)   # attempts counted on any host

# Behaviours a backend cannot have, and why ("kill": a worker killed from
# outside; "overtake": fast items pass a held one, which needs two workers).
CANNOT = {
    ("thread", "kill"): "threads cannot be killed from outside",
    ("thread-executor", "kill"): "threads cannot be killed from outside",
    ("process-executor", "kill"): "a killed worker breaks a ProcessPoolExecutor for good "
                                  "(BrokenProcessPool), which the executor tests cover",
    ("dask", "kill"): "Dask's nanny replaces a killed worker itself; the Dask tests cover it",
}

# Dask keeps threads of its own between tests; each test checks instead that
# no thread of an IMap's is left.
pytestmark = [pytest.mark.timeout(120), pytest.mark.allow_leftovers]


@pytest.fixture(autouse=True)
def _no_imap_thread_left():
    before = imap_threads()
    yield
    wait_until(lambda: not (imap_threads() - before), 10)


def cannot(kind: str, behaviour: str) -> None:
    """Skip, naming why, a behaviour that backend ``kind`` cannot have."""
    why = CANNOT.get((kind, behaviour))
    if why:
        pytest.skip(f"{kind}: {why}")


def outcomes(task, n: int, timeout: float = 60) -> list:
    """``n`` results of ``task``: values, or the exceptions raised for them."""
    out = []
    for _ in range(n):
        try:
            out.append(task.next(timeout=timeout))
        except (StopIteration, TimeoutError):
            raise
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            out.append(exc)
    return out


# -- results ---------------------------------------------------------------------------


def test_results_equal_the_serial_map_in_order(backend):
    _, options = backend
    with IMap(**options) as m:
        task = m.add_task(wf.square, range(60))
        m.start()
        assert list(task) == [x * x for x in range(60)]


def test_unordered_results_are_every_result_once(backend):
    _, options = backend
    with IMap(ordered=False, **options) as m:
        task = m.add_task(wf.square, range(60))
        m.start()
        assert sorted(task) == [x * x for x in range(60)]


def test_an_empty_input_gives_no_result(backend):
    _, options = backend
    with IMap(**options) as m:
        task = m.add_task(wf.square, [])
        m.start()
        assert list(task) == []


def test_a_chain_of_two_tasks_composes(backend):
    _, options = backend
    with IMap(**options) as m:
        first = m.add_task(wf.square, range(40))
        second = m.add_task(wf.add_one, first)
        m.start()
        assert list(second) == [x * x + 1 for x in range(40)]


# -- errors ----------------------------------------------------------------------------


def test_an_error_is_raised_at_its_position_with_the_worker_traceback(backend):
    _, options = backend
    with IMap(**options) as m:
        task = m.add_task(wf.fail_on, range(8), args=(3,))
        m.start()
        out = outcomes(task, 8)
    assert [x for i, x in enumerate(out) if i != 3] == [10 * x for x in range(8) if x != 3]
    assert isinstance(out[3], ValueError)
    assert isinstance(out[3].__cause__, WorkerTraceback)
    assert "fail_on" in str(out[3].__cause__)


# -- the initializer -------------------------------------------------------------------


def test_the_initializer_runs_once_in_each_worker_process_before_its_tasklets(backend,
                                                                              tmp_path):
    kind, options = backend
    if kind in ("thread", "thread-executor"):
        # One process: record_init runs once per process and fails the second time.
        options = dict(options, initializer=wf.set_init_value, initargs=("ready",))
        with IMap(**options) as m:
            task = m.add_task(wf.read_init_value, range(20))
            m.start()
            assert list(task) == [(x, "ready") for x in range(20)]
        return
    directory = str(tmp_path)
    with IMap(initializer=wf.record_init, initargs=(directory,), **options) as m:
        task = m.add_task(wf.was_initialized, range(40), args=(directory,))
        m.start()
        assert list(task) == [True] * 40
    assert 1 <= len(list(tmp_path.glob("init.*"))) <= 2


def _fail_to_initialize():
    raise ZeroDivisionError("an initializer that fails")


def test_a_failing_initializer_gives_the_same_error_on_every_backend(backend):
    _, options = backend
    with IMap(initializer=_fail_to_initialize, **options) as m:
        task = m.add_task(wf.square, range(6))
        m.start()
        out = outcomes(task, 6)
    assert all(isinstance(e, WorkerInitError) for e in out), out
    assert all(isinstance(e.__cause__, ZeroDivisionError) for e in out)
    assert "_fail_to_initialize" in str(out[0])


# -- timeouts and late binding -----------------------------------------------------------


def test_a_timeout_without_skip_keeps_the_result_for_a_later_call(backend, tmp_path):
    _, options = backend
    release = str(tmp_path / "release")
    with IMap(**options) as m:
        task = m.add_task(wf.hold_until_released, range(3), args=({0}, release))
        m.start()
        with pytest.raises(TimeoutError):
            task.next(timeout=0.2)
        wf.write_atomically(release, "go")
        assert [task.next(timeout=60) for _ in range(3)] == [0, 10, 20]


def test_skip_gives_up_a_hung_tasklet_alone(backend, tmp_path):
    # Item 4 holds its worker; the items queued behind it run elsewhere and
    # none of them times out with it.
    _, options = backend
    release = str(tmp_path / "release")
    with IMap(skip=True, **options) as m:
        task = m.add_task(wf.hold_until_released, range(12), args=({4}, release),
                          timeout=0.5)
        m.start()
        got, timed_out, _ = take_skipping(task)
        wf.write_atomically(release, "go")
    assert timed_out == 1
    assert got == [10 * x for x in range(12) if x != 4]


def test_unordered_fast_items_do_not_wait_behind_a_slow_one(backend, tmp_path):
    # Item 1 holds its worker until every other item has been taken: with
    # late binding they all run on the other worker meanwhile (a kind of
    # pool with one worker says so in CANNOT).
    kind, options = backend
    cannot(kind, "overtake")
    release = str(tmp_path / "release")
    with IMap(ordered=False, **options) as m:
        task = m.add_task(wf.hold_until_released, range(10), args=({1}, release))
        m.start()
        early = [task.next(timeout=60) for _ in range(9)]
        wf.write_atomically(release, "go")
        last = task.next(timeout=60)
    assert sorted(early) == [10 * x for x in range(10) if x != 1]
    assert last == 10


# -- stopping --------------------------------------------------------------------------


def test_a_graceful_stop_returns_with_results_untaken(backend):
    _, options = backend
    m = IMap(**options)
    task = m.add_task(wf.square, range(200))
    m.start()
    assert task.next(timeout=60) == 0
    m.stop()
    assert not m.running


def test_a_forced_stop_returns_while_a_tasklet_still_runs(backend, tmp_path):
    # The pytest timeout bounds it; the release comes after the stop, so
    # the held tasklet was still running when the stop began.
    _, options = backend
    release = str(tmp_path / "release")
    m = IMap(**options)
    task = m.add_task(wf.hold_until_released, range(4), args=({0}, release))
    m.start()
    with pytest.raises(TimeoutError):
        task.next(timeout=0.3)
    m.stop(forced=True)
    wf.write_atomically(release, "go")
    assert not m.running


# -- a killed worker ------------------------------------------------------------------


def test_a_killed_worker_fails_or_reruns_only_what_it_held(backend, tmp_path):
    kind, options = backend
    cannot(kind, "kill")
    # Item 3 holds its worker on its first attempt only: run again, it
    # returns at once.
    directory = str(tmp_path)
    with IMap(**options) as m:
        task = m.add_task(wf.report_pid_and_hold_first_attempt, range(10),
                          args=(3, directory))
        m.start()
        os.kill(int(read_when_written(tmp_path / "pid")), signal.SIGKILL)
        out = outcomes(task, 10)
    assert [x for i, x in enumerate(out) if i != 3] == [2 * x for x in range(10) if x != 3]
    assert out[3] == 6 or isinstance(out[3], WorkerLostError), out[3]


# -- functional dependencies -------------------------------------------------------------


def test_an_impossible_dependency_fails_each_item_at_its_position(backend):
    _, options = backend
    with IMap(**options) as m:
        hopeless = m.add_task(wf.needs_missing_module, range(4))
        fine = m.add_task(imap.require("math")(wf.square), range(4))
        m.start()
        got = outcomes(hopeless, 4)
        squares = list(fine)
    assert all(isinstance(e, imap.ImpossibleDependency) for e in got), got
    assert all("module_nowhere_to_be_found_xyz" in str(e) for e in got)
    assert squares == [0, 1, 4, 9]


# -- arrays and buffers --------------------------------------------------------------------


np = pytest.importorskip("numpy")   # the test extra installs it


@settings(max_examples=4, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.sampled_from([0, 1000, 65535, 65536, 70_000, 1 << 20]),
                      min_size=1, max_size=8))
def test_buffers_of_every_kind_cross_a_chain_intact(backend, sizes):
    _, options = backend
    items = buffer_items(sizes)
    with IMap(**options) as m:
        first = m.add_task(wf.ident, items)
        second = m.add_task(wf.ident, first)
        m.start()
        got = list(second)
    for want, have in zip(items, got, strict=True):
        assert type(have) is type(want)
        if isinstance(want, np.ndarray):
            assert have.shape == want.shape and have.dtype == want.dtype
            assert (have == want).all()
        else:
            assert have == want


# -- a property ----------------------------------------------------------------------


@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 40), ordered=st.booleans(), chained=st.booleans())
def test_results_equal_the_serial_composition(backend, n, ordered, chained):
    _, options = backend
    with IMap(ordered=ordered, **options) as m:
        last = m.add_task(wf.square, range(n))
        if chained:
            last = m.add_task(wf.add_one, last)
        m.start()
        got = list(last)
    want = [x * x + (1 if chained else 0) for x in range(n)]
    assert (got if ordered else sorted(got)) == want



# -- retries and worker logs -------------------------------------------------------------


def test_a_transient_error_succeeds_within_retries(backend, tmp_path):
    """A function that raises a ``retry_on`` exception on the first two
    attempts of every item succeeds on the third: the values of a run
    without errors, each item attempted exactly three times."""
    _, options = backend
    with IMap(**options) as m:
        task = m.add_task(retry_funcs.flaky, range(6), (str(tmp_path), 2), retries=3,
                          retry_on=OSError)
        m.start()
        assert list(task) == [10 * x for x in range(6)]
    assert [len(retry_funcs.attempt_times(str(tmp_path), x)) for x in range(6)] == [3] * 6


def test_records_a_worker_logs_reach_the_parent_named_by_worker(backend):
    """What a function logs reaches the parent's handlers (level filtered by
    the parent's), each record naming the worker that logged it."""
    kind, options = backend
    with collecting("imap_test.worker") as got:
        with IMap(**options) as m:
            task = m.add_task(wf.log_and_return, range(6))
            m.start()
            assert list(task) == list(range(6))
        wait_until(lambda: len(got.records) >= 9, 20, "the workers' records")
    messages = sorted(r.getMessage() for r in got.records)
    assert messages == sorted([f"item {x}" for x in range(6)]
                              + [f"odd item {x}" for x in (1, 3, 5)])
    workers = [getattr(r, "worker", None) for r in got.records]
    assert all(w and w != "main" for w in workers), workers   # a worker, not the parent
