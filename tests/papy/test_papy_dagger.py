"""papy.Dagger: building the graph, misuse, deterministic order, running."""

from __future__ import annotations

import threading

import pytest
from papy_funcs import add, dbl, inc, neg, pair, total
from support import wait_until

import imap
from papy import Dagger, DaggerError, Piper, PiperError

pytestmark = pytest.mark.timeout(60)


def test_add_pipers_adds_a_chain() -> None:
    a, b, c = Piper(inc), Piper(dbl), Piper(neg)
    d = Dagger()
    d.add_pipers([a, b, c])
    assert d.pipers == [a, b, c]
    assert d.graph.edges() == [(a, b), (b, c)]
    assert d.get_inputs() == [a] and d.get_outputs() == [c]


def test_init_takes_pipers_and_pipes() -> None:
    a, b = Piper(inc), Piper(dbl)
    d = Dagger(pipers=[a], pipes=[(a, b)])
    assert d.pipers == [a, b] and d.upstream(b) == [a]


def test_double_insertion_is_an_error() -> None:
    a = Piper(inc)
    d = Dagger([a])
    with pytest.raises(DaggerError, match="already in this Dagger"):
        d.add_piper(a)
    with pytest.raises(DaggerError, match="named"):
        d.add_piper(Piper(dbl, name=a.name))


def test_double_pipe_is_an_error() -> None:
    a, b = Piper(inc), Piper(dbl)
    d = Dagger(pipes=[(a, b)])
    with pytest.raises(DaggerError, match="already in this Dagger"):
        d.add_pipe((a, b))


def test_cycle_is_an_error_and_changes_nothing() -> None:
    a, b, c = Piper(inc), Piper(dbl), Piper(neg)
    d = Dagger(pipes=[(a, b, c)])
    with pytest.raises(DaggerError, match="cycle"):
        d.add_pipe((c, a))
    with pytest.raises(DaggerError, match="cycle"):
        d.add_pipe((a, a))
    assert d.graph.edges() == [(a, b), (b, c)]


def test_resolve_by_piper_id_or_name() -> None:
    a = Piper(inc, name="a")
    d = Dagger([a])
    assert d.resolve(a) is a and d.resolve(id(a)) is a and d.resolve("a") is a
    with pytest.raises(DaggerError, match="no piper"):
        d.resolve("b")


def test_del_piper_with_pipes_needs_forced() -> None:
    a, b = Piper(inc), Piper(dbl)
    d = Dagger(pipes=[(a, b)])
    with pytest.raises(DaggerError, match="forced"):
        d.del_piper(a)
    d.del_piper(a, forced=True)
    assert d.pipers == [b] and d.graph.edges() == []


def test_del_pipe() -> None:
    a, b = Piper(inc), Piper(dbl)
    d = Dagger(pipes=[(a, b)])
    d.del_pipe((a, b))
    assert d.graph.edges() == []
    with pytest.raises(DaggerError, match="no pipe"):
        d.del_pipe((a, b))


def test_callables_become_pipers_with_xtras() -> None:
    d = Dagger(xtras={"produce": 2, "repeat": True})
    p = d.add_piper(inc)
    assert isinstance(p, Piper) and p.produce == 2


def test_inputs_outputs_and_merge_ordered_by_branch_then_insertion() -> None:
    a = Piper(inc, name="a", branch=2)
    b = Piper(neg, name="b", branch=1)
    c = Piper(pair, name="c")
    d = Dagger(pipes=[(a, c), (b, c)])
    assert d.get_inputs() == [b, a]
    assert d.upstream(c) == [b, a]
    d.connect([range(3), range(10, 13)])   # b gets range(3), a gets range(10, 13)
    assert list(c) == [(0, 11), (-1, 12), (-2, 13)]


def test_merge_order_without_branch_is_insertion_order() -> None:
    a, b, c = Piper(inc, name="a"), Piper(neg, name="b"), Piper(pair, name="c")
    d = Dagger([b, a, c], pipes=[(a, c), (b, c)])
    d.connect([range(3), range(3)])
    assert list(c) == [(0, 1), (-1, 2), (-2, 3)]


def test_branching_gives_every_item_to_each_branch() -> None:
    src, left, right = Piper(inc), Piper(dbl), Piper(neg)
    d = Dagger(pipes=[(src, left), (src, right)])
    d.connect([range(5)])
    assert list(left) == [2, 4, 6, 8, 10]
    assert list(right) == [-1, -2, -3, -4, -5]


def test_branch_lag_read_by_one_thread_is_an_error() -> None:
    src, left, right = Piper(inc), Piper(dbl), Piper(neg)
    src.branch_lag = 3
    d = Dagger(pipes=[(src, left), (src, right)])
    d.connect([range(10)])
    it, other = iter(left), iter(right)
    assert next(other) == -1            # this thread reads both branches
    assert [next(it) for _ in range(4)] == [2, 4, 6, 8]
    with pytest.raises(PiperError, match="maxlag=3.*wait forever"):
        next(it)


def test_branch_lag_blocks_the_leader_until_the_other_branch_reads() -> None:
    src, left, right = Piper(inc), Piper(dbl), Piper(neg)
    src.branch_lag = 3
    d = Dagger(pipes=[(src, left), (src, right)])
    d.connect([range(10)])
    got: list = []
    def lead() -> None:
        for value in left:
            got.append(value)

    leader = threading.Thread(target=lead)
    leader.start()
    # the leader takes 3 items, then waits for the other branch (it may not run ahead)
    wait_until(lambda: len(got) == 3, 10)
    assert len(src._branches[1].shared.queues[1]) == 3
    assert leader.is_alive()
    assert list(right) == [-(x + 1) for x in range(10)]
    leader.join(10)
    assert got == [2 * (x + 1) for x in range(10)]


def test_connect_start_stop_on_imaps() -> None:
    m1 = imap.IMap(worker_type="thread", worker_num=2)
    m2 = imap.IMap(worker_type="thread", worker_num=1, stride=3)
    a, b, c = Piper(inc, parallel=m1), Piper(dbl, parallel=m2), Piper(add, parallel=m2)
    d = Dagger(pipes=[(a, b, c), (a, c)])
    try:
        d.connect([range(10)])
        assert d.imaps == [m1, m2]
        d.start()
        assert list(c) == [3 * (x + 1) for x in range(10)]
    finally:
        d.stop()
    d.disconnect()
    assert not a.connected


def test_connecting_a_connected_piper_is_an_error() -> None:
    a, b = Piper(inc), Piper(dbl)
    d = Dagger(pipes=[(a, b)])
    d.connect([range(3)])
    with pytest.raises(DaggerError, match="already connected"):
        d.connect([range(3)])
    with pytest.raises(DaggerError, match="connected"):
        d.add_pipe((b, Piper(neg)))


def test_wrong_number_of_inputs_is_an_error() -> None:
    d = Dagger(pipes=[(Piper(inc), Piper(dbl))])
    with pytest.raises(DaggerError, match="1 input pipers"):
        d.connect([range(3), range(3)])


def test_mismatched_rates_on_one_imap_are_an_error() -> None:
    m = imap.IMap(worker_type="thread", worker_num=1)
    d = Dagger(pipes=[(Piper(inc, parallel=m), Piper(dbl, parallel=m, consume=2))])
    with pytest.raises(DaggerError, match="share the IMap"):
        d.connect([range(3)])
    assert m.task_count == 0


def test_postorder_puts_outputs_first() -> None:
    a, b, c = Piper(inc), Piper(dbl), Piper(neg)
    d = Dagger(pipes=[(a, b, c)])
    assert d.postorder() == [c, b, a]


def test_imaps_feeding_each_other_in_a_cycle_are_an_error() -> None:
    m1 = imap.IMap(worker_type="thread", worker_num=1)
    m2 = imap.IMap(worker_type="thread", worker_num=1)
    d = Dagger(pipes=[(Piper(inc, parallel=m1), Piper(dbl, parallel=m2), Piper(neg),
                       Piper(inc, parallel=m1))])
    with pytest.raises(DaggerError, match="cycle"):
        d.connect([range(3)])


def test_diamond_across_two_imaps_keeps_item_count() -> None:
    # The fork runs on IMap m1, which also runs the right branch; the left branch
    # and the merge run on m0, whose stride (3) is larger than m1's buffer (2).
    # m1's results drawn by m0's feeder go through a relay, so m1's buffer never
    # waits for m0's merge turn (without it this pipeline stalls).
    m0 = imap.IMap(worker_type="thread", worker_num=1, stride=3, buffer=6)
    m1 = imap.IMap(worker_type="thread", worker_num=1, stride=1, buffer=2)
    src = Piper(inc, parallel=m1, name="src")
    left = [Piper(inc, name="l1"), Piper(inc, name="l2"), Piper(inc, parallel=m0, name="l3")]
    right = [Piper(inc, name="r1"), Piper(inc, name="r2"), Piper(inc, parallel=m1, name="r3")]
    merge = Piper(add, parallel=m0, name="merge")
    d = Dagger(pipes=[(src, *left, merge), (src, *right, merge)])
    try:
        d.connect([range(20)])
        assert {p.name for p in d.pipers if p._relay is not None} == {"src", "r3"}
        d.start()
        assert list(merge) == [2 * (x + 4) for x in range(20)]
    finally:
        d.stop()
        d.disconnect()
    assert [p for p in d.pipers if p._relay is not None] == []


def test_relay_is_only_where_another_imap_or_a_merge_draws() -> None:
    m0 = imap.IMap(worker_type="thread", worker_num=1)
    m1 = imap.IMap(worker_type="thread", worker_num=1)
    a, b = Piper(inc, parallel=m0, name="a"), Piper(dbl, parallel=m0, name="b")
    c, e = Piper(neg, parallel=m1, name="c"), Piper(inc, name="e")
    d = Dagger(pipes=[(a, b, c, e)])   # a -> b share m0; c on m1 draws b; e is the output
    d.connect([range(5)])
    try:
        assert {p.name for p in d.pipers if p._relay is not None} == {"b", "c"}
        d.start()
        assert list(e) == [-2 * (x + 1) + 1 for x in range(5)]
    finally:
        d.stop()
        d.disconnect()


def test_stalled_imap_is_waited_on_not_turned_into_an_item(caplog) -> None:
    # Two input pipers share an IMap whose buffer the results of q fill while a
    # thread waits on p: the engine reports a stall; the piper waits on (another
    # thread takes q's results) instead of passing an extra error downstream.
    m = imap.IMap(worker_type="thread", worker_num=1, stride=1, buffer=2, stall_grace=0.05)
    p, q = Piper(inc, parallel=m, name="p"), Piper(dbl, parallel=m, name="q")
    d = Dagger(pipers=[p, q])
    d.connect([range(10), range(10)])
    got: list = []

    def pull() -> None:
        got.extend(p)

    caplog.set_level("DEBUG", logger="papy")
    d.start()
    puller = threading.Thread(target=pull)
    try:
        puller.start()
        wait_until(lambda: any("stalled" in r.getMessage() for r in caplog.records), 20)
        assert list(q) == [2 * x for x in range(10)]
        puller.join(20)
        assert got == [x + 1 for x in range(10)]
    finally:
        d.stop()
        d.disconnect()


def test_stop_wakes_a_feeder_waiting_for_a_lagging_branch() -> None:
    # IMap m's feeder draws branch "a" and runs ahead of branch "b", which nobody
    # reads, until it waits for "b"; stop() ends the branches, so it returns
    # and no thread is left waiting.
    m = imap.IMap(worker_type="thread", worker_num=1, stride=1)
    src, a, b = Piper(inc, name="src"), Piper(dbl, parallel=m, name="a"), Piper(neg, name="b")
    src.branch_lag = 2
    d = Dagger(pipes=[(src, a), (src, b)])
    d.connect([range(100)])
    d.start()
    got: list = []

    def read() -> None:
        for value in a:
            got.append(value)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_until(lambda: len(src._branches[0].shared.queues[1]) == 2 and len(got) == 2, 10)
        assert got == [2, 4]
    finally:
        d.stop()
    reader.join(10)
    assert not reader.is_alive() and got == [2, 4]
    d.disconnect()


def test_merge_of_branches_with_different_rates_is_refused() -> None:
    src = Piper(inc, name="src")
    twice = Piper(inc, produce=2, repeat=True, name="twice")
    once = Piper(dbl, name="once")
    d = Dagger(pipes=[(src, twice, Piper(add, name="m")), (src, once, "m")])
    with pytest.raises(DaggerError, match=r"'m' merges 'twice' \(2 items per item of 'src'\)"
                                          r" and 'once' \(1 per"):
        d.connect([range(4)])
    assert not any(p.connected for p in d.pipers)
    # balanced again further down: a consume=2 piper after the produce=2 one
    d2 = Dagger(pipes=[(src2 := Piper(inc, name="s2"), Piper(inc, produce=2, repeat=True,
                                                            name="t2"),
                        Piper(total, consume=2, name="back"), Piper(add, name="m2")),
                       (src2, Piper(dbl, name="o2"), "m2")])
    d2.connect([range(4)])
    assert list(d2.resolve("m2")) == [2 * (x + 2) + 2 * (x + 1) for x in range(4)]
