"""Run statistics and the bottleneck report (``IMap.status()``, ``IMap.report()``).

The figures are measured, so the tests check relations that hold whatever
the machine's speed: sums within bounds, counts equal, lower bounds of
times slept. The verdict tests build runs whose bottleneck is known by a
wide margin (one part sleeps ten times longer than everything else).
"""

from __future__ import annotations

import time

import pytest
import worker_funcs as wf

import imap


def sleep_for(x, seconds=0.01):
    time.sleep(seconds)
    return x


def sleep_long_on(x, victim, seconds):
    time.sleep(seconds if x == victim else 0.001)
    return x


def fail(x):
    raise ValueError(f"bad {x}")


def slow_input(n, seconds=0.01):
    for x in range(n):
        time.sleep(seconds)
        yield x


@pytest.mark.timeout(60)
def test_busy_times_fit_in_the_pool_time_and_counts_are_exact():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        first = m.add_task(wf.sleep_and_return, [(x, 0.002) for x in range(200)])
        m.add_task(wf.add_one, first)
        m.start()
        assert list(m.get_task(1)) == [x + 1 for x in range(200)]
        live = m.status()
    final = m.status()
    assert final.tasks == []   # a stopped IMap has no tasks; the report keeps the run
    report = m.report()
    assert [r["items"] for r in report.rows] == [200, 200]
    busy = sum(t.busy for t in live.tasks)
    assert busy >= 200 * 0.002                       # each tasklet slept that long
    assert busy <= report.elapsed * report.workers   # no worker is busy twice at once
    slow = live.tasks[0]
    assert slow.mean_time is not None and slow.mean_time >= 0.002
    assert slow.peak_time >= slow.mean_time
    assert slow.rate is not None and slow.rate > 0
    assert sum(r["share"] for r in report.rows) <= 1.0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_the_peak_tasklet_is_measured_on_its_own(worker_type):
    # Workers time runs of tasklets, the first of a batch alone: item 50
    # starts the second batch of 50.
    with imap.IMap(worker_type=worker_type, worker_num=2, chunksize=50, stride=100) as m:
        task = m.add_task(sleep_long_on, range(100), args=(50, 0.3))
        m.start()
        assert list(task) == list(range(100))
        status = m.status()
    t = status.tasks[0]
    assert t.peak_time >= 0.3
    assert t.mean_time < t.peak_time


@pytest.mark.timeout(60)
def test_time_in_a_slow_input_and_waiting_for_results_is_counted():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        task = m.add_task(abs, slow_input(50))
        m.start()
        assert list(task) == list(range(50))
        t = m.status().tasks[0]
    assert t.input_wait >= 50 * 0.01   # the Feeder was inside next() all that time
    assert t.result_wait > 0.0         # the consumer waited for results meanwhile


@pytest.mark.timeout(60)
def test_verdict_names_a_slow_middle_stage():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        a = m.add_task(abs, range(200), name="parse")
        b = m.add_task(sleep_for, a, name="score")
        m.add_task(abs, b, name="format")
        m.start()
        assert list(m.get_task(2)) == list(range(200))
    report = m.report()
    assert report.bottleneck == "1 (score)", str(report)
    assert "1 (score)" in report.verdict and "workers" in report.verdict


@pytest.mark.timeout(60)
def test_verdict_names_a_slow_input():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        task = m.add_task(abs, slow_input(100))
        m.start()
        assert list(task) == list(range(100))
    report = m.report()
    assert report.bottleneck == "input", str(report)
    assert "next()" in report.verdict


@pytest.mark.timeout(60)
@pytest.mark.parametrize("buffer", [None, 4], ids=["adaptive", "buffer4"])
def test_verdict_names_a_slow_consumer(buffer):
    with imap.IMap(worker_type="thread", worker_num=2, buffer=buffer) as m:
        task = m.add_task(abs, range(100))
        m.start()
        got = []
        for value in task:
            time.sleep(0.01)   # the consumer's own work
            got.append(value)
        assert got == list(range(100))
    report = m.report()
    assert report.bottleneck == "consumer", str(report)
    if buffer is not None:
        assert report.room_wait > 0   # the Feeder waited for the consumer to make room


@pytest.mark.timeout(60)
@pytest.mark.parametrize("buffer", [None, 4], ids=["adaptive", "buffer4"])
def test_a_full_buffer_of_busy_work_is_not_blamed_on_the_consumer(buffer):
    # The consumer takes every result at once; the buffer is full of tasklets
    # in flight, so the Feeder waits for room nearly all the time.
    with imap.IMap(worker_type="thread", worker_num=2, buffer=buffer) as m:
        task = m.add_task(sleep_for, range(60), name="slow")
        m.start()
        assert list(task) == list(range(60))
    report = m.report()
    assert report.bottleneck == "0 (slow)", str(report)
    if buffer is not None:
        assert report.room_wait / report.elapsed > 0.5, str(report)


@pytest.mark.timeout(60)
def test_report_says_when_every_item_failed():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        task = m.add_task(fail, range(20))
        m.start()
        for _ in range(20):
            with pytest.raises(ValueError):
                next(task)
    report = m.report()
    assert report.rows[0]["errors"] == report.rows[0]["items"] == 20
    assert any("every item of task 0 (fail) failed" in note for note in report.notes)
    text = str(report)
    assert "every item of task 0 (fail) failed" in text
    assert text.splitlines()[0].split()[:3] == ["task", "items", "errors"]
    data = report.as_dict()
    assert data["rows"][0]["name"] == "0 (fail)" and data["verdict"] == report.verdict


def test_report_before_start_has_nothing_to_judge():
    m = imap.IMap(worker_type="thread", worker_num=1)
    m.add_task(abs, range(3))
    report = m.report()
    assert report.bottleneck is None
    assert report.verdict == "nothing has run yet"
