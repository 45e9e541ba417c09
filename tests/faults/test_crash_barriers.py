"""No value a user's function returns may kill an engine thread.

A result the parent cannot unpickle fails at its position (an
``UnsendableError`` naming the problem) and every later result still comes.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
import worker_funcs as h

from imap import IMap, UnsendableError
from imap.embedded import local


def _outcomes(options: dict, func, count: int = 6) -> list:
    with IMap(**options) as m:
        task = m.add_task(func, range(count), args=(2,))
        m.start()
        out = []
        it = iter(task)
        while True:
            try:
                out.append(next(it))
            except StopIteration:
                return out
            except Exception as exc:  # noqa: BLE001 - the outcome under test
                out.append(exc)


@pytest.fixture(scope="module")
def remote():
    with local(2) as address:
        yield address


@pytest.mark.parametrize("where", ["process", "process-batched", "process-executor", "remote"])
def test_an_exception_returned_that_does_not_unpickle_fails_alone(where, remote):
    options = {
        "process": {"worker_num": 2},
        "process-batched": {"worker_num": 2, "chunksize": 6},
        "remote": {"worker_num": 0, "worker_remote": remote},
    }.get(where)
    if where == "process-executor":
        # Spawned: a forked worker would inherit what this process may have
        # (Dask's tblib makes such exceptions unpickle after all).
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            out = _outcomes({"executor": pool}, h.return_args_mismatch_on)
    else:
        out = _outcomes(options, h.return_args_mismatch_on)
    assert [x for i, x in enumerate(out) if i != 2] == [0, 1, 3, 4, 5]
    assert isinstance(out[2], UnsendableError)
    assert "ArgsMismatch" in str(out[2]) and "__init__" in str(out[2])


def test_a_thread_worker_returns_such_an_exception_as_it_is():
    # Nothing is pickled between a thread worker and its consumer.
    out = _outcomes({"worker_type": "thread", "worker_num": 2}, h.return_args_mismatch_on)
    assert isinstance(out[2], h.ArgsMismatch)


@pytest.mark.parametrize("where", ["process", "remote", "process-executor"])
def test_an_answer_the_parent_cannot_unpickle_fails_its_batch_and_the_run_goes_on(where,
                                                                                  remote):
    options = {"worker_num": 2, "chunksize": 1} if where == "process" else {
        "worker_num": 0, "worker_remote": remote, "chunksize": 1}
    if where == "process-executor":
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            out = _outcomes({"executor": pool, "chunksize": 1}, h.return_unreadable_on,
                            count=20)
    else:
        out = _outcomes(options, h.return_unreadable_on, count=20)
    assert [x for i, x in enumerate(out) if i != 2] == [x for x in range(20) if x != 2]
    assert isinstance(out[2], UnsendableError)
    assert "could not be unpickled" in str(out[2])


def test_a_thread_of_the_engine_that_dies_fails_its_waiting_consumers_and_stop_returns(
        tmp_path):
    # A backend thread whose body raises (here: one started through the same
    # guard as the Router, the remote drivers and the Dask threads) is
    # reported: a consumer waiting on the IMap gets a RuntimeError naming
    # it instead of waiting for ever, and stop() still returns.
    import threading

    release = str(tmp_path / "release")
    m = IMap(worker_type="thread", worker_num=1)
    task = m.add_task(h.hold_until_released, range(3), args=({0}, release))
    m.start()

    def broken() -> None:
        raise ZeroDivisionError("a bug in an engine thread")

    thread = threading.Thread(target=m._engine.backend.guarded(broken, "imap-test-thread"))
    thread.start()
    thread.join()
    with pytest.raises(RuntimeError, match="imap-test-thread"):
        task.next(timeout=30)
    h.write_atomically(release, "go")
    m.stop()
    assert not m.running
