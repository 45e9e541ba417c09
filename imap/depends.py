"""Functional dependencies: where a function's tasklets may run.

Pools are often unlike: one remote host has the GPU library, another the
licensed program, the local processes neither. A function decorated with
:func:`require` (modules that must import) or :func:`depend` (a predicate
that must be true) is run only by the workers where its dependency is met:

.. code-block:: python

    @imap.require("gpu_lib")
    def render(scene):
        return gpu_lib.render(scene)   # the module is a global of the function there

Each worker checks the dependency once per function, before its first
tasklet of the task; a worker where it is unmet refuses the task, the engine
remembers that and sends its tasklets only to the others. When every live
worker of the pool has refused, each tasklet fails with
:class:`~imap.ImpossibleDependency` at its position (a worker that may come
back, a remote host reconnecting, is waited for first). A function may also
raise :class:`~imap.UnmetDependency` by hand for one tasklet: that tasklet
moves to another worker.

The decorators do not change what the function does when called directly:
they only mark it (the attribute :data:`ATTRIBUTE`, read by the workers
with :func:`imap.worker.kernel.unmet_dependency`). The marks are plain
tuples, so a remote host needs nothing of this package to check them.
"""

from __future__ import annotations

import functools
import sys
import types
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from .worker.kernel import DEPENDS as ATTRIBUTE

__all__ = ["require", "depend", "dependencies_of", "describe"]

F = TypeVar("F", bound=Callable[..., Any])


def _module_name(module: Any) -> str:
    if isinstance(module, types.ModuleType):
        return module.__name__
    if isinstance(module, str) and module and all(
            part.isidentifier() for part in module.split(".")):
        return module
    raise TypeError(f"imap.require takes module names (like 'numpy' or 'os.path') or "
                    f"modules, not {module!r}")


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


def _bound_in_module(func: Any) -> bool:
    """Whether ``func`` is already what its module's name for it holds: a
    worker importing that module would get it unmarked."""
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    obj: Any = module
    for part in (getattr(func, "__qualname__", None) or "<none>").split("."):
        obj = getattr(obj, part, None)
    return obj is func


def _mark(func: F, spec: tuple, decorator: str) -> F:
    """``func`` marked with one more dependency: itself (decorated where it
    is defined, the usual case), else a marked copy. A function that its
    module holds already (decorated at run time, ``imap.require("x")(f)``)
    is copied, so that the mark travels with the copy (by value), not
    lost on a worker that imports the module; a builtin or other callable
    that takes no attribute is wrapped."""
    if not callable(func):
        raise TypeError(f"@imap.{decorator}(...) decorates a function; got {func!r}")
    specs = dependencies_of(func) + (spec,)
    if isinstance(func, types.FunctionType):
        if _bound_in_module(func):
            copy = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                                      func.__defaults__, func.__closure__)
            copy.__kwdefaults__ = func.__kwdefaults__
            copy.__dict__.update(func.__dict__)
            copy.__doc__ = func.__doc__
            copy.__module__ = func.__module__
            # A name its module does not hold: pickled by value, marks and all.
            copy.__qualname__ = f"{func.__qualname__}.<{decorator}>"
            func = copy  # type: ignore[assignment]
        setattr(func, ATTRIBUTE, specs)
        return func
    try:
        setattr(func, ATTRIBUTE, specs)
        return func
    except (AttributeError, TypeError):   # a builtin, a bound method: wrap it
        pass

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    wrapper.__qualname__ = f"{wrapper.__qualname__}.<{decorator}>"
    setattr(wrapper, ATTRIBUTE, specs)
    return wrapper  # type: ignore[return-value]


def require(*modules: Any) -> Callable[[F], F]:
    """Decorate a function so that it runs only on workers where each of
    ``modules`` imports (names like ``"numpy"`` or ``"os.path"``, or module
    objects, which stand for their names).

    Where they import, each is also a global of the function there (unless
    it has a global of that name already; for ``"a.b"``, the global is
    ``a``), so a function may use a module that only some hosts have and
    this process lacks.
    """
    names = tuple(_module_name(m) for m in modules)
    if not names:
        raise TypeError("imap.require needs at least one module name")
    text = "require(" + ", ".join(repr(n) for n in names) + ")"

    def decorate(func: F) -> F:
        return _mark(func, (uuid.uuid4().hex, "require", text, names), "require")
    return decorate


def depend(predicate: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[F], F]:
    """Decorate a function so that it runs only on workers where
    ``predicate(*args, **kwargs)`` is true (checked there, once per worker
    and function; a predicate that raises counts as false). The predicate
    travels to the workers with the function, so it must pickle as the
    function does."""
    if not callable(predicate):
        raise TypeError(f"imap.depend takes a predicate (a function) first; got {predicate!r}")
    shown = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    text = f"depend({_name(predicate)}" + "".join(", " + s for s in shown) + ")"

    def decorate(func: F) -> F:
        return _mark(func, (uuid.uuid4().hex, "depend", text, predicate, args, kwargs),
                     "depend")
    return decorate


def dependencies_of(func: Any) -> tuple:
    """The dependency marks of ``func`` (an empty tuple if it has none)."""
    try:
        return tuple(getattr(func, ATTRIBUTE, ()))
    except Exception:   # an object whose attribute lookup fails
        return ()


def describe(func: Any) -> str | None:
    """``func``'s dependency as text (``"require('numpy') and
    depend(has_gpu)"``), or None if it has none."""
    specs = dependencies_of(func)
    if not specs:
        return None
    return " and ".join(spec[2] for spec in specs)
