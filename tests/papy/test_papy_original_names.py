"""The public names of PaPy 1.x keep their meaning here (doc/migrating.rst)."""

from __future__ import annotations

import pytest
from papy_funcs import add, dbl, inc, pair

import imap
from imap import imports
from papy import Dagger, DaggerError, Piper, Plumber, Worker

pytestmark = pytest.mark.timeout(60)


def test_calling_a_piper_connects_it_and_returns_it() -> None:
    p = Piper(inc)
    assert p([range(3)]) is p
    assert p.connected and list(p) == [1, 2, 3]


def test_calling_a_piper_with_an_upstream_piper_chains_them() -> None:
    a, b = Piper(inc), Piper(dbl)
    a([range(3)])
    b([a])
    assert list(b) == [2, 4, 6]


def test_piper_made_from_a_piper_shares_its_worker() -> None:
    a = Piper(Worker((inc, dbl)))
    b = Piper(a)
    assert b is not a and b.worker == a.worker


def test_worker_refuses_a_piper_with_a_hint() -> None:
    with pytest.raises(TypeError, match="is a Piper"):
        Worker(Piper(inc))


def test_worker_task_and_args_are_its_functions_and_arguments() -> None:
    w = Worker((inc, add), arguments=[(), (5,)])
    assert w.task == (inc, add) and w.args == ((), (5,))


def test_add_pipe_adds_a_chain_of_any_length() -> None:
    a, b, c, d = (Piper(inc, name=n) for n in "abcd")
    dag = Dagger()
    dag.add_pipe((a, b, c, d))
    assert [dag.downstream(p) for p in (a, b, c)] == [[b], [c], [d]]
    dag.connect([range(3)])
    assert list(d) == [4, 5, 6]


def test_add_pipe_branch_orders_the_inputs_of_a_merge() -> None:
    merge = Piper(pair, name="merge")
    first, second = Piper(inc, name="first"), Piper(inc, name="second")
    dag = Dagger()
    dag.add_pipe((second, merge), branch="2")
    dag.add_pipe((first, merge), branch="1")
    assert dag.get_inputs() == [first, second]
    dag.connect([[10], [20]])
    assert list(merge) == [(11, 21)]


def test_add_pipe_branch_leaves_a_branch_given_to_the_piper() -> None:
    a = Piper(inc, name="a", branch=7)
    dag = Dagger()
    dag.add_pipe((a, Piper(inc, name="b")), branch=1)
    assert a.branch == 7 and dag.resolve("b").branch == 1


def test_add_pipe_that_fails_takes_its_branches_back() -> None:
    a, b = Piper(inc, name="a"), Piper(inc, name="b")
    dag = Dagger(pipes=[(a, b)])
    c = Piper(inc, name="c")
    with pytest.raises(DaggerError, match="cycle"):
        dag.add_pipe((b, c, a), branch=3)
    assert c.branch is None and c not in dag


def test_add_piper_with_create_false_refuses_a_function() -> None:
    with pytest.raises(DaggerError, match="create=False"):
        Dagger().add_piper(inc, create=False)


def test_add_piper_returns_the_piper() -> None:
    dag = Dagger()
    p = dag.add_piper(inc, branch=2)
    assert isinstance(p, Piper) and p in dag and p.branch == 2


def test_del_pipers_removes_each_piper() -> None:
    a, b = Piper(inc, name="a"), Piper(inc, name="b")
    dag = Dagger(pipers=[a, b])
    dag.del_pipers([a, "b"])
    assert len(dag) == 0


def test_del_pipes_removes_each_pipe() -> None:
    a, b, c = (Piper(inc, name=n) for n in "abc")
    dag = Dagger(pipes=[(a, b), (a, c)])
    dag.del_pipes([(a, b), (a, c)])
    assert dag.downstream(a) == [] and len(dag) == 3


def test_children_after_parents_compares_by_data_flow() -> None:
    a, b, c = (Piper(inc, name=n) for n in "abc")
    dag = Dagger(pipes=[(a, b)], pipers=[c])
    assert dag.children_after_parents(a, b) == 1
    assert dag.children_after_parents(b, a) == -1
    assert dag.children_after_parents(a, c) == 0


def test_plumber_stats_pipers_tracked_maps_indexes_to_results() -> None:
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        first = Piper(inc, parallel=m, name="first")
        end = Piper(dbl, parallel=m, track=True, name="end")
        p = Plumber(pipes=[(first, end)])
        p.start([[1, 2, 3]])
        p.run()
        assert p.wait(30)
        assert p.stats["pipers_tracked"] == {end: [{0: 4, 1: 6, 2: 8}]}
        p.stop()


def test_pipers_tracked_has_one_dict_per_spawned_task() -> None:
    with imap.IMap(worker_type="thread", worker_num=2) as m:
        end = Piper(inc, parallel=m, spawn=2, track=True, name="end")
        p = Plumber(pipers=[end])
        p.start([range(5)])
        p.run()
        assert p.wait(30)
        assert p.stats["pipers_tracked"][end] == [{0: 1, 1: 3, 2: 5}, {0: 2, 1: 4}]
        p.stop()


def test_imports_forgive_skips_a_missing_module() -> None:
    @imports(["math", "no_such_module_papy1"], forgive=True)
    def root(x):
        return math.sqrt(x)  # noqa: F821 (bound by @imports)

    assert root(16) == 4.0


def test_imports_without_forgive_raises_for_a_missing_module() -> None:
    @imports(["no_such_module_papy1"])
    def f(x):
        return x

    with pytest.raises(ImportError, match="no_such_module_papy1"):
        f(1)
