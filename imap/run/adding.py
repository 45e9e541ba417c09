"""Adding a task to an IMap: checking ``add_task``'s arguments, making the
engine's :class:`~imap.run.task.Task` and linking it to the task it reads
from (a chained task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..options import check_int, check_seconds
from .task import Task
from .taskiter import TaskIterator


def _check_key(key: Any, path: str | None, iterable: Any, imap: Any) -> None:
    if path is None:
        raise ValueError("add_task(key=...) keys the inputs of a journal; give the IMap "
                         "a journal (IMap(journal=path)) or leave key out")
    if not callable(key):
        raise TypeError(f"key must be a function of the input item, got {key!r}")
    if isinstance(iterable, TaskIterator) and iterable.imap is imap:
        raise ValueError("key= belongs to the first task of a chain (the one that reads "
                         "the input); a chained task's inputs are keyed by it")


def add(imap: Any, engine: Any, func: Callable[..., Any], iterable: Iterable[Any],
        args: Sequence[Any], kwargs: dict | None, *, timeout: float | None, block: bool,
        track: bool, retries: int, name: str | None, key: Callable[[Any], Any] | None,
        retry_on: tuple, journal: str | None, executor: bool) -> Task:
    """Check the arguments of ``imap.add_task`` (``retry_on`` is checked
    already, by :func:`imap.retry.checked`) and add the task to ``engine``
    (``journal``: the IMap's journal path or None; ``executor``: it runs on
    an executor). Returns the engine's record of the task."""
    if engine.started:
        raise RuntimeError(
            "add_task() after start(): add every task first, or stop() the IMap "
            "and add tasks for a new run")
    if not callable(func):
        raise TypeError(f"func must be callable, got {func!r}")
    if not (hasattr(iterable, "__iter__") or hasattr(iterable, "__getitem__")):
        raise TypeError(f"iterable must be iterable, got {type(iterable).__name__}")
    if isinstance(args, (str, bytes)) or not isinstance(args, (tuple, list)):
        raise TypeError(f"args must be a tuple or list, got {args!r}")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict, got {kwargs!r}")
    check_seconds("timeout", timeout)
    check_int("retries", retries, 0)
    if key is not None:
        _check_key(key, journal, iterable, imap)
    task = Task(
        id=len(engine.tasks), generation=engine.generation, func=func,
        args=tuple(args), kwargs=dict(kwargs or {}),
        name=name or getattr(func, "__name__", type(func).__name__),
        timeout=timeout, block=block, track=track, retries=retries,
        ordered=imap.ordered,
    )
    if executor:
        from ..backends.dask import dask_placement
        task.placement = dask_placement()
    if isinstance(iterable, TaskIterator) and iterable.imap is imap:
        # Keep no reference to our own iterator: the engine's threads must
        # not keep this IMap alive.
        if iterable.generation != engine.generation:
            raise ValueError("that task iterator belongs to an earlier run of this IMap")
        upstream = engine.tasks[iterable.task]
        if upstream.consumer is not None:
            raise ValueError(
                f"task {upstream.id} already feeds task {upstream.consumer.id} of this "
                f"IMap; a task's output can be the input of one task only")
        upstream.consumer = task
        task.upstream = upstream
    else:
        task.iterable = iterable
    task.journal_key = key
    task.retry_on = retry_on
    engine.tasks.append(task)
    return task
