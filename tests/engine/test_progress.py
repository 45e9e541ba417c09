"""Progress display: ``imap(..., progress=)``, ``IMap(progress=)`` and
``Plumber.run(progress=)``.

Bars are read back from tqdm's output stream (an ``io.StringIO`` given as
``file=``, or the captured stderr for ``progress=True``); the callback form
records its calls. Every count checked is taken after the display was
stopped (or had ended by itself), when it is exact.
"""

from __future__ import annotations

import functools
import gc
import io
import logging
import re
import sys
import threading

import pytest
import tqdm
import worker_funcs as wf
from papy_funcs import dbl, inc, neg, total
from support import (
    assert_no_leftovers,
    consume_round_robin,
    run_command,
    snapshot,
    wait_until,
)

import imap
from imap import IMap
from papy import Piper, Plumber

pytestmark = pytest.mark.timeout(60)


class Bar(tqdm.std.tqdm):
    """A plain tqdm bar without tqdm's monitor thread (it would outlive the test)."""

    monitor_interval = 0


def bars_to(buffer: io.StringIO):
    """``progress=`` value: Bars written to ``buffer``."""
    return functools.partial(Bar, file=buffer)


def last_shown(text: str, label: str) -> str:
    """The last rendering of the bar ``label`` in tqdm's output ``text``."""
    shown = [part.strip() for part in re.split(r"[\r\n]|\x1b\[A", text)
             if part.strip().startswith(label + ":")]
    assert shown, f"no bar {label!r} in:\n{text}"
    return shown[-1]


class Calls:
    """A progress callback that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int | None]] = []

    def __call__(self, label: str, done: int, total: int | None) -> None:
        self.calls.append((label, done, total))

    def final(self) -> dict[str, tuple[int, int | None]]:
        """Per label, the (done, total) of its last call."""
        return {label: (done, total) for label, done, total in self.calls}

    def counts(self, label: str) -> list[int]:
        return [done for name, done, _ in self.calls if name == label]


def progress_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "progress" in t.name]


# --- imap() and IMap bars -------------------------------------------------------------


def test_imap_helper_draws_a_bar_with_the_task_name_count_and_total():
    out = io.StringIO()
    results = list(imap.imap(wf.square, range(100), worker_type="thread", worker_num=2,
                             progress=bars_to(out)))
    assert results == [x * x for x in range(100)]
    bar = last_shown(out.getvalue(), "task 0 (square)")
    assert "100/100" in bar and "100%" in bar, bar


def test_progress_true_draws_tqdm_bars_on_stderr(capsys):
    assert list(imap.imap(wf.double, range(50), worker_type="thread", worker_num=2,
                          progress=True)) == [2 * x for x in range(50)]
    captured = capsys.readouterr()
    assert "50/50" in last_shown(captured.err, "task 0 (double)")
    assert "task 0" not in captured.out


def test_an_imap_shows_one_bar_per_task_and_a_chained_task_has_its_upstream_total():
    out = io.StringIO()
    with IMap(worker_type="thread", worker_num=2, progress=bars_to(out)) as m:
        first = m.add_task(wf.add_one, range(40), name="first")
        second = m.add_task(wf.double, first)
        other = m.add_task(wf.ident, (x for x in range(30)))   # no len()
        m.start()
        results = consume_round_robin([second, other], stride=1)
    assert results == [[2 * (x + 1) for x in range(40)], list(range(30))]
    text = out.getvalue()
    assert "40/40" in last_shown(text, "task 0 (first)")
    assert "40/40" in last_shown(text, "task 1 (double)")
    unsized = last_shown(text, "task 2 (ident)")
    assert "30item" in unsized and "/" not in unsized.split("[")[0], unsized


def test_a_named_imap_puts_its_name_before_the_task():
    calls = Calls()
    with IMap(worker_type="thread", worker_num=2, name="pool", progress=calls) as m:
        m.add_task(wf.ident, range(5))
        m.start()
        assert list(m) == list(range(5))
    assert calls.final() == {"pool: task 0 (ident)": (5, 5)}


def test_a_task_reading_another_imap_has_that_task_total():
    calls = Calls()
    with IMap(worker_type="thread", worker_num=1) as source, \
            IMap(worker_type="thread", worker_num=1, progress=calls) as m:
        upstream = source.add_task(wf.add_one, range(20))
        source.start()
        m.add_task(wf.double, upstream)
        m.start()
        assert list(m) == [2 * (x + 1) for x in range(20)]
    assert calls.final() == {"task 0 (double)": (20, 20)}


def test_the_callback_ends_with_done_equal_to_total(worker_type):
    calls = Calls()
    with IMap(worker_type=worker_type, worker_num=2, progress=calls) as m:
        m.add_task(wf.square, range(60))
        m.start()
        assert list(m) == [x * x for x in range(60)]
    assert calls.final() == {"task 0 (square)": (60, 60)}
    counts = calls.counts("task 0 (square)")
    assert counts == sorted(counts)
    assert {t for _, _, t in calls.calls} == {60}


def test_the_callback_gets_no_total_for_an_input_without_len():
    calls = Calls()
    list(imap.imap(wf.ident, iter(range(25)), worker_type="thread", worker_num=2,
                   progress=calls))
    assert calls.final() == {"task 0 (ident)": (25, None)}


def test_errors_count_as_results_done():
    calls = Calls()
    results = imap.imap(wf.fail_on, range(10), args=(3,), worker_type="thread",
                        worker_num=2, progress=calls)
    got = []
    for _ in range(10):
        try:
            got.append(next(results))
        except ValueError:
            got.append(None)
    with pytest.raises(StopIteration):
        next(results)
    assert got.count(None) == 1
    assert calls.final() == {"task 0 (fail_on)": (10, 10)}


def test_the_display_ends_by_itself_once_every_task_is_finished():
    calls = Calls()
    m = IMap(worker_type="thread", worker_num=2, progress=calls)
    m.add_task(wf.ident, range(30))
    m.start()
    assert list(m) == list(range(30))
    wait_until(lambda: not progress_threads(), 10, "the display to end")
    assert calls.final() == {"task 0 (ident)": (30, 30)}
    made = len(calls.calls)
    m.stop()
    assert len(calls.calls) == made   # the final call came once


def test_stop_before_the_end_closes_the_display_with_the_count_so_far():
    calls = Calls()
    m = IMap(worker_type="thread", worker_num=2, progress=calls)
    task = m.add_task(wf.ident, range(1000))
    m.start()
    assert [next(task) for _ in range(10)] == list(range(10))
    assert progress_threads()
    m.stop()
    assert not progress_threads()
    done, total_ = calls.final()["task 0 (ident)"]
    assert 10 <= done <= 1000 and total_ == 1000


def test_a_restarted_imap_shows_new_bars():
    calls = Calls()
    with IMap(worker_type="thread", worker_num=2, progress=calls) as m:
        m.add_task(wf.ident, range(5))
        m.start()
        list(m)
        m.stop()
        m.add_task(wf.double, range(7))
        m.start()
        list(m)
    assert calls.final() == {"task 0 (ident)": (5, 5), "task 0 (double)": (7, 7)}


@pytest.mark.allow_leftovers
def test_a_dropped_running_imap_stops_its_display():
    before = snapshot()
    calls = Calls()
    m = IMap(worker_type="thread", worker_num=2, progress=calls)
    task = m.add_task(wf.ident, range(1000))
    m.start()
    next(task)
    del task, m
    gc.collect()
    assert_no_leftovers(before, grace=10)
    assert "task 0 (ident)" in calls.final()


def test_a_failing_display_is_logged_and_the_imap_goes_on(caplog):
    def broken(label, done, total):
        raise RuntimeError("display gone")

    with caplog.at_level(logging.ERROR, logger="imap"):
        with IMap(worker_type="thread", worker_num=2, progress=broken) as m:
            m.add_task(wf.ident, range(20))
            m.start()
            assert list(m) == list(range(20))
    assert "progress display failed" in caplog.text


# --- off: no cost -----------------------------------------------------------------------


def test_without_progress_no_display_thread_runs():
    with IMap(worker_type="thread", worker_num=2) as m:
        m.add_task(wf.ident, range(100))
        m.start()
        assert not progress_threads()
        assert list(m) == list(range(100))
    with IMap(worker_type="thread", worker_num=2, progress=Calls()) as m:
        m.add_task(wf.ident, range(100))
        m.start()
        assert progress_threads()   # the same check sees the display when it is on
        assert list(m) == list(range(100))


def test_without_progress_tqdm_is_not_imported():
    script = (
        "import sys\n"
        "import imap\n"
        "assert list(imap.imap(abs, [-1, -2], worker_type='thread')) == [1, 2]\n"
        "print('tqdm' in sys.modules)\n"
    )
    done = run_command([sys.executable, "-c", script], timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# --- the option -------------------------------------------------------------------------


def test_progress_is_a_read_only_option_kept_in_options():
    assert IMap(worker_type="thread").progress is False
    assert IMap(worker_type="thread", progress=None).progress is False
    m = IMap(worker_type="thread", progress=True)
    assert m.progress is True and m.options["progress"] is True
    assert IMap(**m.options).progress is True
    with pytest.raises(AttributeError):
        m.progress = False


class NotABar:
    """A class without update() and close()."""


@pytest.mark.parametrize("value", ["yes", 1, 0.5, [], NotABar,
                                   functools.partial(NotABar)],
                         ids=["str", "int", "float", "list", "class", "partial"])
def test_bad_progress_values_raise_type_error(value):
    with pytest.raises(TypeError, match="progress.*callback"):
        IMap(worker_type="thread", progress=value)
    with pytest.raises(TypeError, match="progress.*callback"):
        imap.imap(abs, [1], worker_type="thread", progress=value)


def test_a_bar_class_refusing_the_keywords_fails_start_and_leaves_nothing_running():
    class Narrow:
        def __init__(self, total):   # no desc=, unit=, ...
            pass

        def update(self, n):
            pass

        def close(self):
            pass

    m = IMap(worker_type="thread", worker_num=2, progress=Narrow)
    m.add_task(wf.ident, range(10))
    with pytest.raises(TypeError, match="desc"):
        m.start()
    assert not m.running


# --- Plumber.run(progress=) ---------------------------------------------------------------


def forked(m) -> Plumber:
    """a -> b -> d (consume=3) and a -> c: two outputs, d and c."""
    a = Piper(inc, parallel=m, name="a")
    b = Piper(dbl, parallel=m, name="b")
    c = Piper(neg, parallel=m, name="c")
    d = Piper(total, consume=3, name="d")
    return Plumber(pipes=[(a, b, d), (a, c)], keep=True)


def test_plumber_shows_one_bar_per_output_with_the_items_expected():
    out = io.StringIO()
    p = forked(IMap(worker_type="thread", worker_num=2))
    p.start([range(50)])
    p.run(progress=bars_to(out))
    assert p.wait(30)
    p.stop()
    assert [len(p.results[name]) for name in ("d", "c")] == [17, 50]
    text = out.getvalue()
    assert "17/17" in last_shown(text, "d")
    assert "50/50" in last_shown(text, "c")


def test_plumber_callback_ends_with_every_output_at_its_total_at_wait():
    calls = Calls()
    p = forked(IMap(worker_type="thread", worker_num=2))
    p.start([list(range(50))])
    p.run(progress=calls)
    assert p.wait(30)
    assert calls.final() == {"d": (17, 17), "c": (50, 50)}
    made = len(calls.calls)
    p.stop()
    assert len(calls.calls) == made


def test_plumber_bars_have_no_total_for_an_input_without_len():
    calls = Calls()
    p = forked(IMap(worker_type="thread", worker_num=2))
    p.start([iter(range(12))])
    p.run(progress=calls)
    assert p.wait(30)
    p.stop()
    assert calls.final() == {"d": (4, None), "c": (12, None)}


def test_plumber_resumed_after_pause_keeps_its_one_display():
    calls = Calls()
    p = forked(IMap(worker_type="thread", worker_num=2))
    p.start([range(30)])
    p.run(progress=calls)
    p.pause()
    p.run(progress=calls)   # resumes; the display already shown is kept
    assert p.wait(30)
    p.stop()
    assert calls.final() == {"d": (10, 10), "c": (30, 30)}
    assert len(progress_threads()) == 0


def test_plumber_stopped_early_closes_its_display():
    calls = Calls()
    gate = threading.Event()

    def held():
        yield from range(5)
        gate.wait(30)   # the input blocks until the display has been seen
        yield from range(5, 10)

    p = forked(IMap(worker_type="thread", worker_num=2))
    p.start([held()])
    p.run(progress=calls)
    assert progress_threads()
    gate.set()
    p.stop()
    assert not progress_threads()
    assert set(calls.final()) == {"d", "c"}


def test_plumber_run_refuses_a_bad_progress_value():
    p = forked(IMap(worker_type="thread", worker_num=2))
    p.start([range(6)])
    with pytest.raises(TypeError, match="progress"):
        p.run(progress="bars")
    p.run()
    assert p.wait(30)
    p.stop()
    assert p.results["c"] == [-(x + 1) for x in range(6)]
