"""What a function can rely on, on every kind of pool: it is called once per
item (again only if its worker died), and it behaves as in one plain Python
process — try/except around numpy arithmetic, threads it starts, os.fork(),
state in globals, closures and generators. Beside it, the engine's own
soundness: many hung tasklets under skip cost only themselves, no worker
outlives its parent, and a graceful stop is bounded.

The backend-wide tests run on the kinds of pool of the contract suite
(``backend`` fixture, tests/backend_fixtures.py).
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import uuid
from pathlib import Path

import pytest
import worker_funcs as wf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    held_workers,
    imap_threads,
    pid_alive,
    read_when_written,
    take_skipping,
    wait_until,
)

from imap import IMap, TimeoutError, WorkerLostError

np = pytest.importorskip("numpy")
pytest.importorskip("distributed")

pytestmark = [pytest.mark.timeout(180), pytest.mark.allow_leftovers]

MODES = ["return", "raise", "raise_after_temporaries", "catch", "large_result", "keep"]


@pytest.fixture(autouse=True)
def _no_imap_thread_left():
    before = imap_threads()
    yield
    wait_until(lambda: not (imap_threads() - before), 10)


def outcomes(task) -> list:
    """Every result of ``task``: values, or the exceptions raised for them."""
    out = []
    while True:
        try:
            out.append(task.next(timeout=60))
        except StopIteration:
            return out
        except TimeoutError:
            raise
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            out.append(exc)


def expected(key: int, mode: str):
    """What ``wf.ledger_call`` gives for item ``key`` in one plain process."""
    bad = key % 3 == 0
    if mode == "return":
        return 2 * key
    if mode == "raise":
        return ValueError if bad else 2 * key
    if mode == "raise_after_temporaries":
        return ValueError if bad else 2.0 * key
    if mode == "catch":
        return None if bad else 2.0 * key
    return np.full(2 ** 17, float(key))


def check(got, key: int, mode: str) -> None:
    want = expected(key, mode)
    if want is ValueError:
        assert isinstance(got, ValueError) and f"item {key} is bad" in str(got), got
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and np.array_equal(got, want), key
    else:
        assert got == want, (key, got, want)


def ledger(path: Path) -> collections.Counter:
    if not path.exists():
        return collections.Counter()
    return collections.Counter(int(line) for line in path.read_text().split())


# -- called once per item --------------------------------------------------------------


@settings(max_examples=4, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mode=st.sampled_from(MODES), n=st.integers(0, 24), arrays=st.booleans(),
       ordered=st.booleans())
def test_a_function_is_called_once_per_item(backend, tmp_path, mode, n, arrays, ordered):
    """Property: whatever the function does — returns, raises, raises after
    making large temporaries, catches its own exception, returns large
    arrays or keeps them — the ledger of calls holds every item exactly
    once, and every outcome is the one of a plain process."""
    _, options = backend
    path = tmp_path / f"ledger-{uuid.uuid4().hex}"
    items = [np.full(2 ** 17, float(i)) for i in range(n)] if arrays else list(range(n))
    with IMap(ordered=ordered, **options) as m:
        task = m.add_task(wf.ledger_call, items, args=(str(path), mode))
        m.start()
        got = outcomes(task)
    assert len(got) == n
    calls = ledger(path)
    assert calls == collections.Counter(range(n)), f"calls per item: {calls}"
    if ordered:
        for key, value in enumerate(got):
            check(value, key, mode)
    else:
        assert not any(isinstance(v, WorkerLostError) for v in got)


# -- ordinary Python, as in one process -----------------------------------------------


def test_try_except_around_numpy_arithmetic_behaves_as_in_one_process(backend, tmp_path):
    """The function of the issue that once killed its worker: a large
    temporary, an exception, caught by the function."""
    _, options = backend
    path = tmp_path / "ledger"
    items = [np.full(2 ** 17, float(i)) for i in range(12)]
    with IMap(**options) as m:
        task = m.add_task(wf.ledger_call, items, args=(str(path), "catch"), retries=3)
        m.start()
        got = outcomes(task)
    assert got == [None if i % 3 == 0 else 2.0 * i for i in range(12)]
    assert ledger(path) == collections.Counter(range(12))


def test_threads_started_by_the_function_work(backend):
    _, options = backend
    with IMap(**options) as m:
        task = m.add_task(wf.sum_in_a_thread, range(20))
        m.start()
        assert list(task) == [sum(range(x)) for x in range(20)]


def test_os_fork_in_the_function_works(backend):
    _, options = backend
    with IMap(**options) as m:
        task = m.add_task(wf.square_in_a_child, range(10))
        m.start()
        assert list(task) == [x * x for x in range(10)]


def test_state_in_globals_counts_each_call_once_per_process(backend):
    """A module global counts the calls in each process: per process, the
    counts are 1, 2, 3, ... with no gap and no repeat (a call made twice, or
    a count lost to a copy of the state, would show)."""
    _, options = backend
    token = uuid.uuid4().hex
    with IMap(**options) as m:
        task = m.add_task(wf.count_in_global, range(40), args=(token,))
        m.start()
        got = list(task)
    by_pid: dict = collections.defaultdict(list)
    for pid, n in got:
        by_pid[pid].append(n)
    assert sum(len(v) for v in by_pid.values()) == 40
    for counts in by_pid.values():
        assert sorted(counts) == list(range(1, len(counts) + 1))


def test_closures_and_generators_work(backend):
    _, options = backend
    func = wf.make_closure(7)
    with IMap(**options) as m:
        task = m.add_task(func, range(15))
        m.start()
        assert list(task) == [func(x) for x in range(15)]


# -- many hung tasklets under skip ------------------------------------------------------


@pytest.mark.parametrize("n, every", [(60, 10), (24, 3)])
def test_many_hung_tasklets_under_skip_cost_only_themselves_on_processes(n, every):
    """Every ``every``-th item hangs: each is given up (its worker killed and
    replaced, however many), the others all arrive, none times out with it."""
    hung = {x for x in range(n) if x % every == every // 2}
    with IMap(worker_num=2, skip=True) as m:
        task = m.add_task(wf.hang_on_some, range(n), args=(sorted(hung),), timeout=0.5)
        m.start()
        got, timeouts, lost = take_skipping(task)
    assert lost == 0
    assert timeouts == len(hung)
    assert got == [2 * x for x in range(n) if x not in hung]


def test_many_hung_tasklets_under_skip_cost_only_themselves_on_threads():
    """Threads cannot be killed: each hung one is left behind (released at
    the end of the test) and a new thread takes its place."""
    release = threading.Event()
    hung = set(range(5, 60, 10))

    def hang_on_some(x):
        if x in hung:
            release.wait(120)
        return 2 * x

    try:
        with IMap(worker_type="thread", worker_num=2, skip=True) as m:
            task = m.add_task(hang_on_some, range(60), timeout=0.5)
            m.start()
            got, timeouts, lost = take_skipping(task)
    finally:
        release.set()
    assert lost == 0
    assert timeouts == len(hung)
    assert got == [2 * x for x in range(60) if x not in hung]


def test_skip_on_workers_that_cannot_be_stopped_gives_one_outcome_per_item(tmp_path):
    """One worker that cannot be stopped (an executor's thread) runs a
    tasklet that hangs; the items queued behind it cannot run either. Under
    skip, each of the n items gives one outcome (a value or a TimeoutError)
    and the task ends: a skipped tasklet gives its slot back at the skip, so
    the Feeder draws on and finds the end of the input. (The slot used to be
    held until the hung tasklet ended, and meanwhile the consumer was told of
    a new TimeoutError every timeout, each for an item that was never drawn:
    30 outcomes for 3 items on a Dask cluster left with one worker.)"""
    import concurrent.futures

    release = str(tmp_path / "release")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        with IMap(executor=pool, skip=True) as m:
            task = m.add_task(wf.hold_until_released, range(3), args=({0}, release),
                              timeout=0.3)
            m.start()
            got, timeouts, lost = take_skipping(task)
            assert len(got) + timeouts + lost == 3, (got, timeouts, lost)
            assert timeouts >= 1 and lost == 0
            assert set(got) <= {10, 20}
    finally:
        wf.write_atomically(release, "go")
        pool.shutdown(wait=True)


def test_threads_left_behind_past_the_bound_fail_the_run_clearly(monkeypatch):
    from imap.backends import thread as thread_backend

    monkeypatch.setattr(thread_backend, "LEFT_BEHIND", 2)
    release = threading.Event()

    def hang(x):
        release.wait(120)
        return x

    try:
        with IMap(worker_type="thread", worker_num=1, skip=True) as m:
            task = m.add_task(hang, range(10), timeout=0.3)
            m.start()
            with pytest.raises(RuntimeError, match="left behind"):
                for _ in range(10):
                    try:
                        next(task)
                    except TimeoutError:
                        pass
    finally:
        release.set()


# -- no worker outlives its parent ------------------------------------------------------

@pytest.mark.parametrize("method, ending", [
    ("forkserver", "SIGKILL"), ("forkserver", "SIGTERM"), ("fork", "SIGKILL"),
    ("spawn", "SIGKILL"), ("forkserver", "os._exit(3)"),
])
def test_no_worker_outlives_its_parent(tmp_path, method, ending):
    """The parent is killed (or ends with os._exit) while both workers are
    inside a long call: the workers end within seconds, and so do the
    processes multiprocessing started for them (forkserver, resource
    tracker); the run's shared memory goes with them."""
    with held_workers(tmp_path, method,
                      ending if "(" in ending else "time.sleep(120)") as (proc, workers):
        helpers = _children(proc.pid)
        if "(" not in ending:
            os.kill(proc.pid, getattr(signal, ending))
        proc.wait(30)
        wait_until(lambda: not any(pid_alive(p) for p in workers + helpers), 15,
                   what="every process the parent started to end")
        from imap.transport import shm
        prefix = f"{shm.PREFIX}{proc.pid}-"
        wait_until(lambda: not [n for n in os.listdir(shm.directory()) if n.startswith(prefix)],
                   10, what="the run's shared memory to go")


def _children(pid: int) -> list:
    """The pids of the direct children of ``pid`` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


# -- a graceful stop is bounded ---------------------------------------------------------


@pytest.mark.parametrize("skip", [False, True])
def test_a_graceful_stop_gives_up_hung_tasklets_after_the_task_timeout(skip, tmp_path, caplog):
    m = IMap(worker_num=2, skip=skip)
    m.add_task(wf.pid_file_and_hold, range(6), args=(3600, str(tmp_path)), timeout=1)
    m.start()
    wait_until(lambda: len(list(tmp_path.glob("pid-*"))) == 2, 60, "both workers busy")
    m.stop()
    assert not m.running
    warnings = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert warnings and "task 0 (pid_file_and_hold)" in warnings[0], warnings


def test_stop_with_a_timeout_bounds_a_stop_where_no_task_has_one(tmp_path, caplog):
    m = IMap(worker_num=1)
    m.add_task(wf.pid_file_and_hold, range(3), args=(3600, str(tmp_path)))
    m.start()
    read_when_written(tmp_path / f"pid-{0}", 60)
    m.stop(timeout=0.5)
    assert not m.running
    assert any("no tasklet ended within 0.5 s" in r.getMessage() for r in caplog.records)


def test_a_thread_pool_stop_is_bounded_too(caplog):
    release = threading.Event()
    started = threading.Event()

    def hang(x):
        started.set()
        release.wait(120)
        return x

    try:
        m = IMap(worker_type="thread", worker_num=1)
        m.add_task(hang, range(3), timeout=0.5)
        m.start()
        assert started.wait(30)
        m.stop()
        assert not m.running
    finally:
        release.set()
    assert any("given up" in r.getMessage() for r in caplog.records)


def test_skip_on_a_mixed_pool_takes_work_back_from_either_kind_of_worker(remote_address):
    """A mixed pool (a process and a remote connection, one dispatcher):
    hung tasklets on either kind of worker are given up, the batches queued
    behind them are taken back by the backend that owns that worker, and
    every other item arrives."""
    n, hung = 24, {x for x in range(24) if x % 4 == 1}
    with IMap(worker_num=1, worker_remote=[(remote_address, 1)], skip=True) as m:
        task = m.add_task(wf.hang_on_some, range(n), args=(sorted(hung),), timeout=0.5)
        m.start()
        got, timeouts, lost = take_skipping(task)
    assert lost == 0
    assert timeouts == len(hung)
    assert got == [2 * x for x in range(n) if x not in hung]
