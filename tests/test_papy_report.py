"""Plumber.report() and the timing figures in Plumber.stats, on pipelines
whose bottleneck is known by a wide margin (one piper sleeps ten times
longer than all the others)."""

from __future__ import annotations

import time

import pytest
from papy_funcs import inc

import imap
from papy import Piper, Plumber

pytestmark = pytest.mark.timeout(60)


def slow(inbox):
    time.sleep(0.01)
    return inbox[0]


def run(plumber: Plumber, data) -> None:
    plumber.start([data])
    plumber.run()
    assert plumber.wait(40) is True
    plumber.stop()


def test_report_names_the_slow_piper_on_an_imap() -> None:
    m = imap.IMap(worker_type="thread", worker_num=2, name="pool")
    a = Piper(inc, parallel=m, name="prepare")
    b = Piper(slow, parallel=m, name="score")
    c = Piper(inc, parallel=m, name="tidy")
    p = Plumber(pipes=[(a, b, c)], keep=True)
    run(p, range(200))
    assert p.results["tidy"] == [x + 2 for x in range(200)]
    report = p.report()
    assert report.bottleneck == "score", str(report)
    assert "'score'" in report.verdict and "pool" in report.verdict
    rows = {r["name"]: r for r in report.rows}
    assert rows["score"]["busy"] >= 200 * 0.01
    assert rows["score"]["items"] == 200
    assert str(report).splitlines()[0].startswith("piper")
    stats = p.stats["pipers"]["score"]
    assert stats["out"] == 200 and stats["busy"] == rows["score"]["busy"]


def test_report_names_a_slow_inline_piper_downstream() -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    a = Piper(inc, parallel=m, name="work")
    b = Piper(slow, name="write")   # inline: runs in the thread that pulls it
    p = Plumber(pipes=[(a, b)], keep=True)
    run(p, range(100))
    assert p.results["write"] == [x + 1 for x in range(100)]
    report = p.report()
    assert report.bottleneck == "write", str(report)
    assert "inline" in report.verdict
    rows = {r["name"]: r for r in report.rows}
    # Estimated from one item in 16, each of which slept 10 ms at least.
    assert rows["write"]["inline"] and rows["write"]["busy"] >= 100 * 0.01


def test_report_of_a_pipeline_that_never_ran() -> None:
    m = imap.IMap(worker_type="thread", worker_num=1)
    p = Plumber(pipes=[(Piper(inc, parallel=m, name="x"), Piper(inc, name="y"))])
    report = p.report()
    assert report.bottleneck is None
    assert [r["name"] for r in report.rows] == ["x", "y"]
