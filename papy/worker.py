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

from imap.depends import dependencies_of
from imap.errors import UnmetDependency

from .errors import PiperError, WorkerError

#: The types of the error values that travel in an item's place.
ERROR_TYPES = (PiperError, WorkerError)
#: An inbox element of these types needs a closer look for errors.
LOOK_CLOSER = (PiperError, WorkerError, tuple, list)
#: Items of these exact types are no error and hold none: no need to look
#: closer (a set lookup costs less than isinstance with a tuple of types).
PLAIN_TYPES = frozenset({bool, bytes, complex, dict, float, int, str, type(None)})


def _is_error(value: Any) -> bool:
    return isinstance(value, ERROR_TYPES)


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


_SEQUENCES = (tuple, list)


def _arguments(given: Any, n: int) -> list[tuple]:
    """One tuple of extra positional arguments per function (see Worker)."""
    if given is None:
        return [()] * n
    example = ("e.g. Worker(f, arguments=[(10,)]) calls f(inbox, 10); Worker((f, g), "
               "arguments=[(10,), ()]) gives 10 to f only")
    if not isinstance(given, _SEQUENCES):
        raise TypeError(f"arguments must be a list of tuples, one tuple of extra arguments "
                        f"per function, or None; got {given!r} ({example})")
    entries = list(given)
    for i, entry in enumerate(entries):
        if isinstance(entry, (str, bytes)):
            raise ValueError(
                f"arguments[{i}] is {entry!r}, which would be unpacked into one argument "
                f"per character; give one tuple per function: arguments=[({entry!r},)]")
    if all(e is None or isinstance(e, _SEQUENCES) for e in entries):
        if len(entries) != n:
            raise ValueError(f"arguments has {len(entries)} entries but there are {n} "
                             f"functions; give one entry per function, a tuple ({example})")
        return [tuple(e) if e else () for e in entries]
    if n == 1 and not any(e is None or isinstance(e, _SEQUENCES) for e in entries):
        return [tuple(entries)]   # one function, a flat tuple of its arguments
    raise TypeError(f"arguments {given!r} mixes tuples and single values; give one tuple "
                    f"of extra arguments per function ({example})")


def _kwargs(given: Any, n: int) -> list[dict]:
    """One dict of keyword arguments per function (see Worker)."""
    if given is None:
        return [{}] * n
    example = ("e.g. Worker(f, kwargs={'k': 10}) calls f(inbox, k=10); Worker((f, g), "
               "kwargs=[{'k': 10}, {}]) gives k=10 to f only")
    if isinstance(given, dict):
        if n != 1:
            raise ValueError(f"kwargs is one dict but the worker has {n} functions; give "
                             f"one dict per function ({example})")
        return [dict(given)]
    if not isinstance(given, _SEQUENCES) or not all(e is None or isinstance(e, dict)
                                                    for e in given):
        raise TypeError(f"kwargs must be a dict (one function) or a list with one dict "
                        f"per function; got {given!r} ({example})")
    if len(given) != n:
        raise ValueError(f"kwargs has {len(given)} entries but there are {n} functions; "
                         f"give one entry per function, a dict ({example})")
    return [dict(e) if e else {} for e in given]


def _name(func: Callable) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


class Worker:
    """Functions composed left to right: ``Worker((f, g, h))(inbox)`` is
    ``h((g((f(inbox),)),))``.

    Args:
        functions: a callable, a :class:`Worker`, or a sequence of them
            (workers are flattened into their functions).
        arguments: one tuple of extra positional arguments per function
            (``None``: none), e.g. ``[(10,), ()]`` for ``(f, g)``. With a
            single function, a flat tuple of single values, ``(10,)``, is
            its arguments too; a string where a tuple belongs is refused (it
            would be unpacked into characters).
        kwargs: one dict of keyword arguments per function (``None``: none),
            or for a single function, that function's dict.
        name: a label (default: the function names joined by ``_``).

    Workers built from the same functions and arguments are equal.
    """

    def __init__(self, functions: Callable | Sequence[Callable] | Worker,
                 arguments: Sequence[Any] | None = None,
                 kwargs: dict | Sequence[dict | None] | None = None,
                 name: str | None = None) -> None:
        if isinstance(getattr(functions, "worker", None), Worker):
            raise TypeError(f"{functions!r} is a Piper; a Worker is made of functions "
                            f"(use its .worker, or Piper(piper) for a new piper of it)")
        if callable(functions) and not isinstance(functions, Worker):
            functions = (functions,)
        elif isinstance(functions, Worker):
            functions = (functions,)
        funcs: list = []
        args: list = []
        kws: list = []
        functions = tuple(functions)
        if not functions:
            raise ValueError("a Worker needs at least one function")
        given_args = _arguments(arguments, len(functions))
        given_kws = _kwargs(kwargs, len(functions))
        for i, func in enumerate(functions):
            if isinstance(func, Worker):
                funcs.extend(func.functions)
                args.extend(func.arguments)
                kws.extend(func.kwargs)
                continue
            if not callable(func):
                raise TypeError(f"Worker functions must be callable, got {func!r}")
            funcs.append(func)
            args.append(given_args[i])
            kws.append(given_kws[i])
        self.functions: tuple = tuple(funcs)
        self.arguments: tuple = tuple(args)
        self.kwargs: tuple = tuple(kws)
        self.name = name or "_".join(_name(f).split(".")[-1] for f in self.functions)
        # The function itself when it is the only one and takes no extra
        # arguments (the common case): called as is, it is the whole worker
        # but for the error handling (see __call__ and failure).
        self.single: Callable | None = None
        if len(funcs) == 1 and not args[0] and not kws[0]:
            self.single = funcs[0]

    def __call__(self, inbox: Any) -> Any:
        """Evaluate the functions on ``inbox``; return the result or a WorkerError."""
        if type(inbox) is tuple:
            for element in inbox:
                if isinstance(element, LOOK_CLOSER):
                    error = find_error(inbox)
                    if error is not None:
                        return error
                    break
        else:
            error = find_error(inbox)
            if error is not None:
                return error
        if self.single is not None:
            try:
                return self.single(inbox)
            except UnmetDependency:
                raise   # not an error of the item: another worker runs it
            except Exception as exc:
                return self.failure(self.single, exc, inbox)
        value = inbox
        last = len(self.functions) - 1
        for i, (func, args, kwargs) in enumerate(
                zip(self.functions, self.arguments, self.kwargs, strict=False)):
            try:
                value = func(value, *args, **kwargs)
            except UnmetDependency:
                raise
            except Exception as exc:
                return self.failure(func, exc, value)
            if i < last:
                value = (value,)
        return value

    @property
    def __imap_depends__(self) -> tuple:
        """The functional dependencies of its functions (``imap.require``,
        ``imap.depend``), together: a worker of an IMap runs it only where
        every one is met."""
        marks: dict = {}
        for func in self.functions:
            for mark in dependencies_of(func):
                marks.setdefault(mark[0], mark)   # a function used twice: once
        return tuple(marks.values())

    @property
    def __imap_functions__(self) -> tuple:
        """Its functions: where ``imap.require`` makes a module a global, it
        does so for each of them."""
        return self.functions

    @property
    def task(self) -> tuple:
        """The functions, left to right (PaPy 1.x's name for :attr:`functions`)."""
        return self.functions

    @property
    def args(self) -> tuple:
        """One tuple of extra arguments per function (PaPy 1.x's name for
        :attr:`arguments`)."""
        return self.arguments

    @staticmethod
    def failure(func: Callable, exc: Exception, value: Any) -> WorkerError:
        """The WorkerError for ``func`` raising ``exc`` on ``value`` (in an except block)."""
        return WorkerError(exc, _name(func), value, traceback.format_exc(),
                           inbox_hint(func, exc, value))

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
