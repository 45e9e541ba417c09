"""How fast remote hosts are found silent and brought back (issue figures).

Run: ``python benchmarks/liveness.py [--runs 10] [--liveness 2]``. Each run
starts an imap-server on 127.0.0.1, runs an IMap on it (2 connections) and
one local thread, then:

* stops the server's process group (SIGSTOP) while batches run, and times
  until the IMap has declared its connections lost (``status().workers``
  drops to 1): the *detection time*;
* continues it (SIGCONT) and times until both connections are back in the
  pool: *rejoin after a stop*;
* kills it (SIGKILL), starts a new server on the same port, and times from
  the new server listening until both connections are back: *rejoin after
  a restart*.

Times are polled every 10 ms; the median and range of the runs are printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import cloudpickle  # noqa: E402
from remote_helpers import server  # noqa: E402
from support import kill_group  # noqa: E402

from imap import IMap  # noqa: E402


def nap(x):
    time.sleep(0.01)
    return x


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def until(predicate, limit=120.0):
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > limit:
            raise TimeoutError("condition not met")
        time.sleep(0.01)
    return time.perf_counter() - start


def endless(stop: threading.Event):
    x = 0
    while not stop.is_set():
        yield x
        x += 1


def one_run(liveness: float) -> tuple[float, float, float]:
    with server("imap") as (addr, proc):
        port = addr.rsplit(":", 1)[1]
        stop = threading.Event()
        m = IMap(worker_type="thread", worker_num=1, worker_remote=[(addr, 2)],
                 remote_options={"liveness": liveness})
        task = m.add_task(nap, endless(stop), retries=5)
        m.start()
        drain = threading.Thread(target=lambda: [None for _ in task], daemon=True)
        drain.start()
        try:
            until(lambda: m.status().tasks[0].done > 100)
            os.killpg(proc.pid, signal.SIGSTOP)
            detect = until(lambda: m.status().workers == 1)
            os.killpg(proc.pid, signal.SIGCONT)
            back = until(lambda: m.status().workers == 3)
            kill_group(proc)
            until(lambda: m.status().workers == 1)
            with server("imap", args=("--port", port)):
                restart = until(lambda: m.status().workers == 3)
                stop.set()
                drain.join(60)
        finally:
            stop.set()
            m.stop(forced=True)
    return detect, back, restart


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--liveness", type=float, default=2.0)
    args = parser.parse_args()
    rows = [one_run(args.liveness) for _ in range(args.runs)]
    print(f"liveness = {args.liveness:g} s, {args.runs} runs (median, min-max):")
    for i, label in enumerate(("detection of a stopped host",
                               "rejoin after SIGCONT", "rejoin after a restart")):
        values = [r[i] for r in rows]
        print(f"  {label:28s} {statistics.median(values):6.2f} s "
              f"({min(values):.2f}-{max(values):.2f})")


if __name__ == "__main__":
    main()
