"""Fault injection: hypothesis picks a pool, a fault and the item it strikes.

Whatever the fault, the results are exact, or the faulty item fails at its
position (with the error the contract names) and every other result is
exact; nothing hangs (the test's timeout) and no thread of an IMap is left.
The pools: threads, processes, connections to an imap-server, a mix of a
process and a connection, a Dask cluster (2 worker processes). The faults:
a worker killed while it runs the item (a process, a connection's process,
a Dask worker); the remote host killed and restarted at the same address
while it runs the item; a result the parent cannot unpickle; an exception
returned that does not unpickle; a tasklet that hangs under ``skip=True``;
an input that raises at the item; a log record of the item that a filter
of the parent's logger fails on; a function that makes a large temporary
and catches the exception that follows (it must run once, and return);
many tasklets that hang under ``skip=True`` (each costs only itself); the
parent process killed while its workers run (none outlives it). Slow
(``make test-all``): 300 examples.

The consumer reads while the fault strikes (a killer thread waits for the
victim's process id): an IMap computes only as far ahead of its consumer as
its buffer allows (at first 3 tasklets per worker, growing as results are
taken), so an item far down the input does not run until results are read.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from remote_helpers import server
from support import held_workers, imap_threads, kill_group, pid_alive, read_when_written, wait_until
from worker_funcs import ArgsMismatch, OnlyHere, add_one, wait_for_path, write_atomically

from imap import IMap, TimeoutError, UnsendableError, WorkerLostError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400), pytest.mark.allow_leftovers]

POOLS = ["thread", "process", "remote", "mixed", "dask"]
FAULTS = ["kill", "host-restart", "unreadable", "bad-exception", "hang", "input-raises",
          "log-raises", "catch-temporaries", "many-hangs", "parent-killed"]
# A thread cannot be killed, nor pickles anything; only a remote host restarts;
# a parent is killed in a program of its own, on process workers; a running
# Dask task cannot be stopped, so hung tasklets that hold every Dask worker
# make the healthy ones wait behind them (doc/engine.rst, *Timeouts and
# skipping*): many hangs cost only themselves on the pools that can replace
# a worker.
CANNOT = {("thread", "kill"), ("thread", "unreadable"), ("thread", "bad-exception")} | {
    (pool, "host-restart") for pool in POOLS if pool != "remote"} | {
    (pool, "parent-killed") for pool in POOLS if pool != "process"} | {
    ("dask", "many-hangs")}
HUNG_EVERY = 4   # under "many-hangs", the victim and every 4th item after it hang
# The task timeout under "hang". On Dask the tasklets that Dask queued behind
# the hung one on its worker are moved by asking the scheduler where they are
# (a round trip from a thread of the backend, then a new submission): under a
# loaded machine that took more than 0.5 s, so they get longer.
HANG_TIMEOUT = (0.5, 2.0)
LOGGER = "imap_test.fault"   # the victim logs a warning here (fault "log-raises")


class _FailingFilter(logging.Filter):
    def filter(self, record):
        raise RuntimeError("a filter of the parent's logger fails")


@pytest.fixture(scope="module")
def remote_address():
    with server("imap") as (address, _):
        yield address


def _options(pool: str, address: str, client) -> dict:
    return {
        "thread": {"worker_type": "thread", "worker_num": 2},
        "process": {"worker_num": 2},
        "remote": {"worker_num": 0, "worker_remote": [(address, 2)]},
        "mixed": {"worker_num": 1, "worker_remote": [(address, 1)]},
        "dask": {"executor": client},
    }[pool]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strike(x, fault, victim, directory):
    """``3 * x``, except for item ``victim``, where ``fault`` strikes. (It
    uses functions of worker_funcs, not the module as a global: a module
    object does not travel by value to a remote host.) ``x`` is an int, or
    an array of 128 KB (out of band, through shared memory to processes)
    whose elements are the item's number."""
    key = x if isinstance(x, int) else int(x[0])
    if fault == "many-hangs" and key > victim and (key - victim) % HUNG_EVERY == 0:
        key = victim   # one more of the hung ones
    if key != victim:
        return 3 * x
    with open(os.path.join(directory, f"calls-{int(x if isinstance(x, int) else x[0])}"),
              "a") as ledger:   # one line per call of a struck item
        ledger.write("1\n")
    if fault in ("kill", "host-restart"):
        marker = os.path.join(directory, "attempted")
        if not os.path.exists(marker):   # the first attempt only: a rerun succeeds
            write_atomically(marker, "1")
            write_atomically(os.path.join(directory, "pid"), str(os.getpid()))
            while True:
                time.sleep(0.01)   # until killed
        return 3 * x
    if fault == "unreadable":
        return OnlyHere()
    if fault == "bad-exception":
        return ArgsMismatch("v", 1)
    if fault in ("hang", "many-hangs"):
        wait_for_path(os.path.join(directory, "release"), 60)
        return 3 * x
    if fault == "catch-temporaries":
        import numpy
        try:
            return float(((numpy.full(2 ** 17, 1.0) * 2) + _fails(key))[0])
        except ValueError:
            return 3 * x
    if fault == "log-raises":
        import logging
        logging.getLogger("imap_test.fault").warning("item %d logs", key)
    return 3 * x


def _fails(key):
    raise ValueError(f"item {key} fails")



def _as_arrays(items):
    """Each int item as an array of 128 KB of that number."""
    import numpy as np

    for i in items:
        yield np.full(16_384, float(i))


def _value(result):
    """A result as the int it stands for (an array: its first element)."""
    return int(result[0]) if hasattr(result, "shape") else result


class _RaisesAt:
    """An input of ``n`` items that raises instead of item ``victim``."""

    def __init__(self, n: int, victim: int) -> None:
        self.n, self.victim, self.i = n, victim, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= self.n:
            raise StopIteration
        i, self.i = self.i, self.i + 1
        if i == self.victim:
            raise OSError("the input failed here")
        return i


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pool=st.sampled_from(POOLS), fault=st.sampled_from(FAULTS),
       n=st.integers(1, 40), where=st.floats(0, 1), chained=st.booleans(),
       arrays=st.booleans())
def test_a_fault_fails_only_its_item_and_nothing_hangs(remote_address, dask_client,
                                                        tmp_path_factory, pool, fault, n,
                                                        where, chained, arrays):
    assume((pool, fault) not in CANNOT)   # the pool cannot meet that fault
    event(f"{fault} on {pool}" + (" (arrays)" if arrays else ""))
    victim = min(n - 1, int(where * n))
    directory = str(tmp_path_factory.mktemp("fault"))
    if fault == "parent-killed":
        _kill_the_parent(Path(directory), ["fork", "forkserver", "spawn"][int(where * 2.99)])
        return
    before = imap_threads()
    skip = fault in ("hang", "many-hangs")
    source = _RaisesAt(n, victim) if fault == "input-raises" else range(n)
    if arrays:
        source = _as_arrays(source)
    restarted = None
    if pool == "dask":   # both workers back from an earlier example's kill (the nanny
        dask_client.wait_for_workers(2, timeout=60)   # restarts one in a second or two)
    options = _options(pool, remote_address, dask_client)
    if fault == "host-restart":   # a host of its own, killed and started again
        port = _free_port()
        host = server("imap", args=("--port", str(port)))
        address, proc = host.__enter__()
        options = {"worker_num": 0, "worker_remote": [(address, 2)],
                   "remote_options": {"worker_wait": 60.0}}
    failing = _FailingFilter()
    if fault == "log-raises":
        logging.getLogger(LOGGER).addFilter(failing)
    try:
        with IMap(skip=skip, **options) as m:
            first = m.add_task(strike, source, args=(fault, victim, directory),
                               timeout=(HANG_TIMEOUT[pool == "dask"] if skip else None),
                               retries=1)
            # retries: a host killed takes the tasklets of every connection to it
            last = m.add_task(add_one, first, retries=1) if chained else first
            m.start()
            killer = None
            if fault == "kill":
                def kill() -> None:
                    os.kill(int(read_when_written(Path(directory) / "pid")), signal.SIGKILL)
                killer = threading.Thread(target=kill, name="test-killer")
                killer.start()
            elif fault == "host-restart":
                def restart() -> None:
                    nonlocal restarted
                    read_when_written(Path(directory) / "pid")
                    kill_group(proc)
                    host.__exit__(None, None, None)
                    restarted = server("imap", args=("--port", str(port)))
                    restarted.__enter__()
                killer = threading.Thread(target=restart, name="test-restarter")
                killer.start()
            out = []
            it = iter(last)
            while True:
                try:
                    out.append(next(it))
                except StopIteration:
                    break
                except Exception as exc:  # noqa: BLE001 - the outcome under test
                    out.append(exc)
            if skip:
                write_atomically(os.path.join(directory, "release"), "go")
            if killer is not None:
                killer.join()
    finally:
        logging.getLogger(LOGGER).removeFilter(failing)
        if restarted is not None:
            restarted.__exit__(None, None, None)
    out = [_value(r) for r in out]
    plus = 1 if chained else 0
    if fault == "input-raises":   # the input ends at its error
        assert out[:victim] == [3 * x + plus for x in range(victim)]
        assert len(out) == victim + 1 and isinstance(out[victim], OSError)
    elif fault == "unreadable":   # the answer of its batch is lost: its batch fails
        assert len(out) == n and isinstance(out[victim], UnsendableError)
        assert all(r == 3 * x + plus or isinstance(r, UnsendableError)
                   for x, r in enumerate(out))
    elif fault == "many-hangs":   # each hung item times out alone; the others arrive
        hung = {x for x in range(victim, n) if (x - victim) % HUNG_EVERY == 0}
        assert len(out) == n
        assert all(isinstance(out[x], TimeoutError) for x in hung), out
        assert [r for i, r in enumerate(out) if i not in hung] == [
            3 * x + plus for x in range(n) if x not in hung]
    else:
        assert len(out) == n
        assert [r for i, r in enumerate(out) if i != victim] == [
            3 * x + plus for x in range(n) if x != victim]
        bad = out[victim]
        if fault in ("kill", "host-restart"):   # rerun (retries=1) or failed as lost
            assert bad == 3 * victim + plus or isinstance(bad, WorkerLostError), bad
        elif fault == "hang":
            assert isinstance(bad, TimeoutError), bad
        elif fault == "catch-temporaries":   # caught by the function, called once
            assert bad == 3 * victim + plus, bad
            assert (Path(directory) / f"calls-{victim}").read_text() == "1\n"
        elif fault == "log-raises":   # a thread worker logs in the parent itself
            assert bad == 3 * victim + plus or (
                pool == "thread" and isinstance(bad, RuntimeError)), bad
        else:   # bad-exception (Dask's workers carry it with tblib: it arrives intact)
            assert isinstance(bad, UnsendableError) or (
                pool == "dask" and isinstance(bad, ArgsMismatch)), bad
    wait_until(lambda: not (imap_threads() - before), 10)


def _kill_the_parent(directory: Path, method: str) -> None:
    """A program runs an IMap whose two workers are inside a long call; it
    is killed (SIGKILL): both workers end within seconds."""
    with held_workers(directory, method) as (proc, workers):
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        wait_until(lambda: not any(pid_alive(p) for p in workers), 15,
                   what="the workers of a killed parent to end")
