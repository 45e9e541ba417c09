"""One adapter per system: start a pool, warm it up, time a chain over a source.

Every adapter has the same shape::

    adapter(stages, source, fold, consume=None, **options) -> Run

- ``stages``: the functions of the chain, first to last (one for a plain map).
- ``source``: a zero-argument callable returning a fresh input iterable.
- ``fold(acc, result) -> acc``: an order-independent checksum step, so a
  wrong or missing result shows up as a checksum mismatch.
- ``consume(result)``: optional extra work the consumer does per result (the
  "slow consumer" of the memory workload).
- ``on_started()``: optional, called when start-up ends and the timed part
  begins (the memory workload takes its second baseline there).

Protocol, the same for every system:

1. ``t0``: create the pool (or the pipeline) and run a trivial warm-up in it:
   one warm-up token (``None``, which every workload function returns at
   once) per worker.  ``startup`` = the time until the warm-up results are
   back.  For systems whose workers belong to one run (imap tasks, pypeln
   stages) the timed input is held behind a gate (a generator blocked on an
   ``Event``) while the warm-up runs in the same pool.
2. ``t1``: open the gate / submit the timed work.  ``first`` = time from
   ``t1`` to the first result of the last stage, ``total`` = time from ``t1``
   to the last result.
3. Shut the pool down (not timed).
"""

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

now = time.perf_counter
WARMUP_TIMEOUT = 120.0   # seconds; a warm-up that takes longer is a failure


@dataclass
class Run:
    startup: float    # pool creation + warm-up, seconds
    first: float      # timed start -> first result, seconds
    total: float      # timed start -> last result, seconds
    count: int        # results received
    checksum: int     # fold over the results
    extra: dict = None  # system-specific notes (e.g. imap high-water mark)
    cpu: float = 0.0  # CPU time of this process (all threads) in the timed part


def _drain(iterator, t1, fold, consume):
    """Consume ``iterator``; return (first, total, count, checksum, cpu)."""
    c1 = time.process_time()
    first = None
    count = 0
    acc = 0
    for r in iterator:
        if first is None:
            first = now() - t1
        if consume is not None:
            consume(r)
        acc = fold(acc, r)
        count += 1
    total = now() - t1
    cpu = time.process_time() - c1
    return (first if first is not None else total), total, count, acc, cpu


class _Gate:
    """An iterable that yields nothing until ``open()`` is called."""

    def __init__(self, iterable):
        self.iterable = iterable
        self.event = threading.Event()

    def __iter__(self):
        if not self.event.wait(WARMUP_TIMEOUT * 2):
            return   # never opened (warm-up failed): end the input
        yield from self.iterable

    def open(self):
        self.event.set()


def _ctx(start_method):
    return multiprocessing.get_context(start_method)


# --------------------------------------------------------------------------
# imap


def run_imap(stages, source, fold, consume=None, workers=2, stride=None,
             buffer=None, chunksize=None, start_method=None, on_started=None,
             remote=None):
    """One IMap of ``workers`` processes; the stages as chained tasks.

    A warm-up task (the first stage over one token per worker, at most one
    stride of them) is added before the chain and consumed before the gate
    opens.  ``buffer`` defaults
    to what IMap would choose for the chain alone (stride x number of chained
    tasks), so the warm-up task does not enlarge it.  ``remote``: a
    ``worker_remote`` list; then the IMap has only those workers.
    """
    from imap import IMap

    eff_stride = stride if stride is not None else workers
    if buffer is None:
        buffer = eff_stride * len(stages)
    opts = dict(worker_type="process", worker_num=workers, buffer=buffer)
    if remote is not None:
        opts = dict(worker_num=0, worker_remote=remote, buffer=buffer)
    if stride is not None:
        opts["stride"] = stride
    if chunksize is not None:
        opts["chunksize"] = chunksize
    if start_method is not None:
        opts["start_method"] = start_method

    gate = _Gate(source())
    t0 = now()
    m = IMap(**opts)
    try:
        # the Feeder draws one stride of the warm-up task, then blocks on the
        # gate: never ask for more warm-up tokens than one stride
        tokens = min(workers, eff_stride)
        warm = m.add_task(stages[0], [None] * tokens)
        last = gate
        for f in stages:
            last = m.add_task(f, last)
        m.start()
        for _ in range(tokens):
            warm.next(timeout=WARMUP_TIMEOUT)
        startup = now() - t0
        if on_started is not None:
            on_started()
        t1 = now()
        gate.open()
        first, total, count, acc, cpu = _drain(last, t1, fold, consume)
        extra = {"high_water": getattr(m, "high_water", None)}
    except BaseException:
        gate.open()
        m.stop(forced=True)
        raise
    m.stop()
    return Run(startup, first, total, count, acc, extra, cpu)


# --------------------------------------------------------------------------
# multiprocessing.Pool


def run_pool_nested(stages, source, fold, consume=None, workers=2,
                    chunksize=1, start_method=None, on_started=None):
    """One Pool; the stages nested: ``imap(f3, imap(f2, imap(f1, xs)))``."""
    t0 = now()
    pool = _ctx(start_method).Pool(workers)
    try:
        pool.map(stages[0], [None] * workers, chunksize=1)
        startup = now() - t0
        if on_started is not None:
            on_started()
        t1 = now()
        it = source()
        for f in stages:
            it = pool.imap(f, it, chunksize=chunksize)
        first, total, count, acc, cpu = _drain(it, t1, fold, consume)
    finally:
        pool.terminate()
        pool.join()
    return Run(startup, first, total, count, acc, None, cpu)


def run_pool_per_stage(stages, source, fold, consume=None, workers=2,
                       chunksize=1, start_method=None, on_started=None):
    """One Pool of ``workers`` per stage, each Pool's imap eating the last."""
    ctx = _ctx(start_method)
    pools = []
    t0 = now()
    try:
        for f in stages:
            pool = ctx.Pool(workers)
            pools.append(pool)
            pool.map(f, [None] * workers, chunksize=1)
        startup = now() - t0
        if on_started is not None:
            on_started()
        t1 = now()
        it = source()
        for pool, f in zip(pools, stages, strict=True):
            it = pool.imap(f, it, chunksize=chunksize)
        first, total, count, acc, cpu = _drain(it, t1, fold, consume)
    finally:
        for pool in pools:
            pool.terminate()
            pool.join()
    return Run(startup, first, total, count, acc, None, cpu)


# --------------------------------------------------------------------------
# concurrent.futures.ProcessPoolExecutor


def run_ppe(stages, source, fold, consume=None, workers=2, chunksize=1,
            start_method=None, on_started=None):
    """``ProcessPoolExecutor.map`` (one stage only: map() submits eagerly)."""
    assert len(stages) == 1, "ProcessPoolExecutor adapter runs one stage"
    f = stages[0]
    ctx = _ctx(start_method) if start_method else None
    t0 = now()
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        list(ex.map(f, [None] * workers))
        startup = now() - t0
        if on_started is not None:
            on_started()
        t1 = now()
        it = ex.map(f, source(), chunksize=chunksize)
        first, total, count, acc, cpu = _drain(it, t1, fold, consume)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return Run(startup, first, total, count, acc, None, cpu)


# --------------------------------------------------------------------------
# mpire


def run_mpire(stages, source, fold, consume=None, workers=2, chunk_size=None,
              start_method=None, on_started=None):
    """``mpire.WorkerPool.imap`` (ordered), workers kept alive after warm-up."""
    from mpire import WorkerPool

    assert len(stages) == 1, "mpire adapter runs one stage"
    f = stages[0]
    opts = dict(n_jobs=workers, keep_alive=True)
    if start_method is not None:
        opts["start_method"] = start_method
    t0 = now()
    pool = WorkerPool(**opts)
    try:
        pool.map(f, [None] * workers, chunk_size=1)
        startup = now() - t0
        if on_started is not None:
            on_started()
        t1 = now()
        it = pool.imap(f, source(), chunk_size=chunk_size)
        first, total, count, acc, cpu = _drain(it, t1, fold, consume)
    finally:
        pool.terminate()
    return Run(startup, first, total, count, acc, None, cpu)


# --------------------------------------------------------------------------
# pypeln


def run_pypeln(stages, source, fold, consume=None, workers=2, maxsize=0,
               start_method=None, on_started=None):
    """``pypeln.process.map`` stages, ``workers`` processes per stage.

    pypeln's process stages emit results in completion order (unordered).
    pypeln always uses multiprocessing's default start method.
    """
    import pypeln as pl

    items = source()

    tokens = [None] * workers
    gate = threading.Event()

    def gated():
        yield from tokens
        if not gate.wait(WARMUP_TIMEOUT * 2):
            return
        yield from items

    t0 = now()
    stage = gated()
    for f in stages:
        stage = pl.process.map(f, stage, workers=workers, maxsize=maxsize)
    it = iter(stage)
    try:
        for _ in tokens:
            next(it)
        startup = now() - t0
        if on_started is not None:
            on_started()
        t1 = now()
        gate.set()
        first, total, count, acc, cpu = _drain(it, t1, fold, consume)
    finally:
        gate.set()
        close = getattr(it, "close", None)
        if close is not None:
            close()
    return Run(startup, first, total, count, acc, None, cpu)


# --------------------------------------------------------------------------
# serial reference


def run_serial(stages, source, fold, consume=None):
    """The stages composed, in this process, one item at a time."""
    t1 = now()

    def chain():
        for x in source():
            for f in stages:
                x = f(x)
            yield x

    first, total, count, acc, cpu = _drain(chain(), t1, fold, consume)
    return Run(0.0, first, total, count, acc, None, cpu)
