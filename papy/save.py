"""Saving a pipeline as a readable Python file, and loading it back.

The file imports what it needs, defines the functions that were defined in
``__main__`` (by their source), makes the IMaps, the pipers and the pipes,
and leaves them in the names ``pipers`` (a list, in insertion order) and
``pipes`` (a list of ``(upstream name, downstream name)``). Functions are
referred to by import path (``module.qualname``); a lambda or a function
defined inside another function cannot be saved. Arguments are written with
``repr()`` and must read back as the same values.
"""

from __future__ import annotations

import ast
import inspect
import os
import tempfile
import textwrap
from typing import Any

from imap.core import RETRIES
from imap.options import Options

from .errors import PlumberError

# IMap options written even when they have their default value
_IMAP_ALWAYS = ("worker_type", "worker_num", "stride", "buffer", "name")


def _imap_defaults() -> dict:
    """The default of every IMap option, in the form ``IMap.options`` gives.

    :class:`imap.options.Options` is the one list of options: an option
    added there is saved without any change here.
    """
    defaults = Options.defaults()
    defaults["worker_remote"] = list(defaults["worker_remote"])
    defaults["remote_options"] = dict(defaults["remote_options"])
    return defaults


def _function_ref(func: Any, imports: set, sources: dict) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if module is None or qualname is None or "<" in qualname:
        raise PlumberError(f"cannot save {func!r}: only module-level functions (no "
                           f"lambdas or nested functions) can be saved")
    if module == "__main__":
        if qualname not in sources:
            try:
                sources[qualname] = textwrap.dedent(inspect.getsource(func))
            except (OSError, TypeError) as exc:
                raise PlumberError(f"cannot save {qualname}: its source is not "
                                   f"available ({exc})") from exc
        return qualname
    imports.add(module)
    return f"{module}.{qualname}"


def _literal(value: Any, what: str) -> str:
    text = repr(value)
    try:
        if ast.literal_eval(text) != value:
            raise ValueError
    except (ValueError, SyntaxError):
        raise PlumberError(f"cannot save {what}={value!r}: it must be a Python literal "
                           f"(numbers, strings, tuples, lists, dicts, ...)") from None
    return text


def _imap_options(m: Any, imports: set, sources: dict) -> str:
    """The keyword arguments that remake IMap ``m`` (without its tasks)."""
    options = m.options
    defaults = _imap_defaults()
    given = []
    for key, value in options.items():
        if key not in _IMAP_ALWAYS and key in defaults and value == defaults[key]:
            continue
        if key == "initializer":
            given.append(f"initializer={_function_ref(value, imports, sources)}")
        else:
            given.append(f"{key}={_literal(value, f'IMap {key}')}")
    return ", ".join(given)


def save_pipeline(dagger: Any) -> str:
    """The Python source that rebuilds the pipers and pipes of ``dagger``."""
    imports: set = set()
    sources: dict = {}
    imaps: list = []
    lines: list = []
    for piper in dagger.pipers:
        funcs = ", ".join(_function_ref(f, imports, sources) for f in piper.worker.functions)
        args = _literal([list(a) for a in piper.worker.arguments], "arguments")
        kwargs = _literal(list(piper.worker.kwargs), "kwargs")
        if piper.imap is not None and all(piper.imap is not m for m in imaps):
            imaps.append(piper.imap)
        parallel = (f"imaps[{[i for i, m in enumerate(imaps) if m is piper.imap][0]}]"
                    if piper.imap is not None else "False")
        options = {"consume": 1, "produce": 1, "spawn": 1, "timeout": None,
                   "branch": None, "debug": False, "track": False, "repeat": False,
                   "retries": RETRIES if piper.imap is not None else 0}
        given = "".join(f", {k}={_literal(getattr(piper, k), k)}"
                        for k, default in options.items() if getattr(piper, k) != default)
        if piper.retry_on:   # exception classes, named like functions
            classes = "".join(f"{_function_ref(c, imports, sources)}, " for c in piper.retry_on)
            given += f", retry_on=({classes})"
        lines.append(f"pipers.append(Piper(Worker(({funcs},), arguments={args}, "
                     f"kwargs={kwargs}), parallel={parallel}, "
                     f"name={piper.name!r}{given}))")
    imap_lines = [f"    IMap({_imap_options(m, imports, sources)})," for m in imaps]
    out = ['"""A papy pipeline, written by Plumber.save(); load with Plumber().load()."""',
           "", "from imap import IMap", "from papy import Piper, Worker"]
    out += [f"import {module}" for module in sorted(imports)]
    out.append("")
    for source in sources.values():
        out += ["", source.rstrip(), ""]
    out += ["", "imaps = ["] + imap_lines
    out += ["]", "", "pipers = []"] + lines
    pipes = [(a.name, b.name) for a, b in dagger.graph.edges()]
    out += ["", f"pipes = {pipes!r}", ""]
    return "\n".join(out)


def write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all.

    The text goes to a temporary file in the same directory, which then
    replaces ``path``; on any failure the temporary file is removed and
    ``path`` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".papy-save-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load_pipeline(path: str) -> tuple[list, list]:
    """Run a saved pipeline file; return its ``(pipers, pipes)``."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    namespace: dict = {"__name__": "__papy_pipeline__", "__file__": path}
    try:
        exec(compile(source, path, "exec"), namespace)
    except Exception as exc:
        raise PlumberError(f"cannot load the pipeline {path}: {exc!r}") from exc
    try:
        return namespace["pipers"], namespace["pipes"]
    except KeyError as exc:
        raise PlumberError(f"{path} is not a saved pipeline (no {exc})") from None
