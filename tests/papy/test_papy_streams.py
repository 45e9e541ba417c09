"""papy.streams: Tee (bounded, blocking lag), Split, Relay, Tap."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import wait_until

from papy import PiperError
from papy.streams import Relay, Split, Tap, Tee

pytestmark = pytest.mark.timeout(60)


class Watched:
    """An iterator over range(n) that records the most items a queue held."""

    def __init__(self, n: int) -> None:
        self.it = iter(range(n))
        self.queues: list = []
        self.most = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.most = max([self.most, *map(len, self.queues)])
        return next(self.it)


@settings(max_examples=60)
@given(n=st.integers(0, 200), maxlag=st.integers(1, 8), readers=st.integers(2, 4))
def test_tee_gives_every_branch_everything_in_order_within_the_lag(n, maxlag, readers):
    source = Watched(n)
    tee = Tee(source, readers, maxlag, "src")
    source.queues = tee.queues
    got = [[] for _ in range(readers)]

    def read(i: int, branch) -> None:
        for item in branch:
            got[i].append(item)

    threads = [threading.Thread(target=read, args=(i, b))
               for i, b in enumerate(tee.branches())]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == [list(range(n))] * readers
    assert source.most <= maxlag


def test_tee_passes_an_error_of_its_source_to_the_reader_that_fetched() -> None:
    def broken():
        yield 1
        raise ValueError("source broke")

    left, right = Tee(broken(), 2).branches()
    assert next(left) == 1 and next(right) == 1
    with pytest.raises(ValueError, match="source broke"):
        next(left)


@settings(max_examples=40)
@given(n=st.integers(0, 100), parts=st.integers(1, 4))
def test_split_deals_round_robin(n, parts):
    split = Split(range(n), parts)
    readers = split.parts()
    got = [[] for _ in range(parts)]
    # read in turn, as the feeder of one IMap does (a part may end first)
    live = list(range(parts))
    while live:
        for i in list(live):
            try:
                got[i].append(next(readers[i]))
            except StopIteration:
                live.remove(i)
    assert got == [list(range(n))[i::parts] for i in range(parts)]


@settings(max_examples=40)
@given(n=st.integers(0, 300), maxlen=st.integers(1, 16))
def test_relay_keeps_order_and_its_bound(n, maxlen):
    source = Watched(n)
    relay = Relay(source, maxlen, "r")
    source.queues = [relay.queue]
    relay.start()
    assert list(relay) == list(range(n))
    assert relay.join(10)
    assert source.most <= maxlen


def test_relay_raises_the_source_error_in_place_then_ends() -> None:
    def broken():
        yield 1
        raise PiperError("piper failed")

    relay = Relay(broken(), 4)
    relay.start()
    assert next(relay) == 1
    with pytest.raises(PiperError, match="piper failed"):
        next(relay)
    with pytest.raises(StopIteration):
        next(relay)
    assert relay.join(10)


def test_relay_close_stops_a_full_relay() -> None:
    relay = Relay(iter(range(1000)), 3, "full")
    relay.start()
    wait_until(lambda: len(relay.queue) == 3, 10)
    relay.close()
    assert relay.join(10)
    assert list(relay) == [0, 1, 2]     # what it held is still read, then the end


def test_tap_passes_its_source_through_and_counts_it() -> None:
    tap = Tap(range(5), multiple=2)
    assert list(tap) == [0, 1, 2, 3, 4] and tap.drawn == 5


def test_closed_tap_ends_at_the_next_multiple_of_items_drawn() -> None:
    tap = Tap(range(100), multiple=3)
    assert [next(tap) for _ in range(4)] == [0, 1, 2, 3]
    tap.close()
    assert list(tap) == [4, 5] and tap.drawn == 6


def test_tap_closed_before_any_item_gives_none() -> None:
    tap = Tap(range(10), multiple=4)
    tap.close()
    assert list(tap) == []


def pausing(inside: threading.Event, release: threading.Event, tail: tuple):
    """Yield 0, then say so on ``inside`` and wait for ``release``, then ``tail``."""
    yield 0
    inside.set()
    release.wait(30)
    yield from tail


def test_tap_keeps_the_item_whose_next_was_under_way_when_it_closed() -> None:
    inside, release = threading.Event(), threading.Event()
    tap = Tap(pausing(inside, release, (1, 2)))
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(tap))
    reader.start()
    inside.wait(30)
    tap.close()
    release.set()
    reader.join(30)
    assert got == [0, 1]


def test_tap_blocked_for_times_the_next_under_way_only() -> None:
    inside, release = threading.Event(), threading.Event()
    tap = Tap(pausing(inside, release, (1,)))
    assert next(tap) == 0 and tap.blocked_for() == 0.0   # nothing under way
    reader = threading.Thread(target=lambda: next(tap))
    reader.start()
    inside.wait(30)
    wait_until(lambda: tap.blocked_for() > 0, 30, "the blocked next() to be timed")
    release.set()
    reader.join(30)
    assert tap.blocked_for() == 0.0 and tap.drawn == 2
