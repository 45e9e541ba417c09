"""Traps a user coming from PaPy 1.x met, each now a clear answer.

(a) A task iterator read after its run ended -- after ``stop()``, after a
``with IMap()`` block, or an old iterator after a restart -- returned ``[]``
as if the task had had no results; it raises :class:`RunEndedError` now.
(b) On remote workers, ``import mymod`` + ``mymod.f(x)`` (the module object a
global of a function sent by value) failed with "not installed there", while
``from mymod import f`` worked; the module object travels by value now.
"""

from __future__ import annotations

import importlib
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from remote_helpers import server

from imap import IMap
from imap.run.taskiter import RunEndedError

pytestmark = pytest.mark.timeout(90)


def inc(x):
    return x + 1


def threads(**options) -> IMap:
    return IMap(worker_type="thread", worker_num=2, **options)


# -- (a) reading after the run ended ---------------------------------------------------


def test_reading_a_task_after_stop_raises_run_ended() -> None:
    m = threads()
    out = m.add_task(inc, range(10))
    m.start()
    m.stop()
    with pytest.raises(RunEndedError, match=r"before stop\(\)"):
        list(out)


def test_reading_a_task_after_its_with_block_raises_run_ended() -> None:
    with threads() as m:
        out = m.add_task(inc, range(10))
        m.start()
    with pytest.raises(RunEndedError, match="with IMap"):
        list(out)


def test_an_old_iterator_after_a_restart_raises_run_ended() -> None:
    m = threads()
    old = m.add_task(inc, range(3))
    m.start()
    m.stop()
    new = m.add_task(inc, range(3))
    m.start()
    try:
        with pytest.raises(RunEndedError, match=r"add_task\(\) returned for the new run"):
            next(old)
        assert list(new) == [1, 2, 3]
    finally:
        m.stop()


def test_next_method_after_stop_raises_run_ended_too() -> None:
    m = threads()
    out = m.add_task(inc, range(3))
    m.start()
    m.stop()
    with pytest.raises(RunEndedError):
        out.next(timeout=1)


def test_an_iterator_read_to_its_end_stays_ended_after_stop() -> None:
    m = threads()
    out = m.add_task(inc, range(4))
    m.start()
    assert list(out) == [1, 2, 3, 4]
    m.stop()
    assert list(out) == []   # exhausted before the stop: nothing was lost


def test_a_reader_waiting_when_the_run_is_stopped_gets_run_ended() -> None:
    release = threading.Event()

    def held(x):
        release.wait(30)
        return x

    m = threads()
    out = m.add_task(held, range(2))
    m.start()
    caught: list = []

    def reader() -> None:
        try:
            caught.append(next(out))
        except BaseException as exc:   # noqa: BLE001 - the outcome is the test
            caught.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    m.stop(forced=True)
    release.set()
    thread.join(30)
    assert len(caught) == 1 and isinstance(caught[0], RunEndedError)


def test_run_ended_is_said_to_next_and_to_list_alike() -> None:
    m = threads()
    out = m.add_task(inc, range(10))
    m.start()
    m.stop()
    with pytest.raises(RunEndedError):
        next(out)
    with pytest.raises(RunEndedError):
        list(out)
    with pytest.raises(RunEndedError):
        next(out)


def test_a_task_read_to_its_end_before_stop_stays_ended() -> None:
    m = threads()
    out = m.add_task(inc, range(3))
    m.start()
    assert list(out) == [1, 2, 3]
    m.stop()
    assert list(out) == []   # it had ended: nothing was lost


def test_a_task_drawing_a_stopped_imaps_task_gets_one_error_then_ends() -> None:
    upstream = threads()
    source = upstream.add_task(inc, range(10))
    upstream.start()
    upstream.stop()
    with threads() as m:
        out = m.add_task(inc, source)
        m.start()
        with pytest.raises(RunEndedError):   # the one item of the failed input
            next(out)
        assert list(out) == []


def test_run_ended_is_a_runtime_error() -> None:
    assert issubclass(RunEndedError, RuntimeError)


# -- (b) a user module used as a global, on a remote worker --------------------------------


MODULE = "papy1_trap_module"


def triple_by_module(x):
    return papy1_trap_module.triple(x)  # noqa: F821 (set by the test below)


def test_a_module_global_of_a_function_travels_to_remote_workers(tmp_path,
                                                                 monkeypatch) -> None:
    (tmp_path / f"{MODULE}.py").write_text("FACTOR = 3\n\ndef triple(x):\n"
                                           "    return FACTOR * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(MODULE)
    monkeypatch.setitem(globals(), MODULE, module)
    try:
        with server("imap") as (address, _):   # its sys.path lacks tmp_path
            m = IMap(worker_type="thread", worker_num=0, worker_remote=[(address, 2)])
            out = m.add_task(triple_by_module, range(5))
            m.start()
            try:
                assert list(out) == [0, 3, 6, 9, 12]
            finally:
                m.stop()
    finally:
        sys.modules.pop(MODULE, None)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 12), read=st.integers(0, 14), forced=st.booleans())
def test_after_stop_only_an_iterator_read_to_its_end_ends_quietly(n, read, forced) -> None:
    m = threads()
    out = m.add_task(inc, range(n))
    m.start()
    got = [x for _, x in zip(range(read), out, strict=False)]
    ended = read > n   # the reader saw StopIteration
    m.stop(forced=forced)
    assert got == list(range(1, min(n, read) + 1))
    if ended:
        assert list(out) == []
    else:
        with pytest.raises(RunEndedError):
            next(out)


# -- (c) two outputs read one after the other ------------------------------------------------


def double(x):
    return 2 * x


def kilobytes(x):
    return b"k" * 10_000


@pytest.mark.parametrize("worker_type, n", [("process", 100_000), ("thread", 50_000)])
def test_two_outputs_read_one_after_the_other_while_their_results_fit(worker_type, n) -> None:
    """``list(x); list(y)``: y's results wait in the buffer while x is read,
    instead of a StallError, since they fit in buffer_bytes. (Thread workers
    pickle nothing, so no size is measured: there MAX_ALIVE tasklets wait.)"""
    with IMap(worker_type=worker_type, worker_num=2) as m:
        x = m.add_task(inc, range(n))
        y = m.add_task(double, range(n))
        m.start()
        first = list(x)
        second = list(y)
    assert first == [i + 1 for i in range(n)]
    assert second == [2 * i for i in range(n)]


def test_results_beyond_the_byte_budget_still_stall_with_a_clear_error() -> None:
    from imap import StallError

    with IMap(worker_num=2, buffer_bytes=1 << 20, stall_grace=0.2) as m:   # sizes measured
        x = m.add_task(inc, range(2_000))
        y = m.add_task(kilobytes, range(2_000))
        m.start()
        with pytest.raises(StallError, match="Take results from task 1"):
            list(x)
        assert y is not None


def test_a_buffer_given_is_obeyed_exactly_with_two_outputs() -> None:
    from imap import StallError

    with IMap(worker_type="thread", worker_num=2, buffer=64, stall_grace=0.2) as m:
        x = m.add_task(inc, range(1_000))
        m.add_task(double, range(1_000))
        m.start()
        with pytest.raises(StallError):
            list(x)
        assert m.status().high_water <= 64


# -- (d) the interpreter exits with an IMap running; Ctrl-C twice ---------------------------

FORK_SCRIPT = """
import sys
sys.path[:0] = [{root!r}]
from imap import IMap

def square(x):
    return x * x

m = IMap(worker_num=2, start_method="fork")   # as PaPy 1.x's examples: no stop()
task = m.add_task(square, range(100))
m.start()
print(sum(task))
"""


def _script(tmp_path, text: str) -> str:
    from pathlib import Path

    path = tmp_path / "script.py"
    path.write_text(text.format(root=str(Path(__file__).resolve().parents[2])))
    return str(path)


@pytest.mark.allow_leftovers
def test_an_imap_left_running_at_exit_ends_without_replacing_workers(tmp_path) -> None:
    import subprocess
    import sys

    script = _script(tmp_path, FORK_SCRIPT)
    for _ in range(6):   # it happened in about every other run
        done = subprocess.run([sys.executable, script], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == "328350", done
        assert done.stderr == "", done.stderr   # no "worker died", no replacement


CTRL_C_SCRIPT = """
import sys, time
sys.path[:0] = [{root!r}]
from imap import IMap

def slow(x):
    time.sleep(0.05)
    return x

if __name__ == "__main__":
    with IMap(worker_num=2) as m:
        task = m.add_task(slow, range(10_000))
        m.start()
        print("running", flush=True)
        for _ in task:
            pass
"""


PLUMBER_CTRL_C_SCRIPT = """
import sys, time
sys.path[:0] = [{root!r}]
from imap import IMap
from papy import Piper, Plumber, Worker

def slow(inbox):
    time.sleep(0.05)
    return inbox[0]

if __name__ == "__main__":
    plumber = Plumber()
    plumber.add_piper(Piper(Worker(slow), parallel=IMap(worker_num=2)))
    plumber.start([range(10_000)])
    print("running", flush=True)
    plumber.run()
    plumber.wait()   # as PaPy 1.x's scripts: no with-block, no stop()
"""


@pytest.mark.allow_leftovers
@pytest.mark.parametrize("pause", [0.0, 0.05, 0.2])
@pytest.mark.parametrize("kind", ["imap", "plumber"])
def test_ctrl_c_twice_ends_the_run_and_its_workers(tmp_path, pause, kind) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from support import wait_until

    proc = subprocess.Popen(
        [sys.executable, _script(tmp_path, CTRL_C_SCRIPT if kind == "imap"
                                 else PLUMBER_CTRL_C_SCRIPT)], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout.readline().strip() == b"running"
    proc.send_signal(signal.SIGINT)
    time.sleep(pause)   # the second press comes while the first is handled (not a sync)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert "KeyboardInterrupt" in text and "RuntimeError" not in text, text
    assert "Exception ignored" not in text, text   # the stop at exit is not cut short

    def group_gone() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return True
        return False
    wait_until(group_gone, 10, what="the worker processes to end")
