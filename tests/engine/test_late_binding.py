"""Late binding: a batch a worker holds but has not started can be taken back.

The claims board (``imap.worker.process_entry.Claims``) decides, for each batch
sent to a worker process, whether the worker starts it or the parent takes it
back; never both, never neither. The engine uses it so that no tasklet waits
behind a slow or stuck one while another worker idles.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import pytest
import worker_funcs as h
from hypothesis import given
from hypothesis import strategies as st
from support import read_when_written, take_skipping, wait_until

from imap import IMap
from imap.worker.process_entry import Claims


def _claim_all(claims: Claims, tickets: int, started) -> None:
    """A worker's side: claim tickets 1..n in order; record each started one."""
    for ticket in range(1, tickets + 1):
        if claims.claim(ticket):
            started[ticket] = 1


@pytest.mark.timeout(60)
@given(tickets=st.integers(1, 80), revoke=st.lists(st.integers(1, 80), max_size=40))
def test_each_batch_is_started_by_its_worker_or_taken_back_never_both(tickets, revoke):
    ctx = mp.get_context("fork")
    claims = Claims(ctx)
    started = ctx.RawArray("b", tickets + 1)
    worker = ctx.Process(target=_claim_all, args=(claims, tickets, started))
    worker.start()
    taken = {t for t in revoke if t <= tickets and claims.revoke(t, timeout=5.0)}
    worker.join(30)
    assert worker.exitcode == 0
    ran = {t for t in range(1, tickets + 1) if started[t]}
    assert not ran & taken
    assert ran | taken == set(range(1, tickets + 1))


def test_a_started_batch_cannot_be_taken_back():
    claims = Claims(mp.get_context("fork"))
    assert claims.claim(1)
    assert not claims.revoke(1)
    assert claims.revoke(2)        # not started: taken back
    assert not claims.claim(2)     # ... so its worker skips it
    assert claims.claim(3)


def test_a_batch_queued_behind_a_stuck_one_runs_on_the_idle_worker(tmp_path):
    # Item 1 holds its worker until released; with ordered=False every other
    # item comes back first, although some were queued at the held worker.
    release = str(tmp_path / "release")
    with IMap(h.hold_until_released, range(8), args=({1}, release), worker_num=2,
              ordered=False) as m:
        early = [m.next(timeout=30) for _ in range(7)]
        h.write_atomically(release, "go")
        last = m.next(timeout=30)
    assert sorted(early) == [0, 20, 30, 40, 50, 60, 70]
    assert last == 10


def _hang_on(x, bad, limit):
    if x == bad:
        time.sleep(limit)   # the hung tasklet (its worker is killed long before)
    return x


def test_skip_gives_up_the_hung_tasklet_alone():
    # The tasklets queued behind the hung one at its worker run elsewhere:
    # none of them times out with it.
    with IMap(worker_num=2, skip=True) as m:
        task = m.add_task(_hang_on, range(12), args=(5, 60), timeout=0.5)
        m.start()
        got, timed_out, _ = take_skipping(task)
    assert timed_out == 1
    assert got == [x for x in range(12) if x != 5]


@pytest.mark.timeout(60)
def test_graceful_stop_gives_up_tasklets_that_outlive_their_timeout_under_skip(caplog):
    # Every tasklet hangs; nobody reads. stop() does not wait for them past
    # the task's timeout: it ends them as a forced stop would, and says so.
    m = IMap(worker_num=1, skip=True)
    m.add_task(time.sleep, [3600] * 6, timeout=0.5)
    m.start()
    # A stop before the Feeder drew anything has nothing to give up (it ends
    # the input at once): wait for tasklets in flight first.
    wait_until(lambda: m.status().tasks[0].in_flight > 0, 30, "tasklets in flight")
    m.stop()
    assert any("given up" in r.getMessage() for r in caplog.records)
    assert not m.running


def test_a_forced_stop_after_a_worker_was_replaced_raises_nothing(tmp_path, caplog):
    # A worker killed (and replaced) just before a forced stop: the stop
    # neither fails on the dead worker's closed process nor leaves one behind.
    directory = str(tmp_path)
    m = IMap(h.report_pid_and_hold, range(4), args=(1, directory), worker_num=2)
    os.kill(int(read_when_written(tmp_path / "pid")), 9)
    m.stop(forced=True)
    assert not m.running
    assert not [r for r in caplog.records if r.exc_info], "a thread failed while stopping"


def _mark_or_wait_for_all(x, directory, total):
    """Item 0 waits (20 s at most) until every other item has left a mark
    in ``directory``; True if they all did. Others leave their mark."""
    if x:
        open(os.path.join(directory, str(x)), "w").close()
        return True
    deadline = time.monotonic() + 20
    while len(os.listdir(directory)) < total - 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    return len(os.listdir(directory)) == total - 1


def test_results_waiting_behind_a_slow_one_do_not_starve_the_other_workers(tmp_path):
    # Ordered results wait behind item 0 while it runs; the adaptive bound
    # stretches (within the byte budget) so that the other worker runs
    # every other item meanwhile, instead of idling for want of room.
    total = 600
    with IMap(_mark_or_wait_for_all, range(total), args=(str(tmp_path), total),
              worker_num=2) as m:
        results = list(m)
    assert results == [True] * total
