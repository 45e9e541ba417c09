"""Section 7: the per-item overhead of an inline papy pipeline.

The measurement is ``papy_pipeline.inline_overhead`` (the same one that
``benchmarks/papy_pipeline.py`` prints), repeated; no worker processes.
"""

import statistics

import harness as h

NAME = "papy"


TARGET_TEXT = "inline 3-piper pipeline / nested generators, time per item"
CHAIN_TEXT = "3 pipers on an IMap / the same as nested IMap tasks, time (start to stop)"


def run(cfg, summary):
    try:
        import papy_pipeline as pp
    except Exception as exc:   # papy or imap missing or broken
        h.print_section("7. papy: inline 3-piper pipeline", ["system"], [],
                        [("papy", f"{type(exc).__name__}: {exc}")], [])
        h.target(summary, "papy", TARGET_TEXT, "<= 5.00", None, None)
        return

    n = cfg["papy_items"]
    rep = max(cfg["repeats"], cfg["repeats_fast"])
    h.log(f"[papy] inline 3-piper pipeline over {n:,} items")
    ratios, papy_us, gen_us = [], [], []
    for i in range(rep):
        papy_s, gen_s = pp.inline_overhead(n)
        ratios.append(papy_s / gen_s)
        papy_us.append(papy_s / n * 1e6)
        gen_us.append(gen_s / n * 1e6)
        h.log(f"  round {i + 1}/{rep}: papy {papy_s:.3f}s  generators {gen_s:.3f}s")
    v = statistics.median(ratios)
    h.print_section(
        f"7. papy: inline 3-piper pipeline over {n:,} items",
        ["system", "runs", "us/item", "vs nested generators"],
        [["papy: Plumber, 3 inline pipers", rep, f"{statistics.median(papy_us):.2f}",
          h.ratio(v)],
         ["nested generators, same functions", rep, f"{statistics.median(gen_us):.3f}",
          "1.00"]],
        [],
        ["us/item = median run time / items; the ratio is the median of the runs' "
         "ratios (each run times both)."])
    h.target(summary, "papy", TARGET_TEXT, f"<= {pp.INLINE_OVERHEAD_TARGET:.2f}", v,
             lambda x: x <= pp.INLINE_OVERHEAD_TARGET)

    # papy's cost over the engine: the same 3 cheap stages on one 2-process
    # IMap, as pipers and as nested tasks (each timed start to stop).
    k = cfg["papy_items"] * 5
    h.log(f"[papy] 3 cheap pipers on an IMap vs nested IMap tasks, {k:,} items")
    runs = []
    for i in range(max(3, cfg["repeats"])):
        runs.append(pp.imap_chain(k))
        h.log(f"  round {i + 1}: papy {runs[-1][0]:.3f}s  nested tasks {runs[-1][1]:.3f}s")
    chain_ratio = statistics.median(a / b for a, b in runs)
    h.print_section(
        f"7b. papy over the engine: 3 cheap stages on one 2-process IMap, {k:,} items",
        ["system", "runs", "s (median)", "vs nested IMap tasks"],
        [["papy: Plumber, 3 pipers on the IMap", len(runs),
          f"{statistics.median(a for a, _ in runs):.3f}", h.ratio(chain_ratio)],
         ["nested IMap tasks, same functions", len(runs),
          f"{statistics.median(b for _, b in runs):.3f}", "1.00"]],
        [],
        ["each run times both, from start to stop; the ratio is the median of the runs' "
         "ratios."])
    h.target(summary, "papy", CHAIN_TEXT, f"<= {pp.IMAP_CHAIN_TARGET:.2f}", chain_ratio,
             lambda x: x <= pp.IMAP_CHAIN_TARGET)
