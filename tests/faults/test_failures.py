"""Failures with real processes: workers that die, scripts that exit without
stop() or are interrupted, IMaps that are garbage-collected. The IMap never
hangs and loses only what the dead worker held."""

from __future__ import annotations

import collections
import gc
import itertools
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import worker_funcs as wf
from support import (
    assert_no_leftovers,
    kill_group,
    new_worker_pids,
    pid_alive,
    read_when_written,
    run_script,
    script_env,
    snapshot,
    wait_until,
)

import imap


def results_or_errors(task, n: int) -> list:
    out = []
    for _ in range(n):
        try:
            out.append(task.next(timeout=60))
        except StopIteration:
            raise AssertionError(f"only {len(out)} results, expected {n}") from None
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            out.append(exc)
    with pytest.raises(StopIteration):
        task.next(timeout=60)
    return out


# --- a worker that dies fails only its tasklet ----------------------------------------


@pytest.mark.timeout(90)
def test_sigkilled_worker_fails_its_tasklet_with_worker_lost_error(tmp_path):
    # buffer=1: the tasklet of item 3 is the only one in existence when its
    # worker is killed, so exactly that result is lost.
    with imap.IMap(worker_type="process", worker_num=2, stride=1, buffer=1) as m:
        task = m.add_task(wf.report_pid_and_hold, range(8), args=(3, str(tmp_path)), retries=0)
        m.start()
        assert [task.next(timeout=30) for _ in range(3)] == [0, 2, 4]
        victim = int(read_when_written(tmp_path / "pid"))
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(imap.WorkerLostError):
            task.next(timeout=30)
        assert [task.next(timeout=30) for _ in range(4)] == [8, 10, 12, 14]
        status = m.status()
        assert status.workers_lost >= 1
        assert status.tasks[0].errors == 1
        with pytest.raises(StopIteration):
            task.next(timeout=30)


@pytest.mark.timeout(90)
def test_lost_worker_is_replaced_and_the_imap_keeps_working(tmp_path):
    with imap.IMap(worker_type="process", worker_num=2, stride=1, buffer=1) as m:
        task = m.add_task(wf.report_pid_and_hold, range(40), args=(0, str(tmp_path)), retries=0)
        m.start()
        victim = int(read_when_written(tmp_path / "pid"))
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(imap.WorkerLostError):
            task.next(timeout=30)
        assert [task.next(timeout=30) for _ in range(39)] == [2 * x for x in range(1, 40)]
        wait_until(lambda: m.status().workers == 2, 30, "the lost worker is replaced")


@pytest.mark.timeout(90)
def test_sigkilled_worker_with_parallel_tasklets_loses_nothing_else(tmp_path):
    # A buffer for every item: all are drawn at once, item 5 among them.
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1, buffer=30) as m:
        task = m.add_task(wf.report_pid_and_hold, range(30), args=(5, str(tmp_path)), retries=0)
        m.start()
        victim = int(read_when_written(tmp_path / "pid"))
        os.kill(victim, signal.SIGKILL)
        got = results_or_errors(task, 30)
    assert isinstance(got[5], imap.WorkerLostError)
    assert got[:5] + got[6:] == [2 * x for x in range(30) if x != 5]


@pytest.mark.timeout(90)
def test_retries_resubmit_a_tasklet_lost_with_its_worker(tmp_path):
    with imap.IMap(worker_type="process", worker_num=2, stride=1, buffer=1) as m:
        task = m.add_task(
            wf.report_pid_and_hold_first_attempt, range(6), args=(0, str(tmp_path)), retries=1
        )
        m.start()
        victim = int(read_when_written(tmp_path / "pid"))
        os.kill(victim, signal.SIGKILL)
        assert results_or_errors(task, 6) == [0, 2, 4, 6, 8, 10]
        assert m.status().workers_lost >= 1


@pytest.mark.timeout(90)
def test_os_exit_in_the_function_is_a_worker_lost_error():
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
        task = m.add_task(wf.exit_on, range(10), args=(4,))
        m.start()
        got = results_or_errors(task, 10)
        assert m.status().workers_lost >= 1
    assert isinstance(got[4], imap.WorkerLostError)
    assert got[:4] + got[5:] == [2 * x for x in range(10) if x != 4]


@pytest.mark.timeout(90)
def test_segfault_in_the_function_is_a_worker_lost_error():
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
        task = m.add_task(wf.segfault_on, range(6), args=(1,))
        m.start()
        got = results_or_errors(task, 6)
    assert isinstance(got[1], imap.WorkerLostError)
    assert [got[0]] + got[2:] == [0, 4, 6, 8, 10]


@pytest.mark.timeout(90)
def test_retries_recover_from_os_exit_on_the_first_attempt(tmp_path):
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
        task = m.add_task(
            wf.exit_on_first_attempt, range(8), args=(3, str(tmp_path / "marker")), retries=1
        )
        m.start()
        assert results_or_errors(task, 8) == [2 * x for x in range(8)]


@pytest.mark.timeout(90)
def test_tasklet_fails_when_its_retries_are_exhausted(tmp_path):
    attempts = tmp_path / "attempts"
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
        task = m.add_task(wf.exit_on_every_attempt, range(5), args=(2, str(attempts)), retries=2)
        m.start()
        got = results_or_errors(task, 5)
        assert m.status().workers_lost >= 3
    assert isinstance(got[2], imap.WorkerLostError)
    assert [got[0], got[1], got[3], got[4]] == [0, 2, 6, 8]
    assert len(attempts.read_text().splitlines()) == 3  # the first attempt and 2 retries


@pytest.mark.timeout(90)
@pytest.mark.parametrize("settings", [{}, {"stride": 64}, {"stride": 1024}],
                         ids=["adaptive", "stride64", "stride1024"])
def test_an_item_that_kills_its_worker_fails_alone_in_a_large_batch(settings):
    with imap.IMap(worker_type="process", worker_num=2, **settings) as m:
        task = m.add_task(wf.exit_on, range(100), args=(3,))
        m.start()
        got = results_or_errors(task, 100)
    assert isinstance(got[3], imap.WorkerLostError)
    assert got[:3] + got[4:] == [2 * x for x in range(100) if x != 3]


@pytest.mark.timeout(90)
def test_retries_count_per_tasklet_in_a_large_batch(tmp_path):
    attempts = tmp_path / "attempts"
    with imap.IMap(worker_type="process", worker_num=2, stride=64) as m:
        task = m.add_task(wf.exit_on_every_attempt, range(64), args=(5, str(attempts)),
                          retries=2)
        m.start()
        got = results_or_errors(task, 64)
    assert isinstance(got[5], imap.WorkerLostError)
    assert got[:5] + got[6:] == [2 * x for x in range(64) if x != 5]
    # The batch holding it dies once; run again careful (each item reported as
    # it ends), it dies at the item, which is then retried alone twice.
    assert len(attempts.read_text().splitlines()) == 2 + 2


def _runs(log):
    counts = collections.Counter(int(line) for line in log.read_text().split())
    return counts


@pytest.mark.timeout(90)
@pytest.mark.parametrize("stride", [64, 1024])
def test_a_worker_death_reruns_each_item_at_most_once_more(tmp_path, stride):
    """Only the items of the dead batch that ran before the crash run twice
    (the careful re-run reports each item as it ends): none runs a third time."""
    log = tmp_path / "calls"
    with imap.IMap(worker_type="process", worker_num=2, stride=stride) as m:
        task = m.add_task(wf.record_and_exit_on, range(200), args=(3, str(log)), retries=0)
        m.start()
        got = results_or_errors(task, 200)
    assert isinstance(got[3], imap.WorkerLostError)
    assert got[:3] + got[4:] == [2 * x for x in range(200) if x != 3]
    runs = _runs(log)
    assert sorted(runs) == list(range(200))
    assert runs[3] == 2  # in its batch, then alone in the careful re-run
    assert {x for x, n in runs.items() if n > 1} <= {0, 1, 2, 3}
    assert max(runs.values()) <= 2


@pytest.mark.timeout(90)
def test_a_long_batch_keeps_what_it_finished_before_its_worker_died(tmp_path):
    """A batch that runs long sends partial answers: a crash loses at most the
    items finished since the last one (``FLUSH_EVERY``, 0.25 s, i.e. at most
    two items of 0.1 s here), which alone run again."""
    log = tmp_path / "calls"
    with imap.IMap(worker_type="process", worker_num=1, stride=16, chunksize=16) as m:
        task = m.add_task(wf.record_and_exit_on, range(16), args=(9, str(log), 0.1), retries=0)
        m.start()
        got = results_or_errors(task, 16)
    assert isinstance(got[9], imap.WorkerLostError)
    assert got[:9] + got[10:] == [2 * x for x in range(16) if x != 9]
    runs = _runs(log)
    assert runs[9] == 2
    twice = [x for x in range(9) if runs[x] == 2]
    assert len(twice) <= 2, runs  # without partial answers: all of 0..8
    assert all(runs[x] == 1 for x in range(10, 16))


@pytest.mark.timeout(90)
def test_worker_lost_error_travels_down_a_chain():
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
        first = m.add_task(wf.exit_on, range(5), args=(1,))
        second = m.add_task(wf.add_one, first)
        m.start()
        got = results_or_errors(second, 5)
    assert isinstance(got[1], imap.WorkerLostError)
    assert [got[0]] + got[2:] == [1, 5, 7, 9]


# --- scripts that never call stop() ---------------------------------------------------

NO_STOP_SCRIPT = """
import itertools, json, multiprocessing, sys, threading, time
import imap
import worker_funcs as wf


def busy(x):
    # Item 0 returns at once; later items keep their worker busy for a minute.
    if x > 0:
        threading.Event().wait(60) if WORKER_TYPE == "thread" else time.sleep(60)
    return x


WORKER_TYPE = sys.argv[1]

if __name__ == "__main__":
    busy_workers = sys.argv[2] == "busy"
    m = imap.IMap(worker_type=WORKER_TYPE, worker_num=2)
    it = m.add_task(busy if busy_workers else wf.square, itertools.count())
    m.start()
    print(next(it), flush=True)
    print(json.dumps([p.pid for p in multiprocessing.active_children()]), flush=True)
    # exits without stop()
"""


@pytest.mark.allow_leftovers
@pytest.mark.timeout(60)
@pytest.mark.parametrize("load", ["idle", "busy"])
def test_script_that_never_stops_its_imap_exits_within_10_s(tmp_path, worker_type, load):
    script = tmp_path / "no_stop.py"
    script.write_text(NO_STOP_SCRIPT)
    done = run_script(script, [worker_type, load], timeout=10)
    assert done.returncode == 0, done.stderr
    first, children = done.stdout.splitlines()[:2]
    assert first == "0"
    for pid in json.loads(children):
        wait_until(lambda pid=pid: not pid_alive(pid), 10, f"worker {pid} to end")


# --- Ctrl-C during iteration ----------------------------------------------------------

SIGINT_SCRIPT = """
import faulthandler, itertools, json, multiprocessing, signal, sys, threading, time
import imap

faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks, should it hang


def first_fast_then_stuck(x):
    if x > 0:
        threading.Event().wait(60) if WORKER_TYPE == "thread" else time.sleep(60)
    return x


WORKER_TYPE = sys.argv[1]

if __name__ == "__main__":
    m = imap.IMap(worker_type=WORKER_TYPE, worker_num=2)
    it = m.add_task(first_fast_then_stuck, itertools.count())
    m.start()
    for i, result in enumerate(it):
        if i == 0:
            print(json.dumps([p.pid for p in multiprocessing.active_children()]), flush=True)
            print("ready", flush=True)
    print("iteration ended", flush=True)
"""


@pytest.mark.allow_leftovers
@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", ["process", "group"])
def test_sigint_during_iteration_raises_keyboard_interrupt_and_exits(tmp_path, worker_type, target):
    script = tmp_path / "sigint.py"
    script.write_text(SIGINT_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), worker_type],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=script_env(), start_new_session=True,
    )
    try:
        children = json.loads(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"
        # The main thread is now blocked in next(): no second result can come.
        if target == "group":  # what Ctrl-C in a terminal does
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGUSR1)  # the script dumps its threads' stacks
            try:
                out, err = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                out, err = proc.communicate()
            raise AssertionError(f"no exit within 10 s of SIGINT\nstderr:\n{err}") from None
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err
    assert "iteration ended" not in out
    for pid in children:
        wait_until(lambda pid=pid: not pid_alive(pid), 10, f"worker {pid} to end")


# --- garbage collection ---------------------------------------------------------------


@pytest.mark.allow_leftovers
@pytest.mark.timeout(60)
def test_garbage_collected_running_imap_stops_its_workers(worker_type):
    before = snapshot()
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    it = m.add_task(wf.worker_pid, itertools.count())
    m.start()
    pids = {next(it) for _ in range(3)} | new_worker_pids(before)
    if worker_type == "process":
        assert pids and os.getpid() not in pids
    del it, m
    gc.collect()
    if worker_type == "process":
        for pid in pids:
            wait_until(lambda pid=pid: not pid_alive(pid), 10, f"worker {pid} to end")
    new_threads = lambda: [t for t in threading.enumerate() if t not in before.threads]  # noqa: E731
    wait_until(lambda: not new_threads(), 10, "the IMap's threads to end")
    wait_until(lambda: not new_worker_pids(before), 10, "the worker processes to be reaped")


# --- soak -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_long_chained_run_with_workers_killed_along_the_way_loses_nothing():
    before = snapshot()
    n = 20000
    with imap.IMap(worker_type="process", worker_num=2, stride=64) as m:
        first = m.add_task(wf.add_one, range(n), retries=10)
        second = m.add_task(wf.double, first, retries=10)
        m.start()
        got = []
        for i in range(n):
            if i and i % 2000 == 0:  # kill one worker every 2000 results
                alive = sorted(new_worker_pids(before))
                if alive:
                    os.kill(alive[i // 2000 % len(alive)], signal.SIGKILL)
            got.append(second.next(timeout=60))
        assert m.status().workers_lost >= 1
    assert got == [2 * (x + 1) for x in range(n)]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_many_process_imaps_started_and_stopped_leave_nothing():
    before = snapshot()
    for round_ in range(40):
        with imap.IMap(worker_type="process", worker_num=2) as m:
            task = m.add_task(wf.square, itertools.count())
            m.start()
            assert [next(task) for _ in range(round_ % 5 + 1)] == [
                x * x for x in range(round_ % 5 + 1)
            ]
    assert_no_leftovers(before, grace=10)


@pytest.mark.timeout(300)
def test_deaths_anywhere_in_a_batch_fail_only_the_killing_items(tmp_path):
    """Property: whatever the batch shape and where the killing items are,
    every other item gives its result, the killers fail alone, and no item
    runs more than twice (once in the batch that died, once careful)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    runs_dir = tmp_path
    counter = itertools.count()

    @settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(n=st.integers(1, 120), victims=st.sets(st.integers(0, 119), max_size=2),
           chunk=st.sampled_from([None, 1, 7, 64]), ordered=st.booleans())
    def check(n, victims, chunk, ordered):
        log = runs_dir / f"calls{next(counter)}"
        victims = {v for v in victims if v < n}
        extra = {} if chunk is None else {"stride": chunk * 2, "chunksize": chunk}
        with imap.IMap(worker_type="process", worker_num=2, ordered=ordered, **extra) as m:
            task = m.add_task(wf.record_and_exit_on_any, range(n),
                              args=(sorted(victims), str(log)), retries=0)
            m.start()
            if ordered:
                got = results_or_errors(task, n)
            else:
                got = [None] * n
                for _ in range(n):
                    try:
                        value = next(task)
                        got[value // 2] = value
                    except imap.WorkerLostError as exc:
                        got[int(str(exc).rsplit("item ", 1)[1].split()[0])] = exc
        for x in range(n):
            if x in victims:
                assert isinstance(got[x], imap.WorkerLostError), (x, got[x])
            else:
                assert got[x] == 2 * x
        runs = _runs(log) if n else collections.Counter()
        assert sorted(runs) == list(range(n))
        assert max(runs.values(), default=0) <= 2

    check()


def test_at_defaults_a_worker_lost_once_costs_no_item(tmp_path):
    """retries defaults to 2: the tasklet whose worker was killed runs again
    on the worker that takes its place, and every result arrives."""
    with imap.IMap(worker_type="process", worker_num=2, stride=1, buffer=1) as m:
        task = m.add_task(wf.report_pid_and_hold_first_attempt, range(6), args=(0, str(tmp_path)))
        m.start()
        os.kill(int(read_when_written(tmp_path / "pid")), signal.SIGKILL)
        assert list(task) == [2 * x for x in range(6)]
        assert m.status().workers_lost == 1


def test_at_defaults_an_item_that_kills_every_worker_fails_naming_its_attempts():
    with imap.IMap(worker_type="process", worker_num=2, chunksize=1) as m:
        task = m.add_task(wf.exit_on, range(4), args=(1,))
        m.start()
        assert next(task) == 0
        with pytest.raises(imap.WorkerLostError, match="after 3 attempts") as info:
            next(task)
        assert info.value.attempts == 3
        assert list(task) == [4, 6]
