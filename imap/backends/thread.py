"""Worker threads: they call the function directly, in this process.

The threads are one place of the backend's
:class:`~imap.flow.dispatch.Dispatcher`: they share one process, so what
one of them refuses (a function whose dependency is unmet here) they all
refuse, and a batch may run on whichever thread frees first. Nothing
travels, so nothing is bound ahead of time: a thread that frees up takes
the next batch itself (:meth:`Dispatcher.take`, in the run's
``depth_order``), which is then running (``queued`` to ``running``).

The submitting thread (the Feeder) takes no lock: it marks the batch
queued, appends it to ``_arrivals`` (a deque, whose appends and pops are
atomic) and adds one wake-up to ``_wakes``, a ``queue.SimpleQueue`` used as
a counting semaphore on which the threads block while nothing is queued (a
stop adds one ``None`` per thread). A thread that wakes moves every arrival
into the dispatcher, under the backend's lock, then takes the next batch
there: what arrived while it ran is ordered with what waited. There are
never fewer wake-ups than batches arrived or queued, so no batch waits
while a thread sleeps; a thread woken for a batch that another thread took,
or that failed meanwhile, finds none and blocks again. (Submitting under
the lock, with the threads waiting on a ``Condition`` of it, made the Feeder
contend with them for the lock on every batch: one-tasklet batches took
about 20 % longer.)

Each thread runs the initializer as every other worker does, through the
kernel (:func:`kernel.initialize`), and a failure reaches each of its
tasklets as the same :class:`~imap.WorkerInitError` (read with
``wire.unpack_error``); its ``(initializer, initargs)`` is handed over as a
reference to the objects themselves (:class:`_InProcess`), so a thread gets
them, not copies.

Tasklets refused here go through the dispatcher (:meth:`Dispatcher.answered`),
which fails them as :class:`~imap.ImpossibleDependency` (no other thread can
run them), or, when the threads are a part of a mixed pool, hands them to
its other part (``pass_on``).
"""

from __future__ import annotations

import collections
import itertools
import logging
import pickle
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..errors import UnmetDependency
from ..flow.dispatch import Dispatcher
from ..transport.wire import refusal, unpack_error, with_traceback_cause
from ..worker.kernel import FLUSH_EVERY, initialize, run_batch, traceback_text, unmet_dependency
from .base import GIVE_UP_AFTER, Backend, Batch, Deliver, Lost

log = logging.getLogger("imap")

JOIN_TIMEOUT = 5.0         # seconds all threads get to end after a graceful stop
FORCED_JOIN_TIMEOUT = 0.5  # ... after a forced one
# Threads left behind in tasklets given up (skip=True) that one IMap run
# replaces; past it, the run fails with a clear error instead of stalling.
LEFT_BEHIND = 64

# key -> (initializer, initargs) of the thread pools running now (see _InProcess).
_INITIALIZERS: dict = {}


def _initializer(key: str) -> tuple:
    """The ``(initializer, initargs)`` registered under ``key``."""
    return _INITIALIZERS[key]


class _InProcess:
    """``(initializer, initargs)`` as :func:`kernel.initialize` takes them
    (a pickle), for threads of this process: pickled as a reference to the
    objects themselves, registered while the threads run."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __reduce__(self) -> tuple:
        return (_initializer, (self.key,))


class ThreadBackend(Backend):
    """``num`` threads taking batches from one dispatcher as they free up
    (see the module docstring).

    With one thread and a fixed stride, functions are called exactly in
    submission order.
    """

    kind = "thread"
    name = "the worker threads"   # as the one place of its dispatcher

    @classmethod
    def from_options(cls, options: Any, workers: int, deliver: Deliver,
                     lost: Lost) -> ThreadBackend:
        return cls(workers, deliver, lost, options.initializer, options.initargs)

    def __init__(
        self,
        num: int,
        deliver: Deliver,
        lost: Lost,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
    ) -> None:
        super().__init__(deliver, lost)
        self.num = num
        self.initializer = initializer
        self.initargs = initargs
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._queue = Dispatcher(lambda: (self,), lambda: self.depth_order)
        self._arrivals: collections.deque = collections.deque()   # submitted, not queued yet
        # Wake-ups of this run's threads (one queue a run): True per batch
        # submitted, None per thread at a stop.
        self._wakes: queue.SimpleQueue = queue.SimpleQueue()
        self._forced = False
        self._stopping = False
        self._init_key: str | None = None   # this run's initializer in _INITIALIZERS
        self._running: dict[threading.Thread, Batch] = {}   # what each thread runs now
        self._began: dict[threading.Thread, float] = {}   # ... and when its first tasklet began
        self._retired: set = set()    # threads replaced while stuck in an abandoned tasklet

    def may_run(self, task: Any) -> tuple[list, dict]:
        with self._lock:
            return self._queue.may_run(task)

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    @property
    def capacity(self) -> int:
        return self.num * self.prefetch

    def start(self) -> None:
        with self._lock:
            self._forced = self._stopping = False
            self._wakes = queue.SimpleQueue()   # threads left behind keep the last run's
            self._running.clear()
            self._began.clear()
            self._retired.clear()
        if self.initializer is not None:
            self._init_key = uuid.uuid4().hex
            _INITIALIZERS[self._init_key] = (self.initializer, tuple(self.initargs))
        self._threads = [self._new_thread(i) for i in range(self.num)]
        for thread in self._threads:
            thread.start()

    def _new_thread(self, number: int) -> threading.Thread:
        name = f"imap-thread-worker-{number}"
        return threading.Thread(target=self.guarded(self._loop, name), name=name,
                                args=(self._wakes, self._init_key), daemon=True)

    # -- what the threads run (for skip=True and the engine's stall watch) -------------

    def _running_batch(self, task: Any, index: int) -> Batch | None:
        with self._lock:
            for batch in itertools.chain(self._running.values(), self._queue.pending,
                                         self._arrivals.copy()):
                if batch.task is task and index in batch.indices:
                    return batch
        return None

    def began(self, task: Any, index: int) -> float | None:
        with self._lock:
            for thread, batch in self._running.items():
                if batch.task is task and len(batch) and batch.indices[0] == index:
                    return self._began[thread]
        return None

    def running_tasklets(self) -> list:
        with self._lock:
            return [(b.task, b.indices[0], self._began[t]) for t, b in self._running.items()
                    if len(b)]

    def _give_up(self, batch: Batch) -> bool:
        """A thread still runs ``batch``, which holds an abandoned tasklet: it
        cannot be killed, so it is left to finish on its own (its answer is
        ignored) and a new thread takes its place, up to ``LEFT_BEHIND``
        threads a run; past that the run fails with an error saying so."""
        with self._lock:
            if self._stopping:
                return False
            stuck = [t for t, b in self._running.items() if b is batch]
            if not stuck:
                # not taken yet: look again later
                return batch in self._queue.pending or batch in self._arrivals.copy()
            thread = stuck[0]
            too_many = len(self._retired) >= LEFT_BEHIND
            if not too_many:
                batch.give_up()
                self._retired.add(thread)
                del self._running[thread]
                self._began.pop(thread, None)
                replacement = self._new_thread(len(self._threads))
                self._threads.append(replacement)
                replacement.start()
        if too_many:
            message = (f"{LEFT_BEHIND} worker threads were left behind in tasklets that never "
                       f"returned (skip=True); no more are replaced. Use process workers "
                       f"(worker_type='process'), whose hung tasklets end with their process, "
                       f"or make the function return")
            log.error(message)
            if self.on_crash is not None:
                self.on_crash("imap-thread-workers", RuntimeError(message))
            return False
        self._workers_lost += 1
        log.warning(
            "%s still runs a tasklet abandoned %.0f s ago (skip=True); it is left to "
            "finish on its own (threads cannot be killed) and a new thread takes its place",
            thread.name, GIVE_UP_AFTER)
        self._settle_given_up(batch)
        return False

    # -- batches in -------------------------------------------------------------------

    def submit(self, batch: Batch) -> None:
        batch.queue()
        self._arrivals.append(batch)   # without the lock: see the module docstring
        self._wakes.put(True)

    def _take(self, me: threading.Thread, wakes: queue.SimpleQueue) -> Batch | None:
        """The next batch for thread ``me`` (woken by ``wakes``), started;
        None once it is to end: at a stop (a graceful one once nothing is
        queued)."""
        while wakes.get() is not None:
            with self._lock:
                if self._forced or wakes is not self._wakes:
                    return None
                arrivals = self._arrivals
                while arrivals:
                    self._queue.put_queued(arrivals.popleft())
                failed = self._queue.impossible()   # tasks the threads refused already
                batch = self._queue.take(self)
                if batch is not None:
                    batch.start()
                    self._running[me] = batch
                    self._began[me] = time.monotonic()
            if failed:
                self._settle(failed)
            if batch is not None:
                return batch
        return None

    # -- a worker thread --------------------------------------------------------------

    def _loop(self, wakes: queue.SimpleQueue, init_key: str | None) -> None:
        init_error = None
        if init_key is not None:   # the kernel runs it, as in every other worker
            init_error = initialize(pickle.dumps(_InProcess(init_key)))
            if init_error is not None:
                log.error("worker initializer failed: %s", init_error[1][1])
        me = threading.current_thread()
        while (batch := self._take(me, wakes)) is not None:
            n = len(batch)
            if init_error is not None:
                self._not_running(me)
                self.deliver(batch, [None] * n, {p: unpack_error(init_error) for p in range(n)})
                continue
            task = batch.task
            try:
                reason = unmet_dependency(task.func)
            except Exception as exc:   # noqa: BLE001 - a mark that is not as made
                reason = f"its dependency could not be checked ({exc!r})"
            if reason is not None:   # every thread refuses the task: the dispatcher says so
                self._not_running(me)
                self._file(batch, [None] * n, dict.fromkeys(range(n), refusal(reason)))
                continue
            values, errors, busy, peak = run_batch(task.func, task.args, task.kwargs,
                                                   batch.items, pack=False,
                                                   every=0.0 if task.each_result else FLUSH_EVERY,
                                                   flush=self._flusher(batch, me, wakes))
            with self._lock:
                self._running.pop(me, None)
                self._began.pop(me, None)
                if self._unwanted(me, wakes):   # replaced while stuck: its answer is not wanted
                    return
            self._answer(batch, values, errors, busy, peak)

    def _unwanted(self, me: threading.Thread, wakes: queue.SimpleQueue) -> bool:
        """Whether thread ``me`` (woken by ``wakes``) was replaced, or its
        run is over and another began, so that what it computes now is not
        wanted (lock held)."""
        return me in self._retired or wakes is not self._wakes

    def _not_running(self, me: threading.Thread) -> None:
        with self._lock:
            self._running.pop(me, None)
            self._began.pop(me, None)

    def _flusher(self, batch: Batch, me: threading.Thread, wakes: queue.SimpleQueue) -> Any:
        """``flush`` for run_batch: the first tasklets of a long batch are
        delivered while it runs on (as a worker process does), so those
        before a slow or hung one are not held back with it."""
        def flush(values: list, errors: dict | None, busy: float, peak: float) -> None:
            with self._lock:
                if self._unwanted(me, wakes):   # replaced: the batch runs elsewhere now
                    return
                head = batch.split_off(len(values))
                if me in self._began:   # the next tasklet begins now
                    self._began[me] = time.monotonic()
            self._answer(head, values, errors, busy, peak)
        return flush

    # -- answers out ------------------------------------------------------------------

    def _answer(self, batch: Batch, values: list, errors: dict | None, busy: float,
                peak: float) -> None:
        """File what a thread computed for ``batch``: each error gets its
        traceback as its cause (text, as from any worker)."""
        if errors:
            for exc in errors.values():
                with_traceback_cause(exc, traceback_text(exc))
        self._file(batch, values, errors, busy, peak)

    def _file(self, batch: Batch, values: list, errors: dict | None, busy: float | None = None,
              peak: float | None = None) -> None:
        """Deliver the answer to ``batch``; tasklets the threads refused
        (``UnmetDependency``) go to the dispatcher, which fails them or
        hands them on (see the module docstring)."""
        if not errors or not any(isinstance(e, UnmetDependency) for e in errors.values()):
            self.deliver(batch, values, errors, busy, peak)
            return
        with self._lock:
            out = self._queue.answered(self, batch, values, errors)
            failed = self._queue.impossible()
        for part, kept, kept_errors in out:
            self.deliver(part, kept, kept_errors, busy, peak)
        self._settle(failed)

    def _settle(self, failed: list) -> None:
        """Deliver ``(batch, values, errors)`` triples that the dispatcher
        failed (refused by every thread); or, as a part of a larger pool,
        pass them on to its other part (``pass_on``)."""
        for batch, values, errors in failed:
            if self.pass_on is not None:
                self.pass_on(batch, errors[0].refusals, errors[0].whole)
            else:
                self.deliver(batch, values, errors)

    # -- stop ---------------------------------------------------------------------------

    def stop(self, forced: bool = False) -> None:
        with self._lock:
            self._stopping = True
            self._forced = forced
            wakes = self._wakes
        for _ in self._threads:
            wakes.put(None)
        self._stop_timers()
        # Threads cannot be killed: a forced stop gives a function that is
        # still running a moment to return, then leaves its (daemon) thread.
        deadline = time.monotonic() + (FORCED_JOIN_TIMEOUT if forced else JOIN_TIMEOUT)
        current = threading.current_thread()
        left = [t for t in self._threads if t in self._retired and t.is_alive()]
        if left:
            log.warning("%d worker thread(s) still run tasklets given up (skip=True); they "
                        "are left to finish on their own (threads cannot be killed)", len(left))
        for thread in self._threads:
            if thread is current or thread in self._retired:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning(
                    "%s is still running a function; it is left to finish on its own "
                    "(threads cannot be killed)", thread.name,
                )
        with self._lock:
            self._queue.clear()   # a forced stop drops what is queued
            self._arrivals.clear()
        self._threads = []
        if self._init_key is not None:
            _INITIALIZERS.pop(self._init_key, None)
            self._init_key = None
