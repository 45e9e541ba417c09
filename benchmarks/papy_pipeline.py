"""papy pipeline benchmarks (issue 3): ratios, not absolute times.

1. A 3-piper linear pipeline of ~5 ms CPU stages on one shared 2-process
   IMap, versus the same chain as nested ``multiprocessing.Pool.imap`` calls
   on a 2-process pool.
2. The per-item overhead of an inline 3-piper pipeline versus nested
   generators calling the same functions (each on a 1-tuple inbox).
3. papy's cost over the engine (issue 35): a 3-piper pipeline of cheap
   stages on one shared 2-process IMap, versus the same chain as nested
   tasks of one 2-process IMap (``add_task(f, add_task(f, add_task(f,
   data)))``); target: papy within ``IMAP_CHAIN_TARGET`` times.

Run: ``python benchmarks/papy_pipeline.py [items]``. The last line is the
target of the current engine issue for (2), with PASS or MISS; ``run.py``'s
``papy`` section measures (2) too and puts it in its summary.
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time

from imap import IMap
from papy import Piper, Plumber

# Target: an inline 3-piper pipeline costs at most this many times nested
# generators calling the same functions.
INLINE_OVERHEAD_TARGET = 5.0
INLINE_ROUNDS = 7      # runs of the inline measurement; the median is reported
# Target: a pipeline of cheap stages on an IMap costs at most this many times
# the same chain as nested tasks of an IMap.
IMAP_CHAIN_TARGET = 1.3
CHAIN_ROUNDS = 5


def burn(x: int, ms: float = 5.0) -> int:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass
    return x + 1


def stage(inbox):
    return burn(inbox[0])


def plain_stage(x):
    return burn(x)


def light(inbox):
    return inbox[0] + 1


def run_plumber(plumber: Plumber, data) -> list:
    plumber.start([data])
    plumber.run()
    plumber.wait()
    plumber.stop()
    return next(iter(plumber.results.values()))


def chained_cpu(items: int) -> tuple[float, float]:
    pool = IMap(worker_type="process", worker_num=2)
    plumber = Plumber(keep=True)
    plumber.add_pipers([Piper(stage, parallel=pool) for _ in range(3)])
    t = time.perf_counter()
    out = run_plumber(plumber, range(items))
    papy_time = time.perf_counter() - t
    with multiprocessing.get_context("forkserver").Pool(2) as p:
        t = time.perf_counter()
        ref = list(p.imap(plain_stage, p.imap(plain_stage, p.imap(plain_stage,
                                                                  range(items)))))
        pool_time = time.perf_counter() - t
    assert out == ref
    return papy_time, pool_time


def plain_light(x: int) -> int:
    return x + 1


def imap_chain(items: int) -> tuple[float, float]:
    """(papy on an IMap, nested IMap tasks) seconds for 3 cheap stages, each
    timed over the whole job: start, every result, stop (a Plumber's run
    ends with ``stop()``, which ends the IMap's workers; the nested tasks'
    IMap is stopped by its ``with`` block, inside the timing too)."""
    pool = IMap(worker_type="process", worker_num=2)
    plumber = Plumber(keep=True)
    plumber.add_pipers([Piper(light, parallel=pool) for _ in range(3)])
    t = time.perf_counter()
    out = run_plumber(plumber, range(items))
    papy_time = time.perf_counter() - t
    with IMap(worker_type="process", worker_num=2) as m:
        task = m.add_task(plain_light, m.add_task(plain_light, m.add_task(
            plain_light, range(items))))
        t = time.perf_counter()
        m.start()
        ref = list(task)
    imap_time = time.perf_counter() - t
    assert out == ref
    return papy_time, imap_time


def inline_overhead(items: int) -> tuple[float, float]:
    plumber = Plumber(keep=True)
    plumber.add_pipers([Piper(light) for _ in range(3)])
    t = time.perf_counter()
    out = run_plumber(plumber, range(items))
    papy_time = time.perf_counter() - t
    t = time.perf_counter()
    ref = list(light((x,)) for x in (light((x,)) for x in (light((x,))
                                                           for x in range(items))))
    gen_time = time.perf_counter() - t
    assert out == ref
    return papy_time, gen_time


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    a, b = chained_cpu(n)
    print(f"3 x 5 ms stages, {n} items, 2 processes: papy {a:.2f} s, nested Pool.imap "
          f"{b:.2f} s, ratio papy/Pool {a / b:.2f}")
    m = 100 * n
    # One run lasts a few tens of milliseconds: take the median of several,
    # each timing both (as run.py's papy section does).
    runs = [inline_overhead(m) for _ in range(INLINE_ROUNDS)]
    a = statistics.median(r[0] for r in runs)
    b = statistics.median(r[1] for r in runs)
    ratio = statistics.median(r[0] / r[1] for r in runs)
    print(f"inline 3-piper pipeline, {m} items, median of {INLINE_ROUNDS} runs: "
          f"{a / m * 1e6:.2f} us/item, nested generators {b / m * 1e6:.3f} us/item, "
          f"ratio {ratio:.1f}")
    verdict = "PASS" if ratio <= INLINE_OVERHEAD_TARGET else "MISS"
    print(f"target: inline 3-piper overhead <= {INLINE_OVERHEAD_TARGET:g} x nested "
          f"generators: {ratio:.1f} x  {verdict}")
    k = 500 * n
    runs = [imap_chain(k) for _ in range(CHAIN_ROUNDS)]
    ratio = statistics.median(r[0] / r[1] for r in runs)
    a = statistics.median(r[0] for r in runs)
    b = statistics.median(r[1] for r in runs)
    verdict = "PASS" if ratio <= IMAP_CHAIN_TARGET else "MISS"
    print(f"3 cheap stages on a 2-process IMap, {k} items, median of {CHAIN_ROUNDS} "
          f"runs: papy {a:.2f} s, nested IMap tasks {b:.2f} s, ratio {ratio:.2f}")
    print(f"target: papy over nested IMap tasks <= {IMAP_CHAIN_TARGET:g} x: "
          f"{ratio:.2f} x  {verdict}")
