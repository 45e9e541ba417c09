"""Failures with real processes: workers that die, scripts that exit without
stop() or are interrupted, IMaps that are garbage-collected. The IMap never
hangs and loses only what the dead worker held."""

from __future__ import annotations

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
        task = m.add_task(wf.report_pid_and_hold, range(8), args=(3, str(tmp_path)))
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
        task = m.add_task(wf.report_pid_and_hold, range(40), args=(0, str(tmp_path)))
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
        task = m.add_task(wf.report_pid_and_hold, range(30), args=(5, str(tmp_path)))
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
    # Halving a batch of 16 to the item alone takes 4 deaths (16, 8, 4, 2), then
    # the item alone dies once and twice more on retry.
    assert len(attempts.read_text().splitlines()) == 4 + 3


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
