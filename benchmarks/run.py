"""imap benchmarks: side by side with multiprocessing.Pool, ProcessPoolExecutor,
mpire and pypeln, 2 process workers each, printed as one report.

    python benchmarks/run.py              # the full run (several minutes)
    python benchmarks/run.py --quick      # small sizes, a smoke run
    python benchmarks/run.py --only chain # some sections (see --help)

This file is the entry point: options, the calibration, the header, the
sections in order (``sections/``, one module each) and the summary of
targets. See benchmarks/README.md for what each section measures.
"""

import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _setup_path():
    """Make this folder's modules importable here and in every worker process.

    Workers started by spawn or forkserver import functions by module name;
    putting this directory on PYTHONPATH (inherited by every child) makes
    that work for every system and start method alike.
    """
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if HERE not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([HERE] + parts)


_setup_path()

import harness as h  # noqa: E402
import workloads as wl  # noqa: E402
from sections import (  # noqa: E402
    arrays,
    chain,
    cpu,
    dask_cluster,
    memory,
    mixed,
    observability,
    papy_inline,
    remote,
    stragglers,
    tiny,
)

SECTIONS = (tiny, cpu, mixed, chain, memory, remote, papy_inline, observability,
            dask_cluster, stragglers, arrays)
NAMES = tuple(s.NAME for s in SECTIONS)

# Sizes. *_budget: (full, capped) seconds for a default-settings imap row,
# whose speed a probe run of *probe_items measures first: it runs all the
# items if that takes at most `full` seconds, else what it does in `capped`.
FULL = dict(tiny_items=100_000, cpu_items=1000, mixed_items=1000, chain_items=200,
            mem_items=1_000_000, papy_items=20_000, repeats=5, repeats_fast=7,
            probe_items=5000, default_budget=(5.0, 2.0), mem_probe_items=5000,
            mem_budget=(90.0, 30.0))
QUICK = dict(tiny_items=10_000, cpu_items=100, mixed_items=200, chain_items=40,
             mem_items=20_000, papy_items=2000, repeats=1, repeats_fast=1,
             probe_items=2000, default_budget=(0.5, 0.3), mem_probe_items=2000,
             mem_budget=(3.0, 2.0))

CPU_SECONDS = 0.002       # target duration of one CPU-bound call, serial
CHAIN_SECONDS = 0.005     # per stage of the chain
CONSUMER_SECONDS = 20e-6  # per-item work of the memory workload's consumer


def _imap_available():
    try:
        import imap  # noqa: F401
        return True, getattr(imap, "__version__", "?")
    except Exception as exc:   # not written yet, or broken
        return False, f"{type(exc).__name__}: {exc}"


def versions():
    from importlib.metadata import version

    out = []
    for mod in ("mpire", "pypeln", "imap"):
        try:
            out.append(f"{mod} {version(mod)}")
        except Exception:
            ok = _imap_available()[0] if mod == "imap" else False
            out.append(f"{mod} {'(source tree)' if ok else 'missing'}")
    return ", ".join(out)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes and 1 repeat: a smoke run, figures not representative")
    p.add_argument("--only", default=None,
                   help="comma-separated sections to run: " + ", ".join(NAMES))
    p.add_argument("--items", type=int, default=None,
                   help="items of the memory section (default 1,000,000; 20,000 with --quick)")
    p.add_argument("--mem-imap-defaults", action="store_true",
                   help="run the memory section's imap default-settings row over all the "
                        "items even when it is slow (by default it is capped to about "
                        "a minute)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per measurement (median reported; default 5, 7 for the fast "
                        "sections, 1 with "
                        "--quick)")
    p.add_argument("--start-method", default=None, choices=["fork", "forkserver", "spawn"],
                   help="force one start method on imap, Pool, ProcessPoolExecutor and "
                        "mpire (default: each system's own default; pypeln always uses "
                        "multiprocessing's default)")
    p.add_argument("--_mem-child", dest="mem_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    only = NAMES
    if args.only:
        only = tuple(s.strip() for s in args.only.split(",") if s.strip())
        bad = [s for s in only if s not in NAMES]
        if bad:
            p.error(f"unknown section(s) {bad}; choose from {', '.join(NAMES)}")
    return args, only


def configure(args):
    cfg = dict(QUICK if args.quick else FULL)
    if args.items is not None:
        cfg["mem_items"] = args.items
    if args.repeats is not None:
        cfg["repeats"] = max(1, args.repeats)
    cfg["start_method"] = args.start_method
    cfg["mem_imap_defaults"] = args.mem_imap_defaults
    cfg["imap_ok"], cfg["imap_info"] = _imap_available()
    h.log("calibrating the CPU work ...")
    n_cpu = wl.calibrate(CPU_SECONDS)
    cfg["n_cpu"] = n_cpu
    cfg["n_per_ms"] = n_cpu / (CPU_SECONDS * 1000)
    cfg["n_chain"] = int(n_cpu * CHAIN_SECONDS / CPU_SECONDS)
    cfg["n_consume"] = max(1, int(n_cpu * CONSUMER_SECONDS / CPU_SECONDS))
    return cfg


def print_header(cfg, quick):
    import multiprocessing as mp

    print("imap benchmarks" + ("  [--quick: smoke run, figures not representative]"
                               if quick else ""))
    print(f"python {platform.python_version()} on {platform.system()} "
          f"{platform.machine()}, {os.cpu_count()} CPUs; {versions()}")
    if not cfg["imap_ok"]:
        print(f"imap NOT importable ({cfg['imap_info']}): imap rows skipped")
    sm = cfg["start_method"]
    print(f"{h.WORKERS} process workers per system; start method: "
          + (f"{sm} for all but pypeln ({mp.get_start_method()})" if sm else
             f"each system's default (imap: forkserver; Pool, ProcessPoolExecutor, "
             f"mpire, pypeln: {mp.get_start_method()})"))
    print(f"each figure: median of {cfg['repeats']} timed run(s) (rows marked 'runs': "
          "that many), run round by round across systems; time.perf_counter;\n"
          "start-up (pool creation + warm-up) timed separately; a target's ratio of two "
          "rows is the median of their per-round ratios")
    print(f"calibrated once: spin({cfg['n_cpu']:,}) ~ {CPU_SECONDS * 1e3:g} ms, "
          f"spin({cfg['n_chain']:,}) ~ {CHAIN_SECONDS * 1e3:g} ms, consumer "
          f"spin({cfg['n_consume']:,}) ~ {CONSUMER_SECONDS * 1e6:g} us")
    sys.stdout.flush()


def main(argv=None):
    args, only = parse_args(argv)
    if args.mem_child:
        memory.child(json.loads(args.mem_child))
        return 0

    t_start = time.perf_counter()
    whole_run = h.ForeignCpu()
    cfg = configure(args)
    print_header(cfg, args.quick)
    summary = []
    for section in SECTIONS:
        if section.NAME not in only:
            continue
        meter = h.ForeignCpu()
        section.run(cfg, summary)
        share = meter.share()
        if share is not None:
            print(f"  other programs used {share:.0%} of the CPUs during this section"
                  + (" -- figures disturbed" if share > 0.1 else ""))

    h.print_summary(summary, "Summary: targets of the adaptive-flow issue "
                             "(imap at default settings, 2 workers)")
    if args.quick:
        print("(--quick: sizes are small; verdicts are indicative only)")
    share = whole_run.share()
    print(f"\nwall time of this run: {time.perf_counter() - t_start:.0f} s"
          + ("" if share is None else
             f"; other programs used {share:.0%} of the CPUs meanwhile"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
