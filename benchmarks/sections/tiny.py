"""Section 1: tiny tasks (``x + 1``), the per-tasklet overhead.

Two tables: the input is a ``range`` (1a), then a generator (1b), because an
engine may draw the two differently (a container in bulk, a generator one
``next()`` at a time, with a guard for one that blocks).
"""

import functools

import adapters as ad
import dep_workloads as dw
import harness as h
import workloads as wl

NAME = "tiny"

POOL_256 = "Pool.imap chunksize=256"
PYPELN_ITEMS = 10_000   # pypeln sends items one by one (~3,000 items/s here)
TUNED = dict(stride=1024, buffer=1024, chunksize=256)


def source_of(kind, n):
    """A zero-argument callable returning a fresh input of ``n`` ints."""
    if kind == "range":
        return functools.partial(range, n)
    return functools.partial(wl.gen_ints, n)


def default_row_items(cfg, kind, label):
    """Items for the imap default-settings row: all of them unless a probe
    run says that takes too long (``cfg["default_budget"]``)."""
    n, probe = cfg["tiny_items"], min(cfg["tiny_items"], cfg["probe_items"])
    speed = h.probe_rate(label, ad.run_imap, [wl.inc], source_of(kind, probe), h.add,
                         h.ints_expect(probe), start_method=cfg["start_method"])
    return h.capped_items(n, [speed], cfg["default_budget"], probe), speed


def run(cfg, summary):
    for kind in ("range", "generator"):
        run_kind(cfg, summary, kind)


def run_kind(cfg, summary, kind):
    n = cfg["tiny_items"]
    stages = [wl.inc]
    source = source_of(kind, n)
    expect = h.ints_expect(n)
    sm = cfg["start_method"]
    rep = cfg["repeats"]
    fast = max(rep, cfg["repeats_fast"])   # runs well under a second: more repeats
    what = "ints" if kind == "range" else "ints from a generator"
    h.log(f"[tiny] x + 1 over {n:,} {what}")
    rows, notes = [], []
    dflt = None
    if cfg["imap_ok"]:
        k, speed = default_row_items(cfg, kind, "imap (defaults)")
        label = "imap (defaults)" if k == n else f"imap (defaults) [{k:,} items]"
        dflt = h.measure(label, ad.run_imap, stages, source_of(kind, k), h.add,
                         h.ints_expect(k), rep, items=k, start_method=sm)
        rows.append(dflt)
        if kind == "range":   # the cost of a functional dependency that is met
            required = h.measure("imap (defaults), @imap.require('math')", ad.run_imap,
                                 [dw.inc_required], source_of(kind, k), h.add,
                                 h.ints_expect(k), rep, items=k, start_method=sm)
            rows.append(required)
        if k < n:
            notes.append(h.cap_note("imap (defaults)", k, n, speed, cfg["default_budget"]))
        rows.append(h.measure("imap stride=1024 buffer=1024 chunksize=256 (tuned)",
                              ad.run_imap, stages, source, h.add, expect, fast,
                              start_method=sm, **TUNED))
    ref = h.measure(POOL_256, ad.run_pool_nested, stages, source, h.add, expect, fast,
                    chunksize=256, start_method=sm)
    rows.append(ref)
    if kind == "range":
        rows.append(h.measure("Pool.imap chunksize=1 (default)", ad.run_pool_nested,
                              stages, source, h.add, expect, rep, chunksize=1,
                              start_method=sm))
    rows.append(h.measure("ProcessPoolExecutor.map chunksize=256", ad.run_ppe, stages,
                          source, h.add, expect, fast, chunksize=256, start_method=sm))
    rows.append(h.measure("mpire imap chunk_size=256", ad.run_mpire, stages, source,
                          h.add, expect, fast, chunk_size=256, start_method=sm))
    if kind == "range":
        n_pl = min(n, PYPELN_ITEMS)
        rows.append(h.measure(f"pypeln process.map workers=2 (unordered; {n_pl:,} items)",
                              ad.run_pypeln, stages, source_of(kind, n_pl), h.add,
                              h.ints_expect(n_pl), rep, items=n_pl, workers=h.WORKERS))
    rows.append(h.measure("serial, in-process (reference)", ad.run_serial, stages, source,
                          h.add, expect, fast))
    h.run_interleaved(rows)

    ref_ips = n / ref.med("total") if ref.ok else None
    out, errors = [], []
    for r in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, "-", "-", "-", "-", "-", "-"])
            continue
        ips = (r.items or n) / r.med("total")
        vs = h.ratio(ips / ref_ips) if ref_ips else "-"
        out.append([r.label, r.n, h.f3(r.med("startup")), h.f3(r.med("total")),
                    h.f3(r.med("cpu")), h.rate(ips), vs])
    number = "1a" if kind == "range" else "1b"
    h.print_section(
        f"{number}. Tiny tasks: x + 1 over {n:,} {what}, {h.WORKERS} workers",
        ["system", "runs", "startup s", "run s", "parent CPU s", "items/s",
         "vs Pool cs=256"],
        out, errors,
        ["items/s = items / run time (after start-up and warm-up); "
         "vs Pool cs=256 = items/s divided by Pool.imap(chunksize=256)'s;",
         "parent CPU s = CPU time of the consuming process, all its threads, "
         "during the run (on 2 CPUs it is taken from the workers)."]
        + notes + h.settings_note(rows))

    v = None
    if dflt is not None and dflt.ok and ref_ips:
        v = h.paired_ratio(ref, dflt) * dflt.items / n   # items/s over Pool's
    h.target(summary, "tiny", f"imap defaults / Pool.imap(chunksize=256) items/s, "
             f"{'range' if kind == 'range' else 'generator'} input", ">= 1.00", v,
             lambda x: x >= 1.0)
    if kind == "range" and dflt is not None:
        row = h.find(rows, "imap (defaults), @imap.require('math')")
        d = h.paired_ratio(dflt, row) if dflt.ok and row is not None and row.ok else None
        h.target(summary, "tiny", "a met @imap.require / undecorated items/s (imap defaults)",
                 ">= 0.97", d, lambda x: x >= 0.97)
