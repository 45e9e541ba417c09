"""A run killed with SIGKILL at about 60 %, then run again: it resumes.

The *job* is a chain of three tasks over 2,000 items (about 2 ms each) on
two worker processes, with a journal (``IMap(journal=path)``) and a flaky step that
``retry_on`` runs again. This script runs the job in a child process, kills
it with SIGKILL once it has taken 1,200 results, and runs the job again with
the same journal: the second run replays what the first one recorded,
computes only the rest, and its output is the output of an uninterrupted run.

Run it with ``python examples/resume.py`` (it works in a temporary
directory). The job alone is ``python examples/resume.py job JOURNAL OUT``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imap import IMap

ITEMS = 2000
KILL_AT = 1200   # results taken when the first run is killed (60 %)


def parse(x: int) -> int:
    return 3 * x


def fetch(x: int) -> int:
    """A step that fails now and then for a passing reason (every 97th call)."""
    if x % 97 == 0 and not os.environ.get("RESUME_FETCHED_" + str(x)):
        os.environ["RESUME_FETCHED_" + str(x)] = "1"   # this worker will succeed next time
        raise ConnectionError(f"item {x}: the server was busy")
    return x + 1


def score(x: int) -> int:
    """The costly step (here a 2 ms wait stands for it)."""
    time.sleep(0.002)
    return x * x


def job(journal: str, out: str, kill_at: int | None) -> None:
    """The program a user runs: the same code whether it starts or resumes."""
    with IMap(worker_num=2, journal=journal) as m:
        parsed = m.add_task(parse, range(ITEMS))
        fetched = m.add_task(fetch, parsed, retries=3, retry_on=ConnectionError)
        scored = m.add_task(score, fetched)
        m.start()
        results = []
        for value in scored:
            results.append(value)
            if len(results) == kill_at:
                print(f"taken {kill_at}", flush=True)
                sys.stdin.readline()   # the parent kills us here
        status = m.status().tasks[2]
        print(f"{status.replayed} results replayed from the journal, "
              f"{status.consumed} computed", flush=True)
    Path(out).write_text(json.dumps(results))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        journal, out = str(Path(tmp, "run.journal")), str(Path(tmp, "out.json"))
        command = [sys.executable, __file__, "job", journal, out]
        first = subprocess.Popen([*command, str(KILL_AT)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = first.stdout.readline().strip()
        os.killpg(first.pid, signal.SIGKILL)   # the job and its workers, at once
        first.wait()
        first.stdin.close()
        first.stdout.close()
        print(f"first run: {line}, then killed with SIGKILL")
        second = subprocess.run(command, capture_output=True, text=True, check=True)
        print(f"second run: {second.stdout.strip()}")
        results = json.loads(Path(out).read_text())
        expected = [(3 * x + 1) ** 2 for x in range(ITEMS)]
        print(f"done: {len(results)} results, the uninterrupted output: "
              f"{results == expected}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "job":
        job(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)
    else:
        main()
