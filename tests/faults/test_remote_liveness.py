"""Remote hosts that fall silent, die and come back, with real servers on
127.0.0.1: a whole server (its process group) stopped with SIGSTOP looks
like a frozen host or a dead link (no FIN, no RST); SIGKILL and a restart on
the same port look like a rebooted one."""

from __future__ import annotations

import os
import signal
import threading

import pytest
import remote_helpers as h
from remote_helpers import server
from support import kill_group, wait_until

from imap import IMap, WorkerLostError

pytestmark = pytest.mark.timeout(120)

LIVENESS = 2.0
OPTIONS = {"liveness": LIVENESS, "worker_wait": 20.0}


def slow_square(x):
    import time

    time.sleep(0.02)
    return x * x


def _port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def gated(n: int, first: int, gate: threading.Event):
    """0..n-1, pausing after ``first`` items until ``gate`` is set."""
    for x in range(n):
        if x == first:
            gate.wait()
        yield x


@pytest.fixture(autouse=True)
def _by_value():
    import cloudpickle
    import test_remote_liveness as me

    cloudpickle.register_pickle_by_value(me)
    cloudpickle.register_pickle_by_value(h)
    yield
    cloudpickle.unregister_pickle_by_value(me)


@pytest.mark.parametrize("kind", ["imap", "classic"])
def test_a_stopped_host_is_lost_its_tasklets_run_elsewhere_and_it_rejoins(kind):
    with server(kind) as (addr, proc):
        with IMap(worker_type="thread", worker_num=1, worker_remote=[(addr, 2)],
                  remote_options=OPTIONS) as m:
            task = m.add_task(slow_square, range(400), retries=2)
            m.start()
            got = [next(task) for _ in range(50)]
            os.killpg(proc.pid, signal.SIGSTOP)
            try:
                got += list(task)   # the rest: on the local worker once the host is lost
                status = m.status()
                assert status.workers_lost >= 2
                assert status.workers == 1
            finally:
                os.killpg(proc.pid, signal.SIGCONT)
        assert got == [x * x for x in range(400)]   # every result once, in order


@pytest.mark.parametrize("kind", ["imap", "classic"])
def test_a_host_that_was_stopped_rejoins_when_it_continues(kind):
    gate = threading.Event()
    with server(kind) as (addr, proc):
        with IMap(worker_type="thread", worker_num=1, worker_remote=[(addr, 2)],
                  remote_options=OPTIONS) as m:
            task = m.add_task(slow_square, gated(200, 20, gate), retries=2)
            m.start()
            got = [next(task) for _ in range(10)]
            os.killpg(proc.pid, signal.SIGSTOP)
            try:
                wait_until(lambda: m.status().workers == 1, 30)   # declared lost
            finally:
                os.killpg(proc.pid, signal.SIGCONT)
            wait_until(lambda: m.status().workers == 3, 30)       # back in the pool
            gate.set()
            got += list(task)
        assert got == [x * x for x in range(200)]


def test_a_killed_host_restarted_on_its_port_rejoins():
    gate = threading.Event()
    with server("imap") as (addr, proc):
        port = _port(addr)
        with IMap(worker_type="thread", worker_num=1, worker_remote=[(addr, 2)],
                  remote_options=OPTIONS) as m:
            task = m.add_task(slow_square, gated(100, 20, gate), retries=3)
            m.start()
            got = [next(task) for _ in range(10)]
            kill_group(proc)
            wait_until(lambda: m.status().workers == 1, 30)
            with server("imap", args=("--port", str(port))) as (again, _):
                assert again == addr
                wait_until(lambda: m.status().workers == 3, 30)
                gate.set()
                got += list(task)
                assert m.status().workers_lost >= 2
        assert got == [x * x for x in range(100)]


def test_without_retries_results_and_worker_lost_errors_add_up():
    with server("imap") as (addr, proc):
        with IMap(worker_type="thread", worker_num=1, worker_remote=[(addr, 2)],
                  remote_options=dict(OPTIONS, reconnect=False)) as m:
            task = m.add_task(slow_square, range(200))
            m.start()
            got = [next(task) for _ in range(20)]
            os.killpg(proc.pid, signal.SIGSTOP)
            try:
                got += h.collect(task)
            finally:
                os.killpg(proc.pid, signal.SIGCONT)
    assert len(got) == 200
    for x, value in enumerate(got):
        assert value == x * x or isinstance(value, WorkerLostError), (x, value)


def test_a_graceful_stop_during_the_silence_returns():
    with server("imap") as (addr, proc):
        m = IMap(worker_type="thread", worker_num=1, worker_remote=[(addr, 2)],
                 remote_options=OPTIONS)
        task = m.add_task(slow_square, range(400))
        m.start()
        [next(task) for _ in range(20)]
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            m.stop()   # waits for the batches the host holds: until it is declared lost
            assert not m.running
        finally:
            os.killpg(proc.pid, signal.SIGCONT)


def test_a_long_tasklet_is_not_silence():
    with server("imap") as (addr, _):
        with IMap(worker_type="thread", worker_num=0, worker_remote=[(addr, 1)],
                  remote_options={"liveness": 1.0}) as m:
            # pure Python holding the GIL, each for several liveness periods
            task = m.add_task(h.busy, [1, 2], args=(20_000_000,))
            m.start()
            assert len(list(task)) == 2
            assert m.status().workers_lost == 0


@pytest.mark.parametrize("options, message", [
    ({"liveness": 0}, "'liveness' must be seconds > 0"),
    ({"liveness": "10"}, "'liveness' must be seconds > 0"),
    ({"reconnect": 1}, "'reconnect' must be True or False"),
    ({"worker_wait": -1}, "'worker_wait' must be seconds >= 0"),
    ({"connect_timeout": True}, "'connect_timeout' must be seconds > 0"),
    ({"heartbeat": 1}, "unknown remote option 'heartbeat'"),
])
def test_bad_remote_options_fail_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        IMap(worker_num=0, worker_remote=[("127.0.0.1:1", 1)], remote_options=options)


def test_a_remote_only_run_waits_for_its_restarted_host():
    """With no local worker, tasklets wait (worker_wait) for the host to come
    back instead of failing as 'no remote worker is left'."""
    with server("imap") as (addr, proc):
        port = _port(addr)
        with IMap(worker_num=0, worker_remote=[(addr, 2)], remote_options=OPTIONS) as m:
            task = m.add_task(slow_square, range(300), retries=3)
            m.start()
            got = [next(task) for _ in range(30)]
            kill_group(proc)
            wait_until(lambda: m.status().workers == 0, 30)
            with server("imap", args=("--port", str(port))):
                got += list(task)
    assert got == [x * x for x in range(300)]


def test_connect_timeout_bounds_a_client_waiting_for_a_challenge(tmp_path):
    """A client with a secret, a server without one: each waits for the other
    to speak. start() fails after connect_timeout. (A server that wants a
    secret says so at once: see test_trust.)"""
    with server("imap", args=("--auth-timeout", "60")) as (addr, _):
        m = IMap(worker_num=0, worker_remote=[(addr, 1)],
                 remote_options={"connect_timeout": 1.0, "secret": "s3cret"})
        m.add_task(abs, range(3))
        with pytest.raises(ConnectionError, match="did not complete it within 1.0 s .*secret"):
            m.start()   # bounded by the test's timeout if connect_timeout were ignored


def square_or_hang(x, victim, directory):
    """x * x; item ``victim`` writes its process id, then never returns."""
    import os
    import time

    if x != victim:
        return x * x
    with open(os.path.join(directory, "pid.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.replace(os.path.join(directory, "pid.tmp"), os.path.join(directory, "pid"))
    while True:
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("kind", ["imap", "classic"])
def test_skip_cuts_off_a_connection_stuck_in_an_abandoned_tasklet(kind, tmp_path):
    # One connection: while it ran on with the abandoned tasklet, nothing
    # behind it would run. It is cut off and a new connection takes over.
    with server(kind) as (addr, _):
        with IMap(worker_num=0, worker_remote=[(addr, 1)], skip=True,
                  remote_options=OPTIONS) as m:
            task = m.add_task(square_or_hang, range(30), args=(3, str(tmp_path)),
                              timeout=2)
            m.start()
            got = h.collect(task)
            assert m.status().workers_lost >= 1
        assert isinstance(got[3], TimeoutError)
        assert got[:3] + got[4:] == [x * x for x in range(30) if x != 3]
        if kind == "imap":   # its connection process ended with the connection
            pid = int((tmp_path / "pid").read_text())
            wait_until(lambda: _gone(pid), timeout=15, what="the stuck process to end")
