"""Worker threads: they call the function directly, in this process."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ImpossibleDependency, UnmetDependency, init_failed
from ..flow.dispatch import refusal_errors
from ..transport.wire import with_traceback_cause
from ..worker.kernel import FLUSH_EVERY, run_batch, traceback_text, unmet_dependency
from .base import GIVE_UP_AFTER, Backend, Batch, Deliver, Lost

log = logging.getLogger("imap")

JOIN_TIMEOUT = 5.0         # seconds all threads get to end after a graceful stop
FORCED_JOIN_TIMEOUT = 0.5  # ... after a forced one
# Threads left behind in tasklets given up (skip=True) that one IMap run
# replaces; past it, the run fails with a clear error instead of stalling.
LEFT_BEHIND = 64


class ThreadBackend(Backend):
    """``num`` threads taking batches from one queue, first come first served.

    With one thread, functions are called exactly in submission order.
    """

    kind = "thread"
    name = "the worker threads"

    @classmethod
    def from_options(cls, options: Any, workers: int, deliver: Deliver,
                     lost: Lost) -> ThreadBackend:
        return cls(workers, deliver, lost, options.initializer, options.initargs, options.skip)

    def __init__(
        self,
        num: int,
        deliver: Deliver,
        lost: Lost,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple = (),
        skip: bool = False,
    ) -> None:
        super().__init__(deliver, lost)
        self.num = num
        self.initializer = initializer
        self.initargs = initargs
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._forced = False
        self._lock = threading.Lock()
        self._running: dict[threading.Thread, Batch] = {}   # what each thread runs now
        self._began: dict[threading.Thread, float] = {}   # ... and when its first tasklet began
        self._retired: set = set()    # threads replaced while stuck in an abandoned tasklet
        self._queued: set = set()     # batches submitted, not yet taken (skip=True only)
        self._skip = skip
        self._stopping = False
        self._refused: dict = {}   # task key -> why its dependency is unmet here

    def may_run(self, task: Any) -> tuple[list, dict]:
        if task.key in self._refused:
            return [], {self.name: self._refused[task.key]}
        return [self.name], {}

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)

    @property
    def capacity(self) -> int:
        return self.num * self.prefetch

    def start(self) -> None:
        self._forced = self._stopping = False
        self._running.clear()
        self._began.clear()
        self._retired.clear()
        self._threads = [self._new_thread(i) for i in range(self.num)]
        for thread in self._threads:
            thread.start()

    def _new_thread(self, number: int) -> threading.Thread:
        name = f"imap-thread-worker-{number}"
        return threading.Thread(target=self.guarded(self._loop, name), name=name, daemon=True)

    def _running_batch(self, task: Any, index: int) -> Batch | None:
        with self._lock:
            for batch in itertools.chain(self._running.values(), self._queued):
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
                return batch in self._queued
            thread = stuck[0]
            if len(self._retired) >= LEFT_BEHIND:
                too_many = True
            else:
                too_many = False
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

    def submit(self, batch: Batch) -> None:
        batch.queue()
        if self._skip:
            with self._lock:
                self._queued.add(batch)
        self._queue.put(batch)

    def _loop(self) -> None:
        init_error: BaseException | None = None
        if self.initializer is not None:
            try:
                self.initializer(*self.initargs)
            except Exception as exc:
                init_error = with_traceback_cause(exc, traceback_text(exc))
                log.error("worker initializer failed: %r", exc)
        get = self._queue.get
        me = threading.current_thread()
        while True:
            batch = get()
            if batch is None or self._forced:
                break
            with self._lock:   # who runs what: for skip=True, and a stop's warning
                batch.start()
                self._running[me] = batch
                self._began[me] = time.monotonic()
                self._queued.discard(batch)
            task = batch.task
            if init_error is not None:
                name = getattr(self.initializer, "__qualname__", None) or repr(self.initializer)
                errors = {p: init_failed(name, init_error) for p in range(len(batch))}
                self._not_running(me)
                self.deliver(batch, [None] * len(batch), errors)
                continue
            try:
                reason = unmet_dependency(task.func)
            except Exception as exc:   # noqa: BLE001 - a mark that is not as made
                reason = f"its dependency could not be checked ({exc!r})"
            if reason is not None:
                self._not_running(me)
                self.refuse(batch, dict.fromkeys(range(len(batch)), reason), True)
                continue
            values, errors, busy, peak = run_batch(task.func, task.args, task.kwargs,
                                                   batch.items, pack=False,
                                                   every=0.0 if task.each_result else FLUSH_EVERY,
                                                   flush=self._flusher(batch, me))
            with self._lock:
                self._running.pop(me, None)
                self._began.pop(me, None)
                if me in self._retired:  # replaced while stuck: its answer is not wanted
                    return
            self._file(batch, values, errors, busy, peak)

    def _not_running(self, me: threading.Thread) -> None:
        with self._lock:
            self._running.pop(me, None)
            self._began.pop(me, None)

    def _file(self, batch: Batch, values: list, errors: dict | None, busy: float,
              peak: float) -> None:
        if errors:
            for exc in errors.values():
                with_traceback_cause(exc, traceback_text(exc))
            refused = {p: str(e) or "UnmetDependency raised" for p, e in errors.items()
                       if isinstance(e, UnmetDependency)
                       and not isinstance(e, ImpossibleDependency)}
            if refused:
                kept = [p for p in range(len(batch)) if p not in refused]
                if kept:
                    self.deliver(batch.subset(kept), [values[p] for p in kept],
                                 {i: errors[p] for i, p in enumerate(kept) if p in errors}
                                 or None, busy, peak)
                self.refuse(batch.subset(list(refused)), dict(enumerate(refused.values())),
                            False)
                return
        self.deliver(batch, values, errors, busy, peak)

    def refuse(self, batch: Batch, reasons: dict, whole: bool) -> None:
        """The threads refused the tasklets of ``batch`` (position -> why;
        ``whole``: the function's dependency is unmet in this process). The
        threads share one process, so no other thread can run them: they
        fail as :class:`~imap.ImpossibleDependency`, or go to the other part
        of the pool this backend is part of (``pass_on``)."""
        task = batch.task
        if whole:
            self._refused[task.key] = reasons[0]
        if self.pass_on is not None:
            self.pass_on(batch, {self.name: reasons[0]}, whole)
            return
        errors = refusal_errors(batch, [{self.name: reasons[pos]} for pos in range(len(batch))],
                                whole)
        self.deliver(batch, [None] * len(batch), errors)

    def _flusher(self, batch: Batch, me: threading.Thread) -> Any:
        """``flush`` for run_batch: the first tasklets of a long batch are
        delivered while it runs on (as a worker process does), so those
        before a slow or hung one are not held back with it."""
        def flush(values: list, errors: dict | None, busy: float, peak: float) -> None:
            with self._lock:
                if me in self._retired:   # replaced: the batch runs elsewhere now
                    return
                head = batch.split_off(len(values))
                if me in self._began:   # the next tasklet begins now
                    self._began[me] = time.monotonic()
            self._file(head, values, errors, busy, peak)
        return flush

    def stop(self, forced: bool = False) -> None:
        with self._lock:
            self._stopping = True
        self._stop_timers()
        self._forced = forced
        for _ in self._threads:
            self._queue.put(None)
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
        self._threads = []
        self._queue = queue.SimpleQueue()
