"""The errors of the pipeline layer.

``WorkerError`` and ``PiperError`` are *values* as much as exceptions: a
:class:`~papy.worker.Worker` returns a ``WorkerError`` instead of raising, and
a :class:`~papy.piper.Piper` passes a ``PiperError`` downstream in the place
of the item that failed, so that errors never stop the flow and the item
count is kept. ``DaggerError`` and ``PlumberError`` are raised on misuse.
"""

from __future__ import annotations

import pickle
from typing import Any


def _picklable(value: Any, fallback: Any) -> Any:
    try:
        pickle.dumps(value)
    except Exception:
        return fallback
    return value


class WorkerError(Exception):
    """A function of a :class:`~papy.worker.Worker` raised.

    Attributes:
        exception: the exception raised.
        function: the name of the function that raised it.
        input: the inbox (or previous result) the function was called with.
        traceback: the traceback text, as formatted where it was raised.
        hint: a likely fix, when the error looks like a known mistake (or "").
    """

    def __init__(self, exception: BaseException, function: str, input: Any = None,
                 traceback: str = "", hint: str = "") -> None:
        super().__init__(exception, function, input, traceback, hint)
        self.exception = exception
        self.function = function
        self.input = input
        self.traceback = traceback
        self.hint = hint

    def __reduce__(self) -> tuple:
        exc = _picklable(self.exception, RuntimeError(repr(self.exception)))
        inp = _picklable(self.input, repr(self.input))
        return (WorkerError, (exc, self.function, inp, self.traceback, self.hint))

    def __str__(self) -> str:
        text = f"{self.function}() raised {type(self.exception).__name__}: {self.exception}"
        return f"{text} ({self.hint})" if self.hint else text

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, WorkerError) and self.function == other.function
                and repr(self.exception) == repr(other.exception))

    __hash__ = Exception.__hash__


class PiperError(Exception):
    """A piper could not produce an item, or a piper was misused.

    As a value travelling down a pipeline, ``error`` is the cause: a
    :class:`WorkerError`, an ``imap.TimeoutError`` (the result did not come in
    time) or another exception raised while the item was evaluated (e.g. an
    ``imap.WorkerLostError``); ``piper`` is the name of the piper where the
    error arose.
    """

    def __init__(self, message: str = "", error: BaseException | None = None,
                 piper: str | None = None) -> None:
        super().__init__(message, error, piper)
        self.message = message
        self.error = error
        self.piper = piper

    def __reduce__(self) -> tuple:
        err = _picklable(self.error, RuntimeError(repr(self.error)))
        return (PiperError, (self.message, err, self.piper))

    def __str__(self) -> str:
        if self.error is None:
            return self.message
        return f"{self.message}: {self.error}" if self.message else str(self.error)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PiperError) and self.piper == other.piper
                and self.message == other.message and self.error == other.error)

    __hash__ = Exception.__hash__


class DaggerError(Exception):
    """Misuse of a :class:`~papy.dagger.Dagger`: cycles, double insertion, ..."""


class PlumberError(Exception):
    """Misuse or failure of a :class:`~papy.plumber.Plumber`."""
