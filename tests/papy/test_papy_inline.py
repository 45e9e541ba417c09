"""papy: the common inline piper (one input, consume=1, produce=1, no track or
debug) has a fast path of its own; it hands on what the general path does."""

from __future__ import annotations

import logging
from collections import namedtuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from papy_funcs import fail_on_3, inc

from papy import Piper, PiperError, Worker
from papy.errors import WorkerError
from papy.piper import SAMPLE_EVERY

pytestmark = pytest.mark.timeout(60)

Point = namedtuple("Point", "x y")
UPSTREAM = PiperError("piper 'up' failed", WorkerError(ValueError("up"), "f"), "up")
LOOSE = WorkerError(KeyError("k"), "g")   # an error value not wrapped by a piper


def picky(inbox):
    """Fails on ints divisible by 3; hands back a WorkerError for "w" (a value)."""
    item = inbox[0]
    if type(item) is int and item % 3 == 0:
        raise ValueError(f"{item} is bad")
    if item == "w":
        return LOOSE
    return repr(item)


def suffix(inbox, text):
    return inbox[0] + text


ITEMS = st.one_of(
    st.integers(-10, 10), st.text("abw", max_size=2), st.none(), st.floats(0, 1),
    st.just(UPSTREAM), st.just(LOOSE), st.lists(st.integers(0, 3), max_size=2),
    st.tuples(st.integers(), st.sampled_from([1, UPSTREAM])),
    st.builds(Point, st.integers(), st.sampled_from([2, LOOSE])))
WORKERS = [Worker(picky), Worker((picky, suffix), arguments=[(), ("!",)])]


def evaluate(piper: Piper, source) -> tuple[list, dict, object]:
    piper.connect([source])
    try:
        return list(piper), dict(piper.stats), piper.first_error
    finally:
        piper.disconnect()


def general(worker: Worker) -> Piper:
    """A piper evaluated by the general path (track=True takes it)."""
    return Piper(worker, name="p", track=True)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(ITEMS, max_size=40), which=st.sampled_from([0, 1]))
def test_common_inline_piper_gives_what_the_general_path_gives(items, which) -> None:
    # up to 40 items: the fast path times the first of every SAMPLE_EVERY
    # items (a path of its own) and runs the others untimed
    fast = Piper(WORKERS[which], name="p")
    assert evaluate(fast, items) == evaluate(general(WORKERS[which]), items)
    assert fast.sampled[1] == -(-len(items) // SAMPLE_EVERY)


BROKEN = OSError("the input broke")   # one instance: exceptions compare by identity


def failing_input(n=4):
    yield from range(n)
    raise BROKEN


@pytest.mark.parametrize("worker", WORKERS, ids=["one function", "two functions"])
def test_a_failed_input_ends_the_common_piper_with_an_error_item(worker) -> None:
    out, stats, first = evaluate(Piper(worker, name="p"), failing_input())
    assert (out, stats, first) == evaluate(general(worker), failing_input())
    assert len(out) == 5 and isinstance(out[-1], PiperError)
    assert out[-1].error is BROKEN and out[-1].piper == "p"
    assert stats == {"in": 4, "out": 5, "errors": 3}   # 0 and 3 fail, and the input


@pytest.mark.parametrize("n", [0, 1, SAMPLE_EVERY - 1, SAMPLE_EVERY, SAMPLE_EVERY + 1])
def test_an_input_failing_at_a_sampling_boundary_is_the_last_item(n) -> None:
    out, stats, first = evaluate(Piper(inc, name="p"), failing_input(n))
    assert out[:-1] == list(range(1, n + 1)) and out[-1].error is BROKEN
    assert stats == {"in": n, "out": n + 1, "errors": 1}


def test_common_piper_lets_an_upstream_raise_through() -> None:
    a = Piper(fail_on_3, debug=True, name="a")
    b = Piper(inc, name="b")
    a.connect([range(6)])
    b.connect([a])
    out = iter(b)
    assert [next(out) for _ in range(3)] == [1, 2, 3]
    with pytest.raises(PiperError, match="three is bad"):
        next(out)


def test_common_piper_logs_only_the_first_error_arising_in_it(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="papy")
    out, stats, first = evaluate(Piper(picky, name="p"), [1, UPSTREAM, 3, 6, "w"])
    assert stats == {"in": 5, "out": 5, "errors": 4}
    assert first is out[2] and out[1] is UPSTREAM
    assert out[4].piper == "p" and out[4].error is LOOSE
    logged = [r for r in caplog.records if "first failed item" in r.getMessage()]
    assert len(logged) == 1 and "3 is bad" in logged[0].getMessage()


def test_single_is_the_function_of_a_worker_without_extra_arguments() -> None:
    assert Worker(inc).single is inc
    assert Worker(inc, arguments=[(2,)]).single is None
    assert Worker(inc, kwargs={"n": 2}).single is None
    assert Worker((inc, inc)).single is None
    assert Worker(Worker(inc)).single is inc
