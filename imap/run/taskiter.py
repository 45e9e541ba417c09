"""The output of a task: :class:`TaskIterator`."""

from __future__ import annotations

import threading
from typing import Any

from .engine import Engine
from .task import Task

__all__ = ["TaskIterator", "DEFAULT", "RunEndedError"]


class RunEndedError(RuntimeError):
    """A task iterator was read after the run of its IMap ended.

    ``stop()``, the end of a ``with IMap()`` block, or a restart ends a run;
    the results its tasks had not handed out are gone. Reading such an
    iterator used to end it silently, as if the task had had no results.
    Every read after the end raises this error, ``next(it)`` and
    ``list(it)`` (or a ``for`` loop) alike. The one exception is the Feeder
    of another IMap drawing the iterator as a task's input: it gets the
    error once (as that item's error) and then sees the end of the input.
    """


class _Default:
    """Marks an argument left out: the task's own default applies."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()


class TaskIterator:
    """The output of one task: an iterator over its results.

    ``next(it)`` uses the task's default ``timeout`` and ``block``;
    :meth:`next` takes them per call.

    Attributes:
        task: the task's id within its IMap.
        imap: the IMap the task belongs to.
    """

    def __init__(self, imap: Any, engine: Engine, record: Task,
                 timeout: float | None = None, block: bool = True) -> None:
        self.imap = imap
        self.task = record.id
        self.generation = record.generation
        self.timeout = timeout
        self.block = block
        self._engine = engine
        self._record = record
        # Results already taken for this task, handed out without the lock.
        self._handout = record.handout
        self._ended = False   # this iterator raised StopIteration: it stays ended

    @property
    def keeps_timeouts(self) -> bool:
        """True if a timed-out result is returned by a later call (skip=False)."""
        return not self._engine.skip

    def __iter__(self) -> TaskIterator:
        return self

    def __next__(self) -> Any:
        handout = self._handout
        if handout and self._record.output_log is None:
            try:
                return handout.popleft()
            except IndexError:  # another thread took the last one
                pass
        output_log = self._record.output_log
        if output_log is not None:   # a journaled output (imap.journal)
            plain = output_log.plain
            if plain:
                try:
                    return plain.popleft()   # its row is recorded by the writer
                except IndexError:
                    pass
            return output_log.next(self._taken, self.timeout, self.block)
        return self._result(self.timeout, self.block, True)

    def _taken(self, timeout: float | None, block: bool) -> Any:
        """The next result taken from the engine (the handout first)."""
        handout = self._handout
        if handout:
            return handout.popleft()   # its reader holds the OutputLog's lock
        return self._result(timeout, block, True)

    def _result(self, timeout: float | None, block: bool, grouped: bool = False) -> Any:
        """The next result from the engine; a clear error once the run is over."""
        if self._ended:
            raise StopIteration
        engine = self._engine
        if engine.generation != self.generation:
            raise self._run_ended()
        try:
            return engine.next_result(self._record, self.generation, timeout, block,
                                      grouped=grouped)
        except StopIteration:
            # the run may have ended (or be ending, forced) while this call waited
            ending = engine.forced or engine.generation != self.generation
            if ending and not self._record.finished():
                raise self._run_ended() from None
            self._ended = True
            self._last_taken()
            raise

    def _last_taken(self) -> None:
        """The task's last result was taken: its progress bar (if shown) is
        brought up to date, and the bars closed once every task finished,
        here, before the caller goes on."""
        state = getattr(self.imap, "_state", None)
        display = state.get("progress") if isinstance(state, dict) else None
        if display is not None:
            display.poke()

    def _run_ended(self) -> RunEndedError:
        # Said to every read, but only once to another IMap's Feeder drawing
        # it as an input: the Feeder goes on after an input error, so then
        # the iterator is ended (later reads raise StopIteration).
        if getattr(threading.current_thread(), "draws_inputs", False):   # a Feeder
            self._ended = True
        return RunEndedError(
            f"task {self.task} ({self._record.name}) was read after its run of "
            f"{self.imap!r} ended (stop(), the end of a 'with IMap()' block, or a new "
            f"start()): the results it had not handed out are gone. Read a task's results "
            f"before stop() (inside the with block); after a restart, read the iterator "
            f"that add_task() returned for the new run")

    def next(self, timeout: float | None = DEFAULT, block: bool = DEFAULT) -> Any:
        """Return the next result, waiting at most ``timeout`` seconds.

        Left out, ``timeout`` and ``block`` are this iterator's defaults (the
        ones given to ``add_task`` or ``get_task``); ``timeout=None`` waits
        as long as it takes.

        Raises:
            imap.TimeoutError: no result in time (``block=False``: at once).
            StopIteration: the task has no more results.
            RunEndedError: the run of the IMap ended before the task's
                results were all handed out (see :class:`RunEndedError`).
            RuntimeError: before ``start()``, or when another task of the
                same IMap consumes this one.
        """
        if timeout is DEFAULT:
            timeout = self.timeout
        if block is DEFAULT:
            block = self.block
        output_log = self._record.output_log
        if output_log is not None:   # a journaled output (imap.journal)
            return output_log.next(self._result, timeout, block)
        return self._result(timeout, block)

    def __repr__(self) -> str:
        return f"<TaskIterator task={self.task} of {self.imap!r}>"
