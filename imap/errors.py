"""Exceptions raised by the IMap engine."""

from __future__ import annotations

import builtins
import multiprocessing

__all__ = [
    "TimeoutError",
    "WorkerLostError",
    "StallError",
    "WorkerTraceback",
    "UnsendableError",
    "WorkerInitError",
]


class TimeoutError(multiprocessing.TimeoutError, builtins.TimeoutError):  # noqa: A001
    """A result was not available within the requested timeout.

    Subclasses both :class:`multiprocessing.TimeoutError` and the builtin
    :class:`TimeoutError`, so code written for either keeps working.
    """


class WorkerLostError(Exception):
    """The worker evaluating a tasklet died (killed, crashed or exited) before
    it returned a result, and the task allowed no (further) retries."""


class StallError(RuntimeError):
    """A wait that can never end: every buffer slot holds a result that nobody
    has taken, nothing is being computed, and the result asked for needs a
    free slot. The message names the tasks whose results must be taken."""


class WorkerTraceback(Exception):
    """The ``__cause__`` of an exception raised by a function in a worker.

    ``str()`` of it is the traceback text as formatted where the function ran
    (a worker thread, a worker process or a remote host).
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n\n" + self.text


class UnsendableError(Exception):
    """Stands in for an object that could not be pickled or unpickled on its
    way between processes: an item, a function, a result or an exception.
    The message says which and why."""


class WorkerInitError(RuntimeError):
    """The IMap's ``initializer`` failed in a worker, so every tasklet that
    worker runs fails with this error (the same on every kind of worker).

    The message names the initializer; ``__cause__`` is the initializer's
    own exception, whose ``__cause__`` in turn is the worker-side traceback
    (:class:`WorkerTraceback`).
    """


def init_failed(name: str, cause: BaseException) -> WorkerInitError:
    """The :class:`WorkerInitError` of initializer ``name`` that raised ``cause``."""
    err = WorkerInitError(
        f"the worker initializer {name} failed: {cause!r}; each tasklet of that worker "
        f"fails with this error (fix the initializer, or catch the error in it)")
    err.__cause__ = cause
    return err
