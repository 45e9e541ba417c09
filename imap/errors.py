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
    "UnmetDependency",
    "ImpossibleDependency",
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


class UnmetDependency(Exception):
    """This worker cannot run this tasklet: raised by a function (or by the
    check of its :func:`imap.require` / :func:`imap.depend` dependency), it
    passes the tasklet to another worker of the pool instead of failing it.

    A function may raise it by hand (``raise imap.UnmetDependency("no GPU
    here")``): that tasklet alone moves on. When the check of a decorated
    function fails, the worker refuses the whole task (``whole`` is True)
    and gets none of its tasklets again. If no worker of the pool can run
    a tasklet, it fails with :class:`ImpossibleDependency`.

    Attributes:
        whole: the worker refused the whole task (its dependency is unmet
            there), not one tasklet.
        worker: the worker that refused, where the worker itself said (a
            Dask worker's address), else None.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.whole = False
        self.worker: str | None = None


class ImpossibleDependency(UnmetDependency):
    """No worker of the pool can run this tasklet: every live worker refused
    it (its function's dependency is unmet on each, or each raised
    :class:`UnmetDependency`). Raised for each such tasklet at its position;
    the message names the dependency and the workers that refused it, with
    their reasons. The other tasks of the IMap go on.

    Attributes:
        refusals: worker name -> why it refused.
        whole: the workers refused the function's dependency (not this
            tasklet alone).
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.refusals: dict = {}


def impossible(task_text: str, dependency: str | None, refusals: dict) -> ImpossibleDependency:
    """The :class:`ImpossibleDependency` of a tasklet of ``task_text`` that
    the workers in ``refusals`` (worker name -> reason) refused."""
    what = f"its dependency {dependency}" if dependency else "it"
    reasons = "; ".join(f"{name}: {reason}" for name, reason in refusals.items())
    exc = ImpossibleDependency(
        f"no worker of the pool can run {task_text}: every worker refused {what} "
        f"({reasons}); add a worker that meets it, or drop the dependency")
    exc.refusals = dict(refusals)
    exc.whole = dependency is not None
    return exc
