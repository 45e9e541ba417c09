"""The Feeder thread: draws tasklets in weave order and submits batches.

It walks the tasks round-robin, ``stride`` tasklets of a task at a time (a
task whose input is exhausted drops out). For a task reading a plain
iterable (or another IMap's task) it first takes a buffer slot, then draws
an item; for a task chained to an earlier task of the same IMap it takes that
task's next result, whose slot passes to the new tasklet. Drawn items of one
task collect into a batch of at most ``chunksize`` contiguous tasklets, sent
when full, at the end of the stride, and always before the Feeder waits for
anything, so nothing sits unsent while the Feeder blocks. An error drawn
from the input (an exception raised by the input iterator, or an error
result of the upstream task) becomes that position's result without calling
the function.
"""

from __future__ import annotations

import logging
import threading
from itertools import islice
from typing import Any

from .backends.base import Batch
from .engine import Engine, Task
from .errors import TimeoutError
from .results import Failure

log = logging.getLogger("imap")


class Feeder(threading.Thread):
    """Draws tasklets of ``engine.tasks`` and submits them to the backend."""

    def __init__(self, engine: Engine, stride: int, chunksize: int) -> None:
        super().__init__(name="imap-feeder", daemon=True)
        self.engine = engine
        self.stride = stride
        self.chunksize = chunksize

    def run(self) -> None:
        engine = self.engine
        failure = None
        try:
            active = list(engine.tasks)
            while active and not engine.forced:
                for task in list(active):
                    if engine.forced:
                        break
                    if self._stride(task):
                        active.remove(task)
        except BaseException as exc:  # report, never die silently
            log.exception("the IMap feeder failed")
            failure = exc
        finally:
            engine.finish_feeding(failure)

    def _flush(self, task: Task, items: list) -> None:
        if items:
            start = self.engine.register(task, len(items))
            self.engine.backend.submit(Batch(task, range(start, start + len(items)), list(items)))
            items.clear()

    def _fail_item(self, task: Task, items: list, outcome: Failure) -> None:
        self._flush(task, items)
        self.engine.file_failed(task, outcome)

    def _stride(self, task: Task) -> bool:
        """Draw one stride of ``task``; True when its input is exhausted."""
        engine = self.engine
        if task.upstream is None and engine.draw_stop:
            engine.mark_exhausted(task)
            return True
        remaining = self.stride
        items: list = []
        chunk = self.chunksize
        while remaining > 0:
            want = min(remaining, chunk - len(items))
            if task.upstream is not None:
                outcomes, ended = engine.pull_upstream(task, want, wait=False)
                if not outcomes and not ended:
                    self._flush(task, items)
                    outcomes, ended = engine.pull_upstream(task, want, wait=True)
                for outcome in outcomes:
                    if type(outcome) is Failure:
                        self._fail_item(task, items, outcome)
                    else:
                        items.append(outcome)
                remaining -= len(outcomes)
            else:
                got = engine.take_slots(want, wait=False)
                if not got:
                    self._flush(task, items)
                    got = engine.take_slots(want, wait=True)
                    if not got:  # forced stop
                        return True
                drawn, ended = self._draw(task, items, got)
                engine.give_back(got - drawn)
                remaining -= drawn
            if ended:
                self._flush(task, items)
                engine.mark_exhausted(task)
                return True
            if len(items) >= chunk:
                self._flush(task, items)
        self._flush(task, items)
        return False

    def _draw(self, task: Task, items: list, n: int) -> tuple[int, bool]:
        """Draw up to ``n`` items from the task's iterator into ``items``.

        Returns ``(drawn, ended)``; each drawn item holds one taken slot.
        """
        source: Any = task.source
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
