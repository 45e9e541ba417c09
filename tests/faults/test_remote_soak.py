"""Soak (slow): remote hosts stopped, continued, killed and restarted at
random while 10^5 items run over 2 hosts and a local process, with retries:
every result exactly once, in order. Run with ``make test-all`` (or
``pytest -m slow -s`` to see the run times)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
from remote_helpers import server

from imap import IMap

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

N = 100_000


def cube(x):
    if x % 2 == 0:   # about 0.5 ms a tasklet on average: the run lasts a while
        time.sleep(0.001)
    return x * x * x


class Host:
    """An imap-server on a fixed port that can be stopped, continued, killed
    and started again."""

    def __init__(self) -> None:
        self.port = 0
        self._cm = None
        self.proc = None
        self.start()

    def start(self) -> None:
        self._cm = server("imap", args=("--port", str(self.port)))
        addr, self.proc = self._cm.__enter__()
        self.address = addr
        self.port = int(addr.rsplit(":", 1)[1])

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self._cm.__exit__(None, None, None)

    def close(self) -> None:
        self.signal(signal.SIGCONT)
        self.kill()


def chaos(hosts: list[Host], done: threading.Event, rng: random.Random, log: list) -> None:
    """Every 1-3 s, one host is stopped for 1-4 s, or killed and restarted."""
    while not done.wait(rng.uniform(1.0, 3.0)):
        host = rng.choice(hosts)
        if rng.random() < 0.5:
            host.signal(signal.SIGSTOP)
            log.append(("stop", host.port, round(time.monotonic(), 1)))
            done.wait(rng.uniform(1.0, 4.0))
            host.signal(signal.SIGCONT)
        else:
            host.kill()
            log.append(("kill", host.port, round(time.monotonic(), 1)))
            done.wait(rng.uniform(0.2, 2.0))
            host.start()


def run(hosts: list[Host], disturb: bool, seed: int) -> tuple[float, list]:
    done = threading.Event()
    log: list = []
    options = {"liveness": 2.0, "worker_wait": 120.0}
    m = IMap(worker_type="process", worker_num=1,
             worker_remote=[(h.address, 2) for h in hosts], remote_options=options)
    task = m.add_task(cube, range(N), retries=50)
    started = time.perf_counter()
    m.start()
    thread = threading.Thread(target=chaos, args=(hosts, done, random.Random(seed), log))
    if disturb:
        thread.start()
    try:
        got = list(task)
        elapsed = time.perf_counter() - started
    finally:
        done.set()
        if disturb:
            thread.join()
        m.stop()
    assert got == [x ** 3 for x in range(N)]   # exactly once, in order
    return elapsed, log


def test_results_exactly_once_in_order_while_hosts_come_and_go():
    import cloudpickle
    import test_remote_soak as me

    cloudpickle.register_pickle_by_value(me)
    hosts = [Host(), Host()]
    try:
        quiet, _ = run(hosts, disturb=False, seed=0)
        noisy, log = run(hosts, disturb=True, seed=1)
    finally:
        for host in hosts:
            host.close()
        cloudpickle.unregister_pickle_by_value(me)
    print(f"\nundisturbed: {quiet:.1f} s; disturbed: {noisy:.1f} s "
          f"({noisy / quiet:.1f}x) with {len(log)} events: {log}")
