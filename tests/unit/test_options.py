"""Options of IMap: invalid values are refused with a message that says what to
change; defaults are the documented ones."""

from __future__ import annotations

import os

import pytest
import worker_funcs as wf
from support import consume_round_robin, weave_order

import imap


def error_of(exc_type: type[Exception], **options) -> str:
    """Build an IMap with ``options``, add a task and start it; the text of the
    ``exc_type`` raised on the way (by the constructor or by ``start()``)."""
    m = None
    try:
        with pytest.raises(exc_type) as info:
            m = imap.IMap(**options)
            m.add_task(wf.ident, [1, 2, 3])
            m.start()
    finally:
        if m is not None:
            try:
                m.stop(forced=True)
            except Exception:
                pass
    return str(info.value)


# --- invalid options ------------------------------------------------------------------


@pytest.mark.parametrize("stride", [0, -2])
def test_stride_below_one_is_a_value_error_naming_stride(stride):
    message = error_of(ValueError, worker_type="thread", worker_num=1, stride=stride)
    assert "stride" in message
    assert str(stride) in message


def test_buffer_below_stride_is_a_value_error_naming_both():
    message = error_of(ValueError, worker_type="thread", worker_num=1, stride=4, buffer=2)
    assert "buffer" in message and "stride" in message
    assert "2" in message and "4" in message


def test_buffer_below_the_number_of_workers_bounds_the_adaptive_stride():
    # Without a stride the engine chooses one that fits the buffer given.
    with imap.IMap(worker_type="thread", worker_num=4, buffer=2) as m:
        task = m.add_task(abs, range(-50, 0))
        m.start()
        assert list(task) == list(range(50, 0, -1))
        assert m.high_water <= 2


def test_negative_worker_num_is_a_value_error_naming_worker_num():
    message = error_of(ValueError, worker_type="thread", worker_num=-1)
    assert "worker_num" in message
    assert "-1" in message


def test_unknown_worker_type_is_a_value_error_listing_the_choices():
    message = error_of(ValueError, worker_type="banana", worker_num=1)
    assert "banana" in message
    assert "thread" in message and "process" in message


@pytest.mark.parametrize("remote", [None, []])
def test_zero_workers_without_remote_workers_is_a_value_error(remote):
    message = error_of(ValueError, worker_type="thread", worker_num=0, worker_remote=remote)
    assert "worker_num" in message or "worker" in message


def test_unknown_start_method_is_a_value_error_naming_it():
    message = error_of(ValueError, worker_type="process", worker_num=1, start_method="teleport")
    assert "teleport" in message


def test_chunksize_below_one_is_a_value_error():
    message = error_of(ValueError, worker_type="thread", worker_num=1, chunksize=0)
    assert "chunksize" in message


@pytest.mark.parametrize("option", ["ordered", "skip"])
@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_ordered_and_skip_other_than_a_bool_are_a_type_error(option, value):
    message = error_of(TypeError, worker_type="thread", worker_num=1, **{option: value})
    assert message == (f"{option} must be True or False, got {type(value).__name__} "
                       f"({value!r})")


@pytest.mark.parametrize("value", ["x", "1", [2]])
def test_stall_grace_not_a_number_is_a_type_error_naming_it(value):
    message = error_of(TypeError, worker_type="thread", worker_num=1, stall_grace=value)
    assert message == (f"stall_grace must be a number of seconds or None, got "
                       f"{type(value).__name__} ({value!r})")


@pytest.mark.parametrize("value", [-1, float("nan")])
def test_stall_grace_negative_or_nan_is_a_value_error(value):
    message = error_of(ValueError, worker_type="thread", worker_num=1, stall_grace=value)
    assert message == f"stall_grace ({value}) must be >= 0 or None"


@pytest.mark.parametrize("value", ["1", b"1", True])
def test_add_task_timeout_not_a_number_is_a_type_error_naming_it(value):
    m = imap.IMap(worker_type="thread", worker_num=1)
    with pytest.raises(TypeError) as info:
        m.add_task(wf.ident, [1], timeout=value)
    assert str(info.value) == (f"timeout must be a number of seconds or None, got "
                               f"{type(value).__name__} ({value!r})")


def test_add_task_timeout_negative_is_a_value_error():
    m = imap.IMap(worker_type="thread", worker_num=1)
    with pytest.raises(ValueError, match=r"timeout \(-0.5\) must be >= 0 or None"):
        m.add_task(wf.ident, [1], timeout=-0.5)


@pytest.mark.parametrize("address, example", [
    ("host", "'host:18812', 8"),
    ("10.0.0.1", "'10.0.0.1:18812', 8"),
    ("::1", "'[::1]:18812', 8"),
])
def test_worker_count_that_looks_like_a_port_is_refused_with_the_address_form(address,
                                                                              example):
    message = error_of(ValueError, worker_num=0, worker_remote=[(address, 18812)])
    assert f"({address!r}, 18812) asks for 18812 connections to one host" in message
    assert "the most is 1024" in message
    assert f"('host:port', n): ({example})" in message


def test_worker_count_above_the_limit_with_a_port_given_asks_for_a_count():
    message = error_of(ValueError, worker_num=0, worker_remote=[("host:18812", 5000)])
    assert "asks for 5000 connections to one host; the most is 1024" in message
    assert "give the number of workers, e.g. ('host:18812', 8)" in message


def test_worker_count_at_the_limit_is_accepted():
    options = imap.options.Options(worker_num=0, worker_remote=[("host", 1024)])
    assert options.remote_workers == 1024


@pytest.mark.parametrize("secret", ["", " \n", b""])
def test_empty_remote_secret_is_a_value_error(secret):
    message = error_of(ValueError, worker_type="thread", worker_num=1,
                       remote_options={"secret": secret})
    assert "remote option 'secret' must be a str or bytes, not empty" in message


def test_add_task_after_start_is_a_runtime_error():
    with imap.IMap(worker_type="thread", worker_num=1) as m:
        m.add_task(wf.ident, [1])
        m.start()
        with pytest.raises(RuntimeError, match="start"):
            m.add_task(wf.ident, [2])
        assert list(m) == [1]


def test_next_before_start_is_a_runtime_error():
    with imap.IMap(worker_type="thread", worker_num=1) as m:
        task = m.add_task(wf.ident, [1])
        with pytest.raises(RuntimeError, match="start"):
            m.next()
        with pytest.raises(RuntimeError, match="start"):
            next(task)
        m.start()
        assert next(task) == 1


def test_pop_task_after_start_is_a_runtime_error():
    with imap.IMap(worker_type="thread", worker_num=1) as m:
        m.add_task(wf.ident, [1])
        m.start()
        with pytest.raises(RuntimeError):
            m.pop_task(1)
        assert list(m) == [1]


# --- nothing happens before start() ---------------------------------------------------


def test_nothing_is_read_or_called_before_start():
    pulled, calls = [], []

    def source():
        for i in range(3):
            pulled.append(i)
            yield i

    def record(x):
        calls.append(x)
        return x

    with imap.IMap(worker_type="thread", worker_num=2) as m:
        task = m.add_task(record, source())
        assert pulled == [] and calls == []
        m.start()
        assert list(task) == [0, 1, 2]
    assert pulled == [0, 1, 2]


def test_constructor_with_func_and_iterable_starts_at_once():
    with imap.IMap(wf.square, range(5), worker_type="thread", worker_num=2) as m:
        assert m.status().started
        assert list(m) == [0, 1, 4, 9, 16]


def test_constructor_passes_args_and_kwargs_to_the_function():
    with imap.IMap(
        wf.power, range(4), args=(3,), kwargs={"offset": 1}, worker_type="thread", worker_num=2
    ) as m:
        assert list(m) == [1, 2, 9, 28]


# --- defaults -------------------------------------------------------------------------


def test_default_worker_num_is_the_cpu_count():
    with imap.IMap(worker_type="thread") as m:
        m.add_task(wf.ident, [1])
        m.start()
        assert m.status().workers == os.cpu_count()
        assert list(m) == [1]


def test_default_worker_type_is_process():
    with imap.IMap(wf.worker_pid, range(4), worker_num=1) as m:
        assert all(pid != os.getpid() for pid in m)


def test_default_stride_is_the_number_of_workers():
    # The draw order, seen by the inputs, is the weave: stride items of task 0,
    # then stride items of task 1, ... The first turn, before anything is
    # measured, draws one tasklet per worker; later turns may draw more (the
    # adaptive stride follows the batch size, which grows as tasklets prove
    # short), so only the first turn's order is fixed.
    drawn = []

    def source(task, n):
        for i in range(n):
            drawn.append(task)
            yield i

    with imap.IMap(worker_type="thread", worker_num=3) as m:
        first = m.add_task(wf.ident, source(0, 7))
        second = m.add_task(wf.ident, source(1, 7))
        m.start()
        results = consume_round_robin([first, second], stride=1)
    assert results == [list(range(7)), list(range(7))]
    assert drawn[:6] == weave_order([3, 3], stride=3)
    assert sorted(drawn) == [0] * 7 + [1] * 7


def test_default_stride_buffer_and_chunksize_are_adaptive():
    with imap.IMap(worker_type="thread", worker_num=3) as m:
        assert m.adaptive and m.chunksize is None
        tasks = [m.add_task(wf.ident, range(200)) for _ in range(2)]
        # The first turn: one tasklet per worker and task, three turns alive.
        assert m.buffer == 3 * 2 * 3
        m.start()
        assert [len(r) for r in consume_round_robin(tasks, stride=1)] == [200, 200]
        status = m.status()
        assert status.stride == m.stride >= 3
        assert all(t.batch >= 1 for t in status.tasks)


def test_default_buffer_uses_an_explicit_stride():
    with imap.IMap(worker_type="thread", worker_num=2, stride=5) as m:
        tasks = [m.add_task(wf.ident, range(2)) for _ in range(3)]
        m.start()
        assert m.status().buffer == 5 * 3
        consume_round_robin(tasks, stride=5)


def test_explicit_buffer_is_used():
    with imap.IMap(worker_type="thread", worker_num=2, stride=2, buffer=7) as m:
        m.add_task(wf.ident, range(10))
        m.start()
        assert m.status().buffer == 7
        assert list(m) == list(range(10))
