"""Section 11: arrays through a 2-stage chain (``x * 2``, then ``x + 1``).

float64 arrays of 1 MiB and of 64 MiB, 2 workers, every result checked
(its first and last element). Rows: imap at defaults (two chained tasks;
arrays travel through shared memory, see imap.transport.shm), ``Pool.imap`` nested
(the best of two chunk sizes), ``ProcessPoolExecutor.map`` twice, mpire and
joblib/loky (one call doing both stages: they have no chained map; joblib
memory-maps large arrays for its workers), Dask (``client.map`` twice over
scattered arrays, then ``as_completed``), imap on the same Dask cluster
(``IMap(executor=client)``: arrays travel as Dask frames), imap on an ``imap-server`` on
127.0.0.1 (1 MiB only: the arrays cross a loopback socket four times), and
the same work in this process.
MiB/s = array MiB / run time (start-up and warm-up not counted).

Then the parent's RSS growth while 10^4 arrays of 1 MiB go through imap at
defaults: bounded by buffer_bytes plus a constant, whatever the count.
"""

import statistics
import threading
import time

import array_workloads as aw
import harness as h

NAME = "arrays"
MiB = 2 ** 20
SIZES = {"1 MiB": (MiB, 400, 40), "64 MiB": (64 * MiB, 24, 4)}   # size, items, quick items
RSS_ARRAYS = (10_000, 500)   # full, quick


def _inputs(size, n):
    import numpy as np
    base = [np.full(size // 8, float(i)) for i in range(4)]
    return [base[i % 4] for i in range(n)], [2.0 * (i % 4) + 1 for i in range(n)]


def _check(results, expect):
    for r, e in zip(results, expect, strict=True):
        if r[0] != e or r[-1] != e:
            raise AssertionError(f"wrong result: {r[0]} != {e}")


def _imap(data, expect, **options):
    """imap with the workers held at the start line (gate.py) until the clock starts."""
    from gate import WorkerGate

    from imap import IMap
    gate = WorkerGate(h.WORKERS)
    with IMap(worker_num=h.WORKERS, initializer=aw.ready, initargs=(gate.port,),
              **options) as m:
        a = m.add_task(aw.double, data)
        b = m.add_task(aw.plus_one, a)
        m.start()
        gate.wait_ready(60)
        t = time.perf_counter()
        gate.open()
        out = []
        for r, e in zip(b, expect, strict=True):   # checked as it comes: the arrays go
            if r[0] != e or r[-1] != e:
                raise AssertionError(f"wrong result: {r[0]} != {e}")
            out.append(None)
        return time.perf_counter() - t, len(out)


def _timed_chain(m, data, expect):
    """Add the two stages to IMap ``m``, start it, and time its checked results."""
    a = m.add_task(aw.double, data)
    b = m.add_task(aw.plus_one, a)
    m.start()
    t = time.perf_counter()
    n = 0
    for r, e in zip(b, expect, strict=True):
        _check([r], [e])
        n += 1
    return time.perf_counter() - t, n


def _remote(data, expect):
    """imap on an imap-server on 127.0.0.1 (the arrays cross a socket both ways).

    The clock starts once start() has connected to every remote worker and
    run the warm-up there.
    """
    import cloudpickle

    from imap import IMap
    from imap.embedded import local
    # The server has no copy of this folder: send the stages by value.
    cloudpickle.register_pickle_by_value(aw)
    try:
        with local(h.WORKERS) as remote, \
                IMap(worker_type="thread", worker_num=0, worker_remote=remote,
                     initializer=aw.warm) as m:
            return _timed_chain(m, data, expect)
    finally:
        cloudpickle.unregister_pickle_by_value(aw)


def _pool(data, expect, chunksize):
    import multiprocessing
    with multiprocessing.Pool(h.WORKERS) as pool:
        pool.map(aw.warm, [None] * h.WORKERS)
        t = time.perf_counter()
        n = 0
        for r, e in zip(pool.imap(aw.plus_one, pool.imap(aw.double, data, chunksize),
                                  chunksize), expect, strict=True):
            _check([r], [e])
            n += 1
        return time.perf_counter() - t, n


def _ppe(data, expect):
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(h.WORKERS) as ex:
        list(ex.map(aw.warm, [None] * h.WORKERS))
        t = time.perf_counter()
        n = 0
        for r, e in zip(ex.map(aw.plus_one, ex.map(aw.double, data)), expect, strict=True):
            _check([r], [e])
            n += 1
        return time.perf_counter() - t, n


def _mpire(data, expect):
    from mpire import WorkerPool
    with WorkerPool(h.WORKERS) as pool:
        pool.map(aw.warm, [None] * h.WORKERS)
        t = time.perf_counter()
        n = 0
        for r, e in zip(pool.imap(aw.both, data, chunk_size=1), expect, strict=True):
            _check([r], [e])
            n += 1
        return time.perf_counter() - t, n


def _joblib(data, expect):
    from joblib import Parallel, delayed
    with Parallel(n_jobs=h.WORKERS, return_as="generator") as parallel:
        list(parallel(delayed(aw.warm)(None) for _ in range(h.WORKERS)))
        t = time.perf_counter()
        n = 0
        for r, e in zip(parallel(delayed(aw.both)(x) for x in data), expect, strict=True):
            _check([r], [e])
            n += 1
        return time.perf_counter() - t, n


def _dask(client):
    def run(data, expect):
        from distributed import as_completed
        t = time.perf_counter()
        scattered = client.scatter(data, hash=False)
        second = client.map(aw.plus_one, client.map(aw.double, scattered, pure=False),
                            pure=False)
        index = {f.key: i for i, f in enumerate(second)}
        n = 0
        for future, result in as_completed(second, with_results=True, loop=client.loop):
            _check([result], [expect[index[future.key]]])
            n += 1
        return time.perf_counter() - t, n
    return run


def _imap_dask(client):
    def run(data, expect):
        from imap import IMap
        with IMap(executor=client) as m:
            return _timed_chain(m, data, expect)
    return run


def _serial(data, expect):
    t = time.perf_counter()
    n = 0
    for x, e in zip(data, expect, strict=True):
        _check([aw.plus_one(aw.double(x))], [e])
        n += 1
    return time.perf_counter() - t, n


def _rows(cluster_client, size):
    rows = {
        "imap (defaults)": lambda d, e: _imap(d, e),
        "Pool.imap nested chunksize=1": lambda d, e: _pool(d, e, 1),
        "Pool.imap nested chunksize=4": lambda d, e: _pool(d, e, 4),
        "ProcessPoolExecutor.map twice": _ppe,
        "mpire imap (both stages in one call)": _mpire,
        "joblib/loky (both stages in one call)": _joblib,
    }
    if cluster_client is not None:
        rows["Dask client.map twice, scattered"] = _dask(cluster_client)
        rows["imap on Dask (executor=client)"] = _imap_dask(cluster_client)
    if size <= MiB:   # 64 MiB arrays over a socket: minutes for nothing new
        rows["imap remote (imap-server on 127.0.0.1)"] = _remote
    rows["in-process (reference)"] = _serial
    return rows


def run(cfg, summary):
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("\n11. Arrays: skipped (numpy is not installed: pip install 'papy-imap[bench]')")
        return
    client = cluster = None
    try:
        import distributed
        cluster = distributed.LocalCluster(n_workers=h.WORKERS, threads_per_worker=1,
                                           processes=True, host="127.0.0.1",
                                           dashboard_address=None)
        client = distributed.Client(cluster, set_as_default=False)
        client.run(aw.warm)
    except Exception as exc:   # the dask extra is missing: no Dask row
        h.log(f"[arrays] no Dask row: {exc!r}")
    quick = cfg.get("repeats", 3) <= 1
    try:
        for label, (size, n_full, n_quick) in SIZES.items():
            n = n_quick if quick else n_full
            _section(label, size, n, _rows(client, size), cfg, summary)
        _rss(cfg, summary, RSS_ARRAYS[1] if quick else RSS_ARRAYS[0])
    finally:
        if client is not None:
            client.close()
            cluster.close()


def _section(label, size, n, rows, cfg, summary):
    data, expect = _inputs(size, n)
    mib = size * n / MiB
    h.log(f"[arrays] {n} arrays of {label} through x * 2, then x + 1")
    times = {name: [] for name in rows}
    errors = []
    for _ in range(max(1, cfg.get("repeats", 3))):
        for name, fn in rows.items():
            if name in dict(errors):
                continue
            try:
                seconds, count = fn(data, expect)
                if count != n:
                    raise AssertionError(f"{count} results of {n}")
                times[name].append(seconds)
            except Exception as exc:
                errors.append((name, repr(exc)[:200]))
    rates = {name: mib / statistics.median(t) for name, t in times.items() if t}
    pools = [rates[k] for k in rates if k.startswith("Pool.imap")]
    best_pool = max(pools) if pools else None
    table = []
    for name in rows:
        if name not in rates:
            table.append([name, "-", "-", "-", "-"])
            continue
        table.append([name, len(times[name]), h.f3(statistics.median(times[name])),
                      f"{rates[name]:,.0f}",
                      h.ratio(rates[name] / best_pool) if best_pool else "-"])
    h.print_section(f"11. Arrays: {n} float64 arrays of {label} through a 2-stage chain, "
                    f"{h.WORKERS} workers",
                    ["system", "runs", "run s", "MiB/s", "vs best Pool"], table, errors,
                    ["MiB/s = MiB of arrays / run time; vs best Pool = over the faster "
                     "Pool.imap row."])
    imap_rate = rates.get("imap (defaults)")
    if label == "1 MiB":
        h.target(summary, NAME, "imap defaults / best Pool.imap MiB/s, 1 MiB arrays",
                 ">= 3.00", imap_rate / best_pool if imap_rate and best_pool else None,
                 lambda x: x >= 3.0)
        h.target(summary, NAME, "imap defaults MiB/s, 1 MiB arrays", ">= 1024", imap_rate,
                 lambda x: x >= 1024, lambda x: f"{x:,.0f}")
    else:
        h.target(summary, NAME, "imap defaults MiB/s, 64 MiB arrays", ">= 2048", imap_rate,
                 lambda x: x >= 2048, lambda x: f"{x:,.0f}")


def _rss(cfg, summary, n):
    """The parent's RSS growth while ``n`` arrays of 1 MiB go through imap."""
    try:
        import psutil
    except ImportError:
        return
    import numpy as np

    from imap import IMap
    proc = psutil.Process()
    base = np.full(MiB // 8, 1.0)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.wait(0.02):
            peak[0] = max(peak[0], proc.memory_info().rss)

    with IMap(worker_num=h.WORKERS) as m:
        a = m.add_task(aw.double, (base for _ in range(n)))
        b = m.add_task(aw.plus_one, a)
        start = proc.memory_info().rss
        peak[0] = start
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t = time.perf_counter()
        m.start()
        count = sum(1 for r in b if r[0] == 3.0 and r[-1] == 3.0)
        seconds = time.perf_counter() - t
        done.set()
        sampler.join()
        budget = m.status().buffer
    growth = (peak[0] - start) / MiB
    h.print_section(f"11c. Arrays: parent RSS while {n:,} arrays of 1 MiB go through imap "
                    f"(defaults)", ["results right", "run s", "MiB/s", "RSS growth MiB"],
                    [[count, h.f3(seconds), f"{n / seconds:,.0f}", f"{growth:.1f}"]], [],
                    [f"buffer_bytes 24 MiB (the default); the adaptive buffer ended at "
                     f"{budget} slots."])
    h.target(summary, NAME, f"imap defaults parent RSS growth, {n:,} arrays of 1 MiB (MiB)",
             "<= 24 + 40", growth if count == n else None, lambda x: x <= 64,
             lambda x: f"{x:.1f}")
