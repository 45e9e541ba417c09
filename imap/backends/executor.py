"""Workers of an existing engine: any ``concurrent.futures.Executor``.

``IMap(executor=X)`` runs its batches as tasks of ``X``
(``ProcessPoolExecutor``, ``ThreadPoolExecutor``, loky, ``mpi4py.futures``
...); a Dask cluster is the same with more to it (:mod:`.dask`, a subclass).

What is submitted is the batch kernel (:func:`kernel.run_submitted`: the
same code every worker runs) with the task's pickled function, the pickled
items and the initializer, one task per batch (or group of batches, see
below). The engine sees the usual interface: batches in,
``deliver``/``lost`` out. The executor is one place of the backend's
:class:`~imap.flow.dispatch.Dispatcher`: up to ``prefetch`` tasks per worker
are submitted at once (each worker has the next one queued, and the
executor's own queue binds a task to whichever worker frees first: late
binding is the executor's); the rest wait here, in the backend's
``depth_order`` (later tasks first, earlier ones once every input has
ended). With adaptive batches, batches of one task that waited here go out
together in one task, up to the batch size a draw would have now
(:meth:`ExecutorBackend._join_queued`). The worker count is the executor's
``max_workers`` unless ``worker_num`` is given.

Log records of the IMap's level and above that a batch (or the initializer)
emits in the worker travel back with its answer and go to this process's
loggers of the same names, tagged ``record.worker`` (``"process <pid>"``),
unless ``worker_logs=False``. A ``ThreadPoolExecutor``'s workers are threads
of this process: their records reach its handlers as they are made, once
(relayed as well, each would be handled twice), tagged ``"thread <name>"``.

Failures: a batch whose worker died (a broken process pool) goes to
``lost`` — the engine reruns it or fails its tasklets as
:class:`~imap.WorkerLostError`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import uuid
from typing import Any

from ..errors import UnsendableError
from ..flow.dispatch import Dispatcher
from ..transport import pickling, wire
from ..transport.records import Submitted
from ..worker import kernel
from .base import Backend, Batch, Deliver, Lost

log = logging.getLogger("imap")

_BROKEN = "the executor is broken (a worker of its pool died): it runs nothing more"


def _worker_died(exc: BaseException) -> bool:
    """Whether a future's exception says its worker died (not the code)."""
    if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
        return True
    return type(exc).__name__ in ("KilledWorker", "CommClosedError", "FutureCancelledError")


class ExecutorBackend(Backend):
    """Batches as tasks of an executor (see the module docstring).

    Args:
        executor: a ``concurrent.futures.Executor``.
        workers: the worker count to assume (None: ask the executor).
    """

    kind = "executor"
    carries_frames = False   # its tasks take large buffers beside the pickle (Dask)
    name = "the executor"   # as a place of its dispatcher (one place: its workers are alike)
    where = "to the executor's workers"
    gives_up = False   # an executor's task cannot be stopped from here
    partial = False    # ... and answers once

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
        self._launching = 0         # groups taken but not yet in flight
        self._stopping = False
        self._executor: Any = None
        self._broken = False        # a process pool that can take no more work
        self._init: tuple | None = None   # (token, pickled initializer) of this run

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        self._stopping = self._broken = False
        self._executor = self._open_executor()
        self._init = None
        in_process = isinstance(self._executor, concurrent.futures.ThreadPoolExecutor)
        self._level = wire.log_level() if self.worker_logs and not in_process else None
        payload = wire.pickle_initializer(self.initializer, self.initargs, "the executor")
        if payload is not None:
            self._init = (uuid.uuid4().hex, payload)

    def _open_executor(self) -> Any:
        """The executor of this run."""
        return self._given

    def stop(self, forced: bool = False) -> None:
        with self._lock:
            self._stopping = True
            self._queue.clear()
            inflight = list(self._inflight)
            self._inflight.clear()
            self._forget_all()
        for future in inflight:
            future.cancel()
        self._stop_timers()
        self._executor = None

    def _forget_all(self) -> None:
        """What a subclass keeps per task in flight goes (lock held)."""

    # -- size ----------------------------------------------------------------------

    @property
    def alive(self) -> int:
        if self._broken or self._executor is None:
            return 0
        if self._workers is not None:
            return self._workers
        return self._size()

    def _size(self) -> int:
        """The executor's workers, as it says."""
        return getattr(self._executor, "_max_workers", None) or os.cpu_count() or 1

    @property
    def capacity(self) -> int:
        return self.alive * self.prefetch

    # -- submitting ------------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        self._pack(batch)
        batch = wire.prepare(self.deliver, batch, self.where)
        if batch is None:
            return
        with self._lock:
            if self._stopping:
                return
            broken = self._broken
            if not broken:
                self._queue.put(batch)
                ready = self._take()
                failed = self._queue.impossible()
        if broken:   # it can run nothing more: lost (rerun while retries last, then failed)
            self.lost(batch, _BROKEN)
            return
        self._go(ready)
        for part, values, errors in failed:
            self.deliver(part, values, errors)

    def _break(self) -> None:
        """The executor can take no more work (a process pool whose worker
        died): what waits here is lost too, rather than waiting for room
        that never comes."""
        with self._lock:
            self._broken = True
            orphans = self._queue.clear()
        for batch in orphans:
            self.lost(batch, _BROKEN)

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

    def _pack(self, batch: Batch) -> None:
        """Pickle the items of ``batch`` as this executor takes them, if it
        has its own way (left to wire.prepare otherwise). Packed for
        another kind of place (shared memory; frames, unless this executor
        carries them), they are pickled again."""
        batch.unpack_unless(shared_memory=False, frames=self.carries_frames)

    def _part(self, batch: Batch) -> Any:
        """What a task of the executor takes for ``batch``: its pickled items."""
        return batch.data

    def _items(self, group: list) -> list:
        """What a task of ``group`` takes: the items of each batch (:meth:`_part`)."""
        return [self._part(b) for b in group]

    def bind(self, batch: Batch) -> None:
        batch.send(self)
        self._pack(batch)
        if batch.data is None:   # tasklets split off a batch (refused ones, say)
            batch.data = pickling.dumps(batch.items)
        group = [batch]
        if self.group_limit is not None and len(self._queue):
            self._join_queued(group)
        self._ready.append(group)
        self._launching += 1

    def take_back(self, fits: Any = None) -> bool:
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
        room = self.group_limit(first.task) - len(first)
        if room <= 0 or first.attempt or first.careful:
            return
        for batch in self._queue.take_followers(first.task, room):
            batch.send(self)
            group.append(batch)

    def _go(self, groups: list) -> None:
        """Submit ``groups`` (taken by :meth:`_take`)."""
        for group in groups:
            self._launch(group, self._items(group))

    def _submit_task(self, group: list, items: Any) -> Any:
        """Submit one executor task running ``group`` on ``items``; its future."""
        return self._executor.submit(kernel.run_submitted, group[0].task.payload()[0],
                                     self._init, items, log_level=self._level)

    def _launched(self, future: Any = None, group: list | None = None, **extra: Any) -> bool:
        """A taken group was submitted as ``future`` (None: it was not).
        Whether it counts as in flight (not if the backend is stopping)."""
        with self._lock:
            self._launching -= 1
            if future is None or self._stopping:
                return False
            self._inflight[future] = group
            return True

    def _launch(self, group: list, items: Any, **extra: Any) -> None:
        """Submit one executor task for ``group``, its items being ``items``;
        ``extra`` goes to :meth:`_launched` (what a subclass notes of it)."""
        try:
            future = self._submit_task(group, items)
        except Exception as exc:   # a broken pool, a closed client
            self._launched(**extra)
            for batch in group:
                self._refused(batch, exc)
            self._after(None, extra)
            return
        if self._launched(future, group, **extra):
            future.add_done_callback(self._done)
        else:
            future.cancel()

    def _refused(self, batch: Batch, exc: BaseException) -> None:
        self.lost(batch, f"the executor refused the batch: {exc!r}")
        if isinstance(exc, concurrent.futures.BrokenExecutor):
            self._break()

    # -- results ---------------------------------------------------------------------

    def _done(self, future: Any) -> None:
        """A task of the executor ended (a thread of the executor calls this):
        its batches are delivered, or fail. An exception escaping here would
        be lost in the executor's thread and its batches waited for ever:
        it is reported instead (the consumers get a RuntimeError)."""
        try:
            self._file(future)
        except Exception as exc:  # noqa: BLE001 - a crash barrier
            log.exception("filing the answer of an executor task failed")
            if self.on_crash is not None:
                self.on_crash("an executor's done-callback", exc)

    def _file(self, future: Any) -> None:
        with self._lock:
            group = self._inflight.pop(future, None)
            noted = self._forget(future)
            if group is None or self._stopping:
                return
            ready = self._take()
        self._go(ready)
        self._after(future, noted)
        try:
            submitted = Submitted.from_wire(future.result())
        except BaseException as exc:  # noqa: BLE001 - every outcome is filed
            self._failed(group, exc, noted)
            return
        if submitted.logs is not None:
            wire.relay_logs(submitted.logs, submitted.worker)
        for batch, answer in zip(group, submitted.replies, strict=True):
            try:
                reply = wire.decode_answer(batch, answer)
            except Exception as exc:   # a result that does not unpickle here: its batch fails
                wire.fail_batch(self.deliver, batch, wire.unreadable_answer(batch, exc), exc)
                continue
            batch.nbytes = wire.bytes_alive(batch, answer, reply.oob_bytes)
            if reply.errors:   # tasklets refused for a dependency go back, maybe
                with self._lock:
                    out = self._queue.answered(self._refuser(reply.errors), batch,
                                               reply.values, reply.errors)
                    failed = self._queue.impossible()
                    ready = self._take()
                self._go(ready)
                for part, values, errors in failed:
                    self.deliver(part, values, errors)
                if not out:
                    continue
                if out[0][1] is not reply.values:
                    reply = reply._replace(values=out[0][1], errors=out[0][2])
            self.deliver(batch, reply.values, reply.errors, reply.busy, reply.peak)

    def may_run(self, task: Any) -> tuple[list, dict]:
        with self._lock:
            return self._queue.may_run(task)

    def _refuser(self, errors: dict) -> Any:
        """Who refused tasklets (in ``errors``), as the dispatcher's
        ``answered`` takes it: the executor as a whole (its workers share
        one environment)."""
        return self

    def _forget(self, future: Any) -> Any:
        """What a subclass noted of ``future``, forgotten now it is done (lock held)."""
        return None

    def _after(self, future: Any, noted: Any) -> None:
        """A task ended, or failed to be submitted (``future`` None)."""

    def _failed(self, group: list, exc: BaseException, noted: Any) -> bool:
        """The task of ``group`` raised ``exc`` (not the user's code: the
        kernel catches that). Returns whether its worker died."""
        broken = isinstance(exc, concurrent.futures.BrokenExecutor)
        if broken:
            self._broken = True
        died = _worker_died(exc) or isinstance(exc, concurrent.futures.CancelledError)
        if died:
            self._workers_lost += 1
        for batch in group:
            if died:
                self.lost(batch, f"the executor's worker died: {exc!r}")
            else:
                wire.fail_batch(self.deliver, batch, UnsendableError(
                    f"the executor could not run a batch of task {batch.task.id} "
                    f"({batch.task.name}): {exc!r}"), exc)
        if broken:
            self._break()
        return died
