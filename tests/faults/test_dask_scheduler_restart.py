"""A Dask cluster restarted at the same address mid-run (its scheduler and
its workers): the batches in flight went with the old scheduler; they run
again on the new one and every result comes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support import kill_group, wait_until

from imap import IMap

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180), pytest.mark.allow_leftovers]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scheduler(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _workers(address: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
        + sys.path))   # this module and the tests' helpers, on the workers
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
         "--nworkers", "2", "--no-dashboard", "--death-timeout", "60"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)


def _held_slowly(x, directory):
    """``2 * x`` after a short pause (work is in flight when the scheduler goes)."""
    import time

    time.sleep(0.05)
    return 2 * x


def test_batches_in_flight_run_again_when_the_scheduler_is_replaced(tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _scheduler(port)
    workers = _workers(address)
    try:
        client = distributed.Client(address, timeout=30, set_as_default=False)
        try:
            client.wait_for_workers(2, timeout=60)
            with IMap(executor=client, chunksize=1) as m:
                task = m.add_task(_held_slowly, range(200), args=(str(tmp_path),))
                m.start()
                got = [task.next(timeout=60) for _ in range(20)]
                kill_group(scheduler)
                kill_group(workers)   # Dask workers do not outlive their scheduler
                scheduler = _scheduler(port)
                workers = _workers(address)
                got += [task.next(timeout=120) for _ in range(180)]
            assert got == [2 * x for x in range(200)]
        finally:
            client.close()
    finally:
        kill_group(scheduler)
        kill_group(workers)
        wait_until(lambda: scheduler.poll() is not None and workers.poll() is not None, 30)
