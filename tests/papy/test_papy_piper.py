"""papy.Piper: inline and on IMaps, and the effect of each option."""

from __future__ import annotations

import threading

import pytest
from papy_funcs import add, dbl, divmod_, fail_on_3, identity, inc, pair, slow_on_2
from support import run_piper as run

import imap
from papy import Piper, PiperError, Worker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pool():
    m = imap.IMap(worker_type="thread", worker_num=2)
    yield m
    m.stop(forced=True)


def test_inline_piper_is_lazy() -> None:
    calls = []
    p = Piper(Worker(lambda inbox: calls.append(inbox[0]) or inbox[0]))
    p.connect([range(5)])
    assert calls == []
    assert next(iter(p)) == 0 and calls == [0]


def test_inline_piper_results() -> None:
    assert run(Piper(inc), range(5)) == [1, 2, 3, 4, 5]


def test_piper_on_thread_imap(pool) -> None:
    assert run(Piper(Worker((inc, dbl)), parallel=pool), range(6)) == [2, 4, 6, 8, 10, 12]


def test_piper_on_process_imap() -> None:
    with imap.IMap(worker_type="process", worker_num=2) as m:
        assert run(Piper(Worker((inc, dbl)), parallel=m), range(6)) == [2, 4, 6, 8, 10, 12]


def test_two_inputs_make_the_inbox_tuple() -> None:
    p = Piper(pair)
    p.connect([range(3), "abc"])
    assert list(p) == [(0, "a"), (1, "b"), (2, "c")]


def test_worker_error_becomes_piper_error_in_place(pool) -> None:
    for parallel in (False, pool):
        out = run(Piper(fail_on_3, parallel=parallel, name="f"), range(5))
        assert len(out) == 5 and out[:3] == [0, 1, 2] and out[4] == 4
        assert isinstance(out[3], PiperError) and out[3].piper == "f"
        assert out[3].error.function == "fail_on_3"


def test_piper_error_passes_downstream_without_running() -> None:
    a = Piper(fail_on_3, name="a")
    b = Piper(inc, name="b")
    a.connect([range(5)])
    b.connect([a])
    out = list(b)
    assert out[:3] == [1, 2, 3] and out[4] == 5 and out[3].piper == "a"
    assert b.stats["errors"] == 1


def test_debug_raises_instead(pool) -> None:
    for parallel in (False, pool):
        p = Piper(fail_on_3, parallel=parallel, debug=True)
        p.connect([range(5)])
        p.start()
        it = iter(p)
        assert [next(it) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(PiperError, match="three is bad"):
            next(it)
        p.stop()


def test_consume_hands_the_function_a_list_of_n_inboxes() -> None:
    assert run(Piper(pair, consume=2), range(5)) == [([0], [1]), ([2], [3]), ([4],)]


def test_consume_with_two_inputs_gives_inboxes_of_both() -> None:
    p = Piper(pair, consume=2)
    p.connect([range(4), "abcd"])
    assert list(p) == [([0, "a"], [1, "b"]), ([2, "c"], [3, "d"])]


def test_consume_inboxes_unpack_as_in_papy1() -> None:
    def nimm2(inbox):
        left_box, right_box = inbox
        return left_box[0] + " " + right_box[0]
    assert run(Piper(nimm2, consume=2), ["hello", "world", "hi", "folks"]) == [
        "hello world", "hi folks"]


def test_consume_group_holding_an_error_is_passed_on() -> None:
    a = Piper(fail_on_3, name="a")
    b = Piper(pair, consume=2, name="b")
    a.connect([range(6)])
    b.connect([a])
    out = list(b)
    assert out[0] == ([0], [1]) and out[2] == ([4], [5])
    assert isinstance(out[1], PiperError) and out[1].piper == "a"


def test_produce_splits_a_result(pool) -> None:
    for parallel in (False, pool):
        assert run(Piper(divmod_, parallel=parallel, produce=2), [7, 5]) == [2, 1, 1, 2]


def test_produce_with_wrong_length_gives_errors_in_place() -> None:
    out = run(Piper(identity, produce=2), [(1, 2, 3)])
    assert len(out) == 2 and all(isinstance(x, PiperError) for x in out)


def test_repeat_repeats_the_result() -> None:
    assert run(Piper(inc, produce=3, repeat=True), [1, 2]) == [2, 2, 2, 3, 3, 3]


def test_spawn_makes_interleaved_tasks_in_order(pool) -> None:
    p = Piper(inc, parallel=pool, spawn=3)
    p.connect([range(20)])
    assert pool.task_count == 3
    p.start()
    assert list(p) == list(range(1, 21))
    p.stop()


def test_spawn_inline_is_plain_evaluation() -> None:
    assert run(Piper(inc, spawn=3), range(7)) == list(range(1, 8))


def test_timeout_gives_piper_error_in_place_and_keeps_count() -> None:
    release = threading.Event()
    m = imap.IMap(worker_type="thread", worker_num=2, skip=True)
    try:
        p = Piper(Worker(slow_on_2, kwargs=[{"event": release}]), parallel=m,
                  timeout=0.2, name="slow")
        p.connect([range(5)])
        p.start()
        out = list(p)
    finally:
        release.set()
        m.stop()
    assert out[:2] == [0, 1] and out[3:] == [3, 4]
    assert isinstance(out[2], PiperError) and isinstance(out[2].error, TimeoutError)


def test_timeout_needs_skip_imap(pool) -> None:
    with pytest.raises(PiperError, match="skip=True"):
        Piper(inc, parallel=pool, timeout=1)
    with pytest.raises(PiperError, match="IMap"):
        Piper(inc, timeout=1)


def test_track_keeps_results(pool) -> None:
    p = Piper(inc, parallel=pool, track=True)
    run(p, range(4))
    assert p.tracked == [1, 2, 3, 4]
    q = Piper(inc)
    run(q, range(4))
    assert q.tracked == []


def test_name_labels_errors_and_default_name() -> None:
    assert Piper(inc, name="first").name == "first"
    assert Piper(inc).name.startswith("inc_")


def test_stats_count_in_out_errors() -> None:
    p = Piper(fail_on_3, produce=2, repeat=True)
    run(p, range(5))
    assert p.stats == {"in": 5, "out": 10, "errors": 1}


def test_connect_twice_is_an_error() -> None:
    p = Piper(inc)
    p.connect([range(3)])
    with pytest.raises(PiperError, match="already connected"):
        p.connect([range(3)])


def test_connect_on_started_imap_is_an_error(pool) -> None:
    a = Piper(inc, parallel=pool)
    a.connect([range(3)])
    a.start()
    with pytest.raises(PiperError, match="already started"):
        Piper(inc, parallel=pool).connect([range(3)])
    list(a)


def test_bad_options_are_errors() -> None:
    with pytest.raises(PiperError, match="consume"):
        Piper(inc, consume=0)
    with pytest.raises(PiperError, match="parallel"):
        Piper(inc, parallel=True)


def test_several_pipers_share_one_imap(pool) -> None:
    a = Piper(inc, parallel=pool)
    b = Piper(dbl, parallel=pool)
    c = Piper(add, parallel=pool)
    a.connect([range(10)])
    left, right = a.branch_out(2)
    b.connect([left])
    c.connect([right, b])
    for piper in (a, b, c):
        piper.start()
    assert list(c) == [3 * (x + 1) for x in range(10)]


def test_worker_error_from_a_process_arrives_in_place() -> None:
    with imap.IMap(worker_type="process", worker_num=2) as m:
        out = run(Piper(Worker((inc, fail_on_3)), parallel=m, name="p"), range(5))
    assert out[:2] == [1, 2] and out[3:] == [4, 5]
    assert isinstance(out[2], PiperError) and out[2].error.function == "fail_on_3"
    assert "three is bad" in out[2].error.traceback


def test_unpicklable_result_becomes_piper_error_in_place() -> None:
    with imap.IMap(worker_type="process", worker_num=1) as m:
        out = run(Piper(Worker((identity, lambda inbox: threading.Lock() if inbox[0] == 1
                                else inbox[0])), parallel=m), range(3))
    assert out[0] == 0 and out[2] == 2 and isinstance(out[1], PiperError)
