"""Functional dependencies (imap.require, imap.depend, imap.UnmetDependency):
tasklets go only to the workers that can run them, and fail as
ImpossibleDependency, each at its position, when none can.

Unlike workers are real: local processes where one claims a capability in
its initializer, and imap-server hosts started with different environments
(one has a module on its path that the other lacks)."""

from __future__ import annotations

import concurrent.futures
import os
import socket

import papy_funcs as pf
import pytest
import remote_helpers as rh
import worker_funcs as wf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import kill_group, wait_until

import imap
from imap import IMap, ImpossibleDependency, UnmetDependency
from papy import Piper, Worker

pytestmark = pytest.mark.timeout(120)


def outcomes(task) -> list:
    """Each result of ``task``, or the exception raised in its place."""
    out = []
    while True:
        try:
            out.append(next(task))
        except StopIteration:
            return out
        except Exception as exc:   # noqa: BLE001 - the error is the result here
            out.append(exc)


def capable_pool(tmp_path, **kwargs) -> IMap:
    """Two worker processes, of which exactly one is capable (is_capable())."""
    return IMap(worker_type="process", worker_num=2, initializer=wf.claim_capability,
                initargs=(str(tmp_path),), **kwargs)


def capable_pid(tmp_path) -> int:
    return int((tmp_path / "capable").read_text())


# -- the decorators -----------------------------------------------------------------------


def test_decorators_mark_without_changing_the_function():
    @imap.require("json", os)
    @imap.depend(wf.never)
    def f(x):
        return x + 1

    assert f(1) == 2   # called directly, it runs as ever
    assert imap.depends.describe(f) == "depend(never) and require('json', 'os')"
    wrapped = imap.require("json")(abs)   # a builtin takes no attribute: it is wrapped
    assert wrapped(-3) == 3 and imap.depends.describe(wrapped) == "require('json')"
    assert imap.depends.describe(wf.add_one) is None


@pytest.mark.parametrize("call, message", [
    (lambda: imap.require(), "at least one module"),
    (lambda: imap.require(3), "module names"),
    (lambda: imap.require("not a name"), "module names"),
    (lambda: imap.depend("numpy"), "predicate"),
    (lambda: imap.require("os")(42), "decorates a function"),
])
def test_bad_decorator_arguments_are_named(call, message):
    with pytest.raises(TypeError, match=message):
        call()


# -- local workers -------------------------------------------------------------------------


def test_depend_routes_every_item_to_the_capable_process(tmp_path):
    with capable_pool(tmp_path) as m:
        task = m.add_task(wf.pid_if_capable, range(300))
        plain = m.add_task(wf.worker_pid, range(300))
        m.start()
        got = list(task)
        ran_plain = set(plain)
        status = m.status().tasks[0]
    assert [x for x, _ in got] == list(range(300))
    assert {pid for _, pid in got} == {capable_pid(tmp_path)}
    assert status.dependency == "depend(is_capable)"
    assert len(status.may_run) >= 1 and len(status.refused) <= 1
    assert len(ran_plain) >= 1


def test_unmet_dependency_raised_by_hand_moves_the_tasklet(tmp_path):
    with capable_pool(tmp_path, ordered=False) as m:
        task = m.add_task(wf.refuse_unless_capable, range(200))
        m.start()
        got = list(task)
    assert sorted(x for x, _ in got) == list(range(200))
    assert {pid for _, pid in got} == {capable_pid(tmp_path)}


POOLS = ["thread", "process", "thread-executor", "process-executor"]


def make_pool(kind: str, stack) -> IMap:
    if kind in ("thread", "process"):
        return IMap(worker_type=kind, worker_num=2)
    cls = (concurrent.futures.ThreadPoolExecutor if kind == "thread-executor"
           else concurrent.futures.ProcessPoolExecutor)
    return IMap(executor=stack.enter_context(cls(2)))


@pytest.mark.parametrize("kind", POOLS)
def test_a_dependency_nobody_meets_fails_each_item_and_nothing_else(kind):
    import contextlib

    with contextlib.ExitStack() as stack:
        with make_pool(kind, stack) as m:
            hopeless = m.add_task(wf.needs_missing_module, range(7))
            fine = m.add_task(wf.add_one, range(50))
            chained = m.add_task(wf.double, fine)
            m.start()
            got = outcomes(hopeless)
            assert list(chained) == [2 * (x + 1) for x in range(50)]
            status = m.status().tasks[0]
    assert len(got) == 7 and all(isinstance(e, ImpossibleDependency) for e in got), got
    message = str(got[0])
    assert "item 0 of task 0 (needs_missing_module)" in message
    assert "require('module_nowhere_to_be_found_xyz')" in message
    assert "No module named" in message
    assert got[0].refusals and got[0].whole
    assert [str(e).split(" of task")[0] for e in got] == [
        f"no worker of the pool can run item {i}" for i in range(7)]
    assert status.may_run == () and status.refused


@pytest.mark.parametrize("kind", POOLS)
def test_a_tasklet_refused_by_every_worker_fails_once(kind):
    import contextlib

    with contextlib.ExitStack() as stack:
        with make_pool(kind, stack) as m:
            task = m.add_task(wf.refuse_always_on, range(40), args=(13,))
            m.start()
            got = outcomes(task)
    assert got[:13] + got[14:] == [x for x in range(40) if x != 13]
    assert isinstance(got[13], ImpossibleDependency)
    assert "item 13 refused here" in str(got[13]) and not got[13].whole


def test_a_piper_with_a_decorated_function_runs_where_it_may(tmp_path):
    with capable_pool(tmp_path) as m:
        piper = Piper(Worker((pf.inc, pf.papy_pid_if_capable)), parallel=m)
        piper.connect([range(60)])
        piper.start()
        got = list(piper)
    assert [x for x, _ in got] == [x + 1 for x in range(60)]
    assert {pid for _, pid in got} == {capable_pid(tmp_path)}


def test_a_worker_function_raising_unmet_dependency_is_not_a_piper_error(tmp_path):
    with capable_pool(tmp_path) as m:
        piper = Piper(Worker(wf.refuse_unless_capable), parallel=m)
        piper.connect([range(30)])
        piper.start()
        got = list(piper)
    assert [x for x, _ in got] == [(x,) for x in range(30)]


@settings(max_examples=12, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(["plain", "capable", "nowhere"]), max_size=40),
       ordered=st.booleans())
def test_every_item_ends_as_its_kind_says(tmp_path_factory, kinds, ordered):
    """Items refused everywhere fail, once each; items only the capable
    worker takes come from it; the rest are plain results; in order when
    ordered."""
    directory = tmp_path_factory.mktemp("cap")
    items = [(i, kind) for i, kind in enumerate(kinds)]
    with capable_pool(directory, ordered=ordered) as m:
        task = m.add_task(wf.by_kind, items)
        m.start()
        got = outcomes(task)
    capable = capable_pid(directory)

    def key(result):
        return result.item if isinstance(result, ImpossibleDependency) else result[0]
    for result in got:
        if isinstance(result, ImpossibleDependency):
            result.item = int(str(result).split("item ")[1].split(" ")[0])
    if not ordered:
        got.sort(key=key)
    assert [key(r) for r in got] == list(range(len(kinds)))
    for (i, kind), result in zip(items, got, strict=True):
        if kind == "nowhere":
            assert isinstance(result, ImpossibleDependency), (i, result)
        else:
            assert result[0] == i and (kind == "plain" or result[1] == capable), (i, result)


# -- Dask ---------------------------------------------------------------------------------


@pytest.mark.allow_leftovers   # Dask keeps threads of its own between tests
def test_dask_workers_are_checked_one_by_one(dask_client):
    names = sorted(dask_client.scheduler_info()["workers"])
    chosen = names[0]
    with IMap(executor=dask_client) as m:
        where = imap.depend(wf.on_dask_worker, chosen)(wf.dask_where)   # at run time
        task = m.add_task(where, range(100))
        hopeless = m.add_task(wf.needs_missing_module, range(3))
        m.start()
        got = list(task)
        failed = outcomes(hopeless)
        status = m.status().tasks[0]
    assert [x for x, _ in got] == list(range(100))
    assert {where for _, where in got} == {chosen}
    assert all(isinstance(e, ImpossibleDependency) for e in failed)
    assert chosen in status.may_run


# -- unlike remote hosts -------------------------------------------------------------------


@pytest.fixture
def unlike_hosts(tmp_path):
    """Two imap-server hosts: the first has the probe module, the second not."""
    directory = rh.write_probe_module(tmp_path)
    with rh.server("imap", env={"PYTHONPATH": directory}) as (capable, _):
        with rh.server("imap") as (other, _):
            yield capable, other


def test_require_routes_every_item_to_the_host_that_has_the_module(unlike_hosts):
    capable, other = unlike_hosts
    with IMap(worker_num=0, worker_remote=[(capable, 1), (other, 2)]) as m:
        task = m.add_task(rh.probe, range(120))
        plain = m.add_task(rh.where, range(120))
        hopeless = m.add_task(rh.probe_nowhere, range(4))
        m.start()
        got = list(task)
        assert list(plain) == ["remote"] * 120
        failed = outcomes(hopeless)
        status = m.status().tasks[0]
    assert got == [(x, "from the probe module") for x in range(120)]
    assert all(isinstance(e, ImpossibleDependency) for e in failed), failed
    assert capable in str(failed[0]) and other in str(failed[0])
    assert all(name.startswith(capable) for name in status.may_run)
    assert all(name.startswith(other) for name in status.refused)


def test_a_piper_on_an_imap_of_unlike_hosts(unlike_hosts):
    capable, other = unlike_hosts
    with IMap(worker_num=0, worker_remote=[(other, 1), (capable, 1)]) as m:
        piper = Piper(Worker(rh.papy_probe), parallel=m)
        piper.connect([range(40)])
        piper.start()
        got = list(piper)
    assert got == [(x, "from the probe module") for x in range(40)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.allow_leftovers
def test_the_capable_host_killed_and_restarted_finishes_its_tasklets(tmp_path):
    directory = rh.write_probe_module(tmp_path)
    port = _free_port()
    env = {"PYTHONPATH": directory}
    options = {"liveness": 5.0, "worker_wait": 30.0}
    with rh.server("imap") as (other, _):
        with rh.server("imap", args=("--port", str(port)), env=env) as (capable, proc):
            # A small buffer: the run waits for its consumer, so most of the
            # tasklets are still to run when the host is killed.
            m = IMap(worker_num=0, worker_remote=[(capable, 1), (other, 1)],
                     remote_options=options, buffer=16)
            task = m.add_task(rh.probe, range(400), retries=3)
            m.start()
            got = [next(task) for _ in range(40)]
            kill_group(proc)
            wait_until(lambda: m.status().workers == 1, 30, what="the host to be lost")
            assert m.status().tasks[0].done < 100
        with rh.server("imap", args=("--port", str(port)), env=env):
            got += list(task)
            m.stop()
    assert got == [(x, "from the probe module") for x in range(400)]


def test_an_unmet_dependency_pickles_with_its_attributes():
    import pickle

    exc = UnmetDependency("no GPU here")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is UnmetDependency
    assert str(back) == "no GPU here" and back.whole is False and back.worker is None


@pytest.mark.allow_leftovers
def test_tasklets_only_a_lost_host_can_run_fail_once_worker_wait_is_over(tmp_path):
    directory = rh.write_probe_module(tmp_path)
    options = {"liveness": 5.0, "worker_wait": 1.0}
    with rh.server("imap") as (other, _):
        with rh.server("imap", env={"PYTHONPATH": directory}) as (capable, proc):
            with IMap(worker_num=0, worker_remote=[(capable, 1), (other, 1)],
                      remote_options=options, buffer=16) as m:
                task = m.add_task(rh.probe, range(200), retries=3)
                m.start()
                got = [next(task) for _ in range(20)]
                kill_group(proc)
                got += outcomes(task)
    assert got[:20] == [(x, "from the probe module") for x in range(20)]
    failed = [r for r in got if isinstance(r, ImpossibleDependency)]
    assert failed and all(isinstance(r, (ImpossibleDependency, tuple)) for r in got), got
    assert all(other in str(e) for e in failed)


@pytest.mark.parametrize("local", ["thread", "process"])
def test_a_mixed_pool_passes_refused_tasklets_to_the_side_that_can(unlike_hosts, local):
    """Local workers (this process lacks the probe module) and remote hosts:
    local threads and remote connections are two parts of the pool (a part
    that refuses passes the tasklets on), local processes and remote
    connections one pool."""
    capable, other = unlike_hosts
    with IMap(worker_type=local, worker_num=2, worker_remote=[(capable, 1), (other, 1)]) as m:
        task = m.add_task(rh.probe, range(80))
        plain = m.add_task(rh.inc, range(80))
        hopeless = m.add_task(rh.probe_nowhere, range(3))
        m.start()
        got = list(task)
        assert list(plain) == [x + 1 for x in range(80)]
        failed = outcomes(hopeless)
    assert got == [(x, "from the probe module") for x in range(80)]
    assert len(failed) == 3 and all(isinstance(e, ImpossibleDependency) for e in failed)
    assert "imap_dep_probe_nowhere" in str(failed[0])
