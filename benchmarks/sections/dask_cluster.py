"""Section 9: IMap(executor=client) on a Dask LocalCluster against Dask's own idioms.

The cluster: 2 worker processes of 1 thread each on 127.0.0.1, started once
for the section (its start-up is not timed). Three workloads:

* the chain of 3 CPU stages (section 4): ``imap`` with 3 chained tasks on
  the cluster, ``client.map`` chained through futures then
  ``as_completed``, and ``dask.bag`` ``map().map().map()``: first result and
  total;
* tiny ``x + 1``: ``imap`` at defaults against ``dask.bag`` with one
  partition per 2 500 items and ``client.map`` (one task per item, so over
  fewer items);
* memory: the parent's RSS growth while 10^6 items of 1 KB flow through
  ``imap`` (3 cheap stages), and while ``client.map`` holds a future per item
  over fewer items (its growth is per item: it scales with the input).
"""

import functools
import os
import statistics
import time

import harness as h
import rss
import workloads as wl

NAME = "dask"
CHAIN_FIRST_TARGET = 0.1   # seconds
MB = 2 ** 20


def timed(runs, repeats):
    """``{label: [(first, total), ...]}``: each of ``runs`` (label -> a
    function returning (first, total) seconds) run ``repeats`` times, round
    by round (one run of each per round, as in the other sections)."""
    out = {label: [] for label in runs}
    for _ in range(repeats):
        for label, run in runs.items():
            out[label].append(run())
    return out


def medians(pairs):
    """(median first, median total) of a list of (first, total)."""
    return (statistics.median(p[0] for p in pairs),
            statistics.median(p[1] for p in pairs))


def imap_chain(client, stages, n, expect):
    from imap import IMap

    def run():
        t0 = time.perf_counter()
        with IMap(executor=client) as m:
            last = range(n)
            for f in stages:
                last = m.add_task(f, last)
            m.start()
            first = None
            acc = 0
            for r in last:
                first = first or time.perf_counter() - t0
                acc += r
        assert acc == expect, (acc, expect)
        return first, time.perf_counter() - t0
    return run


def futures_chain(client, stages, n, expect):
    from distributed import as_completed

    def run():
        t0 = time.perf_counter()
        futures = list(range(n))
        for f in stages:
            futures = client.map(f, futures, pure=False)
        first = None
        acc = 0
        for future in as_completed(futures, loop=client.loop):
            first = first or time.perf_counter() - t0
            acc += future.result()
        assert acc == expect
        return first, time.perf_counter() - t0
    return run


def bag_chain(client, stages, n, expect, per_partition):
    import dask.bag as db

    def run():
        t0 = time.perf_counter()
        bag = db.from_sequence(range(n), partition_size=per_partition)
        for f in stages:
            bag = bag.map(f)
        acc = sum(client.compute(bag).result())
        assert acc == expect
        total = time.perf_counter() - t0
        return total, total
    return run


def growth(run):
    """Peak RSS growth of this process (MB) while ``run()`` runs."""
    sampler = rss.RssSampler()
    sampler.start()
    try:
        run()
    finally:
        sampler.stop()
    return sampler.growth_self / MB


def run(cfg, summary):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        h.log("[dask] distributed is not installed (the dask extra): section skipped")
        return
    rep = cfg["repeats"]
    n = cfg["chain_items"]
    work = functools.partial(wl.burn, n=cfg["n_chain"])
    stages = [work, work, work]
    chain_expect = sum(x + 3 for x in range(n))
    tiny_n = cfg["tiny_items"]
    h.log("[dask] starting a LocalCluster of 2 processes x 1 thread")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.run(os.getpid)   # workers up
        rows = []
        h.log("[dask] chain")
        chain = {
            "imap: IMap(executor=client), 3 chained tasks": imap_chain(
                client, stages, n, chain_expect),
            "client.map x 3 chained via futures, as_completed": futures_chain(
                client, stages, n, chain_expect),
            "dask.bag map().map().map(), 10 items a partition": bag_chain(
                client, stages, n, chain_expect, 10),
        }
        chain_runs = timed(chain, rep)
        chain_res = {label: medians(pairs) for label, pairs in chain_runs.items()}
        for label, (first, total) in chain_res.items():
            rows.append(["chain 3 x 5 ms x " + str(n), label, h.f4(first), h.f3(total),
                         "-"])
        h.log("[dask] tiny")
        k = min(tiny_n, 2_000)   # one Dask task per item: a few hundred a second
        tiny = {
            f"imap: IMap(executor=client) defaults ({tiny_n:,} items)": (
                imap_chain(client, [wl.inc], tiny_n, sum(x + 1 for x in range(tiny_n))),
                tiny_n),
            f"dask.bag map, 2,500 items a partition ({tiny_n:,} items)": (
                bag_chain(client, [wl.inc], tiny_n, sum(x + 1 for x in range(tiny_n)),
                          2500), tiny_n),
            f"client.map, one task per item ({k:,} items)": (
                futures_chain(client, [wl.inc], k, sum(x + 1 for x in range(k))), k),
        }
        tiny_rate = {}
        tiny_runs = timed({label: f for label, (f, _) in tiny.items()}, rep)
        for label, (_, items) in tiny.items():
            first, total = medians(tiny_runs[label])
            tiny_rate[label] = items / total
            rows.append(["tiny x + 1", label, h.f4(first), h.f3(total),
                         h.rate(tiny_rate[label])])
        h.log("[dask] memory")
        mem_n = cfg.get("dask_memory_items", 1_000_000)
        fut_n = 20_000

        def imap_mem():
            from imap import IMap
            with IMap(executor=client) as m:
                last = wl.gen_items(mem_n)
                for f in (wl.stage_a, wl.stage_b, wl.stage_c):
                    last = m.add_task(f, last)
                m.start()
                for _ in last:
                    pass

        def futures_mem():
            futures = [wl.make_item(i) for i in range(fut_n)]
            for f in (wl.stage_a, wl.stage_b, wl.stage_c):
                futures = client.map(f, futures, pure=False)
            for future in futures:
                future.result()

        imap_mb = growth(imap_mem)
        fut_mb = growth(futures_mem)
        rows.append([f"memory 1 KB x {mem_n:,}", "imap: IMap(executor=client), 3 tasks",
                     "-", "-", f"+{imap_mb:.0f} MB"])
        rows.append([f"memory 1 KB x {fut_n:,}", "client.map x 3 over the whole input",
                     "-", "-", f"+{fut_mb:.0f} MB ({fut_mb * MB / fut_n / 1024:.1f} KB/item)"])

    h.print_section(
        "9. A Dask LocalCluster (2 processes x 1 thread): IMap(executor=...) and "
        "Dask's idioms",
        ["workload", "system", "first s", "total s", "items/s or RSS growth"], rows, [],
        ["first = latency to the first result of the last stage (a bag gives all at "
         "once); medians of the runs; the cluster's start-up is not timed.",
         "memory: peak RSS growth of this (the client) process."])
    imap_label = "imap: IMap(executor=client), 3 chained tasks"
    first = chain_res[imap_label][0]
    # per round: imap's total over the best idiom's total in that round
    ratios = [pairs[0][1] / min(p[1] for p in pairs[1:])
              for pairs in zip(chain_runs[imap_label],
                               *(v for label, v in chain_runs.items() if label != imap_label),
                               strict=True)]
    h.target(summary, "dask", "chain first result (s)", f"<= {CHAIN_FIRST_TARGET}", first,
             lambda x: x <= CHAIN_FIRST_TARGET, h.f4)
    h.target(summary, "dask", "chain total / best Dask idiom (median of rounds)", "<= 1.10",
             statistics.median(ratios), lambda x: x <= 1.10)
    imap_tiny = next(v for label, v in tiny_rate.items() if label.startswith("imap"))
    best_tiny = max(v for label, v in tiny_rate.items() if not label.startswith("imap"))
    h.target(summary, "dask", "tiny items/s / best Dask idiom", ">= 0.80",
             imap_tiny / best_tiny, lambda x: x >= 0.8)
    h.target(summary, "dask", "memory 10^6 x 1 KB: parent RSS growth (MB)", "<= 100",
             imap_mb, lambda x: x <= 100, lambda x: f"{x:.0f}")
