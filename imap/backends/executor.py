"""Workers of an existing engine: a Dask cluster, or any ``concurrent.futures.Executor``.

``IMap(executor=X)`` runs its batches as tasks of ``X``:

* a ``distributed.Client`` (used as given, never closed here), or a
  scheduler address such as ``"tcp://host:8786"`` (the IMap opens its own
  Client at start and closes it at stop);
* any ``concurrent.futures.Executor`` (``ProcessPoolExecutor``, loky,
  ``mpi4py.futures`` ...): one generic path.

What is submitted is the batch kernel (:func:`kernel.run_submitted`: the
same code every worker runs) with the task's pickled function, the pickled
items and the initializer, one task per batch (or group of batches, see
below). Dask receives the kernel as its source text (see
:mod:`._dask_entry`), so its workers need nothing of this package; a batch
of more than ``SCATTER_BYTES`` of items has them scattered first, and a
batch that lost its scattered items with a worker is rerun with its items
inside (:meth:`ExecutorBackend._recover`). The engine sees the usual
interface: batches in, ``deliver``/``lost`` out. Up to ``PREFETCH`` tasks
per worker are submitted at once (each worker has the next one queued); the
rest wait here, in the backend's ``depth_order`` (later tasks first, earlier
ones once every input has ended; a Dask task gets that as its priority).
With adaptive batches, batches of one task that waited here go out together
in one task, up to the batch size a draw would have now
(:meth:`ExecutorBackend._join_queued`). The worker count comes from the
cluster (Dask: its threads, looked up again twice a second by a watcher
thread, so workers that join or leave count) unless ``worker_num`` is given.
A task added inside ``with dask.annotate(workers=..., resources=...)`` runs
its batches where those annotations allow (see :func:`dask_placement`).

Log records of the IMap's level and above that a batch (or the initializer)
emits in the worker travel back with its answer and go to this process's
loggers of the same names, tagged ``record.worker`` (``"dask <address>"``
or ``"process <pid>"``), unless ``worker_logs=False``.

Failures: a batch whose worker died (Dask's ``KilledWorker`` after its own
retries, a broken process pool) goes to ``lost`` — the engine reruns it or
fails its tasklets as :class:`~imap.WorkerLostError`. A Dask scheduler that
stays unreachable for ``SCHEDULER_GRACE`` seconds fails what is in flight
and queued with ``ConnectionError``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import importlib
import logging
import os
import queue
import sys
import threading
import time
import uuid
import zlib
from typing import Any

import cloudpickle

from ..errors import UnsendableError
from ..flow.dispatch import Dispatcher
from . import _dask_entry, kernel, wire
from .base import PREFETCH, Backend, Batch, Deliver, Lost

log = logging.getLogger("imap")

REFRESH = 0.5           # seconds between looks at a Dask cluster (size, scheduler)
SCHEDULER_GRACE = 10.0  # seconds a Dask scheduler may be unreachable
CONNECT_TIMEOUT = 10.0  # seconds to connect to a scheduler given by address
# The most work (seconds) an adaptive batch holds on Dask. Each Dask task
# costs the scheduler and the client several milliseconds of CPU (measured:
# ~5 ms per task on 2 CPUs, where a LocalCluster's scheduler shares the
# client's process), and a worker idles ~2.5 ms between tasks: batches of
# 0.2 s keep that to a few per cent, where 0.02 s (once the default, sized
# for a pipe to a process of our own) halved the throughput of 5 ms tasklets.
DASK_BATCH_WORK = 0.2
# A Dask task whose pickled items exceed this many bytes has them scattered
# to the cluster first (one round trip, in a thread of this backend) and
# takes them as a dependency. Dask keeps the last 1 000 messages of every
# stream that were under 1 MB (``distributed.admin.low-level-log-length``),
# so items passed inside the task would stay alive in the client (and in
# the scheduler, when it runs in this process) long after their task ended:
# measured, 3 x 10^5 items of 1 KB in batches of ~340 KB grew this process
# by ~800 MB, against ~25 MB scattered. Below this size what those logs
# hold stays within ~32 MB a stream, and small batches (tiny tasklets, whose
# work is a few ms) do not pay the round trip (it cost them ~20 %).
SCATTER_BYTES = 32 << 10
# Scattered items live on one worker: if it dies, the task that was to take
# them (running there or not) cannot be rerun by Dask. Such tasks are
# submitted again with their items inside, one at a time (see _recover).
# Dask annotations that say where a task may run, passed on to Client.submit.
PLACEMENT = ("workers", "resources", "allow_other_workers")


def _kernel_source() -> tuple[str, str, bytes]:
    """``(module name, file name, compressed source)`` of the batch kernel
    as Dask workers install it (:func:`._dask_entry.run_kernel`)."""
    with open(kernel.__file__, "rb") as f:
        source = f.read()
    digest = hashlib.sha256(source).hexdigest()[:16]
    return f"_imap_kernel_{digest}", kernel.__file__, zlib.compress(source, 9)


KERNEL = _kernel_source()


def dask_placement() -> dict:
    """The placement annotations in force (``with dask.annotate(...)``):
    where a task added now may run. Empty if Dask was never imported."""
    dask = sys.modules.get("dask")
    if dask is None:
        return {}
    annotations = dask.get_annotations()
    return {key: annotations[key] for key in PLACEMENT if key in annotations}


def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed"


_STARTING = object()   # a recovery being submitted (ExecutorBackend._recovery)


def _items(group: list) -> Any:
    """What a task of ``group`` takes: the pickled items of its one batch,
    or a list of them, one per batch."""
    return group[0].data if len(group) == 1 else [b.data for b in group]


def _worker_died(exc: BaseException) -> bool:
    """Whether a future's exception says its worker died (not the code)."""
    if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
        return True
    return type(exc).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError")


class ExecutorBackend(Backend):
    """Batches as tasks of an executor (see the module docstring).

    Args:
        executor: a ``distributed.Client``, a scheduler address, or a
            ``concurrent.futures.Executor``.
        workers: the worker count to assume (None: ask the executor).
    """

    kind = "executor"
    where = "to the executor's workers"

    def __init__(self, executor: Any, workers: int | None, deliver: Deliver, lost: Lost,
                 initializer: Any = None, initargs: tuple = (),
                 worker_logs: bool = True) -> None:
        super().__init__(deliver, lost)
        self.worker_logs = worker_logs
        self._level: int | None = None   # the log level workers send records of
        self._given = executor
        self._workers = workers
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self._lock = threading.Lock()
        self._ready: list = []      # groups bound by the dispatcher, to submit after the lock
        self._queue = Dispatcher(lambda: (self,), lambda: self.depth_order)
        self._inflight: dict = {}   # future -> the batches it runs (see _join_queued)
        self._scattered: dict = {}  # future -> the Dask future of its scattered items
        self._launching = 0         # groups taken but not yet in flight
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()   # groups to scatter
        self._recovering: collections.deque = collections.deque()   # see _recover
        self._recovery: Any = None  # the future of the group rerun now (or _STARTING)
        self._scatterer: threading.Thread | None = None
        self._stopping = False
        self._executor: Any = None
        self._owned = False         # a Client this backend opened (and closes)
        self._dask = False
        self._size = 1              # Dask threads, as last looked up
        self._broken = False        # a process pool that can take no more work
        self._monitor: threading.Thread | None = None
        self._done_event = threading.Event()
        self._init: tuple | None = None   # (token, pickled initializer) of this run

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        self._stopping = self._broken = False
        self._done_event.clear()
        executor = self._given
        if isinstance(executor, str):
            executor = self._connect(executor)
            self._owned = True
        self._executor = executor
        self._dask = _is_dask(executor)
        self._init = None
        self._level = wire.log_level() if self.worker_logs else None
        payload = wire.pickle_initializer(self.initializer, self.initargs, "the executor")
        if payload is not None:
            self._init = (uuid.uuid4().hex, payload)
        if self._dask:
            # Dask workers need nothing of this package: the entry travels by
            # value, the kernel as source.
            cloudpickle.register_pickle_by_value(_dask_entry)
            self._size = self._dask_threads()
            self._monitor = threading.Thread(target=self._watch_scheduler,
                                             name="imap-dask-watch", daemon=True)
            self._monitor.start()
            self._scatterer = threading.Thread(target=self._scatter_loop,
                                               name="imap-dask-scatter", daemon=True)
            self._scatterer.start()

    @staticmethod
    def _connect(address: str) -> Any:
        try:
            distributed = importlib.import_module("distributed")
        except ImportError as exc:
            raise ImportError(
                f"executor={address!r} needs Dask distributed: install the extra with "
                f"pip install 'papy-imap[dask]'") from exc
        try:
            return distributed.Client(address, timeout=CONNECT_TIMEOUT,
                                      set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to the Dask scheduler at {address}: "
                                  f"{exc}") from exc

    def stop(self, forced: bool = False) -> None:
        with self._lock:
            self._stopping = True
            self._queue.clear()
            inflight = list(self._inflight)
            self._inflight.clear()
            self._scattered.clear()
            self._recovering.clear()
            self._recovery = None
        self._done_event.set()
        for future in inflight:
            future.cancel()
        self._stop_timers()
        if self._monitor is not None:
            self._monitor.join()
            self._monitor = None
        if self._scatterer is not None:
            self._outbox.put(None)
            self._scatterer.join()
            self._scatterer = None
        if self._owned and self._executor is not None:
            try:
                self._executor.close()
            except Exception:  # the scheduler is gone already
                pass
        self._executor = None
        self._owned = False

    # -- size ----------------------------------------------------------------------

    def _dask_threads(self) -> int:
        try:
            return max(1, sum(self._executor.nthreads().values()))
        except Exception:   # the scheduler is not answering: keep the last count
            return self._size

    @property
    def alive(self) -> int:
        if self._broken or self._executor is None:
            return 0
        if self._workers is not None:
            return self._workers
        if self._dask:
            return self._size   # refreshed by the watcher thread, never under a lock
        return getattr(self._executor, "_max_workers", None) or os.cpu_count() or 1

    @property
    def batch_work(self) -> float | None:
        """Dask batches may hold up to DASK_BATCH_WORK seconds of work."""
        return DASK_BATCH_WORK if self._dask else None

    @property
    def capacity(self) -> int:
        return self.alive * PREFETCH

    # -- submitting ------------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        batch = wire.prepare(self.deliver, batch, self.where)
        if batch is None:
            return
        with self._lock:
            if self._stopping:
                return
            self._queue.put(batch)
            ready = self._take()
        self._go(ready)

    def _take(self) -> list:
        """Groups of queued batches that may be submitted now, one executor
        task each (lock held)."""
        if not self._stopping:
            self._queue.dispatch()
        ready = self._ready
        self._ready = []
        return ready

    # -- the executor as one place of its dispatcher (lock held) -----------------------
    # Its workers take tasks from the executor's own queue as they free
    # up (late binding is the executor's): this side commits no more than
    # the workers can hold.

    def room(self) -> int:
        return self.capacity - len(self._inflight) - self._launching

    def idle(self) -> bool:
        return False

    def eligible(self, batch: Batch) -> bool:
        return True

    def bind(self, batch: Batch) -> None:
        group = [batch]
        if self.group_limit is not None and self._queue.pending:
            self._join_queued(group)
        self._ready.append(group)
        self._launching += 1

    def take_back(self) -> bool:
        return False

    def _join_queued(self, group: list) -> None:
        """Add to ``group`` (one first-time batch) the queued first-time
        batches of its task, oldest first, while the tasklets stay within
        the batch size a draw of the task would have now (``group_limit``:
        the batch size in force, cut to a share of the tail near the end).

        Batches are drawn at the batch size of their moment: those queued
        while adaptive batches still grew (single tasklets, each a task of
        the executor costing a round trip) go out together once the batch
        size has grown, instead of one by one; the batches a tail was cut
        into for balance stay apart. Each keeps its own answer.
        """
        first = group[0]
        task = first.task
        room = self.group_limit(task) - len(first)
        if room <= 0 or first.attempt or first.careful:
            return
        kept = collections.deque()
        pending = self._queue.pending
        for batch in pending:
            if batch.task is task and room > 0:
                if len(batch) > room or batch.attempt or batch.careful:
                    room = 0   # the next in line does not join: none after it does
                else:
                    group.append(batch)
                    room -= len(batch)
                    continue
            kept.append(batch)
        pending.clear()
        pending.extend(kept)

    def _go(self, groups: list) -> None:
        """Submit ``groups`` (taken by :meth:`_take`); on Dask, those of
        large items go to the scatter thread instead (see SCATTER_BYTES)."""
        for group in groups:
            if self._dask and sum(len(b.data) for b in group) > SCATTER_BYTES:
                self._outbox.put(group)
            else:
                self._launch(group, _items(group))

    def _scatter_loop(self) -> None:
        """Scatter the items of large groups, then submit their tasks, one
        group at a time (a scatter waits a round trip: not in the threads
        that submit batches and take results)."""
        while (group := self._outbox.get()) is not None:
            if self._stopping:
                self._launched()
                continue
            try:
                [items] = self._executor.scatter(
                    [_items(group)], hash=False, timeout=SCHEDULER_GRACE,
                    workers=group[0].task.placement.get("workers"))
            except Exception as exc:   # a worker that died, a closed client
                self._launched()
                if not self._recover(group, exc):
                    for batch in group:
                        self._refused(batch, exc)
                continue
            self._launch(group, items, scattered=True)

    def _recover(self, group: list, exc: BaseException) -> bool:
        """Rerun ``group``, whose scattered items were lost with their worker
        (``exc``), with its items inside its task; False if the backend
        stops or the scheduler is gone (the caller fails the group).

        Every task that was to take items from a worker that died loses
        them, the one whose tasklet killed the worker among the others, and
        none can tell which it was. So they are rerun one at a time, each
        after the last ended: Dask reruns each after a death as usual, and
        a task whose tasklet kills every worker it runs on fails alone (as
        ``KilledWorker`` after Dask's allowed-failures, a lost batch) while
        its neighbours wait here, not on the workers it kills.
        """
        with self._lock:
            if self._stopping or self._status() != "running":
                return False
            self._recovering.append(group)
        log.info("%d batch(es) of task %d lost their scattered items (%r): to be rerun "
                 "with their items inside", len(group), group[0].task.id, exc)
        self._next_recovery()
        return True

    def _next_recovery(self) -> None:
        """Rerun the next group of ``_recovering`` if none is being rerun."""
        with self._lock:
            if self._recovery is not None or self._stopping or not self._recovering:
                return
            group = self._recovering.popleft()
            self._recovery = _STARTING
            self._launching += 1
        self._launch(group, _items(group), recovery=True)

    def _launched(self, future: Any = None, group: list | None = None,
                  scattered: Any = None, recovery: bool = False) -> bool:
        """A taken group was submitted as ``future`` (None: it was not).
        Whether it counts as in flight (not if the backend is stopping)."""
        with self._lock:
            self._launching -= 1
            if recovery:
                self._recovery = future
            if future is None or self._stopping:
                return False
            self._inflight[future] = group
            if scattered is not None:
                self._scattered[future] = scattered   # alive until the task ends
            return True

    def _launch(self, group: list, items: Any, scattered: bool = False,
                recovery: bool = False) -> None:
        """Submit one executor task for ``group``, its items being ``items``
        (pickles, or the Dask future of them if ``scattered``); a
        ``recovery`` is a rerun of :meth:`_recover`."""
        task = group[0].task
        payload = task.payload()[0]
        try:
            if self._dask:
                future = self._executor.submit(
                    _dask_entry.run_kernel, *KERNEL, payload, self._init, items,
                    log_level=self._level, key=f"imap-batch-{uuid.uuid4().hex}",
                    priority=self.depth_order * task.id, **task.placement)
            else:
                future = self._executor.submit(kernel.run_submitted, payload,
                                               self._init, items, log_level=self._level)
        except Exception as exc:   # a broken pool, a closed client
            self._launched(recovery=recovery)
            for batch in group:
                self._refused(batch, exc)
            if recovery:
                self._next_recovery()
            return
        if self._launched(future, group, items if scattered else None, recovery):
            future.add_done_callback(self._done)
        else:
            future.cancel()

    def _refused(self, batch: Batch, exc: BaseException) -> None:
        if self._scheduler_gone(batch):
            return
        if isinstance(exc, concurrent.futures.BrokenExecutor):
            self._broken = True
        self.lost(batch, f"the executor refused the batch: {exc!r}")

    def _status(self) -> str:
        """A Dask client's status (``"running"`` while it has its scheduler;
        always ``"running"`` for other executors)."""
        return getattr(self._executor, "status", "running")

    def _scheduler_gone(self, batch: Batch) -> bool:
        """If a Dask client has lost its scheduler, fail ``batch`` with
        ``ConnectionError`` and say so (a worker did not die: all did)."""
        if not self._dask:
            return False
        status = self._status()
        if status == "running":
            return False
        error = ConnectionError(f"the Dask scheduler is unreachable (client {status})")
        wire.fail_batch(self.deliver, batch, error, error)
        return True

    # -- results ---------------------------------------------------------------------

    def _done(self, future: Any) -> None:
        with self._lock:
            group = self._inflight.pop(future, None)
            scattered = self._scattered.pop(future, None)
            recovered = future is self._recovery
            if recovered:
                self._recovery = None
            if group is None or self._stopping:
                return
            ready = self._take()
        self._go(ready)
        if recovered:
            self._next_recovery()
        try:
            data = future.result()
        except BaseException as exc:  # noqa: BLE001 - every outcome is filed
            if self._scheduler_gone(group[0]):
                for batch in group[1:]:
                    self._scheduler_gone(batch)
                return
            if isinstance(exc, concurrent.futures.BrokenExecutor):
                self._broken = True
            died = _worker_died(exc) or isinstance(exc, concurrent.futures.CancelledError)
            if died:
                self._workers_lost += 1
                if scattered is not None and self._recover(group, exc):
                    return
            for batch in group:
                if died:
                    self.lost(batch, f"the executor's worker died: {exc!r}")
                else:
                    wire.fail_batch(self.deliver, batch, UnsendableError(
                        f"the executor could not run a batch of task {batch.task.id} "
                        f"({batch.task.name}): {exc!r}"), exc)
            return
        if type(data) is tuple:   # the answer, and the records it logged
            data, name, logs = data
            wire.relay_logs(logs, name)
        for batch, answer in zip(group, data if type(data) is list else [data], strict=True):
            reply = wire.decode_answer(batch, answer)
            batch.nbytes = len(answer) + len(batch.data or b"")
            self.deliver(batch, reply.values, reply.errors, reply.busy, reply.peak)

    # -- a Dask scheduler that goes away --------------------------------------------------

    def _watch_scheduler(self) -> None:
        away_since = None
        while not self._done_event.wait(REFRESH):
            status = self._status()
            if status == "running":
                away_since = None
                self._size = self._dask_threads()   # workers that joined or left
                continue
            now = time.monotonic()
            away_since = away_since or now
            if now - away_since >= SCHEDULER_GRACE or status in ("closed", "closing"):
                self._scheduler_lost(status)
                away_since = None

    def _scheduler_lost(self, status: str) -> None:
        with self._lock:
            batches = [b for group in self._inflight.values() for b in group]
            batches += self._queue.clear()
            batches += [b for group in self._recovering for b in group]
            self._inflight.clear()
            self._scattered.clear()
            self._recovering.clear()
            self._recovery = None
        if not batches:
            return
        log.error("the Dask scheduler is unreachable (client %s); failing %d batch(es)",
                  status, len(batches))
        for batch in batches:
            error = ConnectionError(f"the Dask scheduler is unreachable (client {status})")
            wire.fail_batch(self.deliver, batch, error, error)
