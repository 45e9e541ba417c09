"""Section 4: a chain of 3 CPU stages, latency to the first result and total."""

import functools

import adapters as ad
import harness as h
import workloads as wl

NAME = "chain"

TUNED = dict(stride=2, buffer=12, chunksize=1)
FIRST_TARGET = 0.030   # seconds
SLACK = 0.05           # allowed over the ceiling's total/(serial/2)


def run(cfg, summary):
    n = cfg["chain_items"]
    work = functools.partial(wl.burn, n=cfg["n_chain"])
    stages = [work, work, work]
    source = functools.partial(range, n)
    expect = h.ints_expect(n, plus=3)
    sm = cfg["start_method"]
    rep = cfg["repeats"]
    h.log(f"[chain] 3 x spin({cfg['n_chain']}) x {n} items")
    serial = h.measure("serial, in-process", ad.run_serial, stages, source, h.add,
                       expect, rep)
    rows = [(serial, "1 (this)")]
    dflt = None
    if cfg["imap_ok"]:
        dflt = h.measure("imap: 1 IMap, 3 chained tasks (defaults)", ad.run_imap, stages,
                         source, h.add, expect, rep, start_method=sm)
        rows.append((dflt, "2"))
        rows.append((h.measure("imap: same, stride=2 buffer=12 chunksize=1 (tuned)",
                               ad.run_imap, stages, source, h.add, expect, rep,
                               start_method=sm, **TUNED), "2"))
    rows.append((h.measure("Pool: 1 shared Pool, nested imap", ad.run_pool_nested,
                           stages, source, h.add, expect, rep, chunksize=1,
                           start_method=sm), "2"))
    rows.append((h.measure("Pool: 3 Pools of 2, one per stage", ad.run_pool_per_stage,
                           stages, source, h.add, expect, rep, chunksize=1,
                           start_method=sm), "6"))
    rows.append((h.measure("pypeln: 3 stages, workers=1 each (unordered)", ad.run_pypeln,
                           stages, source, h.add, expect, rep, workers=1), "3"))
    rows.append((h.measure("pypeln: 3 stages, workers=2 each (unordered)", ad.run_pypeln,
                           stages, source, h.add, expect, rep, workers=2), "6"))
    half = max(1, n // h.WORKERS)
    ceiling = h.measure(
        f"(ceiling) Pool, 3 stages in one call, chunksize={half}", ad.run_pool_nested,
        [functools.partial(wl.burn_chain, n=cfg["n_chain"], stages=3)], source, h.add,
        expect, rep, chunksize=half, start_method=sm)
    rows.append((ceiling, "2"))
    h.run_interleaved([r for r, _ in rows])

    st = serial.med("total") if serial.ok else None
    out, errors = [], []
    for r, procs in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, procs, "-", "-", "-", "-", "-"])
            continue
        rel = h.ratio(r.med("total") / (st / 2)) if st else "-"
        out.append([r.label, procs, h.f3(r.med("startup")), h.f4(r.med("first")),
                    h.f3(r.med("total")), h.f3(r.med("cpu")), rel])
    per_stage = (st / n / 3 * 1000) if st else float("nan")
    h.print_section(
        f"4. Chain of 3 tasks: {n} items x 3 x spin({cfg['n_chain']:,}) "
        f"(~{per_stage:.2f} ms serial each)",
        ["system", "procs", "startup s", "first s", "total s", "parent CPU s",
         "total/(serial/2)"], out, errors,
        ["startup = pool creation + warm-up (not in first/total); first = "
         "latency to the first result of the last stage;",
         "total/(serial/2) = total time / half the serial time (1.00 = "
         "perfect use of 2 workers).",
         "pypeln needs >= 1 process per stage: workers=1 each (3 processes, "
         "closest to 2) and workers=2 each (6, like 3 Pools of 2).",
         "(ceiling): the whole chain of an item in one call, one message per "
         "worker: the best these CPUs allow for 2 processes.",
         "tuned: the seed's defaults with the buffer doubled (2 x 3 x 2), one "
         "tasklet per message."]
        + h.settings_note([r for r, _ in rows]))

    rel = limit = first = None
    if dflt is not None and dflt.ok and st:
        rel = 2 * h.paired_ratio(dflt, serial)   # total / (serial/2), round by round
        first = dflt.med("first")
        if ceiling.ok:
            limit = 2 * h.paired_ratio(ceiling, serial) + SLACK
    if rel is not None and limit is not None:
        h.target(summary, "chain", "imap defaults total / (serial/2)",
                 f"<= {limit:.2f} (ceiling + {SLACK:.2f})", rel, lambda x: x <= limit)
    else:
        h.target(summary, "chain", "imap defaults total / (serial/2)",
                 f"<= (ceiling) + {SLACK:.2f}", None, None)
    h.target(summary, "chain", "imap defaults first result (s)",
             f"<= {FIRST_TARGET:.3f}", first, lambda x: x <= FIRST_TARGET, h.f4)
