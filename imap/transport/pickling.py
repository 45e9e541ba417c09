"""cloudpickle for what the parent sends, keeping the file names of code.

Functions that cannot be pickled by reference (lambdas, closures, functions
of ``__main__`` or of the user's modules sent by value) travel as code
objects. cloudpickle 3.1.3 and later write every such code object's file
name as ``"<dynamic-code>"`` (for payloads that do not depend on where the
code was defined), so a worker's traceback of an error in such a function
would name neither the file nor the line's source. The IMap wants the
opposite: a worker traceback that points at the user's file. :func:`dumps`
is ``cloudpickle.dumps`` with the file name kept.
"""

from __future__ import annotations

import io
import pickle
import types
from collections import ChainMap
from typing import Any

import cloudpickle

__all__ = ["dumps", "dumps_local"]

_DYNAMIC = "<dynamic-code>"
_reduce_code = cloudpickle.Pickler.dispatch_table[types.CodeType]


def _code_keeping_its_file(code: types.CodeType) -> tuple:
    rebuild, args = _reduce_code(code)[:2]
    args = tuple(code.co_filename if isinstance(a, str) and a == _DYNAMIC else a
                 for a in args)
    return rebuild, args


class Pickler(cloudpickle.Pickler):
    """A cloudpickle Pickler whose code objects keep their file name."""

    dispatch_table = ChainMap({types.CodeType: _code_keeping_its_file},
                              cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any, protocol: int | None = None) -> bytes:
    """``cloudpickle.dumps(obj, protocol)``, code keeping its file names."""
    with io.BytesIO() as file:
        Pickler(file, protocol=protocol).dump(obj)
        return file.getvalue()


def dumps_local(obj: Any, protocol: int | None = None) -> bytes:
    """``obj`` pickled for a worker process of this machine: by reference
    where plain pickle can (the worker imports the same modules, and
    functions of one module share its globals there, as in this process),
    else as :func:`dumps` does (lambdas, closures, anything of ``__main__``,
    which a spawned worker may not be able to import).

    cloudpickle's registry of modules sent by value is process-wide: once an
    IMap with remote workers registered the user's modules, their functions
    would reach local workers by value too, each pickle with globals of its
    own (an initializer's settings unseen by the task's function).
    """
    try:
        data = pickle.dumps(obj, protocol)
    except Exception:
        return dumps(obj, protocol)
    if b"__main__" in data:   # by reference to a main module a worker may not have
        return dumps(obj, protocol)
    return data
