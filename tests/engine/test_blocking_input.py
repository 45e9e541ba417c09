"""An input iterator that blocks until earlier results are taken.

Items already drawn must reach the workers while the Feeder waits inside the
input's ``next()``; otherwise an input that depends on the IMap's own
results (as a pipeline that branches across two IMaps can) never advances.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import imap


def waits_for_results(taken: threading.Condition, counter: list, n: int):
    """Yield 0..n-1; item i (for i >= 2) only once result i-2 was taken."""
    for i in range(n):
        with taken:
            if not taken.wait_for(lambda i=i: counter[0] >= i - 1, timeout=10):
                raise AssertionError(f"result {i - 2} never came: drawn items were held back")
        yield i


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("settings_", [{"stride": 8, "chunksize": 8}, {}],
                         ids=["stride8", "adaptive"])
def test_items_drawn_before_a_blocking_next_are_sent(worker_type, settings_):
    taken = threading.Condition()
    counter = [0]
    n = 20 if settings_ else 300
    with imap.IMap(worker_type=worker_type, worker_num=2, **settings_) as m:
        task = m.add_task(abs, waits_for_results(taken, counter, n))
        m.start()
        results = []
        for value in task:
            results.append(value)
            with taken:
                counter[0] += 1
                taken.notify_all()
    assert results == list(range(n))


def bursts(rng, n: int):
    """Yield 0..n-1 with pauses of a few flush periods now and then."""
    import time

    for i in range(n):
        if rng.random() < 0.05:
            time.sleep(rng.choice([0.001, 0.008, 0.02]))
        yield i


@pytest.mark.timeout(120)
@settings(max_examples=25)
@given(seed=st.integers(0, 2**16), n=st.integers(0, 400),
       worker_type=st.sampled_from(["thread", "process"]),
       stride=st.sampled_from([None, 1, 7, 64]))
def test_a_generator_with_pauses_gives_every_item_once_in_order(seed, n, worker_type, stride):
    import random

    with imap.IMap(worker_type=worker_type, worker_num=2, stride=stride) as m:
        task = m.add_task(abs, bursts(random.Random(seed), n))
        m.start()
        assert list(task) == list(range(n))
