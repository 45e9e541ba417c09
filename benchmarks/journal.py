"""What a journal costs (``IMap(journal=path)``), and how fast a run resumes.

Run: ``python benchmarks/journal.py [--repeats 5] [--quick]``. Rows:

* *tiny*: ``x + 1`` over 100,000 ints, IMap defaults (2 worker processes),
  without and with a journal: the journal records every result (a pickle
  and a row each); target: at most 30 % more time.
* *chain*: 3 chained tasks of ~2 ms of CPU each over 200 items, defaults,
  without and with a journal; target: at most 10 % more time.
* *resume*: a journal holding 100,000 recorded results; a run of the same
  program over 110,000 items replays them and computes the 10,000 others:
  the time from ``IMap()`` to the first result, and to the last; target for
  the whole resume past the 100,000: under 2 s.

The runs of a row pair alternate (without, with, without, ...) and the
ratio is the median of the paired ratios, as in ``benchmarks/run.py``. The
consumer thread's CPU time per result, with and without, is shown too: it is
what the journal adds where the consumer is the bottleneck, and it does not
depend on the load of the machine as wall times do.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workloads as wl  # noqa: E402

from imap import IMap  # noqa: E402

CONSUMER_CPU: dict = {}   # label -> the consumer thread's CPU seconds, per run


def run_chain(stages, n, journal=None):
    """Seconds to run ``stages`` chained over ``range(n)`` and take every result
    (the consuming thread's CPU time is noted in CONSUMER_CPU)."""
    began = time.perf_counter()
    with IMap(worker_num=2, journal=journal) as m:
        it = range(n)
        for stage in stages:
            it = m.add_task(stage, it)
        m.start()
        cpu = time.thread_time()
        count = sum(1 for _ in it)
        CONSUMER_CPU.setdefault(journal is not None, []).append(time.thread_time() - cpu)
    assert count == n
    return time.perf_counter() - began


def paired(label, stages, n, repeats):
    """Alternate runs without and with a (fresh) journal; print the figures."""
    plain, journaled, ratios = [], [], []
    CONSUMER_CPU.clear()
    with tempfile.TemporaryDirectory() as tmp:
        run_chain(stages, min(n, 1000))   # warm the start method up
        for r in range(repeats):
            a = run_chain(stages, n)
            b = run_chain(stages, n, Path(tmp, f"journal-{r}"))
            plain.append(a)
            journaled.append(b)
            ratios.append(b / a)
    ratio = statistics.median(ratios)
    extra = (statistics.median(CONSUMER_CPU[True]) - statistics.median(CONSUMER_CPU[False]))
    print(f"{label:<34} {statistics.median(plain):8.3f} s  {statistics.median(journaled):8.3f} s"
          f"  {100 * (ratio - 1):+6.1f} %   consumer CPU +{1e6 * extra / n:.2f} us/result",
          flush=True)
    return ratio


def resume(recorded, extra, repeats):
    """Record ``recorded`` results, then time runs that replay them and compute
    ``extra`` more: (to the first result, to the last), medians."""
    firsts, totals = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "journal")
        with IMap(worker_num=2, journal=path) as m:
            it = m.add_task(wl.inc, range(recorded))
            m.start()
            assert sum(1 for _ in it) == recorded
        conn = sqlite3.connect(path)
        last = conn.execute("SELECT MAX(seq) FROM results").fetchone()[0]
        conn.close()
        for _ in range(repeats):
            began = time.perf_counter()
            with IMap(worker_num=2, journal=path) as m:
                it = m.add_task(wl.inc, range(recorded + extra))
                m.start()
                next(it)
                first = time.perf_counter() - began
                count = 1 + sum(1 for _ in it)
                replayed = m.status().tasks[0].replayed
            totals.append(time.perf_counter() - began)
            firsts.append(first)
            assert count == recorded + extra and replayed == recorded
            # the journal now holds the extra ones too: forget them for the next run
            conn = sqlite3.connect(path)
            conn.execute("DELETE FROM results WHERE seq > ?", (last,))
            conn.commit()
            conn.close()
    return statistics.median(firsts), statistics.median(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer items")
    args = parser.parse_args()
    tiny = 20_000 if args.quick else 100_000
    chain = 60 if args.quick else 200
    n_spin = wl.calibrate(0.002)
    print(f"journal cost, IMap defaults (2 worker processes), median of {args.repeats}; "
          f"spin({n_spin:,}) ~ 2 ms")
    print(f"{'':<34} {'without':>10}  {'with':>10}  {'cost':>8}")
    tiny_ratio = paired(f"tiny: x + 1 x {tiny:,}", [wl.inc], tiny, args.repeats)
    burn = _Burn(n_spin)
    chain_ratio = paired(f"chain: 3 x 2 ms x {chain}", [burn, burn, burn], chain,
                         args.repeats)
    recorded = 20_000 if args.quick else 100_000
    first, total = resume(recorded, recorded // 10, args.repeats)
    print(f"resume past {recorded:,} recorded results (+{recorded // 10:,} computed): "
          f"first result {first:.3f} s, all {total:.3f} s")
    print(f"targets: tiny <= +30 % ({'met' if tiny_ratio <= 1.3 else 'MISSED'}), chain "
          f"<= +10 % ({'met' if chain_ratio <= 1.1 else 'MISSED'}), resume < 2 s "
          f"({'met' if total < 2 else 'MISSED'})")


class _Burn:
    """``burn(x, n)`` with ``n`` bound (a picklable callable, named for the journal)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, x):
        return wl.burn(x, self.n)


if __name__ == "__main__":
    main()
