"""``imap.DROP``: a function returns it and its item has no result.

Ordered output goes on with the next item, a chained task is not fed the
dropped item, its buffer slot is given back, ``status()`` counts it; the
sentinel crosses a process boundary as itself.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import cloudpickle
import pytest
import worker_funcs as wf
from hypothesis import given, settings
from hypothesis import strategies as st
from support import consume_round_robin

import imap


@dataclass(frozen=True)
class DropIf:
    """Drops ``x`` when ``x % modulus == rest``, else returns ``x + add``."""

    modulus: int
    rest: int
    add: int

    def __call__(self, x: int) -> object:
        return imap.DROP if x % self.modulus == self.rest else x + self.add


def serial(stages: list[DropIf], items: list[int]) -> list[int]:
    """The chain as a plain filter/compose, one item after the other."""
    out = []
    for x in items:
        for stage in stages:
            x = stage(x)
            if x is imap.DROP:
                break
        else:
            out.append(x)
    return out


def test_drop_pickles_to_the_same_object():
    assert pickle.loads(pickle.dumps(imap.DROP)) is imap.DROP
    assert pickle.loads(cloudpickle.dumps(imap.DROP)) is imap.DROP
    assert repr(imap.DROP) == "imap.DROP"


def test_ordered_output_goes_on_after_a_dropped_item():
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        out = m.add_task(DropIf(3, 0, 0), range(30))
        m.start()
        assert list(out) == [x for x in range(30) if x % 3]
        status = m.status()
    task = status.tasks[0]
    assert (task.done, task.dropped, task.consumed) == (30, 10, 20)
    assert task.finished


def test_every_item_dropped_ends_the_task():
    with imap.IMap(worker_type="thread", worker_num=2, stride=3, buffer=3) as m:
        out = m.add_task(DropIf(1, 0, 0), range(50))
        m.start()
        assert list(out) == []
        assert m.status().slots_used == 0


def test_a_dropped_item_gives_its_slot_back_at_once():
    # buffer=2: had a dropped item kept its slot, the third item could never
    # be drawn while nobody reads.
    with imap.IMap(worker_type="thread", worker_num=1, stride=1, buffer=2) as m:
        out = m.add_task(DropIf(2, 0, 0), range(20))
        m.start()
        assert list(out) == list(range(1, 20, 2))
        status = m.status()
    assert status.slots_used == 0
    assert status.high_water <= 2


def test_a_chained_task_is_not_fed_a_dropped_item():
    seen = []

    def record(x):
        seen.append(x)
        return x

    with imap.IMap(worker_type="thread", worker_num=2) as m:
        first = m.add_task(DropIf(4, 1, 100), range(40))
        second = m.add_task(record, first)
        m.start()
        got = list(second)
    assert got == [x + 100 for x in range(40) if x % 4 != 1]
    assert sorted(seen) == got


def test_process_workers_drop_by_returning_the_sentinel():
    with imap.IMap(worker_type="process", worker_num=2) as m:
        out = m.add_task(wf.drop_odd, range(25))
        m.start()
        assert list(out) == list(range(0, 25, 2))


def test_oneshot_imap_drops_too():
    assert list(imap.imap(DropIf(5, 0, 1), range(12), worker_type="thread")) == \
        [x + 1 for x in range(12) if x % 5]


@st.composite
def chains(draw):
    stages = st.builds(DropIf, modulus=st.integers(2, 6), rest=st.integers(0, 5),
                       add=st.integers(-3, 3))
    return (draw(st.lists(stages, min_size=1, max_size=3)),
            draw(st.lists(st.integers(-200, 200), max_size=40)))


@pytest.mark.timeout(300)
@settings(max_examples=150)
@given(workers=st.integers(1, 3), ordered=st.booleans(),
       stride=st.none() | st.integers(1, 4), extra=st.none() | st.integers(0, 6),
       chunksize=st.none() | st.integers(1, 3),
       chain_list=st.lists(chains(), min_size=1, max_size=3))
def test_thread_results_equal_the_serial_filter(workers, ordered, stride, extra,
                                                chunksize, chain_list):
    if len(chain_list) > 1:
        # several outputs read in turn: a fixed buffer can stall on a
        # stride whose items were all dropped (see doc/engine.rst, Dropping
        # items); the adaptive bound relieves that
        stride = extra = None
    buffer = None if extra is None else (stride or workers) + extra
    with imap.IMap(worker_type="thread", worker_num=workers, stride=stride, buffer=buffer,
                   chunksize=chunksize, ordered=ordered, stall_grace=20) as m:
        ends = []
        for stages, items in chain_list:
            upstream = items
            for stage in stages:
                upstream = m.add_task(stage, upstream)
            ends.append(upstream)
        m.start()
        results = consume_round_robin(ends, stride or 1, timeout=30)
        status = m.status()
    assert status.slots_used == 0
    assert all(t.finished for t in status.tasks)
    for (stages, items), got in zip(chain_list, results, strict=True):
        expected = serial(stages, items)
        assert (got == expected) if ordered else (sorted(got) == sorted(expected))
