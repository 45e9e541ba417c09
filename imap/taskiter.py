"""The output of a task: :class:`TaskIterator`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .core import IMap

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

    def __init__(self, imap: IMap, task: int, generation: int,
                 timeout: float | None = None, block: bool = True) -> None:
        self.imap = imap
        self.task = task
        self.generation = generation
        self.timeout = timeout
        self.block = block
        # Results already taken for this task, handed out without the lock.
        self._handout = imap._engine.tasks[task].handout

    @property
    def keeps_timeouts(self) -> bool:
        """True if a timed-out result is returned by a later call (skip=False)."""
        return not self.imap.skip

    def __iter__(self) -> TaskIterator:
        return self

    def __next__(self) -> Any:
        handout = self._handout
        if handout:
            try:
                return handout.popleft()
            except IndexError:  # another thread took the last one
                pass
        return self.imap._take(self.task, self.generation, self.timeout, self.block, True)

    def next(self, timeout: float | None = DEFAULT, block: bool = DEFAULT) -> Any:
        """Return the next result, waiting at most ``timeout`` seconds.

        Left out, ``timeout`` and ``block`` are this iterator's defaults (the
        ones given to ``add_task`` or ``get_task``); ``timeout=None`` waits
        as long as it takes.

        Raises:
            imap.TimeoutError: no result in time (``block=False``: at once).
            StopIteration: the task has no more results.
        """
        if timeout is DEFAULT:
            timeout = self.timeout
        if block is DEFAULT:
            block = self.block
        return self.imap._take(self.task, self.generation, timeout, block)

    def __repr__(self) -> str:
        return f"<TaskIterator task={self.task} of {self.imap!r}>"
