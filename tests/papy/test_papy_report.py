"""Plumber.report() and the timing figures in Plumber.stats, on pipelines
whose bottleneck is known by a wide margin (one piper sleeps ten times
longer than all the others)."""

from __future__ import annotations

import time

import pytest
from papy_funcs import add, identity, inc

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


def slow_source(n: int):
    """``range(n)``, 10 ms an item: the input is what limits the run."""
    for x in range(n):
        time.sleep(0.01)
        yield x


def test_an_input_verdict_moves_no_piper_that_is_on_an_imap_already() -> None:
    """The input is slow; both pipers run on an IMap: the remedy is a faster
    input, never 'run piper ... on an IMap' for a piper already on one."""
    m = imap.IMap(worker_type="thread", worker_num=2, name="pool")
    parse = Piper(inc, parallel=m, name="parse")
    gc = Piper(inc, parallel=m, name="gc")
    p = Plumber(pipes=[(parse, gc)], keep=True)
    run(p, slow_source(60))
    assert p.results["gc"] == [x + 2 for x in range(60)]
    report = p.report()
    assert report.bottleneck == "input", str(report)
    assert "on an IMap" not in report.verdict, report.verdict


def test_an_inline_piper_is_named_only_when_its_own_time_says_so() -> None:
    """Cheap branches on an IMap, an inline merge that only zips, an inline
    writer: whatever the verdict (the run is all overhead), an inline piper
    it names was busy for at least INLINE_BLAMED of the run (a merge that
    shows ~0 busy seconds is never the bottleneck)."""
    from papy.report import INLINE_BLAMED

    m = imap.IMap(worker_type="thread", worker_num=2, name="pool")
    a = Piper(inc, parallel=m, name="a")
    b = Piper(inc, parallel=m, name="b", branch=0)
    c = Piper(inc, parallel=m, name="c", branch=1)
    merge = Piper(add, name="merge")
    out = Piper(identity, name="out")
    p = Plumber(pipes=[(a, b, merge), (a, c, merge), (merge, out)], keep=True)
    run(p, range(40000))
    assert p.results["out"] == [2 * x + 4 for x in range(40000)]
    report = p.report()
    rows = {r["name"]: r for r in report.rows}
    if report.bottleneck in ("merge", "out"):
        assert rows[report.bottleneck]["share"] >= INLINE_BLAMED, str(report)
