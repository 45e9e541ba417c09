"""Section 10: stragglers — late binding of tasklets to workers.

Three workloads where one slow or stuck tasklet must not hold up others:

* **unordered**: the original PaPy's ``ordered`` example, 4 items of which the
  second sleeps 2 s, results taken as they complete (``ordered=False``): when
  does the last *fast* item arrive?
* **heavy tail**: 400 items of busy CPU work, 2 % of them 100x slower (2 ms
  and 200 ms, positions spread evenly), in order: the makespan against the
  lower bound ``max(work / workers, longest item)``;
* **skip**: 12 items, item 5 hangs (sleeps 30 s), a task timeout of 0.5 s
  with ``skip=True``: how many *healthy* items were given up (timed out)?
  On local processes, remote workers (one imap-server) and a Dask
  LocalCluster.

imap runs at default settings; the peers with their natural idiom for each
(``imap_unordered`` / ``as_completed`` for the unordered case).
"""

import concurrent.futures
import functools
import multiprocessing as mp
import statistics
import time

import adapters as ad
import harness as h
import workloads as wl

NAME = "stragglers"

SLOW_SLEEP = 2.0        # the unordered example's slow item (seconds)
TAIL_ITEMS = 400
TAIL_EVERY = 50         # one item in TAIL_EVERY is slow: 2 %
TAIL_FAST_MS = 2.0
TAIL_SLOW_MS = 200.0
HANG_SECONDS = 30.0     # the hung item (its worker is killed or cut off well before)
SKIP_ITEMS = 12
SKIP_TIMEOUT = 0.5


def sleepy(x):
    """Item 1 sleeps SLOW_SLEEP seconds; the others return at once."""
    if x == 1:
        time.sleep(SLOW_SLEEP)
    return x


def tail_ms(x):
    return TAIL_SLOW_MS if x % TAIL_EVERY == TAIL_EVERY // 2 else TAIL_FAST_MS


def tail_work(x, n_per_ms):
    """Busy CPU work of tail_ms(x) milliseconds (spin, calibrated)."""
    wl.spin(int(tail_ms(x) * n_per_ms))
    return x


def hang_on_five(x):
    if x == 5:
        time.sleep(HANG_SECONDS)
    return x


# -- the unordered example ------------------------------------------------------------


def _last_fast(arrivals):
    """Seconds until the last fast item (not item 1) arrived."""
    return max(t for x, t in arrivals if x != 1)


def unordered_imap():
    from imap import IMap

    t0 = time.perf_counter()
    with IMap(worker_num=h.WORKERS, ordered=False) as m:
        task = m.add_task(sleepy, range(4))
        m.start()
        return [(x, time.perf_counter() - t0) for x in task]


def unordered_pool(chunksize, start_method):
    with mp.get_context(start_method).Pool(h.WORKERS) as pool:
        t0 = time.perf_counter()
        return [(x, time.perf_counter() - t0)
                for x in pool.imap_unordered(sleepy, range(4), chunksize=chunksize)]


def unordered_ppe(start_method):
    ctx = mp.get_context(start_method)
    with concurrent.futures.ProcessPoolExecutor(h.WORKERS, mp_context=ctx) as pool:
        t0 = time.perf_counter()
        futures = [pool.submit(sleepy, x) for x in range(4)]
        return [(f.result(), time.perf_counter() - t0)
                for f in concurrent.futures.as_completed(futures)]


def unordered_mpire(start_method):
    from mpire import WorkerPool

    with WorkerPool(h.WORKERS, start_method=start_method or "fork") as pool:
        t0 = time.perf_counter()
        return [(x, time.perf_counter() - t0) for x in pool.imap_unordered(sleepy, range(4))]


# -- the heavy tail ----------------------------------------------------------------------


def tail_imap(work, start_method):
    """imap at defaults, its worker processes up before the clock starts
    (held in their initializer, as every imap row of these benchmarks)."""
    run = ad.run_imap([work], functools.partial(range, TAIL_ITEMS), h.add,
                      start_method=start_method)
    assert run.count == TAIL_ITEMS and run.checksum == sum(range(TAIL_ITEMS))
    return run.total


def tail_pool(work, chunksize, start_method):
    with mp.get_context(start_method).Pool(h.WORKERS) as pool:
        pool.map(abs, range(h.WORKERS))   # workers up before the clock starts
        t0 = time.perf_counter()
        assert list(pool.imap(work, range(TAIL_ITEMS), chunksize=chunksize)) == list(
            range(TAIL_ITEMS))
        return time.perf_counter() - t0


def tail_ppe(work, start_method):
    ctx = mp.get_context(start_method)
    with concurrent.futures.ProcessPoolExecutor(h.WORKERS, mp_context=ctx) as pool:
        list(pool.map(abs, range(h.WORKERS)))
        t0 = time.perf_counter()
        assert list(pool.map(work, range(TAIL_ITEMS))) == list(range(TAIL_ITEMS))
        return time.perf_counter() - t0


def tail_mpire(work, start_method):
    from mpire import WorkerPool

    with WorkerPool(h.WORKERS, start_method=start_method or "fork") as pool:
        pool.map(abs, range(h.WORKERS))
        t0 = time.perf_counter()
        assert list(pool.imap(work, range(TAIL_ITEMS))) == list(range(TAIL_ITEMS))
        return time.perf_counter() - t0


# -- skip=True with one hung item --------------------------------------------------------


def skip_given_up(**options):
    """Run the hung-item workload; return (healthy items given up, results)."""
    from imap import IMap, TimeoutError

    m = IMap(skip=True, **options)
    task = m.add_task(hang_on_five, range(SKIP_ITEMS), timeout=SKIP_TIMEOUT)
    m.start()
    got, timed_out = [], 0
    it = iter(task)
    try:
        while True:
            try:
                got.append(next(it))
            except TimeoutError:
                timed_out += 1
            except StopIteration:
                break
    finally:
        m.stop(forced=True)
    healthy_lost = SKIP_ITEMS - 1 - len([x for x in got if x != 5])
    return healthy_lost, got


def run(cfg, summary):
    sm = cfg["start_method"]
    quick = cfg["repeats"] == 1
    rounds = 1 if quick else 3
    h.log("[stragglers] the unordered example, a heavy tail, skip with a hung item")

    # 1. unordered
    systems = [("imap defaults, ordered=False", unordered_imap),
               ("Pool.imap_unordered chunksize=1", functools.partial(unordered_pool, 1, sm)),
               ("ProcessPoolExecutor submit + as_completed",
                functools.partial(unordered_ppe, sm)),
               ("mpire imap_unordered (default chunk_size)",
                functools.partial(unordered_mpire, sm))]
    rows, errors, imap_last = [], [], None
    for label, fn in systems:
        try:
            lasts = [_last_fast(fn()) for _ in range(rounds)]
        except Exception as exc:   # a peer missing or failing: say so, go on
            errors.append((label, repr(exc)))
            continue
        last = statistics.median(lasts)
        if label.startswith("imap"):
            imap_last = last
        rows.append([label, f"{last:.3f}"])
    h.print_section(
        f"10a. Stragglers, unordered: 4 items, item 1 sleeps {SLOW_SLEEP:g} s, "
        f"{h.WORKERS} workers",
        ["system", "last fast item s"], rows, errors,
        [f"median of {rounds} run(s); the clock starts before the pool for imap "
         "(its start is included), after it for the peers."])
    h.target(summary, "stragglers", "unordered example: last fast item (s)", "<= 0.5",
             imap_last, lambda x: x <= 0.5, shown=h.f3)

    # 2. heavy tail
    work = functools.partial(tail_work, n_per_ms=cfg["n_per_ms"])
    total_ms = sum(tail_ms(x) for x in range(TAIL_ITEMS))
    bound = max(total_ms / 1000 / h.WORKERS, TAIL_SLOW_MS / 1000)
    systems = [("imap defaults", functools.partial(tail_imap, work, sm)),
               ("Pool.imap chunksize=1", functools.partial(tail_pool, work, 1, sm)),
               ("Pool.imap chunksize=256", functools.partial(tail_pool, work, 256, sm)),
               ("ProcessPoolExecutor.map (chunksize=1)", functools.partial(tail_ppe, work, sm)),
               ("mpire imap (default chunk_size)", functools.partial(tail_mpire, work, sm))]
    rows, errors, imap_ratio = [], [], None
    for label, fn in systems:
        try:
            times = [fn() for _ in range(rounds)]
        except Exception as exc:
            errors.append((label, repr(exc)))
            continue
        t = statistics.median(times)
        if label.startswith("imap"):
            imap_ratio = t / bound
        rows.append([label, f"{t:.3f}", f"{t / bound:.3f}"])
    h.print_section(
        f"10b. Stragglers, heavy tail: {TAIL_ITEMS} items of {TAIL_FAST_MS:g} ms, one in "
        f"{TAIL_EVERY} of {TAIL_SLOW_MS:g} ms (busy CPU), in order, {h.WORKERS} workers",
        ["system", "run s", "/ lower bound"], rows, errors,
        [f"lower bound = max(work / workers, longest item) = {bound:.3f} s (nominal, "
         f"from the calibrated spin); median of {rounds} run(s); workers started before "
         "the clock."])
    h.target(summary, "stragglers", "heavy tail: makespan / lower bound", "<= 1.10",
             imap_ratio, lambda x: x <= 1.10)

    # 3. skip=True with one hung item (the remote server has no copy of this
    # folder: the IMap sends this module's functions by value, as it does for
    # any module of the user's own)
    rows, errors = [], []
    lost = {}
    for label, make in _skip_backends():
        try:
            with make() as options:
                lost[label], got = skip_given_up(**options)
            rows.append([label, str(lost[label]), str(len(got))])
        except Exception as exc:
            errors.append((label, repr(exc)))
    h.print_section(
        f"10c. Stragglers, skip=True: {SKIP_ITEMS} items, item 5 hangs, task timeout "
        f"{SKIP_TIMEOUT:g} s",
        ["backend", "healthy items given up", "results"], rows, errors,
        ["a healthy item given up is one that timed out although it does not hang: "
         "it was queued behind the hung one."])
    for label in ("processes", "remote", "dask"):
        h.target(summary, "stragglers", f"skip with a hung item, {label}: healthy lost",
                 "== 0", lost.get(label), lambda x: x == 0, shown=str)


def _skip_backends():
    import contextlib

    @contextlib.contextmanager
    def processes():
        yield {"worker_num": h.WORKERS}

    @contextlib.contextmanager
    def remote():
        from imap.embedded import local

        with local(h.WORKERS) as address:
            yield {"worker_num": 0, "worker_remote": address}

    @contextlib.contextmanager
    def dask():
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=h.WORKERS, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield {"executor": client}

    return [("processes", processes), ("remote", remote), ("dask", dask)]
