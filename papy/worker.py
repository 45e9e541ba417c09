"""``Worker``: functions composed left to right, errors caught and returned.

The *inbox convention*: the first function of a worker is called
``f(inbox, *args, **kwargs)`` where ``inbox`` is a tuple with one element per
upstream pipe (a 1-tuple for a piper with one input); every following function
gets ``(previous_result,)``. A function that raises does not stop anything:
the worker returns a :class:`~papy.errors.WorkerError` in place of the
result. An inbox holding an error (a ``PiperError`` or ``WorkerError`` from
upstream) is passed on without running any function.

*Item functions*: :func:`item` wraps a function written for the item itself,
``def gc(seq)``; the worker calls it ``f(*inbox, *args, **kwargs)``: with
the item of a one-input piper, with one item per input of a merge.

*Dropping*: a function that returns :data:`imap.DROP` drops its item: the
worker's later functions do not run and the worker returns ``DROP``. An
inbox holding ``DROP`` (an upstream piper dropped the item; for a merge, any
of its branches did) is dropped too, without running any function (an error
in the inbox wins: it is passed on).

*Refused at the first item*: a function whose first parameter is annotated
with a class an inbox is not an instance of (``def gc(seq: str)``) is
evidently written for an item; called with a tuple (or with the list of
``consume``), it fails with a TypeError naming :func:`item` instead of
running on the wrong value.
"""

from __future__ import annotations

import inspect
import traceback
import typing
from collections.abc import Callable, Sequence
from typing import Any

from imap.depends import dependencies_of
from imap.drop import DROP, _Drop
from imap.errors import UnmetDependency

from .errors import PiperError, WorkerError

#: The types of the error values that travel in an item's place.
ERROR_TYPES = (PiperError, WorkerError)
#: An inbox element of these types needs a closer look for errors (or a drop).
LOOK_CLOSER = (PiperError, WorkerError, tuple, list, _Drop)
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

    Only for a TypeError or AttributeError that names ``tuple``, raised by a
    plain function called with an inbox (a tuple; a later function of a
    worker gets ``(previous_result,)``): the most likely cause is a function
    that takes the item itself, ``def f(x)``, where papy passes ``(x,)``.
    """
    if (type(exc) in (TypeError, AttributeError) and type(inbox) is tuple
            and "tuple" in str(exc) and not isinstance(func, Item)):
        return (f"{_name(func)} was called with the inbox {_short(inbox)}, a tuple with "
                f"one item per input pipe; for a function written for one item, give "
                f"papy.item({_name(func)}) (or take the item as inbox[0])")
    return ""


class Item:
    """A function of the item(s) itself, not of the inbox: see :func:`item`."""

    def __init__(self, func: Callable) -> None:
        if isinstance(func, Item):
            func = func.func
        if not callable(func):
            raise TypeError(f"papy.item() takes a function, got {func!r}")
        self.func = func
        self.__wrapped__ = func
        self.__name__ = getattr(func, "__name__", repr(func))
        self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        self.__module__ = getattr(func, "__module__", None)

    def __call__(self, inbox: Any, *args: Any, **kwargs: Any) -> Any:
        return self.func(*inbox, *args, **kwargs)

    @property
    def __imap_depends__(self) -> tuple:   # its function's imap.require marks
        return dependencies_of(self.func)

    def __reduce__(self) -> tuple:
        return (Item, (self.func,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Item) and other.func == self.func

    def __hash__(self) -> int:
        return hash((Item, self.func))

    def __repr__(self) -> str:
        return f"papy.item({_name(self.func)})"


def item(func: Callable) -> Item:
    """Mark ``func`` as written for the item itself, not for the inbox.

    ``Piper(papy.item(gc))`` calls ``gc(seq)`` with each item; a merge piper
    ``Piper(papy.item(pair))`` calls ``pair(left, right)``, one argument
    per input in the order of its inbox; a later function of a worker,
    ``Worker((parse, papy.item(gc)))``, gets the result of the one before.
    Extra arguments follow the items: ``Worker(papy.item(scale),
    arguments=[(10,)])`` calls ``scale(x, 10)``. Without it, a function gets
    the inbox, a tuple with one element per input (PaPy's convention).

    Not a decorator for the function itself: wrap it where the pipeline is
    built, so that ``gc`` stays a plain function of a sequence elsewhere.
    """
    return Item(func)


def _declared(func: Callable) -> type | None:
    """The class the first parameter of ``func`` is annotated with, when an
    inbox (a tuple, or the list of ``consume``) can never be an instance of
    it; None otherwise (no annotation, ``Any``, a union, ``tuple``, ...)."""
    if isinstance(func, Item):
        return None
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return None
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY,
                                           params[0].POSITIONAL_OR_KEYWORD):
        return None
    annotation = params[0].annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(func).get(params[0].name, annotation)
        except Exception:   # a name the annotation uses is not importable: no guess
            return None
    if (annotation is inspect.Parameter.empty or not isinstance(annotation, type)
            or annotation is object):
        return None
    if issubclass(tuple, annotation) or issubclass(list, annotation):
        return None
    return annotation


class InboxRefused(TypeError):
    """A function annotated for an item was about to be called with an inbox."""


def _refused(func: Callable, declared: type, value: Any) -> InboxRefused:
    name = _name(func)
    return InboxRefused(
        f"{name} takes a {declared.__name__} (its first parameter is annotated so) but a "
        f"Worker calls it with the inbox {_short(value)} (a tuple with one element per "
        f"input pipe; with consume=n, a list of inboxes); wrap it as papy.item({name}) "
        f"to be called with the item itself, or write it for the inbox (the item is "
        f"inbox[0])")


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
        # Per function, the class its first parameter is annotated with when
        # an inbox cannot be one (see _declared): checked at every call.
        self.declared: tuple = tuple(_declared(f) for f in funcs)
        self._checked = any(d is not None for d in self.declared)
        if len(funcs) == 1 and not args[0] and not kws[0] and not self._checked:
            self.single = funcs[0]

    def __call__(self, inbox: Any) -> Any:
        """Evaluate the functions on ``inbox``; return the result or a WorkerError."""
        if type(inbox) is tuple:
            for element in inbox:
                if isinstance(element, LOOK_CLOSER):
                    error = find_error(inbox)
                    if error is not None:
                        return error
                    if any(e is DROP for e in inbox):
                        return DROP   # an upstream piper dropped the item
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
                if self._checked:
                    declared = self.declared[i]
                    if declared is not None and not isinstance(value, declared):
                        raise _refused(func, declared, value)
                value = func(value, *args, **kwargs)
            except UnmetDependency:
                raise
            except Exception as exc:
                return self.failure(func, exc, value)
            if value is DROP:
                return DROP   # the item is dropped: the later functions do not run
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
