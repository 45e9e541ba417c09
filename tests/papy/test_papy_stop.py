"""papy: a graceful stop of a running pipeline returns, keeps what was drawn,
and joins everything (the first-contact hang of two pipers on one IMap)."""

from __future__ import annotations

import threading

import pytest
from papy_funcs import inc, square, total
from support import wait_until

import imap
import papy.dagger
from papy import Dagger, Piper, Plumber

pytestmark = pytest.mark.timeout(120)

STOP_BOUND = 30.0   # seconds; a hang, not a slow machine, exceeds it


def shared(worker_type: str) -> tuple[list, Plumber]:
    pool = imap.IMap(worker_type=worker_type, worker_num=2)
    a = Piper(inc, parallel=pool, name="a")
    b = Piper(square, parallel=pool, name="b")
    return [pool], Plumber(pipes=[(a, b)], keep=True)


def one_each(worker_type: str) -> tuple[list, Plumber]:
    m1 = imap.IMap(worker_type=worker_type, worker_num=1)
    m2 = imap.IMap(worker_type=worker_type, worker_num=1)
    a = Piper(inc, parallel=m1, name="a")
    b = Piper(square, parallel=m2, name="b")
    return [m1, m2], Plumber(pipes=[(a, b)], keep=True)


def inline_second(worker_type: str) -> tuple[list, Plumber]:
    pool = imap.IMap(worker_type=worker_type, worker_num=2)
    a = Piper(inc, parallel=pool, name="a")
    b = Piper(square, name="b")
    return [pool], Plumber(pipes=[(a, b)], keep=True)


EXPECTED = [(x + 1) ** 2 for x in range(100_000)]


def stop_within(plumber: Dagger, bound: float, **options) -> None:
    """Call ``plumber.stop(**options)`` in a thread; fail if it does not return."""
    failure: list = []

    def stop() -> None:
        try:
            plumber.stop(**options)
        except BaseException as exc:   # reported below
            failure.append(exc)

    stopper = threading.Thread(target=stop, name="test-stopper")
    stopper.start()
    stopper.join(bound)
    if stopper.is_alive():
        plumber.stop(forced=True)   # best effort, so the report is about the hang
        stopper.join(10)
        pytest.fail(f"stop({options}) did not return within {bound} s")
    assert not failure, failure


@pytest.mark.parametrize("worker_type,rounds", [("thread", 4), ("process", 2)])
@pytest.mark.parametrize("shape", [shared, one_each, inline_second])
def test_graceful_stop_mid_run_returns_and_keeps_a_prefix(shape, worker_type, rounds) -> None:
    imaps, plumber = shape(worker_type)
    for round_ in range(rounds):
        paused = round_ % 2 == 1   # every other round: pause() first, then stop()
        plumber.start([range(100_000)])
        plumber.run()
        wait_until(lambda: len(plumber.results["b"]) >= 20, 30, "some results")
        if paused:
            plumber.pause()
        stop_within(plumber, STOP_BOUND)
        out = plumber.results["b"]
        assert 20 <= len(out) < len(EXPECTED)
        assert out == EXPECTED[:len(out)], "not a prefix of the expected outputs"
        # nothing drawn is lost: every inbox drawn at the input reached the output
        assert plumber.stats["pipers"]["a"]["in"] == len(out)
        assert not any(m.running for m in imaps)


def test_graceful_stop_of_a_dagger_without_a_reader_returns() -> None:
    # No puller: stop() itself drains the outputs of the items already drawn.
    pool = imap.IMap(worker_type="thread", worker_num=2)
    a = Piper(inc, parallel=pool, name="a")
    b = Piper(square, parallel=pool, name="b")
    d = Dagger(pipes=[(a, b)])
    d.connect([range(100_000)])
    d.start()
    first = [next(iter(b)) for _ in range(5)]
    stop_within(d, STOP_BOUND)
    assert first == EXPECTED[:5] and not pool.running
    d.disconnect()


def test_graceful_stop_ends_inputs_on_whole_consume_groups() -> None:
    # b sums pairs: an input ended after an odd number of items would give b a
    # group cut short, and its last output would not be a sum of a pair.
    for _ in range(5):
        pool = imap.IMap(worker_type="thread", worker_num=2, stride=3)
        a = Piper(inc, parallel=pool, name="a")
        b = Piper(total, consume=2, name="b")
        p = Plumber(pipes=[(a, b)], keep=True)
        p.start([range(100_000)])
        p.run()
        wait_until(lambda p=p: len(p.results["b"]) >= 3, 30, "some results")
        stop_within(p, STOP_BOUND)
        out = p.results["b"]
        assert out == [4 * i + 3 for i in range(len(out))]


def test_graceful_stop_with_a_blocked_input_is_forced_after_the_grace(
        monkeypatch, caplog) -> None:
    monkeypatch.setattr(papy.dagger, "INPUT_GRACE", 0.2)
    release = threading.Event()

    def stuck():
        yield from range(5)
        release.wait(60)

    pool = imap.IMap(worker_type="thread", worker_num=1)
    p = Plumber(pipes=[(Piper(inc, parallel=pool, name="a"), Piper(square, name="b"))],
                keep=True)
    p.start([stuck()])
    p.run()
    wait_until(lambda: len(p.results["b"]) == 5, 30, "the first five results")
    try:
        stop_within(p, STOP_BOUND)
    finally:
        release.set()   # the feeder left inside the input may now end
    assert p.results["b"] == EXPECTED[:5]
    assert any("blocked" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


def test_forced_stop_of_pipers_chained_by_hand_on_one_imap_returns() -> None:
    # The documented way out for pipers wired without a Dagger: their IMap's
    # graceful drain cannot see that b reads a.
    pool = imap.IMap(worker_type="thread", worker_num=2)
    a = Piper(inc, parallel=pool, name="a")
    b = Piper(square, parallel=pool, name="b")
    a.connect([range(100_000)])
    b.connect([a])
    a.start()
    b.start()
    out = iter(b)
    first = [next(out) for _ in range(20)]
    stop_within(b, STOP_BOUND, forced=True)
    assert first == EXPECTED[:20] and not pool.running
    a.disconnect()
    b.disconnect()
