"""A program run with a journal, to be killed and run again by tests/test_journal.py.

    main([imap|papy, JOURNAL, LEDGER, OUT, N, BACKEND, STOP_AT])

``imap``: a chain of three tasks over ``range(N)``; ``papy``: a branched
pipeline (a -> b -> w, a -> c -> w) whose output piper ``w`` writes one
line per item to OUT. Every call of a function appends the item to LEDGER
(one ``os.write`` with O_APPEND: whole lines, whatever process wrote them).
BACKEND: ``thread``, ``process`` or ``remote=host:port`` (an imap-server).
Once it has taken STOP_AT results (``-1``: never) it prints ``stopped at
<STOP_AT>`` and waits on its stdin: the test kills it there. At the end it
prints ``replayed <r> computed <c>`` and, for ``imap``, writes the results
to OUT as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import cloudpickle

BUFFER = 300   # the IMap's buffer: results computed but not taken at a kill, at most


def _note(ledger: str, stage: str, x: int) -> None:
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{stage} {x}\n".encode())
    finally:
        os.close(fd)


def first(x, ledger):
    _note(ledger, "first", x)
    return (x, x * 3)


def second(pair, ledger):
    x, v = pair
    _note(ledger, "second", x)
    return (x, v + 1)


def third(pair, ledger):
    x, v = pair
    _note(ledger, "third", x)
    return (x, v * v)


def expected_imap(n: int) -> list:
    return [(x, (3 * x + 1) ** 2) for x in range(n)]


def p_square(inbox, ledger):
    _note(ledger, "a", inbox[0])
    return (inbox[0], inbox[0] ** 2)


def p_plus(inbox, ledger):
    x, v = inbox[0]
    _note(ledger, "b", x)
    return (x, v + 1)


def p_minus(inbox, ledger):
    x, v = inbox[0]
    _note(ledger, "c", x)
    return (x, -v)


def stop_here(taken: int) -> None:
    """Say the kill point is reached, and wait for the kill."""
    print(f"stopped at {taken}", flush=True)
    sys.stdin.readline()
    raise SystemExit("the test was to kill this program")


def p_write(inbox, out, stop_at):
    (x, plus), (_, minus) = inbox
    with open(out, "a") as handle:
        handle.write(f"{x} {plus} {minus}\n")
    if x + 1 == stop_at:
        stop_here(stop_at)
    return x


def expected_file(n: int) -> str:
    return "".join(f"{x} {x * x + 1} {-x * x}\n" for x in range(n))


def _imap_options(backend: str) -> dict:
    if backend.startswith("remote="):
        return {"worker_num": 0, "worker_remote": [(backend.split("=", 1)[1], 2)]}
    return {"worker_type": backend, "worker_num": 2}


def run_imap(journal: str, ledger: str, out: str, n: int, backend: str, stop_at: int) -> None:
    from imap import IMap

    with IMap(journal=journal, buffer=BUFFER, **_imap_options(backend)) as m:
        a = m.add_task(first, range(n), (ledger,))
        b = m.add_task(second, a, (ledger,))
        c = m.add_task(third, b, (ledger,))
        m.start()
        results = []
        for value in c:
            results.append(list(value))
            if len(results) == stop_at:
                stop_here(stop_at)
        task = m.status().tasks[2]
        print(f"replayed {task.replayed} computed {task.consumed}", flush=True)
    with open(out, "w") as handle:
        json.dump(results, handle)


def run_papy(journal: str, ledger: str, out: str, n: int, backend: str, stop_at: int) -> None:
    from imap import IMap
    from papy.piper import Piper
    from papy.plumber import Plumber
    from papy.worker import Worker

    open(out, "w").close()   # the writer appends: each run writes the file afresh
    m = IMap(buffer=BUFFER, **_imap_options(backend))
    a = Piper(Worker(p_square, [(ledger,)]), parallel=m, name="a")
    b = Piper(Worker(p_plus, [(ledger,)]), parallel=m, name="b")
    c = Piper(Worker(p_minus, [(ledger,)]), parallel=m, name="c")
    w = Piper(Worker(p_write, [(out, stop_at)]), name="w")
    plumber = Plumber(journal=journal)
    plumber.add_pipe((a, b, w))
    plumber.add_pipe((a, c, w))
    plumber.start([range(n)])
    plumber.run()
    plumber.wait()
    plumber.stop()
    counts = plumber.stats["outputs"]["w"]
    print(f"replayed {counts['replayed']} computed {counts['items'] - counts['replayed']}",
          flush=True)


def main(argv: list[str]) -> None:
    kind, journal, ledger, out, n, backend, stop_at = argv
    if backend.startswith("remote="):   # the functions travel by value
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    run = run_imap if kind == "imap" else run_papy
    run(journal, ledger, out, int(n), backend, int(stop_at))


if __name__ == "__main__":
    main(sys.argv[1:])
