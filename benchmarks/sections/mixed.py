"""Section 3: mixed durations, CPU calls of 0.1-10 ms drawn at random.

Uneven tasklets test load balance: a batch of many long calls on one worker
leaves the other idle at the end. The durations are a hash of the item
(``workloads.mixed_ms``), so every system gets the same ones.
"""

import functools
import os

import adapters as ad
import harness as h
import workloads as wl

NAME = "mixed"

POOL_256 = "Pool.imap chunksize=256"
TUNED = dict(stride=2, buffer=4, chunksize=1)


def run(cfg, summary):
    n = cfg["mixed_items"]
    work = functools.partial(wl.mixed, n_per_ms=cfg["n_per_ms"])
    stages = [work]
    source = functools.partial(range, n)
    expect = h.ints_expect(n)
    sm = cfg["start_method"]
    rep = cfg["repeats"]
    work_ms = sum(wl.mixed_ms(i) for i in range(n))
    h.log(f"[mixed] {n} items of {wl.MIXED_MIN_MS:g}-{wl.MIXED_MAX_MS:g} ms "
          f"(~{work_ms / 1000:.1f} s in all)")
    serial, dflt, rows = h.serial_and_imap_rows(cfg, stages, source, expect, rep, TUNED)
    rows.append(h.measure("Pool.imap chunksize=1 (default)", ad.run_pool_nested, stages,
                          source, h.add, expect, rep, chunksize=1, start_method=sm))
    pool256 = h.measure(POOL_256, ad.run_pool_nested, stages, source, h.add, expect, rep,
                        chunksize=256, start_method=sm)
    rows.append(pool256)
    rows.append(h.measure("ProcessPoolExecutor.map (default chunksize=1)", ad.run_ppe,
                          stages, source, h.add, expect, rep, chunksize=1,
                          start_method=sm))
    rows.append(h.measure("mpire imap (default chunk_size)", ad.run_mpire, stages, source,
                          h.add, expect, rep, start_method=sm))
    # The best 2 workers can do: each gets one message holding a contiguous
    # part of the items with half the total work (2 results in all).
    parts = wl.balanced_parts(n, h.WORKERS)
    ceiling = h.measure(
        "(ceiling) Pool, 1 message/worker, parts of equal work", ad.run_pool_nested,
        [functools.partial(wl.mixed_many, n_per_ms=cfg["n_per_ms"])],
        functools.partial(iter, parts), h.add, (len(parts), expect[1]), rep,
        chunksize=1, start_method=sm)
    rows.append(ceiling)
    h.run_interleaved(rows)

    out, errors = h.speedup_rows(rows, serial)
    shares = ", ".join(f"{sum(wl.mixed_ms(i) for i in p) / 1000:.2f}" for p in parts)
    h.print_section(
        f"3. Mixed: {n} items x {wl.MIXED_MIN_MS:g}-{wl.MIXED_MAX_MS:g} ms of spin "
        f"(log-uniform, ~{work_ms / n:.2f} ms mean), {h.WORKERS} workers",
        ["system", "startup s", "run s", "parent CPU s", "speed-up"], out, errors,
        ["speed-up = serial run time / run time (ideal on 2 workers: 2.00; "
         f"this machine has {os.cpu_count()} CPUs).",
         f"durations: a hash of the item (seed {wl.MIXED_SEED:#x}), the same for every "
         "system; work calibrated at the start of the run.",
         f"(ceiling): 2 messages, each a contiguous part of the items with half the "
         f"work ({shares} s nominal): no per-item IPC, no imbalance.",
         "tuned: one tasklet running and one queued per worker, one per message."]
        + h.settings_note(rows))

    v = w = None
    if dflt is not None and dflt.ok:
        v = h.paired_ratio(ceiling, dflt)
        w = h.paired_ratio(pool256, dflt)
    h.target(summary, "mixed", "imap defaults speed-up / (ceiling) speed-up, 0.1-10 ms",
             ">= 0.90", v, lambda x: x >= 0.9)
    h.target(summary, "mixed", "imap defaults speed-up / Pool.imap(chunksize=256)'s",
             ">= 0.95", w, lambda x: x >= 0.95)
