"""The Feeder thread: draws tasklets in weave order and submits batches.

It walks the tasks round-robin, ``stride`` tasklets of a task at a time (a
task whose input is exhausted drops out). For a task reading a plain
iterable (or another IMap's task) it first takes a buffer slot, then draws
an item; for a task chained to an earlier task of the same IMap it takes that
task's next result, whose slot passes to the new tasklet. Drawn items of one
task collect into a batch of at most ``chunksize`` contiguous tasklets, sent
when full, at the end of the stride, and always before the Feeder waits for
anything, so nothing sits unsent while the Feeder blocks. The Feeder may
also block *inside* an input iterator's ``next()`` (a generator waiting for
something); for inputs that are not plain containers, a watchdog thread
sends the items drawn so far when such a call takes longer than
``FLUSH_AFTER``, because the input may be waiting for exactly those results.
An error drawn
from the input (an exception raised by the input iterator, or an error
result of the upstream task) becomes that position's result without calling
the function.
"""

from __future__ import annotations

import logging
import threading
import time
from itertools import islice
from typing import Any

from ..backends.base import Batch
from ..errors import TimeoutError
from ..flow import draw
from ..flow.draw import FLUSH_AFTER, PLAIN_SOURCES
from .engine import Engine
from .results import Failure
from .task import Task
from .taskiter import TaskIterator

log = logging.getLogger("imap")



class Feeder(threading.Thread):
    """Draws tasklets of ``engine.tasks`` and submits them to the backend."""

    draws_inputs = True   # how a task iterator it reads knows it (imap.run.taskiter)

    def __init__(self, engine: Engine) -> None:
        super().__init__(name="imap-feeder", daemon=True)
        self.engine = engine
        self.stride = 1   # this turn's, chosen by the flow policy
        # Drawn items are only touched under this lock: the watchdog may send
        # them while the Feeder waits inside a generic input's next().
        self._items_lock = threading.RLock()
        self._armed: Any = None   # (task, items) while drawing from such an input
        self._draws = 0           # draws from such inputs so far
        self._sent = 0            # items of the current draw the watchdog sent
        self._done = threading.Event()

    def _watch(self) -> None:
        """The watchdog: send drawn items held back by a blocked input.

        While the Feeder draws from a generic input, the items come straight
        into its list. Every ``FLUSH_AFTER`` seconds the watchdog looks; if
        the Feeder is still in the same draw and no item came since the last
        look, the input is blocked, and the items drawn so far (those not
        sent yet) are sent. The watchdog only reads the list (a slice); the
        Feeder removes what was sent when its draw returns.
        """
        seen = None
        while not self._done.wait(FLUSH_AFTER):
            with self._items_lock:
                armed = self._armed
                if armed is None:
                    seen = None
                    continue
                task, items = armed
                state = (self._draws, len(items))
                if state != seen:
                    seen = state
                    continue
                end = len(items)
                if end > self._sent:
                    chunk = items[self._sent:end]
                    self._sent = end
                    self._submit(task, chunk)

    def run(self) -> None:
        engine = self.engine
        failure = None
        watchdog = None
        if any(t.source is not None and type(t.source) not in PLAIN_SOURCES
               for t in engine.tasks):
            watchdog = threading.Thread(target=self._watch, name="imap-feeder-watch",
                                        daemon=True)
            watchdog.start()
        try:
            self._weave(list(engine.tasks))
        except BaseException as exc:  # report, never die silently
            log.exception("the IMap feeder failed")
            failure = exc
        finally:
            self._done.set()
            if watchdog is not None:
                watchdog.join()
            engine.finish_feeding(failure)

    def _weave(self, active: list) -> None:
        """Give the tasks their turns, in task order, until every input ends.

        A turn that could draw nothing (an impatient one, see :meth:`_stride`)
        passes to the next task. When every task in turn drew nothing, the
        Feeder waits for work, and the first of them to have drawn nothing
        has the next turn: the weave order is kept.
        """
        engine = self.engine
        pos = 0
        idle_from = None   # the first task to draw nothing since the last draw
        while active and not engine.forced:
            if pos == 0:
                self.stride = engine.new_turn()
            task = active[pos]
            ended, drawn = self._stride(task)
            if ended:
                active.pop(pos)
                idle_from = None
            elif drawn:
                idle_from = None
                pos += 1
            elif idle_from is not task:
                if idle_from is None:
                    idle_from = task
                pos += 1
            else:  # round the weave once without a draw
                engine.wait_for_work(active)
                idle_from = None
                continue  # the same task has the next turn
            if pos >= len(active):
                pos = 0

    def _flush(self, task: Task, items: list) -> None:
        with self._items_lock:
            if items:
                chunk = list(items)
                items.clear()
                self._submit(task, chunk)

    def _submit(self, task: Task, chunk: list) -> None:
        """Register ``chunk`` as the task's next tasklets and send them."""
        engine = self.engine
        start = engine.register(task, len(chunk))
        batch = Batch(task, range(start, start + len(chunk)), chunk)
        batch.sent = time.perf_counter()
        engine.backend.submit(batch)
        if task.flow.size is None and batch.data is not None:  # the first pickled
            self.stride = engine.sent(task, len(batch), len(batch.data))

    def _fail_item(self, task: Task, items: list, outcome: Failure) -> None:
        with self._items_lock:
            self._flush(task, items)
            self.engine.file_failed(task, outcome)

    def _stride(self, task: Task) -> tuple[bool, int]:
        """Draw one stride of ``task``. Returns ``(ended, drawn)``: whether
        its input is exhausted, and how many tasklets were drawn.

        With a fixed stride a turn waits until its whole stride is drawn.
        With an adaptive one it is *impatient*: it draws what is ready (free
        slots, upstream results) up to the stride and ends early rather than
        wait, so a chained task never holds up the tasks after it while
        workers idle; the Feeder waits only when no task can draw at all.
        """
        engine = self.engine
        if task.upstream is None and engine.draw_stop:
            engine.mark_exhausted(task)
            return True, 0
        patient = draw.patient(engine, task)
        if not patient and (draw.ahead(engine, task) or draw.flooded(engine, task)):
            return False, 0  # its consumer catches up first, or its batches in flight
        done = 0   # tasklets of this stride drawn so far
        items: list = []
        chunk = engine.policy.batch_for(task, draw.left(task), draw.work_left(engine.tasks))
        task.flow.draw = chunk
        # self.stride may shrink during the stride (a first size measured).
        while done < self.stride:
            want = min(self.stride - done, chunk - len(items))
            if task.upstream is not None:
                outcomes, ended = engine.pull_upstream(task, want, wait=False)
                if not outcomes and not ended:
                    self._flush(task, items)
                    if not patient:
                        return False, done
                    outcomes, ended = engine.pull_upstream(task, want, wait=True)
                    if not outcomes and not ended:   # the upstream draws first
                        return False, done
                for outcome in outcomes:
                    if type(outcome) is Failure:
                        self._fail_item(task, items, outcome)
                    else:
                        items.append(outcome)
                done += len(outcomes)
            else:
                room = None if patient else draw.warm_room(engine, task)
                if room is not None:
                    want = min(want, room - len(items))
                    if want <= 0:
                        self._flush(task, items)
                        return False, done
                if not patient and not items and draw.short_of_room(engine, task):
                    return False, done   # the batches in flight free a whole batch first
                got = engine.take_slots(want, wait=False)
                if not got:
                    self._flush(task, items)
                    if not patient:
                        return False, done
                    got = engine.take_slots(want, wait=True)
                    if not got:  # forced stop
                        return True, done
                drawn, ended = self._draw(task, items, got)
                engine.give_back(got - drawn)
                done += drawn
            if ended:
                self._flush(task, items)
                engine.mark_exhausted(task)
                return True, done
            if len(items) >= chunk:
                self._flush(task, items)
                if not patient and draw.flooded(engine, task):
                    return False, done
        self._flush(task, items)
        return False, done

    def _draw(self, task: Task, items: list, n: int) -> tuple[int, bool]:
        """Draw up to ``n`` items from the task's iterator into ``items``.

        Returns ``(drawn, ended)``; each drawn item holds one taken slot.
        """
        source: Any = task.source
        if type(source) not in PLAIN_SOURCES:
            return self._draw_watched(task, items, n)
        drawn = 0
        while drawn < n:
            before = len(items)
            want = n - drawn
            try:
                items.extend(islice(source, want))
            except TimeoutError as exc:
                drawn += len(items) - before
                # Another IMap's task that keeps its timed-out results
                # (skip=False): the same result comes on a later call.
                if getattr(source, "keeps_timeouts", False) and not self.engine.forced:
                    continue
                self._fail_item(task, items, Failure(exc))
                drawn += 1
            except Exception as exc:
                drawn += len(items) - before
                self._fail_item(task, items, Failure(exc))
                drawn += 1
            else:
                got = len(items) - before
                drawn += got
                if got < want:
                    return drawn, True
        return drawn, False

    def _draw_watched(self, task: Task, items: list, n: int) -> tuple[int, bool]:
        """Like :meth:`_draw`, for an input whose ``next()`` may block: the
        watchdog sends the items drawn so far if it does (see :meth:`_watch`)."""
        source: Any = task.source
        drawn = 0
        lock = self._items_lock
        while drawn < n:
            want = n - drawn
            before = len(items)
            with lock:
                self._draws += 1
                self._sent = 0
                self._armed = (task, items)
            error = None
            began = time.perf_counter()
            try:
                items.extend(islice(source, want))  # items appear one by one
            except Exception as exc:
                error = exc
            task.stats.input_wait += time.perf_counter() - began  # only the Feeder writes it
            with lock:
                self._armed = None
                got = len(items) - before
                if self._sent:  # the watchdog sent these meanwhile
                    del items[:self._sent]
                    self._sent = 0
            drawn += got
            if error is None:
                if got < want:
                    return drawn, True
            elif (isinstance(error, TimeoutError) and getattr(source, "keeps_timeouts", False)
                  and not self.engine.forced):
                # Another IMap's task that keeps its timed-out results: the
                # same result comes on a later call.
                continue
            else:
                self._fail_item(task, items, Failure(error))
                drawn += 1
                if not isinstance(source, TaskIterator):
                    # An input that raised is over, as for a for loop (a
                    # generator that raised is finished; a file closed under
                    # it would raise for ever). Another IMap's task goes on
                    # after an error: its later results are still to come.
                    return drawn, True
        return drawn, False
