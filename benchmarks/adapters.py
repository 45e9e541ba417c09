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
   stages) the timed work is held behind a gate meanwhile: pypeln's input
   (and a remote IMap's) is a generator that yields the warm-up tokens and
   then blocks on an ``Event``; a local IMap's workers are held in their
   initializer instead (``gate.py``), so the IMap gets the workload's own
   input object and only the options of the row, and ``startup`` ends when
   every worker is ready.
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
    """An iterable that yields ``tokens`` warm-up tokens (``None``), then
    nothing until ``open()`` is called, then the items of ``iterable``."""

    def __init__(self, iterable, tokens=0):
        self.iterable = iterable
        self.tokens = tokens
        self.event = threading.Event()

    def __iter__(self):
        yield from [None] * self.tokens
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
             remote=None, gate="workers", progress=None, statistics=True):
    """One IMap of ``workers`` processes; the stages as chained tasks.

    ``stride``, ``buffer``, ``chunksize`` and ``start_method`` are given to
    the IMap exactly as passed: None means "not given", so a row without
    them runs at the IMap's own default settings.

    ``gate`` says how start-up is kept out of the clock:

    - ``"workers"`` (local processes): every worker is held in its
      initializer until the clock starts (see ``gate.py``); the IMap gets
      the source's own iterable and exactly the stages as tasks.
    - ``"input"`` (one stage only; always used with ``remote``): the input
      is a generator that yields one warm-up token per worker, then waits
      until the clock starts; the warm-up results are taken before it.

    ``remote``: a ``worker_remote`` list; then the IMap has only those
    workers. ``progress``: given to the IMap. ``statistics=False`` turns the
    engine's statistics bookkeeping into a no-op for this run (to measure
    its cost; the timing the flow policy needs stays).
    """
    from gate import WorkerGate, hold

    from imap import IMap

    if remote is not None:
        gate = "input"
    if gate == "input" and len(stages) != 1:
        raise ValueError("the input gate warms up one stage only")
    opts = dict(worker_type="process", worker_num=workers)
    if remote is not None:
        opts = dict(worker_num=0, worker_remote=remote)
    for key, value in (("stride", stride), ("buffer", buffer), ("progress", progress),
                       ("chunksize", chunksize), ("start_method", start_method)):
        if value is not None:
            opts[key] = value

    if not statistics:
        from imap.run import stats
        saved = stats.TaskStats.delivered
        stats.TaskStats.delivered = lambda self, *args: None
        try:
            return run_imap(stages, source, fold, consume, workers, stride, buffer,
                            chunksize, start_method, on_started, remote, gate, progress)
        finally:
            stats.TaskStats.delivered = saved
    t0 = now()
    if gate == "workers":
        held = WorkerGate(workers)
        opts.update(initializer=hold, initargs=(held.port,))
        inputs, release = source(), held.open
    else:
        tokens = _Gate(source(), tokens=workers)
        inputs, release = tokens, tokens.open
    try:
        m = IMap(**opts)
        last = inputs
        for f in stages:
            last = m.add_task(f, last)
        m.start()
    except BaseException:
        release()
        raise
    try:
        if gate == "workers":
            held.wait_ready(WARMUP_TIMEOUT)
        else:
            for _ in range(workers):
                last.next(timeout=WARMUP_TIMEOUT)
        startup = now() - t0
        if on_started is not None:
            on_started()
        t1 = now()
        release()
        first, total, count, acc, cpu = _drain(last, t1, fold, consume)
        extra = {"high_water": getattr(m, "high_water", None),
                 "settings": _settings(m)}
    except BaseException:
        release()
        m.stop(forced=True)
        raise
    m.stop()
    return Run(startup, first, total, count, acc, extra, cpu)


def _settings(m):
    """What the IMap reports for stride, buffer and chunksize (None: unknown)."""
    out = {}
    for key in ("stride", "buffer", "chunksize"):
        try:
            out[key] = getattr(m, key, None)
        except Exception:
            out[key] = None
    return out


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
