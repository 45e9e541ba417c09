"""The consumers' side of the engine: taking results, timeouts and skips,
draining at a graceful stop.

:class:`ConsumerSide` is a part of :class:`~imap.run.engine.Engine` (its
base class), kept apart because it is what a consumer thread runs: ``next()``
on a task iterator and ``IMap.next`` call :meth:`~ConsumerSide.next_result`,
the Feeder's upstream pulls and a stop call :meth:`~ConsumerSide.take` and
:meth:`~ConsumerSide.drain`. Every method runs under the engine's lock;
when to skip, whether the run stalled and what to do about it is asked of
:mod:`imap.flow.waits`.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import TimeoutError
from ..flow import waits
from . import waiting
from .results import Failure
from .task import Task


class ConsumerSide:
    """Taking results out of the engine (see the module docstring)."""

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
                    later = waits.not_late_yet(self, task, timeout, now)
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
                stalled_since, wait = waits.before_wait(self, task, now, stalled_since, wait)
                began = time.perf_counter()
                self.consumers_waiting += 1
                waits.stretch_if_starved(self)
                try:
                    waiting.wait(self.result_ready, wait)
                finally:
                    self.consumers_waiting -= 1
                task.stats.result_wait += time.perf_counter() - began

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
                if waits.stalled(self):
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
