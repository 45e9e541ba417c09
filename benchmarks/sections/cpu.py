"""Section 2: CPU-bound calls of ~2 ms, the speed-up over the serial loop."""

import functools
import os

import adapters as ad
import harness as h
import workloads as wl

NAME = "cpu"

TUNED = dict(stride=2, buffer=4, chunksize=1)


def run(cfg, summary):
    n = cfg["cpu_items"]
    stages = [functools.partial(wl.burn, n=cfg["n_cpu"])]
    source = functools.partial(range, n)
    expect = h.ints_expect(n)
    sm = cfg["start_method"]
    rep = cfg["repeats"]
    h.log(f"[cpu] spin({cfg['n_cpu']}) x {n} items")
    serial, dflt, rows = h.serial_and_imap_rows(cfg, stages, source, expect, rep, TUNED)
    rows.append(h.measure("Pool.imap chunksize=1 (default)", ad.run_pool_nested, stages,
                          source, h.add, expect, rep, chunksize=1, start_method=sm))
    rows.append(h.measure("ProcessPoolExecutor.map chunksize=1", ad.run_ppe, stages,
                          source, h.add, expect, rep, chunksize=1, start_method=sm))
    rows.append(h.measure("mpire imap chunk_size=1", ad.run_mpire, stages, source, h.add,
                          expect, rep, chunk_size=1, start_method=sm))
    rows.append(h.measure("pypeln process.map workers=2 (unordered)", ad.run_pypeln,
                          stages, source, h.add, expect, rep, workers=h.WORKERS))
    half = max(1, n // h.WORKERS)
    ceiling = h.measure(f"(ceiling) Pool.imap chunksize={half}: 1 chunk/worker",
                        ad.run_pool_nested, stages, source, h.add, expect, rep,
                        chunksize=half, start_method=sm)
    rows.append(ceiling)
    h.run_interleaved(rows)

    st = serial.med("total") if serial.ok else None
    out, errors = h.speedup_rows(rows, serial)
    per_call = (st / n * 1000) if st else float("nan")
    h.print_section(
        f"2. CPU-bound: {n} items x spin({cfg['n_cpu']:,}) "
        f"(~{per_call:.2f} ms serial each), {h.WORKERS} workers",
        ["system", "startup s", "run s", "parent CPU s", "speed-up"], out, errors,
        ["speed-up = serial run time / run time (ideal on 2 workers: 2.00; "
         f"this machine has {os.cpu_count()} CPUs).",
         "(ceiling): the same work in one message per worker, no per-item "
         "IPC: what these CPUs allow for 2 processes.",
         "tuned: one tasklet running and one queued per worker, one per message."]
        + h.settings_note(rows))

    v = None
    if dflt is not None and dflt.ok and ceiling.ok:
        v = h.paired_ratio(ceiling, dflt)   # = speed-up / ceiling speed-up
    h.target(summary, "cpu", "imap defaults speed-up / (ceiling) speed-up, ~2 ms calls",
             ">= 0.97", v, lambda x: x >= 0.97)
