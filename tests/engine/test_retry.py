"""retry_on: a tasklet raising one of the classes given runs again, after a back-off.

Attempts are noted by the function itself in a file per item (see
retry_funcs), so they are counted on every backend: threads, processes and
a remote imap-server.
"""

from __future__ import annotations

import contextlib

import cloudpickle
import pytest
import retry_funcs
from retry_funcs import attempt_times, bad_value, flaky, flaky_inbox, lost_then_oserror

from imap import IMap, WorkerLostError
from imap.retry import min_backoff
from papy import Piper, PiperError, Worker

cloudpickle.register_pickle_by_value(retry_funcs)   # for the remote server


@contextlib.contextmanager
def an_imap(backend: str, **options):
    if backend == "remote":
        from imap.embedded import local

        with local(2) as remote, IMap(worker_num=0, worker_remote=remote, **options) as m:
            yield m
    else:
        with IMap(worker_type=backend, worker_num=2, **options) as m:
            yield m


def outcomes(it, n: int) -> list:
    out = []
    for _ in range(n):
        try:
            out.append(next(it))
        except Exception as exc:
            out.append(exc)
    return out


@pytest.mark.parametrize("backend", ["thread", "process", "remote"])
def test_a_transient_error_succeeds_within_retries(tmp_path, backend):
    with an_imap(backend) as m:
        it = m.add_task(flaky, range(6), (str(tmp_path), 2), retries=3, retry_on=OSError)
        m.start()
        assert list(it) == [10 * x for x in range(6)]
    assert [len(attempt_times(tmp_path, x)) for x in range(6)] == [3] * 6


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_attempts_are_spaced_by_a_growing_back_off(tmp_path, backend):
    failures = 3
    with an_imap(backend) as m:
        it = m.add_task(flaky, [7], (str(tmp_path), failures), retries=failures,
                        retry_on=(OSError,))
        m.start()
        assert list(it) == [70]
    times = attempt_times(tmp_path, 7)
    assert len(times) == failures + 1
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # each wait is at least its documented minimum (jitter only stretches it)
    for n, gap in enumerate(gaps, 1):
        assert gap >= min_backoff(n), (n, gaps)
    assert sum(gaps) >= sum(min_backoff(n) for n in range(1, failures + 1))


@pytest.mark.parametrize("backend", ["thread", "process", "remote"])
def test_a_permanent_error_fails_after_retries_plus_one_attempts(tmp_path, backend):
    with an_imap(backend) as m:
        it = m.add_task(flaky, range(3), (str(tmp_path), 100), retries=2, retry_on=OSError)
        m.start()
        errors = outcomes(it, 3)
    assert all(isinstance(e, OSError) for e in errors)
    assert [e.attempts for e in errors] == [3, 3, 3]
    assert any("3 attempts made" in note for note in errors[0].__notes__)
    assert [len(attempt_times(tmp_path, x)) for x in range(3)] == [3, 3, 3]


def test_an_exception_not_in_retry_on_is_not_retried(tmp_path):
    with an_imap("thread") as m:
        it = m.add_task(bad_value, [1, 2], (str(tmp_path),), retries=4, retry_on=OSError)
        m.start()
        errors = outcomes(it, 2)
    assert all(isinstance(e, ValueError) and e.attempts == 1 for e in errors)
    assert len(attempt_times(tmp_path, 1)) == 1


def test_a_lost_worker_and_an_exception_share_one_count_of_retries(tmp_path):
    with an_imap("process") as m:
        it = m.add_task(lost_then_oserror, [5], (str(tmp_path / "a"),), retries=2,
                        retry_on=OSError)
        (tmp_path / "a").mkdir()
        m.start()
        assert list(it) == [50]
    (tmp_path / "b").mkdir()
    with an_imap("process") as m:
        it = m.add_task(lost_then_oserror, [5], (str(tmp_path / "b"),), retries=1,
                        retry_on=OSError)
        m.start()
        [error] = outcomes(it, 1)
    assert isinstance(error, OSError) and error.attempts == 2
    assert not isinstance(error, WorkerLostError)


def test_retry_on_is_checked():
    m = IMap(worker_type="thread", worker_num=1)
    with pytest.raises(ValueError, match="needs retries >= 1"):
        m.add_task(abs, [1], retries=0, retry_on=OSError)
    with pytest.raises(TypeError, match="exception classes"):
        m.add_task(abs, [1], retries=1, retry_on=("OSError",))


def test_a_piper_retries_a_transient_error(tmp_path):
    m = IMap(worker_type="process", worker_num=2)
    piper = Piper(Worker(flaky_inbox, [(str(tmp_path), 1)]), parallel=m, retries=1,
                  retry_on=(OSError,))
    piper.connect([range(4)])
    piper.start()
    try:
        assert list(piper) == [0, 10, 20, 30]
    finally:
        piper.stop()
        piper.disconnect()


def test_a_piper_item_failing_for_good_is_a_piper_error_with_its_attempts(tmp_path):
    m = IMap(worker_type="thread", worker_num=2)
    piper = Piper(Worker(flaky_inbox, [(str(tmp_path), 9)]), parallel=m, retries=2,
                  retry_on=OSError)
    piper.connect([[1]])
    piper.start()
    try:
        [value] = list(piper)
    finally:
        piper.stop()
        piper.disconnect()
    assert isinstance(value, PiperError)
    assert value.error.attempts == 3
    with pytest.raises(PiperError, match="needs retries >= 1"):
        Piper(Worker(abs), parallel=m, retries=0, retry_on=OSError)
