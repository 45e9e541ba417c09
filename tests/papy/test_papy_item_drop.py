"""One-item functions (papy.item), a refused inbox, imap.DROP in pipelines,
and Plumber waits that cannot last for ever."""

from __future__ import annotations

import warnings

import pytest
from papy_funcs import drop_odd_item, gc_content, inc

import imap
import papy
from papy import Dagger, Piper, Plumber, PlumberError, Worker
from papy.errors import PiperError

SEQS = ["GGCC", "ATAT", "GATC", "GGGA"]
GC = [1.0, 0.0, 0.5, 0.75]


def outputs(pipes, data, output):
    """Run a Plumber over ``pipes`` on ``data``; the items of piper ``output``."""
    p = Plumber(pipes=pipes, keep=True)
    p.start(data)
    p.run()
    assert p.wait(60)
    p.stop()
    return p.results[output], p.stats


# -- one-item functions ---------------------------------------------------------------


def test_an_item_function_gets_the_item_inline():
    got, _ = outputs([(Piper(papy.item(gc_content), name="gc"),
                       Piper(papy.item(round), name="r"))], [SEQS], "r")
    assert got == [round(x) for x in GC]


def test_an_item_function_gets_the_item_on_process_workers():
    m = imap.IMap(worker_type="process", worker_num=2)
    got, _ = outputs([(Piper(papy.item(gc_content), parallel=m, name="gc"),
                       Piper(inc, name="plus"))], [SEQS], "plus")
    assert got == [x + 1 for x in GC]


def test_an_item_function_of_a_merge_gets_one_argument_per_input():
    a, b = Piper(inc, name="a", branch=1), Piper(inc, name="b", branch=2)
    m = Piper(papy.item(lambda left, right: (left, -right)), name="m")
    got, _ = outputs([(a, m), (b, m)], [range(3), range(10, 13)], "m")
    assert got == [(1, -11), (2, -12), (3, -13)]


def test_an_item_function_takes_extra_arguments_after_the_item():
    w = Worker(papy.item(lambda x, k: x * k), arguments=[(10,)])
    assert w((4,)) == 40


def test_item_is_refused_with_consume():
    with pytest.raises(PiperError, match="consume=2.*for one item"):
        Piper(papy.item(gc_content), consume=2)


def test_a_plain_unannotated_function_keeps_the_inbox_convention():
    # PaPy's convention, unchanged: the function gets the inbox tuple
    assert Worker(lambda inbox: inbox)(("GGCC",)) == ("GGCC",)


def test_a_function_annotated_for_an_item_is_refused_at_the_first_item():
    def gc(seq: str) -> float:
        return (seq.count("G") + seq.count("C")) / len(seq)

    got, stats = outputs([(Piper(gc, name="gc"), Piper(inc, name="plus"))], [SEQS],
                         "plus")
    assert all(isinstance(x, PiperError) for x in got)
    assert "papy.item(" in str(got[0].error) and "annotated" in str(got[0].error)
    assert stats["outputs"]["plus"] == {"items": 4, "errors": 4}


def test_a_function_annotated_for_a_tuple_or_nothing_runs():
    def first(inbox: tuple) -> str:
        return inbox[0]

    def anything(inbox: object) -> object:
        return inbox

    assert Worker(first)(("x",)) == "x"
    assert Worker(anything)(("x",)) == ("x",)


def test_a_tuple_attribute_error_hints_at_item():
    error = Worker(lambda seq: seq.upper())(("acgt",))
    assert "papy.item(" in error.hint


# -- imap.DROP ------------------------------------------------------------------------


def test_an_inline_piper_drops_items():
    got, stats = outputs([(Piper(papy.item(drop_odd_item), name="f"),
                           Piper(papy.item(lambda x: x * 10), name="g"))], [range(10)], "g")
    assert got == [0, 20, 40, 60, 80]
    assert stats["pipers"]["f"]["dropped"] == 5
    assert stats["outputs"]["g"] == {"items": 5, "errors": 0, "dropped": 5}


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_piper_on_an_imap_drops_items(worker_type):
    m = imap.IMap(worker_type=worker_type, worker_num=2)
    got, _ = outputs([(Piper(papy.item(drop_odd_item), parallel=m, name="f"),
                       Piper(papy.item(lambda x: -x), parallel=m, name="g"))],
                     [range(20)], "g")
    assert got == [-x for x in range(0, 20, 2)]


def test_a_downstream_function_never_sees_a_dropped_item():
    seen = []
    d = Dagger(pipes=[(Piper(papy.item(drop_odd_item), name="f"),
                       Piper(papy.item(seen.append), name="g"))])
    d.connect([range(7)])
    d.start()
    assert len(list(d.get_outputs()[0])) == 4
    d.stop()
    assert seen == [0, 2, 4, 6]


def test_a_merge_drops_an_item_either_branch_dropped():
    # a -> (odd, third) -> merge: item i reaches the merge only if both kept it
    m = imap.IMap(worker_type="thread", worker_num=2)
    source = Piper(papy.item(lambda x: x), name="source")
    evens = Piper(papy.item(drop_odd_item), parallel=m, name="evens", branch=1)
    thirds = Piper(papy.item(lambda x: imap.DROP if x % 3 else x), name="thirds", branch=2)
    merge = Piper(papy.item(lambda e, t: (e, t)), name="merge")
    got, stats = outputs([(source, evens, merge), (source, thirds, merge)], [range(20)],
                         "merge")
    assert got == [(x, x) for x in range(20) if x % 6 == 0]
    assert stats["pipers"]["merge"]["dropped"] == 20 - len(got)


def test_an_error_in_one_branch_wins_over_a_drop_in_the_other():
    def boom(x):
        raise ValueError("boom")

    a = Piper(papy.item(boom), name="a", branch=1)
    b = Piper(papy.item(lambda x: imap.DROP), name="b", branch=2)
    merge = Piper(papy.item(lambda x, y: (x, y)), name="merge")
    got, _ = outputs([(a, merge), (b, merge)], [range(2), range(2)], "merge")
    assert len(got) == 2 and all(isinstance(x, PiperError) for x in got)


def test_consume_leaves_dropped_items_out_of_the_group():
    drop = Piper(papy.item(drop_odd_item), name="drop")
    group = Piper(lambda boxes: [box[0] for box in boxes], consume=3, name="group")
    got, _ = outputs([(drop, group)], [[0, 1, 3, 4, 5, 6, 7, 9, 11]], "group")
    # groups of three inboxes: (0, 1, 3) -> [0]; (4, 5, 6) -> [4, 6]; (7, 9, 11) dropped
    assert got == [[0], [4, 6]]


def test_produce_drops_every_item_of_a_dropped_evaluation():
    split = Piper(papy.item(lambda x: imap.DROP if x == 1 else (x, x)), produce=2,
                  name="split")
    got, stats = outputs([(split, Piper(papy.item(lambda x: x), name="out"))],
                         [range(3)], "out")
    assert got == [0, 0, 2, 2]
    assert stats["pipers"]["split"]["dropped"] == 2


def test_iterating_a_piper_leaves_dropped_items_out():
    p = Piper(papy.item(drop_odd_item))
    p.connect([range(6)])
    p.start()
    assert list(p) == [0, 2, 4]
    p.stop()
    p.disconnect()


# -- waits with a way out ----------------------------------------------------------------


def test_wait_before_run_raises_at_once():
    p = Plumber(pipes=[(Piper(inc, name="a"), Piper(inc, name="b"))])
    p.start([range(5)])
    with pytest.raises(PlumberError, match="before run"):
        p.wait()
    p.run()
    assert p.wait(60)
    p.stop()


def test_wait_while_paused_raises_once_the_pullers_stopped():
    p = Plumber(pipes=[(Piper(inc, name="a"), Piper(inc, name="b"))], keep=True)
    p.start([range(10**6)])
    p.run()
    p.pause()
    with pytest.raises(PlumberError, match="paused"):
        p.wait()
    p.stop(forced=True)


def test_logger_options_are_accepted_with_a_warning():
    with pytest.warns(DeprecationWarning, match="logger_options"):
        p = Plumber(logger_options={"level": 10})
    assert len(p) == 0


def test_no_warning_without_logger_options():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Plumber()
