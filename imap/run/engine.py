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
  ``drain``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .. import retry
from ..errors import StallError, TimeoutError, WorkerLostError
from ..flow import draw
from ..flow.policy import LOOK_AGAIN
from . import waiting
from .results import Failure
from .stats import RunStats
from .status import IMapStatus, snapshot
from .task import Task


class Engine:
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
                        later = self._not_late_yet(up, up.timeout, now)
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
        """A worker died holding ``batch``: resubmit it or fail its tasklets.

        Its worker may have died of one of its tasklets. The tasklets it
        finished were delivered already when it sent partial answers; the
        rest runs again *careful* (each tasklet reported as it ends), so that
        a second death points at the tasklet that caused it, which alone is
        retried or fails. Backends that cannot run a batch careful get the
        halves run again instead, down to single tasklets.
        """
        batch.lose()
        task = batch.task
        if task.generation != self.generation or self.forced:
            return
        submit = self.backend.submit
        if batch.stepwise:
            # Its worker reported every tasklet it ended: the first one left
            # is the one it died running.
            if len(batch) > 1:
                submit(batch.subset(range(1, len(batch)), careful=True))
                batch = batch.subset([0], careful=True)
        elif len(batch) > 1 and self.backend.capacity > 0:
            if self.backend.stepwise and not batch.careful:
                submit(batch.subset(range(len(batch)), careful=True))
            else:
                half = len(batch) // 2
                for part in (range(half), range(half, len(batch))):
                    submit(batch.subset(part))
            return
        if batch.attempt < task.retries:
            batch.attempt += 1
            submit(batch)
            return
        attempts = batch.attempt + 1
        tries = (f" (after {attempts} attempts, each on a worker that died; "
                 f"retries={task.retries})" if task.retries else " (retries=0)")
        errors = {
            pos: WorkerLostError(
                f"{reason} while running task {task.id} ({task.name}) on item {index}{tries}")
            for pos, index in enumerate(batch.indices)
        }
        for exc in errors.values():
            exc.attempts = attempts
        self.deliver(batch, [None] * len(batch.indices), errors)

    # -- the consumers' side ---------------------------------------------------

    def _free(self, n: int) -> None:
        """Give ``n`` slots back (lock held)."""
        self.slots_used -= n
        if self.feeder_waits_slot:
            self.slot_free.notify()

    def _pop(self, task: Task) -> Any:
        index, outcome = task.results.pop()
        if task.track and type(outcome) is not Failure:
            self.tracked.setdefault(task.id, {})[index] = outcome
        return outcome

    def _settle_handout(self, task: Task) -> None:
        """Give back the slots of results handed out since the last visit."""
        handed = task.handout_taken - len(task.handout) - task.handout_freed
        if handed > 0:
            task.handout_freed += handed
            self._free(handed)

    def next_result(self, task: Task, generation: int, timeout: float | None,
                    block: bool, grouped: bool = False) -> Any:
        """:meth:`take` for a consumer outside the engine (a task iterator,
        ``IMap.next``): checks the IMap runs this task and that no other
        task of the IMap consumes it."""
        if generation != self.generation:
            raise StopIteration
        if not self.started:
            if self.stopped:
                raise StopIteration
            raise RuntimeError("next() before start(): call start() first")
        if task.consumer is not None:
            raise RuntimeError(
                f"task {task.id} ({task.name}) is the input of task {task.consumer.id} "
                f"({task.consumer.name}) of the same IMap, which takes its results; read "
                f"task {task.consumer.id} instead (or add a separate task to see both)")
        return self.take(task, timeout, block, task.flow.batch if grouped else 1)

    def take(self, task: Task, timeout: float | None, block: bool,
             group: int = 1) -> Any:
        """Return the next result of ``task`` (or raise its error).

        With ``group > 1`` up to ``group - 1`` further ready results are moved
        to ``task.handout`` for the caller to hand out without the lock.
        """
        with self.lock:
            for other in self.tasks:
                if other.handout_taken != other.handout_freed:
                    self._settle_handout(other)
            res = task.results
            deadline = None
            if block and timeout is not None:
                deadline = time.monotonic() + timeout
            stalled_since = None
            while True:
                if task.handout:
                    return task.handout.popleft()
                if res.has_next():
                    if group > 1 and not task.track:
                        values = res.grab(group)
                        if values:
                            # Every slot of the group, this first value's too,
                            # is given back at the next visit: slots return a
                            # group at a time, so the Feeder draws whole batches.
                            task.handout.extend(values)
                            task.handout_taken += len(values)
                            return task.handout.popleft()
                    outcome = self._pop(task)
                    if type(outcome) is Failure:
                        if outcome.slot:
                            self._free(1)
                        raise outcome.exc
                    self._free(1)
                    return outcome
                if task.finished() or self.forced or task.generation != self.generation:
                    if task.generation == self.generation:
                        self.run.finished = time.perf_counter()
                    raise StopIteration
                if self.failure is not None:
                    raise RuntimeError(
                        f"the IMap cannot go on after an internal error ({self.failure!r}); "
                        f"stop() it") from self.failure
                now = time.monotonic()
                if block and self.skip and deadline is not None and now >= deadline:
                    later = self._not_late_yet(task, timeout, now)
                    if later is not None:
                        deadline = later
                        continue
                if not block or (deadline is not None and now >= deadline):
                    within = f"task {task.id} ({task.name}): no result within " \
                             f"{0 if not block else timeout} s"
                    if not self.skip:
                        raise TimeoutError(f"{within} (ask again to wait more)")
                    if res.awaited_index(task.drawn) >= task.drawn:
                        # Its item is not drawn yet: there is nothing to give up
                        # (a skip now would abandon a result before it exists).
                        raise TimeoutError(f"{within} (its item is not drawn yet; "
                                           f"ask again)")
                    index = res.skip(task.drawn)
                    self._skipped(task, index)
                    raise TimeoutError(f"{within} (skipped); result {index} abandoned")
                wait = None if deadline is None else deadline - now
                if self._stalled() and self.policy.can_relieve(self.tasks):
                    # Other outputs' results, not read yet, hold every slot:
                    # they wait here, within the byte budget, rather than stall.
                    self.buffer = self.policy.relieve(self.tasks, self.slots_used)
                    self.slot_free.notify_all()
                    stalled_since = None
                elif self._stalled():
                    if stalled_since is None:
                        stalled_since = now
                    if self.stall_grace is not None:
                        left = stalled_since + self.stall_grace - now
                        if left <= 0:
                            raise StallError(self._stall_message(task))
                        wait = left if wait is None else min(wait, left)
                else:
                    stalled_since = None
                began = time.perf_counter()
                self.consumers_waiting += 1
                if self.feeder_waits_slot and draw.starved(self):
                    self.buffer = self.policy.stretch(self.tasks, self.slots_used)
                    self.slot_free.notify()
                try:
                    waiting.wait(self.result_ready, wait)
                finally:
                    self.consumers_waiting -= 1
                task.stats.result_wait += time.perf_counter() - began

    def _not_late_yet(self, task: Task, timeout: float, now: float) -> float | None:
        """Under ``skip=True``, whether the result a consumer has waited
        ``timeout`` seconds for is late of itself (lock held): None if it is
        (its tasklet ran for ``timeout`` seconds, or the backend cannot
        tell), else when to look again. A tasklet still waiting behind others
        is not late: it is never skipped for the time a hung one took, and
        tasklets that outlived their task's timeout are given up meanwhile
        (:meth:`_give_up_overdue`), so that it gets a worker."""
        index = task.results.awaited_index(task.drawn)
        if index >= task.drawn or self.backend is None:
            return None   # (not drawn yet: the timeout is raised, nothing skipped)
        began = self.backend.began(task, index)
        if began is None:
            self._give_up_overdue(now)
            return now + max(0.01, min(timeout, LOOK_AGAIN))   # a wait, even for timeout=0
        if now - began < timeout:
            return began + timeout
        return None

    def _give_up_overdue(self, now: float) -> None:
        """Abandon every tasklet running longer than its task's timeout
        (``skip=True``; lock held): its worker is replaced, its result is a
        TimeoutError, and the tasklets behind it run elsewhere."""
        for task, index, began in self.backend.running_tasklets():
            if (task.generation == self.generation and task.timeout is not None
                    and now - began > task.timeout):
                self.backend.abandon(task, index)   # its result: a TimeoutError, filed

    def _skipped(self, task: Task, index: int) -> None:
        """A consumer skipped tasklet ``index`` (``res.skip``), drawn and on its
        way (lock held): its slot goes back now (its late result, if it ever
        comes, is dropped and frees nothing), so that however long it runs --
        a task that cannot be stopped, on an executor -- the Feeder can draw
        on; and the backend gives it up."""
        task.results.released.add(index)
        self._free(1)
        if self.backend is not None:
            self.backend.abandon(task, index)

    def _stalled(self) -> bool:
        """Nothing can change until somebody takes a result (lock held)."""
        if self.in_flight or self.forced:
            return False
        if self.feeder_waits_any is not None:
            return not draw.work_ready(self, self.feeder_waits_any)
        if self.feeder_waits_slot:
            return self.slots_used >= self.buffer
        up = self.feeder_waits_on
        if up is None:
            return False
        return not up.results.has_next() and not up.finished()

    def _stall_message(self, task: Task) -> str:
        holders = [t for t in self.tasks if len(t.results) and t is not task]
        names = ", ".join(f"task {t.id} ({t.name}: {len(t.results)} waiting)" for t in holders)
        return (
            f"task {task.id} ({task.name}) can never produce its next result: all "
            f"{self.buffer} buffer slots hold results nobody has taken and nothing is "
            f"being computed. Take results from {names or 'the other tasks'} first "
            f"(at most a stride at a time from each output, in task order), or give "
            f"the IMap a larger buffer."
        )

    def drain(self, tasks: list[Task], patience: float | None = None) -> str | None:
        """Take and discard every result of ``tasks`` until they finish.

        Returns None once they have, or why a graceful stop cannot wait for
        them (then the caller forces the stop): the IMap stalled on results
        of other tasks, or no tasklet ended for ``patience`` seconds (default:
        the longest task timeout, if a task has one; ``skip`` true or false):
        the tasklets still running outlive their timeout, and are given up
        rather than waited for.
        """
        if patience is None:
            timeouts = [t.timeout for t in self.tasks if t.timeout is not None]
            patience = max(timeouts) if timeouts else None
        with self.lock:
            seen = self.run.delivered
            since = time.monotonic()
            while True:
                for task in tasks:
                    task.handout.clear()
                    self._settle_handout(task)
                    while task.results.has_next():
                        outcome = self._pop(task)
                        if type(outcome) is not Failure or outcome.slot:
                            self._free(1)
                if self.feeder_done and all(t.finished() for t in tasks):
                    return None
                if self.forced:
                    return None
                if self.failure is not None:
                    return f"the IMap failed: {self.failure!r}"
                if self._stalled():
                    return ("results of tasks not in ends are waiting (take them, or name "
                            "those tasks in ends)")
                now = time.monotonic()
                if self.run.delivered != seen:
                    seen, since = self.run.delivered, now
                elif patience is not None and now - since >= patience:
                    return (f"no tasklet ended within {patience:g} s: the tasklets still "
                            f"running are given up: {self._in_flight_text()}")
                waiting.wait(self.result_ready, 1.0 if patience is None
                             else min(1.0, max(0.01, since + patience - now)))

    def _in_flight_text(self) -> str:
        """The tasklets in flight, by task, for a message (lock held)."""
        running: dict = {}
        if self.backend is not None:
            for task, index, _ in self.backend.running_tasklets():
                running.setdefault(task.id, []).append(index)
        parts = []
        for task in self.tasks:
            if task.in_flight:
                items = sorted(running.get(task.id, ()))
                where = f", running item(s) {', '.join(map(str, items))}" if items else ""
                parts.append(f"task {task.id} ({task.name}): {task.in_flight} in flight{where}")
        return "; ".join(parts) or "none in flight"

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
