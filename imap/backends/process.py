"""Worker processes on this machine.

Data flow::

    Feeder --submit(batch)--> pending --dispatch--> sender thread (one per worker)
                                                        | pipe: SetTask (once per task), RunBatch
                                                        v
                                                   worker process
                                                        | pipe: replies (kernel records)
    engine.deliver / engine.lost <---- Router thread <--+  (+ process sentinels)

* ``submit`` (called by the Feeder) pickles the items, then queues the batch;
  a batch goes to the least busy live worker holding fewer than
  ``prefetch`` batches, preceded by the task's function if that worker has
  not had it yet (the dispatch common to process and remote workers:
  :mod:`.slots`).
* One **sender thread** per worker writes that worker's pipe, so a slow or
  full pipe never blocks the Feeder or the Router.
* The **Router thread** waits on every result pipe and every process
  sentinel (:class:`~.process_os.Waiter`). It reads results (one message
  per batch, batches answered in order), dispatches queued batches to the
  freed worker, and hands results to the engine. When a process dies it
  reads what the process managed to send, reports every batch it still held
  as lost, and starts a replacement.

Each worker has its own pipes, so a worker killed mid-write corrupts nothing
shared.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import pickle
import queue
import threading
from collections.abc import Callable
from typing import Any

from ..transport import shm, wire
from ..worker import process_entry as _worker
from ..worker.kernel import FLUSH_EVERY, PROTOCOL
from .base import GIVE_UP_AFTER, Batch, BatchState, Deliver, Lost
from .main_check import check_main_module
from .process_os import Waiter, default_start_method, ended, settle_threads, stopped
from .slot import Slot
from .slots import SlotBackend

log = logging.getLogger("imap")

JOIN_TIMEOUT = 5.0     # seconds a stopping worker gets before it is terminated
IDLE_DEATHS = 3        # a slot whose workers die this often with no work is not refilled

_QUIT = pickle.dumps(_worker.Quit())


class _Worker(Slot):
    """One worker process, its pipes and its sender thread."""

    __slots__ = ("slot", "process", "task_conn", "result_conn", "log_conn", "outbox",
                 "sender", "claims")

    def __init__(self, slot: int, owner: SlotBackend) -> None:
        super().__init__(f"worker-{slot}", owner)
        self.slot = slot
        self.log_conn: Any = None   # log records from the worker (worker_logs=True)
        self.claims: Any = None     # the _worker.Claims board shared with the process


def _close(worker: _Worker) -> None:
    """Release a dead worker's pipe and process handle (idempotent)."""
    try:
        worker.result_conn.close()
    except OSError:  # pragma: no cover
        pass
    try:
        worker.process.close()
    except (ValueError, AttributeError):  # already closed
        pass
    if worker.log_conn is not None:
        worker.log_conn.close()
        worker.log_conn = None


def _send_loop(outbox: queue.SimpleQueue, conn: Any) -> None:
    try:
        while True:
            data = outbox.get()
            if data is None:
                break
            conn.send_bytes(data)
    except OSError:
        pass  # the worker died; the Router sees its sentinel
    finally:
        conn.close()


class ProcessBackend(SlotBackend):
    """``num`` worker processes fed through per-worker pipes."""

    kind = "process"
    stepwise = True
    shared_memory = True
    where = "to a worker process"
    _none_left = "no worker process is left"

    @classmethod
    def from_options(cls, options: Any, workers: int, deliver: Deliver,
                     lost: Lost) -> ProcessBackend:
        return cls(workers, deliver, lost, options.resolved_start_method,
                   options.initializer, options.initargs, options.worker_logs)

    def __init__(
        self,
        num: int,
        deliver: Deliver,
        lost: Lost,
        start_method: str | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
        worker_logs: bool = True,
    ) -> None:
        super().__init__(deliver, lost, initializer, initargs)
        self.num = num
        self.worker_logs = worker_logs
        self.start_method = start_method or default_start_method()
        self._router: threading.Thread | None = None
        self._idle_deaths: collections.Counter = collections.Counter()
        self._refilling: set = set()   # slots whose replacement is starting
        self._arena: shm.Arena | None = None   # large buffers in shared memory, this run

    def _coming(self) -> bool:
        return bool(self._refilling)

    @property
    def capacity(self) -> int:
        # The slots asked for: a process being replaced is back soon, and
        # batches queue here meanwhile.
        return sum(1 for w in self._slots if w.alive or w.slot in self._refilling) * self.prefetch

    # -- life cycle --------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._refilling.clear()
        check_main_module(self.start_method)
        self._payload = self._init_payload()
        self._level = wire.log_level()
        shm.sweep_stale()   # segments of a parent that was killed
        self._arena = shm.Arena()
        self._views = self._arena.views
        ctx = mp.get_context(self.start_method)
        if self.start_method == "fork":
            settle_threads()
        # Workers are started before the Router thread, so "fork" forks a
        # process that has no thread of ours yet.
        self._slots = [self._spawn(ctx, slot, sender=False) for slot in range(self.num)]
        for worker in self._slots:
            self._start_sender(worker)
        self._router = threading.Thread(target=self.guarded(self._route, "imap-router"),
                                        name="imap-router", daemon=True)
        self._router.start()

    def _spawn(self, ctx: Any, slot: int, sender: bool = True) -> _Worker:
        worker = _Worker(slot, self)
        task_r, task_w = ctx.Pipe(duplex=False)
        result_r, result_w = ctx.Pipe(duplex=False)
        log_r = log_w = None
        if self.worker_logs:
            log_r, log_w = ctx.Pipe(duplex=False)
        worker.claims = _worker.Claims(ctx)
        process = ctx.Process(
            target=_worker.process_main,
            args=(task_r, result_w, self._payload, log_w, self._level, worker.claims,
                  self._arena.run, os.getpid(), ctx.get_start_method() != "forkserver"),
            name=f"imap-worker-{slot}",
            daemon=True,
        )
        process.start()
        task_r.close()
        result_w.close()
        if log_w is not None:
            log_w.close()
        worker.log_conn = log_r
        worker.process = process
        worker.task_conn = task_w
        worker.result_conn = result_r
        worker.outbox = queue.SimpleQueue()
        if sender:
            self._start_sender(worker)
        return worker

    @staticmethod
    def _start_sender(worker: _Worker) -> None:
        worker.sender = threading.Thread(
            target=_send_loop, args=(worker.outbox, worker.task_conn),
            name=f"imap-sender-{worker.slot}", daemon=True,
        )
        worker.sender.start()

    def stop(self, forced: bool = False) -> None:
        workers = self._begin_stop()
        self._stop_timers()
        for w in workers:
            if not forced:
                w.outbox.put(_QUIT)
            w.outbox.put(None)
        for w in workers:
            try:
                self._end_process(w, forced)
            except ValueError:   # closed by the Router, which saw it die and reaped it
                pass
        # Every process is gone, so the Router and the senders end promptly;
        # the bound only matters if the Router is stuck delivering to an
        # engine whose lock an interrupted thread still holds.
        if self._router is not None and self._router is not threading.current_thread():
            self._router.join(JOIN_TIMEOUT)
            if self._router.is_alive():
                log.warning("the router thread did not end; leaving it (a daemon thread)")
        for w in workers:
            w.sender.join(JOIN_TIMEOUT)
            _close(w)
        self._router = None
        if self._arena is not None:   # every segment of the run: none outlives it
            self._arena.close()
        stopped()

    @staticmethod
    def _end_process(w: _Worker, forced: bool) -> None:
        """Wait for a stopping worker to quit (terminate, then kill it if
        it does not) and reap it."""
        # A worker still running an abandoned tasklet would not quit in time.
        if forced or (w.held and w.held[0].abandoned):
            w.process.terminate()
        if not ended(w.process, 0 if forced else JOIN_TIMEOUT):
            if not forced:
                log.warning("worker %s did not quit within %.0f s; terminating it",
                            w.process.pid, JOIN_TIMEOUT)
            w.process.terminate()
            if not ended(w.process, 1.0):
                w.process.kill()
        w.process.join()   # it has ended: this only reaps it

    def _init_payload(self) -> bytes | None:
        # By reference where it can: see pickling.dumps_local.
        return wire.pickle_initializer(self.initializer, self.initargs, self.where[3:],
                                       local=True)

    def _task_payload(self, task: Any) -> bytes | None:
        return task.local_payload()

    def _cut_off(self, worker: _Worker) -> None:
        worker.process.kill()   # the Router replaces it like any dead worker

    # -- sending -------------------------------------------------------------------

    def _send(self, worker: _Worker, batch: Batch, payload: bytes | None) -> None:
        key = batch.task.key
        if payload is not None:
            worker.outbox.put(pickle.dumps(_worker.SetTask(key, payload), PROTOCOL))
        every = 0.0 if batch.careful or batch.task.each_result else FLUSH_EVERY
        free = self._arena.freed(worker.process.pid) if self._arena is not None else ()
        worker.outbox.put(pickle.dumps(_worker.RunBatch(key, batch.data, every, batch.ticket,
                                                        batch.refs, free), PROTOCOL))

    def submit(self, batch: Batch) -> None:
        if batch.data is None:
            self._pack(batch)
        super().submit(batch)

    def _pack(self, batch: Batch) -> None:
        """Pickle the items of ``batch``, their large buffers into shared
        memory (imap.transport.shm); left to wire.prepare if they do not pickle so."""
        arena = self._arena
        if arena is None:
            return
        try:
            batch.data, batch.refs, batch.segment = arena.pack(batch.items)
        except Exception:   # cloudpickle may carry them; wire.prepare says which cannot
            batch.data, batch.refs, batch.segment = None, (), None

    def _done_with(self, batch: Batch) -> None:
        if batch.segment is not None and self._arena is not None:   # the worker has read it
            self._arena.done_with(batch.segment)
            batch.segment = None

    def _says_begun(self, batch: Batch) -> bool:
        return batch.careful or batch.task.each_result   # sent with every=0: see _send

    def _reclaim(self, worker: _Worker, batch: Batch) -> bool:
        # The claims board answers at once: the worker checks it before it
        # starts a batch, under the same lock.
        return worker.claims.revoke(batch.ticket)

    # -- the Router thread -----------------------------------------------------

    def _route(self) -> None:
        waiter = Waiter()
        while True:
            with self._lock:
                live = [w for w in self._slots if w.alive]
                if not live and (self._stopping or not self._slots):
                    return
            if waiter.changed(live):
                by_conn = {w.result_conn: w for w in live}
                by_sentinel = {w.process.sentinel: w for w in live}
                by_log = {w.log_conn: w for w in live if w.log_conn is not None}
                waiter.watch(list(by_conn) + list(by_sentinel) + list(by_log))
            for ready in waiter.wait():
                if ready in by_log:
                    self._read_log(by_log[ready])
                elif ready in by_conn:
                    worker = by_conn[ready]
                    if not worker.alive:
                        continue
                    try:
                        data = ready.recv_bytes()
                    except (EOFError, OSError):
                        self._died(worker)
                        continue
                    self._answered(worker, data)
                else:
                    worker = by_sentinel[ready]
                    if worker.alive:
                        self._died(worker)

    @staticmethod
    def _read_log(worker: _Worker) -> None:
        conn = worker.log_conn
        if conn is None:   # closed when the worker died, earlier in this round
            return
        try:
            while conn.poll():
                wire.relay_log(pickle.loads(conn.recv_bytes()))
        except (EOFError, OSError):   # the worker is gone: its sentinel tells the Router
            conn.close()
            worker.log_conn = None

    def _died(self, worker: _Worker) -> None:
        if worker.log_conn is not None:  # what it logged before it died
            self._read_log(worker)
        # Results the process sent before it died are still in the pipe.
        try:
            while worker.held and worker.result_conn.poll():
                self._answered(worker, worker.result_conn.recv_bytes())
        except (EOFError, OSError):
            pass
        with self._lock:
            stopping = self._stopping
        if not stopping:   # else stop() reaps it: one thread waits for a child
            worker.process.join(1.0)
        code = worker.process.exitcode
        # A worker runs its batches one after the other, answering each
        # before it reads the next: only the first unanswered batch was
        # running. The others never started, so they go to other workers.
        with self._lock:   # a worker comes in its place (unless it keeps dying: below)
            self._refilling.add(worker.slot)
        held, stopping = self._slot_died(worker, started=1)
        worker.outbox.put(None)
        if stopping:
            with self._lock:
                self._refilling.discard(worker.slot)
            return
        self._workers_lost += 1
        given_up = [b for b in held if b.state is BatchState.GIVEN_UP]
        if given_up:
            log.warning("worker process %s still ran a tasklet abandoned %.0f s ago "
                        "(skip=True); it was killed and is replaced", worker.process.pid,
                        GIVE_UP_AFTER)
            held = [b for b in held if b.state is not BatchState.GIVEN_UP]
        else:
            log.warning("worker process %s died (exit code %s) running %d tasklet(s); "
                        "replacing it", worker.process.pid, code, sum(len(b) for b in held))
        refill = True
        if held or given_up:   # killed for a tasklet given up: it had work
            self._idle_deaths[worker.slot] = 0
        else:
            self._idle_deaths[worker.slot] += 1
            refill = self._idle_deaths[worker.slot] < IDLE_DEATHS
            if not refill:
                log.error("workers in slot %d keep dying with no work; not replacing it",
                          worker.slot)
                with self._lock:
                    self._refilling.discard(worker.slot)
        if refill:
            method = "forkserver" if self.start_method == "fork" else self.start_method
            replacement = self._spawn(mp.get_context(method), worker.slot)
            with self._lock:
                self._refilling.discard(worker.slot)
                stopping = self._stopping
                if not stopping:
                    self._slots[self._slots.index(worker)] = replacement
                    self._dispatch()
            if stopping:  # stop() began while the replacement started
                replacement.outbox.put(None)
                replacement.process.kill()
                replacement.process.join()
                replacement.sender.join()
                _close(replacement)
        reason = f"worker process {worker.process.pid} died (exit code {code})"
        for batch in held:
            self.lost(batch, reason)
        for batch in given_up:
            self._settle_given_up(batch)
        worker.sender.join()
        _close(worker)
        if not refill:
            with self._lock:
                self._slots.remove(worker)
            self._orphans()
