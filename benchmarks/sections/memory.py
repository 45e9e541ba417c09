"""Section 5: peak RSS growth of a long chained run over 1 KB items.

Each system runs in a fresh interpreter (``run.py --_mem-child SPEC``), so
memory freed but kept by the allocator after an earlier measurement can
neither hide nor inflate its growth; :func:`child` is that interpreter's
entry point.
"""

import functools
import json
import os
import subprocess
import sys

import adapters as ad
import harness as h
import rss
import workloads as wl

NAME = "memory"

RUN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run.py")
MB = 2 ** 20
RSS_TARGET_MB = 50

SYSTEMS = {
    # key: (label, adapter name, options)
    "imap": ("imap: 1 IMap, 3 chained tasks (defaults)", "run_imap", {}),
    "imap-tuned": ("imap: same, stride=1024 buffer=3072 chunksize=256 (tuned)", "run_imap",
                   {"stride": 1024, "buffer": 3072, "chunksize": 256}),
    "pool": ("Pool: 1 shared Pool, nested imap chunksize=256", "run_pool_nested",
             {"chunksize": 256}),
}


def child(spec):
    """Entry point of the fresh interpreter for one memory measurement."""
    _, adapter_name, options = SYSTEMS[spec["system"]]
    options = dict(options)
    if spec.get("start_method"):
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
        run = adapter(stages, functools.partial(wl.gen_items, n), wl.fold_bytes,
                      consume=consume, on_started=sampler.mark, **options)
    finally:
        sampler.stop()
    out = dict(startup=run.startup, first=run.first, total=run.total,
               count=run.count, checksum=run.checksum,
               growth_self=sampler.growth_self,
               growth_tree=sampler.growth_tree,
               growth_tree_run=sampler.growth_tree_run,
               base_self=sampler.base_self, samples=sampler.samples,
               high_water=(run.extra or {}).get("high_water"),
               settings=(run.extra or {}).get("settings"))
    print("MEMRESULT " + json.dumps(out), flush=True)


@functools.lru_cache
def _expected_checksum(n):
    return wl.expected_bytes_checksum(n)


def _measure(key, n, cfg):
    """One system over ``n`` items in a fresh interpreter: its result dict."""
    spec = dict(system=key, items=n, consume_n=cfg["n_consume"],
                start_method=cfg["start_method"])
    proc = subprocess.run([sys.executable, RUN_PY, "--_mem-child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=h.MEASUREMENT_TIMEOUT)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MEMRESULT ")]
    if proc.returncode != 0 or not line:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"child exited {proc.returncode}: {tail}")
    res = json.loads(line[-1][len("MEMRESULT "):])
    expect = _expected_checksum(n)
    if (res["count"], res["checksum"]) != (n, expect):
        raise RuntimeError(f"WRONG RESULTS: {res['count']} results, checksum "
                           f"{res['checksum']}, expected {n}, {expect}")
    return res


def _default_row_items(cfg):
    """Items for imap at default settings: all of them, unless a probe says
    that takes too long (``cfg["mem_budget"]``) and --mem-imap-defaults is
    not given."""
    n = cfg["mem_items"]
    if cfg["mem_imap_defaults"]:
        return n, None
    probe = min(n, cfg["mem_probe_items"])
    h.log(f"  probe: imap defaults over {probe:,} items ...")
    try:
        res = _measure("imap", probe, cfg)
    except Exception as exc:
        h.log(f"    probe failed: {exc}")
        return min(n, probe), None
    speed = probe / res["total"]
    return h.capped_items(n, [speed], cfg["mem_budget"], probe), speed


def run(cfg, summary):
    n = cfg["mem_items"]
    h.log(f"[memory] 3 stages over {n:,} items of {wl.ITEM_SIZE} B")
    plan = [("pool", n)]
    notes = []
    if cfg["imap_ok"]:
        k, speed = _default_row_items(cfg)
        plan = [("imap", k), ("imap-tuned", n)] + plan
        if k < n:
            notes.append(h.cap_note("imap (defaults)", k, n, speed, cfg["mem_budget"])
                         + " --mem-imap-defaults runs all.")
    results = []
    for key, items in plan:
        label = SYSTEMS[key][0]
        if items != n:
            label += f" [{items:,} items]"
        h.log(f"  {label} ...")
        try:
            res = _measure(key, items, cfg)
            h.log(f"    total {res['total']:.1f}s  parent +{res['growth_self'] / MB:.1f} MB")
            results.append((key, label, items, res, None))
        except Exception as exc:
            results.append((key, label, items, None, f"{type(exc).__name__}: {exc}"))

    by_key = {key: (items, res) for key, _, items, res, _ in results if res}
    shown = h.describe_settings(by_key.get("imap", (0, {}))[1].get("settings"))
    if shown:
        notes.append(f"imap (defaults): the IMap reported {shown} after its run.")
    out, errors = [], []
    for _key, label, items, res, err in results:
        if err:
            errors.append((label, err))
            out.append([label, "-", "-", "-", "-", "-", "-"])
            continue
        tree = res["growth_tree_run"]
        out.append([label, h.f3(res["startup"]), f"{res['total']:.1f}",
                    h.rate(items / res["total"]), f"{res['growth_self'] / MB:.1f}",
                    "-" if tree is None else f"{tree / MB:.1f}",
                    "-" if res["high_water"] is None else str(res["high_water"])])
    h.print_section(
        f"5. Memory: 3 chained stages over {n:,} items of {wl.ITEM_SIZE} B "
        f"(lazy generator), consumer spin({cfg['n_consume']}) per item",
        ["system", "startup s", "run s", "items/s", "parent +MB", "tree +MB (run)",
         "high-water"], out, errors,
        ["RSS sampled at 20 Hz; each system runs in a fresh interpreter.",
         "parent +MB = peak RSS of the consuming process (start-up and run) "
         "minus its RSS just before the pool was created;",
         "tree +MB (run) = peak summed RSS of parent + all child processes "
         "during the timed run minus that sum once the workers were up;",
         "high-water = most imap tasklets alive at once (<= buffer)."] + notes)

    items, res = by_key.get("imap", (n, None))
    what = f"imap defaults parent RSS growth, {items:,} items (MB)"
    if items < n:
        what += f" [capped from {n:,}]"
    h.target(summary, "memory", what, f"<= {RSS_TARGET_MB}",
             None if res is None else res["growth_self"] / MB,
             lambda x: x <= RSS_TARGET_MB, lambda x: f"{x:.1f}")
    res = by_key.get("imap-tuned", (n, None))[1]
    h.target(summary, "memory", f"imap tuned parent RSS growth, {n:,} items (MB)",
             f"<= {RSS_TARGET_MB}", None if res is None else res["growth_self"] / MB,
             lambda x: x <= RSS_TARGET_MB, lambda x: f"{x:.1f}")
