"""Section 8: what seeing a run costs: statistics and progress bars.

The tiny workload (``x + 1`` over a ``range``) at default settings, where a
per-batch cost shows most: as it runs; with the engine's statistics
bookkeeping made a no-op (the timing the flow policy needs stays: workers
time batches either way); and with ``progress=True`` (a tqdm bar written to
a null stream, updated by its own thread).
"""

import functools
import os

import adapters as ad
import harness as h
import workloads as wl

NAME = "observability"


def null_bar():
    """A tqdm class writing to a null stream, with no monitor thread."""
    from tqdm import tqdm

    class NullBar(tqdm):
        monitor_interval = 0

    return functools.partial(NullBar, file=open(os.devnull, "w"))  # noqa: SIM115


ITEMS_FACTOR = 5   # longer runs than section 1: the differences sought are small


def run(cfg, summary):
    n = cfg["tiny_items"] * ITEMS_FACTOR
    stages = [wl.inc]
    source = functools.partial(range, n)
    expect = h.ints_expect(n)
    sm = cfg["start_method"]
    reps = max(cfg["repeats"], cfg["repeats_fast"])
    if not cfg["imap_ok"]:
        return
    h.log(f"[observability] x + 1 over {n:,} ints")
    base = h.measure("imap (defaults)", ad.run_imap, stages, source, h.add, expect, reps,
                     start_method=sm)
    off = h.measure("imap (defaults), statistics off", ad.run_imap, stages, source, h.add,
                    expect, reps, start_method=sm, statistics=False)
    bar = h.measure("imap (defaults), progress=True", ad.run_imap, stages, source, h.add,
                    expect, reps, start_method=sm, progress=null_bar())
    rows = [base, off, bar]
    h.run_interleaved(rows)
    out, errors = [], []
    for r in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, "-", "-", "-", "-"])
            continue
        vs = h.ratio(base.med("total") / r.med("total")) if base.ok else "-"
        out.append([r.label, r.n, h.f3(r.med("total")), h.rate(n / r.med("total")), vs])
    h.print_section(
        f"8. Cost of statistics and progress bars: x + 1 over {n:,} ints, "
        f"{h.WORKERS} workers",
        ["system", "runs", "run s", "items/s", "speed vs defaults"], out, errors,
        ["statistics off: the engine's per-batch statistics bookkeeping made a no-op "
         "for the run (the workers' timing stays: the flow policy needs it);",
         "speed vs defaults = run time of the defaults row / this row's (below 1: slower)."])
    cost = None
    if base.ok and off.ok:
        cost = base.med("total") / off.med("total") - 1
    h.target(summary, "observability", "statistics cost, tiny at defaults", "<= 3 %", cost,
             lambda x: x <= 0.03, lambda x: f"{x:+.1%}")
    slower = None
    if base.ok and bar.ok:
        slower = bar.med("total") / base.med("total") - 1
    h.target(summary, "observability", "progress=True cost, tiny at defaults", "report",
             slower, lambda x: True, lambda x: f"{x:+.1%}")
