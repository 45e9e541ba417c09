"""papy's structure (DESIGN 6b): Plumber runs a Dagger, one per-item loop in
Piper whatever runs it, the report maps tasks to pipers by id."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from papy_funcs import dbl, inc, sleepy

import imap
from papy import Dagger, Piper, PiperError, Plumber
from papy.streams import Guarded

pytestmark = pytest.mark.timeout(90)


def test_plumber_runs_a_dagger_rather_than_being_one() -> None:
    p = Plumber()
    assert not isinstance(p, Dagger) and isinstance(p.dagger, Dagger)
    a = p.add_piper(Piper(inc, name="a"))
    b = p.add_piper(Piper(dbl, name="b"))
    p.add_pipe([a, b])
    # the graph methods are the Dagger's, on the Dagger
    assert p.dagger.resolve("a") is a and p.upstream(b) == [a] == p.dagger.upstream(b)
    assert p.graph is p.dagger.graph and len(p) == 2 and a in p
    assert p.add_piper.__doc__ == Dagger.add_piper.__doc__
    # no method changes the signature of the Dagger's method of the same name
    assert "datas" in inspect.signature(Plumber.start).parameters
    assert list(inspect.signature(Dagger.start).parameters) == ["self"]
    p.start([range(5)])
    p.run()
    assert p.wait(30)
    p.stop()
    assert [x for x in p.stats["pipers"]["b"].values()][:3] == [5, 5, 0]


def test_a_dagger_given_a_drain_calls_it_on_a_graceful_stop() -> None:
    drained = []
    m = imap.IMap(worker_type="thread", worker_num=2)
    d = Dagger(pipes=[(Piper(inc, parallel=m, name="a"), Piper(dbl, name="b"))],
               drain=lambda: drained.append(list(out)) or True)
    d.connect([range(10)])
    out = d.resolve("b").outbox
    assert not isinstance(out, Guarded)   # whoever drains reads alone
    d.start()
    d.stop()
    # a graceful stop ends the inputs: what was drawn comes out, in order
    [got] = drained
    assert got == [2 * (x + 1) for x in range(len(got))]
    plain = Dagger(pipes=[(Piper(inc, name="c"),)])
    plain.connect([range(3)])
    assert isinstance(plain.resolve("c").outbox, Guarded)
    plain.stop()
    plain.disconnect()


def test_the_report_maps_each_task_to_its_piper_by_id() -> None:
    m = imap.IMap(worker_type="thread", worker_num=2)
    # names that look like task rows ("<piper>[<i>]") and hold brackets
    first = Piper(sleepy, parallel=m, name="s (1)[0]", spawn=2)
    second = Piper(sleepy, parallel=m, name="s (1)", spawn=2)
    p = Plumber(pipes=[(first, second)])
    p.start([range(200)])
    p.run()
    assert p.wait(60)
    report = p.report()
    p.stop()
    assert len(first.task_ids) == 2 == len(second.task_ids)
    rows = {r["task"]: r for r in m.report().rows}
    mine = {r["name"]: r for r in report.rows}
    for piper in (first, second):
        busy = sum(rows[t]["busy"] for t in piper.task_ids)
        assert busy > 0
        assert mine[piper.name]["busy"] == pytest.approx(busy)


def maybe_fail(inbox):
    x = inbox[0]
    if x % 5 == 4:
        raise ValueError(f"{x} ends in 4 or 9")
    return (x, -x)


@settings(max_examples=25, deadline=None)
@given(items=st.lists(st.integers(0, 50), max_size=30), produce=st.sampled_from([1, 2]),
       track=st.booleans())
def test_every_kind_of_piper_hands_on_the_same_items_and_counts(items, produce,
                                                                 track) -> None:
    """Inline (the common path and the general one) and on an IMap: one loop."""
    seen = []
    for parallel in (False, imap.IMap(worker_type="thread", worker_num=2)):
        piper = Piper(maybe_fail, parallel=parallel, produce=produce, track=track,
                      name="m")
        piper.connect([items])
        piper.start()
        try:
            out = list(piper)
        finally:
            piper.stop()
        shape = [v if not isinstance(v, PiperError) else "error" for v in out]
        seen.append((shape, dict(piper.stats), len(piper.tracked)))
    assert seen[0] == seen[1]
    shape, stats, tracked = seen[0]
    failed = sum(1 for x in items if x % 5 == 4)
    assert stats == {"in": len(items), "out": len(items) * produce,
                     "errors": failed * produce if produce == 1 else failed}
    assert tracked == (len(items) if track else 0)
