"""The shared state of one IMap and the operations on it.

Everything here runs under one lock (``Engine.lock``) with two conditions on
it: ``slot_free`` (the Feeder waits for a buffer slot) and ``result_ready``
(consumers, and the Feeder drawing from an upstream task, wait for results).
No method holds the lock across a call into user code or a backend.

Threads that call in:

* the **Feeder** (``feeder.py``): ``take_slots``, ``give_back``,
  ``pull_upstream``, ``register``, ``file_failed``, ``mark_exhausted``;
* **backend threads** (the thread workers, the process Router, the remote
  drivers): ``deliver`` and ``lost``;
* **consumers** (``next()`` on a task iterator, ``stop()``): ``take`` and
  ``drain``, the consumers' side (:mod:`.consumers`, a base class of the
  engine).

What runs again after a lost worker, when a wait skips and what a stall
does are decided in :mod:`imap.flow` (``recover``, ``waits``, ``draw``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import retry
from ..errors import TimeoutError
from ..flow import draw, recover, waits
from . import waiting
from .consumers import ConsumerSide
from .results import Failure
from .stats import RunStats
from .status import IMapStatus, snapshot
from .task import Task


class Engine(ConsumerSide):
    """State shared by the Feeder, the backends and the consumers."""

    def __init__(self, buffer: int, skip: bool, stall_grace: float | None,
                 policy: Any = None) -> None:
        self.lock = threading.RLock()   # an RLock: see waiting.wait
        self.slot_free = threading.Condition(self.lock)
        self.result_ready = threading.Condition(self.lock)
        self.buffer = buffer
        self.skip = skip
        self.stall_grace = stall_grace
        self.tasks: list[Task] = []
        self.generation = 0
        self.tracked: dict[int, dict[int, Any]] = {}
        self.backend: Any = None
        self.started = False     # between IMap.start() and IMap.stop()
        self.stopped = False     # stopped at least once, not started since
        self.policy = policy     # flow.FlowPolicy: stride, batch and bound in force
        self.impatient = False   # turns draw what is ready (see patient())
        self.consumers_waiting = 0   # consumers waiting in take() for a result
        self.run = RunStats()
        self.retrier = retry.Retrier()   # tasklets waiting to run again (retry_on)
        self.reset()

    def reset(self) -> None:
        self.slots_used = 0
        self.high_water = 0
        self.in_flight = 0
        self.feeder_waits_slot = False   # the Feeder waits for a free buffer slot
        self.feeder_waits_on: Task | None = None  # ... or for a result of this upstream task
        self.feeder_waits_any: list | None = None  # ... or for any of these tasks to draw
        self.draw_stop = False           # graceful stop: sources draw no new stride
        self.tail = False                # impatient, and every input has ended (see ahead())
        self.forced = False              # forced stop: everything ends now
        self.feeder_done = False
        self.failure: BaseException | None = None

    # -- the run's life cycle (the IMap calls these; nothing else assigns) ---------

    def begin_run(self, impatient: bool) -> None:
        """A new run is set up: counters reset, the policy's first bound in
        force, and whether turns are impatient (see ``flow.draw.patient``)."""
        self.reset()
        self.buffer = self.policy.bound
        self.impatient = impatient

    def attach(self, backend: Any) -> None:
        """The run's workers (before they start)."""
        self.backend = backend

    def detach(self) -> Any:
        """Take the run's workers away (to stop them); None if there are none."""
        backend, self.backend = self.backend, None
        return backend

    def running(self) -> None:
        """The workers are up and the Feeder starts: results may be taken."""
        self.run.begin()   # the run's clock starts once the workers are up
        self.started = True
        self.stopped = False

    def request_stop(self) -> None:
        """A graceful stop: the inputs are drawn no further (a Feeder
        waiting for work ends them)."""
        with self.lock:
            self.draw_stop = True
            self.slot_free.notify_all()

    def end_run(self) -> IMapStatus | None:
        """The run is over: its tasks go, its task iterators end, and the
        engine may take new tasks. Returns the run's last status (None if
        it was not running)."""
        last = None
        if self.started:
            self.run.ended = time.perf_counter()
            last = self.status()
        with self.lock:
            self.started = False
            self.stopped = True
            self.generation += 1
            for task in self.tasks:
                task.handout.clear()
            self.tasks = []
            self.result_ready.notify_all()
        return last

    # -- the Feeder's side ---------------------------------------------------

    def take_slots(self, want: int, wait: bool) -> int:
        """Take up to ``want`` free slots; 0 if none (or when forced)."""
        with self.lock:
            while True:
                if self.forced:
                    return 0
                free = self.buffer - self.slots_used
                if free > 0:
                    got = min(want, free)
                    self.slots_used += got
                    if self.slots_used > self.high_water:
                        self.high_water = self.slots_used
                    return got
                if not wait:
                    return 0
                self.feeder_waits_slot = True
                self.result_ready.notify_all()  # let stalled consumers see it
                began = time.perf_counter()
                waiting.wait(self.slot_free)
                self.run.room_wait += time.perf_counter() - began
                self.feeder_waits_slot = False

    def new_turn(self) -> int:
        """Ask the flow policy for this turn's stride and the bound in force."""
        with self.lock:
            stride = self.policy.turn(self.tasks, self.slots_used)
            self.buffer = self.policy.bound
            return stride

    def sent(self, task: Task, n: int, nbytes: int) -> int:
        """The first batch of ``task`` was pickled (``nbytes`` for ``n``
        tasklets): the bound in force takes sizes into account at once.
        Returns the stride of the rest of this turn."""
        with self.lock:
            self.buffer, stride = self.policy.sent(task, n, nbytes, self.tasks, self.slots_used)
            return stride

    def wait_for_work(self, active: list) -> None:
        """Wait until some task of ``active`` can draw (or a forced stop)."""
        with self.lock:
            while not self.forced and not draw.work_ready(self, active):
                if draw.starved(self):
                    self.buffer = self.policy.stretch(self.tasks, self.slots_used)
                    continue
                self.feeder_waits_any = active
                self.feeder_waits_slot = True   # _free() and deliver() wake us
                self.result_ready.notify_all()  # let stalled consumers see it
                full = self.slots_used >= self.buffer
                began = time.perf_counter()
                waiting.wait(self.slot_free)
                if full:
                    self.run.room_wait += time.perf_counter() - began
                self.feeder_waits_slot = False
                self.feeder_waits_any = None

    def give_back(self, n: int) -> None:
        if n:
            with self.lock:
                self.slots_used -= n
                self.slot_free.notify()

    def pull_upstream(self, task: Task, want: int, wait: bool) -> tuple[list, bool]:
        """Take up to ``want`` results of ``task.upstream`` as the next inputs.

        Returns ``(outcomes, ended)``: values, or :class:`Failure` s. Each
        keeps its slot, which passes to the tasklet it becomes. With ``skip``
        and a task timeout on the upstream task, a result that does not come
        in time is skipped and a TimeoutError takes its place (holding no
        slot); the time counts from when its tasklet is drawn and awaited
        here, and a wait for one not drawn yet returns nothing at once.
        """
        up = task.upstream
        assert up is not None
        res = up.results
        with self.lock:
            deadline = None
            while True:
                got = []
                while len(got) < want and res.has_next():
                    got.append(self._pop(up))
                if got or self.forced:
                    return got, self.forced
                if up.finished():
                    return [], True
                if not wait or not up.in_flight:
                    # (nothing on its way -- the rest was dropped, imap.DROP:
                    # the upstream draws first)
                    return [], False
                remaining = None
                if self.skip and up.timeout is not None:
                    if not res.awaited(up.drawn):
                        # The next result's tasklet is not drawn yet: nothing
                        # is late, the Feeder draws it first (a turn of ``up``).
                        return [], False
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + up.timeout
                    remaining = deadline - now
                    if remaining <= 0:
                        later = waits.not_late_yet(self, up, up.timeout, now)
                        if later is not None:
                            deadline = later
                            continue
                        index = res.skip(up.drawn)
                        self._skipped(up, index)
                        err = TimeoutError(
                            f"task {up.id} ({up.name}): result {index} not ready within "
                            f"{up.timeout} s; skipped")
                        return [Failure(err, slot=False)], False
                self.feeder_waits_on = up
                self.result_ready.notify_all()
                began = time.perf_counter()
                waiting.wait(self.result_ready, remaining)
                task.stats.input_wait += time.perf_counter() - began
                self.feeder_waits_on = None

    def register(self, task: Task, n: int) -> int:
        """Record ``n`` tasklets drawn for ``task``; return the first index."""
        with self.lock:
            start = task.drawn
            task.drawn += n
            task.in_flight += n
            self.in_flight += n
            task.results.note_drawn(range(start, start + n))
            return start

    def file_failed(self, task: Task, outcome: Failure) -> None:
        """File an error drawn as input (it is not computed) as the next result."""
        with self.lock:
            index = task.drawn
            task.drawn += 1
            task.errors += 1
            task.results.note_drawn((index,))
            if not task.results.put(index, outcome) and outcome.slot:
                self._free(1)  # its index was skipped already
            self.result_ready.notify_all()

    def mark_exhausted(self, task: Task) -> None:
        with self.lock:
            task.exhausted = True
            if (self.impatient and not self.tail and self.backend is not None
                    and all(t.exhausted for t in self.tasks if t.upstream is None)):
                self.tail = True
                self.backend.configure(depth_order=-1)
            self.result_ready.notify_all()

    def thread_died(self, name: str, exc: BaseException) -> None:
        """A thread of the engine or of its backend (``name``) ended with an
        exception it should have caught: every consumer waiting gets a clear
        RuntimeError naming it, rather than waiting for ever."""
        failure = RuntimeError(f"the IMap's thread {name} failed: {exc!r}")
        failure.__cause__ = exc
        with self.lock:
            if self.failure is None and not self.forced:
                self.failure = failure
            self.result_ready.notify_all()
            self.slot_free.notify_all()

    def finish_feeding(self, failure: BaseException | None = None) -> None:
        with self.lock:
            self.feeder_done = True
            if failure is not None and not self.forced:
                self.failure = failure
            self.result_ready.notify_all()

    # -- the backends' side ----------------------------------------------------

    def deliver(self, batch: Any, values: list, errors: dict | None,
                busy: float | None = None, peak: float | None = None) -> None:
        """File the results of a batch (``busy``: the worker's seconds on it,
        ``peak``: on its longest tasklet)."""
        batch.answer()
        task = batch.task
        if errors and task.retry_on:   # run again what raised a retry_on exception
            batch, values, errors = retry.hold(self, batch, values, errors)
            if batch is None:
                return
        with self.lock:
            if task.generation != self.generation or self.forced:
                return
            n = len(batch.indices)
            now = time.perf_counter()
            sent = batch.sent
            self.policy.observe(task, n, busy, None if sent is None else now - sent,
                                batch.nbytes, peak)
            res = task.results
            if errors:
                values = list(values)
                for pos, exc in errors.items():
                    values[pos] = Failure(exc)
                task.errors += len(errors)
            freed = res.put_many(batch.indices, values)
            task.stats.delivered(n, busy, peak, res.arrived, now)
            self.run.delivered += n
            if self.feeder_waits_any is not None:
                self.slot_free.notify()
            task.in_flight -= n
            self.in_flight -= n
            if freed:
                self._free(freed)
            self.result_ready.notify_all()

    def lost(self, batch: Any, reason: str) -> None:
        """A worker died holding ``batch``: the flow says what runs again
        (:func:`imap.flow.recover.after_loss`); the rest fails with a
        :class:`~imap.WorkerLostError`."""
        batch.lose()
        if batch.task.generation != self.generation or self.forced:
            return
        again, failed = recover.after_loss(batch, self.backend)
        for part in again:
            self.backend.submit(part)
        if failed is not None:
            self.deliver(failed, [None] * len(failed.indices), recover.lost_errors(failed, reason))

    def force(self) -> None:
        """End everything now: waiting threads wake up and return."""
        self.forced = True  # read by the Feeder between draws, lock or not
        self.retrier.cancel()
        # A KeyboardInterrupt can leave the lock held by a thread that will
        # never release it; a forced stop must not hang on it.
        if self.lock.acquire(timeout=1.0):
            try:
                self.slot_free.notify_all()
                self.result_ready.notify_all()
            finally:
                self.lock.release()

    # -- status ------------------------------------------------------------------

    def status(self) -> IMapStatus:
        """A snapshot of the counters (:func:`.status.snapshot`)."""
        return snapshot(self)
