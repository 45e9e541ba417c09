"""imap benchmarks: side by side with multiprocessing.Pool, ProcessPoolExecutor,
mpire and pypeln, 2 process workers each, printed as one report.

    python benchmarks/run.py              # the full run (a few minutes)
    python benchmarks/run.py --quick      # small sizes, a smoke run
    python benchmarks/run.py --only chain # one section: tiny, cpu, chain, memory

See benchmarks/README.md for what each section measures and how to read it.
"""

import argparse
import contextlib
import faulthandler
import functools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _setup_path():
    """Make ``workloads`` importable here and in every worker process.

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

import adapters as ad  # noqa: E402
import rss  # noqa: E402
import workloads as wl  # noqa: E402

WORKERS = 2
SECTIONS = ("tiny", "cpu", "chain", "memory", "remote")
MEASUREMENT_TIMEOUT = 900   # seconds; a hung measurement dumps stacks and exits

FULL = dict(tiny_items=100_000, cpu_items=1000, chain_items=200,
            mem_items=1_000_000, repeats=3, repeats_fast=7)
QUICK = dict(tiny_items=10_000, cpu_items=100, chain_items=40,
             mem_items=20_000, repeats=1, repeats_fast=1)

PYPELN_TINY_ITEMS = 10_000
CPU_SECONDS = 0.002       # target duration of one CPU-bound call, serial
CHAIN_SECONDS = 0.005     # per stage of the chain
CONSUMER_SECONDS = 20e-6  # per-item work of the memory workload's consumer


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _imap_available():
    try:
        import imap  # noqa: F401
        return True, getattr(imap, "__version__", "?")
    except Exception as exc:   # not written yet, or broken
        return False, f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------
# running measurements


class Row:
    """One system's figures in one section: medians over the repeats."""

    def __init__(self, label, runs=(), error=None, note=""):
        self.label = label
        self.runs = list(runs)
        self.error = error
        self.note = note
        self.items = None   # when this row ran on other sizes than the section
        self.spec = None    # what to run (see measure())
        self.repeats = 0

    @property
    def ok(self):
        return self.error is None and bool(self.runs)

    @property
    def n(self):
        return len(self.runs)

    def med(self, attr):
        return statistics.median(getattr(r, attr) for r in self.runs)

    def extra(self, key):
        vals = [r.extra.get(key) for r in self.runs if r.extra]
        vals = [v for v in vals if v is not None]
        return max(vals) if vals else None


def measure(label, adapter, stages, source, fold, expect, repeats,
            note="", **options):
    """A row to be run ``repeats`` times by :func:`run_interleaved`."""
    row = Row(label, note=note)
    row.spec = (adapter, stages, source, fold, expect, options)
    row.repeats = repeats
    return row


def run_interleaved(rows):
    """Run the rows' repeats round by round: round i runs every row once.

    Interleaving spreads a burst of outside load over all systems instead of
    all the repeats of one, so ratios within a section stay comparable.
    Every run's result count and checksum are checked.
    """
    rounds = max(r.repeats for r in rows)
    for i in range(rounds):
        log(f"  round {i + 1}/{rounds}")
        for row in rows:
            if row.error is None and i < row.repeats:
                _run_once(row)


def _run_once(row):
    adapter, stages, source, fold, expect, options = row.spec
    try:
        with watchdog(MEASUREMENT_TIMEOUT):
            run = adapter(stages, source, fold, **options)
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        log(f"    {row.label}: {row.error}")
        return
    if (run.count, run.checksum) != expect:
        row.error = (f"WRONG RESULTS: got {run.count} results, checksum "
                     f"{run.checksum}; expected {expect[0]}, {expect[1]}")
        log(f"    {row.label}: {row.error}")
        return
    row.runs.append(run)
    log(f"    {row.label}: startup {run.startup:.3f}s  first {run.first:.4f}s"
        f"  total {run.total:.3f}s")


@contextlib.contextmanager
def watchdog(seconds):
    """Dump every thread's stack and exit if the body runs too long.

    POSIX: ``signal.alarm``, no extra thread.  (``faulthandler``'s own timer
    is a C thread; a process with a thread that ``threading`` does not know
    changes how some systems fork, so it must not exist while we measure.)
    Elsewhere: ``faulthandler.dump_traceback_later``.
    """
    if not hasattr(signal, "SIGALRM"):
        faulthandler.dump_traceback_later(seconds, exit=True)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
        return

    def expired(_signum, _frame):
        log(f"\n!!! a measurement took more than {seconds} s: stacks follow")
        faulthandler.dump_traceback(all_threads=True)
        os._exit(3)

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _add(acc, r):
    return acc + r


# --------------------------------------------------------------------------
# printing


def table(headers, rows):
    """Left-align the first column, right-align the others."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    def fmt(cells):
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()
    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def print_section(title, headers, rows, errors, notes):
    print()
    print(title)
    print("=" * len(title))
    print(table(headers, rows))
    for label, err in errors:
        print(f"  ! {label}: {err}")
    for n in notes:
        print(f"  {n}")
    sys.stdout.flush()


def f3(x):
    return f"{x:.3f}"


def f4(x):
    return f"{x:.4f}"


def rate(x):
    return f"{x:,.0f}"


def ratio(x):
    return f"{x:.2f}"


# --------------------------------------------------------------------------
# sections


def section_tiny(cfg, summary):
    n = cfg["tiny_items"]
    stages = [wl.inc]
    source = functools.partial(range, n)
    expect = (n, n * (n - 1) // 2 + n)
    sm = cfg["start_method"]
    rep = cfg["repeats"]
    # runs of well under a second: more repeats for a steadier median
    fast = max(rep, cfg["repeats_fast"])
    log(f"[tiny] x + 1 over {n:,} ints")
    rows = []
    if cfg["imap_ok"]:
        rows.append(measure("imap (defaults)", ad.run_imap, stages, source,
                            _add, expect, rep, start_method=sm))
        rows.append(measure("imap stride=1024", ad.run_imap, stages, source,
                            _add, expect, fast, stride=1024, start_method=sm))
    rows.append(measure("Pool.imap chunksize=256", ad.run_pool_nested, stages,
                        source, _add, expect, fast, chunksize=256,
                        start_method=sm))
    rows.append(measure("Pool.imap chunksize=1 (default)", ad.run_pool_nested,
                        stages, source, _add, expect, rep, chunksize=1,
                        start_method=sm))
    rows.append(measure("ProcessPoolExecutor.map chunksize=256", ad.run_ppe,
                        stages, source, _add, expect, fast, chunksize=256,
                        start_method=sm))
    rows.append(measure("mpire imap chunk_size=256", ad.run_mpire, stages,
                        source, _add, expect, fast, chunk_size=256,
                        start_method=sm))
    # pypeln sends items one by one (~3,000 items/s here): fewer items
    n_pl = min(n, PYPELN_TINY_ITEMS)
    pl_row = measure(f"pypeln process.map workers=2 (unordered; {n_pl:,} items)",
                     ad.run_pypeln, stages, functools.partial(range, n_pl), _add,
                     (n_pl, n_pl * (n_pl - 1) // 2 + n_pl), rep, workers=WORKERS)
    pl_row.items = n_pl
    rows.append(pl_row)
    serial = measure("serial, in-process (reference)", ad.run_serial, stages,
                     source, _add, expect, fast)
    rows.append(serial)
    run_interleaved(rows)

    ref = next((r for r in rows if r.label == "Pool.imap chunksize=256"
                and r.ok), None)
    out, errors = [], []
    for r in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, "-", "-", "-", "-", "-", "-"])
            continue
        ips = (r.items or n) / r.med("total")
        vs = ratio(ips / (n / ref.med("total"))) if ref else "-"
        out.append([r.label, r.n, f3(r.med("startup")), f3(r.med("total")),
                    f3(r.med("cpu")), rate(ips), vs])
    print_section(
        f"1. Tiny tasks: x + 1 over {n:,} ints, {WORKERS} workers",
        ["system", "runs", "startup s", "run s", "parent CPU s", "items/s",
         "vs Pool cs=256"],
        out, errors,
        ["items/s = items / run time (after start-up and warm-up); "
         "vs Pool cs=256 = items/s divided by Pool.imap(chunksize=256)'s;",
         "parent CPU s = CPU time of the consuming process, all its threads, "
         "during the run (on 2 CPUs it is taken from the workers)."])

    def get(label):
        return next((r for r in rows if r.label == label and r.ok), None)

    big, dflt = get("imap stride=1024"), get("imap (defaults)")
    if ref and big:
        v = ref.med("total") / big.med("total")
        summary.append(("tiny", "imap(stride=1024) / Pool.imap(chunksize=256)"
                        " items/s", ">= 0.50", ratio(v), v >= 0.5))
    else:
        summary.append(("tiny", "imap(stride=1024) / Pool.imap(chunksize=256)"
                        " items/s", ">= 0.50", "n/a", None))
    if ref and dflt:
        v = ref.med("total") / dflt.med("total")
        summary.append(("tiny", "imap(defaults) / Pool.imap(chunksize=256) "
                        "items/s", "(report)", ratio(v), "-"))


def section_cpu(cfg, summary):
    n = cfg["cpu_items"]
    work = functools.partial(wl.burn, n=cfg["n_cpu"])
    stages = [work]
    source = functools.partial(range, n)
    expect = (n, n * (n - 1) // 2 + n)
    sm = cfg["start_method"]
    rep = cfg["repeats"]
    log(f"[cpu] spin({cfg['n_cpu']}) x {n} items")
    serial = measure("serial, in-process", ad.run_serial, stages, source,
                     _add, expect, rep)
    rows = [serial]
    if cfg["imap_ok"]:
        rows.append(measure("imap (defaults)", ad.run_imap, stages, source,
                            _add, expect, rep, start_method=sm))
        rows.append(measure("imap buffer=4 (2 x default; diagnostic)",
                            ad.run_imap, stages, source, _add, expect, rep,
                            buffer=2 * WORKERS, start_method=sm))
    rows.append(measure("Pool.imap chunksize=1 (default)", ad.run_pool_nested,
                        stages, source, _add, expect, rep, chunksize=1,
                        start_method=sm))
    rows.append(measure("ProcessPoolExecutor.map chunksize=1", ad.run_ppe,
                        stages, source, _add, expect, rep, chunksize=1,
                        start_method=sm))
    rows.append(measure("mpire imap chunk_size=1", ad.run_mpire, stages,
                        source, _add, expect, rep, chunk_size=1,
                        start_method=sm))
    rows.append(measure("pypeln process.map workers=2 (unordered)",
                        ad.run_pypeln, stages, source, _add, expect, rep,
                        workers=WORKERS))
    rows.append(measure(f"(ceiling) Pool.imap chunksize={n // WORKERS}: "
                        "1 chunk/worker", ad.run_pool_nested, stages, source,
                        _add, expect, rep, chunksize=max(1, n // WORKERS),
                        start_method=sm))
    run_interleaved(rows)
    out, errors = [], []
    st = serial.med("total") if serial.ok else None
    for r in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, "-", "-", "-", "-"])
            continue
        sp = ratio(st / r.med("total")) if st else "-"
        out.append([r.label, f3(r.med("startup")), f3(r.med("total")),
                    f3(r.med("cpu")), sp])
    per_call = (st / n * 1000) if st else float("nan")
    print_section(
        f"2. CPU-bound: {n} items x spin({cfg['n_cpu']:,}) "
        f"(~{per_call:.2f} ms serial each), {WORKERS} workers",
        ["system", "startup s", "run s", "parent CPU s", "speed-up"], out,
        errors,
        ["speed-up = serial run time / run time (ideal on 2 workers: 2.00; "
         f"this machine has {os.cpu_count()} CPUs).",
         "(ceiling): the same work in one message per worker, no per-item "
         "IPC: what these CPUs allow for 2 processes.",
         "imap's default buffer is stride x tasks = 2: one tasklet per worker,"
         " none queued; the diagnostic row doubles it (no target)."])
    im = next((r for r in rows if r.label == "imap (defaults)" and r.ok), None)
    if im and st:
        v = st / im.med("total")
        summary.append(("cpu", "imap speed-up over serial", ">= 1.85",
                        ratio(v), v >= 1.85))
    else:
        summary.append(("cpu", "imap speed-up over serial", ">= 1.85", "n/a",
                        None))


def section_chain(cfg, summary):
    n = cfg["chain_items"]
    work = functools.partial(wl.burn, n=cfg["n_chain"])
    stages = [work, work, work]
    source = functools.partial(range, n)
    expect = (n, n * (n - 1) // 2 + 3 * n)
    sm = cfg["start_method"]
    rep = cfg["repeats"]
    log(f"[chain] 3 x spin({cfg['n_chain']}) x {n} items")
    serial = measure("serial, in-process", ad.run_serial, stages, source,
                     _add, expect, rep)
    rows = [(serial, "1 (this)")]
    if cfg["imap_ok"]:
        rows.append((measure("imap: 1 IMap, 3 chained tasks", ad.run_imap,
                             stages, source, _add, expect, rep,
                             start_method=sm), "2"))
        rows.append((measure("imap: same, buffer=12 (2 x default; diagnostic)",
                             ad.run_imap, stages, source, _add, expect, rep,
                             buffer=2 * WORKERS * 3, start_method=sm), "2"))
    rows.append((measure("Pool: 1 shared Pool, nested imap",
                         ad.run_pool_nested, stages, source, _add, expect,
                         rep, chunksize=1, start_method=sm), "2"))
    rows.append((measure("Pool: 3 Pools of 2, one per stage",
                         ad.run_pool_per_stage, stages, source, _add, expect,
                         rep, chunksize=1, start_method=sm), "6"))
    rows.append((measure("pypeln: 3 stages, workers=1 each (unordered)",
                         ad.run_pypeln, stages, source, _add, expect, rep,
                         workers=1), "3"))
    rows.append((measure("pypeln: 3 stages, workers=2 each (unordered)",
                         ad.run_pypeln, stages, source, _add, expect, rep,
                         workers=2), "6"))
    rows.append((measure(
        f"(ceiling) Pool, 3 stages in one call, chunksize={n // WORKERS}",
        ad.run_pool_nested,
        [functools.partial(wl.burn_chain, n=cfg["n_chain"], stages=3)],
        source, _add, expect, rep, chunksize=max(1, n // WORKERS),
        start_method=sm), "2"))
    run_interleaved([r for r, _ in rows])
    st = serial.med("total") if serial.ok else None
    out, errors = [], []
    for r, procs in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, procs, "-", "-", "-", "-", "-"])
            continue
        rel = ratio(r.med("total") / (st / 2)) if st else "-"
        out.append([r.label, procs, f3(r.med("startup")), f4(r.med("first")),
                    f3(r.med("total")), f3(r.med("cpu")), rel])
    per_stage = (st / n / 3 * 1000) if st else float("nan")
    print_section(
        f"3. Chain of 3 tasks: {n} items x 3 x spin({cfg['n_chain']:,}) "
        f"(~{per_stage:.2f} ms serial each)",
        ["system", "procs", "startup s", "first s", "total s",
         "parent CPU s", "total/(serial/2)"], out, errors,
        ["startup = pool creation + warm-up (not in first/total); first = "
         "latency to the first result of the last stage;",
         "total/(serial/2) = total time / half the serial time (1.00 = "
         "perfect use of 2 workers).",
         "pypeln needs >= 1 process per stage: workers=1 each (3 processes, "
         "closest to 2) and workers=2 each (6, like 3 Pools of 2).",
         "(ceiling): the whole chain of an item in one call, one message per "
         "worker: the best these CPUs allow for 2 processes.",
         "imap's default buffer is stride x tasks = 2 x 3 = 6; the diagnostic "
         "row doubles it (no target)."])
    im = next((r for r, _ in rows
               if r.label == "imap: 1 IMap, 3 chained tasks" and r.ok), None)
    if im and st:
        v = im.med("total") / (st / 2)
        summary.append(("chain", "imap total / (serial/2)", "<= 1.10",
                        ratio(v), v <= 1.10))
        fr = im.med("first")
        summary.append(("chain", "imap first result (s)", "<= 0.100",
                        f4(fr), fr <= 0.1))
    else:
        summary.append(("chain", "imap total / (serial/2)", "<= 1.10", "n/a",
                        None))
        summary.append(("chain", "imap first result (s)", "<= 0.100", "n/a",
                        None))


# ---- memory: each system in a fresh interpreter, so the allocator state
# left by earlier measurements cannot hide (or inflate) its growth.

MEM_SYSTEMS = {
    # key: (label, adapter name, options)
    "imap": ("imap: 1 IMap, 3 chained tasks (defaults)", "run_imap", {}),
    "imap-1024": ("imap: 1 IMap, 3 chained tasks, stride=1024", "run_imap",
                  {"stride": 1024}),
    "pool": ("Pool: 1 shared Pool, nested imap chunksize=256",
             "run_pool_nested", {"chunksize": 256}),
}


def memory_child(spec):
    """Entry point of the fresh interpreter for one memory measurement."""
    _, adapter_name, options = MEM_SYSTEMS[spec["system"]]
    options = dict(options)
    if spec.get("start_method") and spec["system"] != "pypeln":
        options["start_method"] = spec["start_method"]
    n = spec["items"]
    spin_n = spec["consume_n"]
    stages = [wl.stage_a, wl.stage_b, wl.stage_c]

    def consume(_r):
        wl.spin(spin_n)

    adapter = getattr(ad, adapter_name)
    # import what the system needs before the baseline, alike for everyone
    import multiprocessing.pool  # noqa: F401
    if spec["system"].startswith("imap"):
        import imap  # noqa: F401
    sampler = rss.RssSampler(interval=0.05)   # baseline before the pool
    sampler.start()
    try:
        run = adapter(stages, functools.partial(wl.gen_items, n),
                      wl.fold_bytes, consume=consume,
                      on_started=sampler.mark, **options)
    finally:
        sampler.stop()
    out = dict(startup=run.startup, first=run.first, total=run.total,
               count=run.count, checksum=run.checksum,
               growth_self=sampler.growth_self,
               growth_tree=sampler.growth_tree,
               growth_tree_run=sampler.growth_tree_run,
               base_self=sampler.base_self, samples=sampler.samples,
               high_water=(run.extra or {}).get("high_water"))
    print("MEMRESULT " + json.dumps(out), flush=True)


def section_memory(cfg, summary):
    n = cfg["mem_items"]
    log(f"[memory] 3 stages over {n:,} items of {wl.ITEM_SIZE} B")
    log("  computing the expected checksum (serial) ...")
    expect_sum = wl.expected_bytes_checksum(n)
    keys = ["pool"]
    if cfg["imap_ok"]:
        keys = ["imap-1024"] + keys
        if cfg["mem_imap_defaults"]:
            keys = ["imap"] + keys
    results = []
    for key in keys:
        label = MEM_SYSTEMS[key][0]
        log(f"  {label} ...")
        spec = dict(system=key, items=n, consume_n=cfg["n_consume"],
                    start_method=cfg["start_method"])
        try:
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--_mem-child",
                 json.dumps(spec)], capture_output=True, text=True,
                timeout=MEASUREMENT_TIMEOUT)
            line = [ln for ln in proc.stdout.splitlines()
                    if ln.startswith("MEMRESULT ")]
            if proc.returncode != 0 or not line:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                raise RuntimeError(f"child exited {proc.returncode}: {tail}")
            res = json.loads(line[-1][len("MEMRESULT "):])
            if (res["count"], res["checksum"]) != (n, expect_sum):
                raise RuntimeError(
                    f"WRONG RESULTS: {res['count']} results, checksum "
                    f"{res['checksum']}, expected {n}, {expect_sum}")
            log(f"    total {res['total']:.1f}s  parent +"
                f"{res['growth_self'] / 2**20:.1f} MB")
            results.append((key, label, res, None))
        except Exception as exc:
            results.append((key, label, None, f"{type(exc).__name__}: {exc}"))
    mb = 2 ** 20
    out, errors = [], []
    for _key, label, res, err in results:
        if err:
            errors.append((label, err))
            out.append([label, "-", "-", "-", "-", "-", "-"])
            continue
        tree = res["growth_tree_run"]
        out.append([label, f3(res["startup"]), f"{res['total']:.1f}",
                    rate(n / res["total"]), f"{res['growth_self'] / mb:.1f}",
                    "-" if tree is None else f"{tree / mb:.1f}",
                    "-" if res["high_water"] is None
                    else str(res["high_water"])])
    print_section(
        f"4. Memory: 3 chained stages over {n:,} items of {wl.ITEM_SIZE} B "
        f"(lazy generator), consumer spin({cfg['n_consume']}) per item",
        ["system", "startup s", "run s", "items/s", "parent +MB",
         "tree +MB (run)", "high-water"], out, errors,
        ["RSS sampled at 20 Hz; each system runs in a fresh interpreter.",
         "parent +MB = peak RSS of the consuming process (start-up and run) "
         "minus its RSS just before the pool was created;",
         "tree +MB (run) = peak summed RSS of parent + all child processes "
         "during the timed run minus that sum once the workers were up;",
         "high-water = most imap tasklets alive at once (<= buffer)."]
        + ([] if cfg["mem_imap_defaults"] or not cfg["imap_ok"] else
           ["imap at default settings (stride 2) is not run here: add "
            "--mem-imap-defaults (slow at 10^6 items)."]))
    imaps = [(label, res) for key, label, res, err in results
             if key.startswith("imap") and res]
    if imaps:
        worst = max(res["growth_self"] for _, res in imaps) / mb
        summary.append(("memory", f"imap parent RSS growth at {n:,} items "
                        "(MB, worst imap row)", "<= 50", f"{worst:.1f}",
                        worst <= 50))
    else:
        summary.append(("memory", f"imap parent RSS growth at {n:,} items "
                        "(MB)", "<= 50", "n/a", None))


# --------------------------------------------------------------------------
# main


class ForeignCpu:
    """CPU time used by processes outside this run, over an interval.

    Busy time of the whole machine (``/proc/stat``) minus the CPU time of this
    process and all its descendants: what other programs took from the CPUs
    while we measured.  None where ``/proc`` is missing.
    """

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy(), _own()

    def share(self):
        """Foreign CPU as a fraction of all CPUs' time since creation."""
        busy = _busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        foreign = (busy - self.busy0) - (_own() - self.own0)
        return max(0.0, foreign) / (wall * (os.cpu_count() or 1))


def _busy():
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: all but idle, iowait
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


def _own():
    """CPU time of this run: this process, its reaped children, and every
    live descendant with its own reaped children (forkserver workers are
    children of the fork server, not of this process)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in rss.tree_pids()[1:]:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15]) / tick  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            pass
    return total


def versions():
    out = []
    for mod in ("mpire", "pypeln", "imap"):
        try:
            from importlib.metadata import version
            out.append(f"{mod} {version(mod)}")
        except Exception:
            ok, v = (_imap_available() if mod == "imap" else (False, "?"))
            out.append(f"{mod} {'(source tree)' if ok else 'missing'}")
    return ", ".join(out)


def section_remote(cfg, summary):
    """2 remote workers on one local imap-server against 2 local processes."""
    import cloudpickle

    from imap.embedded import local

    # The server has no copy of this folder: send the workloads by value.
    cloudpickle.register_pickle_by_value(wl)
    n_tiny, n_cpu = cfg["tiny_items"], cfg["cpu_items"]
    tiny_sum = n_tiny * (n_tiny - 1) // 2 + n_tiny
    tiny = ([wl.inc], functools.partial(range, n_tiny), (n_tiny, tiny_sum))
    burn = functools.partial(wl.burn, n=cfg["n_cpu"])
    cpu = ([burn], functools.partial(range, n_cpu), (n_cpu, n_cpu * (n_cpu - 1) // 2 + n_cpu))
    rep, fast = cfg["repeats"], max(cfg["repeats"], cfg["repeats_fast"])
    log(f"[remote] {WORKERS} remote workers on a local imap-server")
    with local(WORKERS) as remote:
        serial = measure("serial, in-process", ad.run_serial, cpu[0], cpu[1], _add, cpu[2], rep)
        rows = [
            measure("tiny: remote, stride=1024", ad.run_imap, *tiny[:2], _add, tiny[2], fast,
                    stride=1024, remote=remote),
            measure("tiny: processes, stride=1024", ad.run_imap, *tiny[:2], _add, tiny[2],
                    fast, stride=1024, start_method=cfg["start_method"]),
            serial,
            measure("cpu: remote (defaults)", ad.run_imap, *cpu[:2], _add, cpu[2], rep,
                    remote=remote),
            measure("cpu: processes (defaults)", ad.run_imap, *cpu[:2], _add, cpu[2], rep,
                    start_method=cfg["start_method"]),
        ]
        run_interleaved(rows)
    st = serial.med("total") if serial.ok else None
    out, errors = [], []
    for r in rows:
        if not r.ok:
            errors.append((r.label, r.error))
            out.append([r.label, "-", "-", "-", "-"])
            continue
        n = n_tiny if r.label.startswith("tiny") else n_cpu
        speed = ratio(st / r.med("total")) if st and r.label.startswith("cpu") else "-"
        out.append([r.label, f3(r.med("startup")), f3(r.med("total")),
                    rate((r.items or n) / r.med("total")), speed])
    print_section(
        f"5. Remote: {WORKERS} remote workers (one local imap-server) vs {WORKERS} processes",
        ["system", "startup s", "run s", "items/s", "speed-up"], out, errors,
        ["tiny: x + 1 over the tiny section's ints; cpu: the CPU section's work; "
         "speed-up = serial time / run time."])

    def get(label):
        return next((r for r in rows if r.label == label and r.ok), None)

    tiny_r, cpu_r = get("tiny: remote, stride=1024"), get("cpu: remote (defaults)")
    v = n_tiny / tiny_r.med("total") if tiny_r else None
    summary.append(("remote", "remote tiny tasks items/s (stride=1024)", ">= 100000",
                    rate(v) if v else "n/a", None if v is None else v >= 100_000))
    v = st / cpu_r.med("total") if cpu_r and st else None
    summary.append(("remote", "remote CPU-bound speed-up over serial", ">= 1.80",
                    ratio(v) if v else "n/a", None if v is None else v >= 1.8))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes and 1 repeat: a smoke run, figures "
                        "not representative")
    p.add_argument("--only", default=None,
                   help="comma-separated sections to run: "
                        + ", ".join(SECTIONS))
    p.add_argument("--items", type=int, default=None,
                   help="items of the memory section (default 1,000,000; "
                        "20,000 with --quick)")
    p.add_argument("--mem-imap-defaults", action="store_true",
                   help="also run imap at default settings in the memory "
                        "section (always on with --quick)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per measurement (median reported; "
                        "default 3, 1 with --quick)")
    p.add_argument("--start-method", default=None,
                   choices=["fork", "forkserver", "spawn"],
                   help="force one start method on imap, Pool, "
                        "ProcessPoolExecutor and mpire (default: each "
                        "system's own default; pypeln always uses "
                        "multiprocessing's default)")
    p.add_argument("--_mem-child", dest="mem_child", default=None,
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.mem_child:
        memory_child(json.loads(args.mem_child))
        return 0

    only = SECTIONS
    if args.only:
        only = tuple(s.strip() for s in args.only.split(",") if s.strip())
        bad = [s for s in only if s not in SECTIONS]
        if bad:
            p.error(f"unknown section(s) {bad}; choose from {SECTIONS}")

    cfg = dict(QUICK if args.quick else FULL)
    if args.items is not None:
        cfg["mem_items"] = args.items
    if args.repeats is not None:
        cfg["repeats"] = max(1, args.repeats)
    cfg["start_method"] = args.start_method
    cfg["mem_imap_defaults"] = args.mem_imap_defaults or args.quick
    cfg["imap_ok"], imap_info = _imap_available()

    t_start = time.perf_counter()
    whole_run = ForeignCpu()
    log("calibrating the CPU work ...")
    n_cpu = wl.calibrate(CPU_SECONDS)
    cfg["n_cpu"] = n_cpu
    cfg["n_chain"] = int(n_cpu * CHAIN_SECONDS / CPU_SECONDS)
    cfg["n_consume"] = max(1, int(n_cpu * CONSUMER_SECONDS / CPU_SECONDS))

    import multiprocessing as mp
    print("imap benchmarks" + ("  [--quick: smoke run, figures not "
                               "representative]" if args.quick else ""))
    print(f"python {platform.python_version()} on {platform.system()} "
          f"{platform.machine()}, {os.cpu_count()} CPUs; {versions()}")
    if not cfg["imap_ok"]:
        print(f"imap NOT importable ({imap_info}): imap rows skipped")
    sm = args.start_method
    print(f"{WORKERS} process workers per system; start method: "
          + (f"{sm} for all but pypeln ({mp.get_start_method()})" if sm else
             f"each system's default (imap: forkserver; Pool, "
             f"ProcessPoolExecutor, mpire, pypeln: "
             f"{mp.get_start_method()})"))
    print(f"each figure: median of {cfg['repeats']} timed run(s) (rows "
          "marked 'runs': that many), run round by round across systems; "
          "time.perf_counter;\nstart-up (pool creation + warm-up) timed "
          "separately")
    print(f"calibrated once: spin({n_cpu:,}) ~ {CPU_SECONDS * 1e3:g} ms, "
          f"spin({cfg['n_chain']:,}) ~ {CHAIN_SECONDS * 1e3:g} ms, consumer "
          f"spin({cfg['n_consume']:,}) ~ {CONSUMER_SECONDS * 1e6:g} us")
    sys.stdout.flush()

    summary = []
    runners = dict(tiny=section_tiny, cpu=section_cpu, chain=section_chain,
                   memory=section_memory, remote=section_remote)
    for name in SECTIONS:
        if name in only:
            meter = ForeignCpu()
            runners[name](cfg, summary)
            share = meter.share()
            if share is not None:
                print(f"  other programs used {share:.0%} of the CPUs during "
                      "this section" + (" -- figures disturbed" if share > 0.1
                                        else ""))

    print()
    title = "Summary: targets (imap, 2 workers)"
    print(title)
    print("=" * len(title))
    rows = []
    for sec, what, target, value, ok in summary:
        verdict = {True: "PASS", False: "MISS", None: "n/a"}.get(ok, ok)
        rows.append([sec, what, target, value, verdict])
    print(table(["section", "measure", "target", "measured", "result"], rows))
    if args.quick:
        print("(--quick: sizes are small; verdicts are indicative only)")
    share = whole_run.share()
    print(f"\nwall time of this run: {time.perf_counter() - t_start:.0f} s"
          + ("" if share is None else
             f"; other programs used {share:.0%} of the CPUs meanwhile"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
