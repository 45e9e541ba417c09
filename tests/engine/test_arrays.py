"""Arrays without copies: large buffers travel out of band (pickle protocol
5) through shared memory to and from local worker processes, as frames to
and from Dask workers, read-only on receipt, and no segment outlives its
run (stop, a worker or the parent killed, interpreter exit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import worker_funcs as wf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import buffer_items, read_when_written, wait_until

from imap import IMap, WorkerLostError
from imap.transport import shm
from imap.transport.records import Payload
from imap.worker import kernel
from imap.worker import shm as worker_shm

np = pytest.importorskip("numpy")   # the test extra installs it

pytestmark = pytest.mark.timeout(120)
MiB = 2 ** 20


def segments(owner: int | None = None) -> set:
    """The shared-memory segments of the runs of process ``owner`` (default:
    this one) now: another program of the project on this machine may
    have its own, which are not this test's to count."""
    prefix = f"{shm.PREFIX}{os.getpid() if owner is None else owner}-"
    return {n for n in os.listdir(shm.directory()) if n.startswith(prefix)}


@pytest.fixture(autouse=True)
def no_segment_left():
    before = segments()
    yield
    wait_until(lambda: not (segments() - before), 10, what="no segment left")


def arrays(n: int, size: int) -> list:
    return [np.full(size // 8, float(i)) for i in range(n)]


@pytest.fixture(params=["process", pytest.param("dask", marks=pytest.mark.allow_leftovers)])
def pool(request) -> dict:
    """The IMap options of a pool whose large buffers travel out of band:
    local worker processes (shared memory) and Dask workers (frames)."""
    if request.param == "process":
        return {"worker_num": 2}
    return {"executor": request.getfixturevalue("dask_client")}


def test_arrays_through_a_chain_are_exact(pool):
    data = arrays(40, MiB)
    with IMap(**pool) as m:
        doubled = m.add_task(wf.array_double, data)
        plus = m.add_task(wf.array_plus_one, doubled)
        m.start()
        got = list(plus)
    assert len(got) == 40
    for i, r in enumerate(got):
        assert r.shape == (MiB // 8,) and r[0] == 2 * i + 1 and r[-1] == 2 * i + 1


def test_what_arrives_is_read_only_and_says_so(pool):
    with IMap(**pool) as m:
        written = m.add_task(wf.array_write_in_place, arrays(2, MiB))
        kept = m.add_task(wf.array_double, arrays(2, MiB))
        m.start()
        errors = []
        for _ in range(2):
            with pytest.raises(ValueError) as info:
                next(written)
            errors.append(str(info.value))
        results = list(kept)
    assert all("read-only" in e for e in errors), errors
    assert not results[0].flags.writeable      # a view of shared memory, or of a frame
    copy = results[0].copy()                    # the idiom: copy, then edit in place
    copy += 1
    assert copy[0] == 1 and results[0][0] == 0


def test_small_buffers_and_plain_objects_keep_the_pickle_stream(pool):
    small = [np.arange(10.0) + i for i in range(20)]
    mixed = [{"a": np.full(MiB // 8, 1.0), "b": [1, 2], "c": bytearray(b"x" * 200_000)}]
    with IMap(**pool) as m:
        a = m.add_task(wf.array_double, small)
        b = m.add_task(wf.ident, mixed)
        m.start()
        got_a, got_b = list(a), list(b)
    assert all((r == 2 * (np.arange(10.0) + i)).all() for i, r in enumerate(got_a))
    assert got_b[0]["b"] == [1, 2] and got_b[0]["a"][5] == 1.0
    assert bytes(got_b[0]["c"]) == b"x" * 200_000
    assert all(r.flags.writeable for r in got_a)   # in the stream: a copy of its own
    assert not got_b[0]["a"].flags.writeable       # out of band


def test_threads_get_the_object_itself():
    data = arrays(3, MiB)
    with IMap(worker_type="thread", worker_num=2) as m:
        task = m.add_task(wf.ident, data)
        m.start()
        got = list(task)
    assert all(g is d for g, d in zip(got, data, strict=True))


def test_a_function_that_keeps_its_input_keeps_it_intact():
    """A view a worker keeps past its batch is never written over (its
    segment is not reused)."""
    with IMap(worker_num=1) as m:
        task = m.add_task(wf.array_keep_and_sum_kept, arrays(12, MiB))
        m.start()
        got = list(task)
    # each kept input still holds its own value when summed later
    assert got == [sum(float(j) for j in range(i + 1)) for i in range(12)]


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 300_000), min_size=1, max_size=12),
       ordered=st.booleans())
def test_buffers_of_any_size_and_kind_arrive_intact(pool, sizes, ordered):
    items = buffer_items(sizes)
    with IMap(ordered=ordered, **pool) as m:
        task = m.add_task(wf.ident, items)
        m.start()
        got = list(task)
    if not ordered:
        got.sort(key=lambda r: (len(r), bytes(np.ascontiguousarray(r)) if len(r) else b""))
        items = sorted(items, key=lambda r: (len(r), bytes(np.ascontiguousarray(r))
                                             if len(r) else b""))
    for want, have in zip(items, got, strict=True):
        assert type(have) is type(want)
        assert bytes(np.ascontiguousarray(have)) == bytes(np.ascontiguousarray(want))


# -- frames (Dask) ------------------------------------------------------------------------------

def test_frames_are_the_objects_own_memory_and_arrive_read_only():
    big, small = np.arange(MiB // 8, dtype=np.float64), np.arange(100.0)
    data = kernel.dumps_frames([big, small, "text"])
    payload = Payload.from_wire(data)
    assert len(payload.frames) == 1
    assert np.shares_memory(np.frombuffer(payload.frames[0], np.float64), big)   # no copy
    assert len(payload.stream) < 4096      # the large buffer is not in the stream
    assert kernel.frames_size(data) == len(payload.stream) + big.nbytes
    back = kernel.loads_frames(data)
    assert (back[0] == big).all() and (back[1] == small).all() and back[2] == "text"
    assert not back[0].flags.writeable and back[1].flags.writeable
    plain = kernel.dumps_frames([small, {"k": 1}])
    assert Payload.from_wire(plain).frames is None and kernel.loads_frames(plain)[1] == {"k": 1}


def test_frames_carry_what_only_cloudpickle_pickles():
    offset = 3.0
    data = kernel.dumps_frames((lambda x: x + offset, np.zeros(MiB // 8)))
    func, array = kernel.loads_frames(data)
    assert Payload.from_wire(data).frames and func(array)[0] == 3.0


@pytest.mark.allow_leftovers
def test_dask_workers_get_their_arrays_out_of_band(dask_client):
    """In the Dask worker too, an array that came as a frame is read-only;
    one in the pickle stream (below the threshold) is a writable copy."""
    items = [np.ones(MiB // 8), np.ones(kernel.FRAME_BYTES // 8 - 1)]
    with IMap(executor=dask_client) as m:
        task = m.add_task(wf.array_writeable, items)
        m.start()
        got = list(task)
    assert got == [False, True]


# -- no segment outlives its run ---------------------------------------------------------------


def test_a_worker_killed_mid_batch_leaves_no_segment(tmp_path):
    with IMap(worker_num=2) as m:
        task = m.add_task(wf.array_report_pid_and_hold, arrays(6, MiB),
                          args=(3, str(tmp_path)), retries=0)
        m.start()
        got = []
        it = iter(task)
        for _ in range(3):
            got.append(next(it))
        os.kill(int(read_when_written(tmp_path / "pid")), signal.SIGKILL)
        rest = []
        for _ in range(3):
            try:
                rest.append(next(it))
            except WorkerLostError as exc:
                rest.append(exc)
    assert isinstance(rest[0], WorkerLostError)
    assert [r[0] for r in got + rest[1:]] == [0.0, 1.0, 2.0, 4.0, 5.0]


PARENT = textwrap.dedent("""
    import os, sys, time
    sys.path[:0] = [{tests!r}, {root!r}]
    import numpy as np
    import worker_funcs as wf
    from imap import IMap

    if __name__ == "__main__":
        m = IMap(worker_num=2)
        task = m.add_task(wf.array_double, (np.full(2 ** 17, 1.0) for _ in range(10 ** 6)))
        m.start()
        for i, r in enumerate(task):
            if i == 20:
                print("running", flush=True)
                {ending}
""")


def _run_parent(ending: str) -> subprocess.Popen:
    tests = str(Path(__file__).resolve().parents[1])
    code = PARENT.format(tests=tests, root=str(Path(tests).parent), ending=ending)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == b"running"
    return proc


@pytest.mark.allow_leftovers
def test_a_parent_killed_leaves_segments_that_the_next_run_removes():
    proc = _run_parent("time.sleep(60)")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    left = segments(proc.pid)
    assert left   # what the killed parent had in flight
    with IMap(worker_num=1) as m:   # the next run of any IMap cleans up after the dead
        task = m.add_task(abs, [-1])
        m.start()
        assert list(task) == [1]
    assert not (left & segments(proc.pid))


@pytest.mark.parametrize("ending", ["sys.exit(0)", "raise KeyboardInterrupt"])
def test_interpreter_exit_and_ctrl_c_leave_no_segment(ending):
    proc = _run_parent(ending)
    proc.wait(60)
    proc.stdout.close()
    wait_until(lambda: not segments(proc.pid), 10, what="the parent's segments to go")


def test_a_result_going_on_to_the_next_task_is_passed_by_reference():
    """The parent's side of a chain: a result mapped from a worker's segment
    is packed for the next task as a ref to that segment, not copied."""
    import pickle

    arena = shm.Arena()
    pool = shm.Pool(f"{arena.run}-w{os.getpid()}-")   # as a worker names its segments
    try:
        buffers: list = []
        stream = pickle.dumps(np.full(MiB // 8, 2.0), 5, buffer_callback=buffers.append)
        name, refs = pool.write(buffers)
        result = pickle.loads(stream, buffers=arena.views(refs))
        assert not result.flags.writeable
        _, again, written = arena.pack([result])
        assert written is None and again == tuple(refs) and again[0][0] == name
        _, fresh, written = arena.pack([np.full(MiB // 8, 3.0)])   # not in a segment: copied
        assert written is not None and fresh[0][0] == written
        del result
    finally:
        pool.close()
        arena.close()


def test_an_ended_run_writes_no_segment():
    """Once a run's segments are swept (stop, interpreter exit), a thread of
    it that still packs items (the Feeder, while the interpreter exits)
    writes no new one, which nothing would remove."""
    arena = shm.Arena()
    arena.close()
    before = segments()
    with pytest.raises(RuntimeError, match="ended"):
        arena.pack([np.full(MiB // 8, 1.0)])
    assert not {n for n in segments() - before if n.startswith(arena.run)}
    stream, refs, segment = arena.pack([np.arange(10.0)])   # small: no segment needed
    assert refs == () and segment is None


KINDS = ["fresh", "view", "pair", "kept", "held", "zeros", "grown", "small"]


@settings(max_examples=8, deadline=None)
@given(specs=st.lists(st.tuples(st.sampled_from(KINDS),
                                st.sampled_from([1000, MiB - 8, MiB, 3 * MiB + 8]),
                                st.integers(0, 9)), min_size=1, max_size=24),
       one_by_one=st.booleans())
def test_every_way_of_making_a_result_arrives_exact(specs, one_by_one):
    """Property: whatever mix of fresh arrays, views, tuples, kept arrays,
    zeros, grown arrays and small work a function returns, across the
    sizes around the out-of-band threshold, every result is what the
    function returned when its batch ended. One item per batch, that is
    when it returned, so a kept array the function writes over at its next
    call must arrive as returned; in larger batches the kept arrays are
    only held (a later call of the same batch may change a result before
    the batch is answered, as documented)."""
    if not one_by_one:
        specs = [("held" if kind == "kept" else kind, size, seed) for kind, size, seed in specs]
    expected = [np.copy(v) if isinstance(v, np.ndarray) else (v[0], np.copy(v[1]))
                for v in map(wf.array_op, specs)]
    wf.KEPT_RESULTS.clear()
    with IMap(worker_num=2, chunksize=1 if one_by_one else None) as m:
        task = m.add_task(wf.array_op, specs)
        m.start()
        got = list(task)
    for g, e in zip(got, expected, strict=True):
        if isinstance(e, tuple):
            assert g[0] == e[0] and np.array_equal(g[1], e[1])
        else:
            assert np.array_equal(g, e)


def test_a_worker_keeps_its_mappings_but_not_of_a_segment_that_is_gone():
    """A worker reads later batches through the mappings of earlier ones
    (no page faults again), and closes a kept mapping once its segment's
    name is gone, so that it holds no memory the run has let go."""
    import pickle

    def mapped(name: str) -> bool:
        with open("/proc/self/maps") as maps:
            return any(name in line for line in maps)

    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc")
    pool = shm.Pool(f"{shm.PREFIX}{os.getpid()}-reader-w{os.getpid()}-")
    reader = worker_shm.Reader()
    try:
        buffers: list = []
        stream = pickle.dumps(np.full(MiB // 8, 2.0), 5, buffer_callback=buffers.append)
        name, refs = pool.write(buffers)
        for _ in range(2):
            views = reader.views(refs)
            assert worker_shm.loads(stream, views)[0] == 2.0
            del views
            reader.release()
            assert mapped(name)          # kept for the next batch
        shm.unlink(name)                 # its writer dropped it
        reader.release()
        assert not mapped(name)
    finally:
        reader.release()
        pool.close()
