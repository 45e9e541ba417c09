"""IMap(executor=...): tasks on a real Dask LocalCluster (2 worker processes
of 1 thread each, on 127.0.0.1) and on a ProcessPoolExecutor."""

from __future__ import annotations

import concurrent.futures
import gc
import logging
import os
import pickle
import sys
import threading
import time
from types import SimpleNamespace

import cloudpickle
import pytest
import worker_funcs as wf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import collecting

from imap import IMap, TimeoutError, WorkerLostError, WorkerTraceback, flow
from imap.backends.base import Batch
from imap.backends.executor import ExecutorBackend
from imap.transport.records import Answered, Submitted
from imap.worker import kernel

distributed = pytest.importorskip("distributed")   # the dask extra (make test installs it)

# Dask keeps threads of its own (event loop, thread pools) between tests;
# each test checks instead that no thread of the IMap's is left.
pytestmark = [pytest.mark.timeout(120), pytest.mark.allow_leftovers]


@pytest.fixture(autouse=True)
def _no_imap_thread_left():
    """No thread of an IMap started by the test outlives it."""
    from support import imap_threads, wait_until

    before = imap_threads()
    yield
    wait_until(lambda: not (imap_threads() - before), 5)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture
def pool():
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        yield ex


def run_chain(executor, n=300, ordered=True):
    offset = 7
    with IMap(executor=executor, ordered=ordered) as m:
        a = m.add_task(wf.square, range(n))
        b = m.add_task(lambda x: x + offset, a)     # a closure: travels by value
        m.start()
        got = list(b)
        workers = m.status().workers
    return got, workers


@pytest.mark.parametrize("ordered", [True, False])
def test_a_chain_on_dask_equals_serial(client, ordered):
    got, workers = run_chain(client, ordered=ordered)
    expected = [x * x + 7 for x in range(300)]
    assert (got if ordered else sorted(got)) == expected
    assert workers == 2   # the cluster's threads
    assert client.status == "running"   # the IMap never closes a Client it was given


def test_dask_batches_hold_more_work_than_local_ones(client):
    # Each Dask task costs milliseconds of scheduler and client time: 5 ms
    # tasklets travel more than MAX_BATCH_WORK (50 ms) to a batch there.
    with IMap(executor=client) as m:
        task = m.add_task(time.sleep, [0.005] * 200)
        m.start()
        assert list(task) == [None] * 200
        batch = m.status().tasks[0].batch
    assert batch > int(flow.MAX_BATCH_WORK / 0.005), batch


def test_a_chain_on_a_process_pool_equals_serial(pool):
    got, workers = run_chain(pool)
    assert got == [x * x + 7 for x in range(300)]
    assert workers == 2
    assert pool.submit(abs, -1).result() == 1   # still usable: not shut down


def _queued(task, sizes, start=0, **flags):
    batches = []
    for n in sizes:
        items = list(range(start, start + n))
        batches.append(Batch(task, range(start, start + n), items, **flags))
        start += n
    return batches


def _put(backend, batches):
    for batch in batches:
        backend._queue.put(batch)


def test_queued_batches_of_a_task_go_out_together_up_to_its_batch_size():
    # Single tasklets queued while adaptive batches still grew: once a draw
    # would take 4 (group_limit), they leave in groups of at most 4 tasklets,
    # in their order, one task's only; a rerun (attempt > 0) or a careful
    # batch always travels alone (it may hold a tasklet that kills workers).
    a = SimpleNamespace(id=0, flow=SimpleNamespace(batch=4))
    b = SimpleNamespace(id=1, flow=SimpleNamespace(batch=4))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        backend = ExecutorBackend(pool, 100, deliver=None, lost=None)
        backend.start()
        try:
            backend.group_limit = lambda task: task.flow.batch
            queue = (_queued(a, [1, 1]) + _queued(b, [1]) + _queued(a, [1, 2, 1], start=2)
                     + _queued(a, [1], start=6, attempt=1)
                     + _queued(a, [1], start=7, careful=True))
            _put(backend, queue)
            groups = [[list(batch.indices) for batch in group] for group in backend._take()]
            assert groups == [[[0], [1], [2]], [[0]], [[3, 4], [5]], [[6]], [[7]]]
            # Near the end of the input a draw would be cut to a share of
            # the tail (here 2): the batches a tail was cut into stay apart.
            backend.group_limit = lambda task: 2
            _put(backend, _queued(a, [1, 1, 1, 2]))
            assert [len(group) for group in backend._take()] == [2, 1, 1]
            backend.group_limit = None   # fixed settings: one batch, one task of the executor
            _put(backend, _queued(a, [1, 1, 1]))
            assert [len(group) for group in backend._take()] == [1, 1, 1]
        finally:
            backend.stop()


def _answered(reply: bytes) -> Answered:
    return Answered.from_wire(pickle.loads(reply))


def _replies(submitted: tuple) -> list:
    return [_answered(r) for r in Submitted.from_wire(submitted).replies]


def test_the_kernel_runs_several_batches_in_one_call_each_with_its_own_answer():
    payload = cloudpickle.dumps((wf.square, (), {}))
    parts = [pickle.dumps([1, 2]), pickle.dumps([3]), pickle.dumps(["x"])]
    submitted = Submitted.from_wire(kernel.run_submitted(payload, None, parts))
    assert submitted.logs is None and submitted.worker == f"process {os.getpid()}"
    answers = _replies(kernel.run_submitted(payload, None, parts))
    assert [a.values for a in answers] == [[1, 4], [9], [None]]
    assert [a.errors is None for a in answers] == [True, True, False]
    alone = [_replies(kernel.run_submitted(payload, None, [p]))[0] for p in parts]
    assert [a[:2] for a in answers] == [a[:2] for a in alone]


def test_an_executor_task_returns_its_log_records_in_its_record():
    # A batch that logs at the level asked: the records come back pickled
    # beside the replies, named by the worker that ran them.
    payload = cloudpickle.dumps((wf.log_and_return, (), {}))
    submitted = Submitted.from_wire(kernel.run_submitted(
        payload, None, [pickle.dumps([2]), pickle.dumps([4])], log_level=logging.INFO))
    assert [_answered(r).values for r in submitted.replies] == [[2], [4]]
    records = pickle.loads(submitted.logs)
    assert [(r["name"], r["msg"]) for r in records] == [
        ("imap_test.worker", "item 2"), ("imap_test.worker", "item 4")]


def test_dask_workers_install_the_kernel_from_its_source_once_per_process(client):
    # What a Dask task calls: the kernel made from its (compressed) source,
    # a module of the worker process from its first batch on.
    from imap.backends import dask
    from imap.worker import dask_entry as _dask_entry

    name, filename, source = dask.KERNEL
    payload = cloudpickle.dumps((wf.square, (), {}))
    sys.modules.pop(name, None)
    try:
        submitted = _dask_entry.run_kernel(name, filename, source, payload, None,
                                           [pickle.dumps([2, 3])])
        assert [a.values for a in _replies(submitted)] == [[4, 9]]
        installed = sys.modules[name]
        assert installed is not kernel and installed.__file__ == kernel.__file__
        _dask_entry.run_kernel(name, filename, source, payload, None, [pickle.dumps([1])])
        assert sys.modules[name] is installed      # made once, then reused
    finally:
        sys.modules.pop(name, None)
    with IMap(executor=client) as m:
        task = m.add_task(wf.square, range(200))
        m.start()
        assert list(task) == [x * x for x in range(200)]

    def kernels() -> list:
        return sorted(n for n in sys.modules if n.startswith("_imap_kernel_"))
    assert set(map(tuple, client.run(kernels).values())) <= {(), (name,)}
    assert (name,) in set(map(tuple, client.run(kernels).values()))


def test_a_scheduler_address_opens_and_closes_its_own_client(cluster):
    with IMap(executor=cluster.scheduler_address) as m:
        task = m.add_task(wf.double, range(50))
        m.start()
        assert list(task) == [2 * x for x in range(50)]


def test_errors_come_at_their_position_with_the_worker_traceback(client):
    with IMap(executor=client) as m:
        task = m.add_task(wf.fail_on, range(6), args=(3,))
        m.start()
        got = []
        for _ in range(6):
            try:
                got.append(next(task))
            except ValueError as exc:
                assert isinstance(exc.__cause__, WorkerTraceback)
                assert "fail_on" in str(exc.__cause__)
                got.append("error")
    assert got == [0, 10, 20, "error", 40, 50]


def test_the_initializer_runs_once_per_worker_process(client, tmp_path):
    with IMap(executor=client, initializer=wf.record_init, initargs=(str(tmp_path),)) as m:
        task = m.add_task(wf.was_initialized, range(200), args=(str(tmp_path),))
        m.start()
        assert all(task)
    inits = list(tmp_path.glob("init.*"))
    assert 1 <= len(inits) <= 2   # record_init fails if it runs twice in a process


# Bytes of padding an item carries so that its batch is scattered to the
# cluster before its task is submitted (over dask.SCATTER_BYTES).
SCATTERED = 64 << 10


def _padded(n: int, pad: int) -> list:
    return [(x, b"\0" * pad) for x in range(n)]


def _bytes_reachable(root, limit: int = 100_000) -> int:
    """Bytes of the bytes-like objects reachable from ``root``."""
    seen, todo, total = set(), [root], 0
    while todo and len(seen) < limit:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        if isinstance(obj, (bytes, bytearray, memoryview)):
            total += obj.nbytes if isinstance(obj, memoryview) else len(obj)
            continue
        todo.extend(gc.get_referents(obj))
    return total


def test_large_items_are_scattered_not_kept_in_dasks_message_logs(client, monkeypatch):
    # Dask keeps the last messages of each stream that were under 1 MB; items
    # sent inside their task would stay alive there after the task ended.
    from imap.backends import dask

    assert SCATTERED > dask.SCATTER_BYTES

    def run(pad: int) -> int:
        client.scheduler_comm.recent_message_log.clear()
        with IMap(executor=client, chunksize=1) as m:
            task = m.add_task(lambda item: (item[0], len(item[1])), _padded(40, pad))
            m.start()
            assert list(task) == [(x, pad) for x in range(40)]
        return _bytes_reachable(client.scheduler_comm.recent_message_log)

    # what 40 tasks leave in the log whatever their items (the kernel's
    # source, the task specs), then what large items add to it
    base = run(0)
    assert run(SCATTERED) - base < 40 * SCATTERED // 10
    monkeypatch.setattr(dask, "SCATTER_BYTES", 1 << 40)   # items inside the tasks
    assert run(SCATTERED) - base >= 40 * SCATTERED   # every item, still alive in the log


@pytest.mark.parametrize("pad", [0, SCATTERED], ids=["inline", "scattered"])
def test_a_tasklet_that_kills_its_worker_fails_alone(client, tmp_path, pad):
    log = str(tmp_path / "attempts")
    with IMap(executor=client, chunksize=1, stride=2) as m:
        task = m.add_task(lambda item: wf.exit_on_every_attempt(item[0], 3, log),
                          _padded(8, pad), retries=0)
        m.start()
        got = []
        for _ in range(8):
            try:
                got.append(next(task))
            except WorkerLostError:
                got.append("lost")
    assert got == [0, 2, 4, "lost", 8, 10, 12, 14]
    assert client.status == "running"


@pytest.mark.parametrize("pad", [0, SCATTERED], ids=["inline", "scattered"])
def test_retries_ride_out_a_worker_that_dies_once(client, tmp_path, pad):
    marker = str(tmp_path / "marker")
    with IMap(executor=client, chunksize=1, stride=2) as m:
        task = m.add_task(lambda item: wf.exit_on_first_attempt(item[0], 5, marker),
                          _padded(8, pad), retries=1)
        m.start()
        assert list(task) == [2 * x for x in range(8)]


@pytest.mark.parametrize("skip", [True, False])
def test_timeouts_and_skip_on_dask(client, tmp_path, skip):
    # Item 1 is held until released; the other worker runs the rest.
    release = tmp_path / "release"
    with IMap(executor=client, chunksize=1, skip=skip) as m:
        task = m.add_task(wf.hold_until_released, range(6), args=({1}, str(release)))
        m.start()
        try:
            assert task.next(timeout=30) == 0
            with pytest.raises(TimeoutError):
                task.next(timeout=0.5)
            if skip:   # the late result is dropped: the next ones come at once
                assert [task.next(timeout=30) for _ in range(4)] == [20, 30, 40, 50]
        finally:
            release.touch()
        rest = list(task)
        assert rest == ([] if skip else [10, 20, 30, 40, 50])
        assert m.status().tasks[0].skipped == (1 if skip else 0)


def test_an_unreachable_scheduler_is_a_connection_error(monkeypatch):
    from imap.backends import dask

    monkeypatch.setattr(dask, "CONNECT_TIMEOUT", 2.0)
    m = IMap(executor="tcp://127.0.0.1:9")
    m.add_task(abs, range(3))
    with pytest.raises(ConnectionError, match="127.0.0.1:9"):
        m.start()


@pytest.mark.parametrize("pad", [0, SCATTERED], ids=["inline", "scattered"])
def test_a_scheduler_that_goes_away_fails_the_tasklets_with_connection_error(monkeypatch,
                                                                              pad):
    from imap.backends import dask_watch

    monkeypatch.setattr(dask_watch, "SCHEDULER_GRACE", 2.0)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        gate = threading.Event()
        with IMap(executor=client) as m:
            task = m.add_task(lambda item: wf.sleep_and_return(item[0]),
                              [((x, 0.05), pad) for x, pad in _padded(400, pad)])
            m.start()
            got = [next(task) for _ in range(5)]
            cluster.close()   # the scheduler and its workers go away
            rest = []
            while True:
                try:
                    rest.append(next(task))
                except StopIteration:
                    break
                except (ConnectionError, WorkerLostError) as exc:
                    rest.append(exc)   # lost with the workers, or with the scheduler
            gate.set()
        assert got == list(range(5))
        assert len(got) + len(rest) == 400   # every tasklet accounted for
        assert any(isinstance(r, ConnectionError) for r in rest)
    finally:
        client.close()
        cluster.close()


def test_without_distributed_an_address_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    m = IMap(executor="tcp://127.0.0.1:8786")
    m.add_task(abs, range(3))
    with pytest.raises(ImportError, match=r"papy-imap\[dask\]"):
        m.start()


@pytest.mark.parametrize("bad, error", [
    ("localhost", ValueError), (42, TypeError), (object(), TypeError)])
def test_bad_executors_fail_at_construction(bad, error):
    with pytest.raises(error, match="executor"):
        IMap(executor=bad)


def test_executor_and_worker_remote_do_not_mix(client):
    with pytest.raises(ValueError, match="cannot be combined"):
        IMap(executor=client, worker_remote=[("127.0.0.1:1", 1)])


def test_papy_pipers_on_dask_and_local_imaps_in_one_dagger(client):
    from papy_funcs import dbl, inc

    from papy import Piper, Plumber

    local = IMap(worker_type="thread", worker_num=2)
    dask = IMap(executor=client)
    a = Piper(inc, parallel=local, name="a")
    b = Piper(dbl, parallel=dask, name="b")
    p = Plumber(pipes=[(a, b)], keep=True)
    p.start([range(100)])
    p.run()
    try:
        assert p.wait(60)
    finally:
        p.stop()
    assert p.results["b"] == [2 * (x + 1) for x in range(100)]


def test_dask_annotations_at_add_task_place_the_tasks_batches(client):
    import dask

    pids = client.run(os.getpid)   # worker address -> its process
    address = sorted(pids)[0]
    with IMap(executor=client) as m:
        with dask.annotate(workers=[address]):
            pinned = m.add_task(wf.worker_pid, range(60))
        free = m.add_task(wf.worker_pid, range(60))
        m.start()
        pinned_pids = list(pinned)
        assert len(list(free)) == 60
    assert set(pinned_pids) == {pids[address]}


@pytest.fixture(params=["dask", "process pool"])
def any_executor(request):
    """Each kind of executor: a Dask Client and a ProcessPoolExecutor."""
    return request.getfixturevalue("client" if request.param == "dask" else "pool")


@pytest.mark.parametrize("worker_logs", [True, False])
def test_worker_log_records_come_back_from_executors(any_executor, worker_logs):
    with collecting() as handler, \
            IMap(executor=any_executor, initializer=wf.log_initializer,
                 worker_logs=worker_logs) as m:
        task = m.add_task(wf.log_and_return, range(10))
        m.start()
        assert list(task) == list(range(10))
    records = handler.records
    if not worker_logs:
        assert records == []
        return
    infos = sorted(r.getMessage() for r in records if r.levelno == logging.INFO)
    assert infos == sorted(f"item {x}" for x in range(10))
    odd = [r for r in records if r.getMessage().startswith("odd")]
    assert len(odd) == 5 and all("ValueError: odd" in r.exc_text for r in odd)
    # the initializer ran (and logged) once in each worker process that ran a batch
    inits = [r for r in records if r.getMessage() == "initializer ran"]
    workers = {r.worker for r in records if r.getMessage().startswith("item")}
    assert {r.worker for r in inits} == workers and len(inits) == len(workers)
    prefix = ("dask tcp://127.0.0.1:" if isinstance(any_executor, distributed.Client)
              else "process ")
    assert all(r.worker.startswith(prefix) and r.process != os.getpid() for r in records)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.integers(0, 60), depth=st.integers(1, 3), ordered=st.booleans(),
       stride=st.one_of(st.none(), st.integers(1, 8)), pad=st.sampled_from([0, SCATTERED]))
def test_property_results_equal_serial_on_executors(any_executor, n, depth, ordered,
                                                    stride, pad):
    # pad: items of 64 KB travel scattered on Dask
    with IMap(executor=any_executor, ordered=ordered, stride=stride) as m:
        last = _padded(n, pad)
        for _ in range(depth):
            last = m.add_task(lambda item: (wf.add_one(item[0]), item[1]), last)
        m.start()
        got = list(last)
        high, bound = m.high_water, m.buffer
    expected = [(x + depth, b"\0" * pad) for x in range(n)]
    assert (got if ordered else sorted(got)) == expected
    assert high <= bound


def test_tls_on_loopback(tmp_path):
    pytest.importorskip("cryptography")   # Security.temporary() makes certificates
    from distributed.security import Security

    security = Security.temporary()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", protocol="tls",
                                  security=security, dashboard_address=None) as c, \
            distributed.Client(c, security=security, set_as_default=False) as tls_client:
        assert c.scheduler_address.startswith("tls://")
        with IMap(executor=tls_client) as m:
            task = m.add_task(wf.square, range(20))
            m.start()
            assert list(task) == [x * x for x in range(20)]


@pytest.mark.parametrize("round_", range(5))
def test_a_broken_process_pool_fails_what_it_holds_and_what_waits_never_hangs(round_):
    # A worker that exits breaks a ProcessPoolExecutor for good: the batches
    # it held and those still waiting here are lost (WorkerLostError), none
    # waits for room that never comes.
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        with IMap(executor=pool) as m:
            task = m.add_task(wf.exit_on, range(40), args=(3,))
            m.start()
            out = []
            for _ in range(40):
                try:
                    out.append(task.next(timeout=60))
                except WorkerLostError as exc:
                    out.append(exc)
            with pytest.raises(StopIteration):
                task.next(timeout=60)
    assert isinstance(out[3], WorkerLostError)
    assert all(r == 2 * x or isinstance(r, WorkerLostError) for x, r in enumerate(out))
