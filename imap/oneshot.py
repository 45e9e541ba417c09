"""The one-task convenience: :func:`imap` and the iterator it returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .core import IMap
from .run.taskiter import TaskIterator

__all__ = ["IMapResults", "imap"]


class IMapResults:
    """The iterator :func:`imap` returns: the results of its one task.

    Like a :class:`TaskIterator`, it raises a function's exception at that
    item's place and then goes on with the next result (a generator would
    end at the first error). The pool starts at the first ``next()`` and
    stops when the results are exhausted, at :meth:`close`, at the end of a
    ``with`` block, or when the iterator is dropped.
    """

    def __init__(self, pool: IMap, results: TaskIterator) -> None:
        self.imap = pool
        self._results = results

    def __iter__(self) -> IMapResults:
        return self

    def __next__(self) -> Any:
        pool = self.imap
        if not pool.running:
            if pool.stopped:
                raise StopIteration
            pool.start()
        try:
            return next(self._results)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """Stop the pool at once; the remaining results are dropped."""
        self.imap.stop(forced=True)

    def __enter__(self) -> IMapResults:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<IMapResults of {self.imap!r}>"


def imap(func: Callable[..., Any], iterable: Iterable[Any], args: Sequence[Any] = (),
         kwargs: dict | None = None, progress: Any = False, **options: Any) -> IMapResults:
    """Lazily yield ``func(item, *args, **kwargs)`` for each item, in parallel.

    A one-task IMap; ``options`` are :class:`IMap` options (``worker_type``,
    ``worker_num``, ``stride``, ``buffer``, ``ordered``, ...). An item whose
    function raised raises that exception in its place, and iteration goes
    on with the next result::

        results = imap(f, items)
        for _ in items:
            try:
                value = next(results)
            except Exception as exc:
                ...

    The pool starts at the first ``next()`` and stops when the results are
    exhausted, closed (``close()`` or a ``with`` block) or collected.

    ``progress=True`` shows a progress bar while the results come (see
    :class:`IMap` for the other values it takes)::

        for y in imap(f, range(1000), progress=True):
            ...
    """
    pool = IMap(progress=progress, **options)
    return IMapResults(pool, pool.add_task(func, iterable, args, kwargs))
