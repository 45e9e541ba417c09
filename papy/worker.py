"""``Worker``: functions composed left to right, errors caught and returned.

The *inbox convention*: the first function of a worker is called
``f(inbox, *args, **kwargs)`` where ``inbox`` is a tuple with one element per
upstream pipe (a 1-tuple for a piper with one input); every following function
gets ``(previous_result,)``. A function that raises does not stop anything:
the worker returns a :class:`~papy.errors.WorkerError` in place of the
result. An inbox holding an error (a ``PiperError`` or ``WorkerError`` from
upstream) is passed on without running any function.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .errors import PiperError, WorkerError

_ERRORS = (PiperError, WorkerError)
# an inbox element of these types needs a closer look for errors
_LOOK_CLOSER = (PiperError, WorkerError, tuple, list)


def _is_error(value: Any) -> bool:
    return isinstance(value, _ERRORS)


def find_error(inbox: Any) -> Any:
    """The first error value in ``inbox`` (one level of nesting), or None."""
    if _is_error(inbox):
        return inbox
    if isinstance(inbox, (tuple, list)):
        for element in inbox:
            if _is_error(element):
                return element
            if isinstance(element, (tuple, list)):
                for sub in element:
                    if _is_error(sub):
                        return sub
    return None


def inbox_hint(func: Callable, exc: BaseException, inbox: Any) -> str:
    """A hint when ``func`` looks written for an item instead of an inbox.

    Only for a TypeError that names ``tuple``, raised by a function called
    with an inbox (a tuple; a later function of a worker gets
    ``(previous_result,)``): the most likely cause is a function that takes
    the item itself, ``def f(x)``, where papy passes ``(x,)``.
    """
    if type(exc) is TypeError and type(inbox) is tuple and "tuple" in str(exc):
        return (f"{_name(func)} was called with the inbox {_short(inbox)}, a tuple with "
                f"one item per input pipe; a function written for one item takes it "
                f"as inbox[0]")
    return ""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + "...)"


def _name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


class Worker:
    """Functions composed left to right: ``Worker((f, g, h))(inbox)`` is
    ``h((g((f(inbox),)),))``.

    Args:
        functions: a callable, a :class:`Worker`, or a sequence of them
            (workers are flattened into their functions).
        arguments: one sequence of extra positional arguments per function
            (``None`` = none for every function).
        kwargs: one dict of keyword arguments per function.
        name: a label (default: the function names joined by ``_``).

    Workers built from the same functions and arguments are equal.
    """

    def __init__(self, functions: Callable | Sequence[Callable] | Worker,
                 arguments: Sequence[Sequence[Any]] | None = None,
                 kwargs: Sequence[dict] | None = None, name: str | None = None) -> None:
        if callable(functions) and not isinstance(functions, Worker):
            functions = (functions,)
        elif isinstance(functions, Worker):
            functions = (functions,)
        funcs: list = []
        args: list = []
        kws: list = []
        given_args = list(arguments) if arguments is not None else None
        given_kws = list(kwargs) if kwargs is not None else None
        functions = tuple(functions)
        if not functions:
            raise ValueError("a Worker needs at least one function")
        for seq, label in ((given_args, "arguments"), (given_kws, "kwargs")):
            if seq is not None and len(seq) != len(functions):
                raise ValueError(
                    f"{label} has {len(seq)} entries but there are {len(functions)} "
                    f"functions; give one entry per function")
        for i, func in enumerate(functions):
            if isinstance(func, Worker):
                funcs.extend(func.functions)
                args.extend(func.arguments)
                kws.extend(func.kwargs)
                continue
            if not callable(func):
                raise TypeError(f"Worker functions must be callable, got {func!r}")
            funcs.append(func)
            args.append(tuple(given_args[i]) if given_args and given_args[i] else ())
            kws.append(dict(given_kws[i]) if given_kws and given_kws[i] else {})
        self.functions: tuple = tuple(funcs)
        self.arguments: tuple = tuple(args)
        self.kwargs: tuple = tuple(kws)
        self.name = name or "_".join(_name(f).split(".")[-1] for f in self.functions)

    def __call__(self, inbox: Any) -> Any:
        """Evaluate the functions on ``inbox``; return the result or a WorkerError."""
        if type(inbox) is tuple:
            for element in inbox:
                if isinstance(element, _LOOK_CLOSER):
                    error = find_error(inbox)
                    if error is not None:
                        return error
                    break
        else:
            error = find_error(inbox)
            if error is not None:
                return error
        if len(self.functions) == 1 and not self.arguments[0] and not self.kwargs[0]:
            func = self.functions[0]
            try:
                return func(inbox)
            except Exception as exc:
                return WorkerError(exc, _name(func), inbox, traceback.format_exc(),
                                   inbox_hint(func, exc, inbox))
        value = inbox
        last = len(self.functions) - 1
        for i, (func, args, kwargs) in enumerate(
                zip(self.functions, self.arguments, self.kwargs, strict=False)):
            try:
                value = func(value, *args, **kwargs)
            except Exception as exc:
                return WorkerError(exc, _name(func), value, traceback.format_exc(),
                                   inbox_hint(func, exc, value))
            if i < last:
                value = (value,)
        return value

    def _key(self) -> tuple:
        return (self.functions, self.arguments,
                tuple(tuple(sorted(k.items())) for k in self.kwargs))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Worker) and self._key() == other._key()

    def __hash__(self) -> int:
        try:
            return hash(self._key())
        except TypeError:
            return hash(self.functions)

    def __repr__(self) -> str:
        return f"Worker({', '.join(_name(f) for f in self.functions)})"
