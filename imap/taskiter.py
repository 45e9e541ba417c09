"""The output of a task: :class:`TaskIterator`."""

from __future__ import annotations

from typing import Any

from .engine import Engine
from .task import Task

__all__ = ["TaskIterator", "DEFAULT"]


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

    @property
    def keeps_timeouts(self) -> bool:
        """True if a timed-out result is returned by a later call (skip=False)."""
        return not self._engine.skip

    def __iter__(self) -> TaskIterator:
        return self

    def __next__(self) -> Any:
        handout = self._handout
        if handout:
            try:
                return handout.popleft()
            except IndexError:  # another thread took the last one
                pass
        return self._engine.next_result(self._record, self.generation, self.timeout,
                                        self.block, grouped=True)

    def next(self, timeout: float | None = DEFAULT, block: bool = DEFAULT) -> Any:
        """Return the next result, waiting at most ``timeout`` seconds.

        Left out, ``timeout`` and ``block`` are this iterator's defaults (the
        ones given to ``add_task`` or ``get_task``); ``timeout=None`` waits
        as long as it takes.

        Raises:
            imap.TimeoutError: no result in time (``block=False``: at once).
            StopIteration: the task has no more results.
            RuntimeError: before ``start()``, or when another task of the
                same IMap consumes this one.
        """
        if timeout is DEFAULT:
            timeout = self.timeout
        if block is DEFAULT:
            block = self.block
        return self._engine.next_result(self._record, self.generation, timeout, block)

    def __repr__(self) -> str:
        return f"<TaskIterator task={self.task} of {self.imap!r}>"
