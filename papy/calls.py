"""What a piper's IMap task runs in a worker, and what it returns.

A piper on an IMap runs one IMap task per ``spawn``; the task's function is
a :class:`_Call` (the piper's :class:`~papy.worker.Worker` on an inbox, its
errors named by piper), or, for a piper whose task takes its upstream
piper's results inside the IMap, a :class:`_Chained` (which makes the inbox
in the worker). A dropped item travels as a :class:`_Dropped`, which keeps
its place (a merge downstream zips its inputs item by item); a failed one as
the :class:`~papy.errors.PiperError` of :func:`_failed`. The parent's side,
which turns these back into ``DROP`` and counts them, is :mod:`papy.piper`.
"""

from __future__ import annotations

from typing import Any

from imap.drop import DROP
from imap.errors import UnmetDependency

from .errors import PiperError, WorkerError
from .worker import PLAIN_TYPES, Worker


class _Dropped:
    """What an IMap task of a piper returns for a dropped item.

    Not :data:`imap.DROP`, which the IMap would file as no result: a piper
    keeps every item's place (a merge downstream zips its inputs item by
    item), and :meth:`Piper._results` turns it back into ``DROP``.
    ``origin`` names the piper whose function dropped the item; None for an
    item that came dropped in the inbox (the piper passed it on). A piper
    whose results feed the next piper's task inside the IMap (see
    :meth:`Piper.connect`, ``chained``) is not seen in the parent: the last
    piper of the chain counts each drop for the piper that made it and those
    after. The one without an origin pickles as itself (``_DROPPED``).
    """

    __slots__ = ("origin",)

    def __init__(self, origin: str | None = None) -> None:
        self.origin = origin

    def __reduce__(self) -> Any:
        return "_DROPPED" if self.origin is None else (_Dropped, (self.origin,))


_DROPPED = _Dropped()


def _tag(exc: BaseException, piper: str) -> BaseException:
    """Name on ``exc`` the piper whose function raised it (``papy_piper``).

    An exception the IMap files as a result (a ``retry_on`` exception whose
    retries are spent) may reach the parent through the tasks of later
    pipers of a chain (see :class:`_Chained`); the tag says where it arose.
    """
    try:
        exc.papy_piper = piper   # type: ignore[attr-defined]
    except Exception:   # an exception class that refuses attributes: not named
        pass
    return exc


class _Call:
    """The function an IMap task runs: the worker, errors named by piper."""

    def __init__(self, worker: Worker, piper: str, retry_on: tuple = ()) -> None:
        self.worker = worker
        self.piper = piper
        self.retry_on = retry_on

    @property
    def __imap_depends__(self) -> tuple:   # where its IMap may run it (imap.require)
        return self.worker.__imap_depends__

    @property
    def __imap_functions__(self) -> tuple:
        return self.worker.functions

    def __call__(self, inbox: Any) -> Any:
        return self.outcome(self.worker(inbox), inbox)

    def outcome(self, result: Any, inbox: Any) -> Any:
        """What the task returns for the worker's ``result`` on ``inbox``."""
        if isinstance(result, WorkerError):
            if self.retry_on and isinstance(result.exception, self.retry_on):
                # the IMap runs it again (add_task(retry_on=))
                raise _tag(result.exception, self.piper)
            return _failed(result, self.piper)
        if result is DROP:
            if type(inbox) is tuple and any(e is DROP for e in inbox):
                return _DROPPED   # it came dropped: passed on
            return _Dropped(self.piper)
        return result


class _Chained:
    """The function of a piper's task fed by the task of the piper upstream.

    The input of such a task is the upstream task itself (chained inside
    the IMap, see :meth:`Piper.connect`): each item is the upstream piper's
    result, which is made into the inbox ``(value,)`` here, in the worker,
    not in the parent. A dropped item is passed on as it is (its origin
    kept); an error value is passed on by the worker (see ``Worker``).
    """

    def __init__(self, call: _Call) -> None:
        self.call = call
        # One function and a plain item (the common case): called here,
        # without the worker's look for errors and drops in the inbox (a
        # plain item holds none) -- the same outcome, for ~1/3 of the time.
        self.single = call.worker.single

    @property
    def __imap_depends__(self) -> tuple:
        return self.call.__imap_depends__

    @property
    def __imap_functions__(self) -> tuple:
        return self.call.__imap_functions__

    def __call__(self, value: Any) -> Any:
        single = self.single
        if single is not None and type(value) in PLAIN_TYPES:
            inbox = (value,)
            try:
                result = single(inbox)
            except UnmetDependency:
                raise   # not an error of the item: another worker runs it
            except Exception as exc:
                result = self.call.worker.failure(single, exc, inbox)
            else:
                if type(result) in PLAIN_TYPES:   # neither an error nor DROP
                    return result
            return self.call.outcome(result, inbox)
        if type(value) is _Dropped:
            return value
        return self.call((value,))


def _failed(error: WorkerError, piper: str) -> PiperError:
    """The value that travels downstream in place of an item ``piper`` failed on."""
    return PiperError(f"piper {piper!r} failed", error, piper)
