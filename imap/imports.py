"""The ``@imports`` decorator: import statements that travel with a function."""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["imports"]

F = TypeVar("F", bound=Callable[..., Any])


def _load(spec: str) -> tuple[str, Any, str, Any]:
    """Import the first importable alternative of ``spec``.

    Returns ``(top_name, top_module, leaf_name, leaf_module)`` where the leaf
    name is that of the *first* alternative, so code can use one name whichever
    alternative was found.
    """
    alternatives = [a.strip() for a in spec.split(",") if a.strip()]
    if not alternatives:
        raise ValueError(f"empty import specification {spec!r}")
    leaf_name = alternatives[0].rsplit(".", 1)[-1]
    errors = []
    for name in alternatives:
        try:
            leaf = importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        top = name.split(".", 1)[0]
        return top, importlib.import_module(top), leaf_name, leaf
    raise ImportError(
        f"none of the alternatives in {spec!r} could be imported ("
        + "; ".join(errors)
        + ")"
    )


def imports(modules: Iterable[str], forgive: bool = False) -> Callable[[F], F]:
    """Attach import statements to a function, executed wherever it runs.

    Each string names a module (``"re"``, ``"os.path"``) or comma-separated
    alternatives tried in turn (``"numpy.linalg,scipy.linalg"``). Before the
    function first runs in a process (a worker process, a remote host, or
    locally), every module is imported into the function's global namespace:
    the top-level package under its own name, as ``import a.b`` would bind
    ``a``; and the module found under the last part of the *first*
    alternative's name (``linalg`` above), whichever alternative loaded.

    Example:
        >>> @imports(["math", "simplejson,json"])
        ... def encode(x):
        ...     return simplejson.dumps(math.sqrt(x))

    Args:
        modules: the import specifications.
        forgive: skip a specification none of whose alternatives can be
            imported (logged at DEBUG, logger ``imap``) instead of raising
            ImportError when the function runs; the function then runs
            without that name (PaPy 1.x's ``forgive``).

    Returns:
        A decorator returning a wrapper with the same name and docstring.
    """
    if isinstance(modules, str):
        raise TypeError(
            "imports() takes a list of module names, e.g. imports(['re']), not a string"
        )
    specs = list(modules)
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise TypeError(f"imports(): each entry must be a module name, got {spec!r}")

    def decorate(func: F) -> F:
        # The marker lives in the function's globals, which are new in every
        # process the function is shipped to, so the imports run once there.
        marker = f"__imports_done_{func.__qualname__}__"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            namespace = func.__globals__
            if marker not in namespace:
                for spec in specs:
                    try:
                        top, top_mod, leaf_name, leaf_mod = _load(spec)
                    except ImportError as exc:
                        if not forgive:
                            raise
                        logging.getLogger("imap").debug("imports(forgive=True) of "
                                                        "%s: %s", func.__qualname__, exc)
                        continue
                    namespace.setdefault(top, top_mod)
                    if leaf_name != top or top_mod is not leaf_mod:
                        namespace[leaf_name] = leaf_mod
                namespace[marker] = True
            return func(*args, **kwargs)

        wrapper.__imports__ = tuple(specs)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
