"""Errors raised by functions, and objects that cannot travel: each is the
result of its own tasklet; the other tasklets and the pool carry on."""

from __future__ import annotations

import multiprocessing
import threading

import pytest
import worker_funcs as wf

import imap


def results_and_errors(task, n: int) -> list:
    """``n`` results of ``task``: a value, or the exception its ``next()`` raised."""
    out = []
    for _ in range(n):
        try:
            out.append(task.next(timeout=30))
        except StopIteration:
            raise AssertionError(f"only {len(out)} results, expected {n}") from None
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            out.append(exc)
    with pytest.raises(StopIteration):
        task.next(timeout=30)
    return out


def chain_text(exc: BaseException) -> str:
    """The text of an exception and of its causes."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


# --- exceptions raised by the function ------------------------------------------------


def test_exception_for_item_i_is_raised_at_result_i(worker_type):
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        task = m.add_task(wf.fail_on, range(6), args=(3,))
        m.start()
        got = results_and_errors(task, 6)
    assert got[:3] == [0, 10, 20]
    assert isinstance(got[3], ValueError)
    assert str(got[3]) == "bad item 3"
    assert got[4:] == [40, 50]


def test_worker_traceback_is_the_cause_and_names_the_function(worker_type):
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        task = m.add_task(wf.fail_on, range(3), args=(1,))
        m.start()
        assert task.next() == 0
        with pytest.raises(ValueError) as info:
            task.next()
        assert task.next() == 20
    cause = info.value.__cause__
    assert isinstance(cause, imap.WorkerTraceback)
    assert "fail_on" in str(cause)
    assert "bad item 1" in str(cause)


def test_a_worker_traceback_of_code_sent_by_value_names_its_file_and_line(worker_type):
    # A lambda travels by value (as do functions of __main__ and of the
    # user's modules): the traceback still points at this file and line.
    with imap.IMap(worker_type=worker_type, worker_num=1) as m:
        task = m.add_task(lambda x: 1 // x, [0])
        m.start()
        with pytest.raises(ZeroDivisionError) as info:
            task.next(timeout=30)
    text = str(info.value.__cause__)
    assert f'File "{__file__}"' in text and "lambda x: 1 // x" in text, text


def test_iteration_continues_after_an_error_in_every_other_item(worker_type):
    def odd_fails(x):
        if x % 2:
            raise KeyError(x)
        return x

    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        task = m.add_task(odd_fails, range(10))
        m.start()
        got = results_and_errors(task, 10)
        assert m.status().tasks[0].errors == 5
    assert [x for x in got if not isinstance(x, Exception)] == [0, 2, 4, 6, 8]
    assert [x.args[0] for x in got if isinstance(x, KeyError)] == [1, 3, 5, 7, 9]


def test_unordered_results_still_raise_each_error_once(worker_type):
    with imap.IMap(worker_type=worker_type, worker_num=2, ordered=False) as m:
        task = m.add_task(wf.fail_on, range(8), args=(5,))
        m.start()
        got = results_and_errors(task, 8)
    errors = [x for x in got if isinstance(x, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert sorted(x for x in got if not isinstance(x, Exception)) == [0, 10, 20, 30, 40, 60, 70]


def test_upstream_error_arrives_at_the_same_position_downstream(worker_type):
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        first = m.add_task(wf.fail_on, range(6), args=(2,))
        second = m.add_task(wf.add_one, first)
        m.start()
        got = results_and_errors(second, 6)
    assert got[:2] == [1, 11]
    assert isinstance(got[2], ValueError) and str(got[2]) == "bad item 2"
    assert isinstance(got[2].__cause__, imap.WorkerTraceback)
    assert got[3:] == [31, 41, 51]


def test_downstream_function_is_not_called_for_an_upstream_error():
    seen = []

    def record(x):
        seen.append(x)
        return x

    with imap.IMap(worker_type="thread", worker_num=2) as m:
        first = m.add_task(wf.fail_on, range(5), args=(2,))
        second = m.add_task(record, first)
        third = m.add_task(wf.add_one, second)
        m.start()
        got = results_and_errors(third, 5)
    assert sorted(seen) == [0, 10, 30, 40]
    assert isinstance(got[2], ValueError)
    assert [x for x in got if not isinstance(x, Exception)] == [1, 11, 31, 41]


def test_exception_that_cannot_be_pickled_is_still_raised_at_its_result():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        task = m.add_task(wf.raise_unpicklable_on, range(4), args=(1,))
        m.start()
        got = results_and_errors(task, 4)
    assert isinstance(got[1], Exception)
    assert "unpicklable failure on 1" in chain_text(got[1])
    assert [got[0], got[2], got[3]] == [0, 20, 30]


def test_exception_only_cloudpickle_can_carry_arrives_intact(worker_type):
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        task = m.add_task(wf.raise_local_class_on, range(4), args=(2,))
        m.start()
        got = results_and_errors(task, 4)
    assert [got[0], got[1], got[3]] == [0, 1, 3]
    assert type(got[2]).__name__ == "LocalError"
    assert str(got[2]) == "local failure on 2"
    assert isinstance(got[2].__cause__, imap.WorkerTraceback)
    assert "raise_local_class_on" in str(got[2].__cause__)


# --- things that cannot travel between processes --------------------------------------


def _closes_over_a_lock():
    lock = threading.Lock()

    def locked_double(x):
        with lock:
            return 2 * x

    return locked_double


def _references_a_generator():
    numbers = (i for i in range(3))

    def uses_generator(x):
        return x if numbers else -x

    return uses_generator


@pytest.mark.parametrize("make_func", [_closes_over_a_lock, _references_a_generator])
def test_unpicklable_function_fails_its_tasklets_and_other_tasks_succeed(make_func):
    # A buffer for all results: each output is read whole, one after the other.
    with imap.IMap(worker_type="process", worker_num=2, buffer=8) as m:
        bad = m.add_task(make_func(), range(4))
        good = m.add_task(wf.square, range(4))
        m.start()
        bad_results = results_and_errors(bad, 4)
        assert [good.next(timeout=30) for _ in range(4)] == [0, 1, 4, 9]
    for exc in bad_results:
        assert isinstance(exc, Exception)
        assert "pickl" in chain_text(exc).lower()


def test_unpicklable_item_fails_only_its_tasklet():
    items = [0, 1, threading.Lock(), 3, 4, 5]
    with imap.IMap(worker_type="process", worker_num=2) as m:
        task = m.add_task(wf.ident, items)
        m.start()
        got = results_and_errors(task, len(items))
    assert isinstance(got[2], Exception)
    assert "pickl" in chain_text(got[2]).lower()
    assert got[:2] + got[3:] == [0, 1, 3, 4, 5]


def test_unpicklable_item_in_a_large_batch_fails_only_its_tasklet():
    items = list(range(40))
    items[17] = threading.Lock()
    with imap.IMap(worker_type="process", worker_num=2, stride=20, chunksize=10) as m:
        task = m.add_task(wf.ident, items)
        m.start()
        got = results_and_errors(task, len(items))
    assert isinstance(got[17], Exception)
    assert got[:17] + got[18:] == list(range(17)) + list(range(18, 40))


def test_unpicklable_result_fails_only_its_tasklet():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        task = m.add_task(wf.return_lock_on, range(6), args=(2,))
        m.start()
        got = results_and_errors(task, 6)
    assert isinstance(got[2], Exception)
    assert "pickl" in chain_text(got[2]).lower()
    assert got[:2] + got[3:] == [0, 10, 30, 40, 50]


def test_pool_keeps_working_after_unpicklable_objects():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        bad = m.add_task(wf.return_lock_on, range(3), args=(0,))
        good = m.add_task(wf.add_one, bad)
        m.start()
        got = results_and_errors(good, 3)
    assert isinstance(got[0], Exception)
    assert got[1:] == [11, 21]


# --- functions that travel by value ---------------------------------------------------


def test_lambdas_and_closures_work_on_process_workers():
    factor = 7

    def closure(x):
        return factor * x

    with imap.IMap(worker_type="process", worker_num=2) as m:
        first = m.add_task(lambda x: x + 1, range(5))
        second = m.add_task(closure, first)
        m.start()
        assert list(second) == [7 * (x + 1) for x in range(5)]


# --- the timeout error type -----------------------------------------------------------


def test_timeout_error_is_a_multiprocessing_and_a_builtin_timeout_error():
    assert issubclass(imap.TimeoutError, multiprocessing.TimeoutError)
    assert issubclass(imap.TimeoutError, TimeoutError)


def test_stall_error_is_a_runtime_error():
    assert issubclass(imap.StallError, RuntimeError)


def test_worker_lost_error_is_an_exception():
    assert issubclass(imap.WorkerLostError, Exception)


class _RaisesForEver:
    """An iterator whose every next() raises (a file closed under its reader)."""

    def __init__(self, good: int) -> None:
        self.left = good

    def __iter__(self):
        return self

    def __next__(self):
        if self.left:
            self.left -= 1
            return self.left
        raise OSError("I/O operation on closed file")


def test_an_input_that_raises_ends_there_with_its_error_in_place(worker_type):
    # As with a for loop over it: the items before, then the error, then the end.
    with imap.IMap(worker_type=worker_type, worker_num=2) as m:
        task = m.add_task(wf.ident, _RaisesForEver(3))
        m.start()
        results = results_and_errors(task, 4)
    assert results[:3] == [2, 1, 0]
    assert isinstance(results[3], OSError)


def test_another_imaps_task_as_input_goes_on_after_its_errors(worker_type):
    with imap.IMap(worker_type=worker_type, worker_num=2) as first, \
            imap.IMap(worker_type=worker_type, worker_num=2) as second:
        upstream = first.add_task(wf.fail_on, range(6), args=(2,))
        down = second.add_task(wf.ident, upstream)
        first.start()
        second.start()
        results = results_and_errors(down, 6)
    assert isinstance(results[2], ValueError)
    assert [r for i, r in enumerate(results) if i != 2] == [0, 10, 30, 40, 50]
